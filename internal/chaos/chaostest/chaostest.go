// Package chaostest runs the CI-sized chaos runs of internal/chaos (on the
// embedded server) and internal/cluster (on a cluster) the same way: their
// size and seed from the environment, their progress in the test log, and
// the same verdict on the report.
package chaostest

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"testing"

	"ordersaga/internal/chaos"
)

// Size is the run's size and seed: orders unless CHAOS_ORDERS says
// otherwise, the seed of CHAOS_SEED (0 = from the clock; a failure prints
// the seed to rerun with).
func Size(t testing.TB, orders int) (int, int64) {
	t.Helper()
	if v := os.Getenv("CHAOS_ORDERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("CHAOS_ORDERS=%q", v)
		}
		orders = n
	}
	var seed int64
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q", v)
		}
		seed = n
	}
	return orders, seed
}

// Log is a writer for Options.Log that sends the run's progress lines to the
// test log until the test ends.
func Log(t testing.TB) *LogWriter {
	w := &LogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.closed = true
	})
	return w
}

// LogWriter turns written lines into test log lines.
type LogWriter struct {
	mu     sync.Mutex
	t      testing.TB
	buf    []byte
	closed bool
}

// Logf logs one line (for a harness's Logf option).
func (w *LogWriter) Logf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Logf(format, args...)
	}
}

func (w *LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// Check logs the report and fails the test unless the run passed, did what
// it claims to test — every fault kind of kinds happened, counted from what
// the simulator did (notifies dropped, duplicated, delayed, held, tampered;
// endpoint faults used up) and from the restarts that took place, not
// merely asked for, so a harness that silently stops injecting fails here —
// made exactly the restarts of want (unexpected exits aside) with none
// failed, and moved money both ways.
func Check(t testing.TB, r *chaos.Report, kinds []string, want chaos.Restarts) {
	t.Helper()
	var out bytes.Buffer
	r.WriteText(&out)
	t.Log(out.String())
	if !r.OK() {
		t.Fatalf("chaos run failed (seed %d; rerun with CHAOS_SEED=%d): %d invariant breaks, %d stuck, settled %v",
			r.Seed, r.Seed, len(r.Breaks), len(r.Stuck), r.Settled)
	}
	for _, kind := range kinds {
		if r.Faults[kind] == 0 {
			t.Errorf("fault %s never happened: injected %v (asked of the simulator %v)", kind, r.Faults, r.FaultsAsked)
		}
	}
	// So did every part refund behaviour (issue 18), counted from what
	// WeChat returned, not from what the payers asked.
	for _, seen := range chaos.Seen {
		if r.PartRefunds[seen] == 0 {
			t.Errorf("part refunds: %s never seen (%v)", seen, r.PartRefunds)
		}
	}
	got := r.Restarts
	got.UnexpectedExits, got.TemporalUnexpectedExits, got.Failed = 0, 0, nil
	if len(r.Restarts.Failed) > 0 || got.WorkerKills != want.WorkerKills || got.APIRestarts != want.APIRestarts ||
		got.PostgresRestarts != want.PostgresRestarts || got.HistoryKills != want.HistoryKills ||
		got.FrontendRestarts != want.FrontendRestarts || got.MatchingKills != want.MatchingKills ||
		got.TemporalPostgresRestarts != want.TemporalPostgresRestarts {
		t.Errorf("restarts %+v, want %+v and none failed", r.Restarts, want)
	}
	// The day (or days) of the run were reconciled with WeChat's bill (a
	// day with drift is a break above).
	if len(r.Reconciliation) == 0 || r.Reconciliation[0].BillRows == 0 {
		t.Errorf("the run's days were not reconciled: %+v", r.Reconciliation)
	}
	if r.Money.Transactions == 0 || r.Money.RefundedFen == 0 {
		t.Errorf("no payments or no refunds: %+v", r.Money)
	}
}
