package chaos

import (
	"context"
	"fmt"
	"sort"
	"time"

	"ordersaga/internal/reconcile"
	"ordersaga/internal/store"
)

// ReconciledDay is one day's reconciliation at the end of a run.
type ReconciledDay struct {
	Date            string           `json:"date"`
	BillRows        int64            `json:"bill_rows"`
	MatchedPayments int64            `json:"matched_payments"`
	MatchedRefunds  int64            `json:"matched_refunds"`
	Drift           int64            `json:"drift"`
	DriftByKind     map[string]int64 `json:"drift_by_kind,omitempty"`
	Explained       map[string]int64 `json:"explained_by_kind,omitempty"`
	// Drifts are the unexplained rows, for the post-mortem.
	Drifts []store.ReconcileDrift `json:"drifts,omitempty"`
	Error  string                 `json:"error,omitempty"`
}

// reconcileWait bounds one day's reconciliation.
const reconcileWait = 3 * time.Minute

// runDays are the Beijing days from the run's start to now.
func runDays(start, end time.Time) []string {
	beijing := time.FixedZone("CST", 8*3600)
	var out []string
	d := start.In(beijing)
	d = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, beijing)
	for !d.After(end) {
		out = append(out, d.Format("2006-01-02"))
		d = d.AddDate(0, 0, 1)
	}
	return out
}

// reconcile reconciles each day of the run through the API (the simulator
// serves today's bill at once) and checks what it found.
func (c *checker) reconcile(ctx context.Context) {
	cl := &reconcile.Client{BaseURL: c.h.apiURL, Token: c.h.adminToken, HTTP: c.h.client}
	var days []ReconciledDay
	for _, date := range runDays(c.h.start, time.Now()) {
		day := ReconciledDay{Date: date}
		wctx, cancel := context.WithTimeout(ctx, reconcileWait)
		r, err := cl.Wait(wctx, date, true, 200*time.Millisecond)
		cancel()
		switch {
		case err != nil:
			day.Error = err.Error()
		case r.Report == nil:
			day.Error = "no report"
			if r.LatestRun != nil {
				day.Error += ": " + r.LatestRun.Status + " " + r.LatestRun.Error
			}
		default:
			run := r.Report.Run
			day.BillRows, day.MatchedPayments, day.MatchedRefunds, day.Drift = run.BillRows, run.MatchedPayments, run.MatchedRefunds, run.Drift
			day.DriftByKind, day.Explained = r.Report.DriftByKind, r.Report.ExplainedByKind
			for _, d := range r.Drifts {
				if !d.Explained {
					day.Drifts = append(day.Drifts, d)
				}
			}
		}
		days = append(days, day)
	}
	c.reconcileBreaks(days)
}

// reconcileBreaks checks the days' reports against the database the other
// checks read: no day with drift or without a report, and the stray
// payments listed apart are the payments no order keeps.
func (c *checker) reconcileBreaks(days []ReconciledDay) {
	c.r.Reconciliation = days
	var listed int64
	for _, d := range days {
		if d.Error != "" {
			c.fail(CheckReconcile, "", "%s: %s", d.Date, d.Error)
			continue
		}
		for _, x := range d.Drifts {
			c.fail(CheckReconcile, x.OutTradeNo, "%s: %s transaction %s refund %s: %s", d.Date, x.Kind, x.TransactionID, x.OutRefundNo, x.Note)
		}
		if n := d.Drift - int64(len(d.Drifts)); n > 0 {
			c.fail(CheckReconcile, "", "%s: %d more drift (%v)", d.Date, n, d.DriftByKind)
		}
		listed += d.Explained[store.DriftStrayPayment]
	}
	var strays []string
	for _, p := range c.payments {
		if o := c.rows[p.order]; o == nil || o.txID != p.txID {
			strays = append(strays, p.txID)
		}
	}
	sort.Strings(strays)
	if listed != int64(len(strays)) {
		c.fail(CheckReconcile, "", "the reports list %d stray payments; the database holds %d payments no order keeps %v",
			listed, len(strays), strays)
	}
}

// reconcileLine is the report's line for a day.
func (d ReconciledDay) line() string {
	if d.Error != "" {
		return fmt.Sprintf("%s: %s", d.Date, d.Error)
	}
	return fmt.Sprintf("%s: %d bill rows, matched %d payments and %d refunds, %d drift, listed apart %v",
		d.Date, d.BillRows, d.MatchedPayments, d.MatchedRefunds, d.Drift, d.Explained)
}
