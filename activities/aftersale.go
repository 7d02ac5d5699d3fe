package activities

import (
	"context"

	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// SaveAfterSale writes an after-sale's row as the order's workflow has it
// now (an upsert by its ID): a retry, or the same step again, changes
// nothing, and an older step never overwrites a newer one.
func (a *Activities) SaveAfterSale(ctx context.Context, in workflows.AfterSale) error {
	row := store.AfterSale{
		ID: in.ID, OrderNo: in.OrderNo, UserID: in.UserID, Type: string(in.Type), Status: string(in.Status),
		Reason: in.Reason, Photos: in.Photos, Note: in.Note,
		ReturnExpressCompany: in.ExpressCompany, ReturnTrackingNo: in.TrackingNo,
		OutRefundNo: in.OutRefundNo, RefundFen: in.RefundFen, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt,
	}
	for _, it := range in.Items {
		row.Items = append(row.Items, store.RefundItem{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
	}
	if !in.Deadline.IsZero() {
		d := in.Deadline
		row.Deadline = &d
	}
	if err := a.Store.SaveAfterSale(ctx, row); err != nil {
		return businessError(err)
	}
	a.log(ctx, in.OrderNo).Info("after-sale saved", "after_sale_id", in.ID, "status", in.Status)
	return nil
}
