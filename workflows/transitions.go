package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// The order's status machine: the workflow alone moves an order's status —
// the row first (an activity), then the workflow's own record of it — and
// each move answers the requests (refund, ship, confirm) it decides.

// transition moves the order row (SetOrderStatus) and then the workflow.
func (o *order) transition(ctx workflow.Context, from []status.Order, to status.Order, why, trackingNo string) error {
	actx := workflow.WithActivityOptions(ctx, dbActivity(fmt.Sprintf("Mark order %s %s: %s", o.in.OrderNo, to, why)))
	var res OrderStatusResult
	if err := workflow.ExecuteActivity(actx, ActivitySetOrderStatus, SetOrderStatusInput{
		OrderNo: o.in.OrderNo, From: from, To: to, TrackingNo: trackingNo, Reason: why,
	}).Get(ctx, &res); err != nil {
		return fmt.Errorf("mark order %s %s: %w", o.in.OrderNo, to, err)
	}
	o.setStatus(ctx, to, why)
	return nil
}

// setStatus records a transition decided by the workflow (after the
// activity that wrote it to the database succeeded) and makes it visible.
func (o *order) setStatus(ctx workflow.Context, to status.Order, why string) {
	if to == o.status && len(o.transitions) > 0 {
		return
	}
	o.transitions = append(o.transitions, Transition{At: workflow.Now(ctx), From: o.status, To: to, Why: why})
	o.logger.Info("order status changed", "from", o.status, "to", to, "why", why)
	// Counted once per transition: the SDK does not emit metrics on replay.
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"from": string(o.status), "to": string(to)}).
		Counter(MetricOrderTransitions).Inc(1)
	o.status = to
	// Requests made while this step was under way are answered now: done if
	// this transition fulfils them, refused if the order can no longer.
	o.decideRequests()
	o.publish(ctx)
}

// decideRequests decides the pending requests the order, as it is now, can
// no longer act on: one that came while another step was already under way
// is refused rather than answered as if it had happened. Requests the
// current status still allows stay for the main loop.
func (o *order) decideRequests() {
	if r := o.refundRequest; r != nil && !r.done {
		switch {
		case o.status == status.Refunding || o.status == status.Refunded:
			r.decide(nil) // the money is on its way back anyway
		case o.refundRefusal(r.arg.By) != nil:
			r.decide(o.refundRefusal(r.arg.By))
		}
	}
	if r := o.shipRequest; r != nil && !r.done && o.status != status.Paid {
		if o.status == status.Shipped {
			r.decide(nil)
		} else {
			r.decide(refuse(ErrTypeNotShippable, "order %s is %s; it was not shipped", o.in.OrderNo, o.status))
		}
	}
	if r := o.confirmRequest; r != nil && !r.done && o.status != status.Shipped {
		if o.status == status.Completed {
			r.decide(nil)
		} else {
			r.decide(refuse(ErrTypeNotConfirmable, "order %s is %s; it was not confirmed", o.in.OrderNo, o.status))
		}
	}
}

// refusePending answers the requests nobody will act on any more: the
// workflow is ending (after an error, in whatever status it is in).
func (o *order) refusePending(cause error) {
	o.decideRequests()
	why := fmt.Sprintf("order %s is %s and no longer takes requests", o.in.OrderNo, o.status)
	if cause != nil {
		why = fmt.Sprintf("order %s could not go on: %v", o.in.OrderNo, cause)
	}
	if r := o.refundRequest; pending(r) {
		r.decide(refuse(ErrTypeNotRefundable, "%s", why))
	}
	if r := o.shipRequest; pending(r) {
		r.decide(refuse(ErrTypeNotShippable, "%s", why))
	}
	if r := o.confirmRequest; pending(r) {
		r.decide(refuse(ErrTypeNotConfirmable, "%s", why))
	}
}
