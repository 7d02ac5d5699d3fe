package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	enumspb "go.temporal.io/api/enums/v1"

	"ordersaga/internal/app"
	"ordersaga/internal/devserver"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// One embedded Temporal server for the package; every test gets its own task
// queue, worker and database schema.
var temporalServer *devserver.Server

// Temporal's per-workflow limits on updates and signals in these tests: far
// above what any journey uses, low enough for a test to reach them
// (TestNoClientCanWedgeAnOrder). A test path that writes an update or signal
// per request where it should not fails here before it fails a shop.
const (
	testMaxTotalUpdates = 60
	testMaxSignals      = 60
)

func TestMain(m *testing.M) {
	ts, err := testenv.TemporalWithLimits(testenv.Limits{TotalUpdates: testMaxTotalUpdates, Signals: testMaxSignals})
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
	if row.Status != status.Pending || row.UserID != uid || row.TotalFen != created.TotalFen {
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
		return err == nil && o.Status == status.Closed && o.ClosedAt != nil, fmt.Sprint(o.Status, err)
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

// GET /v1/orders pages through the caller's orders newest first: following
// next_cursor visits each once, with no repeat and no gap, and never another
// user's.
func TestOrderListPagesNewestFirstWithoutRepeatsOrGaps(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Beans", PriceFen: 100, Stock: 100})
	_, alice := env.UserToken("openid-alice")
	_, bob := env.UserToken("openid-bob")
	var placed []string // alice's, oldest first
	for i := range 7 {
		if i == 3 { // bob orders between alice's third and fourth
			place(t, env, bob, item{ps[0].ID, 1})
		}
		placed = append(placed, place(t, env, alice, item{ps[0].ID, int64(i + 1)}).OrderNo)
	}
	newestFirst := slices.Clone(placed)
	slices.Reverse(newestFirst)

	type page struct {
		Orders     []orderBody `json:"orders"`
		NextCursor *string     `json:"next_cursor"`
	}
	list := func(token, query string) page {
		t.Helper()
		resp := env.Do(http.MethodGet, "/v1/orders"+query, token, nil)
		if resp.Status != http.StatusOK {
			t.Fatalf("GET /v1/orders%s: %d %s", query, resp.Status, resp.Body)
		}
		var p page
		resp.JSON(t, &p)
		return p
	}
	numbers := func(os []orderBody) []string {
		out := make([]string, 0, len(os))
		for _, o := range os {
			out = append(out, o.OrderNo)
		}
		return out
	}

	if p := list(alice, ""); !slices.Equal(numbers(p.Orders), newestFirst) || p.NextCursor != nil {
		t.Errorf("default page: %v (next %v), want %v and no cursor", numbers(p.Orders), p.NextCursor, newestFirst)
	}
	var walked []string
	var sizes []int
	query := "?limit=3"
	for {
		p := list(alice, query)
		walked = append(walked, numbers(p.Orders)...)
		sizes = append(sizes, len(p.Orders))
		if p.NextCursor == nil {
			break
		}
		if len(sizes) > len(placed) {
			t.Fatalf("more pages than orders: %v", walked)
		}
		query = "?limit=3&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	if !slices.Equal(walked, newestFirst) || !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Errorf("walked %v in pages of %v, want %v in pages of [3 3 1]", walked, sizes, newestFirst)
	}
	// A limit equal to the number of orders leaves no cursor to an empty page.
	if p := list(alice, "?limit=7"); len(p.Orders) != 7 || p.NextCursor != nil {
		t.Errorf("limit=7: %d orders, next %v", len(p.Orders), p.NextCursor)
	}
	// Bob sees his one order, also through a cursor of alice's list.
	first := list(alice, "?limit=3")
	for _, q := range []string{"", "?limit=3&cursor=" + url.QueryEscape(*first.NextCursor)} {
		p := list(bob, q)
		if len(p.Orders) != 1 || slices.Contains(placed, p.Orders[0].OrderNo) || p.NextCursor != nil {
			t.Errorf("bob's list%s: %v (next %v), want his one order", q, numbers(p.Orders), p.NextCursor)
		}
	}

	b64 := func(s string) string { return url.QueryEscape(base64.RawURLEncoding.EncodeToString([]byte(s))) }
	for _, tt := range []struct{ name, query string }{
		{"limit 0", "?limit=0"},
		{"limit 101", "?limit=101"},
		{"limit not a number", "?limit=x"},
		{"negative limit", "?limit=-1"},
		{"cursor not base64", "?cursor=%25%25%25"},
		{"cursor without an order number", "?cursor=" + b64("1700000000000000")},
		{"cursor whose time is not a number", "?cursor=" + b64("yesterday:"+placed[0])},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.Do(http.MethodGet, "/v1/orders"+tt.query, alice, nil)
			if resp.Status != http.StatusBadRequest || resp.ErrorCode() != "INVALID_ARGUMENT" {
				t.Fatalf("got %d %s; want 400 INVALID_ARGUMENT", resp.Status, resp.Body)
			}
		})
	}
}

// Every answer carries X-Request-Id: the caller's (up to 64 characters), or
// one generated for the request.
func TestRequestIDIsEchoedOrGenerated(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	get := func(path, id string) string {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, env.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Request-Id")
	}
	generated := regexp.MustCompile(`^[0-9a-f]{16}$`)
	long := strings.Repeat("r", 65)
	for _, path := range []string{"/healthz", "/v1/orders" /* 401 */, "/v1/nope" /* 404 */} {
		if got := get(path, "trace-4f2a-from-the-caller"); got != "trace-4f2a-from-the-caller" {
			t.Errorf("%s: X-Request-Id %q, want the caller's", path, got)
		}
		a, b := get(path, ""), get(path, "")
		if !generated.MatchString(a) || !generated.MatchString(b) || a == b {
			t.Errorf("%s without an id: %q and %q, want two different generated ids", path, a, b)
		}
		if got := get(path, long); !generated.MatchString(got) {
			t.Errorf("%s with a 65-character id: %q, want a generated one", path, got)
		}
	}
}

// An API started without ADMIN_TOKEN refuses every admin route with 403
// PERMISSION_DENIED, whatever token is sent, and changes nothing.
func TestAdminAPIIsDisabledWithoutAdminToken(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Beans", PriceFen: 100, Stock: 10})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	cfg := env.Config
	cfg.AdminToken = ""
	h, err := app.NewAPIHandler(cfg, env.Store, env.Temporal, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	base := newTestServer(t, h)
	wf := workflows.WorkflowID(o.OrderNo)
	settle(t, env, wf)
	dbBefore, tBefore := dbSnapshot(t, env), temporalSnapshot(t, env, wf)
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/v1/admin/products"},
		{http.MethodPatch, "/v1/admin/products/" + itoa(ps[0].ID)},
		{http.MethodGet, "/v1/admin/orders/flagged"},
		{http.MethodGet, "/v1/admin/orders/" + o.OrderNo},
		{http.MethodPost, "/v1/admin/orders/" + o.OrderNo + "/ship"},
		{http.MethodPost, "/v1/admin/orders/" + o.OrderNo + "/refund"},
	} {
		for _, bearer := range []string{"", env.Config.AdminToken, "anything"} {
			if resp := doAt(t, base, r.method, r.path, bearer); resp.Status != http.StatusForbidden || resp.ErrorCode() != "PERMISSION_DENIED" {
				t.Errorf("%s %s with token %q: %d %s, want 403 PERMISSION_DENIED", r.method, r.path, bearer, resp.Status, resp.Body)
			}
		}
	}
	if after := dbSnapshot(t, env); after != dbBefore {
		t.Errorf("the database changed:\nbefore %s\nafter  %s", dbBefore, after)
	}
	if after := temporalSnapshot(t, env, wf); after != tBefore {
		t.Errorf("the order's workflow changed: before %s, after %s", tBefore, after)
	}
}

// With its database gone the API is alive but not ready: /readyz answers 503
// naming the database, /healthz still 200.
func TestReadinessFailsWhenTheDatabaseIsGone(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	gone := storetest.NewSQLite(t)
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := app.NewAPIHandler(env.Config, gone, env.Temporal, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	base := newTestServer(t, h)
	resp := doAt(t, base, http.MethodGet, "/readyz", "")
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	resp.JSON(t, &ready)
	if resp.Status != http.StatusServiceUnavailable || ready.Ready || ready.Checks["database"] != "unreachable" || ready.Checks["temporal"] != "ok" {
		t.Errorf("readyz with the database closed: %d %s", resp.Status, resp.Body)
	}
	if resp := doAt(t, base, http.MethodGet, "/healthz", ""); resp.Status != http.StatusOK {
		t.Errorf("healthz with the database closed: %d %s", resp.Status, resp.Body)
	}
}
