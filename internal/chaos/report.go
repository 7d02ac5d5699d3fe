package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Report is what a run did and found.
type Report struct {
	Temporal    string   `json:"temporal"` // embedded or cluster
	Seed        int64    `json:"seed"`
	OrdersAsked int      `json:"orders_asked"`
	Concurrency int      `json:"concurrency"`
	FaultKinds  []string `json:"fault_kinds"`
	PayTimeout  string   `json:"pay_timeout"`
	NotifyScale float64  `json:"notify_scale"`

	// Orders in the database at the end; Placed of them were answered 201
	// to a payer, AnswerLost never were (the API went away mid-request).
	Orders            int `json:"orders"`
	Placed            int `json:"placed"`
	AnswerLost        int `json:"answer_lost"`
	RefusedAtCreation int `json:"refused_at_creation"` // 409 OUT_OF_STOCK
	RefusedByWorkflow int `json:"refused_by_workflow"` // workflows that refused their order (no row)
	Oversold          int `json:"oversold"`            // paid after the stock ran out: refunded automatically
	// ShippedAtWechat: orders whose shipment WeChat's shipping management
	// took (once each: CheckShipping).
	ShippedAtWechat int `json:"shipped_at_wechat"`
	// ContinuedRuns: orders whose workflow continued as new (its history
	// budget) — one order each, however many runs.
	ContinuedRuns int `json:"continued_runs"`

	ByStatus      map[string]int            `json:"by_status"`
	ByBehaviour   map[string]map[string]int `json:"by_behaviour"` // behaviour → final status → orders
	StrayPayments map[string]int            `json:"stray_payments"`
	Money         Money                     `json:"money"`
	// PartRefunds counts what the part refund behaviours were seen to do
	// (Seen; issue 18).
	PartRefunds map[string]int `json:"part_refunds"`

	// Faults that happened, by kind (from the simulator's records where it
	// keeps them); FaultsAsked is what the harness asked the simulator for.
	Faults           map[string]int `json:"faults"`
	FaultsAsked      map[string]int `json:"faults_asked"`
	CloseOnPaidFlips int            `json:"close_on_paid_flips"`
	Restarts         Restarts       `json:"restarts"`
	// APIRequests counts the requests each API replica answered through
	// the balancer (cluster runs).
	APIRequests map[string]int `json:"api_requests,omitempty"`

	// Reconciliation is each day of the run reconciled with WeChat's bill
	// after it settled (CheckReconcile).
	Reconciliation []ReconciledDay `json:"reconciliation"`

	Breaks   []Break        `json:"breaks"`
	Stuck    []string       `json:"stuck"`
	Counters map[string]int `json:"counters,omitempty"`

	DriveSeconds   float64 `json:"drive_seconds"`
	SettleSeconds  float64 `json:"settle_seconds"` // time to settle: from the last payer to nothing left to happen
	TotalSeconds   float64 `json:"total_seconds"`
	Settled        bool    `json:"settled"`
	DriveTruncated bool    `json:"drive_truncated,omitempty"`
	Pending        string  `json:"pending,omitempty"`
	Dir            string  `json:"dir,omitempty"`
}

// Money sums what WeChat took and returned.
type Money struct {
	Transactions int   `json:"transactions"`
	Refunds      int   `json:"refunds"`
	TakenFen     int64 `json:"taken_fen"`
	RefundedFen  int64 `json:"refunded_fen"`
	KeptFen      int64 `json:"kept_fen"` // totals of the orders in PAID, SHIPPED, COMPLETED
	// Held are the payments whose refund WeChat failed (REFUND_FAILED orders
	// and stray payments): not returned, flagged for a person.
	Held    int   `json:"held"`
	HeldFen int64 `json:"held_fen"`
}

// Restarts counts the process faults and what followed them.
type Restarts struct {
	WorkerKills      int `json:"worker_kills"`
	APIRestarts      int `json:"api_restarts"`
	PostgresRestarts int `json:"postgres_restarts"`
	// Of Temporal itself (cluster runs).
	HistoryKills             int `json:"history_kills,omitempty"`
	FrontendRestarts         int `json:"frontend_restarts,omitempty"`
	MatchingKills            int `json:"matching_kills,omitempty"`
	TemporalPostgresRestarts int `json:"temporal_postgres_restarts,omitempty"`
	// Temporal services that exited by themselves and were started again.
	TemporalUnexpectedExits int `json:"temporal_unexpected_exits,omitempty"`
	// A process that exited by itself (e.g. a worker started while
	// PostgreSQL was down) and was started again.
	UnexpectedExits int `json:"unexpected_exits"`
	// Failed are the planned restarts that did not happen (the process was
	// not running, or did not come back ready), as "kind: why"; the counts
	// above leave them out.
	Failed []string `json:"failed,omitempty"`
}

// OK reports whether the run settled and every invariant held.
func (r *Report) OK() bool {
	return r.Settled && !r.DriveTruncated && len(r.Breaks) == 0 && len(r.Stuck) == 0
}

// WriteJSON writes the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	p("")
	p("chaos run %s — %s Temporal, seed %d, %d orders asked, %d payers at once, pay timeout %s, notify retries ×%g",
		verdict, r.Temporal, r.Seed, r.OrdersAsked, r.Concurrency, r.PayTimeout, r.NotifyScale)
	p("orders: %d in the database (%d answered to a payer, %d whose answer was lost); %d refused at creation (out of stock); %d oversold and refunded; %d shipped at WeChat (once each)",
		r.Orders, r.Placed, r.AnswerLost, r.RefusedAtCreation, r.Oversold, r.ShippedAtWechat)

	statuses := sortedKeys(r.ByStatus)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "behaviour\t%s\ttotal\t\n", strings.Join(statuses, "\t"))
	for _, b := range sortedKeys(r.ByBehaviour) {
		row := []string{b}
		total := 0
		for _, s := range statuses {
			row = append(row, fmt.Sprint(r.ByBehaviour[b][s]))
			total += r.ByBehaviour[b][s]
		}
		fmt.Fprintf(tw, "%s\t%d\t\n", strings.Join(row, "\t"), total)
	}
	row := []string{"all"}
	for _, s := range statuses {
		row = append(row, fmt.Sprint(r.ByStatus[s]))
	}
	fmt.Fprintf(tw, "%s\t%d\t\n", strings.Join(row, "\t"), r.Orders)
	tw.Flush()

	m := r.Money
	p("money: %d payments taken %s, %d refunds %s returned, kept %s, %d held for a person %s (taken − refunded − kept − held = %s)",
		m.Transactions, fen(m.TakenFen), m.Refunds, fen(m.RefundedFen), fen(m.KeptFen), m.Held, fen(m.HeldFen),
		fen(m.TakenFen-m.RefundedFen-m.KeptFen-m.HeldFen))
	p("part refunds: %s", kv(r.PartRefunds))
	if len(r.StrayPayments) > 0 {
		p("stray payments: %s", kv(r.StrayPayments))
	}
	if len(r.Counters) > 0 {
		p("payers saw: %s", kv(r.Counters))
	}
	p("faults injected: %s", kv(r.Faults))
	if len(r.FaultsAsked) > 0 {
		p("  (asked of the simulator: %s; close-on-paid answer switched %d times)", kv(r.FaultsAsked), r.CloseOnPaidFlips)
	}
	p("restarts: %d worker kills (SIGKILL), %d API restarts, %d PostgreSQL restarts, %d unexpected exits (restarted)",
		r.Restarts.WorkerKills, r.Restarts.APIRestarts, r.Restarts.PostgresRestarts, r.Restarts.UnexpectedExits)
	if r.Temporal == "cluster" {
		p("temporal: %d history kills (SIGKILL, shards moved), %d frontend restarts, %d matching kills (SIGKILL), %d restarts of its PostgreSQL, %d unexpected exits (restarted)",
			r.Restarts.HistoryKills, r.Restarts.FrontendRestarts, r.Restarts.MatchingKills, r.Restarts.TemporalPostgresRestarts, r.Restarts.TemporalUnexpectedExits)
	}
	if len(r.APIRequests) > 0 {
		p("api requests through the balancer: %s", kv(r.APIRequests))
	}
	for _, f := range r.Restarts.Failed {
		p("  restart that did not happen: %s", f)
	}
	settled := fmt.Sprintf("settled in %.1fs", r.SettleSeconds)
	if !r.Settled {
		settled = fmt.Sprintf("NOT settled after %.1fs (%s)", r.SettleSeconds, r.Pending)
	}
	p("time: orders played in %.1fs, %s, %.1fs in all", r.DriveSeconds, settled, r.TotalSeconds)
	if r.DriveTruncated {
		p("the drive hit its time bound: not every order was played")
	}
	for _, d := range r.Reconciliation {
		p("reconciliation %s", d.line())
	}
	p("invariant breaks: %d; stuck orders: %d", len(r.Breaks), len(r.Stuck))
	const show = 50
	for i, b := range r.Breaks {
		if i == show {
			p("  … and %d more", len(r.Breaks)-show)
			break
		}
		order := b.Order
		if order == "" {
			order = "-"
		}
		p("  BREAK %-9s order %s: %s", b.Check, order, b.Detail)
		for _, l := range b.History {
			p("      | %s", l)
		}
	}
	if r.Dir != "" {
		p("run directory (logs, databases): %s", r.Dir)
	}
}

func kv(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := sortedKeys(m)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
