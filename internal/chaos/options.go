// Package chaos drives many orders through the real stack — the API and two
// workers as separate processes, Temporal, a PostgreSQL server of its own and
// the WeChat Pay simulator — with random payer behaviour and injected faults
// (lost, repeated, late and reordered notifies, WeChat 5xx, slow and lost
// answers, shipping uploads lost, busy or not seeing the payment, lost
// settlement events, SIGKILLed workers, API and PostgreSQL restarts), waits
// until everything has settled, and then checks that no money and no stock
// was lost or made up, that every shipped order was shipped at WeChat
// exactly once, and that no order is stuck. Temporal is the embedded server,
// or (Options.Temporal = TemporalCluster) the official server as separate
// processes with two API replicas behind a balancer, whose own processes
// fail too (history and matching killed, the frontend restarted, its
// PostgreSQL crashed).
//
// `ordersaga chaos` runs it from the command line (RunCommand);
// internal/chaos's own test runs a small one in CI, internal/cluster's a
// small one on a cluster.
package chaos

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"ordersaga/internal/cluster"
)

// Fault kinds. Every kind can be switched on and off (Options.Faults).
const (
	// Notifies (the simulator's callbacks to the API).
	FaultNotifyDrop      = "notify_drop"      // never sent: the order settles by query
	FaultNotifyDuplicate = "notify_duplicate" // sent once more after its 2xx
	FaultNotifyDelay     = "notify_delay"     // first attempt held back
	FaultNotifyReorder   = "notify_reorder"   // a newer notify goes first
	FaultNotifyTamper    = "notify_tamper"    // a spoiled delivery (bad signature, stale, undecryptable): refused, then the genuine retry
	// WeChat Pay API answers (prepay, query, close, refund, refund query).
	FaultWechat5xx        = "wechat_5xx"         // 5xx instead of the answer
	FaultWechatSlow       = "wechat_slow"        // the answer comes late (sometimes after the client gave up)
	FaultWechatLostAnswer = "wechat_lost_answer" // the request is done, the answer is a 5xx: the shop does not know
	// WeChat takes a refund and then fails it (ABNORMAL: the payer's card is
	// gone; CLOSED): the order ends REFUND_FAILED, flagged for a person, the
	// money not returned.
	FaultWechatRefundFailed = "wechat_refund_failed"
	// WeChat's order shipping management (the mini-program server API and
	// its message push).
	FaultShippingLostAnswer = "shipping_lost_answer"         // upload_shipping_info done, its answer lost (errcode -1): the retry must not ship again
	FaultShippingNotVisible = "shipping_payment_not_visible" // 10060001 (the payment not visible yet) for a few upload_shipping_info / get_order calls
	FaultShippingBusy       = "shipping_busy"                // errcode -1 (busy) for a few upload_shipping_info / get_order calls
	FaultPushDrop           = "push_drop"                    // a settlement event never sent: the order learns it by asking WeChat
	// Processes.
	FaultWorkerKill      = "worker_kill"      // SIGKILL a worker, start it again
	FaultAPIRestart      = "api_restart"      // stop the API (SIGTERM or SIGKILL), start it again
	FaultPostgresRestart = "postgres_restart" // crash PostgreSQL (immediate shutdown), start it again
)

// AllFaults lists every fault kind of a run on either Temporal.
var AllFaults = []string{
	FaultNotifyDrop, FaultNotifyDuplicate, FaultNotifyDelay, FaultNotifyReorder, FaultNotifyTamper,
	FaultWechat5xx, FaultWechatSlow, FaultWechatLostAnswer, FaultWechatRefundFailed,
	FaultShippingLostAnswer, FaultShippingNotVisible, FaultShippingBusy, FaultPushDrop,
	FaultWorkerKill, FaultAPIRestart, FaultPostgresRestart,
}

// Faults of Temporal itself, on a cluster (-temporal cluster) only: each is
// counted once it was seen to happen and the cluster was whole again.
const (
	// SIGKILL a history process; counted once the other history process
	// owns every shard, and the killed one, restarted, serves again.
	FaultHistoryKill = "history_kill"
	// Stop the frontend (SIGTERM or SIGKILL) and start it again.
	FaultFrontendRestart = "frontend_restart"
	// SIGKILL matching; counted once the membership dropped it and it,
	// restarted, serves again.
	FaultMatchingKill = "matching_kill"
	// Crash Temporal's own PostgreSQL server (immediate shutdown) and start
	// it again; counted once every Temporal service answers again.
	FaultTemporalPostgresRestart = "temporal_postgres_restart"
)

// ClusterFaults lists the fault kinds of Temporal itself.
var ClusterFaults = []string{FaultHistoryKill, FaultFrontendRestart, FaultMatchingKill, FaultTemporalPostgresRestart}

// Which Temporal a run uses.
const (
	// TemporalEmbedded: the embedded server (devserver, SQLite) in the
	// harness's process.
	TemporalEmbedded = "embedded"
	// TemporalCluster: the official server as separate processes on a
	// PostgreSQL server of its own, as `ordersaga cluster` runs it, with two
	// API replicas behind a balancer.
	TemporalCluster = "cluster"
)

// FaultKinds lists the fault kinds a run on temporal can inject.
func FaultKinds(temporal string) []string {
	if temporal == TemporalCluster {
		return slices.Concat(AllFaults, ClusterFaults)
	}
	return slices.Clone(AllFaults)
}

// Roles a process of the stack runs as; the same names as the ordersaga
// subcommands.
const (
	RoleAPI     = "api"
	RoleWorker  = "worker"
	RoleMigrate = "migrate"
)

// Spawn says how to start a process of the stack in a role: the program, its
// arguments and environment variables to add (the stack's configuration is
// added by the harness). For `ordersaga chaos` it is the ordersaga binary
// itself with the role as subcommand; a test re-executes its own binary.
type Spawn = cluster.Spawn

// SpawnSelf starts the running ordersaga binary with the role as subcommand.
func SpawnSelf() (Spawn, error) {
	s, err := cluster.SpawnSelf()
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	return s, nil
}

// Options configure a run. Zero values take the defaults of Defaults.
type Options struct {
	// Temporal is TemporalEmbedded (default) or TemporalCluster.
	Temporal string

	Orders      int   // orders to place (some come in groups competing for scarce stock)
	Concurrency int   // payers acting at once
	Seed        int64 // behaviour and fault choices; 0 = from the clock
	// Faults are the fault kinds to inject (nil = all of FaultKinds;
	// empty = none).
	Faults []string

	// Timing of the stack under test.
	PayTimeout  time.Duration // ORDER_PAY_TIMEOUT
	AutoConfirm time.Duration // ORDER_AUTO_CONFIRM
	NotifyScale float64       // the simulator's notify retry schedule × this
	RefundDelay time.Duration // the simulator settles a refund after this
	// RefundInterval is WECHATPAY_REFUND_INTERVAL of the stack and the
	// simulator's FREQUENCY_LIMITED gap: WeChat's minute would make every
	// order refunded in parts wait minutes to settle.
	RefundInterval time.Duration
	// AfterSaleWindow is ORDER_AFTERSALE_WINDOW of the stack: a completed
	// order refunded in parts keeps its workflow open that long for
	// after-sales, and the run settles only once every workflow ended.
	AfterSaleWindow time.Duration

	// Process faults: how many of each (when the kind is on).
	WorkerKills      int
	APIRestarts      int
	PostgresRestarts int
	// Of Temporal itself (-temporal cluster).
	HistoryKills, FrontendRestarts, MatchingKills, TemporalPostgresRestarts int

	// Bounds.
	MaxDrive      time.Duration // placing and playing the orders
	SettleTimeout time.Duration // waiting for every deadline and retry to pass
	// Hard stop of the whole run (setup, drive, settle, checks).
	Timeout time.Duration

	Spawn Spawn  // how to start api/worker/migrate processes (required)
	PGBin string // directory of initdb and postgres; "" = look for them
	// TemporalBin holds temporal-server and temporal-sql-tool for a cluster
	// ("" = built by the go command from go.mod's tool directive).
	TemporalBin string
	Dir         string // run directory; "" = a new temporary one
	Keep        bool   // keep the run directory (logs, databases) afterwards
	// UIPort serves the Temporal Web UI of the run (0 = none), to watch it.
	UIPort int

	// Log receives progress lines (nil = discard); Verbose adds detail.
	Log     io.Writer
	Verbose bool
}

// Defaults returns the options of a full run (`ordersaga chaos`).
func Defaults() Options {
	return Options{
		Orders:           2000,
		Concurrency:      64,
		PayTimeout:       10 * time.Second,
		AutoConfirm:      4 * time.Second,
		NotifyScale:      0.0005, // WeChat's ~24 h of retries in ~45 s
		RefundDelay:      300 * time.Millisecond,
		RefundInterval:   time.Second,
		AfterSaleWindow:  2 * time.Second,
		WorkerKills:      8,
		APIRestarts:      3,
		PostgresRestarts: 1,
		// Temporal's own faults (-temporal cluster).
		HistoryKills:             3,
		FrontendRestarts:         2,
		MatchingKills:            2,
		TemporalPostgresRestarts: 1,
		MaxDrive:                 30 * time.Minute,
		SettleTimeout:            5 * time.Minute,
		Timeout:                  45 * time.Minute,
	}
}

func (o *Options) fill() error {
	d := Defaults()
	if o.Orders <= 0 {
		o.Orders = d.Orders
	}
	if o.Concurrency <= 0 {
		o.Concurrency = d.Concurrency
	}
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano()
	}
	if o.Temporal == "" {
		o.Temporal = TemporalEmbedded
	}
	if o.Temporal != TemporalEmbedded && o.Temporal != TemporalCluster {
		return fmt.Errorf("chaos: temporal %q: want %s or %s", o.Temporal, TemporalEmbedded, TemporalCluster)
	}
	known := FaultKinds(o.Temporal)
	if o.Faults == nil {
		o.Faults = known
	}
	for _, f := range o.Faults {
		if !slices.Contains(known, f) {
			if slices.Contains(ClusterFaults, f) {
				return fmt.Errorf("chaos: fault %s fails Temporal's own processes: it needs -temporal %s", f, TemporalCluster)
			}
			return fmt.Errorf("chaos: unknown fault kind %q (known: %s)", f, strings.Join(known, ", "))
		}
	}
	if o.PayTimeout <= 0 {
		o.PayTimeout = d.PayTimeout
	}
	if o.PayTimeout < 3*time.Second {
		return errors.New("chaos: the pay timeout must be at least 3s (payers pay late, but before it)")
	}
	if o.AutoConfirm <= 0 {
		o.AutoConfirm = d.AutoConfirm
	}
	if o.NotifyScale <= 0 {
		o.NotifyScale = d.NotifyScale
	}
	if o.RefundDelay <= 0 {
		o.RefundDelay = d.RefundDelay
	}
	if o.RefundInterval <= 0 {
		o.RefundInterval = d.RefundInterval
	}
	if o.AfterSaleWindow <= 0 {
		o.AfterSaleWindow = d.AfterSaleWindow
	}
	if o.MaxDrive <= 0 {
		o.MaxDrive = d.MaxDrive
	}
	if o.SettleTimeout <= 0 {
		o.SettleTimeout = d.SettleTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = o.MaxDrive + o.SettleTimeout + 5*time.Minute
	}
	if o.WorkerKills < 0 || o.APIRestarts < 0 || o.PostgresRestarts < 0 ||
		o.HistoryKills < 0 || o.FrontendRestarts < 0 || o.MatchingKills < 0 || o.TemporalPostgresRestarts < 0 {
		return errors.New("chaos: restart counts must not be negative")
	}
	if o.Spawn == nil {
		return errors.New("chaos: Options.Spawn is required (how to start the api and worker processes)")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

func (o *Options) faultOn(kind string) bool { return slices.Contains(o.Faults, kind) }

// ParseFaults reads a -faults value of a run on the embedded server:
// ParseFaultsFor(s, TemporalEmbedded).
func ParseFaults(s string) ([]string, error) { return ParseFaultsFor(s, TemporalEmbedded) }

// ParseFaultsFor reads a -faults value of a run on temporal: "all", "none",
// or a comma-separated list of kinds, each optionally prefixed with "-" to
// leave it out of "all" ("all,-postgres_restart").
func ParseFaultsFor(s, temporal string) ([]string, error) {
	known := FaultKinds(temporal)
	s = strings.TrimSpace(s)
	switch s {
	case "", "all":
		return known, nil
	case "none":
		return []string{}, nil
	}
	set := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		switch {
		case part == "all":
			for _, f := range known {
				set[f] = true
			}
		case strings.HasPrefix(part, "-") && slices.Contains(known, part[1:]):
			delete(set, part[1:])
		case slices.Contains(known, part):
			set[part] = true
		case slices.Contains(ClusterFaults, strings.TrimPrefix(part, "-")):
			return nil, fmt.Errorf("fault kind %s fails Temporal's own processes: it needs -temporal %s", part, TemporalCluster)
		default:
			return nil, fmt.Errorf("unknown fault kind %q (known: all, none, %s)", part, strings.Join(known, ", "))
		}
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out, nil
}
