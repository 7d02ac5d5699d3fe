// Package activities holds the order's side effects: the database writes and
// (with the saga) the WeChat Pay calls. Every activity is idempotent — Temporal
// retries it after timeouts and crashes, so running one twice must leave the
// database and WeChat exactly as running it once.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/store"
	"ordersaga/internal/wxpay"
	"ordersaga/workflows"
)

// Activities are registered on the worker; their dependencies are passed in.
type Activities struct {
	Store *store.Store
	// Pay is the WeChat Pay client (query, close, refund).
	Pay    *wxpay.Client
	Logger *slog.Logger
	// Now is the clock for timestamps written to the database.
	Now func() time.Time
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

func (a *Activities) log(ctx context.Context, orderNo string) *slog.Logger {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	info := activity.GetInfo(ctx)
	return l.With("order_no", orderNo, "workflow_id", info.WorkflowExecution.ID,
		"activity", info.ActivityType.Name, "attempt", info.Attempt)
}

// CreateOrder prices the items from the database, checks stock and stores the
// order with status PENDING. A retry returns the order the first attempt stored.
func (a *Activities) CreateOrder(ctx context.Context, in workflows.CreateOrderInput) (workflows.CreatedOrder, error) {
	if existing, err := a.Store.GetOrder(ctx, in.OrderNo); err == nil {
		return createdOrder(existing), nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return workflows.CreatedOrder{}, fmt.Errorf("look up order %s: %w", in.OrderNo, err)
	}

	wanted := make([]store.ItemQty, 0, len(in.Items))
	for _, it := range in.Items {
		wanted = append(wanted, store.ItemQty{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	items, total, err := a.Store.PriceItems(ctx, wanted)
	if err != nil {
		return workflows.CreatedOrder{}, businessError(err)
	}
	stored, err := a.Store.CreateOrder(ctx, store.Order{
		OrderNo:     in.OrderNo,
		UserID:      in.UserID,
		Status:      store.StatusPending,
		TotalFen:    total,
		Address:     in.Address,
		PayDeadline: in.PayDeadline.UTC(),
		Items:       items,
	})
	if err != nil {
		return workflows.CreatedOrder{}, fmt.Errorf("store order %s: %w", in.OrderNo, err)
	}
	a.log(ctx, in.OrderNo).Info("order stored", "status", stored.Status, "total_fen", stored.TotalFen)
	return createdOrder(stored), nil
}

// CloseOrder moves a PENDING order to CLOSED. Closing a closed order is a
// no-op; closing an order in any other status is a conflict the workflow must
// not retry.
func (a *Activities) CloseOrder(ctx context.Context, in workflows.CloseOrderInput) (workflows.CloseOrderResult, error) {
	now := a.now()
	changed, o, err := a.Store.TransitionOrder(ctx, in.OrderNo,
		[]store.OrderStatus{store.StatusPending}, store.StatusClosed, store.OrderUpdate{ClosedAt: &now})
	if err != nil {
		return workflows.CloseOrderResult{}, businessError(err)
	}
	if changed {
		a.log(ctx, in.OrderNo).Info("order closed", "reason", in.Reason)
	}
	return workflows.CloseOrderResult{Status: workflows.Status(o.Status)}, nil
}

// businessError marks the failures no retry can fix as non-retryable, with the
// stable type the workflow and the API branch on. Anything else stays
// retryable (the database may be restarting).
func businessError(err error) error {
	switch {
	case errors.Is(err, store.ErrOutOfStock):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeOutOfStock, err)
	case errors.Is(err, store.ErrUnknownProduct):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeUnknownProduct, err)
	case errors.Is(err, store.ErrInvalidArgument):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeInvalidOrder, err)
	case errors.Is(err, store.ErrStatusConflict):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeStatusConflict, err)
	}
	return err
}

func createdOrder(o store.Order) workflows.CreatedOrder {
	out := workflows.CreatedOrder{
		OrderNo:     o.OrderNo,
		TotalFen:    o.TotalFen,
		PayDeadline: o.PayDeadline.UTC(),
		CreatedAt:   o.CreatedAt.UTC(),
	}
	for _, it := range o.Items {
		out.Items = append(out.Items, workflows.PricedItem{
			ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity,
		})
	}
	return out
}
