// Package activities holds the order's side effects: the database writes and
// the WeChat Pay calls. Every activity is idempotent — Temporal retries it
// after timeouts and crashes, so running one twice must leave the database and
// WeChat exactly as running it once.
//
// Errors follow one rule. A failure no retry can fix (a business refusal, a
// permanent WeChat answer) is a non-retryable ApplicationError whose Type is
// one of the workflows.ErrType* constants. Anything else (the database
// restarting, WeChat answering 5xx or not at all) is returned as a plain error,
// so Temporal retries it with backoff.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/wxapp"
	"ordersaga/internal/wxpay"
	"ordersaga/workflows"
)

// Activities are registered on the worker; their dependencies are passed in.
type Activities struct {
	Store *store.Store
	// Pay is the WeChat Pay client (prepay, query, close, refund).
	Pay *wxpay.Client
	// Wxapp is the mini-program server API client (shipping management);
	// Shipping says whether WeChat manages the shop's shipping (nil: it
	// does not, and Wxapp is not used).
	Wxapp    *wxapp.Client
	Shipping *wxapp.Managed
	Logger   *slog.Logger
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
	return a.logWith(ctx, "order_no", orderNo)
}

// logWith is the activity's logger: attrs, then its workflow, name and attempt.
func (a *Activities) logWith(ctx context.Context, attrs ...any) *slog.Logger {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	info := activity.GetInfo(ctx)
	return l.With(append(attrs, "workflow_id", info.WorkflowExecution.ID,
		"activity", info.ActivityType.Name, "attempt", info.Attempt)...)
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
	row := store.Order{
		OrderNo:     in.OrderNo,
		UserID:      in.UserID,
		Status:      status.Pending,
		TotalFen:    total,
		Address:     in.Address,
		PayDeadline: in.PayDeadline.UTC(),
		Items:       items,
	}
	if a := in.ShippingAddress; a != nil {
		row.ShipTo = store.ShipTo{Name: a.ReceiverName, Phone: a.Phone, Province: a.Province, City: a.City,
			District: a.District, Detail: a.Detail, PostalCode: a.PostalCode}
	}
	stored, err := a.Store.CreateOrder(ctx, row)
	if err != nil {
		return workflows.CreatedOrder{}, businessError(fmt.Errorf("store order %s: %w", in.OrderNo, err))
	}
	a.log(ctx, in.OrderNo).Info("order stored", "status", stored.Status, "total_fen", stored.TotalFen)
	return createdOrder(stored), nil
}

// CloseOrder moves a PENDING order to CLOSED; with in.Flag set it also marks
// the order for a person, in the same write. Closing a closed order is a no-op
// (the flag is still added when missing); closing an order in any other status
// is a conflict the workflow must not retry.
func (a *Activities) CloseOrder(ctx context.Context, in workflows.CloseOrderInput) (workflows.OrderStatusResult, error) {
	now := a.now()
	changed, o, err := a.Store.TransitionOrder(ctx, in.OrderNo,
		[]status.Order{status.Pending}, status.Closed,
		store.OrderUpdate{ClosedAt: &now, AddFlag: in.Flag})
	if err != nil {
		return workflows.OrderStatusResult{}, businessError(err)
	}
	if !changed && in.Flag != "" {
		// Closed by an earlier call, perhaps one without this flag.
		if err := a.Store.FlagOrder(ctx, in.OrderNo, in.Flag); err != nil {
			return workflows.OrderStatusResult{}, businessError(err)
		}
	}
	if changed {
		a.log(ctx, in.OrderNo).Info("order closed", "reason", in.Reason)
	}
	if in.Flag != "" {
		a.log(ctx, in.OrderNo).Error("order flagged for a person", "flag", in.Flag, "reason", in.Reason)
	}
	return workflows.OrderStatusResult{Status: status.Order(o.Status)}, nil
}

// businessError marks the failures no retry can fix as non-retryable, with the
// stable type the workflow and the API branch on. Anything else stays
// retryable (the database may be restarting).
//
// A missing row is non-retryable too: the order's workflow stored the order
// before anything else, so an order (or refund, or user) that is not there
// will not appear by retrying.
func businessError(err error) error {
	var oos *store.OutOfStockError
	switch {
	case errors.As(err, &oos):
		return temporal.NewNonRetryableApplicationError(outOfStockMessage(oos), workflows.ErrTypeOutOfStock, err)
	case errors.Is(err, store.ErrOutOfStock):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeOutOfStock, err)
	case errors.Is(err, store.ErrUnknownProduct):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeUnknownProduct, err)
	case errors.Is(err, store.ErrInvalidArgument), errors.Is(err, store.ErrNotFound):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeInvalidOrder, err)
	case errors.Is(err, store.ErrStatusConflict):
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypeStatusConflict, err)
	}
	return err
}

// outOfStockMessage is the refusal a shopper reads:
// "Yunnan coffee beans 500g: only 1 left, 2 ordered".
func outOfStockMessage(e *store.OutOfStockError) string {
	name := e.Name
	if name == "" {
		name = fmt.Sprintf("product %d", e.ProductID)
	}
	if e.Available <= 0 {
		return fmt.Sprintf("%s: sold out, %d ordered", name, e.Requested)
	}
	return fmt.Sprintf("%s: only %d left, %d ordered", name, e.Available, e.Requested)
}

// nonRetryable is a business refusal of the activity itself (not of the store).
func nonRetryable(errType, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), errType, nil)
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
