package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"ordersaga/internal/cluster"
	"ordersaga/internal/devserver"
	"ordersaga/internal/pgserver"
	"ordersaga/workflows"
)

// temporalServer is the Temporal a run uses: the embedded server
// (devserver) or the services of a cluster.
type temporalServer interface {
	FrontendAddress() string
	Namespace() string
	Dial(ctx context.Context, opts client.Options) (client.Client, error)
	UIURL() string
	Stop() error
}

// apiReplicas is the number of API processes: two behind the balancer on
// a cluster, as the production shape has them.
func (h *harness) apiReplicas() int {
	if h.opts.Temporal == TemporalCluster {
		return 2
	}
	return 1
}

// startTemporal starts the run's Temporal — the embedded server, or the
// official server's services as processes on a PostgreSQL server of their
// own (so that crashing it is Temporal's fault alone, apart from the shop's
// postgres_restart) — and dials it.
func (h *harness) startTemporal(ctx context.Context, logDir string, undo *[]func()) error {
	o := h.opts
	tempLog, err := os.Create(filepath.Join(logDir, "temporal.log"))
	if err != nil {
		return err
	}
	*undo = append(*undo, func() { tempLog.Close() })
	logger := slog.New(slog.NewTextHandler(tempLog, &slog.HandlerOptions{Level: slog.LevelWarn}))
	switch o.Temporal {
	case TemporalCluster:
		began := time.Now()
		tools, err := cluster.FindTools(ctx, o.TemporalBin)
		if err != nil {
			return err
		}
		h.logf("Temporal server and schema tool %s ready in %.1fs", cluster.PinnedServerVersion(), time.Since(began).Seconds())
		if h.tpg, err = pgserver.Start(ctx, pgserver.Options{Bin: o.PGBin, Dir: filepath.Join(h.dir, "temporal-pg")}); err != nil {
			return err
		}
		*undo = append(*undo, func() { _ = h.tpg.Stop() })
		h.logf("Temporal's postgres on 127.0.0.1:%d", h.tpg.Port())
		if h.cluster, err = cluster.StartTemporal(ctx, cluster.TemporalOptions{
			Tools: tools, PG: h.tpg, Dir: filepath.Join(h.dir, "temporal"), Logs: logDir,
			UIPort: o.UIPort, SearchAttributes: workflows.SearchAttributes(), Logf: h.logf,
		}); err != nil {
			return err
		}
		h.ts = h.cluster
	default:
		if h.ts, err = devserver.Start(ctx, devserver.Options{
			Dir:              filepath.Join(h.dir, "temporal"),
			FrontendPort:     -1,
			UIPort:           o.UIPort,
			SearchAttributes: workflows.SearchAttributes(),
			Logger:           logger,
		}); err != nil {
			return err
		}
	}
	*undo = append(*undo, func() { _ = h.ts.Stop() })
	if h.ts.UIURL() != "" {
		h.logf("Temporal Web UI %s", h.ts.UIURL())
	}
	h.tc, err = h.ts.Dial(ctx, client.Options{Logger: sdklog.NewStructuredLogger(logger)})
	if err != nil {
		return err
	}
	*undo = append(*undo, h.tc.Close)
	return nil
}

// doCluster does one fault of Temporal itself. Like the others, it is
// counted only once it was seen to happen — the process gone, and what the
// cluster does about it observed — and the cluster is whole again;
// otherwise it is reported as failed, with why.
func (p *processFaults) doCluster(ctx context.Context, kind string) {
	h, c := p.h, p.h.cluster
	fail := func(format string, args ...any) {
		why := fmt.Sprintf(format, args...)
		h.restarts.fail(kind, why)
		h.logf("%s: %s", kind, why)
	}
	// restart starts s again and waits until it serves and the membership
	// holds every service.
	restart := func(s *cluster.Service, down time.Duration) bool {
		sleep(ctx, down)
		if err := s.Start(); err != nil {
			fail("start %s: %v", s.Name, err)
			return false
		}
		if err := c.WaitUp(ctx, s, 2*time.Minute); err != nil {
			fail("%v", err)
			return false
		}
		if err := c.WaitRings(ctx, time.Minute); err != nil {
			fail("%v", err)
			return false
		}
		return true
	}
	switch kind {
	case FaultHistoryKill:
		// A process that holds shards: with few shards the ring may give
		// one none, and killing it would move nothing.
		owners, err := c.ShardOwners(ctx)
		if err != nil {
			fail("ask the history processes for their shards: %v", err)
			return
		}
		var holders []*cluster.Service
		for _, s := range c.History {
			if owners[s.Address()] > 0 {
				holders = append(holders, s)
			}
		}
		if len(holders) == 0 {
			fail("no history process holds a shard: %v", owners)
			return
		}
		victim := holders[p.rng.IntN(len(holders))]
		if !victim.Kill(syscall.SIGKILL, 0) {
			fail("%s was not running: nothing to kill", victim.Name)
			return
		}
		began := time.Now()
		h.logf("temporal %s killed (SIGKILL) holding %d shards; waiting for them to move", victim.Name, owners[victim.Address()])
		owners, err = p.shardsMoved(ctx, victim, time.Minute)
		if err != nil {
			fail("the shards of %s did not move: %v", victim.Name, err)
			_ = victim.Start()
			return
		}
		h.logf("temporal %s's shards moved in %.1fs: %v; starting it again", victim.Name, time.Since(began).Seconds(), owners)
		if restart(victim, time.Duration(p.rng.Int64N(int64(2*time.Second)))) {
			h.restarts.add(kind)
			h.logf("temporal %s is back", victim.Name)
		}
	case FaultFrontendRestart:
		sig, how := syscall.SIGTERM, "SIGTERM"
		if p.rng.IntN(2) == 0 {
			sig, how = syscall.SIGKILL, "SIGKILL"
		}
		if !c.Frontend.Kill(sig, 15*time.Second) {
			fail("the frontend was not running: nothing to stop")
			return
		}
		down := 200*time.Millisecond + time.Duration(p.rng.Int64N(int64(1800*time.Millisecond)))
		h.logf("temporal frontend stopped (%s); starting it again in %v", how, down.Round(time.Millisecond))
		if restart(c.Frontend, down) {
			h.restarts.add(kind)
			h.logf("temporal frontend is back")
		}
	case FaultMatchingKill:
		if !c.Matching.Kill(syscall.SIGKILL, 0) {
			fail("matching was not running: nothing to kill")
			return
		}
		began := time.Now()
		h.logf("temporal matching killed (SIGKILL); waiting for the membership to drop it")
		if err := p.leftRing(ctx, c.Matching, time.Minute); err != nil {
			fail("%v", err)
			_ = c.Matching.Start()
			return
		}
		h.logf("the membership dropped matching after %.1fs; starting it again", time.Since(began).Seconds())
		if restart(c.Matching, time.Duration(p.rng.Int64N(int64(time.Second)))) {
			h.restarts.add(kind)
			h.logf("temporal matching is back")
		}
	case FaultTemporalPostgresRestart:
		if !h.tpg.Running() {
			fail("Temporal's postgres was not running: nothing to crash")
			return
		}
		down := time.Second + time.Duration(p.rng.Int64N(int64(2*time.Second)))
		h.logf("Temporal's postgres crashed (immediate shutdown); starting it again in %v", down.Round(time.Millisecond))
		if err := h.tpg.Restart(ctx, down); err != nil {
			fail("restart Temporal's postgres: %v", err)
			return
		}
		// Back once every service serves again and the namespace answers
		// (it is read from the database).
		for _, s := range c.Services() {
			if err := c.WaitUp(ctx, s, 2*time.Minute); err != nil {
				fail("after Temporal's postgres came back: %v", err)
				return
			}
		}
		if err := p.namespaceAnswers(ctx, time.Minute); err != nil {
			fail("after Temporal's postgres came back: %v", err)
			return
		}
		h.restarts.add(kind)
		h.logf("Temporal's postgres is back and every Temporal service answers")
	default:
		fail("unknown fault kind")
	}
}

// shardsMoved waits until the membership has dropped the killed history
// process and the others own every shard between them.
func (p *processFaults) shardsMoved(ctx context.Context, victim *cluster.Service, within time.Duration) (map[string]int, error) {
	c := p.h.cluster
	total, err := c.HistoryShards(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(within)
	var owners map[string]int
	for {
		members, err := c.Membership(ctx)
		if err == nil && !slices.Contains(members[cluster.RoleHistory], victim.Address()) {
			if owners, err = c.ShardOwners(ctx); err == nil {
				sum := 0
				for _, n := range owners {
					sum += n
				}
				if sum == int(total) {
					return owners, nil
				}
				err = fmt.Errorf("%d of %d shards owned: %v", sum, total, owners)
			}
		} else if err == nil {
			err = fmt.Errorf("%s still in the history ring %v", victim.Name, members[cluster.RoleHistory])
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("after %v: %w", within, err)
		}
		sleep(ctx, 500*time.Millisecond)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// leftRing waits until the frontend's view of the membership no longer
// holds s.
func (p *processFaults) leftRing(ctx context.Context, s *cluster.Service, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		members, err := p.h.cluster.Membership(ctx)
		if err == nil && !slices.Contains(members[s.Role], s.Address()) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the membership still holds %s after %v (%v)", s.Name, within, err)
		}
		sleep(ctx, 500*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// namespaceAnswers waits until the frontend describes the run's namespace.
func (p *processFaults) namespaceAnswers(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := p.h.tc.WorkflowService().DescribeNamespace(cctx, &workflowservice.DescribeNamespaceRequest{Namespace: p.h.ts.Namespace()})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s does not answer after %v: %w", p.h.ts.Namespace(), within, err)
		}
		sleep(ctx, 500*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// reportCluster adds what only a cluster run has to the report.
func (h *harness) reportCluster(r *Report) {
	r.Temporal = h.opts.Temporal
	r.Restarts.HistoryKills = r.Faults[FaultHistoryKill]
	r.Restarts.FrontendRestarts = r.Faults[FaultFrontendRestart]
	r.Restarts.MatchingKills = r.Faults[FaultMatchingKill]
	r.Restarts.TemporalPostgresRestarts = r.Faults[FaultTemporalPostgresRestart]
	if h.cluster != nil {
		for _, s := range h.cluster.Services() {
			r.Restarts.TemporalUnexpectedExits += s.Unexpected()
		}
	}
	if h.balancer != nil {
		r.APIRequests = map[string]int{}
		for i, n := range h.balancer.Served() {
			r.APIRequests[h.apis[i].name] = n
		}
	}
}
