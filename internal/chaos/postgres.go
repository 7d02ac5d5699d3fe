package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// postgres is a PostgreSQL server of the run's own, in the run directory on
// a free loopback port: restarting it (a fault) disturbs nobody else. It runs
// as a child of the harness (and dies with it); as root it runs as the
// postgres OS user, which PostgreSQL insists on.
type postgres struct {
	bin     string
	dataDir string
	logPath string
	port    int
	cred    *syscall.Credential // nil when not root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current postmaster exited
}

const chaosDatabase = "ordersaga_chaos"

// startPostgres initialises a cluster under dir and starts it.
func startPostgres(ctx context.Context, bin, dir string) (*postgres, error) {
	p := &postgres{bin: bin, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "postgres.log")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("chaos: PostgreSQL does not run as root and there is no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", p.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chaos: initdb: %w\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.port = port
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	db, err := sql.Open("pgx", p.url("postgres"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+chaosDatabase); err != nil {
		return nil, fmt.Errorf("chaos: create database: %w", err)
	}
	return p, nil
}

// url is the DATABASE_URL of a database of this server.
func (p *postgres) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// start runs the postmaster and waits until it answers.
func (p *postgres) start(ctx context.Context) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", p.dataDir, "-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
		// Commit order is what the stock ledger is replayed in.
		"-c", "track_commit_timestamp=on",
		// A crash of the server (the fault) loses nothing with these off —
		// written WAL is in the OS's cache — only a crash of the machine would.
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "log_min_messages=warning",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("chaos: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return p.waitReady(ctx, done)
}

func (p *postgres) waitReady(ctx context.Context, done chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		db, err := sql.Open("pgx", p.url("postgres"))
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err = db.PingContext(pctx)
			cancel()
			db.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("chaos: postgres exited at start (see %s)", p.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: postgres did not answer within a minute: %v (see %s)", err, p.logPath)
		}
	}
}

// running reports whether the postmaster is up (started and not exited).
func (p *postgres) running() bool {
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

// crash stops the server the hard way (immediate shutdown: no checkpoint,
// recovery from the WAL at the next start) and waits for it to exit.
func (p *postgres) crash() error { return p.stop(syscall.SIGQUIT) }

// stop stops the server with sig (SIGINT: fast shutdown; SIGQUIT: immediate)
// and waits, killing it after 30 s.
func (p *postgres) stop(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return errors.New("chaos: postgres did not stop within 30s: killed")
	}
}

// restart crashes the server, waits down for a moment, and starts it again.
func (p *postgres) restart(ctx context.Context, down time.Duration) error {
	if err := p.crash(); err != nil {
		return err
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.start(ctx)
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("chaos: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
