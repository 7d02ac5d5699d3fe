package supervise_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ordersaga/internal/supervise"
)

// waitFor polls cond for up to a minute (the machine is shared: no timing
// is asserted, only that it happens).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sh(script string) func() (*exec.Cmd, error) {
	return func() (*exec.Cmd, error) { return exec.Command("/bin/sh", "-c", script), nil }
}

// A process that exits by itself is counted and started again, as an
// orchestrator would; its log says each start and exit.
func TestProcessThatExitsByItselfIsCountedAndStartedAgain(t *testing.T) {
	log := filepath.Join(t.TempDir(), "p.log")
	exits := make(chan error, 10)
	p := &supervise.Process{Name: "flaky", LogPath: log, Command: sh("echo hello; exit 3"),
		Restart: true, RestartDelay: 10 * time.Millisecond, OnExit: func(err error) { exits <- err }}
	t.Cleanup(func() { p.Shutdown(time.Second) })
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a third start", func() bool { return p.Starts() >= 3 })
	if err := <-exits; err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("OnExit told %v; want exit status 3", err)
	}
	if p.Unexpected() < 2 {
		t.Errorf("%d unexpected exits counted after %d starts", p.Unexpected(), p.Starts())
	}
	b, _ := os.ReadFile(log)
	for _, want := range []string{"=== start #1 of flaky", "hello", "=== flaky exited", "exit status 3", "=== start #2 of flaky"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log lacks %q:\n%s", want, b)
		}
	}
}

// A process the harness kills is not an unexpected exit and stays down
// until started; after Shutdown it never starts again.
func TestKillIsNotAnExitByItselfAndShutdownIsForGood(t *testing.T) {
	p := &supervise.Process{Name: "sleeper", LogPath: filepath.Join(t.TempDir(), "p.log"), Command: sh("sleep 600"),
		Restart: true, RestartDelay: 10 * time.Millisecond}
	if p.Kill(syscall.SIGKILL, 0) {
		t.Error("Kill of a process never started reported a process stopped")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	pid := p.PID()
	if !p.Running() || pid == 0 {
		t.Fatalf("running %v, pid %d after Start", p.Running(), pid)
	}
	if !p.Kill(syscall.SIGKILL, 0) {
		t.Fatal("Kill of a running process reported nothing stopped")
	}
	<-p.Exited()
	time.Sleep(100 * time.Millisecond) // a restart, if one were wrongly made, would have begun
	if p.Running() || p.Unexpected() != 0 || p.Starts() != 1 {
		t.Errorf("after Kill: running %v, %d unexpected exits, %d starts; want down, 0, 1", p.Running(), p.Unexpected(), p.Starts())
	}
	if err := p.Start(); err != nil || !p.Running() || p.PID() == pid {
		t.Fatalf("start again: %v, running %v, pid %d (was %d)", err, p.Running(), p.PID(), pid)
	}
	p.Shutdown(5 * time.Second)
	if p.Running() {
		t.Error("running after Shutdown")
	}
	if err := p.Start(); err != supervise.ErrOver {
		t.Errorf("Start after Shutdown: %v; want ErrOver", err)
	}
}

// Kill reaches the process's whole group: what it started dies with it.
func TestKillStopsWhatTheProcessStarted(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	p := &supervise.Process{Name: "parent", LogPath: filepath.Join(t.TempDir(), "p.log"),
		Command: sh("sleep 600 & echo $! > " + pidFile + "; wait")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	var child string
	waitFor(t, "the child's pid", func() bool {
		b, _ := os.ReadFile(pidFile)
		child = strings.TrimSpace(string(b))
		return child != ""
	})
	p.Kill(syscall.SIGTERM, 5*time.Second)
	waitFor(t, "the child gone", func() bool {
		_, err := os.Stat("/proc/" + child)
		return err != nil
	})
}
