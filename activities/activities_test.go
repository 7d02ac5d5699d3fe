package activities_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"ordersaga/activities"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
	"ordersaga/workflows"
)

func newActivityEnv(st *store.Store) (*testsuite.TestActivityEnvironment, *activities.Activities) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	acts := &activities.Activities{Store: st, Now: func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }}
	env.RegisterActivityWithOptions(acts.CreateOrder, activityName(workflows.ActivityCreateOrder))
	env.RegisterActivityWithOptions(acts.CloseOrder, activityName(workflows.ActivityCloseOrder))
	return env, acts
}

func TestStatusNamesMatchTheDatabase(t *testing.T) {
	pairs := map[workflows.Status]store.OrderStatus{
		workflows.StatusPending: store.StatusPending, workflows.StatusPaid: store.StatusPaid,
		workflows.StatusShipped: store.StatusShipped, workflows.StatusCompleted: store.StatusCompleted,
		workflows.StatusClosed: store.StatusClosed, workflows.StatusRefunding: store.StatusRefunding,
		workflows.StatusRefunded: store.StatusRefunded, workflows.StatusRefundFailed: store.StatusRefundFailed,
	}
	for w, s := range pairs {
		if string(w) != string(s) {
			t.Errorf("workflow status %q != store status %q", w, s)
		}
	}
}

func TestCreateOrderTwiceStoresOneOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		p, err := st.CreateProduct(ctx, store.Product{Name: "Coffee", PriceFen: 8800, Stock: 10})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := st.UpsertUserByOpenID(ctx, "o-1")
		env, _ := newActivityEnv(st)
		in := workflows.CreateOrderInput{
			OrderNo: "A1000001", UserID: u.ID, Items: []workflows.Item{{ProductID: p.ID, Quantity: 3}},
			PayDeadline: time.Date(2026, 11, 23, 12, 15, 0, 0, time.UTC),
		}
		var first, second workflows.CreatedOrder
		for i, out := range []*workflows.CreatedOrder{&first, &second} {
			v, err := env.ExecuteActivity(workflows.ActivityCreateOrder, in)
			if err != nil {
				t.Fatalf("attempt %d: %v", i+1, err)
			}
			if err := v.Get(out); err != nil {
				t.Fatal(err)
			}
		}
		if first.TotalFen != 26400 || second.TotalFen != first.TotalFen || !second.PayDeadline.Equal(in.PayDeadline) {
			t.Fatalf("first %+v second %+v", first, second)
		}
		orders, _, err := st.ListOrdersByUser(ctx, u.ID, 10, nil)
		if err != nil || len(orders) != 1 || orders[0].Status != store.StatusPending {
			t.Fatalf("orders after two attempts: %+v %v", orders, err)
		}
		// Creation checks stock but does not deduct it: that happens on payment.
		ps, _ := st.GetProducts(ctx, []int64{p.ID})
		if ps[p.ID].Stock != 10 {
			t.Fatalf("stock %d, want 10", ps[p.ID].Stock)
		}
	})
}

func TestCreateOrderRefusalsAreNonRetryableWithStableTypes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		p, _ := st.CreateProduct(ctx, store.Product{Name: "Mug", PriceFen: 3900, Stock: 1})
		u, _ := st.UpsertUserByOpenID(ctx, "o-2")
		tests := []struct {
			name     string
			items    []workflows.Item
			wantType string
		}{
			{"out of stock", []workflows.Item{{ProductID: p.ID, Quantity: 2}}, workflows.ErrTypeOutOfStock},
			{"unknown product", []workflows.Item{{ProductID: p.ID + 1000, Quantity: 1}}, workflows.ErrTypeUnknownProduct},
			{"zero quantity", []workflows.Item{{ProductID: p.ID, Quantity: 0}}, workflows.ErrTypeInvalidOrder},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				env, _ := newActivityEnv(st)
				_, err := env.ExecuteActivity(workflows.ActivityCreateOrder, workflows.CreateOrderInput{
					OrderNo: "R" + string(rune('0'+i)) + "000000", UserID: u.ID, Items: tt.items, PayDeadline: time.Now(),
				})
				var appErr *temporal.ApplicationError
				if !errors.As(err, &appErr) || appErr.Type() != tt.wantType || !appErr.NonRetryable() {
					t.Fatalf("err = %v; want non-retryable %s", err, tt.wantType)
				}
			})
		}
		if orders, _, _ := st.ListOrdersByUser(ctx, u.ID, 10, nil); len(orders) != 0 {
			t.Fatalf("refusals stored %d orders", len(orders))
		}
	})
}

func TestCloseOrderTwiceClosesOnceAndRefusesAPaidOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		p, _ := st.CreateProduct(ctx, store.Product{Name: "Tea", PriceFen: 100, Stock: 5})
		u, _ := st.UpsertUserByOpenID(ctx, "o-3")
		env, _ := newActivityEnv(st)
		for _, no := range []string{"C1000001", "C1000002"} {
			if _, err := env.ExecuteActivity(workflows.ActivityCreateOrder, workflows.CreateOrderInput{
				OrderNo: no, UserID: u.ID, Items: []workflows.Item{{ProductID: p.ID, Quantity: 1}}, PayDeadline: time.Now().Add(time.Minute),
			}); err != nil {
				t.Fatal(err)
			}
		}
		for attempt := 1; attempt <= 2; attempt++ {
			v, err := env.ExecuteActivity(workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: "C1000001", Reason: "test"})
			if err != nil {
				t.Fatalf("close attempt %d: %v", attempt, err)
			}
			var res workflows.CloseOrderResult
			_ = v.Get(&res)
			if res.Status != workflows.StatusClosed {
				t.Fatalf("attempt %d: status %s", attempt, res.Status)
			}
		}
		o, _ := st.GetOrder(ctx, "C1000001")
		if o.Status != store.StatusClosed || o.ClosedAt == nil {
			t.Fatalf("row %+v", o)
		}

		// A paid order is never closed by the deadline path.
		paidAt := time.Now()
		if _, _, err := st.TransitionOrder(ctx, "C1000002", []store.OrderStatus{store.StatusPending}, store.StatusPaid, store.OrderUpdate{PaidAt: &paidAt}); err != nil {
			t.Fatal(err)
		}
		_, err := env.ExecuteActivity(workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: "C1000002"})
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrTypeStatusConflict {
			t.Fatalf("closing a paid order: %v", err)
		}
		if o, _ := st.GetOrder(ctx, "C1000002"); o.Status != store.StatusPaid {
			t.Fatalf("paid order became %s", o.Status)
		}
	})
}
