package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"gopkg.in/yaml.v3"

	"ordersaga/deploy"
	"ordersaga/internal/cluster"
	"ordersaga/internal/devserver"
	"ordersaga/internal/pgserver"
	"ordersaga/workflows"
)

// Which Temporal a run measures.
const (
	// TemporalEmbedded: the embedded server (devserver, SQLite) in this
	// process, as `ordersaga dev` runs it.
	TemporalEmbedded = "embedded"
	// TemporalCluster: the official server as separate processes —
	// frontend, two history, matching, worker service — on PostgreSQL, as
	// `ordersaga cluster` runs it (internal/cluster).
	TemporalCluster = "cluster"
)

// temporalServer is the Temporal a run measures.
type temporalServer interface {
	FrontendAddress() string
	Namespace() string
	Dial(ctx context.Context, opts client.Options) (client.Client, error)
	Stop() error
	Settings(ctx context.Context) (devserver.Settings, error)
}

// startTemporal starts the run's Temporal. A cluster keeps its databases on
// the shop's PostgreSQL server, as docker-compose.yml has them (on a server
// of its own when the shop runs on SQLite).
func (s *stack) startTemporal(ctx context.Context, o Options) error {
	if o.Temporal != TemporalCluster {
		ts, err := devserver.Start(ctx, devserver.Options{
			Dir:              filepath.Join(s.dir, "temporal"),
			FrontendPort:     -1,
			UIPort:           0,
			SearchAttributes: workflows.SearchAttributes(),
			HistoryShards:    o.HistoryShards,
			Revert:           serverReverts(o),
			Logger:           s.log.With("component", "temporal-server"),
		})
		if err != nil {
			return err
		}
		s.ts = ts
		s.undo = append(s.undo, func() { _ = ts.Stop() })
		return nil
	}
	tools, err := cluster.FindTools(ctx, o.TemporalBin)
	if err != nil {
		return err
	}
	pg := s.pg
	if pg == nil {
		if pg, err = pgserver.Start(ctx, pgserver.Options{Bin: o.PGBin, Dir: filepath.Join(s.dir, "temporal-pg"), MaxConnections: 300}); err != nil {
			return err
		}
		s.undo = append(s.undo, func() { _ = pg.Stop() })
	}
	s.temporalPG = pg
	t, err := cluster.StartTemporal(ctx, cluster.TemporalOptions{
		Tools: tools, PG: pg, Dir: filepath.Join(s.dir, "temporal"), Logs: filepath.Join(s.dir, "logs"),
		HistoryShards:    o.HistoryShards,
		SearchAttributes: workflows.SearchAttributes(),
		Logf:             func(format string, args ...any) { s.log.Info(fmt.Sprintf(format, args...), "component", "cluster") },
	})
	if err != nil {
		return err
	}
	s.cluster = t
	s.ts = clusterServer{t}
	s.undo = append(s.undo, func() { _ = t.Stop() })
	return nil
}

// clusterServer reports a cluster's settings as the embedded server's are
// reported: the shard count asked of the cluster, and the dynamic config it
// runs with (docker-compose.yml's, deploy/temporal/dynamicconfig.yaml).
type clusterServer struct{ *cluster.Temporal }

func (c clusterServer) Settings(ctx context.Context) (devserver.Settings, error) {
	out := devserver.Settings{DynamicConfig: map[string]string{}}
	var dc map[string][]struct {
		Value any `yaml:"value"`
	}
	if err := yaml.Unmarshal(deploy.TemporalDynamicConfig, &dc); err == nil {
		for k, v := range dc {
			if len(v) > 0 {
				out.DynamicConfig[k] = fmt.Sprint(v[0].Value)
			}
		}
	}
	n, err := c.HistoryShards(ctx)
	out.HistoryShards = n
	return out, err
}

// describeTemporal says what the run measures, for the report.
func (s *stack) describeTemporal() string {
	if s.cluster == nil {
		return "embedded server (devserver: one process, SQLite)"
	}
	var svcs []string
	for _, sv := range s.cluster.Services() {
		svcs = append(svcs, sv.Name)
	}
	return fmt.Sprintf("cluster: official temporal-server %s as processes (%s) on PostgreSQL %s",
		cluster.PinnedServerVersion(), strings.Join(svcs, ", "), s.temporalPG.Bin())
}

// cpuGroups are the processes whose CPU time a phase reports: this one
// (the workers, the API, the simulator, the drivers — and the embedded
// server), the PostgreSQL server(s) and each Temporal service, by process
// group.
func (s *stack) cpuGroups() []cpuGroup {
	groups := []cpuGroup{{name: "bench process", pgid: 0}}
	if s.cluster == nil {
		groups[0].name = "bench process (embedded Temporal, workers, API)"
	}
	if s.pg != nil {
		groups = append(groups, cpuGroup{name: "postgres", pgid: s.pg.PID()})
	}
	if s.temporalPG != nil && s.temporalPG != s.pg {
		groups = append(groups, cpuGroup{name: "temporal postgres", pgid: s.temporalPG.PID()})
	}
	if s.cluster != nil {
		for _, sv := range s.cluster.Services() {
			groups = append(groups, cpuGroup{name: "temporal " + sv.Name, pgid: sv.PID()})
		}
	}
	return groups
}

// cpuGroup is a process group (pgid 0: this process alone).
type cpuGroup struct {
	name string
	pgid int
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// cpuSeconds is the CPU time used so far by each group: its processes'
// user and system time, with that of their children already reaped (a
// PostgreSQL backend that ended).
func cpuSeconds(groups []cpuGroup) map[string]float64 {
	out := map[string]float64{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, pgrp, ticks, ok := procStat(pid)
		if !ok {
			continue
		}
		for _, g := range groups {
			// PostgreSQL's backends lead groups of their own: they count
			// as their postmaster's children.
			if (g.pgid == 0 && pid == os.Getpid()) || (g.pgid > 0 && (pgrp == g.pgid || ppid == g.pgid)) {
				out[g.name] += ticks / clockTicks
			}
		}
	}
	return out
}

// procStat reads a process's parent, group and CPU ticks (utime + stime +
// cutime + cstime) from /proc/<pid>/stat.
func procStat(pid int) (ppid, pgrp int, ticks float64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, pgrp 5, utime..cstime 14..17.
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	pgrp, _ = strconv.Atoi(f[2])
	for _, k := range f[11:15] {
		v, _ := strconv.ParseFloat(k, 64)
		ticks += v
	}
	return ppid, pgrp, ticks, true
}

// cpuDuring is what each group used between two samples, in cores (CPU
// seconds per second of the phase), rounded to 0.01.
func cpuDuring(before, after map[string]float64, wall time.Duration) map[string]float64 {
	out := map[string]float64{}
	if wall <= 0 {
		return out
	}
	for k, v := range after {
		out[k] = math.Round((v-before[k])/wall.Seconds()*100) / 100
	}
	return out
}

// writeCPU writes the CPU each process group used during each phase.
func (r *Report) writeCPU(w io.Writer) {
	if len(r.CPU) == 0 {
		return
	}
	fmt.Fprintf(w, "CPU during each phase, in cores (of %d):\n", r.Machine.Cores)
	for _, phase := range AllPhases {
		used, ok := r.CPU[phase]
		if !ok {
			continue
		}
		names := slices.Sorted(maps.Keys(used))
		// Busiest first: what the phase was bound by leads.
		sort.SliceStable(names, func(i, j int) bool { return used[names[i]] > used[names[j]] })
		total := 0.0
		parts := make([]string, 0, len(names))
		for _, n := range names {
			total += used[n]
			parts = append(parts, fmt.Sprintf("%s %.2f", n, used[n]))
		}
		fmt.Fprintf(w, "  %-7s %.2f: %s\n", phase, total, strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
}
