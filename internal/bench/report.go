package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	sdkworker "go.temporal.io/sdk/worker"

	"ordersaga/internal/devserver"
	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// Report is a run's result: the machine, the settings and each phase's
// figures. JSON (WriteJSON) is for comparing runs.
type Report struct {
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	Started  time.Time `json:"started"`

	Noop *Throughput `json:"noop,omitempty"`
	Saga *Throughput `json:"saga,omitempty"`
	// Ratio is Saga.PerSecond / Noop.PerSecond.
	Ratio  float64 `json:"ratio_saga_to_noop,omitempty"`
	Notify *Burst  `json:"notify_burst,omitempty"`
	Reads  *Reads  `json:"reads,omitempty"`
	Expiry *Expiry `json:"expiry,omitempty"`
	// Reconcile is the reconciliation of a generated day.
	Reconcile *Reconcile `json:"reconcile,omitempty"`
	// CPU is what each process group used during each phase, in cores (CPU
	// seconds per second): phase → group → cores. On a machine of a few
	// cores it says what a figure is bound by.
	CPU map[string]map[string]float64 `json:"cpu_cores,omitempty"`

	TotalSeconds float64 `json:"total_seconds"`
	Dir          string  `json:"dir,omitempty"`
}

// Machine is where the run ran.
type Machine struct {
	Cores      int    `json:"cores"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPU        string `json:"cpu,omitempty"`
	MemoryGB   int    `json:"memory_gb,omitempty"`
	OS         string `json:"os"`
	Go         string `json:"go"`
}

// Settings are what the run was asked for and what the stack ran with.
type Settings struct {
	DB             string   `json:"db"`
	Users          int      `json:"users"`
	Duration       string   `json:"duration,omitempty"`
	Warmup         string   `json:"warmup,omitempty"`
	Orders         int      `json:"orders,omitempty"`
	Poll           string   `json:"poll"`
	Expiry         int      `json:"expiry_orders"`
	ExpiryTimeout  string   `json:"expiry_pay_timeout"`
	ExpiryRate     float64  `json:"expiry_rate_per_second,omitempty"`
	Burst          int      `json:"burst_notifies"`
	ReadRate       float64  `json:"read_rate"`
	ReadFor        string   `json:"read_for"`
	Workers        int      `json:"worker_replicas"`
	NoopActivities string   `json:"noop_activities"`
	LocalInOrder   []string `json:"order_local_activities"`
	Reverted       []string `json:"reverted,omitempty"`
	Phases         []string `json:"phases"`

	// TemporalServer says which Temporal was measured (embedded or a
	// cluster of processes).
	TemporalServer string             `json:"temporal_server"`
	Temporal       devserver.Settings `json:"temporal"`
	Worker         map[string]string  `json:"worker"`
	ShopPool       map[string]int     `json:"shop_db_pool"`
}

func (r *run) settings(ctx context.Context) Settings {
	o := r.o
	s := Settings{
		DB: o.DB, Users: o.Users, Poll: o.Poll.String(), Expiry: o.Expiry, ExpiryTimeout: o.ExpiryTimeout.String(), ExpiryRate: o.ExpiryRate,
		Burst: o.Burst, ReadRate: o.ReadRate, ReadFor: o.ReadFor.String(), Workers: o.Workers,
		NoopActivities: noopKinds(o), Reverted: o.Revert, Phases: o.Phases,
		ShopPool: store.PoolSizes(o.DB),
	}
	if !o.reverted(TuningLocalActivities) {
		s.LocalInOrder = workflows.LocalActivities()
	}
	if o.Orders > 0 {
		s.Orders = o.Orders
	} else {
		s.Duration, s.Warmup = o.Duration.String(), o.Warmup.String()
	}
	s.TemporalServer = r.s.describeTemporal()
	if ts, err := r.s.ts.Settings(ctx); err == nil {
		s.Temporal = ts
	} else {
		s.Temporal = ts
		r.logf("temporal settings: %v", err)
	}
	s.Worker = workerSettings(workerOptions(o, r.s.cfg))
	return s
}

// workerSettings shows the options that differ from the SDK's defaults
// ("default" when none does).
func workerSettings(w sdkworker.Options) map[string]string {
	m := map[string]string{}
	set := func(k string, v int) {
		if v != 0 {
			m[k] = fmt.Sprint(v)
		}
	}
	set("max_concurrent_workflow_task_pollers", w.MaxConcurrentWorkflowTaskPollers)
	set("max_concurrent_activity_task_pollers", w.MaxConcurrentActivityTaskPollers)
	set("max_concurrent_workflow_task_execution_size", w.MaxConcurrentWorkflowTaskExecutionSize)
	set("max_concurrent_activity_execution_size", w.MaxConcurrentActivityExecutionSize)
	set("max_concurrent_local_activity_execution_size", w.MaxConcurrentLocalActivityExecutionSize)
	if w.WorkflowTaskPollerBehavior != nil {
		m["workflow_task_pollers"] = pollerBehavior(w.WorkflowTaskPollerBehavior)
	}
	if w.ActivityTaskPollerBehavior != nil {
		m["activity_task_pollers"] = pollerBehavior(w.ActivityTaskPollerBehavior)
	}
	if w.StickyScheduleToStartTimeout != 0 {
		m["sticky_schedule_to_start_timeout"] = w.StickyScheduleToStartTimeout.String()
	}
	if w.PreferredVersionProvider != nil {
		m["preferred_versions"] = workflows.ChangeLocalDB + ": DefaultVersion (every step a regular activity)"
	}
	if w.DisableEagerActivities {
		m["disable_eager_activities"] = "true"
	}
	if len(m) == 0 {
		m["options"] = "SDK defaults"
	}
	return m
}

// pollerBehavior names a poller behavior (its type is the SDK's own).
func pollerBehavior(b sdkworker.PollerBehavior) string {
	if strings.Contains(fmt.Sprintf("%T", b), "utoscaling") {
		return "autoscaling (SDK defaults)"
	}
	return fmt.Sprintf("%+v", b)
}

func machineInfo() Machine {
	m := Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryGB = (kb + 512*1024) / (1024 * 1024)
		}
	}
	return m
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "ordersaga bench — %d cores (GOMAXPROCS %d), %s, %s, %s\n", r.Machine.Cores, r.Machine.GOMAXPROCS, r.Machine.CPU, r.Machine.OS, r.Machine.Go)
	st := r.Settings
	size := fmt.Sprintf("%s window after %s warm-up", st.Duration, st.Warmup)
	if st.Orders > 0 {
		size = fmt.Sprintf("%d orders per phase", st.Orders)
	}
	reverted := "none"
	if len(st.Reverted) > 0 {
		reverted = strings.Join(st.Reverted, ",")
	}
	fmt.Fprintf(w, "settings: %s database, %d users, %s, poll %s, %d worker replica(s), %d history shards, no-op activities %s, tunings reverted: %s\n",
		st.DB, st.Users, size, st.Poll, st.Workers, st.Temporal.HistoryShards, st.NoopActivities, reverted)
	if len(st.LocalInOrder) > 0 {
		fmt.Fprintf(w, "          local activities in the order: %s\n", strings.Join(st.LocalInOrder, ", "))
	}
	if st.TemporalServer != "" {
		fmt.Fprintf(w, "temporal: %s\n", st.TemporalServer)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	lat := func(name string, l Latency) {
		row(name, fmt.Sprint(l.Count), f1(l.P50), f1(l.P95), f1(l.P99), f1(l.Max))
	}
	through := func(title string, t *Throughput) {
		fmt.Fprintf(w, "%s: %.1f per second (%d measured in %.2fs; %d started, %d completed, %d failed)\n",
			title, t.PerSecond, t.Measured, t.WindowSeconds, t.Started, t.Completed, t.Failed)
		row("step", "n", "p50 ms", "p95 ms", "p99 ms", "max ms")
		for _, s := range t.StepOrder {
			lat(s, t.Steps[s])
		}
		tw.Flush()
		for _, k := range failureKinds(t.Failures) {
			fmt.Fprintf(w, "  failed: %d × %s\n", t.Failures[k], k)
		}
		fmt.Fprintln(w)
	}
	if r.Noop != nil {
		through("no-op workflow of the same shape (Temporal ceiling)", r.Noop)
	}
	if r.Saga != nil {
		through("paid orders end to end through the API", r.Saga)
	}
	if r.Saga != nil && r.Noop != nil {
		fmt.Fprintf(w, "ours / no-op: %.2f\n\n", r.Ratio)
	}
	if b := r.Notify; b != nil {
		fmt.Fprintf(w, "notify burst: %d notifies at once, %d answered 2xx, %d failed; all PAID %.2fs after the release (%d not)\n",
			b.Notifies, b.Answered, b.Failed, b.AllPaidSeconds, b.NotPaid)
		row("", "n", "p50 ms", "p95 ms", "p99 ms", "max ms")
		lat("answer", b.Answer)
		tw.Flush()
		for _, k := range failureKinds(b.Failures) {
			fmt.Fprintf(w, "  failed: %d × %s\n", b.Failures[k], k)
		}
		fmt.Fprintln(w)
	}
	if x := r.Reads; x != nil {
		fmt.Fprintf(w, "order reads: %.0f/s asked, %.1f/s sent for %.1fs: %d sent, %d ok, %d errors\n",
			x.Rate, x.AchievedRate, x.Seconds, x.Sent, x.OK, x.Errors)
		row("", "n", "p50 ms", "p95 ms", "p99 ms", "max ms")
		lat("GET /v1/orders/:no", x.Latency)
		tw.Flush()
		for _, k := range failureKinds(x.Failures) {
			fmt.Fprintf(w, "  failed: %d × %s\n", x.Failures[k], k)
		}
		fmt.Fprintln(w)
	}
	if e := r.Expiry; e != nil {
		rate := 0.0
		if e.CreateSeconds > 0 {
			rate = float64(e.Orders) / e.CreateSeconds
		}
		fmt.Fprintf(w, "expiry: %d unpaid orders (pay timeout %s, placed in %.1fs at %.0f/s — their deadlines fall due as fast —, %d pending at the first deadline): %d closed, %d not\n",
			e.Orders, e.PayTimeout, e.CreateSeconds, rate, e.PendingAtFirstDeadline, e.Closed, e.NotClosed)
		row("", "n", "p50 ms", "p95 ms", "p99 ms", "max ms")
		lat("closed after deadline", e.Late)
		tw.Flush()
		for _, k := range failureKinds(e.Failures) {
			fmt.Fprintf(w, "  failed: %d × %s\n", e.Failures[k], k)
		}
		fmt.Fprintln(w)
	}
	if x := r.Reconcile; x != nil {
		if x.Error != "" {
			fmt.Fprintf(w, "reconcile: %d trades: FAILED: %s\n\n", x.Trades, x.Error)
		} else {
			fmt.Fprintf(w, "reconcile: a day of %d trades (%d refunded by the shop, %d by hand at the merchant platform), its bill %d rows, %.1f MB uncompressed\n",
				x.Trades, x.Refunds, x.HandRefunds, x.BillRows, float64(x.BillBytes)/(1<<20))
			fmt.Fprintf(w, "  reported in %.1fs from the request (the run itself %.1fs); the shop's side took %.1fs to write beforehand\n",
				x.Seconds, x.RunSeconds, x.ShopSetupSecond)
			fmt.Fprintf(w, "  matched %d payments and %d refunds; drift %d %v (the refunds by hand)\n",
				x.MatchedPayments, x.MatchedRefunds, x.Drift, x.DriftByKind)
			fmt.Fprintf(w, "  live heap %.1f MB before, %.1f MB at its peak; process resident peak %.0f MB (the whole stack is this process)\n\n",
				x.HeapBeforeMB, x.HeapPeakMB, x.RSSPeakMB)
		}
	}
	r.writeCPU(w)
	fmt.Fprintf(w, "total %.1fs\n", r.TotalSeconds)
	if r.Dir != "" {
		fmt.Fprintf(w, "run directory kept: %s\n", r.Dir)
	}
	return nil
}

func f1(x float64) string { return fmt.Sprintf("%.1f", x) }

// Check says whether the report is well formed and its counts add up (no
// timing is judged: that is for people, on a quiet machine).
func (r *Report) Check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	lat := func(where string, l Latency) {
		if l.Count > 0 && !(l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max) {
			bad("%s: percentiles out of order: %+v", where, l)
		}
		if l.Count > 0 && (l.Mean > l.Max || l.P50 < 0) {
			bad("%s: mean or p50 out of range: %+v", where, l)
		}
	}
	through := func(name string, t *Throughput) {
		if t.Started != t.Completed+t.Failed {
			bad("%s: started %d != completed %d + failed %d", name, t.Started, t.Completed, t.Failed)
		}
		if t.Measured > t.Completed {
			bad("%s: measured %d > completed %d", name, t.Measured, t.Completed)
		}
		n := 0
		for _, c := range t.Failures {
			n += c
		}
		if n != t.Failed {
			bad("%s: failures add up to %d, failed is %d", name, n, t.Failed)
		}
		for _, s := range t.StepOrder {
			l, ok := t.Steps[s]
			if !ok && t.Measured > 0 {
				bad("%s: no latencies of step %s", name, s)
			}
			if l.Count != t.Measured {
				bad("%s: step %s has %d latencies for %d measured orders", name, s, l.Count, t.Measured)
			}
			lat(name+" "+s, l)
		}
		if len(t.Steps) != len(t.StepOrder) && t.Measured > 0 {
			bad("%s: %d steps measured, %d listed", name, len(t.Steps), len(t.StepOrder))
		}
		if t.WindowSeconds < 0 || (t.Measured > 0 && t.WindowSeconds == 0) {
			bad("%s: window %.3fs for %d orders", name, t.WindowSeconds, t.Measured)
		}
	}
	if r.Noop != nil {
		through("noop", r.Noop)
	}
	if r.Saga != nil {
		through("saga", r.Saga)
	}
	if b := r.Notify; b != nil {
		if b.Notifies != b.Answered+b.Failed || b.Answer.Count != b.Answered {
			bad("notify: %d notifies != %d answered + %d failed (answers timed: %d)", b.Notifies, b.Answered, b.Failed, b.Answer.Count)
		}
		if b.NotPaid > b.Answered {
			bad("notify: %d not paid of %d answered", b.NotPaid, b.Answered)
		}
		lat("notify", b.Answer)
	}
	if x := r.Reads; x != nil {
		if x.Sent != x.OK+x.Errors || x.Latency.Count != x.OK {
			bad("reads: %d sent != %d ok + %d errors (latencies: %d)", x.Sent, x.OK, x.Errors, x.Latency.Count)
		}
		lat("reads", x.Latency)
	}
	if e := r.Expiry; e != nil {
		if e.Orders != e.Closed+e.NotClosed || e.Late.Count != e.Closed {
			bad("expiry: %d orders != %d closed + %d not (latenesses: %d)", e.Orders, e.Closed, e.NotClosed, e.Late.Count)
		}
		if e.PendingAtFirstDeadline > e.Orders {
			bad("expiry: %d pending of %d", e.PendingAtFirstDeadline, e.Orders)
		}
		lat("expiry", e.Late)
	}
	if x := r.Reconcile; x != nil {
		switch {
		case x.Error != "":
			bad("reconcile: %s", x.Error)
		case x.Drift != int64(x.HandRefunds) || x.DriftByKind["REFUND_NOT_IN_SHOP"] != int64(x.HandRefunds):
			bad("reconcile: drift %d %v, want the %d refunds made by hand", x.Drift, x.DriftByKind, x.HandRefunds)
		case x.MatchedPayments < int64(x.Trades) || x.MatchedRefunds < int64(x.Refunds) || x.BillRows < int64(x.Trades+x.Refunds+x.HandRefunds):
			bad("reconcile: matched %d payments and %d refunds of %d rows, for %d trades and %d refunds", x.MatchedPayments, x.MatchedRefunds, x.BillRows, x.Trades, x.Refunds)
		case x.HeapPeakMB < x.HeapBeforeMB:
			bad("reconcile: heap peak %.1f below its start %.1f", x.HeapPeakMB, x.HeapBeforeMB)
		}
	}
	if r.Machine.Cores <= 0 || r.Settings.Users <= 0 || r.Settings.Temporal.HistoryShards <= 0 {
		bad("machine or settings missing: %+v %+v", r.Machine, r.Settings)
	}
	return errors.Join(errs...)
}
