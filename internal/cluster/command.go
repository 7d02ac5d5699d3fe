package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// RunCommand is `ordersaga cluster`: flags, then StartStack with the
// ordersaga binary itself as api, worker and migrate; it runs until ctx
// ends (Ctrl-C) and then stops everything it started.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	d := DefaultStackOptions()
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: ordersaga cluster [flags]

Runs on this machine, without containers, the topology of docker-compose.yml:
a PostgreSQL server of its own; the official Temporal server (go.mod's pinned
go.temporal.io/server, built by the go command) as separate processes —
frontend, history ×2, matching, worker service — finding each other through
the database, its schemas set up by the official schema tool; the Web UI; the
WeChat Pay simulator; migrate; api ×2 behind a balancer and worker ×2, each
configured only through the README's environment variables. A staging
rehearsal without Docker (README "A cluster on one machine").

flags:
`)
		fs.PrintDefaults()
	}
	o := StackOptions{}
	fs.StringVar(&o.Dir, "data", d.Dir, "directory of the databases, keys and logs (kept; a second start reuses it)")
	fs.IntVar(&o.APIPort, "api-port", d.APIPort, "API port (the balancer in front of the api replicas)")
	fs.IntVar(&o.FrontendPort, "temporal-port", d.FrontendPort, "Temporal frontend gRPC port")
	fs.IntVar(&o.UIPort, "ui-port", d.UIPort, "Temporal Web UI port (0 = no Web UI)")
	fs.IntVar(&o.PaySimPort, "paysim-port", d.PaySimPort, "WeChat Pay simulator port")
	fs.IntVar(&o.PGPort, "pg-port", 0, "PostgreSQL port (0 = any free port)")
	fs.IntVar(&o.APIs, "apis", d.APIs, "api replicas")
	fs.IntVar(&o.Workers, "workers", d.Workers, "worker replicas")
	fs.IntVar(&o.HistoryHosts, "history", d.HistoryHosts, "Temporal history processes")
	fs.IntVar(&o.HistoryShards, "shards", d.HistoryShards, "history shards of a new Temporal database (fixed once created)")
	fs.StringVar(&o.TemporalBin, "temporal-bin", "", TemporalBinUsage)
	fs.StringVar(&o.PGBin, "pg-bin", "", "directory of initdb and postgres (default: the newest /usr/lib/postgresql/*/bin, or PATH)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"apis", o.APIs}, {"workers", o.Workers}, {"history", o.HistoryHosts}, {"shards", o.HistoryShards}} {
		if c.v < 1 {
			return fmt.Errorf("-%s must be at least 1 (got %d)", c.name, c.v)
		}
	}
	// A port past 65535 would otherwise be reported as "taken" by the
	// listen that refuses it.
	for _, c := range []struct {
		name string
		v    int
	}{{"api-port", o.APIPort}, {"temporal-port", o.FrontendPort}, {"ui-port", o.UIPort}, {"paysim-port", o.PaySimPort}, {"pg-port", o.PGPort}} {
		if c.v > 65535 {
			return fmt.Errorf("-%s must be a port number, at most 65535 (got %d)", c.name, c.v)
		}
	}
	var err error
	if o.Spawn, err = SpawnSelf(); err != nil {
		return err
	}
	start := time.Now()
	o.Logf = func(format string, args ...any) {
		fmt.Fprintf(stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	s, err := StartStack(ctx, o)
	if err != nil {
		return err
	}
	s.PrintBanner(stdout)
	<-ctx.Done()
	o.Logf("stopping")
	s.Stop()
	o.Logf("stopped")
	return nil
}
