package chaos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"ordersaga/internal/cluster"
)

// ErrBroken is returned by RunCommand when the run found an invariant
// broken, an order stuck, or did not settle.
var ErrBroken = errors.New("chaos: invariants broken (see the report)")

// RunCommand is `ordersaga chaos`: flags, then Run with the ordersaga binary
// itself as the api and worker processes; the report goes to stdout (JSON
// with -json), progress to stderr.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	d := Defaults()
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: ordersaga chaos [flags]

Drives many orders through the real stack — the API and two workers as
separate processes, a PostgreSQL server of its own (initdb in a temporary
directory), the WeChat Pay simulator and Temporal: the embedded server, or
with -temporal cluster the official server as separate processes on a
PostgreSQL server of their own with two API replicas behind a balancer (the
shape of ordersaga cluster) — with random payer behaviour and injected
faults, waits until everything settled, then checks money, stock and that
nothing is stuck. Exits 1 on any break. Loopback only; cleans up after itself.

fault kinds: %v
  and on a cluster: %v

flags:
`, AllFaults, ClusterFaults)
		fs.PrintDefaults()
	}
	o := Options{}
	fs.StringVar(&o.Temporal, "temporal", TemporalEmbedded, "Temporal to run on: embedded (in this process) or cluster (the official server as processes)")
	fs.IntVar(&o.Orders, "orders", d.Orders, "orders to place")
	fs.IntVar(&o.Concurrency, "concurrency", d.Concurrency, "payers acting at once")
	fs.Int64Var(&o.Seed, "seed", 0, "seed of the payers' and faults' choices (0 = from the clock)")
	faults := fs.String("faults", "all", `fault kinds: "all", "none", or a comma-separated list ("all,-postgres_restart" leaves one out)`)
	fs.DurationVar(&o.PayTimeout, "pay-timeout", d.PayTimeout, "ORDER_PAY_TIMEOUT of the stack")
	fs.DurationVar(&o.AutoConfirm, "auto-confirm", d.AutoConfirm, "ORDER_AUTO_CONFIRM of the stack")
	fs.Float64Var(&o.NotifyScale, "notify-scale", d.NotifyScale, "the simulator's notify retry schedule × this")
	fs.DurationVar(&o.RefundDelay, "refund-delay", d.RefundDelay, "the simulator settles a refund after this")
	fs.DurationVar(&o.RefundInterval, "refund-interval", d.RefundInterval, "WECHATPAY_REFUND_INTERVAL of the stack (and the simulator's FREQUENCY_LIMITED gap)")
	fs.DurationVar(&o.AfterSaleWindow, "aftersale-window", d.AfterSaleWindow, "ORDER_AFTERSALE_WINDOW of the stack (a completed order refunded in parts ends this long after completion)")
	fs.IntVar(&o.WorkerKills, "worker-kills", d.WorkerKills, "workers killed with SIGKILL (and restarted) during the run")
	fs.IntVar(&o.APIRestarts, "api-restarts", d.APIRestarts, "API restarts during the run")
	fs.IntVar(&o.PostgresRestarts, "postgres-restarts", d.PostgresRestarts, "PostgreSQL crashes and restarts during the run")
	fs.IntVar(&o.HistoryKills, "history-kills", d.HistoryKills, "cluster: Temporal history processes killed with SIGKILL (and restarted)")
	fs.IntVar(&o.FrontendRestarts, "frontend-restarts", d.FrontendRestarts, "cluster: Temporal frontend restarts")
	fs.IntVar(&o.MatchingKills, "matching-kills", d.MatchingKills, "cluster: Temporal matching killed with SIGKILL (and restarted)")
	fs.IntVar(&o.TemporalPostgresRestarts, "temporal-postgres-restarts", d.TemporalPostgresRestarts, "cluster: crashes and restarts of Temporal's PostgreSQL")
	fs.StringVar(&o.TemporalBin, "temporal-bin", "", "cluster: "+cluster.TemporalBinUsage)
	fs.DurationVar(&o.MaxDrive, "max-drive", d.MaxDrive, "bound on playing the orders")
	fs.DurationVar(&o.SettleTimeout, "settle-timeout", d.SettleTimeout, "bound on waiting for the run to settle")
	fs.DurationVar(&o.Timeout, "timeout", 0, "bound on the whole run (default max-drive + settle-timeout + 5m)")
	fs.StringVar(&o.PGBin, "pg-bin", "", "directory of initdb and postgres (default: the newest /usr/lib/postgresql/*/bin, or PATH)")
	fs.StringVar(&o.Dir, "dir", "", "run directory (default: a new temporary one, removed afterwards)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the run directory (logs, databases)")
	fs.IntVar(&o.UIPort, "ui-port", 0, "serve the run's Temporal Web UI on this port (-1 = any free port)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.BoolVar(&o.Verbose, "v", false, "log more of what the payers see")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	var err error
	if o.Faults, err = ParseFaultsFor(*faults, o.Temporal); err != nil {
		return err
	}
	if o.Spawn, err = SpawnSelf(); err != nil {
		return err
	}
	o.Log = stderr
	if o.Dir != "" {
		o.Keep = true
	}
	r, err := Run(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := r.WriteJSON(stdout); err != nil {
			return err
		}
	} else {
		r.WriteText(stdout)
	}
	if !r.OK() {
		return ErrBroken
	}
	return nil
}
