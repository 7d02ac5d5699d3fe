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
// A shipment, when given, is stored with SHIPPED.
func (o *order) transition(ctx workflow.Context, from []status.Order, to status.Order, why, trackingNo string, shipment *ShipRequest) error {
	actx := workflow.WithActivityOptions(ctx, dbActivity(fmt.Sprintf("Mark order %s %s: %s", o.Input.OrderNo, to, why)))
	var res OrderStatusResult
	if err := workflow.ExecuteActivity(actx, ActivitySetOrderStatus, SetOrderStatusInput{
		OrderNo: o.Input.OrderNo, From: from, To: to, TrackingNo: trackingNo, Reason: why, Shipment: shipment,
	}).Get(ctx, &res); err != nil {
		return fmt.Errorf("mark order %s %s: %w", o.Input.OrderNo, to, err)
	}
	o.setStatus(ctx, to, why)
	return nil
}

// setStatus records a transition decided by the workflow (after the
// activity that wrote it to the database succeeded) and makes it visible.
func (o *order) setStatus(ctx workflow.Context, to status.Order, why string) {
	if to == o.Status && len(o.Transitions) > 0 {
		return
	}
	o.Transitions = append(o.Transitions, Transition{At: workflow.Now(ctx), From: o.Status, To: to, Why: why})
	o.logger.Info("order status changed", "from", o.Status, "to", to, "why", why)
	// Counted once per transition: the SDK does not emit metrics on replay.
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"from": string(o.Status), "to": string(to)}).
		Counter(MetricOrderTransitions).Inc(1)
	o.Status = to
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
	if r := o.RefundRequest; pending(r) {
		switch {
		case o.Status == status.Refunding || o.Status == status.Refunded:
			r.decide(nil) // the money is on its way back anyway
		case o.refundRefusal(r.Arg.By) != nil:
			r.decide(o.refundRefusal(r.Arg.By))
		}
	}
	if r := o.ShipRequest; pending(r) && o.Status != status.Paid {
		if o.Status == status.Shipped {
			r.decide(nil)
		} else {
			r.decide(newRefusal(ErrTypeNotShippable, "order %s is %s; it was not shipped", o.Input.OrderNo, o.Status))
		}
	}
	if r := o.ConfirmRequest; pending(r) && o.Status != status.Shipped {
		if o.Status == status.Completed {
			r.decide(nil)
		} else {
			r.decide(newRefusal(ErrTypeNotConfirmable, "order %s is %s; it was not confirmed", o.Input.OrderNo, o.Status))
		}
	}
}

// refusePending answers the requests nobody will act on any more: the
// workflow is ending (after an error, in whatever status it is in).
func (o *order) refusePending(cause error) {
	o.decideRequests()
	why := fmt.Sprintf("order %s is %s and no longer takes requests", o.Input.OrderNo, o.Status)
	if cause != nil {
		why = fmt.Sprintf("order %s could not go on: %v", o.Input.OrderNo, cause)
	}
	if r := o.RefundRequest; pending(r) {
		r.decide(newRefusal(ErrTypeNotRefundable, "%s", why))
	}
	if r := o.ShipRequest; pending(r) {
		r.decide(newRefusal(ErrTypeNotShippable, "%s", why))
	}
	if r := o.ConfirmRequest; pending(r) {
		r.decide(newRefusal(ErrTypeNotConfirmable, "%s", why))
	}
}
