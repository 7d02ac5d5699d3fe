package api_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// Refunds of some items (issue 18), over HTTP on the whole stack: the
// embedded Temporal server, PostgreSQL, the simulator (refunds of one
// payment at least WECHATPAY_REFUND_INTERVAL apart: 1 s here).

type refundedOrder struct {
	orderView
	RefundedFen int64 `json:"refunded_fen"`
	Refunds     []struct {
		OutRefundNo string `json:"out_refund_no"`
		RefundFen   int64  `json:"refund_fen"`
		Status      string `json:"status"`
		Items       []item `json:"items"`
	} `json:"refunds"`
}

func refundBody(items ...item) map[string]any {
	return map[string]any{"items": items, "reason": "one arrived broken"}
}

// teaAndCups seeds a tea at ¥12.00 and a cup at ¥82.00 and places a paid
// order of one tea and two cups: ¥176.00.
func teaAndCups(t *testing.T, env *testenv.Env, token string) (tea, cup store.Product, o orderView, wf string) {
	t.Helper()
	ps := env.Seed(store.Product{Name: "Longjing tea 50g", PriceFen: 1200, Stock: 10}, store.Product{Name: "Celadon cup", PriceFen: 8200, Stock: 10})
	tea, cup = ps[0], ps[1]
	o, wf = placePaid(t, env, token, item{tea.ID, 1}, item{cup.ID, 2})
	waitStock(t, env, tea.ID, 9)
	waitStock(t, env, cup.ID, 8)
	return tea, cup, o, wf
}

// The Done-when story: a three-item order, one item refunded (the
// simulator shows a refund of that item's amount, its stock is back, the
// order still PAID with refunded_fen), then the rest (REFUNDED).
func TestRefundOneItemThenTheRest(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	_, token := env.UserToken("openid-partial")
	tea, cup, o, wf := teaAndCups(t, env, token)

	resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/refund", token, refundBody(item{tea.ID, 1}))
	var got refundedOrder
	resp.JSON(t, &got)
	if resp.Status != http.StatusOK || got.Status != string(status.Paid) || len(got.Refunds) != 1 ||
		len(got.Refunds[0].Items) != 1 || got.Refunds[0].Items[0] != (item{tea.ID, 1}) || got.Refunds[0].RefundFen != 1200 {
		t.Fatalf("refund of the tea: %d %s", resp.Status, resp.Body)
	}
	first := workflows.OrderRefundNo(o.OrderNo, 1)
	testenv.Eventually(t, 30*time.Second, "the tea's refund settled", func() (bool, string) {
		r := row(t, env, o.OrderNo)
		return r.RefundedFen == 1200, fmt.Sprintf("%s, refunded %d", r.Status, r.RefundedFen)
	})
	if r, ok := env.Sim.Refund(first); !ok || r.Status != "SUCCESS" || r.RefundFen != 1200 || len(r.Goods) != 1 ||
		r.Goods[0].MerchantGoodsID != itoa(tea.ID) || r.Goods[0].RefundQuantity != 1 {
		t.Fatalf("the tea's refund at WeChat: %+v", r)
	}
	waitStock(t, env, tea.ID, 10)
	if s := stock(t, env, cup.ID); s != 8 {
		t.Errorf("cup stock %d after the tea's refund, want 8", s)
	}
	resp = env.Do(http.MethodGet, "/v1/orders/"+o.OrderNo, token, nil)
	resp.JSON(t, &got)
	if got.Status != string(status.Paid) || got.RefundedFen != 1200 || len(got.Refunds) != 1 || got.Refunds[0].Status != "SUCCESS" {
		t.Fatalf("the order after one refund: %s", resp.Body)
	}
	if v := orderState(t, env, o.OrderNo); v.Status != status.Paid || v.RefundedFen != 1200 {
		t.Errorf("state %s refunded %d", v.Status, v.RefundedFen)
	}
	waitVisibility(t, env)
	if ids := env.Workflows(`OrderRefundedFen = 1200 AND OrderStatus = "PAID"`); len(ids) != 1 || ids[0] != wf {
		t.Errorf("visibility by OrderRefundedFen: %v", ids)
	}

	// The rest: no items is everything left.
	resp = env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/refund", env.Config.AdminToken, map[string]string{"reason": "the rest too"})
	if resp.Status != http.StatusOK {
		t.Fatalf("refund of the rest: %d %s", resp.Status, resp.Body)
	}
	final := waitStatus(t, env, o.OrderNo, status.Refunded)
	if final.RefundedFen != 17600 {
		t.Errorf("refunded %d fen, want 17600", final.RefundedFen)
	}
	if r, ok := env.Sim.Refund(workflows.OrderRefundNo(o.OrderNo, 2)); !ok || r.Status != "SUCCESS" || r.RefundFen != 16400 ||
		len(r.Goods) != 1 || r.Goods[0].RefundQuantity != 2 {
		t.Errorf("the second refund at WeChat: %+v", r)
	}
	waitStock(t, env, cup.ID, 10)
	waitWorkflowClosed(t, env, wf)
	if n := ledgerRows(t, env, o.OrderNo, store.LedgerRestore); n != 2 {
		t.Errorf("%d RESTORE rows, want one per refund and product", n)
	}
	if s := stock(t, env, tea.ID); s != 10 {
		t.Errorf("tea stock %d at the end, want 10 (restored once)", s)
	}
}

// Ten refunds of one item each fired at once on an order of three items:
// three are taken, the rest refused, and WeChat refunds exactly what the
// API accepted — never more than was paid.
func TestTenConcurrentRefundsNeverRefundMoreThanWasPaid(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	_, token := env.UserToken("openid-ten")
	tea, cup, o, _ := teaAndCups(t, env, token)

	type answer struct {
		status int
		code   string
		fen    int64
	}
	answers := make([]answer, 10)
	var wg sync.WaitGroup
	for i := range answers {
		p := tea
		if i%2 == 1 {
			p = cup
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/refund", token, refundBody(item{p.ID, 1}))
			answers[i] = answer{status: resp.Status, code: resp.ErrorCode(), fen: p.PriceFen}
		}()
	}
	wg.Wait()
	var accepted int64
	taken := 0
	for i, a := range answers {
		switch {
		case a.status == http.StatusOK:
			accepted += a.fen
			taken++
		case a.status == http.StatusConflict && a.code == "REFUND_EXCEEDS_ORDER":
		default:
			t.Errorf("request %d: %d %s", i, a.status, a.code)
		}
	}
	if taken != 3 || accepted != o.TotalFen {
		t.Fatalf("%d refunds taken for %d fen; want the 3 items, %d fen", taken, accepted, o.TotalFen)
	}
	final := waitStatus(t, env, o.OrderNo, status.Refunded)
	tx, _ := env.Sim.Transaction(o.OrderNo)
	var atWechat int64
	for _, r := range tx.Refunds {
		atWechat += r.RefundFen
	}
	if atWechat != accepted || tx.RefundedFen != accepted || final.RefundedFen != accepted || len(tx.Refunds) != 3 {
		t.Errorf("WeChat has %d refunds for %d fen (%d settled), the row %d; want 3 for %d", len(tx.Refunds), atWechat, tx.RefundedFen, final.RefundedFen, accepted)
	}
	waitStock(t, env, tea.ID, 10)
	waitStock(t, env, cup.ID, 10)
}

// Refund requests no order could take, or this one cannot: a clear 4xx, and
// nothing changes — not the database, not WeChat.
func TestBadRefundRequestsChangeNothing(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	_, token := env.UserToken("openid-bad-refunds")
	_, other := env.UserToken("openid-someone-else")
	tea, cup, o, _ := teaAndCups(t, env, token)
	unknown := env.Seed(store.Product{Name: "Not in the order", PriceFen: 100, Stock: 1})[0]
	if resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/refund", token, refundBody(item{cup.ID, 1})); resp.Status != http.StatusOK {
		t.Fatalf("the first refund: %d %s", resp.Status, resp.Body)
	}
	testenv.Eventually(t, 30*time.Second, "the first refund settled", func() (bool, string) {
		r := row(t, env, o.OrderNo)
		return r.RefundedFen == 8200, fmt.Sprint(r.RefundedFen)
	})
	waitStock(t, env, cup.ID, 9)
	before, wechatBefore := dbSnapshot(t, env), len(mustTx(t, env, o.OrderNo).Refunds)

	path := "/v1/orders/" + o.OrderNo + "/refund"
	for _, tt := range []struct {
		name   string
		token  string
		body   any
		header map[string]string
		status int
		code   string
	}{
		{"a product not in the order", token, refundBody(item{unknown.ID, 1}), nil, http.StatusConflict, "REFUND_EXCEEDS_ORDER"},
		{"zero", token, refundBody(item{tea.ID, 0}), nil, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"negative", token, refundBody(item{tea.ID, -1}), nil, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"a product listed twice", token, refundBody(item{tea.ID, 1}, item{tea.ID, 1}), nil, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"more than bought", token, refundBody(item{tea.ID, 2}), nil, http.StatusConflict, "REFUND_EXCEEDS_ORDER"},
		{"more than left", token, refundBody(item{cup.ID, 2}), nil, http.StatusConflict, "REFUND_EXCEEDS_ORDER"},
		{"no product id", token, map[string]any{"items": []map[string]int{{"quantity": 1}}}, nil, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"an unknown field", token, map[string]any{"items": []item{{tea.ID, 1}}, "amount_fen": 1}, nil, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"a malformed Idempotency-Key", token, refundBody(item{tea.ID, 1}), map[string]string{"Idempotency-Key": "short"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"someone else's order", other, refundBody(item{tea.ID, 1}), nil, http.StatusNotFound, "NOT_FOUND"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.DoWith(http.MethodPost, path, tt.token, tt.body, func(r *http.Request) {
				for k, v := range tt.header {
					r.Header.Set(k, v)
				}
			})
			expectError(t, resp, tt.status, tt.code)
		})
	}
	if after := dbSnapshot(t, env); after != before {
		t.Errorf("the database changed:\nbefore %s\nafter %s", before, after)
	}
	if n := len(mustTx(t, env, o.OrderNo).Refunds); n != wechatBefore {
		t.Errorf("WeChat has %d refunds, had %d", n, wechatBefore)
	}
}

// A refund repeated under its Idempotency-Key (a client retrying after a
// timeout) is the refund it made; the key with other goods is refused.
func TestRefundRepeatedUnderItsIdempotencyKeyRefundsOnce(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	_, token := env.UserToken("openid-keyed-refund")
	tea, cup, o, _ := teaAndCups(t, env, token)
	keyed := func(r *http.Request) { r.Header.Set("Idempotency-Key", "refund-0001") }
	path := "/v1/orders/" + o.OrderNo + "/refund"
	for i := range 2 {
		// The repeat answers the order with the refund under way (200 or
		// 202, as any repeat of an action in progress).
		resp := env.DoWith(http.MethodPost, path, token, refundBody(item{cup.ID, 1}), keyed)
		var got refundedOrder
		resp.JSON(t, &got)
		if (resp.Status != http.StatusOK && resp.Status != http.StatusAccepted) || len(got.Refunds) != 1 {
			t.Fatalf("attempt %d: %d %s", i+1, resp.Status, resp.Body)
		}
	}
	expectError(t, env.DoWith(http.MethodPost, path, token, refundBody(item{tea.ID, 1}), keyed), http.StatusConflict, "IDEMPOTENCY_KEY_REUSED")
	waitStock(t, env, cup.ID, 9)
	testenv.Eventually(t, 30*time.Second, "the refund settled", func() (bool, string) {
		r := row(t, env, o.OrderNo)
		return r.RefundedFen == 8200, fmt.Sprint(r.RefundedFen)
	})
	if v := orderState(t, env, o.OrderNo); len(v.Refunds) != 1 {
		t.Errorf("refunds %+v, want one", v.Refunds)
	}
}

func mustTx(t *testing.T, env *testenv.Env, orderNo string) struct{ Refunds []any } {
	t.Helper()
	tx, ok := env.Sim.Transaction(orderNo)
	if !ok {
		t.Fatalf("no transaction %s at the simulator", orderNo)
	}
	out := struct{ Refunds []any }{}
	for _, r := range tx.Refunds {
		out.Refunds = append(out.Refunds, r)
	}
	return out
}
