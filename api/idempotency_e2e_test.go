package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// createKeyed posts an order under an Idempotency-Key.
func createKeyed(t *testing.T, env *testenv.Env, token, key string, body any) testenv.Response {
	t.Helper()
	return doWithHeaders(t, env, http.MethodPost, "/v1/orders", token, body, map[string][]string{"Idempotency-Key": {key}})
}

func doWithHeaders(t *testing.T, env *testenv.Env, method, path, token string, body any, headers map[string][]string) testenv.Response {
	t.Helper()
	return env.DoWith(method, path, token, body, func(r *http.Request) {
		for k, vs := range headers {
			r.Header[k] = vs
		}
	})
}

func userOrders(t *testing.T, env *testenv.Env, token string) []orderBody {
	t.Helper()
	var list struct {
		Orders []orderBody `json:"orders"`
	}
	env.Do(http.MethodGet, "/v1/orders?limit=100", token, nil).JSON(t, &list)
	return list.Orders
}

// A mini-program retrying POST /v1/orders after a timeout sends the same
// Idempotency-Key: however many attempts, at once or later, one order is
// made; the first attempt answers 201, every other 200 with that order.
func TestOrderCreationUnderAnIdempotencyKeyMakesOneOrder(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 10}, store.Product{Name: "Cup", PriceFen: 3900, Stock: 10})
	aliceID, alice := env.UserToken("openid-alice")
	_, bob := env.UserToken("openid-bob")
	key := "0b6f1f52-7c3e-4c1a-9a63-" + randText(12)
	body := map[string]any{"items": []item{{ps[0].ID, 2}, {ps[1].ID, 1}}, "address": "Room 1, 8 Nanjing Rd"}

	// Several attempts at once: exactly one order.
	const attempts = 6
	answers := make([]testenv.Response, attempts)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i] = createKeyed(t, env, alice, key, body) })
	}
	wg.Wait()
	created, no := 0, ""
	for i, a := range answers {
		var o orderBody
		a.JSON(t, &o)
		switch {
		case a.Status == http.StatusCreated:
			created++
		case a.Status != http.StatusOK:
			t.Fatalf("attempt %d: %d %s", i, a.Status, a.Body)
		}
		if no == "" {
			no = o.OrderNo
		}
		if o.OrderNo != no || o.Status != "PENDING" || o.TotalFen != 2*1280+3900 {
			t.Fatalf("attempt %d answered %+v, another %s", i, o, no)
		}
	}
	if created != 1 {
		t.Fatalf("%d attempts answered 201 Created, want exactly 1", created)
	}
	historyOnFailure(t, env, workflows.WorkflowID(no))
	if got := userOrders(t, env, alice); len(got) != 1 || got[0].OrderNo != no {
		t.Fatalf("alice has %d orders: %+v", len(got), got)
	}
	if ids := env.Workflows(testenv.UserQuery(aliceID)); len(ids) > 1 {
		t.Fatalf("workflows %v", ids)
	}

	// Later, once the shelf is empty: still the same order, from its row.
	if resp := env.Do(http.MethodPatch, "/v1/admin/products/"+itoa(ps[0].ID), env.Config.AdminToken, map[string]any{"stock": 0}); resp.Status != http.StatusOK {
		t.Fatalf("empty the shelf: %d %s", resp.Status, resp.Body)
	}
	same := []map[string]any{
		body,
		// The same request written another way: lines in another order, a
		// product split over two lines, white space around the address.
		{"items": []item{{ps[1].ID, 1}, {ps[0].ID, 1}, {ps[0].ID, 1}}, "address": "  Room 1, 8 Nanjing Rd "},
	}
	for _, b := range same {
		resp := createKeyed(t, env, alice, key, b)
		var o orderBody
		resp.JSON(t, &o)
		if resp.Status != http.StatusOK || o.OrderNo != no {
			t.Fatalf("a later attempt: %d %s; want 200 with order %s", resp.Status, resp.Body, no)
		}
	}

	// Another request under the same key is refused, and makes nothing.
	dbBefore := dbSnapshot(t, env)
	for name, b := range map[string]any{
		"another quantity": map[string]any{"items": []item{{ps[0].ID, 3}, {ps[1].ID, 1}}, "address": "Room 1, 8 Nanjing Rd"},
		"another product":  map[string]any{"items": []item{{ps[1].ID, 1}}, "address": "Room 1, 8 Nanjing Rd"},
		"another address":  map[string]any{"items": []item{{ps[0].ID, 2}, {ps[1].ID, 1}}, "address": "Room 2"},
		"no address":       map[string]any{"items": []item{{ps[0].ID, 2}, {ps[1].ID, 1}}},
	} {
		t.Run(name, func(t *testing.T) {
			expectError(t, createKeyed(t, env, alice, key, b), http.StatusConflict, "IDEMPOTENCY_KEY_REUSED")
		})
	}
	if after := dbSnapshot(t, env); after != dbBefore {
		t.Errorf("the database changed:\nbefore %s\nafter  %s", dbBefore, after)
	}

	// The key is alice's: bob's order under it is his own.
	if resp := env.Do(http.MethodPatch, "/v1/admin/products/"+itoa(ps[0].ID), env.Config.AdminToken, map[string]any{"stock": 10}); resp.Status != http.StatusOK {
		t.Fatalf("refill the shelf: %d %s", resp.Status, resp.Body)
	}
	resp := createKeyed(t, env, bob, key, body)
	var bobs orderBody
	resp.JSON(t, &bobs)
	if resp.Status != http.StatusCreated || bobs.OrderNo == no {
		t.Fatalf("bob under alice's key: %d %s", resp.Status, resp.Body)
	}
	if !strings.Contains(metricsText(t, env), "ordersaga_orders_idempotent_replays_total") {
		t.Error("/metrics lacks ordersaga_orders_idempotent_replays_total")
	}

	// Paid, the order still answers its key.
	pay(t, env, alice, no)
	simPay(t, env, no)
	waitStatus(t, env, no, status.Paid)
	if resp := createKeyed(t, env, alice, key, body); resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), `"status":"PAID"`) {
		t.Fatalf("after payment: %d %s", resp.Status, resp.Body)
	}
}

// A keyed creation the workflow refused (the stock went between the API's
// look and the workflow's) leaves no row: its key answers the same refusal,
// even once the shelf is full again; another request under it is refused.
func TestRefusedOrderCreationAnswersItsIdempotencyKeyAlike(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 3})
	_, alice := env.UserToken("openid-alice")
	key := "refused-" + randText(16)
	body := map[string]any{"items": []item{{ps[0].ID, 2}}}

	// No worker: the create waits in Temporal while the shelf empties.
	env.StopWorker()
	first := make(chan testenv.Response, 1)
	go func() { first <- createKeyed(t, env, alice, key, body) }()
	testenv.Eventually(t, 30*time.Second, "the keyed order's workflow starts", func() (bool, string) {
		return len(env.Workflows("")) > 0, ""
	})
	setStock(t, env, ps[0].ID, 1)
	env.StartWorker()
	expectError(t, <-first, http.StatusConflict, "OUT_OF_STOCK")

	setStock(t, env, ps[0].ID, 3)
	expectError(t, createKeyed(t, env, alice, key, body), http.StatusConflict, "OUT_OF_STOCK")
	expectError(t, createKeyed(t, env, alice, key, map[string]any{"items": []item{{ps[0].ID, 1}}}), http.StatusConflict, "IDEMPOTENCY_KEY_REUSED")
	if got := userOrders(t, env, alice); len(got) != 0 {
		t.Fatalf("alice has orders: %+v", got)
	}
	// A new key is a new attempt.
	if resp := createKeyed(t, env, alice, "refused-"+randText(16), body); resp.Status != http.StatusCreated {
		t.Fatalf("under a new key: %d %s", resp.Status, resp.Body)
	}
}

func setStock(t *testing.T, env *testenv.Env, productID, stock int64) {
	t.Helper()
	if _, err := env.Store.UpdateProduct(context.Background(), productID, store.ProductUpdate{Stock: &stock}); err != nil {
		t.Fatal(err)
	}
}

// A malformed Idempotency-Key is refused before anything happens.
func TestMalformedIdempotencyKeyIsRefused(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 3})
	_, alice := env.UserToken("openid-alice")
	body := map[string]any{"items": []item{{ps[0].ID, 1}}}
	dbBefore := dbSnapshot(t, env)
	for name, key := range map[string][]string{
		"empty":       {""},
		"too short":   {"abc1234"},
		"too long":    {strings.Repeat("k", 65)},
		"a space":     {"attempt 12345"},
		"not ASCII":   {"订单-12345678"},
		"a slash":     {"attempt/12345"},
		"given twice": {"attempt-12345678", "attempt-87654321"},
		"punctuation": {"attempt!12345"},
	} {
		t.Run(name, func(t *testing.T) {
			expectError(t, doWithHeaders(t, env, http.MethodPost, "/v1/orders", alice, body, map[string][]string{"Idempotency-Key": key}),
				http.StatusBadRequest, "INVALID_ARGUMENT")
		})
	}
	if after := dbSnapshot(t, env); after != dbBefore {
		t.Errorf("the database changed:\nbefore %s\nafter  %s", dbBefore, after)
	}
	if ids := env.Workflows(""); len(ids) != 0 {
		t.Errorf("workflows started: %v", ids)
	}
}
