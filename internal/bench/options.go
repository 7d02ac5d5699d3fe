package bench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"ordersaga/internal/devserver"
)

// Phases of a run, in the order they run.
const (
	PhaseNoop   = "noop"   // the no-op workflow of the order's shape: the Temporal ceiling
	PhaseSaga   = "saga"   // paid orders end to end through the API
	PhaseNotify = "notify" // a burst of concurrent payment notifies
	PhaseRead   = "read"   // GET /v1/orders/:no at a fixed rate
	PhaseExpiry = "expiry" // unpaid orders closing at their deadline
	// PhaseReconcile: a generated day of trades reconciled with its bill.
	PhaseReconcile = "reconcile"
)

// AllPhases lists the phases in the order a run takes them.
var AllPhases = []string{PhaseNoop, PhaseSaga, PhaseNotify, PhaseRead, PhaseExpiry, PhaseReconcile}

// Tunings of the stack that Options.Revert can leave out: the embedded
// server's (devserver.Tunings) and these.
const (
	// TuningPollers: the worker's autoscaling pollers (app.WorkerOptions),
	// not the SDK's fixed two per kind.
	TuningPollers = "pollers"
	// TuningLocalActivities: a new order runs its busy database steps as
	// local activities (workflows.ChangeLocalDB), and so does the no-op.
	TuningLocalActivities = "local-activities"
	// TuningGC: the garbage collector's target at 200 % (app.TuneGC).
	TuningGC = "gc"
)

// Tunings lists every tuning Options.Revert takes.
var Tunings = append([]string{TuningPollers, TuningLocalActivities, TuningGC}, devserver.Tunings...)

// RevertAll leaves every tuning out: the stack as it was before them.
var RevertAll = Tunings

func (o *Options) reverted(tuning string) bool { return slices.Contains(o.Revert, tuning) }

// ParseTunings reads a -revert value: "", "all", or a comma-separated list.
func ParseTunings(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return nil, nil
	case "all":
		return slices.Clone(RevertAll), nil
	}
	return parseList(s, "tuning", Tunings)
}

// Databases the shop can run on.
const (
	DBPostgres = "postgres" // a PostgreSQL server of the run's own (initdb)
	DBSQLite   = "sqlite"   // the embedded SQLite file, as `ordersaga dev` without DATABASE_URL
)

// Kinds of the no-op workflow's activities.
const (
	// NoopSameKinds: the no-op runs each step as the order workflow runs it
	// for a new order (local or regular activity).
	NoopSameKinds = "same"
	// NoopRegular: every step a regular activity (the order workflow's shape
	// before local activities), to separate server tuning from shape.
	NoopRegular = "regular"
)

// Options configure a run. Zero values take the defaults of Defaults.
type Options struct {
	// Temporal is TemporalEmbedded (default) or TemporalCluster.
	Temporal string
	// TemporalBin holds temporal-server and temporal-sql-tool for a
	// cluster ("" = built by the go command from go.mod's tool directive).
	TemporalBin string

	DB    string // DBPostgres or DBSQLite
	PGBin string // directory of initdb and postgres ("" = look for them)

	Users    int           // simulated mini-program users acting at once
	Duration time.Duration // measured window of each throughput phase
	Warmup   time.Duration // before the window, not measured
	// Orders, when set, replaces Duration: each throughput phase plays this
	// many orders (no warm-up) and is measured from its first start to its
	// last completion.
	Orders int
	// Poll is how often a user reads its order (and the stock) while it
	// waits for PAID.
	Poll time.Duration

	Expiry        int           // unpaid orders left to expire
	ExpiryTimeout time.Duration // their ORDER_PAY_TIMEOUT
	// ExpiryRate paces their placement (orders per second; 0 = as fast as
	// the users are answered). Their deadlines fall due at the same rate.
	ExpiryRate float64
	Burst      int           // concurrent payment notifies
	ReadRate   float64       // order reads per second
	ReadFor    time.Duration // how long the reads go on
	// Reconcile is the trades of the day the reconcile phase generates.
	Reconcile int

	Workers int // worker replicas (each with its own Temporal connection)
	// HistoryShards of the new Temporal database (0 = the default of the
	// embedded server, or of the cluster: docker-compose's 4).
	HistoryShards int
	// Revert leaves tunings out (Tunings; nil = none), to measure each:
	// RevertAll runs the stack as it was before them.
	Revert []string
	// NoopActivities: NoopSameKinds or NoopRegular.
	NoopActivities string

	Phases []string // which phases to run (nil = all)

	// ProfileDir receives a CPU profile (and, with Contention, block and
	// mutex profiles) of each phase; "" = none.
	ProfileDir string
	Contention bool

	Dir  string // run directory ("" = a new temporary one)
	Keep bool   // keep the run directory (databases, logs)
	Log  io.Writer
}

// Defaults are the options of `ordersaga bench` without flags.
func Defaults() Options {
	return Options{
		DB:             DBPostgres,
		Users:          32,
		Duration:       20 * time.Second,
		Warmup:         3 * time.Second,
		Poll:           10 * time.Millisecond,
		Expiry:         200,
		ExpiryTimeout:  10 * time.Second,
		Burst:          200,
		ReadRate:       500,
		ReadFor:        5 * time.Second,
		Reconcile:      20_000,
		Workers:        1,
		NoopActivities: NoopSameKinds,
	}
}

func (o *Options) fill() error {
	d := Defaults()
	if o.Temporal == "" {
		o.Temporal = TemporalEmbedded
	}
	if o.Temporal != TemporalEmbedded && o.Temporal != TemporalCluster {
		return fmt.Errorf("bench: temporal %q: want %s or %s", o.Temporal, TemporalEmbedded, TemporalCluster)
	}
	if o.DB == "" {
		o.DB = d.DB
	}
	if o.DB != DBPostgres && o.DB != DBSQLite {
		return fmt.Errorf("bench: database %q: want %s or %s", o.DB, DBPostgres, DBSQLite)
	}
	if o.Users <= 0 {
		o.Users = d.Users
	}
	if o.Orders < 0 {
		return errors.New("bench: orders must not be negative")
	}
	if o.Orders == 0 && o.Duration <= 0 {
		o.Duration = d.Duration
	}
	if o.Warmup < 0 {
		return errors.New("bench: warm-up must not be negative")
	}
	if o.Poll <= 0 {
		o.Poll = d.Poll
	}
	if o.Reconcile <= 0 {
		o.Reconcile = d.Reconcile
	}
	if o.Expiry < 0 || o.ExpiryRate < 0 || o.Burst < 0 || o.ReadRate < 0 || o.ReadFor < 0 {
		return errors.New("bench: sizes must not be negative")
	}
	if o.ExpiryTimeout <= 0 {
		o.ExpiryTimeout = d.ExpiryTimeout
	}
	if o.Workers <= 0 {
		o.Workers = d.Workers
	}
	if o.HistoryShards < 0 {
		return errors.New("bench: history shards must not be negative")
	}
	if o.NoopActivities == "" {
		o.NoopActivities = d.NoopActivities
	}
	if o.NoopActivities != NoopSameKinds && o.NoopActivities != NoopRegular {
		return fmt.Errorf("bench: no-op activities %q: want %s or %s", o.NoopActivities, NoopSameKinds, NoopRegular)
	}
	for _, t := range o.Revert {
		if !slices.Contains(Tunings, t) {
			return fmt.Errorf("bench: unknown tuning %q (known: %s)", t, strings.Join(Tunings, ", "))
		}
		if o.Temporal == TemporalCluster && slices.Contains(devserver.Tunings, t) {
			return fmt.Errorf("bench: tuning %s is the embedded server's: it cannot be reverted on -temporal %s", t, TemporalCluster)
		}
	}
	if o.Phases == nil {
		o.Phases = slices.Clone(AllPhases)
	}
	for _, p := range o.Phases {
		if !slices.Contains(AllPhases, p) {
			return fmt.Errorf("bench: unknown phase %q (known: %s)", p, strings.Join(AllPhases, ", "))
		}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

func (o *Options) runs(phase string) bool { return slices.Contains(o.Phases, phase) }

// ParsePhases reads a -phases value: "all" or a comma-separated list.
func ParsePhases(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return slices.Clone(AllPhases), nil
	}
	return parseList(s, "phase", AllPhases)
}

// parseList reads a comma-separated list of names from known (a flag's
// value), once each, in the order given.
func parseList(s, what string, known []string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(known, name) {
			return nil, fmt.Errorf("unknown %s %q (known: all, %s)", what, name, strings.Join(known, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}
