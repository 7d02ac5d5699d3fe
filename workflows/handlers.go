package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// How the outside talks to an order. Signals (from WeChat's notifies) are
// queued for the main loop; updates (from the mini-program and the admin)
// are refused by their validator before anything is written to history when
// the order cannot take them, and otherwise record the request and answer
// once the main loop has acted on it.

// listen queues the payments and refund results WeChat reports. Repeats are
// queued too: the main loop recognises them by transaction id.
func (o *order) listen(ctx workflow.Context) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalPayment)
		for {
			var p PaymentNotice
			ch.Receive(ctx, &p)
			o.logger.Info("payment reported", "transaction_id", p.TransactionID, "trade_state", p.TradeState, "source", p.Source)
			o.inbox = append(o.inbox, p)
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalRefund)
		for {
			var r RefundNotice
			ch.Receive(ctx, &r)
			o.logger.Info("refund result reported", "out_refund_no", r.OutRefundNo, "status", r.Status, "source", r.Source)
			if _, known := o.refundResults[r.OutRefundNo]; r.Final() && !known {
				o.refundResults[r.OutRefundNo] = r
			}
		}
	})
}

func (o *order) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryState, func() (OrderView, error) {
		return o.view(), nil
	}, workflow.QueryHandlerOptions{Description: "the order as the workflow sees it: status, deadline, transaction, refunds, transitions"}); err != nil {
		return fmt.Errorf("register %s query: %w", QueryState, err)
	}
	updates := []struct {
		name    string
		handler any
		opts    workflow.UpdateHandlerOptions
	}{
		{UpdateCreate, o.handleCreate, workflow.UpdateHandlerOptions{
			Description: "returns the created order, or why it was refused"}},
		{UpdatePay, o.pay, workflow.UpdateHandlerOptions{
			Validator: o.validatePay, Description: "returns the wx.requestPayment parameters of a PENDING order"}},
		{UpdateCancel, o.handleCancel, workflow.UpdateHandlerOptions{
			Validator: o.validateCancel, Description: "closes a PENDING order; answers once it is CLOSED (or found PAID)"}},
		{UpdateSync, o.sync, workflow.UpdateHandlerOptions{
			Validator: o.validateSync, Description: "asks WeChat now whether a PENDING order was paid"}},
		{UpdateRequestRefund, o.handleRefund, workflow.UpdateHandlerOptions{
			Validator: o.validateRefund, Description: "refunds a paid order in full"}},
		{UpdateShip, o.handleShip, workflow.UpdateHandlerOptions{
			Validator: o.validateShip, Description: "marks a PAID order SHIPPED"}},
		{UpdateConfirm, o.handleConfirm, workflow.UpdateHandlerOptions{
			Validator: o.validateConfirm, Description: "marks a SHIPPED order COMPLETED"}},
	}
	for _, u := range updates {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, u.name, u.handler, u.opts); err != nil {
			return fmt.Errorf("register %s update: %w", u.name, err)
		}
	}
	return nil
}

// handleCreate is sent with the start (update-with-start): it blocks until
// the order is stored or refused, so the API learns which in one round trip.
func (o *order) handleCreate(ctx workflow.Context) (OrderView, error) {
	if err := workflow.Await(ctx, func() bool { return o.placed }); err != nil {
		return OrderView{}, err
	}
	if o.refusal != nil {
		return OrderView{}, o.refusal
	}
	return o.view(), nil
}

// awaitLeaving answers an update once the order has left the statuses in
// from (the main loop acted on the request).
func (o *order) awaitLeaving(ctx workflow.Context, from ...status.Order) (OrderView, error) {
	err := workflow.Await(ctx, func() bool {
		for _, s := range from {
			if o.status == s {
				return false
			}
		}
		return true
	})
	return o.view(), err
}

func (o *order) validateCancel(ctx workflow.Context) error {
	switch o.status {
	case status.Pending, status.Closed:
		return nil // cancelling twice answers the same
	case status.Paid:
		return refuse(ErrTypeNotCancellable, "order %s is paid: ask for a refund instead", o.in.OrderNo)
	}
	return refuse(ErrTypeNotCancellable, "order %s is %s", o.in.OrderNo, o.status)
}

func (o *order) handleCancel(ctx workflow.Context) (OrderView, error) {
	if o.status == status.Pending {
		o.cancelRequested = true
	}
	return o.awaitLeaving(ctx, status.Pending)
}

// request is a refund, ship or confirm the main loop has yet to act on.
// The update that made it answers once the loop decided: done, or refused
// because the order moved on meanwhile (a ship, an auto-confirm or an
// oversold refund that was already under way when the request came).
type request[T any] struct {
	arg     T
	done    bool
	refused error
}

func (r *request[T]) decide(refused error) { r.done, r.refused = true, refused }

// await answers the update that made r (or joined it: a double tap).
func (o *order) await(ctx workflow.Context, done func() bool, refused func() error) (OrderView, error) {
	if err := workflow.Await(ctx, done); err != nil {
		return OrderView{}, err
	}
	return o.view(), refused()
}

// refundRefusal says why the order, as it is now, cannot be refunded at
// the request of by (nil: it can).
func (o *order) refundRefusal(by string) error {
	switch by {
	case ByUser:
		switch o.status {
		case status.Paid:
			return nil
		case status.Shipped:
			return refuse(ErrTypeNotRefundable, "order %s has shipped: ask the shop to refund it", o.in.OrderNo)
		}
	case ByAdmin:
		switch o.status {
		case status.Paid, status.Shipped:
			return nil
		}
	default:
		return refuse(ErrTypeNotRefundable, "a refund is asked by %q; want %q or %q", by, ByUser, ByAdmin)
	}
	return refuse(ErrTypeNotRefundable, "order %s is %s", o.in.OrderNo, o.status)
}

func (o *order) validateRefund(ctx workflow.Context, req RefundRequest) error {
	if (req.By == ByUser || req.By == ByAdmin) && (o.status == status.Refunding || o.status == status.Refunded) {
		return nil // asking twice answers the same
	}
	return o.refundRefusal(req.By)
}

func (o *order) handleRefund(ctx workflow.Context, req RefundRequest) (OrderView, error) {
	if o.status == status.Refunding || o.status == status.Refunded {
		return o.view(), nil
	}
	if o.refundRequest == nil {
		o.refundRequest = &request[RefundRequest]{arg: req}
	}
	r := o.refundRequest
	return o.await(ctx, func() bool { return r.done }, func() error { return r.refused })
}

func (o *order) validateShip(ctx workflow.Context, _ ShipRequest) error {
	switch o.status {
	case status.Paid, status.Shipped:
		return nil
	}
	return refuse(ErrTypeNotShippable, "order %s is %s; only a PAID order ships", o.in.OrderNo, o.status)
}

func (o *order) handleShip(ctx workflow.Context, req ShipRequest) (OrderView, error) {
	if o.status == status.Shipped {
		return o.view(), nil // shipped already: the same answer
	}
	if o.shipRequest == nil {
		o.shipRequest = &request[ShipRequest]{arg: req}
	}
	r := o.shipRequest
	return o.await(ctx, func() bool { return r.done }, func() error { return r.refused })
}

func (o *order) validateConfirm(ctx workflow.Context) error {
	switch o.status {
	case status.Shipped, status.Completed:
		return nil
	}
	return refuse(ErrTypeNotConfirmable, "order %s is %s; only a SHIPPED order can be confirmed", o.in.OrderNo, o.status)
}

func (o *order) handleConfirm(ctx workflow.Context) (OrderView, error) {
	if o.status == status.Completed {
		return o.view(), nil
	}
	if o.confirmRequest == nil {
		o.confirmRequest = &request[struct{}]{}
	}
	r := o.confirmRequest
	return o.await(ctx, func() bool { return r.done }, func() error { return r.refused })
}
