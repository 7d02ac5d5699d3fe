package activities

import (
	"context"

	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// SetOrderStatus makes one conditional transition of the order row, From →
// To: PAID → SHIPPED (shipped_at, and tracking_no when given), SHIPPED →
// COMPLETED (completed_at), PAID|SHIPPED → REFUNDING. An order already in To
// is a retry: nothing is written and its status is returned. Any other status
// is a non-retryable ErrTypeStatusConflict.
func (a *Activities) SetOrderStatus(ctx context.Context, in workflows.SetOrderStatusInput) (workflows.OrderStatusResult, error) {
	from := make([]store.OrderStatus, len(in.From))
	for i, f := range in.From {
		from[i] = store.OrderStatus(f)
	}
	now := a.now()
	var set store.OrderUpdate
	switch store.OrderStatus(in.To) {
	case store.StatusShipped:
		set.ShippedAt = &now
		if in.TrackingNo != "" {
			set.TrackingNo = &in.TrackingNo
		}
	case store.StatusCompleted:
		set.CompletedAt = &now
	case store.StatusClosed:
		set.ClosedAt = &now
	}
	changed, o, err := a.Store.TransitionOrder(ctx, in.OrderNo, from, store.OrderStatus(in.To), set)
	if err != nil {
		return workflows.OrderStatusResult{}, businessError(err)
	}
	if changed {
		a.log(ctx, in.OrderNo).Info("order status changed", "to", in.To, "reason", in.Reason, "tracking_no", in.TrackingNo)
	}
	return workflows.OrderStatusResult{Status: workflows.Status(o.Status)}, nil
}

// FlagOrder marks the order for a person (reasons accumulate; the same one
// twice is a no-op) and logs it at ERROR, which operators alert on.
func (a *Activities) FlagOrder(ctx context.Context, in workflows.FlagOrderInput) error {
	if err := a.Store.FlagOrder(ctx, in.OrderNo, in.Flag); err != nil {
		return businessError(err)
	}
	a.log(ctx, in.OrderNo).Error("order flagged for a person", "flag", in.Flag, "reason", in.Reason)
	return nil
}
