package chaos

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestartCountsOnlyRestartsThatHappened: a worker kill is counted when
// the worker went down and came back ready; one whose worker could not be
// started again, or was not running to begin with, is reported as failed
// and left out of the count (the report must not claim faults the run never
// went through).
func TestRestartCountsOnlyRestartsThatHappened(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(ready.Close)
	h := &harness{opts: Options{Log: io.Discard}, start: time.Now()}
	spawnSleep := func(string) (string, []string, []string) { return "/bin/sleep", []string{"600"}, nil }
	w := &proc{name: "worker-1", role: RoleWorker, settings: map[string]string{}, healthz: ready.URL,
		spawn: spawnSleep, logPath: filepath.Join(t.TempDir(), "worker.log"), h: h}
	h.workers = []*proc{w}
	t.Cleanup(w.shutdown)
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	pf := &processFaults{h: h, rng: rand.New(rand.NewPCG(1, 2))}
	ctx := context.Background()

	pf.do(ctx, FaultWorkerKill)
	if got := h.restarts.get()[FaultWorkerKill]; got != 1 || len(h.restarts.failures()) != 0 || !w.running() {
		t.Fatalf("after a kill and restart: counted %d, failures %v, running %v; want 1, none, true",
			got, h.restarts.failures(), w.running())
	}

	// The worker cannot be started again: the kill happened, the restart did not.
	w.spawn = func(string) (string, []string, []string) { return "/nonexistent/ordersaga", nil, nil }
	pf.do(ctx, FaultWorkerKill)
	// Now nothing runs: there is nothing to kill.
	pf.do(ctx, FaultWorkerKill)
	if got := h.restarts.get()[FaultWorkerKill]; got != 1 {
		t.Errorf("counted %d worker kills after two that did not restart a worker; want 1", got)
	}
	f := h.restarts.failures()
	if len(f) != 2 || !strings.Contains(f[0], "start worker-1") || !strings.Contains(f[1], "not running") {
		t.Errorf("failures %q; want the failed start, then the kill with nothing running", f)
	}
}
