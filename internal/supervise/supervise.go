// Package supervise runs the child processes of the harnesses that start a
// stack of processes on this machine (the chaos run, the local cluster): each
// in its own process group (a Ctrl-C at the terminal reaches the harness
// only, which stops them in order), killed with the harness if it dies
// (Pdeathsig), its output appended to a log file, and — as an orchestrator
// would — started again when it exits without being told to.
package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ErrOver is returned by Start once the process was shut down for good.
var ErrOver = errors.New("supervise: the process was shut down")

// Process is one supervised child process. Set the fields, then Start.
type Process struct {
	Name    string
	LogPath string
	// Command builds the command of each start (a new one every time: an
	// exec.Cmd runs once). Its output, process group and death signal are
	// set by Start.
	Command func() (*exec.Cmd, error)
	// Restart, when set, starts the process again RestartDelay after an
	// exit nobody asked for.
	Restart      bool
	RestartDelay time.Duration
	// OnExit is told of every exit nobody asked for (before a restart).
	OnExit func(err error)

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	intended   bool // told to stop: not an unexpected exit
	over       bool // shut down for good
	starts     int
	unexpected int
}

// Start starts the process unless it is running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.over {
		return ErrOver
	}
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return nil // running
		}
	}
	cmd, err := p.Command()
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(logf, "=== start #%d of %s at %s\n", p.starts, p.Name, time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Pdeathsig = true, syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.intended = cmd, done, false
	go p.wait(cmd, done, logf)
	return nil
}

func (p *Process) wait(cmd *exec.Cmd, done chan struct{}, logf *os.File) {
	err := cmd.Wait()
	fmt.Fprintf(logf, "=== %s exited at %s: %v\n", p.Name, time.Now().Format(time.RFC3339Nano), err)
	logf.Close()
	close(done)
	p.mu.Lock()
	unexpected := !p.intended && !p.over
	if unexpected {
		p.unexpected++
	}
	p.mu.Unlock()
	if !unexpected {
		return
	}
	if p.OnExit != nil {
		p.OnExit(err)
	}
	if p.Restart {
		go func() {
			time.Sleep(p.RestartDelay)
			p.mu.Lock()
			told := p.intended || p.over
			p.mu.Unlock()
			if !told {
				_ = p.Start()
			}
		}()
	}
}

// Kill sends sig to the process's group and waits for it to exit (SIGKILL
// after grace). It is not restarted by itself: call Start. It reports
// whether there was a running process to stop.
func (p *Process) Kill(sig syscall.Signal, grace time.Duration) bool {
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

// Shutdown stops the process for good: SIGTERM, SIGKILL after grace.
func (p *Process) Shutdown(grace time.Duration) {
	p.mu.Lock()
	p.over = true
	p.mu.Unlock()
	p.Kill(syscall.SIGTERM, grace)
}

// Running reports whether the process is up.
func (p *Process) Running() bool {
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

// Exited is closed when the current run of the process ends (nil before
// the first start).
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// PID is the process id of the current run (0 before the first start).
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Starts counts the starts; Unexpected the exits nobody asked for.
func (p *Process) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Unexpected counts the exits nobody asked for.
func (p *Process) Unexpected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unexpected
}

// LogTail returns the last n lines of the log, for an error message.
func (p *Process) LogTail(n int) string { return Tail(p.LogPath, n) }

// Tail returns the last n lines of a file ("" when it cannot be read).
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// WaitHTTP waits until url answers 200 (a /readyz), checking every 150 ms;
// after within, the error names the process and its log.
func WaitHTTP(ctx context.Context, name, url, logPath string, within time.Duration) error {
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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
			return fmt.Errorf("%s not ready after %v (%s); log: %s", name, within, last, logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
	}
}
