package pgserver_test

import (
	"context"
	"database/sql"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/pgserver"
	"ordersaga/internal/pgserver/pgservertest"
)

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
	pgservertest.Need(t)
	ctx := context.Background()
	dir := filepath.Join(pgservertest.Dir(t), "pg")
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
	pgservertest.Need(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = pgserver.Start(context.Background(), pgserver.Options{Dir: filepath.Join(pgservertest.Dir(t), "pg"), Port: port})
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
