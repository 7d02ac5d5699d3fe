package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"ordersaga/internal/status"
	"ordersaga/internal/testenv"
)

// After-sales (issue 18), over HTTP on the whole stack.

type afterSaleView struct {
	ID          string `json:"id"`
	OrderNo     string `json:"order_no"`
	Type        string `json:"type"`
	Status      string `json:"status"`
	RefundFen   int64  `json:"refund_fen"`
	OutRefundNo string `json:"out_refund_no"`
	Items       []item `json:"items"`
}

func afterSaleOK(t *testing.T, resp testenv.Response, want string) afterSaleView {
	t.Helper()
	var a afterSaleView
	resp.JSON(t, &a)
	if resp.Status != http.StatusOK || a.Status != want {
		t.Fatalf("got %d %s; want 200 with the after-sale %s", resp.Status, resp.Body, want)
	}
	return a
}

// The Done-when story: a shipped order's return-and-refund through
// approve → return → receive ends with the money back (the simulator shows
// the refund of the returned goods) and their stock restored.
func TestAfterSaleOfAShippedOrderReturnAndRefundThroughApproveReturnReceive(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	_, token := env.UserToken("openid-aftersale")
	tea, cup, o, _ := teaAndCups(t, env, token)
	shipOK(t, env, o.OrderNo, map[string]any{"logistics_type": "express", "packages": []any{map[string]string{"express_company": "ZTO", "tracking_no": "ZT1"}}})
	admin := env.Config.AdminToken

	a := afterSaleOK(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/after-sales", token, map[string]any{
		"type": "return_and_refund", "items": []item{{cup.ID, 1}}, "reason": "one cup arrived cracked",
		"photos": []string{"https://img.example/cup.jpg"}}), "REQUESTED")
	if a.ID != o.OrderNo+"-AS1" || a.RefundFen != 8200 {
		t.Fatalf("the after-sale: %+v", a)
	}
	var list struct {
		AfterSales []afterSaleView `json:"after_sales"`
	}
	env.Do(http.MethodGet, "/v1/admin/after-sales?status=open", admin, nil).JSON(t, &list)
	if n := len(list.AfterSales); n != 1 || list.AfterSales[0].ID != a.ID {
		t.Fatalf("open after-sales: %+v", list.AfterSales)
	}
	afterSaleOK(t, env.Do(http.MethodPost, "/v1/admin/after-sales/"+a.ID+"/approve", admin, map[string]string{"note": "send it back"}), "AWAITING_RETURN")
	afterSaleOK(t, env.Do(http.MethodPost, "/v1/after-sales/"+a.ID+"/return", token, map[string]string{"express_company": "SF", "tracking_no": "SF7000000001"}), "RETURNED")
	if s := stock(t, env, cup.ID); s != 8 {
		t.Errorf("cup stock %d before the parcel is received; want 8", s)
	}
	got := afterSaleOK(t, env.Do(http.MethodPost, "/v1/admin/after-sales/"+a.ID+"/receive", admin, nil), "RECEIVED")
	refundNo := got.OutRefundNo

	testenv.Eventually(t, 30*time.Second, "the after-sale's refund settled", func() (bool, string) {
		r := row(t, env, o.OrderNo)
		return r.RefundedFen == 8200, fmt.Sprintf("%s, refunded %d", r.Status, r.RefundedFen)
	})
	if r, ok := env.Sim.Refund(refundNo); !ok || r.Status != "SUCCESS" || r.RefundFen != 8200 || len(r.Goods) != 1 || r.Goods[0].MerchantGoodsID != itoa(cup.ID) {
		t.Fatalf("the refund at WeChat: %+v", r)
	}
	waitStock(t, env, cup.ID, 9)
	if s := stock(t, env, tea.ID); s != 9 {
		t.Errorf("tea stock %d; want 9 (not returned)", s)
	}
	testenv.Eventually(t, 30*time.Second, "the after-sale REFUNDED in the order's answer", func() (bool, string) {
		var v struct {
			Status      string          `json:"status"`
			RefundedFen int64           `json:"refunded_fen"`
			AfterSales  []afterSaleView `json:"after_sales"`
		}
		resp := env.Do(http.MethodGet, "/v1/orders/"+o.OrderNo, token, nil)
		resp.JSON(t, &v)
		return v.Status == string(status.Shipped) && v.RefundedFen == 8200 && len(v.AfterSales) == 1 && v.AfterSales[0].Status == "REFUNDED", string(resp.Body)
	})
	env.Do(http.MethodGet, "/v1/admin/after-sales?status=open", admin, nil).JSON(t, &list)
	if len(list.AfterSales) != 0 {
		t.Errorf("open after-sales after the refund: %+v", list.AfterSales)
	}
}

// Bad after-sale requests are refused with a 4xx and change nothing.
func TestBadAfterSaleRequestsChangeNothing(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	_, token := env.UserToken("openid-aftersale-bad")
	_, other := env.UserToken("openid-aftersale-other")
	tea, cup, o, _ := teaAndCups(t, env, token)
	// An order completed: its window (1 s here) passes, its workflow ends.
	_, _, done, doneWF := teaAndCups(t, env, token)
	shipOK(t, env, done.OrderNo, map[string]any{"logistics_type": "virtual"})
	expectStatus(t, env.Do(http.MethodPost, "/v1/orders/"+done.OrderNo+"/confirm", token, nil), status.Completed)
	waitWorkflowClosed(t, env, doneWF)

	shipOK(t, env, o.OrderNo, map[string]any{"logistics_type": "virtual"})
	a := afterSaleOK(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/after-sales", token, map[string]any{
		"type": "return_and_refund", "items": []item{{cup.ID, 2}}}), "REQUESTED")
	before := dbSnapshot(t, env)

	ask := func(items ...item) map[string]any { return map[string]any{"type": "refund_only", "items": items} }
	for _, tt := range []struct {
		name, token, path string
		body              any
		status            int
		code              string
	}{
		{"a second while one is open", token, "/v1/orders/" + o.OrderNo + "/after-sales", ask(item{tea.ID, 1}), http.StatusConflict, "AFTER_SALE_IN_PROGRESS"},
		{"outside the window", token, "/v1/orders/" + done.OrderNo + "/after-sales", ask(item{tea.ID, 1}), http.StatusConflict, "AFTER_SALE_NOT_ALLOWED"},
		{"a return before approval (wrong step)", token, "/v1/after-sales/" + a.ID + "/return", map[string]string{"express_company": "SF", "tracking_no": "SF1"}, http.StatusConflict, "AFTER_SALE_WRONG_STEP"},
		{"receive before the parcel (wrong step)", env.Config.AdminToken, "/v1/admin/after-sales/" + a.ID + "/receive", nil, http.StatusConflict, "AFTER_SALE_WRONG_STEP"},
		{"someone else's order", other, "/v1/orders/" + o.OrderNo + "/after-sales", ask(item{tea.ID, 1}), http.StatusNotFound, "NOT_FOUND"},
		{"someone else's after-sale", other, "/v1/after-sales/" + a.ID + "/return", map[string]string{"express_company": "SF", "tracking_no": "SF1"}, http.StatusNotFound, "NOT_FOUND"},
		{"an unknown type", token, "/v1/orders/" + o.OrderNo + "/after-sales", map[string]any{"type": "exchange"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"ten photos", token, "/v1/orders/" + o.OrderNo + "/after-sales", map[string]any{"type": "refund_only", "photos": make([]string, 10)}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"a return without its tracking number", token, "/v1/after-sales/" + a.ID + "/return", map[string]string{"express_company": "SF"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"an unknown after-sale", env.Config.AdminToken, "/v1/admin/after-sales/" + o.OrderNo + "-AS9/approve", nil, http.StatusNotFound, "NOT_FOUND"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			expectError(t, env.Do(http.MethodPost, tt.path, tt.token, tt.body), tt.status, tt.code)
		})
	}
	// The open after-sale holds both cups: a refund of one more is refused.
	expectError(t, env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/refund", env.Config.AdminToken, refundBody(item{cup.ID, 1})), http.StatusConflict, "REFUND_EXCEEDS_ORDER")
	if after := dbSnapshot(t, env); after != before {
		t.Errorf("the database changed:\nbefore %s\nafter %s", before, after)
	}
	// More than left (two cups bought).
	afterSaleOK(t, env.Do(http.MethodPost, "/v1/admin/after-sales/"+a.ID+"/reject", env.Config.AdminToken, map[string]string{"note": "no"}), "REJECTED")
	before = dbSnapshot(t, env)
	expectError(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/after-sales", token, ask(item{cup.ID, 3})), http.StatusConflict, "REFUND_EXCEEDS_ORDER")
	if after := dbSnapshot(t, env); after != before {
		t.Errorf("the database changed:\nbefore %s\nafter %s", before, after)
	}
}
