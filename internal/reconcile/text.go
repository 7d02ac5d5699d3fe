package reconcile

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"ordersaga/internal/store"
	"ordersaga/internal/tradebill"
	"ordersaga/workflows"
)

var beijing = time.FixedZone("CST", 8*3600)

func yuan(fen int64) string { return "¥" + tradebill.FormatFen(fen) }

func amount(fen *int64) string {
	if fen == nil {
		return "—"
	}
	return yuan(*fen)
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func kinds(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + workflows.KindCounts(m) + ")"
}

// WriteText prints a report for people: the run, the day's totals on both
// sides, the drift table and the table of what is listed apart.
func WriteText(w io.Writer, r *Report) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	if r.Report == nil {
		p("Reconciliation of %s: no report yet", r.BillDate)
	} else {
		run := r.Report.Run
		when := ""
		if run.FinishedAt != nil {
			when = " at " + run.FinishedAt.In(beijing).Format("2006-01-02 15:04:05") + " Beijing time"
		}
		p("Reconciliation of %s — run %d, %s%s", r.BillDate, run.ID, run.Status, when)
		switch run.BillState {
		case store.BillNone:
			p("WeChat bill:  none (no trade that day: NO_STATEMENT_EXIST)")
		default:
			p("WeChat bill:  %d rows, SHA-1 %s", run.BillRows, dash(run.BillSHA1))
		}
		p("  payments    %d  %s", run.WechatPayments, yuan(run.WechatPaymentFen))
		p("  refunds     %d  %s", run.WechatRefunds, yuan(run.WechatRefundFen))
		p("  fees        ¥%s (net of fees returned with refunds)", tradebill.FormatMilliFen(run.WechatFeeMilliFen))
		p("Shop:")
		p("  payments    %d  %s", run.ShopPayments, yuan(run.ShopPaymentFen))
		p("  refunds     %d  %s", run.ShopRefunds, yuan(run.ShopRefundFen))
		p("Matched:      %d payments, %d refunds", run.MatchedPayments, run.MatchedRefunds)
		p("Drift:        %d%s", run.Drift, kinds(r.Report.DriftByKind))
		p("Listed apart: %d%s", run.Explained, kinds(r.Report.ExplainedByKind))
		var drift, apart []store.ReconcileDrift
		for _, d := range r.Drifts {
			if d.Explained {
				apart = append(apart, d)
			} else {
				drift = append(drift, d)
			}
		}
		if len(drift) > 0 {
			p("")
			p("DRIFT")
			writeTable(w, drift)
		}
		if len(apart) > 0 {
			p("")
			p("LISTED APART (expected)")
			writeTable(w, apart)
		}
	}
	if l := r.LatestRun; l != nil && (r.Report == nil || l.ID != r.Report.Run.ID) {
		p("")
		switch l.Status {
		case store.RunFailed:
			p("The latest run (%d) FAILED: %s", l.ID, l.Error)
		case store.RunRunning:
			p("The latest run (%d) is still running (bill %s)", l.ID, dash(l.BillState))
			if l.Error != "" {
				p("  attempt %d is being made; the one before failed: %s", l.Attempt, l.Error)
			}
		default:
			p("The latest run (%d) is %s", l.ID, l.Status)
		}
	}
}

func writeTable(w io.Writer, rows []store.ReconcileDrift) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tTRANSACTION_ID\tOUT_TRADE_NO\tOUT_REFUND_NO\tWECHAT\tSHOP\tORDER\tNOTE")
	for _, d := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Kind, dash(d.TransactionID), dash(d.OutTradeNo),
			dash(d.OutRefundNo), amount(d.WechatFen), amount(d.ShopFen), dash(d.OrderStatus), d.Note)
	}
	_ = tw.Flush()
}
