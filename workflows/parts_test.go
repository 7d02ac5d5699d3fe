package workflows

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// Part refunds (ChangePartialRefunds), in the time-skipping environment.
// The order in these tests: two of product 1 (¥88.00 each) and one of
// product 2 (¥39.00), ¥215.00 in all; stock 10 and 5 before it is paid.

const partsTotal = 2*8800 + 3900

// newPartsHarness is a harness of the three-item order, paid at 2 minutes,
// refunds asked at most interval apart.
func newPartsHarness(t *testing.T, w *world, interval time.Duration) *harness {
	t.Helper()
	h := newHarness(t, w)
	h.in.Items = []Item{{ProductID: 1, Quantity: 2}, {ProductID: 2, Quantity: 1}}
	h.in.RefundInterval = interval
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	return h
}

// askedAt records, in workflow time since the start, when each request of
// a refund reached WeChat (every attempt), by out_refund_no.
func (h *harness) askedAt() map[string][]time.Duration {
	asked := map[string][]time.Duration{}
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		if info.ActivityType.Name != ActivityRequestRefund {
			return
		}
		var in RequestRefundInput
		if err := args.Get(&in); err == nil {
			asked[in.OutRefundNo] = append(asked[in.OutRefundNo], h.env.Now().Sub(h.start))
		}
	})
	return asked
}

func oneOf(product, qty int64) RefundRequest {
	return RefundRequest{By: ByUser, Reason: "broken", Items: []RefundItem{{ProductID: product, Quantity: qty}}}
}

func TestPartRefundKeepsTheOrderPaidThenTheRestRefundsIt(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := newPartsHarness(t, w, time.Minute)
	first := h.update(time.Hour, UpdateRequestRefund, oneOf(2, 1))
	afterFirst := h.state(2 * time.Hour)
	stockAfterFirst := map[int64]int64{}
	h.at(2*time.Hour, func() { stockAfterFirst[1], stockAfterFirst[2] = w.stockOf(1), w.stockOf(2) })
	rest := h.update(3*time.Hour, UpdateRequestRefund, RefundRequest{By: ByAdmin, Reason: "the rest too"})
	final := h.run()

	if v := first.view(t); v.Status != status.Paid || len(v.Refunds) != 1 || v.Refunds[0].Status != string(PartQueued) {
		t.Fatalf("the part refund answered %s with refunds %+v; want PAID with one QUEUED", v.Status, v.Refunds)
	}
	if afterFirst.Status != status.Paid || afterFirst.RefundedFen != 3900 ||
		!reflect.DeepEqual(afterFirst.RefundedItems, []RefundItem{{ProductID: 2, Quantity: 1}}) {
		t.Fatalf("after the first refund: %s, refunded %d fen %+v; want PAID, 3900 fen of product 2", afterFirst.Status, afterFirst.RefundedFen, afterFirst.RefundedItems)
	}
	if stockAfterFirst[1] != 8 || stockAfterFirst[2] != 5 {
		t.Fatalf("stock after the first refund %v; want product 2 back (5), product 1 still out (8)", stockAfterFirst)
	}
	if v := rest.view(t); v.Status != status.Paid && v.Status != status.Refunded {
		t.Fatalf("the second refund answered %s", v.Status)
	}
	if final.Status != status.Refunded || final.RefundedFen != partsTotal || w.stockOf(1) != 10 || w.stockOf(2) != 5 {
		t.Fatalf("final %s, refunded %d fen, stock %d/%d; want REFUNDED, %d fen, 10/5", final.Status, final.RefundedFen, w.stockOf(1), w.stockOf(2), partsTotal)
	}
	if got := statuses(final); !slices.Equal(got, []status.Order{status.Paid, status.Refunded}) {
		t.Errorf("transitions %v; want PAID, REFUNDED (no REFUNDING)", got)
	}
	if why := final.Transitions[1].Why; why != "WeChat refunded ¥215.00 in 2 refunds" {
		t.Errorf("REFUNDED because %q", why)
	}
	r1, r2 := w.refund(OrderRefundNo(orderNo, 1)), w.refund(OrderRefundNo(orderNo, 2))
	if r1.amount != 3900 || !reflect.DeepEqual(r1.items, []PricedItem{{ProductID: 2, UnitPriceFen: 3900, Quantity: 1}}) {
		t.Errorf("first refund at WeChat: %d fen, goods %+v", r1.amount, r1.items)
	}
	if r2.amount != 2*8800 || !reflect.DeepEqual(r2.items, []PricedItem{{ProductID: 1, UnitPriceFen: 8800, Quantity: 2}}) {
		t.Errorf("second refund at WeChat: %d fen, goods %+v (want everything left)", r2.amount, r2.items)
	}
	if len(w.partRestored) != 4 || w.restored[orderNo] != 0 {
		t.Errorf("restorations %v, whole-order %d; want each part once", w.partRestored, w.restored[orderNo])
	}
}

func TestPartRefundRequestsAreAskedAnIntervalApartWithTheSameNumberOnEveryRetry(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	// WeChat's minute rule, as its answer to a second request too soon.
	w.failNext(ActivityRequestRefund, retryable("FREQUENCY_LIMITED"), retryable("FREQUENCY_LIMITED"))
	h := newPartsHarness(t, w, 5*time.Minute)
	asked := h.askedAt()
	a := h.update(time.Hour, UpdateRequestRefund, oneOf(1, 1))
	b := h.update(time.Hour, UpdateRequestRefund, oneOf(2, 1))
	c := h.update(time.Hour, UpdateRequestRefund, oneOf(1, 1))
	final := h.run()

	for _, u := range []*updateResult{a, b, c} {
		u.view(t)
	}
	if final.Status != status.Refunded {
		t.Fatalf("final %s; want REFUNDED after three parts", final.Status)
	}
	r1, r2, r3 := OrderRefundNo(orderNo, 1), OrderRefundNo(orderNo, 2), OrderRefundNo(orderNo, 3)
	if len(asked[r1]) != 3 {
		t.Errorf("refund %s asked %v; want 3 attempts (two FREQUENCY_LIMITED), with the same number", r1, asked[r1])
	}
	if len(asked[r2]) != 1 || len(asked[r3]) != 1 {
		t.Fatalf("asked %v", asked)
	}
	last := asked[r1][len(asked[r1])-1]
	if gap := asked[r2][0] - last; gap < 5*time.Minute {
		t.Errorf("%s asked %v after %s; want at least the 5m interval", r2, gap, r1)
	}
	if gap := asked[r3][0] - asked[r2][0]; gap < 5*time.Minute {
		t.Errorf("%s asked %v after %s; want at least the 5m interval", r3, gap, r2)
	}
}

func TestOverRefundsAreRefusedBeforeHistoryAndNothingChanges(t *testing.T) {
	tests := []struct {
		name  string
		items []RefundItem
	}{
		{"a product not in the order", []RefundItem{{ProductID: 3, Quantity: 1}}},
		{"zero", []RefundItem{{ProductID: 1, Quantity: 0}}},
		{"negative", []RefundItem{{ProductID: 1, Quantity: -1}}},
		{"listed twice", []RefundItem{{ProductID: 1, Quantity: 1}, {ProductID: 1, Quantity: 1}}},
		{"more than bought", []RefundItem{{ProductID: 2, Quantity: 2}}},
		{"more than left", []RefundItem{{ProductID: 1, Quantity: 2}}}, // one is being refunded
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			w.refundSettlesAs = status.RefundSuccess
			h := newPartsHarness(t, w, time.Minute)
			h.update(time.Hour, UpdateRequestRefund, oneOf(1, 1))
			bad := h.update(time.Hour+time.Second, UpdateRequestRefund, RefundRequest{By: ByUser, Items: tt.items})
			mid := h.state(2 * time.Hour)
			h.update(3*time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF1"})
			h.update(4*time.Hour, UpdateConfirm)
			final := h.run()

			bad.refusedWith(t, ErrTypeRefundExceedsOrder)
			if !bad.rejected {
				t.Errorf("refused by the handler, not the validator: it was written to history")
			}
			if len(mid.Refunds) != 1 || mid.RefundedFen != 8800 {
				t.Errorf("refunds after the refusal %+v (%d fen); want the one part of 8800", mid.Refunds, mid.RefundedFen)
			}
			if final.Status != status.Completed || w.count(ActivityRequestRefund) != 1 {
				t.Errorf("final %s after %d refund requests; want COMPLETED after 1", final.Status, w.count(ActivityRequestRefund))
			}
		})
	}
}

// Ten refunds of one item each at once, on an order of three items: the
// handler checks again what is left in the workflow's one thread, so three
// are taken and seven refused, and WeChat is asked for the three only.
func TestConcurrentPartRefundsNeverRefundMoreThanWasBought(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := newPartsHarness(t, w, time.Minute)
	var asks []*updateResult
	for i := range 10 {
		product := int64(1)
		if i%2 == 1 {
			product = 2
		}
		asks = append(asks, h.update(time.Hour, UpdateRequestRefund, oneOf(product, 1)))
	}
	final := h.run()

	taken := 0
	for _, u := range asks {
		switch {
		case u.done && u.err == nil:
			taken++
		case u.done:
			u.refusedWith(t, ErrTypeRefundExceedsOrder)
		default:
			t.Errorf("%s never answered", u.name)
		}
	}
	var sum int64
	for _, r := range w.refunds {
		sum += r.amount
	}
	if taken != 3 || w.count(ActivityRequestRefund) != 3 || sum != partsTotal || final.Status != status.Refunded {
		t.Fatalf("%d taken, %d asked of WeChat for %d fen, final %s; want 3, 3, %d, REFUNDED", taken, w.count(ActivityRequestRefund), sum, final.Status, partsTotal)
	}
}

func TestFailedPartIsFlaggedAndKeepsItsGoodsFromAnotherRefund(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundClosed
	h := newPartsHarness(t, w, time.Minute)
	h.update(time.Hour, UpdateRequestRefund, oneOf(2, 1))
	again := h.update(2*time.Hour, UpdateRequestRefund, oneOf(2, 1))
	mid := h.state(2 * time.Hour)
	h.update(3*time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	h.update(4*time.Hour, UpdateConfirm)
	final := h.run()

	if mid.Status != status.Paid || !slices.Contains(mid.Flags, FlagRefundFailed) || mid.RefundedFen != 0 ||
		len(mid.Refunds) != 1 || mid.Refunds[0].Status != string(status.RefundClosed) {
		t.Fatalf("after the failed part: %s, flags %v, refunded %d, refunds %+v; want PAID flagged REFUND_FAILED, nothing refunded",
			mid.Status, mid.Flags, mid.RefundedFen, mid.Refunds)
	}
	again.refusedWith(t, ErrTypeRefundExceedsOrder)
	if w.stockOf(2) != 4 || final.Status != status.Completed {
		t.Errorf("stock of product 2 %d, final %s; want 4 (nothing restored), COMPLETED", w.stockOf(2), final.Status)
	}
	if n := h.counted(MetricOrdersFlagged, map[string]string{"flag": FlagRefundFailed}); n != 1 {
		t.Errorf("REFUND_FAILED counted %v times", n)
	}
}

// A request decided before — the user's refund, refused because the order
// was being shipped — must not answer the admin's later refund: that one is
// a request of its own, and the money goes back.
func TestRefusedRefundDoesNotAnswerALaterOne(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := newPartsHarness(t, w, time.Minute)
	// The ship's write waits on a busy database: the user's refund comes meanwhile.
	w.failNext(ActivitySetOrderStatus, retryable("db busy"), retryable("db busy"), retryable("db busy"))
	h.update(time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	user := h.update(time.Hour+time.Second, UpdateRequestRefund, RefundRequest{By: ByUser, Reason: "changed my mind"})
	admin := h.update(2*time.Hour, UpdateRequestRefund, RefundRequest{By: ByAdmin, Reason: "parcel lost"})
	final := h.run()

	user.refusedWith(t, ErrTypeNotRefundable)
	if user.rejected {
		t.Fatalf("the user's refund was refused by the validator: the test did not catch the ship under way")
	}
	if v := admin.view(t); v.Status != status.Refunding && v.Status != status.Refunded {
		t.Fatalf("the admin's refund answered %s, err %v", v.Status, admin.err)
	}
	if final.Status != status.Refunded || w.refund(OrderRefundNo(orderNo, 1)).amount != partsTotal {
		t.Fatalf("final %s, refund %+v; want REFUNDED in full", final.Status, w.refund(OrderRefundNo(orderNo, 1)))
	}
}

// A part refund the user asks for twice under one Idempotency-Key (a
// retried request) is one refund; the key used for other goods is refused.
func TestPartRefundRepeatedUnderItsKeyIsOneRefund(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := newPartsHarness(t, w, time.Minute)
	keyed := oneOf(1, 1)
	keyed.IdempotencyKey = "key-0001"
	first := h.update(time.Hour, UpdateRequestRefund, keyed)
	repeat := h.update(time.Hour+time.Second, UpdateRequestRefund, keyed)
	other := oneOf(2, 1)
	other.IdempotencyKey = "key-0001"
	reused := h.update(time.Hour+2*time.Second, UpdateRequestRefund, other)
	h.update(2*time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	h.update(3*time.Hour, UpdateConfirm)
	final := h.run()

	first.view(t)
	repeat.refusedWith(t, ErrTypeAlreadyRequested)
	reused.refusedWith(t, ErrTypeIdempotencyKeyReused)
	if w.count(ActivityRequestRefund) != 1 || final.RefundedFen != 8800 {
		t.Fatalf("%d refunds asked, %d fen refunded; want one of 8800", w.count(ActivityRequestRefund), final.RefundedFen)
	}
}

// A part refund WeChat never settles is asked about with backoff, flagged
// REFUND_STALLED once, and the order completes meanwhile; the workflow ends
// only when the part settles.
func TestCompletedOrderWaitsForItsPartRefundToSettle(t *testing.T) {
	w := newWorld()
	h := newPartsHarness(t, w, time.Minute)
	h.update(time.Hour, UpdateRequestRefund, RefundRequest{By: ByUser, Items: []RefundItem{{ProductID: 1, Quantity: 1}}})
	h.update(2*time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	h.update(3*time.Hour, UpdateConfirm)
	mid := h.state(3*day + 2*time.Hour)
	h.at(5*day, func() {
		w.mu.Lock()
		w.refundSettlesAs = status.RefundSuccess
		w.mu.Unlock()
	})
	final := h.run()

	if mid.Status != status.Completed || !slices.Contains(mid.Flags, FlagRefundStalled) || !strings.Contains(mid.Waiting, "is with WeChat Pay") {
		t.Fatalf("on day 3: %s, flags %v, waiting %q; want COMPLETED, REFUND_STALLED, waiting for the refund", mid.Status, mid.Flags, mid.Waiting)
	}
	if final.Status != status.Completed || final.RefundedFen != 8800 || h.elapsed() < 5*day {
		t.Fatalf("final %s, %d fen refunded, ended after %v; want COMPLETED with 8800 fen refunded, after day 5", final.Status, final.RefundedFen, h.elapsed())
	}
	if w.stockOf(1) != 9 {
		t.Errorf("stock of product 1 %d; want 9 (the part queued before shipping is restocked)", w.stockOf(1))
	}
	if n := h.counted(MetricOrdersFlagged, map[string]string{"flag": FlagRefundStalled}); n != 1 {
		t.Errorf("REFUND_STALLED counted %v times", n)
	}
}

// A part queued when the run continues as new is asked and settled by the
// next run, from the state handed on.
func TestQueuedPartRefundGoesOnInTheNextRun(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	c := newChain(t, w)
	c.paidOrder()
	in := c.orderInput()
	in.Items = []Item{{ProductID: 1, Quantity: 2}, {ProductID: 2, Quantity: 1}}
	in.RefundInterval = time.Hour
	c.update(time.Hour, UpdateRequestRefund, oneOf(1, 1))
	c.update(time.Hour, UpdateRequestRefund, oneOf(2, 1))
	// The second part waits for the interval; WeChat repeats the payment's
	// notify meanwhile, and Temporal suggests continuing as new.
	c.at(time.Hour+time.Minute, func() { c.env.SetContinueAsNewSuggested(true) })
	c.signal(time.Hour+time.Minute, SignalPayment, func() any { return c.w.pay(orderNo) })
	c.update(5*time.Hour, UpdateRequestRefund, RefundRequest{By: ByUser})
	final := runChain[OrderInput, OrderView](c, OrderWorkflowName, in)

	if len(c.runs) < 2 {
		t.Fatalf("runs %+v; want the order to continue as new", c.runs)
	}
	handed := c.handedOn[0].(OrderInput).Continued
	if handed == nil || handed.Parts == nil || len(handed.Parts.Parts) != 2 || handed.Parts.Parts[1].Status != PartQueued {
		t.Fatalf("the state handed on: %+v", handed)
	}
	if final.Status != status.Refunded || final.RefundedFen != partsTotal || w.count(ActivityRequestRefund) != 3 {
		t.Fatalf("final %s, %d fen, %d requests; want REFUNDED, %d, 3", final.Status, final.RefundedFen, w.count(ActivityRequestRefund), partsTotal)
	}
	if w.stockOf(1) != 10 || w.stockOf(2) != 5 {
		t.Errorf("stock %d/%d; want everything back", w.stockOf(1), w.stockOf(2))
	}
}

// Orders started before ChangePartialRefunds refund in full only, as they
// did: items are refused, a whole refund goes REFUNDING → REFUNDED.
func TestOrderOfBeforePartialRefundsRefundsInFullOnly(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := newPartsHarness(t, w, time.Minute)
	h.env.OnGetVersion(ChangePartialRefunds, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	part := h.update(time.Hour, UpdateRequestRefund, oneOf(1, 1))
	whole := h.update(2*time.Hour, UpdateRequestRefund, RefundRequest{By: ByUser})
	final := h.run()

	part.refusedWith(t, ErrTypeNotRefundable)
	whole.view(t)
	if got := statuses(final); !slices.Equal(got, []status.Order{status.Paid, status.Refunding, status.Refunded}) {
		t.Errorf("transitions %v", got)
	}
	if final.RefundedFen != partsTotal || w.restored[orderNo] != 1 {
		t.Errorf("refunded %d fen, restored %d times", final.RefundedFen, w.restored[orderNo])
	}
}

// The details line says how much of the order went back.
func TestDetailsLineSaysHowMuchWasRefunded(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := newPartsHarness(t, w, time.Minute)
	var details string
	h.update(time.Hour, UpdateRequestRefund, oneOf(2, 1))
	h.at(2*time.Hour, func() {
		enc, err := h.env.QueryWorkflow(workflowMetadataQuery)
		if err != nil {
			t.Errorf("metadata query: %v", err)
			return
		}
		var md sdkpb.WorkflowMetadata
		if err := enc.Get(&md); err != nil {
			t.Errorf("decode metadata: %v", err)
		}
		details = md.GetCurrentDetails()
	})
	h.update(3*time.Hour, UpdateRequestRefund, RefundRequest{By: ByUser})
	h.run()

	if !strings.HasPrefix(details, "**PAID** · ¥39.00 of ¥215.00 refunded") {
		t.Errorf("details %q", details)
	}
}

// Every item refunded or being refunded before the order ships: there is
// nothing left to put in a parcel, so the shop's ship is refused before
// history (the order would otherwise be SHIPPED, report a shipment of goods
// being refunded to WeChat, and put back on the shelf goods it says left).
func TestShipIsRefusedWhenEveryItemIsRefundedOrBeingRefunded(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := newPartsHarness(t, w, time.Minute)
	h.update(time.Hour, UpdateRequestRefund, oneOf(2, 1))
	h.update(time.Hour+time.Second, UpdateRequestRefund, RefundRequest{By: ByUser, Reason: "the rest too"})
	ship := h.update(time.Hour+2*time.Second, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	final := h.run()

	ship.refusedWith(t, ErrTypeNotShippable)
	if !ship.rejected {
		t.Errorf("refused by the handler, not the validator: it was written to history")
	}
	if got := statuses(final); !slices.Equal(got, []status.Order{status.Paid, status.Refunded}) {
		t.Errorf("transitions %v; want PAID, REFUNDED (never SHIPPED)", got)
	}
	if w.stockOf(1) != 10 || w.stockOf(2) != 5 {
		t.Errorf("stock %d/%d; want 10/5, every item back", w.stockOf(1), w.stockOf(2))
	}
}
