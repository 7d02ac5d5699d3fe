package api_test

import (
	"net/http"
	"testing"

	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// The shop adds products and changes their price and stock; customers see it.
func TestAdminManagesProducts(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	admin := env.Config.AdminToken

	var created struct {
		ID       int64  `json:"id"`
		Name     string `json:"name"`
		PriceFen int64  `json:"price_fen"`
		Stock    int64  `json:"stock"`
	}
	resp := env.Do(http.MethodPost, "/v1/admin/products", admin, map[string]any{"name": "  Pu'er cake ", "price_fen": 23800, "stock": 3})
	resp.JSON(t, &created)
	if resp.Status != http.StatusCreated || created.ID == 0 || created.Name != "Pu'er cake" || created.PriceFen != 23800 || created.Stock != 3 {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	resp = env.Do(http.MethodPatch, "/v1/admin/products/"+itoa(created.ID), admin, map[string]any{"stock": 10})
	var updated struct {
		Name     string `json:"name"`
		PriceFen int64  `json:"price_fen"`
		Stock    int64  `json:"stock"`
	}
	resp.JSON(t, &updated)
	if resp.Status != http.StatusOK || updated.Stock != 10 || updated.PriceFen != 23800 || updated.Name != "Pu'er cake" {
		t.Fatalf("update stock: %d %s", resp.Status, resp.Body)
	}
	resp = env.Do(http.MethodPatch, "/v1/admin/products/"+itoa(created.ID), admin, map[string]any{"price_fen": 19900, "name": "Pu'er cake 2019"})
	resp.JSON(t, &updated)
	if resp.Status != http.StatusOK || updated.Stock != 10 || updated.PriceFen != 19900 || updated.Name != "Pu'er cake 2019" {
		t.Fatalf("update price: %d %s", resp.Status, resp.Body)
	}
	var products struct {
		Products []struct {
			ID       int64 `json:"id"`
			PriceFen int64 `json:"price_fen"`
			Stock    int64 `json:"stock"`
		} `json:"products"`
	}
	env.Do(http.MethodGet, "/v1/products", "", nil).JSON(t, &products)
	if len(products.Products) != 1 || products.Products[0].PriceFen != 19900 || products.Products[0].Stock != 10 {
		t.Fatalf("products: %+v", products)
	}
	// New orders are priced at the new price.
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{created.ID, 2})
	if o.TotalFen != 2*19900 {
		t.Errorf("order total %d, want %d", o.TotalFen, 2*19900)
	}
}

// An operator's view of an order: the row, payments, refunds, flags and what
// the workflow says; and the list of orders that need a person.
func TestAdminSeesAnyOrderWithItsWorkflowState(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	admin := env.Config.AdminToken
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	uid, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})

	var detail struct {
		OrderNo  string   `json:"order_no"`
		UserID   int64    `json:"user_id"`
		Status   string   `json:"status"`
		Flags    []string `json:"flags"`
		Payments []any    `json:"payments"`
		Refunds  []any    `json:"refunds"`
		State    *struct {
			OrderNo string `json:"order_no"`
			Status  string `json:"status"`
		} `json:"state"`
	}
	resp := env.Do(http.MethodGet, "/v1/admin/orders/"+o.OrderNo, admin, nil)
	resp.JSON(t, &detail)
	if resp.Status != http.StatusOK || detail.OrderNo != o.OrderNo || detail.UserID != uid || detail.Status != "PENDING" ||
		detail.Flags == nil || detail.Payments == nil || detail.Refunds == nil || detail.State == nil || detail.State.Status != "PENDING" {
		t.Fatalf("admin order: %d %s", resp.Status, resp.Body)
	}
	expectError(t, env.Do(http.MethodGet, "/v1/admin/orders/20990101000000123456", admin, nil), http.StatusNotFound, "NOT_FOUND")

	var flagged struct {
		Orders []struct {
			OrderNo string   `json:"order_no"`
			Flags   []string `json:"flags"`
		} `json:"orders"`
	}
	env.Do(http.MethodGet, "/v1/admin/orders/flagged", admin, nil).JSON(t, &flagged)
	if len(flagged.Orders) != 0 {
		t.Fatalf("flagged before anything went wrong: %+v", flagged)
	}
	if err := env.Store.FlagOrder(t.Context(), o.OrderNo, workflows.FlagPaymentMismatch); err != nil {
		t.Fatal(err)
	}
	env.Do(http.MethodGet, "/v1/admin/orders/flagged?limit=10", admin, nil).JSON(t, &flagged)
	if len(flagged.Orders) != 1 || flagged.Orders[0].OrderNo != o.OrderNo || len(flagged.Orders[0].Flags) != 1 || flagged.Orders[0].Flags[0] != workflows.FlagPaymentMismatch {
		t.Fatalf("flagged: %+v", flagged)
	}
}
