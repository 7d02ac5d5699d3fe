package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/bench"
	"ordersaga/internal/pgserver"
	"ordersaga/internal/pgserver/pgservertest"
)

// A tiny run of every phase on the embedded database: the harness runs and
// its report is well formed and adds up. Nothing here judges a time — the
// CI machine is shared, and timings are for people (docs/BENCHMARKS.md).
func TestTinyRunReportsEveryPhaseAndItsCountsAddUp(t *testing.T) {
	r := tinyRun(t, bench.Options{Temporal: bench.TemporalEmbedded, DB: bench.DBSQLite})
	if r.Settings.DB != bench.DBSQLite {
		t.Errorf("settings %+v", r.Settings)
	}
}

// The same tiny run of every phase on a cluster — the official Temporal
// server as separate processes on the shop's PostgreSQL server, as
// `ordersaga cluster` runs it — with the CPU of each of its processes.
func TestTinyRunOnAClusterReportsEveryPhase(t *testing.T) {
	pgservertest.Need(t)
	r := tinyRun(t, bench.Options{Temporal: bench.TemporalCluster, DB: bench.DBPostgres})
	if !strings.HasPrefix(r.Settings.TemporalServer, "cluster: official temporal-server") {
		t.Errorf("temporal server %q", r.Settings.TemporalServer)
	}
	for _, phase := range bench.AllPhases {
		for _, group := range []string{"temporal frontend", "temporal history-1", "temporal history-2", "temporal matching", "postgres"} {
			if _, ok := r.CPU[phase][group]; !ok {
				t.Errorf("phase %s: no CPU of %s: %v", phase, group, r.CPU[phase])
			}
		}
	}
}

// tinyRun runs every phase with a handful of orders and checks the report.
func tinyRun(t *testing.T, o bench.Options) *bench.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var log bytes.Buffer
	o.Users, o.Orders, o.Expiry, o.ExpiryTimeout = 2, 3, 3, time.Second
	o.Burst, o.ReadRate, o.ReadFor, o.Reconcile, o.Log = 4, 40, 250*time.Millisecond, 200, &log
	r, err := bench.Run(ctx, o)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	if err := r.Check(); err != nil {
		t.Fatalf("report does not add up: %v", err)
	}
	for name, tp := range map[string]*bench.Throughput{"no-op": r.Noop, "saga": r.Saga} {
		if tp == nil {
			t.Fatalf("no %s result", name)
		}
		// Count mode: every order started is measured, none failed (a
		// failure here is a broken stack, not a slow one).
		if tp.Started != 3 || tp.Completed != 3 || tp.Measured != 3 || tp.Failed != 0 {
			t.Errorf("%s: %d started, %d completed, %d measured, %d failed %v; want 3, 3, 3, 0",
				name, tp.Started, tp.Completed, tp.Measured, tp.Failed, tp.Failures)
		}
	}
	if r.Notify == nil || r.Notify.Notifies != 4 || r.Notify.Answered != 4 || r.Notify.NotPaid != 0 {
		t.Errorf("notify burst: %+v; want 4 notifies answered and paid", r.Notify)
	}
	if r.Reads == nil || r.Reads.Sent != 10 || r.Reads.OK != 10 {
		t.Errorf("reads: %+v; want 10 sent, 10 ok", r.Reads)
	}
	if r.Expiry == nil || r.Expiry.Closed != 3 || r.Expiry.PendingAtFirstDeadline != 3 {
		t.Errorf("expiry: %+v; want 3 pending, 3 closed", r.Expiry)
	}
	if x := r.Reconcile; x == nil || x.Error != "" || x.Trades != 200 || x.Drift != 10 || x.MatchedRefunds < 20 {
		t.Errorf("reconcile: %+v; want 200 trades, the 10 refunds made by hand as the only drift", x)
	}
	if r.Ratio <= 0 || r.Machine.Cores <= 0 || r.Settings.Temporal.HistoryShards <= 0 || r.Settings.DB != o.DB {
		t.Errorf("ratio %v, machine %+v, settings %+v", r.Ratio, r.Machine, r.Settings)
	}

	// The JSON is the report, whole; the table names every phase.
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back bench.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not read back: %v", err)
	}
	if err := back.Check(); err != nil || back.Saga.Measured != r.Saga.Measured || back.Expiry.Late != r.Expiry.Late {
		t.Errorf("JSON read back differs: %v", err)
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cores", "no-op workflow", "paid orders end to end", "ours / no-op",
		"notify_to_paid", "notify burst", "GET /v1/orders/:no", "closed after deadline", "reconcile: a day of 200 trades", "CPU during each phase"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	for _, phase := range bench.AllPhases {
		if _, ok := r.CPU[phase]["bench process"]; !ok && o.Temporal == bench.TemporalCluster {
			t.Errorf("phase %s: no CPU of the bench process: %v", phase, r.CPU[phase])
		}
		if len(r.CPU[phase]) == 0 {
			t.Errorf("phase %s: no CPU figures", phase)
		}
	}
	t.Logf("\n%s", table.String())
	return r
}

// Check catches a report whose counts do not add up.
func TestCheckRefusesCountsThatDoNotAddUp(t *testing.T) {
	good := bench.Report{
		Machine:  bench.Machine{Cores: 2},
		Settings: bench.Settings{Users: 1},
		Saga: &bench.Throughput{Started: 2, Completed: 1, Failed: 1, Measured: 1, WindowSeconds: 1,
			Failures: map[string]int{"pay: HTTP 503": 1}, StepOrder: []string{"create"},
			Steps: map[string]bench.Latency{"create": {Count: 1, P50: 1, P95: 1, P99: 1, Max: 1, Mean: 1}}},
	}
	good.Settings.Temporal.HistoryShards = 1
	if err := good.Check(); err != nil {
		t.Fatalf("a consistent report refused: %v", err)
	}
	for name, spoil := range map[string]func(r *bench.Report){
		"started":  func(r *bench.Report) { r.Saga.Started = 3 },
		"failures": func(r *bench.Report) { r.Saga.Failures = nil },
		"step count": func(r *bench.Report) {
			r.Saga.Steps["create"] = bench.Latency{Count: 2, P50: 1, P95: 1, P99: 1, Max: 1}
		},
		"percentiles": func(r *bench.Report) {
			r.Saga.Steps["create"] = bench.Latency{Count: 1, P50: 2, P95: 1, P99: 1, Max: 1}
		},
		"reads":  func(r *bench.Report) { r.Reads = &bench.Reads{Sent: 3, OK: 1, Errors: 1} },
		"expiry": func(r *bench.Report) { r.Expiry = &bench.Expiry{Orders: 2, Closed: 2} },
		"burst":  func(r *bench.Report) { r.Notify = &bench.Burst{Notifies: 2, Answered: 1} },
		"reconcile drift": func(r *bench.Report) {
			r.Reconcile = &bench.Reconcile{Trades: 10, Refunds: 1, HandRefunds: 1, BillRows: 12, MatchedPayments: 10, MatchedRefunds: 1}
		},
		"reconcile failed": func(r *bench.Report) { r.Reconcile = &bench.Reconcile{Trades: 10, Error: "no report"} },
	} {
		r := good
		s := *good.Saga
		s.Steps = map[string]bench.Latency{"create": good.Saga.Steps["create"]}
		s.Failures = map[string]int{"pay: HTTP 503": 1}
		r.Saga = &s
		spoil(&r)
		if err := r.Check(); err == nil {
			t.Errorf("%s: an inconsistent report passed", name)
		}
	}
}

func TestParsePhases(t *testing.T) {
	if p, err := bench.ParsePhases("all"); err != nil || len(p) != len(bench.AllPhases) {
		t.Fatalf("all: %v %v", p, err)
	}
	if p, err := bench.ParsePhases("saga, noop,saga"); err != nil || strings.Join(p, ",") != "saga,noop" {
		t.Fatalf("list: %v %v", p, err)
	}
	if _, err := bench.ParsePhases("saga,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown phase: %v", err)
	}
}

// BenchmarkPaidOrders plays b.N paid orders through the API and as many
// no-op orders, 8 users at once, and reports both rates and their ratio
// (PostgreSQL of its own when its binaries are installed):
//
//	go test -run '^$' -bench PaidOrders -benchtime 400x ./internal/bench
func BenchmarkPaidOrders(b *testing.B) {
	db := bench.DBSQLite
	if pgserver.Available() {
		db = bench.DBPostgres
	}
	r, err := bench.Run(context.Background(), bench.Options{
		DB: db, Users: 8, Orders: b.N, Phases: []string{bench.PhaseNoop, bench.PhaseSaga},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Check(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.Saga.PerSecond, "orders/s")
	b.ReportMetric(r.Noop.PerSecond, "noop/s")
	b.ReportMetric(r.Ratio, "ratio")
	b.ReportMetric(r.Saga.Steps[bench.StepTotal].P50, "p50-ms")
}

func TestParseTunings(t *testing.T) {
	if r, err := bench.ParseTunings(""); err != nil || r != nil {
		t.Fatalf("empty: %v %v", r, err)
	}
	if r, err := bench.ParseTunings("all"); err != nil || len(r) != len(bench.Tunings) {
		t.Fatalf("all: %v %v", r, err)
	}
	if r, err := bench.ParseTunings("gc, pollers,gc"); err != nil || strings.Join(r, ",") != "gc,pollers" {
		t.Fatalf("list: %v %v", r, err)
	}
	if _, err := bench.ParseTunings("gc,turbo"); err == nil || !strings.Contains(err.Error(), `tuning "turbo"`) {
		t.Fatalf("unknown tuning: %v", err)
	}
}

// The embedded server's tunings cannot be reverted on a cluster, which has
// none of them: the run is refused before anything starts.
func TestEmbeddedTuningsCannotBeRevertedOnACluster(t *testing.T) {
	_, err := bench.Run(context.Background(), bench.Options{Temporal: bench.TemporalCluster, Revert: []string{"sa-cache"}})
	if err == nil || !strings.Contains(err.Error(), "sa-cache") || !strings.Contains(err.Error(), "cluster") {
		t.Fatalf("revert sa-cache on a cluster: %v", err)
	}
	if _, err := bench.Run(context.Background(), bench.Options{Temporal: "k8s"}); err == nil || !strings.Contains(err.Error(), `"k8s"`) {
		t.Fatalf("an unknown Temporal: %v", err)
	}
}
