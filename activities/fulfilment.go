package activities

import (
	"context"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// SetOrderStatus makes one conditional transition of the order row, From →
// To: PAID → SHIPPED (shipped_at, and tracking_no when given), SHIPPED →
// COMPLETED (completed_at), PAID|SHIPPED → REFUNDING. An order already in To
// is a retry: nothing is written and its status is returned. Any other status
// is a non-retryable ErrTypeStatusConflict.
func (a *Activities) SetOrderStatus(ctx context.Context, in workflows.SetOrderStatusInput) (workflows.OrderStatusResult, error) {
	from := make([]status.Order, len(in.From))
	for i, f := range in.From {
		from[i] = status.Order(f)
	}
	now := a.now()
	var set store.OrderUpdate
	switch status.Order(in.To) {
	case status.Shipped:
		set.ShippedAt = &now
		if in.TrackingNo != "" {
			set.TrackingNo = &in.TrackingNo
		}
		if sh := in.Shipment; sh != nil {
			set.Shipment = &store.Shipment{LogisticsType: sh.LogisticsType, ItemDesc: sh.ItemDesc}
			for _, p := range sh.Packages {
				set.Shipment.Packages = append(set.Shipment.Packages, store.ShipmentPackage{ExpressCompany: p.ExpressCompany, TrackingNo: p.TrackingNo})
			}
		}
	case status.Completed:
		set.CompletedAt = &now
	case status.Closed:
		set.ClosedAt = &now
	}
	changed, o, err := a.Store.TransitionOrder(ctx, in.OrderNo, from, status.Order(in.To), set)
	if err != nil {
		return workflows.OrderStatusResult{}, businessError(err)
	}
	if changed {
		a.log(ctx, in.OrderNo).Info("order status changed", "to", in.To, "reason", in.Reason, "tracking_no", in.TrackingNo)
	}
	return workflows.OrderStatusResult{Status: status.Order(o.Status)}, nil
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
