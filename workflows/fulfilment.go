package workflows

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// fulfil takes a PAID order to its end: its stock deducted — or, when the
// stock ran out while it was being paid, its money returned — then shipping,
// the user's confirmation or a refund.
func (o *order) fulfil(ctx workflow.Context) error {
	// Orders paid since this change refund in parts (parts.go). Decided
	// here, in the first run, once the money is in (a continued run takes
	// the answer from its state: Parts), not when the order starts: the
	// first workflow task of an order already holds a dozen events, and
	// Temporal keeps (writes to history) the next workflow task that
	// rejects an update once its first one passed 10
	// (history.discardSpeculativeWorkflowTaskMaximumEventsCount) — one more
	// marker there, and a refused request would write to the order's
	// history.
	if refundsInParts(ctx) {
		o.Parts = &PartRefunds{}
	}
	deducted, err := o.deductStock(ctx)
	if err != nil {
		return err
	}
	if !deducted {
		return o.refundOverSold(ctx)
	}
	return o.awaitFulfilment(ctx)
}

// deductStock takes every item out of stock in one transaction, once (the
// ledger's unique key makes a retry a no-op). False means out of stock.
func (o *order) deductStock(ctx workflow.Context) (bool, error) {
	o.setWaiting(ctx, "Paid: deducting the items from stock")
	err := o.runDB(ctx, dbActivity("Deduct the stock of order "+o.Input.OrderNo+" (all items, once)"), ActivityDeductStock, o.Input.OrderNo, nil)
	switch {
	case err == nil:
		return true, nil
	case errorType(err) == ErrTypeOutOfStock:
		o.logger.Warn("paid but out of stock: refunding", "reason", errorMessage(err))
		return false, nil
	default:
		return false, fmt.Errorf("deduct stock of order %s: %w", o.Input.OrderNo, err)
	}
}

// refundOverSold is the compensation for an order paid after its stock ran
// out: the full amount goes back. Nothing was deducted, so nothing is restored.
func (o *order) refundOverSold(ctx workflow.Context) error {
	return o.refund(ctx, RefundRequest{By: BySystem, Reason: "out of stock when the payment arrived"}, false)
}

// awaitFulfilment waits for what happens to a paid order: the shop ships
// it, then the user confirms or the auto-confirm timer fires (COMPLETED); or
// a refund is asked for (REFUNDED). An order on the shipping-management
// path reports the shipment to WeChat and completes on WeChat's word
// (awaitShippedAtWechat). Payments of other transactions that arrive
// meanwhile are returned; WeChat's reminders to ship flag the order.
func (o *order) awaitFulfilment(ctx workflow.Context) error {
	for o.hasWorkLeft() {
		// Between two steps, nothing under way: the wait may go on in a new run.
		if err := o.budget.keepHistoryBudget(ctx, o); err != nil {
			return err
		}
		var err error
		// Part refunds (orders since ChangePartialRefunds) wake every wait
		// with a result, a part queued meanwhile, or at their next
		// deadline (partsNext).
		partsNext := o.nextPartDeadline()
		partsMoved := func() bool { return o.partResultIn() || !o.nextPartDeadline().Equal(partsNext) }
		switch o.Status {
		case status.Paid:
			o.setWaiting(ctx, o.withParts("Paid and stock deducted: waiting for the shop to ship (or a refund request)"))
			err = awaitUntil(ctx, func() bool {
				return pending(o.RefundRequest) || pending(o.ShipRequest) || len(o.Inbox) > 0 || o.ShippingReminder != nil ||
					partsMoved()
			}, partsNext, o.partTimerSummary())
		case status.Shipped:
			if o.reportsToWechat() {
				err = o.awaitShippedAtWechat(ctx)
				break
			}
			o.setWaiting(ctx, o.withParts(fmt.Sprintf("Shipped: waiting for the user to confirm receipt (completes by itself %s after shipping)", human(o.Input.AutoConfirm))))
			err = awaitUntil(ctx, func() bool {
				return pending(o.RefundRequest) || pending(o.ConfirmRequest) || o.autoConfirm.IsReady() || len(o.Inbox) > 0 ||
					o.WechatSettlement != nil || o.ShippingReminder != nil || partsMoved()
			}, partsNext, o.partTimerSummary())
		case status.Completed:
			err = o.awaitRefundsAndAfterSales(ctx)
		default:
			if o.Status.Terminal() {
				// (An after-sale's last step, written after its refund
				// made the order REFUNDED.)
				err = o.awaitRefundsAndAfterSales(ctx)
				break
			}
			return fmt.Errorf("order %s is %s after payment: no way forward", o.Input.OrderNo, o.Status)
		}
		if err != nil {
			return err
		}
		o.returnStrayPayments(ctx)

		// Each step's transition decides the requests it answers (setStatus).
		shipped := o.Status == status.Shipped
		switch {
		case o.partDue(workflow.Now(ctx)):
			// Money going back goes first: its outcome is recorded, and the
			// next refund asked, before the order moves on.
			err = o.partStep(ctx)
		case pending(o.RefundRequest):
			// Goods that have not left the shop go back on the shelf.
			restock := o.Status == status.Paid
			err = o.refund(ctx, o.RefundRequest.Arg, restock)
		case o.Status == status.Paid && pending(o.ShipRequest):
			err = o.ship(ctx, o.ShipRequest.Arg)
		case shipped && pending(o.ConfirmRequest):
			err = o.confirmShipped(ctx)
		case shipped && o.WechatSettlement != nil:
			err = o.completeOnSettlement(ctx)
		case shipped && !o.reportsToWechat() && o.autoConfirm.IsReady():
			err = o.complete(ctx, fmt.Sprintf("no word from the user %s after shipping", human(o.Input.AutoConfirm)))
		case shipped && o.reportsToWechat() && o.autoCompleteDue(workflow.Now(ctx)):
			err = o.complete(ctx, fmt.Sprintf("no word from the user %s after shipping (WeChat does not manage the shop's shipping)", human(o.Input.AutoConfirm)))
		case o.ShippingReminder != nil && !o.Status.Terminal():
			err = o.takeReminder(ctx)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (o *order) ship(ctx workflow.Context, req ShipRequest) error {
	why := "shipped by the shop"
	if req.LogisticsType != "" {
		why += " (" + req.LogisticsType + ")"
	}
	if req.TrackingNo != "" {
		why += ", tracking number " + req.TrackingNo
	}
	if n := len(req.Packages); n > 1 {
		why += fmt.Sprintf(" and %d more packages", n-1)
	}
	var shipment *ShipRequest
	if req.LogisticsType != "" {
		shipment = &req
	}
	if err := o.transition(ctx, []status.Order{status.Paid}, status.Shipped, why, req.TrackingNo, shipment); err != nil {
		return err
	}
	o.AutoConfirmAt = workflow.Now(ctx).Add(o.Input.AutoConfirm)
	if o.reportsToWechat() {
		// Deadlines in the state, waited for by the main loop.
		o.shipToWechat()
		return nil
	}
	o.armAutoConfirm(ctx)
	return nil
}

// armAutoConfirm starts the timer that completes the shipped order at
// AutoConfirmAt: when it ships, and again in each run it continues in. (The
// shipping-management path has no timer: its deadlines are in
// WechatShipping, waited for by awaitShippedAtWechat.)
func (o *order) armAutoConfirm(ctx workflow.Context) {
	summary := fmt.Sprintf("Auto-confirm %s after shipping", human(o.Input.AutoConfirm))
	if o.Runs > 0 {
		summary += " (" + clock(o.AutoConfirmAt) + ")"
	}
	o.autoConfirm = workflow.NewTimerWithOptions(ctx, max(o.AutoConfirmAt.Sub(workflow.Now(ctx)), 0),
		workflow.TimerOptions{Summary: summary})
}

func (o *order) complete(ctx workflow.Context, why string) error {
	return o.transition(ctx, []status.Order{status.Shipped}, status.Completed, why, "", nil)
}

// refund returns the order's money in full: REFUNDING, the refund asked of
// WeChat (requestRefund), then REFUNDED, with the stock restored when asked;
// or REFUND_FAILED, flagged for a person. The caller's context is already
// one Temporal's cancellation does not reach, so a refund that has begun
// always finishes.
func (o *order) refund(ctx workflow.Context, req RefundRequest, restoreStock bool) error {
	why := fmt.Sprintf("refund requested by the %s", req.By)
	if req.Reason != "" {
		why += ": " + req.Reason
	}
	if err := o.transition(ctx, []status.Order{o.Status}, status.Refunding, why, "", nil); err != nil {
		return err
	}
	o.RefundSeq++
	o.RestoreStock = restoreStock
	in := RequestRefundInput{
		OrderNo: o.Input.OrderNo, TransactionID: o.TransactionID, OutRefundNo: OrderRefundNo(o.Input.OrderNo, o.RefundSeq),
		RefundFen: o.Created.TotalFen, TotalFen: o.Created.TotalFen, Reason: req.Reason,
	}
	o.Refunds = append(o.Refunds, RefundView{OutRefundNo: in.OutRefundNo, RefundFen: in.RefundFen, Status: string(status.RefundProcessing), Reason: why})
	result, err := requestRefund(ctx, o, in, fmt.Sprintf("Refund %s of order %s (transaction %s) at WeChat Pay", yuan(in.RefundFen), o.Input.OrderNo, o.TransactionID))
	if err != nil {
		return err // continued as new: the next run awaits the result
	}
	return o.recordSettledRefund(ctx, result, o.RestoreStock)
}

// finishRefund awaits the result of the refund an earlier run asked for
// (WechatRefunds.Awaiting) and records it.
func (o *order) finishRefund(ctx workflow.Context) error {
	result, err := awaitRefund(ctx, o)
	if err != nil {
		return err
	}
	return o.recordSettledRefund(ctx, result, o.RestoreStock)
}

func (o *order) wechatRefunds() *WechatRefunds { return &o.WechatRefunds }

func (o *order) log() log.Logger { return o.logger }

// refundStalled flags the order REFUND_STALLED: it stays REFUNDING and keeps
// waiting for WeChat, and a person is told. (An error here is the workflow
// ending.)
func (o *order) refundStalled(ctx workflow.Context, outRefundNo string) {
	_ = o.flag(ctx, FlagRefundStalled, fmt.Sprintf("refund %s has been with WeChat Pay for over %s", outRefundNo, human(refundStallAfter)))
}

// recordSettledRefund records the result of a refund WeChat settled
// (SettleRefund) and moves the order to REFUNDED or REFUND_FAILED.
func (o *order) recordSettledRefund(ctx workflow.Context, r RefundNotice, restoreStock bool) error {
	ok := r.Status == status.RefundSuccess
	next := status.RefundFailed
	if ok {
		next = status.Refunded
	}
	summary := fmt.Sprintf("Record refund %s as %s and mark order %s %s", r.OutRefundNo, r.Status, o.Input.OrderNo, next)
	if ok && restoreStock {
		summary += ", restoring its stock"
	}
	actx := workflow.WithActivityOptions(ctx, dbActivity(summary))
	var res OrderStatusResult
	if err := workflow.ExecuteActivity(actx, ActivitySettleRefund, SettleRefundInput{
		OrderNo: o.Input.OrderNo, Refund: r, OrderRefund: true, RestoreStock: ok && restoreStock,
	}).Get(ctx, &res); err != nil {
		return fmt.Errorf("settle refund %s: %w", r.OutRefundNo, err)
	}
	for i := range o.Refunds {
		if o.Refunds[i].OutRefundNo == r.OutRefundNo {
			o.Refunds[i].Status = string(r.Status)
		}
	}
	if ok {
		o.setStatus(ctx, status.Refunded, fmt.Sprintf("WeChat refunded %s (%s, %s)", yuan(o.Created.TotalFen), r.OutRefundNo, r.Source))
		return nil
	}
	o.addFlag(ctx, FlagRefundFailed)
	o.logger.Error("refund failed: a person must return the money", "out_refund_no", r.OutRefundNo, "status", r.Status, "source", r.Source)
	o.setStatus(ctx, status.RefundFailed, fmt.Sprintf("refund %s is %s (%s): a person must return the money", r.OutRefundNo, r.Status, r.Source))
	return nil
}
