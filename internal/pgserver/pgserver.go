// Package pgserver runs a PostgreSQL server of a run's own — initdb into a
// directory, a loopback port, a child of this process that dies with it —
// for the harnesses that need the real database and must be free to crash
// and restart it without disturbing anybody else: the chaos run, the
// benchmark and the local cluster (`ordersaga cluster`). Each names its own
// databases (CreateDatabase).
package pgserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"ordersaga/internal/ports"
)

// Options configure a server.
type Options struct {
	// Bin is the directory of initdb and postgres ("" = Find's search).
	Bin string
	// Dir holds the cluster (Dir/data) and its log (Dir/postgres.log). A Dir
	// that holds a cluster already is reused as it is: its databases stay.
	// As root, Dir's parents must be traversable by the postgres user.
	Dir string
	// Port to listen on, on 127.0.0.1 (0 = any free port).
	Port int
	// MaxConnections of the server (0 = 200).
	MaxConnections int
	// Durable keeps every commit safe from a crash of the machine (commits
	// are flushed in the background: a crash loses the last moments, never
	// the database). Without it fsync is off — a crash of the server (the
	// chaos run's fault) loses nothing, as written WAL is in the OS's cache,
	// but a crash of the machine may spoil the cluster: right for throwaway
	// runs, not for data that is kept.
	Durable bool
}

// Server is a running (or crashed, during a fault) PostgreSQL server.
type Server struct {
	opts    Options
	dataDir string
	logPath string
	cred    *syscall.Credential // nil when not root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current postmaster exited
}

// Start initialises the cluster under opts.Dir (unless it exists) and starts
// the server. A taken port is named in the error.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Find(opts.Bin)
	if err != nil {
		return nil, err
	}
	opts.Bin = bin
	if opts.Dir == "" {
		return nil, errors.New("pgserver: Options.Dir is required")
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = 200
	}
	s := &Server{opts: opts, dataDir: filepath.Join(opts.Dir, "data"), logPath: filepath.Join(opts.Dir, "postgres.log")}
	// A taken port fails before the slow initdb.
	if opts.Port == 0 {
		if s.opts.Port, err = ports.Free("127.0.0.1"); err != nil {
			return nil, err
		}
	} else if _, err := ports.Claim("127.0.0.1", opts.Port, "PostgreSQL"); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgserver: PostgreSQL does not run as root and there is no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(opts.Dir, uid, gid); err != nil {
			return nil, err
		}
		if err := reachable(opts.Dir); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(s.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
			"-D", s.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
		if out, err := initdb.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pgserver: initdb: %w\n%s", err, out)
		}
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// URL is the DATABASE_URL of database db of this server (user postgres,
// trust authentication, loopback only).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.opts.Port, db)
}

// Port is the server's port on 127.0.0.1.
func (s *Server) Port() int { return s.opts.Port }

// Bin is the directory of the server binaries used.
func (s *Server) Bin() string { return s.opts.Bin }

// PID is the postmaster's process id, also its process group's (its
// backends are in that group); 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// LogPath is the server's log file.
func (s *Server) LogPath() string { return s.logPath }

// CreateDatabase creates database name unless it exists.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	db, err := sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	// The name is the harness's own, never user input; quoted anyway.
	_, err = db.ExecContext(ctx, `CREATE DATABASE "`+strings.ReplaceAll(name, `"`, `""`)+`"`)
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "42P04" { // duplicate_database
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgserver: create database %s: %w", name, err)
	}
	return nil
}

// start runs the postmaster and waits until it answers.
func (s *Server) start(ctx context.Context) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"-D", s.dataDir, "-p", strconv.Itoa(s.opts.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "max_connections=" + strconv.Itoa(s.opts.MaxConnections),
		// Commit order is what the chaos run replays the stock ledger in.
		"-c", "track_commit_timestamp=on",
		"-c", "log_min_messages=warning",
	}
	if s.opts.Durable {
		args = append(args, "-c", "synchronous_commit=off")
	} else {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(s.opts.Bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgserver: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return s.waitReady(ctx, done)
}

func (s *Server) waitReady(ctx context.Context, done chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		db, err := sql.Open("pgx", s.URL("postgres"))
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
			return fmt.Errorf("pgserver: postgres exited at start (see %s)", s.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgserver: postgres did not answer within a minute: %v (see %s)", err, s.logPath)
		}
	}
}

// Running reports whether the postmaster is up (started and not exited).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Crash stops the server the hard way (immediate shutdown: no checkpoint,
// recovery from the WAL at the next start) and waits for it to exit.
func (s *Server) Crash() error { return s.stop(syscall.SIGQUIT) }

// Stop shuts the server down cleanly (fast shutdown) and waits for it.
func (s *Server) Stop() error { return s.stop(syscall.SIGINT) }

// stop stops the server with sig and waits, killing it after 30 s.
func (s *Server) stop(sig syscall.Signal) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
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
		return errors.New("pgserver: postgres did not stop within 30s: killed")
	}
}

// Restart crashes the server, waits down for a moment, and starts it again
// on the same port.
func (s *Server) Restart(ctx context.Context, down time.Duration) error {
	if err := s.Crash(); err != nil {
		return err
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.start(ctx)
}

// reachable checks that the postgres user (an "other" to root's
// directories) can get through every parent of dir: otherwise the server
// would die at start with nothing but a line in its log.
func reachable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("pgserver: PostgreSQL runs as the postgres user, which cannot get through %s to %s (chmod o+x %[1]s, or put the data elsewhere)", p, abs)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// Find returns the directory holding initdb and postgres: hint if given,
// else $PG_BIN, else the newest /usr/lib/postgresql/*/bin, else PATH.
func Find(hint string) (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	if hint != "" {
		if has(hint) {
			return hint, nil
		}
		return "", fmt.Errorf("pgserver: %s holds no initdb and postgres", hint)
	}
	if v := os.Getenv("PG_BIN"); v != "" && has(v) {
		return v, nil
	}
	// Debian/Ubuntu keep them out of PATH, one directory per major version:
	// take the newest.
	var versions []string
	if ents, err := os.ReadDir("/usr/lib/postgresql"); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				versions = append(versions, e.Name())
			}
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versionLess(versions[j], versions[i]) })
	for _, v := range versions {
		if bin := "/usr/lib/postgresql/" + v + "/bin"; has(bin) {
			return bin, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(p); has(dir) {
			return dir, nil
		}
	}
	return "", errors.New("pgserver: no PostgreSQL server binaries (initdb, postgres) found; install PostgreSQL or pass -pg-bin")
}

// Available reports whether the server binaries can be found (tests skip
// without them, unless CI=true).
func Available() bool {
	_, err := Find("")
	return err == nil
}

func versionLess(a, b string) bool {
	var x, y int
	_, errA := fmt.Sscanf(a, "%d", &x)
	_, errB := fmt.Sscanf(b, "%d", &y)
	if errA == nil && errB == nil && x != y {
		return x < y
	}
	return a < b
}
