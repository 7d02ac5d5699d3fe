package workflows

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// After-sales in the time-skipping environment. The order is the parts
// tests' (two of product 1 at ¥88.00, one of product 2 at ¥39.00; stock 10
// and 5 before it is paid), shipped at 3 hours.

const (
	shippedAt = 3 * time.Hour
	asID      = orderNo + "-AS1"
)

// newAfterSaleHarness is the parts harness with the order shipped.
func newAfterSaleHarness(t *testing.T, w *world) *harness {
	t.Helper()
	w.refundSettlesAs = status.RefundSuccess
	h := newPartsHarness(t, w, time.Minute)
	h.update(shippedAt, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	return h
}

func askAfterSale(typ AfterSaleType, product, qty int64) AfterSaleRequest {
	return AfterSaleRequest{Type: typ, Items: []RefundItem{{ProductID: product, Quantity: qty}}, Reason: "arrived broken",
		Photos: []string{"https://img.example/1.jpg"}}
}

func act(action, by string) AfterSaleAction {
	a := AfterSaleAction{ID: asID, Action: action, By: by, Note: "ok"}
	if action == AfterSaleReturn {
		a.ExpressCompany, a.TrackingNo = "SF", "SF9000000001"
	}
	return a
}

// savedSteps are the statuses the after-sale's row was written with, in
// order (each step once: a step is written when it is taken).
func savedSteps(w *world, id string) []AfterSaleStatus {
	var out []AfterSaleStatus
	for _, c := range w.calls[ActivitySaveAfterSale] {
		if a := c.(AfterSale); a.ID == id && (len(out) == 0 || out[len(out)-1] != a.Status) {
			out = append(out, a.Status)
		}
	}
	return out
}

func TestReturnAndRefundThroughApproveReturnReceiveRefundsAndRestocks(t *testing.T) {
	w := newWorld()
	h := newAfterSaleHarness(t, w)
	h.in.AfterSaleWindow = 2 * time.Hour
	req := h.update(4*time.Hour, UpdateRequestAfterSale, askAfterSale(AfterSaleReturnAndRefund, 2, 1))
	approve := h.update(5*time.Hour, UpdateAfterSaleAction, act(AfterSaleApprove, ByAdmin))
	ret := h.update(6*time.Hour, UpdateAfterSaleAction, act(AfterSaleReturn, ByUser))
	stockBefore := int64(-1)
	h.at(7*time.Hour-time.Second, func() { stockBefore = w.stockOf(2) })
	h.update(7*time.Hour, UpdateAfterSaleAction, act(AfterSaleReceive, ByAdmin))
	h.update(8*time.Hour, UpdateConfirm)
	final := h.run()

	if v := req.view(t); len(v.AfterSales) != 1 || v.AfterSales[0].Status != AfterSaleRequested || v.AfterSales[0].RefundFen != 3900 {
		t.Fatalf("the request answered %+v", v.AfterSales)
	}
	if v := approve.view(t); v.AfterSales[0].Status != AfterSaleAwaitingReturn {
		t.Errorf("approve answered %s; want AWAITING_RETURN", v.AfterSales[0].Status)
	}
	if v := ret.view(t); v.AfterSales[0].Status != AfterSaleReturned || v.AfterSales[0].TrackingNo != "SF9000000001" {
		t.Errorf("return answered %+v", v.AfterSales[0])
	}
	want := []AfterSaleStatus{AfterSaleRequested, AfterSaleAwaitingReturn, AfterSaleReturned, AfterSaleReceived, AfterSaleRefunded}
	if got := savedSteps(w, asID); !slices.Equal(got, want) {
		t.Errorf("rows written %v; want %v", got, want)
	}
	row := w.afterSaleRow(asID)
	if row.Status != AfterSaleRefunded || row.OutRefundNo != OrderRefundNo(orderNo, 1) || row.ExpressCompany != "SF" {
		t.Errorf("the row at the end: %+v", row)
	}
	if final.Status != status.Completed || final.RefundedFen != 3900 || final.AfterSales[0].Status != AfterSaleRefunded {
		t.Fatalf("final %s, refunded %d fen, after-sale %s; want COMPLETED, 3900, REFUNDED", final.Status, final.RefundedFen, final.AfterSales[0].Status)
	}
	if stockBefore != 4 || w.stockOf(2) != 5 || w.stockOf(1) != 8 {
		t.Errorf("stock of product 2 %d before receiving, %d after (product 1 %d); want 4 → 5, product 1 8", stockBefore, w.stockOf(2), w.stockOf(1))
	}
	r := w.refund(OrderRefundNo(orderNo, 1))
	if r.amount != 3900 || !reflect.DeepEqual(r.items, []PricedItem{{ProductID: 2, UnitPriceFen: 3900, Quantity: 1}}) {
		t.Errorf("refund at WeChat: %d fen, goods %+v", r.amount, r.items)
	}
	// A completed order takes after-sales for its window, then ends.
	if got, want := h.elapsed(), 8*time.Hour+2*time.Hour; got < want {
		t.Errorf("the workflow ended %v after its start; want at completion + the window (%v)", got, want)
	}
}

func TestRefundOnlyAfterSaleRefundsWithoutRestock(t *testing.T) {
	w := newWorld()
	h := newAfterSaleHarness(t, w)
	h.update(4*time.Hour, UpdateRequestAfterSale, askAfterSale(AfterSaleRefundOnly, 1, 1))
	h.update(5*time.Hour, UpdateAfterSaleAction, act(AfterSaleApprove, ByAdmin))
	final := h.run()

	if got, want := savedSteps(w, asID), []AfterSaleStatus{AfterSaleRequested, AfterSaleApproved, AfterSaleRefunded}; !slices.Equal(got, want) {
		t.Errorf("rows written %v; want %v", got, want)
	}
	if final.RefundedFen != 8800 || w.stockOf(1) != 8 || w.partRestored[OrderRefundNo(orderNo, 1)] {
		t.Errorf("refunded %d fen, stock of product 1 %d, restorations %v; want 8800, 8 (the goods stay with the buyer), none", final.RefundedFen, w.stockOf(1), w.partRestored)
	}
}

func TestRejectedAfterSaleRefundsNothingAndANewOneMayFollow(t *testing.T) {
	w := newWorld()
	h := newAfterSaleHarness(t, w)
	h.update(4*time.Hour, UpdateRequestAfterSale, askAfterSale(AfterSaleRefundOnly, 1, 2))
	reject := h.update(5*time.Hour, UpdateAfterSaleAction, AfterSaleAction{ID: asID, Action: AfterSaleReject, By: ByAdmin, Note: "photos show no damage"})
	second := h.update(6*time.Hour, UpdateRequestAfterSale, askAfterSale(AfterSaleRefundOnly, 1, 2))
	final := h.run()

	if v := reject.view(t); v.AfterSales[0].Status != AfterSaleRejected || v.AfterSales[0].Note != "photos show no damage" {
		t.Errorf("reject answered %+v", v.AfterSales[0])
	}
	if v := second.view(t); len(v.AfterSales) != 2 || v.AfterSales[1].ID != orderNo+"-AS2" {
		t.Errorf("the second after-sale: %+v", v.AfterSales)
	}
	// The rejected one refunded nothing; the second, never answered, was
	// approved by itself and is the only refund.
	if final.AfterSales[0].Status != AfterSaleRejected || final.AfterSales[0].OutRefundNo != "" ||
		final.AfterSales[1].Status != AfterSaleRefunded || w.count(ActivityRequestRefund) != 1 || final.RefundedFen != 2*8800 {
		t.Errorf("after-sales %s/%s, %d refunds asked, %d fen refunded; want REJECTED (no refund), REFUNDED, 1, 17600",
			final.AfterSales[0].Status, final.AfterSales[1].Status, w.count(ActivityRequestRefund), final.RefundedFen)
	}
}

func TestAfterSaleTimers(t *testing.T) {
	const (
		autoApprove = 72 * time.Hour
		returnWait  = 168 * time.Hour
		receiveWait = 240 * time.Hour
	)
	tests := []struct {
		name    string
		typ     AfterSaleType
		actions []AfterSaleAction // at 5h, 6h, …
		want    []AfterSaleStatus
		// fired: when the timer's step happened, after the last action (or the request).
		fired    time.Duration
		refunded int64
		restock  bool
	}{
		{"a request unanswered is approved by itself", AfterSaleRefundOnly, nil,
			[]AfterSaleStatus{AfterSaleRequested, AfterSaleApproved, AfterSaleRefunded}, autoApprove, 3900, false},
		{"a return never sent closes the after-sale", AfterSaleReturnAndRefund, []AfterSaleAction{act(AfterSaleApprove, ByAdmin)},
			[]AfterSaleStatus{AfterSaleRequested, AfterSaleAwaitingReturn, AfterSaleClosed}, returnWait, 0, false},
		{"a parcel never confirmed is received by itself", AfterSaleReturnAndRefund,
			[]AfterSaleAction{act(AfterSaleApprove, ByAdmin), act(AfterSaleReturn, ByUser)},
			[]AfterSaleStatus{AfterSaleRequested, AfterSaleAwaitingReturn, AfterSaleReturned, AfterSaleReceived, AfterSaleRefunded}, receiveWait, 3900, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			h := newAfterSaleHarness(t, w)
			h.in.AfterSaleAutoApprove, h.in.AfterSaleReturnTimeout, h.in.AfterSaleReceiveTimeout = autoApprove, returnWait, receiveWait
			h.update(4*time.Hour, UpdateRequestAfterSale, askAfterSale(tt.typ, 2, 1))
			last := 4 * time.Hour
			for i, a := range tt.actions {
				last = time.Duration(5+i) * time.Hour
				h.update(last, UpdateAfterSaleAction, a)
			}
			before := h.state(last + tt.fired - time.Minute)
			after := h.state(last + tt.fired + time.Minute)
			final := h.run()

			if got := savedSteps(w, asID); !slices.Equal(got, tt.want) {
				t.Errorf("rows written %v; want %v", got, tt.want)
			}
			if s := before.AfterSales[0].Status; s != tt.want[len(tt.actions)] {
				t.Errorf("a minute before the timer: %s; want %s", s, tt.want[len(tt.actions)])
			}
			if s := after.AfterSales[0].Status; s == tt.want[len(tt.actions)] {
				t.Errorf("a minute after the timer: still %s", s)
			}
			if final.RefundedFen != tt.refunded {
				t.Errorf("refunded %d fen; want %d", final.RefundedFen, tt.refunded)
			}
			if restocked := w.stockOf(2) == 5; restocked != tt.restock {
				t.Errorf("stock of product 2 %d; restock %v", w.stockOf(2), tt.restock)
			}
		})
	}
}

// Requests an order cannot take are refused by the validators: nothing is
// written to history, no row, no refund.
func TestBadAfterSaleRequestsAreRefusedBeforeHistory(t *testing.T) {
	tests := []struct {
		name   string
		ship   bool
		first  *AfterSaleRequest // an after-sale opened before at 4h
		update string
		arg    any
		want   string
	}{
		{"a second while one is open", true, &AfterSaleRequest{Type: AfterSaleRefundOnly, Items: []RefundItem{{ProductID: 1, Quantity: 1}}},
			UpdateRequestAfterSale, askAfterSale(AfterSaleRefundOnly, 2, 1), ErrTypeAfterSaleInProgress},
		{"a paid order not shipped", false, nil, UpdateRequestAfterSale, askAfterSale(AfterSaleRefundOnly, 2, 1), ErrTypeAfterSaleNotAllowed},
		{"more than bought", true, nil, UpdateRequestAfterSale, askAfterSale(AfterSaleRefundOnly, 2, 2), ErrTypeRefundExceedsOrder},
		{"a product not in the order", true, nil, UpdateRequestAfterSale, askAfterSale(AfterSaleRefundOnly, 3, 1), ErrTypeRefundExceedsOrder},
		{"an unknown type", true, nil, UpdateRequestAfterSale, askAfterSale("exchange", 2, 1), ErrTypeInvalidOrder},
		{"ten photos", true, nil, UpdateRequestAfterSale, AfterSaleRequest{Type: AfterSaleRefundOnly, Photos: make([]string, 10)}, ErrTypeInvalidOrder},
		{"a return before approval", true, &AfterSaleRequest{Type: AfterSaleReturnAndRefund},
			UpdateAfterSaleAction, act(AfterSaleReturn, ByUser), ErrTypeAfterSaleWrongStep},
		{"receive before the parcel", true, &AfterSaleRequest{Type: AfterSaleReturnAndRefund},
			UpdateAfterSaleAction, act(AfterSaleReceive, ByAdmin), ErrTypeAfterSaleWrongStep},
		{"the buyer approving", true, &AfterSaleRequest{Type: AfterSaleRefundOnly},
			UpdateAfterSaleAction, act(AfterSaleApprove, ByUser), ErrTypeAfterSaleNotAllowed},
		{"an after-sale of another order", true, &AfterSaleRequest{Type: AfterSaleRefundOnly},
			UpdateAfterSaleAction, AfterSaleAction{ID: "2026000000001-AS1", Action: AfterSaleApprove, By: ByAdmin}, ErrTypeInvalidOrder},
		{"an admin refund of goods an after-sale holds", true, &AfterSaleRequest{Type: AfterSaleRefundOnly, Items: []RefundItem{{ProductID: 2, Quantity: 1}}},
			UpdateRequestRefund, RefundRequest{By: ByAdmin, Items: []RefundItem{{ProductID: 2, Quantity: 1}}}, ErrTypeRefundExceedsOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			w.refundSettlesAs = status.RefundSuccess
			h := newPartsHarness(t, w, time.Minute)
			if tt.ship {
				h.update(shippedAt, UpdateShip, ShipRequest{TrackingNo: "SF1"})
			}
			if tt.first != nil {
				h.update(4*time.Hour, UpdateRequestAfterSale, *tt.first)
			}
			before := h.state(5*time.Hour - time.Minute)
			bad := h.update(5*time.Hour, tt.update, tt.arg)
			after := h.state(5*time.Hour + time.Minute)
			h.update(6*time.Hour, UpdateRequestRefund, RefundRequest{By: ByAdmin, Reason: "end the test"})
			h.run()

			bad.refusedWith(t, tt.want)
			if !bad.rejected {
				t.Errorf("refused by the handler, not the validator: it was written to history")
			}
			if !reflect.DeepEqual(before.AfterSales, after.AfterSales) || !reflect.DeepEqual(before.Refunds, after.Refunds) {
				t.Errorf("after-sales %+v → %+v, refunds %+v → %+v: changed", before.AfterSales, after.AfterSales, before.Refunds, after.Refunds)
			}
		})
	}
}

// An open after-sale and its timer go on in the next run: everything is in
// the state handed on.
func TestAfterSaleGoesOnAcrossAContinueAsNew(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	c := newChain(t, w)
	c.paidOrder()
	in := c.orderInput()
	in.Items = []Item{{ProductID: 1, Quantity: 2}, {ProductID: 2, Quantity: 1}}
	in.AfterSaleWindow = time.Hour
	c.update(shippedAt, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	c.update(4*time.Hour, UpdateRequestAfterSale, askAfterSale(AfterSaleReturnAndRefund, 1, 2))
	c.update(5*time.Hour, UpdateAfterSaleAction, act(AfterSaleApprove, ByAdmin))
	c.at(6*time.Hour, func() { c.env.SetContinueAsNewSuggested(true) })
	c.signal(6*time.Hour, SignalPayment, func() any { return c.w.pay(orderNo) })
	c.update(7*time.Hour, UpdateAfterSaleAction, act(AfterSaleReturn, ByUser))
	final := runChain[OrderInput, OrderView](c, OrderWorkflowName, in)

	if len(c.runs) < 2 {
		t.Fatalf("runs %+v; want the order to continue as new", c.runs)
	}
	handed := c.handedOn[0].(OrderInput).Continued
	if handed == nil || len(handed.AfterSales) != 1 || handed.AfterSales[0].Status != AfterSaleAwaitingReturn || handed.AfterSales[0].Deadline.IsZero() {
		t.Fatalf("the state handed on: %+v", handed.AfterSales)
	}
	// Received by itself (10 days) in the later run, refunded, restocked.
	if final.AfterSales[0].Status != AfterSaleRefunded || final.RefundedFen != 2*8800 || w.stockOf(1) != 10 {
		t.Errorf("final after-sale %s, refunded %d fen, stock %d; want REFUNDED, 17600, 10", final.AfterSales[0].Status, final.RefundedFen, w.stockOf(1))
	}
}

// Orders of before ChangePartialRefunds take no after-sale, and end at
// COMPLETED as they did.
func TestOrderOfBeforePartialRefundsTakesNoAfterSale(t *testing.T) {
	w := newWorld()
	h := newAfterSaleHarness(t, w)
	h.env.OnGetVersion(ChangePartialRefunds, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	bad := h.update(4*time.Hour, UpdateRequestAfterSale, askAfterSale(AfterSaleRefundOnly, 2, 1))
	h.update(5*time.Hour, UpdateConfirm)
	final := h.run()

	bad.refusedWith(t, ErrTypeAfterSaleNotAllowed)
	if final.Status != status.Completed || h.elapsed() > 6*time.Hour {
		t.Errorf("final %s after %v; want COMPLETED at once", final.Status, h.elapsed())
	}
}

// The state query and the details line show the open after-sale.
func TestDetailsLineShowsTheOpenAfterSale(t *testing.T) {
	w := newWorld()
	h := newAfterSaleHarness(t, w)
	h.update(4*time.Hour, UpdateRequestAfterSale, askAfterSale(AfterSaleRefundOnly, 2, 1))
	var details string
	mid := h.state(5 * time.Hour)
	h.at(5*time.Hour, func() {
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
	h.update(6*time.Hour, UpdateAfterSaleAction, act(AfterSaleReject, ByAdmin))
	h.run()

	if !strings.Contains(details, "after-sale "+asID+" REQUESTED") || !strings.Contains(details, "awaits the shop") {
		t.Errorf("details %q", details)
	}
	if len(mid.AfterSales) != 1 || mid.AfterSales[0].Status != AfterSaleRequested || !strings.Contains(mid.Waiting, asID) {
		t.Errorf("state: after-sales %+v, waiting %q", mid.AfterSales, mid.Waiting)
	}
}
