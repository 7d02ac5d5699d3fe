package chaos_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ordersaga/internal/chaos"
	"ordersaga/internal/pgserver/pgservertest"
	"ordersaga/internal/testenv"
)

// The chaos run starts this test binary again as the API and the workers:
// with RoleEnv set it runs as that process instead of running tests.
func TestMain(m *testing.M) {
	if role := os.Getenv(chaos.RoleEnv); role != "" {
		os.Exit(chaos.RunRole(role))
	}
	os.Exit(m.Run())
}

// TestChaos is the CI-sized chaos run: a few hundred orders through the API
// and two worker processes, every fault kind on, then every invariant.
// CHAOS_ORDERS and CHAOS_SEED override its size and seed (a failure prints
// the seed).
func TestChaos(t *testing.T) {
	pgservertest.Need(t)
	orders := 240
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
	log := &logWriter{t: t}
	t.Cleanup(log.close)
	r, err := chaos.Run(context.Background(), chaos.Options{
		Orders:           orders,
		Concurrency:      40,
		Seed:             seed,
		PayTimeout:       6 * time.Second,
		AutoConfirm:      3 * time.Second,
		WorkerKills:      4,
		APIRestarts:      2,
		PostgresRestarts: 1,
		MaxDrive:         4 * time.Minute,
		SettleTimeout:    3 * time.Minute,
		Timeout:          8 * time.Minute,
		Spawn:            testenv.SpawnSelf(t, chaos.RoleEnv),
		Log:              log,
	})
	if err != nil {
		t.Fatalf("chaos run: %v", err)
	}
	var out bytes.Buffer
	r.WriteText(&out)
	t.Log(out.String())
	if !r.OK() {
		t.Fatalf("chaos run failed (seed %d; rerun with CHAOS_SEED=%d): %d invariant breaks, %d stuck, settled %v",
			r.Seed, r.Seed, len(r.Breaks), len(r.Stuck), r.Settled)
	}
	// The run must have done what it claims to test: every fault kind
	// happened — counted from what the simulator did (notifies dropped,
	// duplicated, delayed, held, tampered; endpoint faults used up) and from
	// the restarts that took place — not merely asked for, so a harness that
	// silently stops injecting fails here.
	for _, kind := range chaos.AllFaults {
		if r.Faults[kind] == 0 {
			t.Errorf("fault %s never happened: injected %v (asked of the simulator %v)", kind, r.Faults, r.FaultsAsked)
		}
	}
	if want := (chaos.Restarts{WorkerKills: 4, APIRestarts: 2, PostgresRestarts: 1}); r.Restarts.WorkerKills != want.WorkerKills ||
		r.Restarts.APIRestarts != want.APIRestarts || r.Restarts.PostgresRestarts != want.PostgresRestarts || len(r.Restarts.Failed) > 0 {
		t.Errorf("restarts %+v, want %+v and none failed", r.Restarts, want)
	}
	if r.Money.Transactions == 0 || r.Money.RefundedFen == 0 {
		t.Errorf("no payments or no refunds: %+v", r.Money)
	}
}

func TestParseFaults(t *testing.T) {
	all, err := chaos.ParseFaults("all")
	if err != nil || len(all) != len(chaos.AllFaults) {
		t.Fatalf("all: %v %v", all, err)
	}
	none, err := chaos.ParseFaults("none")
	if err != nil || len(none) != 0 {
		t.Fatalf("none: %v %v", none, err)
	}
	some, err := chaos.ParseFaults("all,-postgres_restart,-worker_kill")
	if err != nil || len(some) != len(chaos.AllFaults)-2 || strings.Contains(strings.Join(some, ","), "postgres_restart") {
		t.Fatalf("all minus two: %v %v", some, err)
	}
	one, err := chaos.ParseFaults("notify_drop")
	if err != nil || len(one) != 1 {
		t.Fatalf("one: %v %v", one, err)
	}
	if _, err := chaos.ParseFaults("notify_dorp"); err == nil || !strings.Contains(err.Error(), "notify_dorp") {
		t.Fatalf("a misspelt kind: %v", err)
	}
}

// logWriter sends the run's progress lines to the test log.
type logWriter struct {
	mu     sync.Mutex
	t      *testing.T
	buf    []byte
	closed bool
}

func (w *logWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

func (w *logWriter) Write(p []byte) (int, error) {
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
