// Package pgservertest helps tests that start a PostgreSQL server of their
// own (pgserver): they need its binaries, and a directory the server's user
// can reach.
package pgservertest

import (
	"os"
	"testing"

	"ordersaga/internal/pgserver"
)

// Need skips the test when the PostgreSQL server binaries are not installed
// — and fails it with CI=true, where they must be.
func Need(t testing.TB) {
	t.Helper()
	if !pgserver.Available() {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no PostgreSQL server binaries (initdb, postgres) are installed")
		}
		t.Skip("no PostgreSQL server binaries (initdb, postgres): the test needs a server of its own")
	}
}

// Dir is a new directory for a test's servers that the postgres user can
// reach when the tests run as root (t.TempDir's parents are private). It is
// removed after a test that passed and kept, with its logs, after one that
// failed.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ordersaga-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("run directory kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}
