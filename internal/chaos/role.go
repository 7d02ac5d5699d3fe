package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"ordersaga/internal/app"
	"ordersaga/internal/config"
)

// RunRole runs this process as a process of the stack — RoleAPI, RoleWorker
// or RoleMigrate — configured from the environment exactly as `ordersaga api`
// and `ordersaga worker` are, until SIGTERM or SIGINT. It returns the exit
// code. A test binary calls it from TestMain when RoleEnv is set:
//
//	if role := os.Getenv(chaos.RoleEnv); role != "" {
//		os.Exit(chaos.RunRole(role))
//	}
func RunRole(role string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.RunRole(ctx, config.Mode(role), os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "ordersaga %s: %v\n", role, err)
		if errors.Is(err, app.ErrUnknownRole) {
			return 2
		}
		return 1
	}
	return 0
}
