package pgserver_test

import (
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/pgserver"
)

func needPostgres(t *testing.T) {
	t.Helper()
	if !pgserver.Available() {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no PostgreSQL server binaries (initdb, postgres) are installed")
		}
		t.Skip("no PostgreSQL server binaries (initdb, postgres)")
	}
}

// runDir is a directory the postgres user can reach when the tests run as
// root (t.TempDir's parents are private).
func runDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func count(t *testing.T, url, query string) int {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// A database created once survives a crash of the server and a new server
// on the same directory; creating it again is not an error.
func TestDatabasesSurviveACrashAndAReuseOfTheDirectory(t *testing.T) {
	needPostgres(t)
	ctx := context.Background()
	dir := filepath.Join(runDir(t), "pg")
	s, err := pgserver.Start(ctx, pgserver.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	for range 2 {
		if err := s.CreateDatabase(ctx, "shop_a"); err != nil {
			t.Fatalf("create (twice): %v", err)
		}
	}
	db, err := sql.Open("pgx", s.URL("shop_a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (v int); INSERT INTO t VALUES (1), (2)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	if err := s.Restart(ctx, 100*time.Millisecond); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if !s.Running() {
		t.Fatal("not running after the restart")
	}
	if n := count(t, s.URL("shop_a"), `SELECT count(*) FROM t`); n != 2 {
		t.Fatalf("after the crash: %d rows, want 2", n)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("running after Stop")
	}

	again, err := pgserver.Start(ctx, pgserver.Options{Dir: dir, Durable: true})
	if err != nil {
		t.Fatalf("start on the same directory: %v", err)
	}
	t.Cleanup(func() { _ = again.Stop() })
	if n := count(t, again.URL("shop_a"), `SELECT count(*) FROM t`); n != 2 {
		t.Fatalf("reused directory: %d rows, want 2", n)
	}
}

// A port that is taken is named, and nothing is started.
func TestTakenPortIsNamed(t *testing.T) {
	needPostgres(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = pgserver.Start(context.Background(), pgserver.Options{Dir: filepath.Join(runDir(t), "pg"), Port: port})
	if err == nil || !strings.Contains(err.Error(), "PostgreSQL port "+strconv.Itoa(port)) {
		t.Fatalf("start on a taken port: %v; want an error naming PostgreSQL port %d", err, port)
	}
}

func TestFindRejectsADirectoryWithoutTheServer(t *testing.T) {
	dir := t.TempDir()
	if _, err := pgserver.Find(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Find(%s): %v; want an error naming it", dir, err)
	}
}
