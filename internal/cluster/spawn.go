package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"ordersaga/internal/config"
)

// Roles of the shop's processes; the same names as the ordersaga
// subcommands.
const (
	RoleAPI        = "api"
	RoleShopWorker = "worker"
	RoleMigrate    = "migrate"
)

// Spawn says how to start a process of the shop in a role: the program, its
// arguments and environment variables to add (the configuration is added
// from the settings). For the ordersaga binary it is itself with the role as
// subcommand (SpawnSelf); a test re-executes its own binary.
type Spawn func(role string) (path string, args []string, env []string)

// SpawnSelf starts the running ordersaga binary with the role as subcommand.
func SpawnSelf() (Spawn, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	return func(role string) (string, []string, []string) { return exe, []string{role}, nil }, nil
}

// Command is the command of a process in role, configured only through the
// environment variables of config.Vars() — settings — as in production
// (none of the caller's own settings leak in).
func (s Spawn) Command(role string, settings map[string]string) (*exec.Cmd, error) {
	return s.command(context.Background(), role, settings)
}

func (s Spawn) command(ctx context.Context, role string, settings map[string]string) (*exec.Cmd, error) {
	path, args, extra := s(role)
	env, err := config.Environ(os.Environ(), extra, settings)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	return cmd, nil
}

// RunOnce runs a process in role to its end (migrate), its output in
// logDir/<role>.log; the error carries the output.
func (s Spawn) RunOnce(ctx context.Context, role string, settings map[string]string, logDir string) error {
	cmd, err := s.command(ctx, role, settings)
	if err != nil {
		return err
	}
	// Its own group, and killed with the harness.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(logDir, role+".log"), out, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", role, err, out)
	}
	return nil
}
