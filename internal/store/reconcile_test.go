package store_test

import (
	"errors"
	"maps"
	"testing"
	"time"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
)

var beijing = time.FixedZone("CST", 8*3600)

// The day reconciled in these tests, 2026-12-05 in Beijing time.
var (
	day     = store.DayWindow{From: time.Date(2026, 12, 5, 0, 0, 0, 0, beijing), To: time.Date(2026, 12, 6, 0, 0, 0, 0, beijing)}
	atHour  = func(h int) time.Time { return day.From.Add(time.Duration(h) * time.Hour) }
	oneDate = "2026-12-05"
)

// reconShop builds the shop's side of a day and the bill's rows, one
// situation per drift kind (and the situations that are not drift).
type reconShop struct {
	t       *testing.T
	s       *store.Store
	user    store.User
	product store.Product
	rows    []store.BillRow
}

// order makes an order in status st with transaction txID.
func (r *reconShop) order(no string, st status.Order, txID string, total int64) {
	r.t.Helper()
	_, err := r.s.CreateOrder(r.t.Context(), store.Order{OrderNo: no, UserID: r.user.ID, PayDeadline: atHour(23),
		Items: []store.OrderItem{{ProductID: r.product.ID, Name: r.product.Name, UnitPriceFen: total, Quantity: 1}}})
	if err != nil {
		r.t.Fatal(err)
	}
	if st == status.Pending {
		return
	}
	err = r.s.DB().Exec(`UPDATE orders SET status = ?, transaction_id = ? WHERE order_no = ?`, string(st), txID, no).Error
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *reconShop) payment(no, txID string, fen int64, at time.Time) {
	r.t.Helper()
	if _, err := r.s.RecordPayment(r.t.Context(), store.Payment{TransactionID: txID, OrderNo: no, AmountFen: fen, TradeState: "SUCCESS", SuccessTime: &at}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *reconShop) refund(outRefundNo, no, txID string, fen, total int64, st status.Refund, refundID string, at time.Time) {
	r.t.Helper()
	ctx := r.t.Context()
	if _, err := r.s.UpsertRefund(ctx, store.Refund{OutRefundNo: outRefundNo, OrderNo: no, TransactionID: txID, RefundFen: fen, TotalFen: total}); err != nil {
		r.t.Fatal(err)
	}
	if err := r.s.DB().Exec(`UPDATE refunds SET status = ?, refund_id = ?, created_at = ? WHERE out_refund_no = ?`,
		string(st), refundID, at.UTC(), outRefundNo).Error; err != nil {
		r.t.Fatal(err)
	}
}

func (r *reconShop) billPayment(no, txID string, fen int64, at time.Time) {
	r.rows = append(r.rows, store.BillRow{Line: int64(len(r.rows) + 2), Kind: store.BillRowPayment, TransactionID: txID, OutTradeNo: no, AmountFen: fen, TradedAt: at})
}

func (r *reconShop) billRefund(outRefundNo, no, txID string, fen int64, status string, at time.Time) {
	r.rows = append(r.rows, store.BillRow{Line: int64(len(r.rows) + 2), Kind: store.BillRowRefund, TransactionID: txID, OutTradeNo: no,
		OutRefundNo: outRefundNo, AmountFen: fen, Status: status, TradedAt: at})
}

// newDay makes the situations; the comment of each says what the
// comparison must find.
func newDay(t *testing.T, s *store.Store) *reconShop {
	r := &reconShop{t: t, s: s, user: mustUser(t, s), product: mustProduct(t, s, 100, 1000)}
	// Paid, in the bill: matched.
	r.order("A", status.Paid, "txA", 1000)
	r.payment("A", "txA", 1000, atHour(10))
	r.billPayment("A", "txA", 1000, atHour(10))
	// Paid at 23:59:59, refunded by the shop: both matched.
	r.order("B", status.Refunded, "txB", 2000)
	r.payment("B", "txB", 2000, day.To.Add(-time.Second))
	r.billPayment("B", "txB", 2000, day.To.Add(-time.Second))
	r.refund("B-R1", "B", "txB", 2000, 2000, status.RefundSuccess, "rB", atHour(11))
	r.billRefund("B-R1", "B", "txB", 2000, "SUCCESS", atHour(11))
	// Paid after its order closed, returned: STRAY_PAYMENT (explained).
	r.order("C", status.Closed, "", 3000)
	r.payment("C", "txC", 3000, atHour(12))
	r.billPayment("C", "txC", 3000, atHour(12))
	r.refund("StxC", "C", "txC", 3000, 3000, status.RefundSuccess, "rC", atHour(12))
	r.billRefund("StxC", "C", "txC", 3000, "SUCCESS", atHour(12))
	// A number the shop never issued: PAYMENT_NOT_IN_SHOP.
	r.billPayment("FOREIGN1", "txX", 500, atHour(13))
	// Other amounts: PAYMENT_AMOUNT_DIFFERS.
	r.order("D", status.Paid, "txD", 1000)
	r.payment("D", "txD", 999, atHour(13))
	r.billPayment("D", "txD", 1000, atHour(13))
	// The shop's payment the bill lacks: PAYMENT_NOT_AT_WECHAT (unresolved).
	r.order("E", status.Paid, "txE", 700)
	r.payment("E", "txE", 700, atHour(14))
	// A refund by hand of A, which the shop keeps: REFUND_NOT_IN_SHOP.
	r.billRefund("MP1", "A", "txA", 1000, "SUCCESS", atHour(15))
	// The shop's refund the bill lacks: REFUND_NOT_AT_WECHAT (unresolved).
	r.order("F", status.Refunding, "txF", 800)
	r.refund("F-R1", "F", "txF", 800, 800, status.RefundProcessing, "rF", atHour(15))
	// A refund WeChat refused outright never reached its books: nothing.
	r.order("G", status.RefundFailed, "txG", 900)
	r.refund("G-R1", "G", "txG", 900, 900, status.RefundClosed, "", atHour(15))
	// Other refund amounts: REFUND_AMOUNT_DIFFERS.
	r.order("H", status.Refunded, "txH", 600)
	r.refund("H-R1", "H", "txH", 400, 600, status.RefundSuccess, "rH", atHour(16))
	r.billRefund("H-R1", "H", "txH", 500, "SUCCESS", atHour(16))
	// The bill says SUCCESS, the shop CLOSED: REFUND_STATUS_DIFFERS.
	r.order("I", status.RefundFailed, "txI", 300)
	r.refund("I-R1", "I", "txI", 300, 300, status.RefundClosed, "rI", atHour(17))
	r.billRefund("I-R1", "I", "txI", 300, "SUCCESS", atHour(17))
	// Refunded in full, the order still PAID: ORDER_KEPT_BUT_REFUNDED.
	r.order("J", status.Paid, "txJ", 1200)
	r.refund("J-R1", "J", "txJ", 1200, 1200, status.RefundSuccess, "rJ", atHour(18))
	r.billRefund("J-R1", "J", "txJ", 1200, "SUCCESS", atHour(18))
	// Other days: not this day's business.
	r.order("K", status.Paid, "txK", 100)
	r.payment("K", "txK", 100, day.From.Add(-time.Second))
	r.refund("K-R1", "K", "txK", 100, 100, status.RefundProcessing, "rK", day.To)
	return r
}

func TestReconcileComparisonFindsEachKindOfDrift(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		r := newDay(t, s)
		run, err := s.StartReconcileRun(ctx, oneDate, "reconcile-"+oneDate, "run-1")
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.StartReconcileRun(ctx, oneDate, "reconcile-"+oneDate, "run-1")
		if err != nil || again.ID != run.ID || run.Status != store.RunRunning {
			t.Fatalf("the same workflow run started twice: %+v %+v %v", run, again, err)
		}
		attempt, err := s.ResetReconcileRun(ctx, run.ID)
		if err != nil || attempt != 1 {
			t.Fatalf("first attempt %d %v", attempt, err)
		}
		for i := range r.rows {
			r.rows[i].RunID, r.rows[i].Attempt = run.ID, attempt
		}
		if err := s.StageBillRows(ctx, r.rows); err != nil {
			t.Fatal(err)
		}
		if err := s.CompareReconcileRun(ctx, run.ID, attempt, day, "S"); err != nil {
			t.Fatal(err)
		}
		open, err := s.UnresolvedShopDrifts(ctx, run.ID, attempt, 10)
		if err != nil {
			t.Fatal(err)
		}
		unresolved := map[string]string{}
		for _, d := range open {
			unresolved[d.Kind] = d.OutTradeNo
		}
		if want := map[string]string{store.DriftPaymentNotAtWechat: "E", store.DriftRefundNotAtWechat: "F"}; !maps.Equal(unresolved, want) {
			t.Fatalf("unresolved %v, want %v", unresolved, want)
		}
		// Until it completes, the run is no report.
		if report, latest, err := s.ReconcileReport(ctx, oneDate); err != nil || report != nil || latest.ID != run.ID {
			t.Fatalf("report while running: %+v %+v %v", report, latest, err)
		}
		// WeChat, asked, says F's refund was accepted the next day.
		f := open[0]
		if f.Kind != store.DriftRefundNotAtWechat {
			f = open[1]
		}
		next := day.To.Add(time.Second)
		fen := int64(800)
		f.Kind, f.Note, f.WechatTime, f.WechatFen = store.DriftRefundOtherBill, "accepted the next day", &next, &fen
		if err := s.ResolveDrift(ctx, f); err != nil {
			t.Fatal(err)
		}
		done, err := s.CompleteReconcileRun(ctx, run.ID, attempt, store.BillTotals{State: store.BillReady, SHA1: "ab", Rows: int64(len(r.rows)),
			Payments: 5, PaymentFen: 7500, Refunds: 6, RefundFen: 8000, FeeMilliFen: 12000}, day)
		if err != nil {
			t.Fatal(err)
		}
		counts, err := s.DriftCounts(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{
			store.DriftPaymentNotInShop: 1, store.DriftPaymentAmount: 1, store.DriftPaymentNotAtWechat: 1,
			store.DriftRefundNotInShop: 1, store.DriftRefundAmount: 1, store.DriftRefundStatus: 1, store.DriftKeptButRefunded: 1,
			store.DriftStrayPayment: 1, store.DriftRefundOtherBill: 1,
		}
		if !maps.Equal(counts, want) {
			t.Errorf("drift by kind %v\nwant %v", counts, want)
		}
		// The shop's day: A B C D E (K is the day before), B C F H I J (G was
		// refused, K-R1 is the next day).
		if done.Status != store.RunComplete || done.Drift != 7 || done.Explained != 2 || done.FinishedAt == nil ||
			done.ShopPayments != 5 || done.ShopPaymentFen != 1000+2000+3000+999+700 ||
			done.ShopRefunds != 6 || done.ShopRefundFen != 2000+3000+800+400+300+1200 ||
			done.MatchedPayments != 3 || done.MatchedRefunds != 4 || done.WechatFeeMilliFen != 12000 || done.BillSHA1 != "ab" {
			t.Errorf("completed run %+v", done)
		}
		drifts, err := s.ListDrifts(ctx, run.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range drifts {
			switch d.Kind {
			case store.DriftRefundNotInShop:
				if d.OutRefundNo != "MP1" || d.OrderStatus != "PAID" || d.ShopFen != nil || *d.WechatFen != 1000 ||
					d.Note == "" || d.Explained {
					t.Errorf("hand-made refund: %+v", d)
				}
			case store.DriftPaymentNotInShop:
				if d.OutTradeNo != "FOREIGN1" || d.OrderStatus != "" || d.WechatTime == nil || !d.WechatTime.Equal(atHour(13)) {
					t.Errorf("foreign payment: %+v", d)
				}
			case store.DriftStrayPayment:
				if !d.Explained || d.OutRefundNo != "StxC" || d.OrderStatus != "CLOSED" {
					t.Errorf("stray payment: %+v", d)
				}
			case store.DriftPaymentAmount:
				if *d.WechatFen != 1000 || *d.ShopFen != 999 {
					t.Errorf("amounts: %+v", d)
				}
			}
		}
		var staged int64
		if err := s.DB().Raw(`SELECT COUNT(*) FROM reconciliation_bill_rows`).Scan(&staged).Error; err != nil || staged != 0 {
			t.Errorf("%d bill rows left after the run (%v)", staged, err)
		}
	})
}

func TestReconcileRerunReplacesTheReportOnlyWhenItCompletes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		r := newDay(t, s)
		complete := func(runID string, rows []store.BillRow) store.ReconcileRun {
			t.Helper()
			run, err := s.StartReconcileRun(ctx, oneDate, "reconcile-"+oneDate, runID)
			if err != nil {
				t.Fatal(err)
			}
			attempt := stageAndCompare(t, s, run.ID, rows)
			done, err := s.CompleteReconcileRun(ctx, run.ID, attempt, store.BillTotals{State: store.BillReady, Rows: int64(len(rows))}, day)
			if err != nil {
				t.Fatal(err)
			}
			return done
		}
		first := complete("run-1", r.rows)
		second := complete("run-2", append([]store.BillRow(nil), r.rows...))
		report, latest, err := s.ReconcileReport(ctx, oneDate)
		if err != nil || report.ID != second.ID || latest.ID != second.ID {
			t.Fatalf("after a rerun: report %+v latest %+v %v", report, latest, err)
		}
		if old, err := s.GetReconcileRun(ctx, first.ID); err != nil || old.Status != store.RunSuperseded {
			t.Errorf("first run %+v %v", old, err)
		}
		if rows, err := s.ListDrifts(ctx, first.ID, 0, 10); err != nil || len(rows) != 0 {
			t.Errorf("the superseded run keeps %d drift rows (%v)", len(rows), err)
		}

		// A third run writes drift, then fails: the second stays the report.
		third, err := s.StartReconcileRun(ctx, oneDate, "reconcile-"+oneDate, "run-3")
		if err != nil {
			t.Fatal(err)
		}
		stageAndCompare(t, s, third.ID, append([]store.BillRow(nil), r.rows[:3]...))
		failed, err := s.FailReconcileRun(ctx, third.ID, "bill of 2026-12-05: SHA-1 mismatch")
		if err != nil || failed.Status != store.RunFailed || failed.Error == "" || failed.FinishedAt == nil {
			t.Fatalf("failed run %+v %v", failed, err)
		}
		report, latest, err = s.ReconcileReport(ctx, oneDate)
		if err != nil || report.ID != second.ID || report.Drift != second.Drift || latest.ID != third.ID {
			t.Fatalf("after a failed rerun: report %+v latest %+v %v", report, latest, err)
		}
		if n, err := s.DriftCounts(ctx, third.ID); err != nil || len(n) != 0 {
			t.Errorf("the failed run keeps drift %v (%v)", n, err)
		}
		// An ended run cannot be completed, reset or failed again.
		if _, err := s.CompleteReconcileRun(ctx, third.ID, 1, store.BillTotals{}, day); !errors.Is(err, store.ErrRunNotRunning) {
			t.Errorf("completing a failed run: %v", err)
		}
		if _, err := s.ResetReconcileRun(ctx, second.ID); !errors.Is(err, store.ErrRunNotRunning) {
			t.Errorf("resetting a complete run: %v", err)
		}
		if again, err := s.FailReconcileRun(ctx, second.ID, "late"); err != nil || again.Status != store.RunComplete {
			t.Errorf("failing a complete run: %+v %v", again, err)
		}
		if _, err := s.StartReconcileRun(ctx, "2026-02-30", "x", "run-4"); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("a date that is not one: %v", err)
		}
	})
}

// stageAndCompare starts an attempt at a run, stages rows and compares them.
func stageAndCompare(t *testing.T, s *store.Store, runID int64, rows []store.BillRow) int64 {
	t.Helper()
	attempt, err := s.ResetReconcileRun(t.Context(), runID)
	if err != nil {
		t.Fatal(err)
	}
	rows = append([]store.BillRow(nil), rows...)
	for i := range rows {
		rows[i].RunID, rows[i].Attempt = runID, attempt
	}
	if err := s.StageBillRows(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	if err := s.CompareReconcileRun(t.Context(), runID, attempt, day, "S"); err != nil {
		t.Fatal(err)
	}
	return attempt
}

// An attempt that timed out but still works (its worker lost touch with
// Temporal) writes alongside the retry: what it writes never shows, and it
// cannot complete the run.
func TestReconcileAttemptThatTimedOutCannotWriteTheReport(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		r := newDay(t, s)
		run, err := s.StartReconcileRun(ctx, oneDate, "reconcile-"+oneDate, "run-z")
		if err != nil {
			t.Fatal(err)
		}
		old := stageAndCompare(t, s, run.ID, r.rows)
		// The retry starts while the old attempt is still at work.
		latest := stageAndCompare(t, s, run.ID, r.rows[:1]) // a bill of one matched payment
		if latest != old+1 {
			t.Fatalf("attempts %d then %d", old, latest)
		}
		// The old attempt goes on writing, then tries to complete.
		zombie := append([]store.BillRow(nil), r.rows...)
		for i := range zombie {
			zombie[i].RunID, zombie[i].Attempt = run.ID, old
		}
		if err := s.StageBillRows(ctx, zombie); err != nil {
			t.Fatal(err)
		}
		if err := s.CompareReconcileRun(ctx, run.ID, old, day, "S"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CompleteReconcileRun(ctx, run.ID, old, store.BillTotals{}, day); !errors.Is(err, store.ErrRunNotRunning) {
			t.Fatalf("the old attempt completed the run: %v", err)
		}
		done, err := s.CompleteReconcileRun(ctx, run.ID, latest, store.BillTotals{State: store.BillReady, Rows: 1}, day)
		if err != nil {
			t.Fatal(err)
		}
		// The latest attempt's bill had only A's payment: the shop's other
		// payments and refunds of the day are what it lacks, nothing else.
		counts, err := s.DriftCounts(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if done.MatchedPayments != 1 || counts[store.DriftPaymentNotInShop] != 0 || counts[store.DriftStrayPayment] != 0 ||
			counts[store.DriftPaymentNotAtWechat] != 4 || done.Drift != counts[store.DriftPaymentNotAtWechat]+counts[store.DriftRefundNotAtWechat] {
			t.Fatalf("report %+v, drift %v: the old attempt's rows counted", done, counts)
		}
		// Written after the report: never read, and removed with the next run's.
		if err := s.CompareReconcileRun(ctx, run.ID, old, day, "S"); err != nil {
			t.Fatal(err)
		}
		if rows, err := s.ListDrifts(ctx, run.ID, 0, 1000); err != nil || int64(len(rows)) != done.Drift+done.Explained {
			t.Errorf("%d drift rows listed for a report of %d (%v)", len(rows), done.Drift+done.Explained, err)
		}
	})
}

// An order the shop keeps with refunds of some of its items, which the
// shop asked for and WeChat made, is no drift — each part matches its bill
// row, and none refunded the whole payment.
func TestReconcilePartRefundsOfAKeptOrderAreNoDrift(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		r := &reconShop{t: t, s: s, user: mustUser(t, s), product: mustProduct(t, s, 100, 1000)}
		r.order("P", status.Paid, "txP", 17600)
		r.payment("P", "txP", 17600, atHour(9))
		r.billPayment("P", "txP", 17600, atHour(9))
		r.refund("P-R1", "P", "txP", 1200, 17600, status.RefundSuccess, "rP1", atHour(10))
		r.billRefund("P-R1", "P", "txP", 1200, "SUCCESS", atHour(10))
		r.refund("P-R2", "P", "txP", 8200, 17600, status.RefundSuccess, "rP2", atHour(11))
		r.billRefund("P-R2", "P", "txP", 8200, "SUCCESS", atHour(11))
		// A part for every item that WeChat could not make (ABNORMAL: the
		// bill's CHANGE) leaves the order PAID, flagged for a person: the
		// payment was not refunded, so the order keeping it is no drift.
		r.order("Q", status.Paid, "txQ", 900)
		r.payment("Q", "txQ", 900, atHour(9))
		r.billPayment("Q", "txQ", 900, atHour(9))
		r.refund("Q-R1", "Q", "txQ", 900, 900, status.RefundAbnormal, "rQ1", atHour(12))
		r.billRefund("Q-R1", "Q", "txQ", 900, "CHANGE", atHour(12))
		run, err := s.StartReconcileRun(ctx, oneDate, "reconcile-"+oneDate, "run-parts")
		if err != nil {
			t.Fatal(err)
		}
		attempt, err := s.ResetReconcileRun(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i := range r.rows {
			r.rows[i].RunID, r.rows[i].Attempt = run.ID, attempt
		}
		if err := s.StageBillRows(ctx, r.rows); err != nil {
			t.Fatal(err)
		}
		if err := s.CompareReconcileRun(ctx, run.ID, attempt, day, "S"); err != nil {
			t.Fatal(err)
		}
		done, err := s.CompleteReconcileRun(ctx, run.ID, attempt, store.BillTotals{State: store.BillReady, SHA1: "cd", Rows: int64(len(r.rows)),
			Payments: 2, PaymentFen: 18500, Refunds: 3, RefundFen: 10300}, day)
		if err != nil {
			t.Fatal(err)
		}
		counts, err := s.DriftCounts(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) != 0 || done.Drift != 0 || done.MatchedRefunds != 3 || done.MatchedPayments != 2 {
			t.Errorf("drift %v, run %+v; want none, every refund matched", counts, done)
		}
	})
}
