package chaos

import (
	"context"
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
	mode := config.Mode(role)
	switch mode {
	case config.ModeAPI, config.ModeWorker, config.ModeMigrate:
	default:
		fmt.Fprintf(os.Stderr, "chaos: unknown role %q\n", role)
		return 2
	}
	cfg, err := config.Load(mode, os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ordersaga %s: configuration:\n%v\n", role, err)
		return 1
	}
	log := app.NewLogger(cfg.LogLevel)
	switch mode {
	case config.ModeAPI:
		err = app.RunAPI(ctx, cfg, log)
	case config.ModeWorker:
		err = app.RunWorker(ctx, cfg, log)
	default:
		err = app.RunMigrate(ctx, cfg, log)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ordersaga %s: %v\n", role, err)
		return 1
	}
	return 0
}
