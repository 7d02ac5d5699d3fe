package workflows

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// fakeShop stands in for the activities: the workflow unit tests are about
// the order of decisions, not about the database (activities have their own
// tests against PostgreSQL).
type fakeShop struct {
	stock   map[int64]int64
	price   map[int64]int64
	created int
	closed  []string
}

func (f *fakeShop) createOrder(_ context.Context, in CreateOrderInput) (CreatedOrder, error) {
	var total int64
	var items []PricedItem
	for _, it := range in.Items {
		price, ok := f.price[it.ProductID]
		if !ok {
			return CreatedOrder{}, temporal.NewNonRetryableApplicationError("product does not exist", ErrTypeUnknownProduct, nil)
		}
		if f.stock[it.ProductID] < it.Quantity {
			return CreatedOrder{}, temporal.NewNonRetryableApplicationError("only 1 left", ErrTypeOutOfStock, nil)
		}
		total += price * it.Quantity
		items = append(items, PricedItem{ProductID: it.ProductID, UnitPriceFen: price, Quantity: it.Quantity})
	}
	f.created++
	return CreatedOrder{OrderNo: in.OrderNo, TotalFen: total, Items: items, PayDeadline: in.PayDeadline}, nil
}

func (f *fakeShop) closeOrder(_ context.Context, in CloseOrderInput) (CloseOrderResult, error) {
	f.closed = append(f.closed, in.OrderNo)
	return CloseOrderResult{Status: StatusClosed}, nil
}

func newEnv(t *testing.T, shop *fakeShop) *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(OrderWorkflow, workflow.RegisterOptions{Name: OrderWorkflowName})
	env.RegisterActivityWithOptions(shop.createOrder, activity.RegisterOptions{Name: ActivityCreateOrder})
	env.RegisterActivityWithOptions(shop.closeOrder, activity.RegisterOptions{Name: ActivityCloseOrder})
	return env
}

// createUpdate sends the create update the way the API does with
// update-with-start, and records its answer.
type createUpdate struct {
	view OrderView
	err  error
	done bool
}

func sendCreate(env *testsuite.TestWorkflowEnvironment, u *createUpdate) {
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateCreate, "create-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { u.err, u.done = err, true },
			OnAccept: func() {},
			OnComplete: func(v any, err error) {
				if err == nil {
					u.view = v.(OrderView)
				}
				u.err, u.done = err, true
			},
		})
	}, 0)
}

func TestUnpaidOrderIsClosedWhenItsDeadlinePasses(t *testing.T) {
	shop := &fakeShop{stock: map[int64]int64{1: 5}, price: map[int64]int64{1: 8800}}
	env := newEnv(t, shop)
	var created createUpdate
	sendCreate(env, &created)

	start := env.Now()
	var stateBeforeDeadline OrderView
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryState)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		_ = v.Get(&stateBeforeDeadline)
	}, 14*time.Minute)

	env.ExecuteWorkflow(OrderWorkflowName, OrderInput{OrderNo: "N1", UserID: 7, Items: []Item{{ProductID: 1, Quantity: 2}}, PayTimeout: 15 * time.Minute})

	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow did not complete cleanly: %v", env.GetWorkflowError())
	}
	if !created.done || created.err != nil || created.view.Status != StatusPending || created.view.TotalFen != 17600 {
		t.Fatalf("create update answered %+v, %v", created.view, created.err)
	}
	if stateBeforeDeadline.Status != StatusPending {
		t.Fatalf("state at 14m = %s, want PENDING", stateBeforeDeadline.Status)
	}
	var final OrderView
	if err := env.GetWorkflowResult(&final); err != nil {
		t.Fatal(err)
	}
	if final.Status != StatusClosed || len(shop.closed) != 1 || shop.closed[0] != "N1" {
		t.Fatalf("final %s, closed %v", final.Status, shop.closed)
	}
	if waited := env.Now().Sub(start); waited < 15*time.Minute {
		t.Fatalf("closed after %v, before the 15m deadline", waited)
	}
	if !created.view.PayDeadline.Equal(start.Add(15 * time.Minute)) {
		t.Fatalf("deadline %v, want start+15m %v", created.view.PayDeadline, start.Add(15*time.Minute))
	}
}

func TestRefusedOrderAnswersTheCreateUpdateAndEnds(t *testing.T) {
	tests := []struct {
		name     string
		items    []Item
		wantType string
	}{
		{"out of stock", []Item{{ProductID: 1, Quantity: 2}}, ErrTypeOutOfStock},
		{"unknown product", []Item{{ProductID: 99, Quantity: 1}}, ErrTypeUnknownProduct},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shop := &fakeShop{stock: map[int64]int64{1: 1}, price: map[int64]int64{1: 3900}}
			env := newEnv(t, shop)
			var created createUpdate
			sendCreate(env, &created)
			env.ExecuteWorkflow(OrderWorkflowName, OrderInput{OrderNo: "N2", UserID: 7, Items: tt.items, PayTimeout: 15 * time.Minute})

			if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
				t.Fatalf("workflow: completed=%v err=%v", env.IsWorkflowCompleted(), env.GetWorkflowError())
			}
			var appErr *temporal.ApplicationError
			if !created.done || !errorsAs(created.err, &appErr) || appErr.Type() != tt.wantType {
				t.Fatalf("create update error = %v, want type %s", created.err, tt.wantType)
			}
			var final OrderView
			_ = env.GetWorkflowResult(&final)
			if final.Status != StatusRefused || final.RefusalType != tt.wantType {
				t.Fatalf("final = %+v", final)
			}
			if shop.created != 0 || len(shop.closed) != 0 {
				t.Fatalf("refused order touched the shop: created=%d closed=%v", shop.created, shop.closed)
			}
		})
	}
}

func TestDatabaseOutageIsRetriedUntilTheOrderIsStored(t *testing.T) {
	shop := &fakeShop{stock: map[int64]int64{1: 5}, price: map[int64]int64{1: 100}}
	env := newEnv(t, shop)
	failures := 0
	env.OnActivity(ActivityCreateOrder, mockAny, mockAny).Return(
		func(ctx context.Context, in CreateOrderInput) (CreatedOrder, error) {
			if failures < 3 {
				failures++
				return CreatedOrder{}, temporal.NewApplicationError("connection refused", "DB_DOWN")
			}
			return shop.createOrder(ctx, in)
		})
	var created createUpdate
	sendCreate(env, &created)
	env.ExecuteWorkflow(OrderWorkflowName, OrderInput{OrderNo: "N3", UserID: 7, Items: []Item{{ProductID: 1, Quantity: 1}}, PayTimeout: time.Minute})
	if created.err != nil || created.view.Status != StatusPending || failures != 3 {
		t.Fatalf("create = %+v, %v after %d failures", created.view, created.err, failures)
	}
	var final OrderView
	_ = env.GetWorkflowResult(&final)
	if final.Status != StatusClosed {
		t.Fatalf("final %s", final.Status)
	}
}
