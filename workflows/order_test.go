package workflows

import (
	"slices"
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/testsuite"

	"ordersaga/internal/metrics"
	"ordersaga/internal/status"
)

// Each test drives one order through a path of its life in the SDK's
// time-skipping environment: steps are scheduled at workflow times (minutes
// and days pass in microseconds), then the workflow runs to its end.

func TestUnpaidOrderIsClosedWhenItsDeadlinePasses(t *testing.T) {
	tests := []struct {
		name        string
		prepay      bool // the user asked to pay (WeChat knows the order)
		wantQueries int
		wantCloses  int
	}{
		{"never asked to pay: closed without calling WeChat", false, 0, 0},
		{"prepaid, never paid: query, close at WeChat, query, closed", true, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			h := newHarness(t, w)
			if tt.prepay {
				h.update(time.Minute, UpdatePay)
			}
			before := h.state(14 * time.Minute)
			final := h.run()

			if before.Status != status.Pending {
				t.Fatalf("state at 14m = %s, want PENDING", before.Status)
			}
			if final.Status != status.Closed || w.order(orderNo).status != status.Closed {
				t.Fatalf("final %s, row %s", final.Status, w.order(orderNo).status)
			}
			if h.elapsed() < 15*time.Minute {
				t.Fatalf("closed after %v, before the 15m deadline", h.elapsed())
			}
			if q, c := w.count(ActivityQueryPayment), w.count(ActivityClosePayment); q != tt.wantQueries || c != tt.wantCloses {
				t.Fatalf("WeChat queries %d closes %d; want %d and %d", q, c, tt.wantQueries, tt.wantCloses)
			}
			if tt.prepay && w.trades[orderNo].state != TradeClosed {
				t.Fatalf("WeChat trade state %s, want CLOSED", w.trades[orderNo].state)
			}
			if w.stockOf(1) != 10 {
				t.Fatalf("stock changed to %d for an unpaid order", w.stockOf(1))
			}
			if !slices.Equal(statuses(final), []status.Order{status.Closed}) || final.Transitions[0].Why != "payment deadline passed" {
				t.Fatalf("transitions %+v", final.Transitions)
			}
		})
	}
}

func TestDeadlineFindsThePaymentWeChatTook(t *testing.T) {
	tests := []struct {
		name        string
		closeOnPaid string
		setup       func(w *world)
	}{
		{"the notify was lost: the first query says SUCCESS", "refuse", func(w *world) {
			w.onQuery = func(w *world, no string, n int) {
				if n == 1 {
					w.payLocked(no)
				}
			}
		}},
		{"paid a moment before the close, close refused", "refuse", func(w *world) {
			w.onClose = func(w *world, no string) { w.payLocked(no) }
		}},
		{"paid a moment before the close, close answered 204", "ok204", func(w *world) {
			w.onClose = func(w *world, no string) { w.payLocked(no) }
		}},
		{"the payer was entering the password and finished during the grace", "refuse", func(w *world) {
			w.onQuery = func(w *world, no string, n int) {
				switch n {
				case 1:
					w.trades[no].state = TradeUserPaying
				case 2:
					w.payLocked(no)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			w.closeOnPaid = tt.closeOnPaid
			tt.setup(w)
			h := newHarness(t, w)
			h.update(time.Minute, UpdatePay)
			paid := h.state(20 * time.Minute)
			h.update(21*time.Minute, UpdateShip, ShipRequest{})
			h.update(22*time.Minute, UpdateConfirm)
			final := h.run()

			if paid.Status != status.Paid || paid.TransactionID != "tx-"+orderNo {
				t.Fatalf("after the deadline: %s %q, want PAID", paid.Status, paid.TransactionID)
			}
			if final.Status != status.Completed || w.count(ActivityCloseOrder) != 0 {
				t.Fatalf("final %s, CloseOrder calls %d", final.Status, w.count(ActivityCloseOrder))
			}
			if w.stockOf(1) != 8 {
				t.Fatalf("stock %d, want 8 (2 deducted once)", w.stockOf(1))
			}
		})
	}
}

func TestPayerStillEnteringThePasswordGetsAGraceThenTheOrderCloses(t *testing.T) {
	w := newWorld()
	w.onQuery = func(w *world, no string, n int) {
		if w.trades[no].state == TradeNotPay {
			w.trades[no].state = TradeUserPaying
		}
	}
	w.onClose = func(w *world, no string) {
		// The payer gave up: WeChat closes it.
		w.trades[no].state = TradeNotPay
	}
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	final := h.run()

	if final.Status != status.Closed {
		t.Fatalf("final %s", final.Status)
	}
	// Four grace periods of 30 s after the deadline, then the close.
	if min := 15*time.Minute + userPayingRounds*userPayingGrace; h.elapsed() < min {
		t.Fatalf("closed after %v, before the grace (%v)", h.elapsed(), min)
	}
	if q := w.count(ActivityQueryPayment); q != userPayingRounds+2 {
		t.Fatalf("queries %d, want %d", q, userPayingRounds+2)
	}
}

func TestCloseThatWeChatNeverConfirmsEndsClosedAndFlagged(t *testing.T) {
	w := newWorld()
	w.closeHasNoEffect = true
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	final := h.run()

	if final.Status != status.Closed || !slices.Contains(final.Flags, FlagCloseUnconfirmed) {
		t.Fatalf("final %s flags %v", final.Status, final.Flags)
	}
	if !slices.Contains(w.order(orderNo).flags, FlagCloseUnconfirmed) {
		t.Fatalf("row flags %v", w.order(orderNo).flags)
	}
	if c := w.count(ActivityClosePayment); c != closeAttempts {
		t.Fatalf("close attempts %d, want %d", c, closeAttempts)
	}
}

func TestPaymentNotifyMarksPaidAndDeductsStockOnce(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	// WeChat repeats notifies; the mini-program's sync finds the same payment.
	h.signal(3*time.Minute, SignalPayment, h.payment())
	sync := h.update(4*time.Minute, UpdateSync)
	paid := h.state(5 * time.Minute)
	h.signal(6*time.Minute, SignalPayment, h.payment())
	h.update(time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF123"})
	h.update(2*time.Hour, UpdateConfirm)
	final := h.run()

	if paid.Status != status.Paid || paid.TransactionID != "tx-"+orderNo {
		t.Fatalf("after the notify: %+v", paid)
	}
	if n := w.count(ActivityMarkPaid); n != 1 {
		t.Fatalf("MarkPaid ran %d times for one payment", n)
	}
	if n := w.count(ActivityDeductStock); n != 1 || w.stockOf(1) != 8 {
		t.Fatalf("DeductStock ran %d times, stock %d", n, w.stockOf(1))
	}
	// Nothing left to ask WeChat once PAID: the API reads PAID from the row.
	sync.refusedWith(t, ErrTypeSyncNotNeeded)
	if final.Status != status.Completed || w.order(orderNo).tracking != "SF123" {
		t.Fatalf("final %s, tracking %q", final.Status, w.order(orderNo).tracking)
	}
	want := []status.Order{status.Paid, status.Shipped, status.Completed}
	if got := statuses(final); !slices.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
	for _, to := range want {
		if n := h.counted(MetricOrderTransitions, map[string]string{"to": string(to)}); n != 1 {
			t.Errorf("%s transitions counted %v, want 1", to, n)
		}
	}
	if len(h.strayInputs) != 0 {
		t.Fatalf("repeats of the kept payment were treated as stray money: %v", h.strayInputs)
	}
	if w.count(ActivityQueryPayment) != 0 || w.count(ActivityRequestRefund) != 0 {
		t.Fatalf("a notified payment needed no query and no refund: %d %d", w.count(ActivityQueryPayment), w.count(ActivityRequestRefund))
	}
}

func TestPaymentThatDoesNotMatchTheOrderIsNeverPaidAndIsReturned(t *testing.T) {
	tests := []struct {
		name   string
		spoil  func(p *PaymentNotice)
		reason string
	}{
		{"amount", func(p *PaymentNotice) { p.AmountFen = 1 }, "amount is 1 fen"},
		{"appid", func(p *PaymentNotice) { p.AppID = "wx-someone-else" }, "appid"},
		{"mchid", func(p *PaymentNotice) { p.MchID = "1999999999" }, "mchid"},
		{"currency", func(p *PaymentNotice) { p.Currency = "USD" }, "currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			w.refundSettlesAs = status.RefundSuccess
			h := newHarness(t, w)
			h.update(time.Minute, UpdatePay)
			h.signal(2*time.Minute, SignalPayment, func() any {
				p := h.w.pay(orderNo)
				tt.spoil(&p)
				return p
			})
			final := h.run()

			if final.Status != status.Closed || w.count(ActivityMarkPaid) != 0 {
				t.Fatalf("final %s, MarkPaid calls %d", final.Status, w.count(ActivityMarkPaid))
			}
			if !slices.Contains(final.Flags, FlagPaymentMismatch) || !slices.Contains(w.order(orderNo).flags, FlagPaymentMismatch) {
				t.Fatalf("flags: workflow %v, row %v", final.Flags, w.order(orderNo).flags)
			}
			if n := h.counted(MetricOrdersFlagged, map[string]string{"flag": FlagPaymentMismatch}); n != 1 {
				t.Errorf("mismatch counted %v times, want 1 (operators alert on it)", n)
			}
			// The order ends at once; its stray payment workflow (abandoned
			// by design) finishes after it, so its input and effects are checked.
			stray, ok := h.strayInputs[StrayPaymentWorkflowID("tx-"+orderNo)]
			if !ok || stray.Payment.TransactionID != "tx-"+orderNo || !strings.Contains(stray.Reason, tt.reason) {
				t.Fatalf("stray payment workflow started with %+v (ok=%v)", stray, ok)
			}
			if r := w.refund(StrayRefundNo("tx-" + orderNo)); r.status != status.RefundSuccess || r.txID != "tx-"+orderNo {
				t.Fatalf("WeChat refund %+v", r)
			}
			if w.stockOf(1) != 10 {
				t.Fatalf("stock %d changed", w.stockOf(1))
			}
		})
	}
}

func TestPaidOrderOutOfStockIsRefunded(t *testing.T) {
	tests := []struct {
		name       string
		notify     status.Refund // refund status the notify reports ("" = no notify comes)
		settleAs   status.Refund // status a query finds
		wantStatus status.Order
	}{
		{"refund notify says SUCCESS", status.RefundSuccess, "", status.Refunded},
		{"no notify: a query finds SUCCESS", "", status.RefundSuccess, status.Refunded},
		{"refund closed at WeChat", status.RefundClosed, "", status.RefundFailed},
		{"refund abnormal at WeChat", "", status.RefundAbnormal, status.RefundFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			w.refundSettlesAs = tt.settleAs
			h := newHarness(t, w)
			h.update(time.Minute, UpdatePay)
			// The last units sold to someone else between pay and payment.
			h.at(90*time.Second, func() { w.setStock(1, 1) })
			h.signal(2*time.Minute, SignalPayment, h.payment())
			if tt.notify != "" {
				h.signal(3*time.Minute, SignalRefund, func() any { return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), tt.notify) })
			}
			final := h.run()

			if final.Status != tt.wantStatus || w.order(orderNo).status != tt.wantStatus {
				t.Fatalf("final %s, row %s; want %s", final.Status, w.order(orderNo).status, tt.wantStatus)
			}
			want := []status.Order{status.Paid, status.Refunding, tt.wantStatus}
			if got := statuses(final); !slices.Equal(got, want) {
				t.Fatalf("transitions %v, want %v", got, want)
			}
			r := w.refund(OrderRefundNo(orderNo, 1))
			if r.amount != 17600 || r.txID != "tx-"+orderNo {
				t.Fatalf("refund %+v, want the full 17600 fen of tx-%s", r, orderNo)
			}
			if w.stockOf(1) != 1 || w.restored[orderNo] != 0 {
				t.Fatalf("stock %d restored %d: nothing was deducted, nothing to restore", w.stockOf(1), w.restored[orderNo])
			}
			failed := tt.wantStatus == status.RefundFailed
			if slices.Contains(final.Flags, FlagRefundFailed) != failed {
				t.Fatalf("flags %v", final.Flags)
			}
			if n := h.counted(MetricOrdersFlagged, map[string]string{"flag": FlagRefundFailed}); (n == 1) != failed {
				t.Errorf("REFUND_FAILED counted %v times", n)
			}
		})
	}
}

// A refund WeChat leaves PROCESSING: the order asks with backoff (not every
// few seconds for days), is flagged for a person once it has waited
// refundStallAfter, stays REFUNDING, and ends REFUNDED when WeChat settles.
func TestRefundWeChatLeavesProcessingIsAskedWithBackoffAndFlaggedOnce(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	h.update(time.Hour, UpdateRequestRefund, RefundRequest{By: ByUser, Reason: "changed my mind"})
	stalled := h.state(time.Hour + refundStallAfter + time.Hour)
	h.at(time.Hour+4*24*time.Hour, func() {
		w.mu.Lock()
		w.refundSettlesAs = status.RefundSuccess
		w.mu.Unlock()
	})
	final := h.run()

	if stalled.Status != status.Refunding || !slices.Contains(stalled.Flags, FlagRefundStalled) {
		t.Fatalf("%s after the stall: %s, flags %v; want REFUNDING flagged %s", human(refundStallAfter), stalled.Status, stalled.Flags, FlagRefundStalled)
	}
	if final.Status != status.Refunded || w.stockOf(1) != 10 {
		t.Fatalf("final %s, stock %d; want REFUNDED and the stock back", final.Status, w.stockOf(1))
	}
	if n := h.counted(MetricOrdersFlagged, map[string]string{"flag": FlagRefundStalled}); n != 1 {
		t.Errorf("REFUND_STALLED counted %v times, want 1", n)
	}
	// 10 s doubling to 30 min over 4 days is about 200 queries; a fixed
	// 10 s poll would be over 30 000.
	if n := w.count(ActivityQueryRefund); n < 150 || n > 250 {
		t.Errorf("WeChat asked %d times about the refund in 4 days; want ~200 (backoff to %s)", n, refundPollMax)
	}
}

// A cancel request for the workflow (the Web UI's Cancel, the CLI) while
// a refund is with WeChat does not stop the compensation: the refund is
// still awaited and settled, and the stock restored.
func TestCancellingTheWorkflowMidRefundStillFinishesTheRefund(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	h.update(time.Hour, UpdateRequestRefund, RefundRequest{By: ByUser})
	h.at(time.Hour+time.Minute, func() { h.env.CancelWorkflow() })
	h.signal(time.Hour+20*time.Minute, SignalRefund, func() any {
		return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), status.RefundSuccess)
	})
	final := h.run()

	if final.Status != status.Refunded || w.order(orderNo).status != status.Refunded || w.stockOf(1) != 10 {
		t.Fatalf("final %s, row %s, stock %d; want REFUNDED with the stock back", final.Status, w.order(orderNo).status, w.stockOf(1))
	}
	if w.restored[orderNo] != 1 {
		t.Fatalf("stock restored %d times, want once", w.restored[orderNo])
	}
}

// workflowMetadataQuery is the built-in query the Web UI reads a workflow's
// summary and details with (the SDK exports no name for it).
const workflowMetadataQuery = "__temporal_workflow_metadata"

// The Web UI's details line (workflow.SetCurrentDetails, read through the
// built-in metadata query as the UI does) says the status, the amount and
// what the order waits for, at each stage.
func TestDetailsLineSaysWhatTheOrderWaitsFor(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	details := func(at time.Duration) *string {
		got := new(string)
		h.at(at, func() {
			enc, err := h.env.QueryWorkflow(workflowMetadataQuery)
			if err != nil {
				t.Errorf("metadata query at %v: %v", at, err)
				return
			}
			var md sdkpb.WorkflowMetadata
			if err := enc.Get(&md); err != nil {
				t.Errorf("decode metadata: %v", err)
				return
			}
			*got = md.GetCurrentDetails()
		})
		return got
	}
	pending := details(30 * time.Second)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	paid := details(3 * time.Minute)
	h.update(time.Hour, UpdateShip, ShipRequest{})
	shipped := details(2 * time.Hour)
	h.update(3*time.Hour, UpdateConfirm)
	h.run()

	for _, tt := range []struct {
		name string
		got  *string
		want []string
	}{
		{"pending", pending, []string{"**PENDING** · ¥176.00", "Waiting for payment until"}},
		{"paid", paid, []string{"**PAID** · ¥176.00", "WeChat transaction tx-" + orderNo, "waiting for the shop to ship"}},
		{"shipped", shipped, []string{"**SHIPPED**", "confirm"}},
	} {
		for _, want := range tt.want {
			if !strings.Contains(*tt.got, want) {
				t.Errorf("%s: details %q lack %q", tt.name, *tt.got, want)
			}
		}
	}
}

func TestPayUpdateReturnsThePrepayAndReusesIt(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	// A double tap: two pay calls in the same instant, before any prepay.
	first := h.update(time.Minute, UpdatePay)
	tapA := h.update(time.Minute, UpdatePay)
	// Later taps find the prepay made: refused before history, answered by
	// the query.
	tapB := h.update(2*time.Minute, UpdatePay)
	tapC := h.update(2*time.Minute, UpdatePay)
	held := h.payParams(2 * time.Minute)
	h.update(3*time.Minute, UpdateCancel)
	h.run()

	for _, u := range []*updateResult{first, tapA} {
		if !u.done || u.err != nil || u.rejected {
			t.Fatalf("%s: rejected %v, %v", u.name, u.rejected, u.err)
		}
	}
	p := first.value.(PayParams)
	if p.Package != "prepay_id=wx"+orderNo || p.SignType != "RSA" || p.PaySign == "" || p.NonceStr == "" || p.TimeStamp == "" {
		t.Fatalf("pay params %+v", p)
	}
	if tapA.value.(PayParams) != p {
		t.Fatalf("pay calls answered different parameters: %+v %+v", p, tapA.value)
	}
	for _, u := range []*updateResult{tapB, tapC} {
		u.refusedWith(t, ErrTypeAlreadyRequested)
		if !u.rejected {
			t.Fatalf("%s was accepted: a repeated pay must not reach history", u.name)
		}
	}
	if *held != p {
		t.Fatalf("the %s query answered %+v, the pay %+v", QueryPayParams, *held, p)
	}
	if n := w.count(ActivityRequestPayment); n != 1 {
		t.Fatalf("RequestPayment ran %d times; the prepay must be made once", n)
	}
	if n := w.count(ActivityCheckStock); n != 2 {
		t.Fatalf("stock checked %d times, want every accepted pay (2)", n)
	}
	in := w.calls[ActivityRequestPayment][0].(RequestPaymentInput)
	if !in.TimeExpire.Equal(h.start.Add(15*time.Minute)) || in.TotalFen != 17600 {
		t.Fatalf("prepay input %+v: want time_expire at the deadline and 17600 fen", in)
	}
}

// The pay_params query answers only an order that can be paid and holds a
// prepay; the pay update is the way otherwise.
func TestPayParamsQueryAnswersOnlyAFreshPrepayOfAPendingOrder(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	before := h.queryPayParams(30 * time.Second)
	h.update(time.Minute, UpdatePay)
	// prepayReuse after the prepay: WeChat's prepay_id is near its 2 h life.
	h.in.PayTimeout = 3 * time.Hour
	stale := h.queryPayParams(time.Minute + prepayReuse)
	again := h.update(time.Minute+prepayReuse, UpdatePay)
	h.signal(2*time.Hour, SignalPayment, h.payment())
	paid := h.queryPayParams(2*time.Hour + time.Minute)
	h.update(3*time.Hour, UpdateRequestRefund, RefundRequest{By: ByUser})
	h.signal(4*time.Hour, SignalRefund, func() any { return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), status.RefundSuccess) })
	h.run()

	for name, err := range map[string]*error{"before any prepay": before, "past prepayReuse": stale, "once paid": paid} {
		if *err == nil {
			t.Errorf("%s: the query answered parameters", name)
		}
	}
	if !again.done || again.rejected || again.err != nil {
		t.Fatalf("pay past prepayReuse: rejected %v, %v; want a new prepay", again.rejected, again.err)
	}
	if n := w.count(ActivityRequestPayment); n != 2 {
		t.Fatalf("RequestPayment ran %d times, want 2 (the first prepay had aged)", n)
	}
}

func TestPayIsRefusedWhenTheOrderCannotBePaid(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(h *harness)
		wantType string
		// byValidator: refused before history (the order's status says no);
		// otherwise the update ran and its steps refused.
		byValidator bool
	}{
		{"already paid", func(h *harness) {
			h.update(time.Minute, UpdatePay)
			h.signal(2*time.Minute, SignalPayment, h.payment())
		}, ErrTypeNotPayable, true},
		{"out of stock since the order was placed", func(h *harness) {
			h.at(time.Minute, func() { h.w.setStock(1, 1) })
		}, ErrTypeOutOfStock, false},
		{"WeChat Pay does not answer", func(h *harness) {
			h.w.failNext(ActivityRequestPayment, retryable("503"), retryable("503"), retryable("503"), retryable("503"),
				retryable("503"), retryable("503"), retryable("503"), retryable("503"), retryable("503"), retryable("503"))
		}, ErrTypeWechatUnavailable, false},
		{"WeChat refuses the prepay", func(h *harness) {
			h.w.failNext(ActivityRequestPayment, refused("ORDER_CLOSED"))
		}, ErrTypeWechatRefused, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			h := newHarness(t, w)
			tt.setup(h)
			pay := h.update(5*time.Minute, UpdatePay)
			h.update(6*time.Minute, UpdateRequestRefund, RefundRequest{By: ByUser})
			h.update(7*time.Minute, UpdateCancel)
			h.signal(8*time.Minute, SignalRefund, func() any {
				if _, ok := w.refunds[OrderRefundNo(orderNo, 1)]; !ok {
					return RefundNotice{OutRefundNo: "none", Status: status.RefundSuccess}
				}
				return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), status.RefundSuccess)
			})
			h.run()
			pay.refusedWith(t, tt.wantType)
			if pay.rejected != tt.byValidator {
				t.Errorf("refused by the validator: %v, want %v", pay.rejected, tt.byValidator)
			}
		})
	}
}

func TestUserCancelClosesAPendingOrderAndIsRefusedOncePaid(t *testing.T) {
	t.Run("pending", func(t *testing.T) {
		w := newWorld()
		h := newHarness(t, w)
		h.update(time.Minute, UpdatePay)
		cancel := h.update(2*time.Minute, UpdateCancel)
		again := h.update(2*time.Minute, UpdateCancel) // a double tap
		final := h.run()

		if v := cancel.view(t); v.Status != status.Closed {
			t.Fatalf("cancel answered %s", v.Status)
		}
		// The order is closing already: the repeat writes nothing, and the
		// API answers it from the order as it is.
		again.refusedWith(t, ErrTypeAlreadyRequested)
		if !again.rejected {
			t.Fatalf("the second cancel was accepted: a repeat must not reach history")
		}
		if final.Status != status.Closed || final.Transitions[0].Why != "cancelled by the user" {
			t.Fatalf("final %+v", final)
		}
		if h.elapsed() >= 15*time.Minute || w.trades[orderNo].state != TradeClosed || w.count(ActivityClosePayment) != 1 {
			t.Fatalf("closed at %v, WeChat %s after %d closes", h.elapsed(), w.trades[orderNo].state, w.count(ActivityClosePayment))
		}
	})
	t.Run("paid", func(t *testing.T) {
		w := newWorld()
		w.refundSettlesAs = status.RefundSuccess
		h := newHarness(t, w)
		h.update(time.Minute, UpdatePay)
		h.signal(2*time.Minute, SignalPayment, h.payment())
		cancel := h.update(3*time.Minute, UpdateCancel)
		h.update(4*time.Minute, UpdateRequestRefund, RefundRequest{By: ByUser})
		final := h.run()

		cancel.refusedWith(t, ErrTypeNotCancellable)
		if !cancel.rejected {
			t.Fatalf("cancel of a paid order must be refused by the validator, before history")
		}
		if final.Status != status.Refunded {
			t.Fatalf("final %s", final.Status)
		}
	})
}

func TestWorkflowCancelRequestClosesAPendingOrder(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.at(2*time.Minute, h.env.CancelWorkflow)
	final := h.run()
	if final.Status != status.Closed || w.trades[orderNo].state != TradeClosed {
		t.Fatalf("final %s, WeChat %s", final.Status, w.trades[orderNo].state)
	}
}

func TestSyncAsksWeChatAtMostOncePerIntervalAndAppliesThePayment(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	beforePrepay := h.update(30*time.Second, UpdateSync)
	h.update(time.Minute, UpdatePay)
	first := h.update(2*time.Minute, UpdateSync)
	// The payer pays; WeChat's notify is lost.
	h.at(2*time.Minute+time.Second, func() { w.pay(orderNo) })
	throttled := h.update(2*time.Minute+2*time.Second, UpdateSync)
	found := h.update(2*time.Minute+2*time.Second+SyncInterval, UpdateSync)
	afterPaid := h.update(10*time.Minute, UpdateSync)
	h.update(time.Hour, UpdateShip, ShipRequest{})
	h.update(2*time.Hour, UpdateConfirm)
	final := h.run()

	result := func(u *updateResult) SyncResult {
		t.Helper()
		if !u.done || u.err != nil {
			t.Fatalf("%s: %v", u.name, u.err)
		}
		return u.value.(SyncResult)
	}
	// Nothing to ask WeChat: refused by the validator, so nothing is
	// written to history however often the mini-program polls.
	for name, u := range map[string]*updateResult{
		"before any prepay": beforePrepay, "within SyncInterval of the last": throttled, "once PAID": afterPaid,
	} {
		u.refusedWith(t, ErrTypeSyncNotNeeded)
		if !u.rejected {
			t.Errorf("sync %s was taken into history, not refused by its validator", name)
		}
	}
	if r := result(first); !r.Queried || r.Confirmed || r.Order.Status != status.Pending {
		t.Fatalf("first sync %+v", r)
	}
	if r := result(found); !r.Queried || !r.Confirmed || r.Order.Status != status.Paid {
		t.Fatalf("sync after the payment %+v", r)
	}
	if w.count(ActivityQueryPayment) != 2 {
		t.Fatalf("WeChat queried %d times, want 2", w.count(ActivityQueryPayment))
	}
	if final.Status != status.Completed || w.stockOf(1) != 8 {
		t.Fatalf("final %s stock %d", final.Status, w.stockOf(1))
	}
}

// A payment the sync finds that does not match the order is returned, and
// the mini-program is not told the order was paid.
func TestSyncDoesNotConfirmAPaymentTheOrderRefuses(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.at(2*time.Minute, func() {
		w.pay(orderNo)
		w.mu.Lock()
		w.trades[orderNo].amount = 1 // WeChat took 1 fen for this out_trade_no
		w.mu.Unlock()
	})
	synced := h.update(3*time.Minute, UpdateSync)
	final := h.run()

	if !synced.done || synced.err != nil {
		t.Fatalf("sync: %v", synced.err)
	}
	r := synced.value.(SyncResult)
	if !r.Queried || r.Confirmed || r.Order.Status != status.Closed {
		t.Fatalf("sync answered %+v; want queried, not confirmed, CLOSED", r)
	}
	if final.Status != status.Closed || !slices.Contains(final.Flags, FlagPaymentMismatch) || w.count(ActivityMarkPaid) != 0 {
		t.Fatalf("final %s flags %v, MarkPaid %d", final.Status, final.Flags, w.count(ActivityMarkPaid))
	}
}

func TestRefundRequests(t *testing.T) {
	tests := []struct {
		name        string
		shipFirst   bool
		by          string
		wantRefused string
		wantStock   int64 // product 1 at the end (10 at start, 2 ordered)
	}{
		{"user, before shipping: refunded and restocked", false, ByUser, "", 10},
		{"admin, before shipping: refunded and restocked", false, ByAdmin, "", 10},
		{"admin, after shipping: refunded, the goods are gone", true, ByAdmin, "", 8},
		{"user, after shipping: refused", true, ByUser, ErrTypeNotRefundable, 8},
		{"nobody we know", false, "mallory", ErrTypeNotRefundable, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			h := newHarness(t, w)
			h.update(time.Minute, UpdatePay)
			h.signal(2*time.Minute, SignalPayment, h.payment())
			if tt.shipFirst {
				h.update(time.Hour, UpdateShip, ShipRequest{})
			}
			req := h.update(2*time.Hour, UpdateRequestRefund, RefundRequest{By: tt.by, Reason: "changed my mind"})
			again := h.update(2*time.Hour+time.Minute, UpdateRequestRefund, RefundRequest{By: tt.by})
			h.signal(3*time.Hour, SignalRefund, func() any {
				if _, ok := w.refunds[OrderRefundNo(orderNo, 1)]; !ok {
					return RefundNotice{OutRefundNo: "nothing", Status: status.RefundSuccess}
				}
				return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), status.RefundSuccess)
			})
			if tt.wantRefused != "" { // end the order another way
				if !tt.shipFirst {
					h.update(4*time.Hour, UpdateShip, ShipRequest{})
				}
				h.update(5*time.Hour, UpdateConfirm)
			}
			final := h.run()

			if w.stockOf(1) != tt.wantStock {
				t.Fatalf("stock %d, want %d", w.stockOf(1), tt.wantStock)
			}
			if tt.wantRefused != "" {
				req.refusedWith(t, tt.wantRefused)
				if final.Status != status.Completed || w.count(ActivityRequestRefund) != 0 {
					t.Fatalf("final %s, refunds asked %d", final.Status, w.count(ActivityRequestRefund))
				}
				return
			}
			if v := req.view(t); v.Status != status.Refunding && v.Status != status.Refunded {
				t.Fatalf("refund answered %s", v.Status)
			}
			// Refunding already: the repeat writes nothing, and the API
			// answers it from the order as it is.
			again.refusedWith(t, ErrTypeAlreadyRequested)
			if !again.rejected {
				t.Fatalf("the second refund request was accepted: a repeat must not reach history")
			}
			if final.Status != status.Refunded || w.count(ActivityRequestRefund) != 1 || w.restored[orderNo] > 1 {
				t.Fatalf("final %s, refund requests %d, restores %d", final.Status, w.count(ActivityRequestRefund), w.restored[orderNo])
			}
			if got := final.Refunds; len(got) != 1 || got[0].OutRefundNo != OrderRefundNo(orderNo, 1) || got[0].Status != string(status.RefundSuccess) {
				t.Fatalf("refunds %+v", got)
			}
		})
	}
}

func TestShippedOrderCompletesOnConfirmOrByItself(t *testing.T) {
	tests := []struct {
		name        string
		confirmAt   time.Duration // 0 = never
		autoConfirm time.Duration
		wantAfter   time.Duration
	}{
		{"the user confirms", 48 * time.Hour, 0, 48 * time.Hour},
		{"nobody confirms: 7 days after shipping", 0, 0, time.Hour + 7*24*time.Hour},
		{"configured auto-confirm of 3 days", 0, 72 * time.Hour, time.Hour + 72*time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			h := newHarness(t, w)
			h.in.AutoConfirm = tt.autoConfirm
			h.update(time.Minute, UpdatePay)
			h.signal(2*time.Minute, SignalPayment, h.payment())
			early := h.update(30*time.Minute, UpdateConfirm) // not shipped yet
			h.update(time.Hour, UpdateShip, ShipRequest{TrackingNo: "YT1"})
			shipped := h.state(2 * time.Hour)
			if tt.confirmAt != 0 {
				h.update(tt.confirmAt, UpdateConfirm)
			}
			final := h.run()

			early.refusedWith(t, ErrTypeNotConfirmable)
			if shipped.Status != status.Shipped || final.Status != status.Completed {
				t.Fatalf("shipped %s final %s", shipped.Status, final.Status)
			}
			if e := h.completedAfter(final); e < tt.wantAfter || e > tt.wantAfter+time.Minute {
				t.Fatalf("completed after %v, want %v", e, tt.wantAfter)
			}
		})
	}
}

// Shipping a shipped order again (a double click, a script's retry) is
// refused by the validator, so it writes nothing to history: repeats could
// otherwise use up Temporal's limit on one workflow's updates and leave the
// order unable to take its refund. The API answers it with the order.
func TestShippingAShippedOrderAgainWritesNothing(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	h.update(time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	again := h.update(2*time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF2"})
	h.update(3*time.Hour, UpdateConfirm)
	final := h.run()

	again.refusedWith(t, ErrTypeAlreadyRequested)
	if !again.rejected {
		t.Fatalf("the second ship was accepted: a repeat must not reach history")
	}
	want := []status.Order{status.Paid, status.Shipped, status.Completed}
	if got := statuses(final); !slices.Equal(got, want) || w.count(ActivitySetOrderStatus) != 2 {
		t.Fatalf("transitions %v (want %v), %d status writes", got, want, w.count(ActivitySetOrderStatus))
	}
}

func TestASecondPaymentOfAPaidOrderIsReturned(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	h.signal(3*time.Minute, SignalPayment, func() any {
		p := w.pay(orderNo)
		p.TransactionID = "tx-second"
		return p
	})
	h.update(time.Hour, UpdateShip, ShipRequest{})
	h.update(2*time.Hour, UpdateConfirm)
	final := h.run()

	if final.Status != status.Completed || final.TransactionID != "tx-"+orderNo {
		t.Fatalf("final %s keeps %q", final.Status, final.TransactionID)
	}
	stray, ok := h.strays[StrayPaymentWorkflowID("tx-second")]
	if !ok {
		t.Fatalf("no stray payment workflow ran; ran: %v", h.strays)
	}
	if stray.Status != StrayRefunded || w.refund(StrayRefundNo("tx-second")).status != status.RefundSuccess {
		t.Fatalf("stray %+v", stray)
	}
}

func TestWeChatFailuresAreRetriedWithTheSameIDsAndRefusalsChangeThePath(t *testing.T) {
	t.Run("5xx on query, close and refund are retried with the same out_trade_no and out_refund_no", func(t *testing.T) {
		w := newWorld()
		w.refundSettlesAs = status.RefundSuccess
		w.failNext(ActivityQueryPayment, retryable("500 SYSTEM_ERROR"), retryable("timeout"))
		w.failNext(ActivityClosePayment, retryable("502"))
		h := newHarness(t, w)
		h.update(time.Minute, UpdatePay)
		final := h.run()
		if final.Status != status.Closed || w.count(ActivityQueryPayment) != 4 || w.count(ActivityClosePayment) != 2 {
			t.Fatalf("final %s after %d queries %d closes", final.Status, w.count(ActivityQueryPayment), w.count(ActivityClosePayment))
		}
		for _, c := range append(w.calls[ActivityQueryPayment], w.calls[ActivityClosePayment]...) {
			if c.(string) != orderNo {
				t.Fatalf("retried with %v", c)
			}
		}

		w = newWorld()
		w.refundSettlesAs = status.RefundSuccess
		w.failNext(ActivityRequestRefund, retryable("500"), retryable("500"), retryable("500"))
		w.failNext(ActivityQueryRefund, retryable("429 FREQUENCY_LIMITED"))
		h = newHarness(t, w)
		h.update(time.Minute, UpdatePay)
		h.at(90*time.Second, func() { w.setStock(1, 0) })
		h.signal(2*time.Minute, SignalPayment, h.payment())
		final = h.run()
		if final.Status != status.Refunded || w.count(ActivityRequestRefund) != 4 {
			t.Fatalf("final %s after %d refund requests", final.Status, w.count(ActivityRequestRefund))
		}
		for _, c := range w.calls[ActivityRequestRefund] {
			if c.(RequestRefundInput).OutRefundNo != OrderRefundNo(orderNo, 1) {
				t.Fatalf("refund retried with another out_refund_no: %+v", c)
			}
		}
	})
	t.Run("a refund WeChat refuses is not retried: REFUND_FAILED, flagged", func(t *testing.T) {
		w := newWorld()
		w.failNext(ActivityRequestRefund, refused("403 USER_ACCOUNT_ABNORMAL"))
		h := newHarness(t, w)
		h.update(time.Minute, UpdatePay)
		h.signal(2*time.Minute, SignalPayment, h.payment())
		h.update(time.Hour, UpdateRequestRefund, RefundRequest{By: ByUser})
		final := h.run()
		if final.Status != status.RefundFailed || w.count(ActivityRequestRefund) != 1 || !slices.Contains(final.Flags, FlagRefundFailed) {
			t.Fatalf("final %s flags %v after %d requests", final.Status, final.Flags, w.count(ActivityRequestRefund))
		}
		if w.stockOf(1) != 8 {
			t.Fatalf("stock %d: a failed refund must not restock", w.stockOf(1))
		}
	})
	t.Run("the database down while placing is retried until the order is stored", func(t *testing.T) {
		w := newWorld()
		w.failNext(ActivityCreateOrder, retryable("connection refused"), retryable("connection refused"), retryable("connection refused"))
		h := newHarness(t, w)
		created := h.update(0, UpdateCreate)
		final := h.run()
		if v := created.view(t); v.Status != status.Pending || v.TotalFen != 17600 {
			t.Fatalf("create answered %+v", v)
		}
		if final.Status != status.Closed || w.count(ActivityCreateOrder) != 4 {
			t.Fatalf("final %s after %d attempts", final.Status, w.count(ActivityCreateOrder))
		}
	})
}

func TestRefusedOrderAnswersTheCreateUpdateAndEnds(t *testing.T) {
	tests := []struct {
		name     string
		items    []Item
		wantType string
	}{
		{"out of stock", []Item{{ProductID: 2, Quantity: 6}}, ErrTypeOutOfStock},
		{"unknown product", []Item{{ProductID: 99, Quantity: 1}}, ErrTypeUnknownProduct},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			h := newHarness(t, w)
			h.in.Items = tt.items
			created := h.update(0, UpdateCreate)
			final := h.run()
			created.refusedWith(t, tt.wantType)
			if final.Status != status.Refused || final.RefusalType != tt.wantType {
				t.Fatalf("final = %+v", final)
			}
			if len(w.orders) != 0 || w.count(ActivityCloseOrder) != 0 {
				t.Fatalf("refused order touched the shop: %d orders, %d closes", len(w.orders), w.count(ActivityCloseOrder))
			}
		})
	}
}

func TestStrayPaymentWorkflowReturnsOnlyMoneyNobodyKeeps(t *testing.T) {
	tests := []struct {
		name       string
		order      *shopOrder
		wantStatus string
		wantRefund bool
	}{
		{"the order closed before the payment", &shopOrder{no: "S1000001", status: status.Closed, total: 100}, StrayRefunded, true},
		{"a late repeat of the payment the order keeps", &shopOrder{no: "S1000001", status: status.Paid, total: 100, txID: "tx-s"}, StrayKept, false},
		{"an order this shop never made", nil, StrayIgnored, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			if tt.order != nil {
				w.orders[tt.order.no] = tt.order
			}
			w.trades["S1000001"] = &trade{state: TradeSuccess, txID: "tx-s", amount: 100}
			m := metrics.NewTemporal()
			var suite testsuite.WorkflowTestSuite
			suite.SetMetricsHandler(m.Handler())
			env := suite.NewTestWorkflowEnvironment()
			w.register(env)
			env.RegisterDelayedCallback(func() {
				env.SignalWorkflow(SignalRefund, w.settleRefundAtWechat(StrayRefundNo("tx-s"), status.RefundSuccess))
			}, time.Minute)
			env.ExecuteWorkflow(StrayPaymentWorkflowName, StrayPaymentInput{
				Payment: PaymentNotice{OutTradeNo: "S1000001", TransactionID: "tx-s", TradeState: TradeSuccess, AmountFen: 100, Source: "notify"},
				Reason:  "order S1000001 has ended",
			})
			var v StrayPaymentView
			if err := env.GetWorkflowResult(&v); err != nil {
				t.Fatal(err)
			}
			if v.Status != tt.wantStatus {
				t.Fatalf("status %s, want %s", v.Status, tt.wantStatus)
			}
			if n := m.Sum(MetricStrayPayments+"_total", map[string]string{"outcome": tt.wantStatus}); n != 1 {
				t.Errorf("stray outcome %s counted %v times, want 1", tt.wantStatus, n)
			}
			if got := w.count(ActivityRequestRefund) == 1; got != tt.wantRefund {
				t.Fatalf("refund requested: %v, want %v", got, tt.wantRefund)
			}
			if tt.wantRefund {
				in := w.calls[ActivityRequestRefund][0].(RequestRefundInput)
				if in.OutRefundNo != StrayRefundNo("tx-s") || in.RefundFen != 100 || in.TransactionID != "tx-s" {
					t.Fatalf("refund %+v", in)
				}
			}
		})
	}
}
