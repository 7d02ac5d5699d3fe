package api_test

// Limits: WeChat's on text (bytes, not characters), Temporal's on one
// workflow's updates and signals, and the API's own rate limits.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"ordersaga/internal/app"
	"ordersaga/internal/ratelimit"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// A product named with 60 Chinese characters (180 bytes; WeChat takes 127
// of description) is paid, and refunded with a reason of 40 Chinese
// characters (120 bytes; WeChat takes 80): the description and the reason
// are cut on a character boundary, and the simulator, which refuses what
// WeChat refuses, takes them.
func TestChineseNamesAndReasonsArePaidAndRefunded(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	admin := env.Config.AdminToken
	name := strings.Repeat("景德镇手绘青花瓷茶杯", 6) // 60 characters
	resp := env.Do(http.MethodPost, "/v1/admin/products", admin, map[string]any{"name": name, "price_fen": 6800, "stock": 5})
	if resp.Status != http.StatusCreated {
		t.Fatalf("create product: %d %s", resp.Status, resp.Body)
	}
	var product struct {
		ID int64 `json:"id"`
	}
	resp.JSON(t, &product)
	_, token := env.UserToken("openid-alice")

	for _, by := range []string{"user", "admin"} {
		t.Run("refunded by "+by, func(t *testing.T) {
			o, _ := placePaid(t, env, token, item{product.ID, 1})
			v, _ := env.Sim.Transaction(o.OrderNo)
			if len(v.Description) > 127 || !utf8.ValidString(v.Description) || !strings.HasPrefix(name, strings.TrimSuffix(v.Description, "…")) {
				t.Fatalf("description at WeChat %q (%d bytes)", v.Description, len(v.Description))
			}
			reason := strings.Repeat("收到的茶杯有裂纹，", 5)[:40*3] // 40 characters
			path, tok := "/v1/orders/"+o.OrderNo+"/refund", token
			if by == "admin" {
				path, tok = "/v1/admin/orders/"+o.OrderNo+"/refund", admin
			}
			if resp := env.Do(http.MethodPost, path, tok, map[string]string{"reason": reason}); resp.Status != http.StatusOK {
				t.Fatalf("refund: %d %s", resp.Status, resp.Body)
			}
			waitStatus(t, env, o.OrderNo, status.Refunded)
			v, _ = env.Sim.Transaction(o.OrderNo)
			if len(v.Refunds) != 1 || len(v.Refunds[0].Reason) > 80 || !utf8.ValidString(v.Refunds[0].Reason) ||
				!strings.HasPrefix(reason, strings.TrimSuffix(v.Refunds[0].Reason, "…")) {
				t.Fatalf("refunds at WeChat %+v", v.Refunds)
			}
			refunds, err := env.Store.ListRefunds(context.Background(), o.OrderNo)
			if err != nil || len(refunds) != 1 || refunds[0].Reason != reason {
				t.Fatalf("refund rows %+v %v: want the whole reason kept", refunds, err)
			}
		})
	}
}

// A client hammering one order — pays by the hundred, WeChat's notify
// replayed under fresh signatures — cannot wedge it: repeated pays write
// nothing to the order's workflow (the validator refuses them, the query
// answers), the signals Temporal refuses for its limit are answered 500 so
// WeChat retries, and the shop still ships and refunds the order through
// the API. The test server's limits are testMaxTotalUpdates and
// testMaxSignals.
func TestNoClientCanWedgeAnOrder(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	admin := env.Config.AdminToken
	o := place(t, env, token, item{ps[0].ID, 1})
	wf := workflows.WorkflowID(o.OrderNo)
	historyOnFailure(t, env, wf)
	first := pay(t, env, token, o.OrderNo)
	settle(t, env, wf)
	before := historyLength(t, env, wf)

	// More pays than the workflow could take as updates, eight at a time.
	const pays = 3 * testMaxTotalUpdates
	answers := make([]testenv.Response, pays)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				answers[i] = env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/pay", token, nil)
			}
		})
	}
	for i := range pays {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, a := range answers {
		var p payParams
		a.JSON(t, &p)
		if a.Status != http.StatusOK || p != first {
			t.Fatalf("pay %d: %d %s; want 200 with the first prepay's parameters", i, a.Status, a.Body)
		}
	}
	settle(t, env, wf)
	if after := historyLength(t, env, wf); after != before {
		t.Fatalf("%d pays grew the history from %d to %d events", pays, before, after)
	}
	if n := updatesAccepted(t, env, wf, workflows.UpdatePay); n != 1 {
		t.Fatalf("pay updates accepted: %d, want 1 (the first)", n)
	}

	simPay(t, env, o.OrderNo)
	paid := waitStatus(t, env, o.OrderNo, status.Paid)

	// WeChat's notify of the payment, delivered again and again, each time
	// signed afresh (as WeChat's retries are): Temporal takes
	// testMaxSignals signals, then refuses; the API answers 500 so that
	// WeChat would retry, never 204 for a signal that was not taken.
	n := newNotifier(t, env)
	payload := payment(env.Config.WechatAppID, env.Config.PayMchID, o.OrderNo, paid.TransactionID, o.TotalFen)
	refused := 0
	for i := 0; i < testMaxSignals+10 && refused < 3; i++ {
		status, body := n.send(t, n.sign(t, n.envelope(t, "TRANSACTION.SUCCESS", "transaction", payload), time.Now(), nil))
		switch status {
		case http.StatusNoContent:
		case http.StatusInternalServerError:
			checkNotifyFailure(t, body)
			refused++
		default:
			t.Fatalf("notify %d: %d %s", i, status, body)
		}
	}
	if refused == 0 {
		t.Fatalf("Temporal took %d+ signals: the test server's limit (%d) is not in force", testMaxSignals+10, testMaxSignals)
	}
	expectMetrics(t, metricsText(t, env),
		`ordersaga_temporal_limit_refusals_total{limit="signals",operation="payment"}`,
		`ordersaga_wechatpay_notifies_total{event="TRANSACTION.SUCCESS",outcome="failed_limit"}`)
	if got := paymentRows(t, env, o.OrderNo); got != 1 {
		t.Fatalf("payment rows %d, want 1", got)
	}

	// The shop ships and refunds it all the same.
	if resp := env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/ship", admin, map[string]string{"tracking_no": "SF1234567890"}); resp.Status != http.StatusOK {
		t.Fatalf("ship: %d %s", resp.Status, resp.Body)
	}
	// Shipping again (a double click, a script's retry) answers the order
	// and writes nothing: 2000 of them would otherwise leave the order
	// unable to take its refund.
	for range 20 {
		expectStatus(t, env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/ship", admin, map[string]string{"tracking_no": "SF1234567890"}), status.Shipped)
	}
	if n := updatesAccepted(t, env, wf, workflows.UpdateShip); n != 1 {
		t.Fatalf("ship updates accepted: %d, want 1", n)
	}
	if resp := env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/refund", admin, map[string]string{"reason": "damaged in transit"}); resp.Status != http.StatusOK {
		t.Fatalf("refund: %d %s", resp.Status, resp.Body)
	}
	// Asking again while it refunds answers the order and writes nothing.
	for range 20 {
		expectStatus(t, env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/refund", admin, nil), status.Refunding)
	}
	if n := updatesAccepted(t, env, wf, workflows.UpdateRequestRefund); n != 1 {
		t.Fatalf("refund updates accepted: %d, want 1", n)
	}
	// WeChat's refund notify is a signal too, refused like the others: the
	// workflow's own query of the refund settles it.
	waitStatus(t, env, o.OrderNo, status.Refunded)
	if v, _ := env.Sim.Transaction(o.OrderNo); v.RefundedFen != o.TotalFen {
		t.Fatalf("refunded %d fen at WeChat, want %d", v.RefundedFen, o.TotalFen)
	}
}

// Should Temporal refuse an update for the workflow's lifetime limit all the
// same, the API answers a stable code, counts it, and never says 500
// INTERNAL. Nothing the API offers takes an update on repeat, so the test
// spends the order's updates by sending the workflow its create update
// directly (each is taken and answered with the order).
func TestTemporalLimitOnUpdatesAnswersAStableCode(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	admin := env.Config.AdminToken
	o, wf := placePaid(t, env, token, item{ps[0].ID, 1})
	var err error
	for i := 0; i < testMaxTotalUpdates+5 && err == nil; i++ {
		var h client.WorkflowUpdateHandle
		h, err = env.Temporal.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{
			WorkflowID: wf, UpdateName: workflows.UpdateCreate, WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(context.Background(), nil)
		}
	}
	var fp *serviceerror.FailedPrecondition
	if !errors.As(err, &fp) {
		t.Fatalf("after %d+ updates: %v; want Temporal's refusal for its limit (%d)", testMaxTotalUpdates, err, testMaxTotalUpdates)
	}
	expectError(t, env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/ship", admin, nil), http.StatusServiceUnavailable, "ORDER_LIMIT_REACHED")
	// The user's confirm meets the same limit: the same code.
	expectError(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/confirm", token, nil), http.StatusServiceUnavailable, "ORDER_LIMIT_REACHED")
	metrics := metricsText(t, env)
	expectMetrics(t, metrics,
		`ordersaga_temporal_limit_refusals_total{limit="total_updates",operation="ship"}`,
		`ordersaga_temporal_limit_refusals_total{limit="total_updates",operation="confirm"}`)
	if strings.Contains(metrics, `status="500"`) {
		t.Errorf("a request was answered 500:\n%s", grepLines(metrics, `status="500"`))
	}
	if st := row(t, env, o.OrderNo).Status; st != status.Paid {
		t.Fatalf("order is %s, want PAID", st)
	}
}

// expectMetrics fails the test for each series metrics (the /metrics text)
// lacks.
func expectMetrics(t *testing.T, metrics string, series ...string) {
	t.Helper()
	for _, want := range series {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Each user's mutating requests and each address's logins are limited:
// past the burst, 429 RATE_LIMITED with Retry-After, before the handler
// runs. Reads are not limited, nor is another user; X-Forwarded-For names
// the client only when it comes from a trusted proxy.
func TestRateLimitsAnswer429WithRetryAfter(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 50})
	_, alice := env.UserToken("openid-alice")
	_, bob := env.UserToken("openid-bob")

	limited := func(t *testing.T, trusted []string) string {
		cfg := env.Config
		cfg.RateLimitUser = ratelimit.Rate{Requests: 3, Per: time.Hour}
		cfg.RateLimitLogin = ratelimit.Rate{Requests: 2, Per: time.Hour}
		cfg.TrustedProxies = trusted
		h, err := app.NewAPIHandler(cfg, env.Store, env.Temporal, prometheus.NewRegistry(), testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	do := func(t *testing.T, base, method, path, token, body string, header ...string) testenv.Response {
		t.Helper()
		return sendAt(t, base, method, path, token, strings.NewReader(body), header...)
	}
	tooMany := func(t *testing.T, resp testenv.Response) {
		t.Helper()
		expectError(t, resp, http.StatusTooManyRequests, "RATE_LIMITED")
		// 3 an hour: the next token in 20 minutes.
		if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" || len(ra) > 4 {
			t.Fatalf("Retry-After %q", ra)
		}
	}

	t.Run("user", func(t *testing.T) {
		base := limited(t, nil)
		orders := 0
		body := fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1}]}`, ps[0].ID)
		for i := range 3 {
			resp := do(t, base, http.MethodPost, "/v1/orders", alice, body)
			if resp.Status != http.StatusCreated {
				t.Fatalf("create %d: %d %s", i, resp.Status, resp.Body)
			}
			orders++
		}
		tooMany(t, do(t, base, http.MethodPost, "/v1/orders", alice, body))
		tooMany(t, do(t, base, http.MethodPost, "/v1/orders/20990101000000123456/pay", alice, ""))
		if resp := do(t, base, http.MethodGet, "/v1/orders", alice, ""); resp.Status != http.StatusOK {
			t.Fatalf("a read was limited: %d %s", resp.Status, resp.Body)
		}
		if resp := do(t, base, http.MethodPost, "/v1/orders", bob, body); resp.Status != http.StatusCreated {
			t.Fatalf("another user was limited: %d %s", resp.Status, resp.Body)
		}
		var list struct {
			Orders []orderBody `json:"orders"`
		}
		env.Do(http.MethodGet, "/v1/orders", alice, nil).JSON(t, &list)
		if len(list.Orders) != orders {
			t.Fatalf("alice has %d orders, want %d", len(list.Orders), orders)
		}
	})

	t.Run("login", func(t *testing.T) {
		base := limited(t, nil)
		for i := range 2 {
			if resp := do(t, base, http.MethodPost, "/v1/auth/login", "", fmt.Sprintf(`{"code":"code-%d"}`, i)); resp.Status != http.StatusOK {
				t.Fatalf("login %d: %d %s", i, resp.Status, resp.Body)
			}
		}
		tooMany(t, do(t, base, http.MethodPost, "/v1/auth/login", "", `{"code":"code-3"}`))
		// Naming another address does not help: no proxy is trusted.
		tooMany(t, do(t, base, http.MethodPost, "/v1/auth/login", "", `{"code":"code-4"}`, "X-Forwarded-For", "203.0.113.9"))
	})

	t.Run("login behind a trusted proxy", func(t *testing.T) {
		base := limited(t, []string{"127.0.0.1", "::1"})
		for i := range 2 {
			if resp := do(t, base, http.MethodPost, "/v1/auth/login", "", fmt.Sprintf(`{"code":"p-%d"}`, i), "X-Forwarded-For", "203.0.113.9"); resp.Status != http.StatusOK {
				t.Fatalf("login %d: %d %s", i, resp.Status, resp.Body)
			}
		}
		tooMany(t, do(t, base, http.MethodPost, "/v1/auth/login", "", `{"code":"p-3"}`, "X-Forwarded-For", "203.0.113.9"))
		// Another client behind the same proxy has its own bucket.
		if resp := do(t, base, http.MethodPost, "/v1/auth/login", "", `{"code":"p-4"}`, "X-Forwarded-For", "198.51.100.7"); resp.Status != http.StatusOK {
			t.Fatalf("another client behind the proxy: %d %s", resp.Status, resp.Body)
		}
	})
}
