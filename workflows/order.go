package workflows

import (
	"fmt"

	"go.temporal.io/sdk/log"
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
	// Orders started since this change report their shipment to WeChat
	// and complete on its word; older ones replay as they ran. A continued
	// run keeps the first run's answer: it is in the state (WechatShipping),
	// and a fresh question would answer the new path for any order.
	if in.Continued == nil && reportsShipping(ctx) {
		o.WechatShipping = &WechatShipping{}
	}
	// The order's work runs on a context that Temporal's cancellation does not
	// interrupt: a refund or a close that has begun must finish. A cancel
	// request (e.g. from the Web UI) is taken as the user's cancel instead.
	ctx = o.detachFromCancellation(ctx)
	if err := o.registerHandlers(ctx); err != nil {
		return OrderView{}, err
	}
	o.listen(ctx)

	var err error
	if in.Continued != nil {
		err = o.resume(ctx)
	} else {
		err = o.live(ctx)
	}
	if isContinueAsNew(err) {
		// The state, with every signal taken, goes on in the next run.
		return OrderView{}, err
	}
	return o.end(ctx, err)
}

// live takes a new order from its placing to its end. Each step ends in a
// status, and the status says what comes next.
func (o *order) live(ctx workflow.Context) error {
	if err := o.place(ctx); err != nil || o.Status == status.Refused {
		return err
	}
	if err := o.awaitPayment(ctx); err != nil {
		return err
	}
	if o.Status == status.Paid {
		return o.fulfil(ctx)
	}
	return nil
}

// resume goes on from where an earlier run of the order continued as new:
// a long wait after payment (for the shop, the user, or a refund's result).
func (o *order) resume(ctx workflow.Context) error {
	o.logger.Info("order continued from an earlier run", "status", o.Status, "runs_before", o.Runs)
	o.showDetails(ctx)
	switch {
	case o.Status == status.Refunding && o.WechatRefunds.Awaiting != nil:
		return o.finishRefund(ctx)
	case o.Status == status.Paid || o.Status == status.Shipped || o.hasWorkLeft():
		if o.Status == status.Shipped && !o.reportsToWechat() {
			// The old path's timer died with the last run; the
			// shipping-management path waits for deadlines in its state.
			o.armAutoConfirm(ctx)
		}
		// (A completed order's part refunds still under way go on too.)
		return o.awaitFulfilment(ctx)
	}
	return fmt.Errorf("order %s continued as %s: no way forward", o.Input.OrderNo, o.Status)
}

// order is one run of an order's workflow: the order's durable state, and
// what only this run holds. The main loop changes the order's status;
// update handlers record requests for it (cancel, refund, ship, confirm) and
// answer once it acted. pay and sync run their own activities — a person
// waits on them — and hand anything that changes the status to the loop.
type order struct {
	OrderState

	logger  log.Logger
	localDB bool // this run's answer to ChangeLocalDB: localDBActivities run locally
	// paying: a pay update is under way (checking stock, making the
	// prepay); closing waits for it. Runtime only, like every update
	// handler's progress: a run hands its state on once its handlers finish.
	paying bool
	// autoConfirm fires at AutoConfirmAt (a shipped order completes).
	autoConfirm workflow.Future
	budget      historyBudget
}

func newOrder(ctx workflow.Context, in OrderInput) *order {
	o := &order{
		logger: log.With(workflow.GetLogger(ctx),
			"order_no", in.OrderNo, "workflow_id", workflow.GetInfo(ctx).WorkflowExecution.ID),
		budget: historyBudget{workflowType: OrderWorkflowName},
	}
	if in.Continued != nil {
		o.OrderState = *in.Continued
		o.Runs++
		// Maps a JSON null left nil.
		if o.Seen == nil {
			o.Seen = map[string]bool{}
		}
		if o.WechatRefunds.Results == nil {
			o.WechatRefunds.Results = map[string]RefundNotice{}
		}
		return o
	}
	if in.AutoConfirm <= 0 {
		in.AutoConfirm = DefaultAutoConfirm
	}
	o.OrderState = OrderState{
		Input:         in,
		Status:        status.Pending,
		Deadline:      workflow.Now(ctx).Add(in.PayTimeout),
		Seen:          map[string]bool{},
		WechatRefunds: WechatRefunds{Results: map[string]RefundNotice{}},
	}
	return o
}

// drainSignals takes the payments, refund results and WeChat's shipping
// events reported and not yet taken (continuer).
func (o *order) drainSignals(ctx workflow.Context) {
	drainChannel(ctx, SignalPayment, o.notePayment)
	drainRefunds(ctx, o.logger, &o.WechatRefunds)
	drainChannel(ctx, SignalWechatEvent, o.noteWechatEvent)
}

// continuation ends this run and starts the next with the order's state
// (continuer): the same input, carrying the state.
func (o *order) continuation(ctx workflow.Context) error {
	st := o.OrderState
	st.Input.Continued = nil
	st.Inbox = o.newPayments()
	next := o.Input
	next.Continued = &st
	return workflow.NewContinueAsNewError(ctx, OrderWorkflowName, next)
}

func (o *order) historyBudget() *historyBudget { return &o.budget }

// newPayments are the payments of the inbox the order has yet to handle:
// each transaction not seen yet, once. The rest — WeChat's repeats of a
// payment handled already, a notice of no payment — changes nothing when
// taken, and a notify storm while a refund waits for months would
// otherwise be handed on run after run until the continue-as-new's input
// passes Temporal's payload limit (2 MB), which terminates the run.
func (o *order) newPayments() []PaymentNotice {
	var out []PaymentNotice
	queued := map[string]bool{}
	for _, p := range o.Inbox {
		if p.Paid() && !o.Seen[p.TransactionID] && !queued[p.TransactionID] {
			queued[p.TransactionID] = true
			out = append(out, p)
		}
	}
	return out
}

// detachFromCancellation returns a context Temporal's cancellation does not
// reach, and turns a cancel request into the user's cancel: an unpaid order
// closes as if the user had cancelled it; a paid one ends only by refund or
// completion, so the request changes nothing for it.
func (o *order) detachFromCancellation(root workflow.Context) workflow.Context {
	ctx, _ := workflow.NewDisconnectedContext(root)
	workflow.Go(ctx, func(ctx workflow.Context) {
		root.Done().Receive(ctx, nil)
		if o.Status == status.Pending {
			o.logger.Info("workflow cancel requested: closing the unpaid order")
			o.CancelRequested = true
		}
	})
	return ctx
}

// place stores the order priced from the database, or refuses it
// (REFUSED). A refused order leaves no row behind and its workflow ends at
// once.
func (o *order) place(ctx workflow.Context) error {
	defer func() { o.Placed = true }()
	o.setWaiting(ctx, "Placing the order: pricing the items and checking stock")

	err := o.runDB(ctx, dbActivity("Price the items, check stock and store order "+o.Input.OrderNo), ActivityCreateOrder, CreateOrderInput{
		OrderNo:     o.Input.OrderNo,
		UserID:      o.Input.UserID,
		Items:       o.Input.Items,
		Address:     o.Input.Address,
		PayDeadline: o.Deadline,
		// Set by the API for orders since ChangeWechatShipping only.
		ShippingAddress: o.Input.ShippingAddress,
	}, &o.Created)
	if err != nil {
		if t := errorType(err); refusesPlacement(t) {
			o.Refusal = &Refusal{Type: t, Message: errorMessage(err)}
			o.logger.Info("order refused", "reason", t, "message", o.Refusal.Message)
			o.setStatus(ctx, status.Refused, o.Refusal.Message)
			return nil
		}
		return fmt.Errorf("place order %s: %w", o.Input.OrderNo, err)
	}
	// The row's deadline is the one stored (a retried activity returns the first row).
	o.Deadline = o.Created.PayDeadline
	o.logger.Info("order placed", "total_fen", o.Created.TotalFen, "pay_deadline", o.Deadline)
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
	if o.Status == status.Refused {
		// A refusal is an answer, not a failure of the workflow.
		return o.view(), nil
	}
	if err == nil {
		o.setWaiting(ctx, fmt.Sprintf("Ended: **%s**", o.Status))
	}
	return o.view(), err
}

func (o *order) view() OrderView {
	v := OrderView{
		OrderNo:       o.Input.OrderNo,
		UserID:        o.Input.UserID,
		Status:        o.Status,
		TotalFen:      o.Created.TotalFen,
		Items:         o.Created.Items,
		PayDeadline:   o.Deadline,
		CreatedAt:     o.Created.CreatedAt,
		TransactionID: o.TransactionID,
		Refunds:       append([]RefundView(nil), o.Refunds...),
		RefundedFen:   o.refundedFen(),
		RefundedItems: o.refundedItems(),
		Flags:         append([]string(nil), o.Flags...),
		Transitions:   append([]Transition(nil), o.Transitions...),
		Waiting:       o.Waiting,
		Wechat:        o.wechatView(),
		AfterSales:    o.afterSaleViews(),
	}
	if o.Parts != nil {
		for _, p := range o.Parts.Parts {
			v.Refunds = append(v.Refunds, p.view())
		}
	}
	if o.Refusal != nil {
		v.RefusalType, v.RefusalMessage = o.Refusal.Type, o.Refusal.Message
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
