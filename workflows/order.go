package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// OrderWorkflow is one order's whole life, from the moment it is placed until
// it ends:
//
//	place it (price from the database, check stock, store the row) — or refuse it
//	await payment: WeChat's notify, the user's cancel, or the payment deadline
//	  deadline or cancel: ask WeChat, close there, ask again, then CLOSED (or paid after all)
//	paid: check the money against the order, mark PAID, deduct the stock
//	  out of stock: refund in full (REFUNDING → REFUNDED)
//	fulfil: ship, then the user's confirmation or the auto-confirm timer → COMPLETED;
//	  a refund request before shipping (or an admin's after) → REFUNDED, stock restored
//
// Money WeChat reports that this order does not keep (a payment after it
// closed, a payment that does not match it) goes to a StrayPaymentWorkflow,
// which returns it.
func OrderWorkflow(ctx workflow.Context, in OrderInput) (OrderView, error) {
	o := newOrder(ctx, in)
	// Orders started since this change run their busy database steps as
	// local activities (localDBActivities); older ones replay as they ran.
	o.localDB = runsDBLocally(ctx)
	// The order's work runs on a context that Temporal's cancellation does not
	// interrupt: a refund or a close that has begun must finish. A cancel
	// request (e.g. from the Web UI) is taken as the user's cancel instead.
	ctx = o.detachFromCancellation(ctx)
	if err := o.registerHandlers(ctx); err != nil {
		return OrderView{}, err
	}
	o.listen(ctx)

	if err := o.place(ctx); err != nil {
		return o.end(ctx, err)
	}
	paid, err := o.awaitPayment(ctx)
	if err != nil {
		return o.end(ctx, err)
	}
	if paid {
		if err := o.fulfil(ctx); err != nil {
			return o.end(ctx, err)
		}
	}
	return o.end(ctx, nil)
}

// order is the workflow's state. The main loop changes the order's status;
// update handlers record requests for it (cancel, refund, ship, confirm) and
// answer once it acted. pay and sync run their own activities — a person
// waits on them — and hand anything that changes the status to the loop.
type order struct {
	in       OrderInput
	status   status.Order
	deadline time.Time
	created  CreatedOrder
	placed   bool  // the create activity has finished, one way or the other
	refusal  error // why the order was refused, when it was
	logger   log.Logger
	localDB  bool // runs localDBActivities locally (ChangeLocalDB)

	// Payment.
	inbox           []PaymentNotice // payments reported and not yet handled
	seen            map[string]bool // transaction ids already handled
	transactionID   string          // the payment this order keeps
	payParams       *PayParams      // the prepay's wx.requestPayment parameters
	prepaidAt       time.Time
	prepayAttempted bool // WeChat may know the order: close it there before closing it here
	paying          bool // a pay update is making the prepay
	closing         bool // closing has begun: no new prepay
	cancelRequested bool
	lastSync        time.Time

	// After payment: requests the main loop decides on (see request).
	refundRequest  *request[RefundRequest]
	shipRequest    *request[ShipRequest]
	confirmRequest *request[struct{}]
	refundSeq      int
	refunds        []RefundView
	refundResults  map[string]RefundNotice // by out_refund_no: the latest final result reported
	autoConfirm    workflow.Future

	flags       []string
	transitions []Transition
	waiting     string
}

func newOrder(ctx workflow.Context, in OrderInput) *order {
	if in.AutoConfirm <= 0 {
		in.AutoConfirm = DefaultAutoConfirm
	}
	return &order{
		in:            in,
		status:        status.Pending,
		deadline:      workflow.Now(ctx).Add(in.PayTimeout),
		seen:          map[string]bool{},
		refundResults: map[string]RefundNotice{},
		logger: log.With(workflow.GetLogger(ctx),
			"order_no", in.OrderNo, "workflow_id", workflow.GetInfo(ctx).WorkflowExecution.ID),
	}
}

// detachFromCancellation returns a context Temporal's cancellation does not
// reach, and turns a cancel request into the user's cancel: an unpaid order
// closes as if the user had cancelled it; a paid one ends only by refund or
// completion, so the request changes nothing for it.
func (o *order) detachFromCancellation(root workflow.Context) workflow.Context {
	ctx, _ := workflow.NewDisconnectedContext(root)
	workflow.Go(ctx, func(ctx workflow.Context) {
		root.Done().Receive(ctx, nil)
		if o.status == status.Pending {
			o.logger.Info("workflow cancel requested: closing the unpaid order")
			o.cancelRequested = true
		}
	})
	return ctx
}

// place stores the order priced from the database, or refuses it. A refused
// order leaves no row behind and its workflow ends at once.
func (o *order) place(ctx workflow.Context) error {
	defer func() { o.placed = true }()
	o.setWaiting(ctx, "Placing the order: pricing the items and checking stock")

	err := o.runDB(ctx, dbActivity("Price the items, check stock and store order "+o.in.OrderNo), ActivityCreateOrder, CreateOrderInput{
		OrderNo:     o.in.OrderNo,
		UserID:      o.in.UserID,
		Items:       o.in.Items,
		Address:     o.in.Address,
		PayDeadline: o.deadline,
	}, &o.created)
	if err != nil {
		if t := errorType(err); refusesPlacement(t) {
			var appErr *temporal.ApplicationError
			errors.As(err, &appErr)
			o.refusal = temporal.NewNonRetryableApplicationError(appErr.Message(), t, nil)
			o.logger.Info("order refused", "reason", t, "message", appErr.Message())
			o.setStatus(ctx, status.Refused, appErr.Message())
			return o.refusal
		}
		return fmt.Errorf("place order %s: %w", o.in.OrderNo, err)
	}
	// The row's deadline is the one stored (a retried activity returns the first row).
	o.deadline = o.created.PayDeadline
	o.logger.Info("order placed", "total_fen", o.created.TotalFen, "pay_deadline", o.deadline)
	o.publish(ctx)
	return nil
}

// end finishes the workflow: money that arrived while the order was ending
// goes back to the payer, running update handlers deliver their answers, and
// the final view is the result.
func (o *order) end(ctx workflow.Context, err error) (OrderView, error) {
	o.returnStrayPayments(ctx)
	o.refusePending(err)
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	// A signal accepted by the server while the last task ran makes Temporal
	// replay that task with it; handle what the replay delivered.
	o.returnStrayPayments(ctx)
	if o.status == status.Refused {
		// A refusal is an answer, not a failure of the workflow.
		return o.view(), nil
	}
	if err == nil {
		o.setWaiting(ctx, fmt.Sprintf("Ended: **%s**", o.status))
	}
	return o.view(), err
}

func (o *order) view() OrderView {
	v := OrderView{
		OrderNo:       o.in.OrderNo,
		UserID:        o.in.UserID,
		Status:        o.status,
		TotalFen:      o.created.TotalFen,
		Items:         o.created.Items,
		PayDeadline:   o.deadline,
		CreatedAt:     o.created.CreatedAt,
		TransactionID: o.transactionID,
		Refunds:       append([]RefundView(nil), o.refunds...),
		Flags:         append([]string(nil), o.flags...),
		Transitions:   append([]Transition(nil), o.transitions...),
		Waiting:       o.waiting,
	}
	var appErr *temporal.ApplicationError
	if errors.As(o.refusal, &appErr) {
		v.RefusalType, v.RefusalMessage = appErr.Type(), appErr.Message()
	}
	return v
}

// refusesPlacement reports whether the create activity's error type is a
// refusal of the order (an answer to the customer), not a failure.
func refusesPlacement(errType string) bool {
	switch errType {
	case ErrTypeOutOfStock, ErrTypeUnknownProduct, ErrTypeInvalidOrder:
		return true
	}
	return false
}
