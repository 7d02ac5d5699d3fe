package workflows

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// OrderWorkflow is one order's whole life, from the moment it is placed until
// it ends (CLOSED in this version; the paid path comes with the saga):
//
//	place it (price from the database, check stock, store the row) — or refuse it
//	wait for the payment deadline
//	close it unpaid
func OrderWorkflow(ctx workflow.Context, in OrderInput) (OrderView, error) {
	o := &order{
		in:       in,
		status:   StatusPending,
		deadline: workflow.Now(ctx).Add(in.PayTimeout),
		logger:   log.With(workflow.GetLogger(ctx), "order_no", in.OrderNo, "workflow_id", workflow.GetInfo(ctx).WorkflowExecution.ID),
	}
	if err := o.registerHandlers(ctx); err != nil {
		return OrderView{}, err
	}

	if err := o.place(ctx); err != nil {
		return o.end(ctx, err)
	}
	o.awaitPayment(ctx)
	if err := o.closeUnpaid(ctx); err != nil {
		return o.end(ctx, err)
	}
	return o.end(ctx, nil)
}

type order struct {
	in       OrderInput
	status   Status
	deadline time.Time
	created  CreatedOrder
	placed   bool  // the create activity has finished, one way or the other
	refusal  error // why the order was refused, when it was
	logger   log.Logger
}

func (o *order) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (OrderView, error) {
		return o.view(), nil
	}); err != nil {
		return fmt.Errorf("register %s query: %w", QueryState, err)
	}
	// The API sends this update with the start: it blocks until the order is
	// stored or refused, so the caller learns which in one round trip.
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateCreate,
		func(ctx workflow.Context) (OrderView, error) {
			if err := workflow.Await(ctx, func() bool { return o.placed }); err != nil {
				return OrderView{}, err
			}
			if o.refusal != nil {
				return OrderView{}, o.refusal
			}
			return o.view(), nil
		},
		workflow.UpdateHandlerOptions{Description: "returns the created order, or why it was refused"},
	); err != nil {
		return fmt.Errorf("register %s update: %w", UpdateCreate, err)
	}
	return nil
}

// place stores the order priced from the database, or refuses it. A refused
// order leaves no row behind and its workflow ends at once.
func (o *order) place(ctx workflow.Context) error {
	defer func() { o.placed = true }()
	workflow.SetCurrentDetails(ctx, "Placing the order: pricing items and checking stock")

	actx := workflow.WithActivityOptions(ctx, dbActivity("Price the items, check stock and store order "+o.in.OrderNo))
	err := workflow.ExecuteActivity(actx, ActivityCreateOrder, CreateOrderInput{
		OrderNo:     o.in.OrderNo,
		UserID:      o.in.UserID,
		Items:       o.in.Items,
		Address:     o.in.Address,
		PayDeadline: o.deadline,
	}).Get(ctx, &o.created)
	if err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && isRefusal(appErr.Type()) {
			o.status = StatusRefused
			o.refusal = temporal.NewNonRetryableApplicationError(appErr.Message(), appErr.Type(), nil)
			o.logger.Info("order refused", "reason", appErr.Type(), "message", appErr.Message())
			o.publish(ctx)
			return o.refusal
		}
		return err
	}
	// The row's deadline is the one stored (a retried activity returns the first row).
	o.deadline = o.created.PayDeadline
	o.logger.Info("order placed", "total_fen", o.created.TotalFen, "pay_deadline", o.deadline)
	o.publish(ctx)
	return nil
}

// awaitPayment waits for the payment deadline: a durable timer, so a restart
// of every process in between does not move it.
func (o *order) awaitPayment(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("Waiting for payment until %s", o.deadline.UTC().Format(time.RFC3339)))
	wait := o.deadline.Sub(workflow.Now(ctx))
	if wait <= 0 {
		return
	}
	timer := workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{Summary: "payment deadline"})
	workflow.NewSelector(ctx).
		AddFuture(timer, func(workflow.Future) {
			o.logger.Info("payment deadline passed")
		}).
		Select(ctx)
}

// closeUnpaid closes an order nobody paid for.
func (o *order) closeUnpaid(ctx workflow.Context) error {
	workflow.SetCurrentDetails(ctx, "Closing the unpaid order")
	actx := workflow.WithActivityOptions(ctx, dbActivity("Close unpaid order "+o.in.OrderNo))
	var res CloseOrderResult
	if err := workflow.ExecuteActivity(actx, ActivityCloseOrder, CloseOrderInput{
		OrderNo: o.in.OrderNo, Reason: "payment deadline passed",
	}).Get(ctx, &res); err != nil {
		return fmt.Errorf("close order %s: %w", o.in.OrderNo, err)
	}
	o.status = res.Status
	o.logger.Info("order closed", "status", o.status)
	o.publish(ctx)
	return nil
}

// end waits for running update handlers (the create update may still be
// delivering its answer) and returns the final view.
func (o *order) end(ctx workflow.Context, err error) (OrderView, error) {
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	if o.status == StatusRefused {
		// A refusal is an answer, not a failure of the workflow.
		return o.view(), nil
	}
	return o.view(), err
}

// publish makes the current state visible: search attributes for filtering
// in the Web UI, and the details line of the workflow's page.
func (o *order) publish(ctx workflow.Context) {
	updates := []temporal.SearchAttributeUpdate{
		AttrOrderNo.ValueSet(o.in.OrderNo),
		AttrOrderStatus.ValueSet(string(o.status)),
		AttrOrderUserID.ValueSet(strconv.FormatInt(o.in.UserID, 10)),
	}
	if o.status != StatusRefused {
		updates = append(updates, AttrOrderAmountFen.ValueSet(o.created.TotalFen))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		o.logger.Warn("upsert search attributes", "error", err)
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** · %s", o.status, yuan(o.created.TotalFen)))
}

func (o *order) view() OrderView {
	v := OrderView{
		OrderNo:     o.in.OrderNo,
		UserID:      o.in.UserID,
		Status:      o.status,
		TotalFen:    o.created.TotalFen,
		Items:       o.created.Items,
		PayDeadline: o.deadline,
		CreatedAt:   o.created.CreatedAt,
	}
	var appErr *temporal.ApplicationError
	if errors.As(o.refusal, &appErr) {
		v.RefusalType, v.RefusalMessage = appErr.Type(), appErr.Message()
	}
	return v
}

// dbActivity is the options of an activity that writes the database: short
// attempts, retried with backoff for as long as it takes (the database may be
// restarting), except for the business errors that no retry can fix.
func dbActivity(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{ErrTypeOutOfStock, ErrTypeUnknownProduct, ErrTypeInvalidOrder, ErrTypeStatusConflict},
		},
	}
}

func isRefusal(errType string) bool {
	switch errType {
	case ErrTypeOutOfStock, ErrTypeUnknownProduct, ErrTypeInvalidOrder:
		return true
	}
	return false
}

func yuan(fen int64) string {
	return fmt.Sprintf("¥%d.%02d", fen/100, fen%100)
}
