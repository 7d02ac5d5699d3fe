package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"ordersaga/internal/config"
)

// RoleEnv names the environment variable a test binary reads in TestMain to
// run as a process of the stack (see RunRole) instead of running its tests.
const RoleEnv = "ORDERSAGA_CHAOS_ROLE"

// proc is one process of the stack (the API or a worker), supervised: when it
// exits without being told to, it is started again after a moment — as an
// orchestrator would — and the exit is counted.
type proc struct {
	name     string // api, worker-1, worker-2
	role     string
	settings map[string]string // its configuration (config.Vars names)
	healthz  string            // its /readyz
	spawn    Spawn
	logPath  string
	h        *harness

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	intended   bool // the harness stopped it: do not restart by itself
	stopped    bool // the run is over
	starts     int
	unexpected int
}

// buildEnv is the process environment: the harness's own, without any of the
// stack's settings, plus the settings given — every one of them a variable
// of config.Vars(), as in production.
func buildEnv(settings map[string]string, extra []string) ([]string, error) {
	known := map[string]bool{}
	for _, v := range config.Vars() {
		known[v.Name] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if known[name] || name == RoleEnv {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, extra...)
	names := make([]string, 0, len(settings))
	for k := range settings {
		if !known[k] {
			return nil, fmt.Errorf("chaos: %s is not a configuration variable (config.Vars)", k)
		}
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		env = append(env, k+"="+settings[k])
	}
	return env, nil
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return errors.New("chaos: run is over")
	}
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return nil // running
		}
	}
	path, args, extra := p.spawn(p.role)
	env, err := buildEnv(p.settings, extra)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(logf, "=== chaos: start #%d of %s at %s\n", p.starts, p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (a Ctrl-C at the terminal reaches the harness
	// only, which stops the stack in order), and killed with the harness.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("chaos: start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.intended = cmd, done, false
	go p.wait(cmd, done, logf)
	return nil
}

func (p *proc) wait(cmd *exec.Cmd, done chan struct{}, logf *os.File) {
	err := cmd.Wait()
	fmt.Fprintf(logf, "=== chaos: %s exited at %s: %v\n", p.name, time.Now().Format(time.RFC3339Nano), err)
	logf.Close()
	close(done)
	p.mu.Lock()
	restart := !p.intended && !p.stopped
	if restart {
		p.unexpected++
	}
	p.mu.Unlock()
	if restart {
		p.h.logf("%s exited by itself (%v); starting it again", p.name, err)
		go func() {
			time.Sleep(time.Second)
			if err := p.start(); err != nil {
				p.h.logf("restart %s: %v", p.name, err)
			}
		}()
	}
}

// kill stops the process with sig and waits for it to exit (SIGKILL after
// grace). It is not restarted by itself: call start. It reports whether
// there was a running process to stop (a restart fault counts only then).
func (p *proc) kill(sig syscall.Signal, grace time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.intended = true
	p.mu.Unlock()
	if cmd == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig) // the group: anything it started too
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	return true
}

// shutdown stops the process for good.
func (p *proc) shutdown() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.kill(syscall.SIGTERM, 10*time.Second)
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitReady waits until the process answers /readyz (database and Temporal
// reachable).
func (p *proc) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.healthz, nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: %s not ready after %v (%s); log: %s", p.name, within, last, p.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// runOnce runs a process of the stack to completion (migrate).
func runOnce(ctx context.Context, spawn Spawn, role string, settings map[string]string, logDir string) error {
	path, args, extra := spawn(role)
	env, err := buildEnv(settings, extra)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(logDir, role+".log"), out, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: %s: %w\n%s", role, err, out)
	}
	return nil
}
