// Package storetest gives tests a fresh, migrated store on PostgreSQL and on
// SQLite. Each PostgreSQL store lives in its own schema of the test database, so
// packages and tests can run in parallel against one server.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"ordersaga/internal/store"
)

// DefaultPostgresURL is used when TEST_DATABASE_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var reachable sync.Map // url -> error (nil when reachable)

// PostgresURL returns the test database URL (TEST_DATABASE_URL, default
// DefaultPostgresURL). When the server does not answer, the test is skipped, or
// fails when CI=true (CI must not silently skip database tests).
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_DATABASE_URL")
	if u == "" {
		u = DefaultPostgresURL
	}
	v, ok := reachable.Load(u)
	if !ok {
		v, _ = reachable.LoadOrStore(u, errorValue{ping(u)})
	}
	if err := v.(errorValue).err; err != nil {
		msg := fmt.Sprintf("storetest: PostgreSQL at TEST_DATABASE_URL (%s) is unreachable: %v", redact(u), err)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (CI=true: database tests must not be skipped)", msg)
		}
		t.Skipf("%s; skipping (set TEST_DATABASE_URL or start PostgreSQL)", msg)
	}
	return u
}

type errorValue struct{ err error }

func ping(u string) error {
	db, err := sql.Open("pgx", u)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// NewPostgres returns a migrated store in a new schema t_<random> of the test
// database; the schema is dropped (CASCADE) when the test ends.
func NewPostgres(t testing.TB) *store.Store {
	t.Helper()
	base := PostgresURL(t)
	schema := "t_" + randomHex(t, 8)

	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("storetest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})

	dsn, err := withSearchPath(base, schema)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return openAndMigrate(t, ctx, dsn)
}

// withSearchPath adds search_path=<schema> to the URL; pgx sends unknown URL
// parameters to the server as run-time parameters.
func withSearchPath(base, schema string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("TEST_DATABASE_URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// NewSQLite returns a migrated store on a SQLite file in t.TempDir().
func NewSQLite(t testing.TB) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return openAndMigrate(t, ctx, "sqlite:"+filepath.Join(t.TempDir(), "store.db"))
}

func openAndMigrate(t testing.TB, ctx context.Context, dsn string) *store.Store {
	t.Helper()
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("storetest: open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storetest: close: %v", err)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("storetest: migrate: %v", err)
	}
	return s
}

// Each runs fn as the subtests "postgres" and "sqlite", each with its own fresh
// store. fn may call t.Parallel.
func Each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	t.Run("postgres", func(t *testing.T) { fn(t, NewPostgres(t)) })
	t.Run("sqlite", func(t *testing.T) { fn(t, NewSQLite(t)) })
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("storetest: random: %v", err)
	}
	return hex.EncodeToString(b)
}
