package testenv

import (
	"os"
	"testing"
)

// SpawnSelf is how a harness that starts the stack's processes (chaos,
// cluster) starts them from a test: this test binary again, with roleEnv
// set to the role, which its TestMain turns into that process (see
// chaos.RunRole).
func SpawnSelf(t testing.TB, roleEnv string) func(role string) (path string, args []string, env []string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return func(role string) (string, []string, []string) {
		return exe, nil, []string{roleEnv + "=" + role}
	}
}
