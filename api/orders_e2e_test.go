package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"ordersaga/internal/devserver"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// One embedded Temporal server for the package; every test gets its own task
// queue, worker and database schema.
var temporalServer *devserver.Server

func TestMain(m *testing.M) {
	ts, err := testenv.Temporal()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start embedded temporal:", err)
		os.Exit(1)
	}
	temporalServer = ts
	code := m.Run()
	_ = ts.Stop()
	os.Exit(code)
}

type orderBody struct {
	OrderNo     string    `json:"order_no"`
	Status      string    `json:"status"`
	TotalFen    int64     `json:"total_fen"`
	CreatedAt   time.Time `json:"created_at"`
	PayDeadline time.Time `json:"pay_deadline"`
	Items       []struct {
		ProductID    int64  `json:"product_id"`
		Name         string `json:"name"`
		UnitPriceFen int64  `json:"unit_price_fen"`
		Quantity     int64  `json:"quantity"`
	} `json:"items"`
}

func TestCreatedOrderIsStoredPricedFromTheDatabaseAndItsWorkflowWaits(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{PayTimeout: 15 * time.Minute})
	ps := env.Seed(store.Product{Name: "Coffee", PriceFen: 8800, Stock: 10}, store.Product{Name: "Mug", PriceFen: 3900, Stock: 5})
	uid, token := env.UserToken("openid-alice")

	// The client's price is ignored: prices come from the database.
	resp := env.Do(http.MethodPost, "/v1/orders", token, map[string]any{
		"items": []map[string]any{{"product_id": ps[0].ID, "quantity": 2, "unit_price_fen": 1}, {"product_id": ps[1].ID, "quantity": 1}},
	})
	if resp.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	var created orderBody
	resp.JSON(t, &created)
	if created.Status != "PENDING" || created.TotalFen != 2*8800+3900 || len(created.Items) != 2 {
		t.Fatalf("created order = %+v", created)
	}
	if d := created.PayDeadline.Sub(created.CreatedAt); d < 14*time.Minute || d > 16*time.Minute {
		t.Fatalf("pay deadline %v after creation, want ~15m", d)
	}

	row, err := env.Store.GetOrder(context.Background(), created.OrderNo)
	if err != nil {
		t.Fatalf("row: %v", err)
	}
	if row.Status != store.StatusPending || row.UserID != uid || row.TotalFen != created.TotalFen {
		t.Fatalf("row = %+v", row)
	}

	desc, err := env.Temporal.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(created.OrderNo), "")
	if err != nil {
		t.Fatalf("describe workflow: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("workflow status %v, want RUNNING", st)
	}
	testenv.Eventually(t, 30*time.Second, "search attributes say PENDING with the amount", func() (bool, string) {
		ids := env.Workflows(fmt.Sprintf(`OrderStatus="PENDING" AND OrderNo=%q AND OrderAmountFen=%d AND %s`, created.OrderNo, created.TotalFen, testenv.UserQuery(uid)))
		return len(ids) == 1, fmt.Sprint(ids)
	})

	var got orderBody
	resp = env.Do(http.MethodGet, "/v1/orders/"+created.OrderNo, token, nil)
	resp.JSON(t, &got)
	if resp.Status != http.StatusOK || got.OrderNo != created.OrderNo || got.Status != "PENDING" || got.Items[0].Name != "Coffee" {
		t.Fatalf("GET order: %d %s", resp.Status, resp.Body)
	}
	var list struct {
		Orders []orderBody `json:"orders"`
	}
	resp = env.Do(http.MethodGet, "/v1/orders", token, nil)
	resp.JSON(t, &list)
	if len(list.Orders) != 1 || list.Orders[0].OrderNo != created.OrderNo {
		t.Fatalf("GET orders: %s", resp.Body)
	}
}

func TestUnpaidOrderIsClosedAtItsDeadline(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{PayTimeout: 2 * time.Second})
	ps := env.Seed(store.Product{Name: "Tea", PriceFen: 12800, Stock: 3})
	uid, token := env.UserToken("openid-bob")

	resp := env.Do(http.MethodPost, "/v1/orders", token, map[string]any{"items": []map[string]any{{"product_id": ps[0].ID, "quantity": 1}}})
	if resp.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	var created orderBody
	resp.JSON(t, &created)

	testenv.Eventually(t, time.Minute, "row CLOSED", func() (bool, string) {
		o, err := env.Store.GetOrder(context.Background(), created.OrderNo)
		return err == nil && o.Status == store.StatusClosed && o.ClosedAt != nil, fmt.Sprint(o.Status, err)
	})
	testenv.Eventually(t, 30*time.Second, "search attribute CLOSED", func() (bool, string) {
		ids := env.Workflows(fmt.Sprintf(`OrderStatus="CLOSED" AND %s`, testenv.UserQuery(uid)))
		return len(ids) == 1 && ids[0] == workflows.WorkflowID(created.OrderNo), fmt.Sprint(ids)
	})
	desc, err := env.Temporal.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(created.OrderNo), "")
	if err != nil {
		t.Fatal(err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("workflow %v, want COMPLETED", st)
	}
	// Stock was never deducted for an unpaid order.
	p, _ := env.Store.GetProducts(context.Background(), []int64{ps[0].ID})
	if p[ps[0].ID].Stock != 3 {
		t.Fatalf("stock = %d, want 3", p[ps[0].ID].Stock)
	}
}

func TestRefusedOrdersLeaveNoRowAndNoRunningWorkflow(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Limited mug", PriceFen: 3900, Stock: 2})
	uid, token := env.UserToken("openid-carol")
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"more than the stock", map[string]any{"items": []map[string]any{{"product_id": ps[0].ID, "quantity": 3}}}, http.StatusConflict, "OUT_OF_STOCK"},
		{"the same product twice adding up past the stock", map[string]any{"items": []map[string]any{{"product_id": ps[0].ID, "quantity": 2}, {"product_id": ps[0].ID, "quantity": 1}}}, http.StatusConflict, "OUT_OF_STOCK"},
		{"unknown product", map[string]any{"items": []map[string]any{{"product_id": 999999, "quantity": 1}}}, http.StatusBadRequest, "UNKNOWN_PRODUCT"},
		{"malformed JSON", `{"items": [`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"empty body", ``, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"two JSON objects", `{"items":[]} {"items":[]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"wrong type", `{"items":[{"product_id":"one","quantity":1}]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"no items", map[string]any{"items": []any{}}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"zero quantity", map[string]any{"items": []map[string]any{{"product_id": ps[0].ID, "quantity": 0}}}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"negative quantity", map[string]any{"items": []map[string]any{{"product_id": ps[0].ID, "quantity": -1}}}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"huge quantity", `{"items":[{"product_id":1,"quantity":9223372036854775807}]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"quantity overflowing int64", `{"items":[{"product_id":1,"quantity":92233720368547758070}]}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"1 MB body", `{"address":"` + strings.Repeat("x", 1<<20) + `","items":[]}`, http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.Do(http.MethodPost, "/v1/orders", token, tt.body)
			if resp.Status != tt.status || resp.ErrorCode() != tt.code {
				t.Fatalf("got %d %s; want %d %s", resp.Status, resp.Body, tt.status, tt.code)
			}
		})
	}

	orders, _, err := env.Store.ListOrdersByUser(context.Background(), uid, 100, nil)
	if err != nil || len(orders) != 0 {
		t.Fatalf("refused orders left rows: %d (%v)", len(orders), err)
	}
	// A workflow a refused order started would be listed by now: visibility
	// has indexed one started after them.
	waitVisibility(t, env)
	consistently(t, 2*time.Second, "refused orders left no workflow", func() (bool, string) {
		ids := env.Workflows(testenv.UserQuery(uid))
		return len(ids) == 0, fmt.Sprint(ids)
	})
	p, _ := env.Store.GetProducts(context.Background(), []int64{ps[0].ID})
	if p[ps[0].ID].Stock != 2 {
		t.Fatalf("stock changed to %d", p[ps[0].ID].Stock)
	}
}

func TestOrdersNeedAValidTokenAndStayPrivate(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Beans", PriceFen: 100, Stock: 10})
	_, alice := env.UserToken("openid-alice")
	_, mallory := env.UserToken("openid-mallory")

	resp := env.Do(http.MethodPost, "/v1/orders", alice, map[string]any{"items": []map[string]any{{"product_id": ps[0].ID, "quantity": 1}}})
	if resp.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	var created orderBody
	resp.JSON(t, &created)

	tests := []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"another user's order is not found", http.MethodGet, "/v1/orders/" + created.OrderNo, mallory, http.StatusNotFound, "NOT_FOUND"},
		{"no token", http.MethodGet, "/v1/orders/" + created.OrderNo, "", http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"tampered token", http.MethodGet, "/v1/orders/" + created.OrderNo, tamperSignature(t, alice), http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"garbage token", http.MethodGet, "/v1/orders", "garbage", http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"create without token", http.MethodPost, "/v1/orders", "", http.StatusUnauthorized, "UNAUTHENTICATED"},
		{"malformed order number", http.MethodGet, "/v1/orders/..%2f..%2fetc", alice, http.StatusNotFound, "NOT_FOUND"},
		{"unknown route", http.MethodGet, "/v1/nope", alice, http.StatusNotFound, "NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.Do(tt.method, tt.path, tt.token, nil)
			if resp.Status != tt.status || resp.ErrorCode() != tt.code {
				t.Fatalf("got %d %s; want %d %s", resp.Status, resp.Body, tt.status, tt.code)
			}
		})
	}
	var list struct {
		Orders []orderBody `json:"orders"`
	}
	env.Do(http.MethodGet, "/v1/orders", mallory, nil).JSON(t, &list)
	if len(list.Orders) != 0 {
		t.Fatalf("mallory sees %d orders", len(list.Orders))
	}
}

func TestHealthAndReadiness(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp := env.Do(http.MethodGet, path, "", nil); resp.Status != http.StatusOK {
			t.Errorf("%s: %d %s", path, resp.Status, resp.Body)
		}
	}
	resp := env.Do(http.MethodGet, "/metrics", "", nil)
	if !strings.Contains(string(resp.Body), "ordersaga_http_requests_total") {
		t.Errorf("/metrics lacks the request counter")
	}
}

