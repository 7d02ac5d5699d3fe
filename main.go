// Command ordersaga runs the order service of a WeChat mini-program shop.
//
//	ordersaga dev          everything in one process, embedded defaults
//	ordersaga api          the HTTP API (production)
//	ordersaga worker       the Temporal worker (production, any number of replicas)
//	ordersaga migrate      apply database migrations
//	ordersaga paysim       the WeChat Pay simulator alone
//	ordersaga healthcheck  exit 0 when a health URL answers 2xx (container health checks)
//	ordersaga chaos        many orders through the real stack under injected faults, then invariant checks
//	ordersaga bench        throughput and latency of the saga against the bare Temporal ceiling
//	ordersaga reconcile    reconcile a day's WeChat Pay bill through the API and print the report
//	ordersaga cluster      docker-compose's topology as processes on this machine (official Temporal server)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"ordersaga/internal/app"
	"ordersaga/internal/bench"
	"ordersaga/internal/chaos"
	"ordersaga/internal/cluster"
	"ordersaga/internal/config"
	"ordersaga/internal/paysim"
	"ordersaga/internal/reconcile"
)

const usage = `usage: ordersaga <command> [flags]

commands:
  dev          run the whole stack locally (Temporal + Web UI, database, worker, API)
  api          serve the HTTP API
  worker       run the Temporal worker
  migrate      apply database migrations
  paysim       run the WeChat Pay simulator alone (see docs/PAYSIM.md)
  healthcheck  probe a health URL (for container health checks)
  chaos        drive orders through the stack under faults and check money and stock (see docs/RELIABILITY.md)
  bench        measure the saga against the bare Temporal ceiling on this machine (see docs/BENCHMARKS.md)
  reconcile    reconcile a day's WeChat Pay trade bill with the shop and print the report (-date YYYY-MM-DD)
  cluster      run docker-compose.yml's topology as processes on this machine: the official Temporal
               server as separate services on PostgreSQL, api and worker replicas (see README.md)

Configuration is read from the environment; see README.md.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "ordersaga %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cmd string, args []string) error {
	switch cmd {
	case "dev":
		return runDev(ctx, args)
	case "api", "worker", "migrate":
		return app.RunRole(ctx, config.Mode(cmd), os.Getenv)
	case "paysim":
		return paysim.RunCommand(ctx, args, os.Stdout)
	case "healthcheck":
		return healthcheck(args)
	case "chaos":
		return chaos.RunCommand(ctx, args, os.Stdout, os.Stderr)
	case "bench":
		return bench.RunCommand(ctx, args, os.Stdout, os.Stderr)
	case "reconcile":
		return reconcile.RunCommand(ctx, args, os.Getenv, os.Stdout, os.Stderr)
	case "cluster":
		return cluster.RunCommand(ctx, args, os.Stdout, os.Stderr)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func runDev(ctx context.Context, args []string) error {
	cfg, err := config.Load(config.ModeDev, os.Getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	apiAddr := "127.0.0.1:8080"
	if v := os.Getenv("HTTP_ADDR"); v != "" {
		apiAddr = v
	}
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	opts := app.DevOptions{}
	fs.StringVar(&opts.DataDir, "data", ".data", "directory for the embedded databases and generated keys")
	fs.StringVar(&opts.APIAddr, "api-addr", apiAddr, "API listen address (also HTTP_ADDR)")
	fs.IntVar(&opts.TemporalPort, "temporal-port", 7233, "embedded Temporal frontend port")
	fs.IntVar(&opts.UIPort, "ui-port", 8233, "Temporal Web UI port")
	fs.IntVar(&opts.PaySimPort, "paysim-port", 8091, "WeChat Pay simulator port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return app.RunDev(ctx, cfg, opts, app.NewLogger(cfg.LogLevel))
}

func healthcheck(args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/healthz", "URL that must answer 2xx")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(*url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errors.New(resp.Status)
	}
	return nil
}
