package chaos_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/chaos"
	"ordersaga/internal/chaos/chaostest"
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
	orders, seed := chaostest.Size(t, 240)
	want := chaos.Restarts{WorkerKills: 4, APIRestarts: 2, PostgresRestarts: 1}
	r, err := chaos.Run(context.Background(), chaos.Options{
		Orders:           orders,
		Concurrency:      40,
		Seed:             seed,
		PayTimeout:       6 * time.Second,
		AutoConfirm:      3 * time.Second,
		WorkerKills:      want.WorkerKills,
		APIRestarts:      want.APIRestarts,
		PostgresRestarts: want.PostgresRestarts,
		MaxDrive:         4 * time.Minute,
		SettleTimeout:    3 * time.Minute,
		Timeout:          8 * time.Minute,
		Spawn:            testenv.SpawnSelf(t, chaos.RoleEnv),
		Log:              chaostest.Log(t),
	})
	if err != nil {
		t.Fatalf("chaos run: %v", err)
	}
	chaostest.Check(t, r, chaos.AllFaults, want)
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
