package chaos

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"ordersaga/internal/supervise"
)

// RoleEnv names the environment variable a test binary reads in TestMain to
// run as a process of the stack (see RunRole) instead of running its tests.
const RoleEnv = "ORDERSAGA_CHAOS_ROLE"

// proc is one process of the stack (an API or a worker), supervised: when
// it exits without being told to, it is started again after a moment — as
// an orchestrator would — and the exit is counted.
type proc struct {
	name     string // api-1, worker-1, …
	role     string
	settings map[string]string // its configuration (config.Vars names)
	healthz  string            // its /readyz
	spawn    Spawn
	logPath  string
	h        *harness

	once sync.Once
	sup  *supervise.Process
}

// process is the supervised process, made at the first use.
func (p *proc) process() *supervise.Process {
	p.once.Do(func() {
		p.sup = &supervise.Process{
			Name:    p.name,
			LogPath: p.logPath,
			Command: func() (*exec.Cmd, error) {
				return p.spawn.Command(p.role, p.settings)
			},
			Restart:      true,
			RestartDelay: time.Second,
			OnExit: func(err error) {
				p.h.logf("%s exited by itself (%v); starting it again", p.name, err)
			},
		}
	})
	return p.sup
}

func (p *proc) start() error { return p.process().Start() }

// kill stops the process with sig and waits for it to exit (SIGKILL after
// grace). It is not restarted by itself: call start. It reports whether
// there was a running process to stop (a restart fault counts only then).
func (p *proc) kill(sig syscall.Signal, grace time.Duration) bool {
	return p.process().Kill(sig, grace)
}

// shutdown stops the process for good.
func (p *proc) shutdown() { p.process().Shutdown(10 * time.Second) }

func (p *proc) running() bool { return p.process().Running() }

// unexpected counts its exits nobody asked for.
func (p *proc) unexpected() int { return p.process().Unexpected() }

// waitReady waits until the process answers /readyz (database and Temporal
// reachable).
func (p *proc) waitReady(ctx context.Context, within time.Duration) error {
	if err := supervise.WaitHTTP(ctx, p.name, p.healthz, p.logPath, within); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	return nil
}

// runOnce runs a process of the stack to completion (migrate).
func runOnce(ctx context.Context, spawn Spawn, role string, settings map[string]string, logDir string) error {
	if err := spawn.RunOnce(ctx, role, settings, logDir); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	return nil
}
