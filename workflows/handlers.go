package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
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
			o.notePayment(p)
		}
	})
	listenRefunds(ctx, o.logger, &o.WechatRefunds)
	o.listenWechat(ctx)
}

// notePayment queues a payment WeChat reported for the main loop.
func (o *order) notePayment(p PaymentNotice) {
	o.logger.Info("payment reported", "transaction_id", p.TransactionID, "trade_state", p.TradeState, "source", p.Source)
	o.Inbox = append(o.Inbox, p)
}

func (o *order) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryState, func() (OrderView, error) {
		return o.view(), nil
	}, workflow.QueryHandlerOptions{Description: "the order as the workflow sees it: status, deadline, transaction, refunds, transitions"}); err != nil {
		return fmt.Errorf("register %s query: %w", QueryState, err)
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryPayParams, func() (PayParams, error) {
		return o.queryPayParams(ctx)
	}, workflow.QueryHandlerOptions{Description: "the wx.requestPayment parameters of the prepay a PENDING order holds"}); err != nil {
		return fmt.Errorf("register %s query: %w", QueryPayParams, err)
	}
	updates := []struct {
		name    string
		handler any
		opts    workflow.UpdateHandlerOptions
	}{
		{UpdateCreate, o.handleCreate, workflow.UpdateHandlerOptions{
			Description: "returns the created order, or why it was refused"}},
		{UpdatePay, o.pay, workflow.UpdateHandlerOptions{
			Validator: o.validatePayUpdate, Description: "returns the wx.requestPayment parameters of a PENDING order"}},
		{UpdateCancel, o.handleCancel, workflow.UpdateHandlerOptions{
			Validator: o.validateCancel, Description: "closes a PENDING order; answers once it is CLOSED (or found PAID)"}},
		{UpdateSync, o.sync, workflow.UpdateHandlerOptions{
			Validator: o.validateSync, Description: "asks WeChat now whether a PENDING order was paid"}},
		{UpdateRequestRefund, o.handleRefund, workflow.UpdateHandlerOptions{
			Validator: o.validateRefund, Description: "refunds a paid order, in full or some of its items"}},
		{UpdateShip, o.handleShip, workflow.UpdateHandlerOptions{
			Validator: o.validateShip, Description: "marks a PAID order SHIPPED"}},
		{UpdateConfirm, o.handleConfirm, workflow.UpdateHandlerOptions{
			Validator: o.validateConfirm, Description: "marks a SHIPPED order COMPLETED"}},
		{UpdateRequestAfterSale, o.handleAfterSale, workflow.UpdateHandlerOptions{
			Validator: o.validateAfterSale, Description: "opens an after-sale of a SHIPPED or COMPLETED order (refund_only, return_and_refund)"}},
		{UpdateAfterSaleAction, o.handleAfterSaleAction, workflow.UpdateHandlerOptions{
			Validator: o.validateAfterSaleAction, Description: "takes an after-sale's next step: approve, reject, return, receive"}},
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
	if err := workflow.Await(ctx, func() bool { return o.Placed }); err != nil {
		return OrderView{}, err
	}
	if o.Refusal != nil {
		return OrderView{}, temporal.NewNonRetryableApplicationError(o.Refusal.Message, o.Refusal.Type, nil)
	}
	return o.view(), nil
}

// awaitLeaving answers an update once the order has left the statuses in
// from (the main loop acted on the request).
func (o *order) awaitLeaving(ctx workflow.Context, from ...status.Order) (OrderView, error) {
	err := workflow.Await(ctx, func() bool {
		for _, s := range from {
			if o.Status == s {
				return false
			}
		}
		return true
	})
	return o.view(), err
}

func (o *order) validateCancel(ctx workflow.Context) error {
	switch o.Status {
	case status.Pending:
		if o.CancelRequested || o.Closing != "" {
			// Closing already: a repeat writes nothing (ErrTypeAlreadyRequested).
			return refuse(ErrTypeAlreadyRequested, "order %s is being closed", o.Input.OrderNo)
		}
		return nil
	case status.Closed:
		return refuse(ErrTypeAlreadyRequested, "order %s is closed", o.Input.OrderNo)
	case status.Paid:
		return refuse(ErrTypeNotCancellable, "order %s is paid: ask for a refund instead", o.Input.OrderNo)
	}
	return refuse(ErrTypeNotCancellable, "order %s is %s", o.Input.OrderNo, o.Status)
}

func (o *order) handleCancel(ctx workflow.Context) (OrderView, error) {
	if o.Status == status.Pending {
		o.CancelRequested = true
	}
	return o.awaitLeaving(ctx, status.Pending)
}

// awaitDecision answers the update that made r (or joined it: a double
// tap) once the main loop decided it.
func awaitDecision[T any](ctx workflow.Context, o *order, r *request[T]) (OrderView, error) {
	if err := workflow.Await(ctx, func() bool { return r.Done }); err != nil {
		return OrderView{}, err
	}
	return o.view(), r.Refused.err()
}

// refundRefusal says why the order, as it is now, cannot be refunded at
// the request of by (nil: it can).
func (o *order) refundRefusal(by string) *Refusal {
	switch by {
	case ByUser:
		switch o.Status {
		case status.Paid:
			return nil
		case status.Shipped:
			return newRefusal(ErrTypeNotRefundable, "order %s has shipped: ask the shop to refund it", o.Input.OrderNo)
		}
	case ByAdmin:
		switch o.Status {
		case status.Paid, status.Shipped:
			return nil
		}
	default:
		return newRefusal(ErrTypeNotRefundable, "a refund is asked by %q; want %q or %q", by, ByUser, ByAdmin)
	}
	return newRefusal(ErrTypeNotRefundable, "order %s is %s", o.Input.OrderNo, o.Status)
}

func (o *order) validateRefund(ctx workflow.Context, req RefundRequest) error {
	if (req.By == ByUser || req.By == ByAdmin) && (o.Status == status.Refunding || o.Status == status.Refunded) {
		// Asking twice answers the same, from the order as it is: a repeat
		// writes nothing (ErrTypeAlreadyRequested).
		return refuse(ErrTypeAlreadyRequested, "order %s is %s", o.Input.OrderNo, o.Status)
	}
	if err := o.refundRefusal(req.By).err(); err != nil {
		return err
	}
	if o.inParts() {
		return o.validateParts(req)
	}
	if len(req.Items) > 0 {
		return refuse(ErrTypeNotRefundable, "order %s was placed before refunds of some items: it is refunded in full (no items)", o.Input.OrderNo)
	}
	return nil
}

func (o *order) handleRefund(ctx workflow.Context, req RefundRequest) (OrderView, error) {
	if o.inParts() {
		return o.handlePartsRefund(ctx, req)
	}
	if o.Status == status.Refunding || o.Status == status.Refunded {
		return o.view(), nil
	}
	if o.RefundRequest == nil {
		o.RefundRequest = &request[RefundRequest]{Arg: req}
	}
	return awaitDecision(ctx, o, o.RefundRequest)
}

func (o *order) validateShip(ctx workflow.Context, _ ShipRequest) error {
	switch o.Status {
	case status.Paid:
		if o.nothingToShip() {
			// The validator alone decides this (it does not run on replay):
			// a ship accepted before the check stays as it was.
			return refuse(ErrTypeNotShippable, "every item of order %s is refunded or being refunded: nothing is left to ship", o.Input.OrderNo)
		}
		return nil
	case status.Shipped:
		// Shipped already: a repeat writes nothing (ErrTypeAlreadyRequested).
		return refuse(ErrTypeAlreadyRequested, "order %s has shipped", o.Input.OrderNo)
	}
	return refuse(ErrTypeNotShippable, "order %s is %s; only a PAID order ships", o.Input.OrderNo, o.Status)
}

func (o *order) handleShip(ctx workflow.Context, req ShipRequest) (OrderView, error) {
	if o.Status == status.Shipped {
		return o.view(), nil // shipped already: the same answer
	}
	if o.ShipRequest == nil {
		o.ShipRequest = &request[ShipRequest]{Arg: req}
	}
	return awaitDecision(ctx, o, o.ShipRequest)
}

func (o *order) validateConfirm(ctx workflow.Context) error {
	switch o.Status {
	case status.Shipped, status.Completed:
		return nil
	}
	return refuse(ErrTypeNotConfirmable, "order %s is %s; only a SHIPPED order can be confirmed", o.Input.OrderNo, o.Status)
}

func (o *order) handleConfirm(ctx workflow.Context) (OrderView, error) {
	if o.Status == status.Completed {
		return o.view(), nil
	}
	// A confirmation refused while the order is still SHIPPED (WeChat had
	// not recorded the receipt yet) does not answer the next one.
	if r := o.ConfirmRequest; r == nil || (r.Done && r.Refused != nil && o.Status == status.Shipped) {
		o.ConfirmRequest = &request[struct{}]{}
	}
	return awaitDecision(ctx, o, o.ConfirmRequest)
}
