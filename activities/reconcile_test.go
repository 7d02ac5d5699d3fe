package activities_test

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
	"ordersaga/workflows"
)

var beijing = time.FixedZone("CST", 8*3600)

func dateOf(t time.Time) string { return t.In(beijing).Format("2006-01-02") }

var reconcileRunSeq atomic.Int64

// billsAtOnce makes every day's bill available now (today's too).
func (f *fx) billsAtOnce() {
	f.t.Helper()
	yes := true
	if _, err := f.sim.UpdateSettings(paysim.Settings{BillsImmediate: &yes}); err != nil {
		f.t.Fatal(err)
	}
}

// startRun records a run of date, as the workflow's first activity does.
func (f *fx) startRun(date string) int64 {
	f.t.Helper()
	ref := get[workflows.ReconcileRunRef](f.t, f.must(workflows.ActivityStartReconcileRun, workflows.StartReconcileInput{
		BillDate: date, WorkflowID: workflows.ReconcileWorkflowID(date), WorkflowRunID: fmt.Sprintf("test-run-%d", reconcileRunSeq.Add(1)),
	}))
	return ref.RunID
}

// reconcile runs one attempt at a new run of date and returns what it
// found: the summary and the drift rows.
func (f *fx) reconcile(date string) (workflows.ReconcileSummary, []store.ReconcileDrift) {
	f.t.Helper()
	runID := f.startRun(date)
	sum := get[workflows.ReconcileSummary](f.t, f.must(workflows.ActivityReconcileBill, workflows.ReconcileBillInput{RunID: runID, BillDate: date}))
	drifts, err := f.st.ListDrifts(f.ctx, runID, 0, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	return sum, drifts
}

func kindsOf(drifts []store.ReconcileDrift, explained bool) map[string]int64 {
	out := map[string]int64{}
	for _, d := range drifts {
		if d.Explained == explained {
			out[d.Kind]++
		}
	}
	return out
}

// refunded is a paid order refunded in full through the shop, settled SUCCESS.
func (f *fx) refunded(orderNo string) {
	f.t.Helper()
	in, _ := f.refunding(orderNo)
	r := f.settled(in.OutRefundNo, paysim.RefundSuccess)
	f.must(workflows.ActivitySettleRefund, workflows.SettleRefundInput{OrderNo: orderNo, Refund: r, OrderRefund: true, RestoreStock: true})
}

// returnedStray is a stray payment (strayPayment) recorded and returned,
// as StrayPaymentWorkflow does.
func (f *fx) returnedStray(orderNo string) workflows.PaymentNotice {
	f.t.Helper()
	_, n := f.strayPayment(orderNo)
	d := get[workflows.StrayDecision](f.t, f.must(workflows.ActivityExamineStrayPayment, n))
	if !d.Refund {
		f.t.Fatalf("stray payment not to be refunded: %+v", d)
	}
	no := workflows.StrayRefundNo(n.TransactionID)
	f.must(workflows.ActivityRequestRefund, workflows.RequestRefundInput{OrderNo: orderNo, TransactionID: n.TransactionID,
		OutRefundNo: no, RefundFen: n.AmountFen, TotalFen: n.AmountFen, Reason: "stray"})
	r := f.settled(no, paysim.RefundSuccess)
	f.must(workflows.ActivitySettleRefund, workflows.SettleRefundInput{OrderNo: orderNo, Refund: r})
	return n
}

func TestReconcileOfACorrectShopFindsNoDrift(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		f.billsAtOnce()
		paid, _ := f.paidOrder("R0000001")
		f.refunded("R0000002")
		stray := f.returnedStray("R0000003")
		f.coffeeOrder("R0000004") // never paid: in no bill

		sum, drifts := f.reconcile(dateOf(time.Now()))
		if sum.Drift != 0 || len(kindsOf(drifts, false)) != 0 {
			t.Fatalf("drift in a correct shop: %+v\n%+v", sum, drifts)
		}
		if want := map[string]int64{store.DriftStrayPayment: 1}; !maps.Equal(kindsOf(drifts, true), want) || sum.Explained != 1 {
			t.Errorf("listed apart %v, want %v", kindsOf(drifts, true), want)
		}
		// Three payments (one stray) and two refunds (the order's, the stray's).
		refundedTotal := f.getOrder("R0000002").TotalFen
		if sum.WechatPayments != 3 || sum.ShopPayments != 3 || sum.MatchedPayments != 3 ||
			sum.WechatRefunds != 2 || sum.ShopRefunds != 2 || sum.MatchedRefunds != 2 ||
			sum.WechatPaymentFen != paid.TotalFen+refundedTotal+stray.AmountFen || sum.WechatPaymentFen != sum.ShopPaymentFen ||
			sum.WechatRefundFen != refundedTotal+stray.AmountFen || sum.WechatRefundFen != sum.ShopRefundFen ||
			sum.BillRows != 5 || sum.BillSHA1 == "" || sum.NotReady || sum.NoStatement {
			t.Errorf("summary %+v", sum)
		}
		// Fees at 0.60 %, rounded to the fen per row, net of the refunds'.
		fee := func(fen int64) int64 { return (fen*60 + 5000) / 10000 * 1000 }
		if want := fee(paid.TotalFen) + fee(refundedTotal) + fee(stray.AmountFen) - fee(refundedTotal) - fee(stray.AmountFen); sum.FeeMilliFen != want {
			t.Errorf("fees %d, want %d (thousandths of a fen)", sum.FeeMilliFen, want)
		}
		if report, _, err := st.ReconcileReport(f.ctx, sum.BillDate); err != nil || report == nil || report.ID != sum.RunID || report.Status != store.RunComplete {
			t.Errorf("report %+v %v", report, err)
		}
	})
}

func TestReconcileFindsEachDriftKindAgainstWeChat(t *testing.T) {
	cases := []struct {
		name string
		make func(f *fx)
		want string
		note string // a word the drift's note must say
	}{
		{"a refund made by hand in the merchant platform", func(f *fx) {
			f.paidOrder("D0000001")
			if _, err := f.sim.MerchantRefund(paysim.MerchantRefundInput{OutTradeNo: "D0000001"}); err != nil {
				f.t.Fatal(err)
			}
		}, store.DriftRefundNotInShop, "counts this money as kept"},
		{"a payment under a number the shop never issued", func(f *fx) {
			if _, err := f.sim.ExternalPayment(paysim.ExternalPaymentInput{OutTradeNo: "NOTOURS0001", TotalFen: 990}); err != nil {
				f.t.Fatal(err)
			}
		}, store.DriftPaymentNotInShop, "no order with this number"},
		{"a payment the shop has and WeChat never took", func(f *fx) {
			o := f.coffeeOrder("D0000003")
			now := time.Now()
			if _, err := f.st.RecordPayment(f.ctx, store.Payment{TransactionID: "4200000000000000000000000003", OrderNo: o.OrderNo,
				AmountFen: o.TotalFen, TradeState: "SUCCESS", SuccessTime: &now}); err != nil {
				f.t.Fatal(err)
			}
		}, store.DriftPaymentNotAtWechat, "no such transaction"},
		{"a refund the shop asked for and WeChat never made", func(f *fx) {
			o, n := f.paidOrder("D0000004")
			if _, err := f.st.UpsertRefund(f.ctx, store.Refund{OutRefundNo: "D0000004-R1", OrderNo: o.OrderNo,
				TransactionID: n.TransactionID, RefundFen: o.TotalFen, TotalFen: o.TotalFen}); err != nil {
				f.t.Fatal(err)
			}
		}, store.DriftRefundNotAtWechat, "no such refund"},
		{"a payment of another amount", func(f *fx) {
			f.paidOrder("D0000005")
			f.exec(`UPDATE payments SET amount_fen = amount_fen - 1 WHERE order_no = 'D0000005'`)
		}, store.DriftPaymentAmount, "other amounts"},
		{"a refund of another amount", func(f *fx) {
			f.refunded("D0000006")
			f.exec(`UPDATE refunds SET refund_fen = refund_fen - 1 WHERE order_no = 'D0000006'`)
		}, store.DriftRefundAmount, "other amounts"},
		{"a refund the shop thinks failed", func(f *fx) {
			in, _ := f.refunding("D0000007")
			if _, err := f.sim.SettleRefund(in.OutRefundNo, paysim.RefundSuccess); err != nil {
				f.t.Fatal(err)
			}
			if err := f.st.UpdateRefundStatus(f.ctx, in.OutRefundNo, status.RefundClosed, ""); err != nil {
				f.t.Fatal(err)
			}
		}, store.DriftRefundStatus, "SUCCESS"},
		{"an order kept though WeChat refunded it", func(f *fx) {
			f.refunded("D0000008")
			f.exec(`UPDATE orders SET status = 'PAID' WHERE order_no = 'D0000008'`)
		}, store.DriftKeptButRefunded, "still PAID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, st *store.Store) {
				f := newFx(t, st)
				f.billsAtOnce()
				f.paidOrder("OK000001") // and one that matches
				c.make(f)
				sum, drifts := f.reconcile(dateOf(time.Now()))
				if got, want := kindsOf(drifts, false), map[string]int64{c.want: 1}; !maps.Equal(got, want) || sum.Drift != 1 ||
					!maps.Equal(sum.DriftByKind, want) {
					t.Fatalf("drift %v (summary %+v), want %v:\n%+v", got, sum.DriftByKind, want, drifts)
				}
				for _, d := range drifts {
					if d.Kind == c.want && !strings.Contains(d.Note, c.note) {
						t.Errorf("note %q does not say %q", d.Note, c.note)
					}
				}
			})
		})
	}
}

func (f *fx) exec(sql string, args ...any) {
	f.t.Helper()
	if err := f.st.DB().Exec(sql, args...).Error; err != nil {
		f.t.Fatal(err)
	}
}

// shiftedClock is real time plus an offset the test moves.
type shiftedClock struct{ off atomic.Int64 }

func (c *shiftedClock) now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *shiftedClock) at(t time.Time) { c.off.Store(int64(time.Until(t))) }
func (c *shiftedClock) real()          { c.off.Store(0) }

// A payment at 23:59:59 and its refund, asked for by the shop a moment
// later but accepted by WeChat after midnight: each day's bill has its
// part, and neither day shows drift.
func TestReconcileAcrossMidnightFindsNoDrift(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		clock := &shiftedClock{}
		f := newFx(t, st, func(o *fxOptions) { o.simClock = clock.now })
		f.billsAtOnce()
		now := time.Now().In(beijing)
		midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, beijing)
		yesterday, today := dateOf(midnight.Add(-time.Hour)), dateOf(midnight)

		o := f.coffeeOrder("M0000001")
		f.prepay(o)
		clock.at(midnight.Add(-time.Second)) // the payer pays at 23:59:59
		if _, err := f.sim.Pay(o.OrderNo); err != nil {
			t.Fatal(err)
		}
		clock.real() // signed calls need the clocks to agree
		n := f.payerPaysAlready(o.OrderNo)
		f.must(workflows.ActivityMarkPaid, workflows.MarkPaidInput{OrderNo: o.OrderNo, Payment: n})
		// The shop asks for the refund at 23:59:59.5; WeChat takes it at 00:00:00.5.
		outRefundNo := workflows.OrderRefundNo(o.OrderNo, 1)
		clock.at(midnight.Add(500 * time.Millisecond))
		r, err := f.sim.MerchantRefund(paysim.MerchantRefundInput{OutTradeNo: o.OrderNo, OutRefundNo: outRefundNo})
		clock.real()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpsertRefund(f.ctx, store.Refund{OutRefundNo: outRefundNo, OrderNo: o.OrderNo, TransactionID: n.TransactionID,
			RefundFen: o.TotalFen, TotalFen: o.TotalFen}); err != nil {
			t.Fatal(err)
		}
		f.exec(`UPDATE refunds SET refund_id = ?, created_at = ? WHERE out_refund_no = ?`, r.RefundID, midnight.Add(-500*time.Millisecond).UTC(), outRefundNo)
		f.transition(o.OrderNo, status.Paid, status.Refunding)
		f.must(workflows.ActivitySettleRefund, workflows.SettleRefundInput{OrderNo: o.OrderNo, Refund: f.settled(outRefundNo, paysim.RefundSuccess), OrderRefund: true})

		sum, drifts := f.reconcile(yesterday)
		if sum.Drift != 0 || sum.MatchedPayments != 1 || sum.WechatRefunds != 0 ||
			!maps.Equal(kindsOf(drifts, true), map[string]int64{store.DriftRefundOtherBill: 1}) {
			t.Fatalf("%s: %+v\n%+v", yesterday, sum, drifts)
		}
		if d := drifts[0]; d.OutRefundNo != outRefundNo || d.WechatTime == nil || dateOf(*d.WechatTime) != today || !strings.Contains(d.Note, today) {
			t.Errorf("the refund in the next bill: %+v", d)
		}
		sum, drifts = f.reconcile(today)
		if sum.Drift != 0 || len(drifts) != 0 || sum.MatchedRefunds != 1 || sum.WechatPayments != 0 || sum.ShopRefunds != 0 {
			t.Fatalf("%s: %+v\n%+v", today, sum, drifts)
		}
	})
}

// payerPaysAlready queries a payment the payer made at the simulator.
func (f *fx) payerPaysAlready(orderNo string) workflows.PaymentNotice {
	f.t.Helper()
	n := get[workflows.PaymentNotice](f.t, f.must(workflows.ActivityQueryPayment, orderNo))
	if !n.Paid() {
		f.t.Fatalf("not paid: %+v", n)
	}
	return n
}

func TestBadBillFailsTheAttemptAndIsNeverAReport(t *testing.T) {
	cases := []struct{ corrupt, says string }{
		{paysim.BillSHA1Mismatch, "SHA-1"},
		{paysim.BillTruncated, "unexpected EOF"},
		{paysim.BillMalformedRow, "not an amount"},
		{paysim.BillBadSummary, "does not add up"},
	}
	for _, c := range cases {
		t.Run(c.corrupt, func(t *testing.T) {
			st := storetest.NewPostgres(t)
			f := newFx(t, st)
			f.billsAtOnce()
			f.paidOrder("B0000001")
			date := dateOf(time.Now())
			good, _ := f.reconcile(date) // the date's report so far

			f.paidOrder("B0000002")
			f.faults(paysim.Faults{Bill: &paysim.BillFaults{Corrupt: c.corrupt}})
			runID := f.startRun(date)
			in := workflows.ReconcileBillInput{RunID: runID, BillDate: date}
			_, err := f.run(workflows.ActivityReconcileBill, in)
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeBadBill || appErr.NonRetryable() || !strings.Contains(appErr.Message(), c.says) {
				t.Fatalf("attempt on a bad bill: %v; want a retryable %s saying %q", err, workflows.ErrTypeBadBill, c.says)
			}
			report, latest, err := st.ReconcileReport(f.ctx, date)
			if err != nil || report.ID != good.RunID || latest.ID != runID || latest.Status != store.RunRunning {
				t.Fatalf("after a bad bill: report %+v, latest %+v, %v", report, latest, err)
			}
			// While the workflow retries, the run says why the attempt failed.
			if !strings.Contains(latest.Error, c.says) || strings.Contains(latest.Error, "retryable") {
				t.Errorf("running run's error %q does not say %q (without the SDK's decoration)", latest.Error, c.says)
			}
			// The next attempt downloads it again (the fault was for one bill).
			sum := get[workflows.ReconcileSummary](t, f.must(workflows.ActivityReconcileBill, in))
			if sum.Drift != 0 || sum.MatchedPayments != 2 {
				t.Fatalf("retried attempt: %+v", sum)
			}
			if report, _, _ := st.ReconcileReport(f.ctx, date); report.ID != runID || report.Error != "" {
				t.Errorf("the retried run is not the report, or keeps the failed attempt's reason: %+v", report)
			}
		})
	}
}

func TestRunThatKeepsGettingABadBillFailsWithTheReasonAndLeavesNothing(t *testing.T) {
	f := newFx(t, storetest.NewPostgres(t))
	f.billsAtOnce()
	f.paidOrder("B0000003")
	f.faults(paysim.Faults{Bill: &paysim.BillFaults{Corrupt: paysim.BillSHA1Mismatch, Count: -1}})
	date := dateOf(time.Now())
	runID := f.startRun(date)
	in := workflows.ReconcileBillInput{RunID: runID, BillDate: date}
	_, err := f.run(workflows.ActivityReconcileBill, in)
	if err == nil {
		t.Fatal("a bad bill accepted")
	}
	f.must(workflows.ActivityFailReconcileRun, workflows.FailReconcileInput{RunID: runID, Reason: err.Error()})
	report, latest, err := f.st.ReconcileReport(f.ctx, date)
	if err != nil || report != nil || latest.Status != store.RunFailed || !strings.Contains(latest.Error, "SHA-1") {
		t.Fatalf("report %+v, latest %+v, %v", report, latest, err)
	}
	var left int64
	f.st.DB().Raw(`SELECT (SELECT COUNT(*) FROM reconciliation_bill_rows) + (SELECT COUNT(*) FROM reconciliation_drifts)`).Scan(&left)
	if left != 0 {
		t.Errorf("%d staged or drift rows left by a failed run", left)
	}
	// A failed run is not attempted again.
	_, err = f.run(workflows.ActivityReconcileBill, in)
	wantNonRetryable(t, err, workflows.ErrTypeStatusConflict)
}

func TestBillNotMadeYetIsNotReadyAndADayWithoutTradesIsEmpty(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		f.paidOrder("N0000001")
		today := dateOf(time.Now())
		runID := f.startRun(today)
		sum := get[workflows.ReconcileSummary](t, f.must(workflows.ActivityReconcileBill, workflows.ReconcileBillInput{RunID: runID, BillDate: today}))
		if !sum.NotReady {
			t.Fatalf("today's bill before 10:00 tomorrow: %+v", sum)
		}
		if run, err := st.GetReconcileRun(f.ctx, runID); err != nil || run.Status != store.RunRunning || run.BillState != store.BillCreating {
			t.Errorf("run %+v %v", run, err)
		}
		f.billsAtOnce()
		before := dateOf(time.Now().AddDate(0, 0, -2))
		sum, drifts := f.reconcile(before)
		if !sum.NoStatement || sum.Drift != 0 || len(drifts) != 0 || sum.BillRows != 0 {
			t.Fatalf("a day without trades: %+v %+v", sum, drifts)
		}
	})
}

func TestReconcileBillAgainAfterItCompletedReturnsTheSameReport(t *testing.T) {
	f := newFx(t, storetest.NewSQLite(t))
	f.billsAtOnce()
	f.paidOrder("S0000001")
	date := dateOf(time.Now())
	runID := f.startRun(date)
	in := workflows.ReconcileBillInput{RunID: runID, BillDate: date}
	first := get[workflows.ReconcileSummary](t, f.must(workflows.ActivityReconcileBill, in))
	f.paidOrder("S0000002") // would change a new comparison
	second := get[workflows.ReconcileSummary](t, f.must(workflows.ActivityReconcileBill, in))
	if first.RunID != second.RunID || first.MatchedPayments != 1 || second.MatchedPayments != 1 || second.BillSHA1 != first.BillSHA1 {
		t.Fatalf("first %+v\nsecond %+v", first, second)
	}
}
