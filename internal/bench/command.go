package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"ordersaga/internal/cluster"
)

// RunCommand is `ordersaga bench`: flags, then Run; the report goes to
// stdout (JSON with -json), progress to stderr.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	d := Defaults()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: ordersaga bench [flags]

Measures the order saga on this machine against the ceiling of Temporal
itself, in one run on one server: a stack of its own (the embedded Temporal
server in this process, or with -temporal cluster the official server as
separate processes on PostgreSQL, as ordersaga cluster runs it; the WeChat
Pay simulator, worker replicas and API in this process; PostgreSQL of its
own or the embedded SQLite database), simulated
mini-program users placing and paying orders, then a no-op workflow of the
same shape driven the same way; a burst of payment notifies; order reads at
a fixed rate; unpaid orders closing at their deadline; a generated day of
trades reconciled with its WeChat Pay bill. See docs/BENCHMARKS.md.

phases (in this order): %s

flags:
`, strings.Join(AllPhases, ", "))
		fs.PrintDefaults()
	}
	o := Options{}
	fs.StringVar(&o.Temporal, "temporal", TemporalEmbedded, "Temporal to measure on: embedded (in this process) or cluster (the official server as processes)")
	fs.StringVar(&o.TemporalBin, "temporal-bin", "", "cluster: "+cluster.TemporalBinUsage)
	fs.StringVar(&o.DB, "db", d.DB, "shop database: postgres (a server of the run's own) or sqlite (embedded)")
	fs.StringVar(&o.PGBin, "pg-bin", "", "directory of initdb and postgres (default: the newest /usr/lib/postgresql/*/bin, or PATH)")
	fs.IntVar(&o.Users, "users", d.Users, "simulated mini-program users acting at once")
	fs.DurationVar(&o.Duration, "duration", d.Duration, "measured window of the saga and no-op phases")
	fs.DurationVar(&o.Warmup, "warmup", d.Warmup, "warm-up before the window, not measured")
	fs.IntVar(&o.Orders, "orders", 0, "orders per saga and no-op phase instead of -duration (no warm-up)")
	fs.DurationVar(&o.Poll, "poll", d.Poll, "how often a user reads its order (and the stock) while waiting for PAID")
	fs.IntVar(&o.Expiry, "expiry", d.Expiry, "unpaid orders left to expire (10000 for the full measurement)")
	fs.Float64Var(&o.ExpiryRate, "expiry-rate", 0, "place the unpaid orders at this many per second (0 = as fast as they are answered); their deadlines fall due at the same rate")
	fs.DurationVar(&o.ExpiryTimeout, "expiry-timeout", d.ExpiryTimeout, "their ORDER_PAY_TIMEOUT (longer than placing them takes, so that all are pending at once)")
	fs.IntVar(&o.Burst, "burst", d.Burst, "payment notifies at once")
	fs.Float64Var(&o.ReadRate, "read-rate", d.ReadRate, "order reads per second")
	fs.DurationVar(&o.ReadFor, "read-for", d.ReadFor, "how long the reads go on")
	fs.IntVar(&o.Reconcile, "reconcile-trades", d.Reconcile, "trades of the day the reconcile phase generates and reconciles (100000 for the full measurement)")
	fs.IntVar(&o.Workers, "workers", d.Workers, "worker replicas (each with its own Temporal connection and database pool)")
	fs.IntVar(&o.HistoryShards, "shards", 0, "history shards of the run's new Temporal database (0 = the embedded server's default)")
	revert := fs.String("revert", "", "leave tunings out, to measure them: all, or a comma-separated list of "+strings.Join(Tunings, ","))
	baseline := fs.Bool("baseline", false, "the stack as it was before tuning (-revert all)")
	fs.StringVar(&o.NoopActivities, "noop-activities", d.NoopActivities, `the no-op's activities: "same" kinds as a new order's (local or regular), or all "regular"`)
	phases := fs.String("phases", "all", "phases to run: all, or a comma-separated list of "+strings.Join(AllPhases, ","))
	fs.StringVar(&o.ProfileDir, "profile", "", "write a CPU profile of each phase into this directory")
	fs.BoolVar(&o.Contention, "contention", false, "with -profile, also block and mutex profiles (cumulative: use with one phase)")
	fs.StringVar(&o.Dir, "dir", "", "run directory (default: a new temporary one, removed afterwards)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the run directory (databases, stack.log)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
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
	if o.Phases, err = ParsePhases(*phases); err != nil {
		return err
	}
	if o.Revert, err = ParseTunings(*revert); err != nil {
		return err
	}
	if *baseline {
		o.Revert = RevertAll
	}
	if o.Dir != "" {
		o.Keep = true
	}
	o.Log = stderr
	r, err := Run(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		return r.WriteJSON(stdout)
	}
	return r.WriteTable(stdout)
}
