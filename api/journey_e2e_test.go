package api_test

// The order saga end to end: the API over HTTP, the embedded Temporal server,
// the worker, PostgreSQL and the WeChat Pay simulator. A failing journey logs
// the order's workflow history.

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// historyOnFailure logs the workflow's history if the test fails.
func historyOnFailure(t *testing.T, env *testenv.Env, workflowID string) {
	t.Cleanup(func() {
		if t.Failed() {
			dumpHistory(t, env, workflowID)
		}
	})
}

func login(t *testing.T, env *testenv.Env, code string) string {
	t.Helper()
	resp := env.Do(http.MethodPost, "/v1/auth/login", "", map[string]string{"code": code})
	if resp.Status != http.StatusOK {
		t.Fatalf("login: %d %s", resp.Status, resp.Body)
	}
	var out struct {
		Token string `json:"token"`
	}
	resp.JSON(t, &out)
	return out.Token
}

func getOrder(t *testing.T, env *testenv.Env, token, path string) orderView {
	t.Helper()
	resp := env.Do(http.MethodGet, path, token, nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.Status, resp.Body)
	}
	var o orderView
	resp.JSON(t, &o)
	return o
}

func ledgerRows(t *testing.T, env *testenv.Env, orderNo, kind string) int {
	t.Helper()
	rows, err := env.Store.StockLedger(context.Background(), orderNo)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

func paymentRows(t *testing.T, env *testenv.Env, orderNo string) int {
	t.Helper()
	ps, err := env.Store.ListPayments(context.Background(), orderNo)
	if err != nil {
		t.Fatal(err)
	}
	return len(ps)
}

func expectError(t *testing.T, resp testenv.Response, status int, code string) {
	t.Helper()
	if resp.Status != status || resp.ErrorCode() != code {
		t.Fatalf("got %d %s; want %d %s", resp.Status, resp.Body, status, code)
	}
}

// expectStatus asserts a 200 answering the order in status want: asking an
// ended order for what it already did answers the order, not a refusal.
func expectStatus(t *testing.T, resp testenv.Response, want status.Order) {
	t.Helper()
	var o orderView
	resp.JSON(t, &o)
	if resp.Status != http.StatusOK || o.Status != string(want) {
		t.Fatalf("got %d %s; want 200 with status %s", resp.Status, resp.Body, want)
	}
}

// login → products → create → pay → the payer pays → WeChat's notify → PAID,
// stock deducted, the search attribute says PAID.
func TestJourneyFromLoginToPaidThroughTheNotify(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	token := login(t, env, "code-from-wx-login")

	var products struct {
		Products []struct {
			ID       int64  `json:"id"`
			Name     string `json:"name"`
			PriceFen int64  `json:"price_fen"`
			Stock    int64  `json:"stock"`
		} `json:"products"`
	}
	env.Do(http.MethodGet, "/v1/products", "", nil).JSON(t, &products)
	if len(products.Products) != 1 || products.Products[0].ID != ps[0].ID || products.Products[0].Stock != 5 {
		t.Fatalf("products: %+v", products)
	}

	o := place(t, env, token, item{ps[0].ID, 2})
	wf := workflows.WorkflowID(o.OrderNo)
	historyOnFailure(t, env, wf)
	if o.Status != "PENDING" || o.TotalFen != 2560 {
		t.Fatalf("created: %+v", o)
	}
	desc, err := env.Temporal.DescribeWorkflowExecution(context.Background(), wf, "")
	if err != nil {
		t.Fatal(err)
	}
	var summary string
	if p := desc.GetExecutionConfig().GetUserMetadata().GetSummary(); p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &summary)
	}
	if want := "Order " + o.OrderNo + " · ¥25.60 · 2 items"; summary != want {
		t.Errorf("static summary %q, want %q", summary, want)
	}

	params := pay(t, env, token, o.OrderNo)
	tx, ok := env.Sim.Transaction(o.OrderNo)
	if !ok || params.Package != "prepay_id="+tx.PrepayID || tx.TotalFen != 2560 || tx.TradeState != "NOTPAY" {
		t.Fatalf("prepay at WeChat: %+v (params %+v)", tx, params)
	}
	simPay(t, env, o.OrderNo)

	paid := waitStatus(t, env, o.OrderNo, status.Paid)
	got := getOrder(t, env, token, "/v1/orders/"+o.OrderNo)
	if got.Status != "PAID" || got.PaidAt == nil {
		t.Fatalf("GET after payment: %+v", got)
	}
	waitStock(t, env, ps[0].ID, 3)
	if paid.TransactionID == "" || paymentRows(t, env, o.OrderNo) != 1 || ledgerRows(t, env, o.OrderNo, store.LedgerDeduct) != 1 {
		t.Errorf("transaction %q, payments %d, ledger deductions %d", paid.TransactionID, paymentRows(t, env, o.OrderNo), ledgerRows(t, env, o.OrderNo, store.LedgerDeduct))
	}
	testenv.Eventually(t, 30*time.Second, "search attribute PAID", func() (bool, string) {
		ids := env.Workflows(fmt.Sprintf(`OrderStatus="PAID" AND OrderNo=%q`, o.OrderNo))
		return len(ids) == 1 && ids[0] == wf, fmt.Sprint(ids)
	})
	// It was the notify (WeChat's callback, answered 204) that paid it.
	notifies := simNotifies(t, env, o.OrderNo)
	if len(notifies) != 1 || notifies[0].State != "delivered" || attemptStatuses(notifies[0])[0] != http.StatusNoContent {
		t.Errorf("notifies: %+v", notifies)
	}
	if n := signals(t, env, wf, workflows.SignalPayment); n != 1 {
		t.Errorf("payment signals: %d, want 1", n)
	}
	// Once paid, it cannot be paid or cancelled.
	expectError(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/pay", token, nil), http.StatusConflict, "ORDER_NOT_PAYABLE")
	expectError(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/cancel", token, nil), http.StatusConflict, "ORDER_NOT_CANCELLABLE")
	metrics := string(env.Do(http.MethodGet, "/metrics", "", nil).Body)
	for _, line := range []string{
		`ordersaga_wechatpay_notifies_total{event="TRANSACTION.SUCCESS",outcome="accepted"} 1`,
		// The worker's side: WeChat calls by outcome, the workflow's own
		// counters, the Temporal SDK's metrics (one registry in this env, as in dev).
		`ordersaga_wechatpay_calls_total{op="prepay",outcome="ok"} 1`,
		`temporal_workflow_task_execution_latency_seconds_count`,
		`temporal_activity_execution_latency_seconds_count`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	// The SDK adds namespace, task queue and workflow type to the labels.
	paidOnce := regexp.MustCompile(`(?m)^ordersaga_order_transitions_total\{[^}]*from="PENDING",[^}]*to="PAID",[^}]*workflow_type="OrderWorkflow"[^}]*\} 1$`)
	if !paidOnce.MatchString(metrics) {
		t.Errorf("/metrics does not count one PENDING→PAID transition:\n%s", grepLines(metrics, "ordersaga_order_transitions_total"))
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A double tap on "pay" makes one prepay: both answers carry the same package.
func TestDoubleClickOnPayGivesTheSamePrepay(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	historyOnFailure(t, env, workflows.WorkflowID(o.OrderNo))

	var wg sync.WaitGroup
	answers := make([]testenv.Response, 2)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/pay", token, nil)
		}()
	}
	wg.Wait()
	var p [2]payParams
	for i, a := range answers {
		if a.Status != http.StatusOK {
			t.Fatalf("pay %d: %d %s", i, a.Status, a.Body)
		}
		a.JSON(t, &p[i])
	}
	if p[0].Package == "" || p[0].Package != p[1].Package {
		t.Fatalf("two taps, two prepays: %q and %q", p[0].Package, p[1].Package)
	}
	if again := pay(t, env, token, o.OrderNo); again.Package != p[0].Package {
		t.Fatalf("a third tap: %q, want %q", again.Package, p[0].Package)
	}
	if tx, _ := env.Sim.Transaction(o.OrderNo); "prepay_id="+tx.PrepayID != p[0].Package {
		t.Fatalf("WeChat's prepay %q, answered %q", tx.PrepayID, p[0].Package)
	}
}

// The notify is lost: the mini-program's polling with ?sync=1 asks WeChat and
// the order becomes PAID all the same.
func TestLostNotifyIsSettledBySync(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	wf := workflows.WorkflowID(o.OrderNo)
	historyOnFailure(t, env, wf)
	pay(t, env, token, o.OrderNo)

	before := getOrder(t, env, token, "/v1/orders/"+o.OrderNo+"?sync=1")
	if before.Status != "PENDING" || before.WechatSynced == nil || *before.WechatSynced {
		t.Fatalf("before paying, sync=1: %+v", before)
	}
	if plain := getOrder(t, env, token, "/v1/orders/"+o.OrderNo); plain.WechatSynced != nil {
		t.Errorf("wechat_synced without sync=1: %v", *plain.WechatSynced)
	}

	if _, err := env.Sim.ApplyFaults(paysim.Faults{Notify: &paysim.NotifyFaults{Drop: 1}}); err != nil {
		t.Fatal(err)
	}
	simPay(t, env, o.OrderNo)
	// The mini-program polls right after wx.requestPayment.
	var got orderView
	testenv.Eventually(t, 60*time.Second, "sync=1 says PAID", func() (bool, string) {
		got = getOrder(t, env, token, "/v1/orders/"+o.OrderNo+"?sync=1")
		return got.Status == "PAID" && got.WechatSynced != nil && *got.WechatSynced, fmt.Sprintf("%s %v", got.Status, got.WechatSynced)
	})
	waitStock(t, env, ps[0].ID, 4)
	if n := simNotifies(t, env, o.OrderNo); len(n) != 1 || n[0].State != "dropped" {
		t.Errorf("the notify was not lost: %+v", n)
	}
	if n := signals(t, env, wf, workflows.SignalPayment); n != 0 {
		t.Errorf("payment signals: %d, want 0 (the query paid it)", n)
	}
	// Paid: synced without asking WeChat again.
	if again := getOrder(t, env, token, "/v1/orders/"+o.OrderNo+"?sync=1"); again.WechatSynced == nil || !*again.WechatSynced {
		t.Errorf("sync=1 on a PAID order: %+v", again)
	}
}

// WeChat sends every notify twice, and the second order's first: each order
// is PAID once and its stock deducted once.
func TestDuplicateAndReorderedNotifiesPayOnce(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 10})
	_, token := env.UserToken("openid-alice")
	a := place(t, env, token, item{ps[0].ID, 1})
	b := place(t, env, token, item{ps[0].ID, 2})
	historyOnFailure(t, env, workflows.WorkflowID(a.OrderNo))
	historyOnFailure(t, env, workflows.WorkflowID(b.OrderNo))
	pay(t, env, token, a.OrderNo)
	pay(t, env, token, b.OrderNo)

	if _, err := env.Sim.ApplyFaults(paysim.Faults{Notify: &paysim.NotifyFaults{Duplicate: 2, Reorder: true, ReorderHoldMS: 10000}}); err != nil {
		t.Fatal(err)
	}
	simPay(t, env, a.OrderNo) // held until b's exists
	simPay(t, env, b.OrderNo) // sent first, then a's
	waitStatus(t, env, a.OrderNo, status.Paid)
	waitStatus(t, env, b.OrderNo, status.Paid)
	testenv.Eventually(t, 30*time.Second, "both notifies delivered twice", func() (bool, string) {
		var states []string
		done := true
		for _, no := range []string{a.OrderNo, b.OrderNo} {
			ns := simNotifies(t, env, no)
			if len(ns) != 1 || ns[0].State != "delivered" || len(ns[0].Attempts) < 2 {
				done = false
			}
			states = append(states, fmt.Sprintf("%+v", ns))
		}
		return done, strings.Join(states, " | ")
	})
	aFirst := simNotifies(t, env, a.OrderNo)[0].Attempts[0].At
	bFirst := simNotifies(t, env, b.OrderNo)[0].Attempts[0].At
	if aFirst.Before(bFirst) {
		t.Errorf("not reordered: a's first attempt %v, b's %v", aFirst, bFirst)
	}
	waitStock(t, env, ps[0].ID, 7)
	for _, no := range []string{a.OrderNo, b.OrderNo} {
		wf := workflows.WorkflowID(no)
		testenv.Eventually(t, 30*time.Second, "both deliveries signalled", func() (bool, string) {
			n := signals(t, env, wf, workflows.SignalPayment)
			return n == 2, fmt.Sprint(n)
		})
		settle(t, env, wf) // the repeat has been handled
		if p, l := paymentRows(t, env, no), ledgerRows(t, env, no, store.LedgerDeduct); p != 1 || l != 1 {
			t.Errorf("order %s: %d payments, %d deductions; want 1 and 1", no, p, l)
		}
	}
	if s := stock(t, env, ps[0].ID); s != 7 {
		t.Errorf("stock = %d after the repeats, want 7", s)
	}
}

// Nobody pays: at the deadline the order is closed here and at WeChat, and
// WeChat then refuses the payer.
func TestUnpaidOrderExpiresAndWeChatRefusesALatePayment(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{PayTimeout: 8 * time.Second})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	historyOnFailure(t, env, workflows.WorkflowID(o.OrderNo))
	pay(t, env, token, o.OrderNo)

	closed := waitStatus(t, env, o.OrderNo, status.Closed)
	if closed.ClosedAt == nil {
		t.Errorf("closed_at not set")
	}
	if tx, _ := env.Sim.Transaction(o.OrderNo); tx.TradeState != "CLOSED" {
		t.Errorf("at WeChat: %s, want CLOSED", tx.TradeState)
	}
	if _, err := env.Sim.Pay(o.OrderNo); err == nil {
		t.Errorf("the simulator let the payer pay a closed order")
	}
	expectError(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/pay", token, nil), http.StatusConflict, "ORDER_NOT_PAYABLE")
	if st := waitWorkflowClosed(t, env, workflows.WorkflowID(o.OrderNo)); st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("workflow %v", st)
	}
	// The workflow has ended, so nothing can move the stock any more: it is
	// as seeded, and no deduction was ever written.
	if s, l := stock(t, env, ps[0].ID), ledgerRows(t, env, o.OrderNo, store.LedgerDeduct); s != 5 || l != 0 {
		t.Errorf("an order nobody paid: stock %d, deductions %d; want 5 and 0", s, l)
	}
}

// The user cancels: closed at WeChat and here; then nothing more can happen
// to the order. A payment that landed a moment before the cancel makes it
// PAID instead.
func TestCancel(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")

	t.Run("a PENDING order is closed at WeChat and here", func(t *testing.T) {
		o := place(t, env, token, item{ps[0].ID, 1})
		wf := workflows.WorkflowID(o.OrderNo)
		historyOnFailure(t, env, wf)
		pay(t, env, token, o.OrderNo)
		resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/cancel", token, nil)
		var got orderView
		resp.JSON(t, &got)
		if resp.Status != http.StatusOK || got.Status != "CLOSED" {
			t.Fatalf("cancel: %d %s", resp.Status, resp.Body)
		}
		if r := row(t, env, o.OrderNo); r.Status != status.Closed || r.ClosedAt == nil {
			t.Errorf("row: %s", r.Status)
		}
		if tx, _ := env.Sim.Transaction(o.OrderNo); tx.TradeState != "CLOSED" {
			t.Errorf("at WeChat: %s, want CLOSED", tx.TradeState)
		}
		waitWorkflowClosed(t, env, wf)
		expectError(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/pay", token, nil), http.StatusConflict, "ORDER_NOT_PAYABLE")
		expectStatus(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/cancel", token, nil), status.Closed)
		expectError(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/refund", token, nil), http.StatusConflict, "ORDER_NOT_REFUNDABLE")
	})
	t.Run("an order never sent to WeChat closes at once", func(t *testing.T) {
		o := place(t, env, token, item{ps[0].ID, 1})
		historyOnFailure(t, env, workflows.WorkflowID(o.OrderNo))
		resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/cancel", token, nil)
		var got orderView
		resp.JSON(t, &got)
		if resp.Status != http.StatusOK || got.Status != "CLOSED" {
			t.Fatalf("cancel: %d %s", resp.Status, resp.Body)
		}
	})
	t.Run("paid a moment before the cancel: PAID", func(t *testing.T) {
		o := place(t, env, token, item{ps[0].ID, 1})
		historyOnFailure(t, env, workflows.WorkflowID(o.OrderNo))
		pay(t, env, token, o.OrderNo)
		if _, err := env.Sim.PayOnClose(o.OrderNo); err != nil {
			t.Fatal(err)
		}
		resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/cancel", token, nil)
		var got orderView
		resp.JSON(t, &got)
		if resp.Status != http.StatusOK || got.Status != "PAID" {
			t.Fatalf("cancel of an order paid a moment before: %d %s", resp.Status, resp.Body)
		}
		waitStatus(t, env, o.OrderNo, status.Paid)
	})
	waitStock(t, env, ps[0].ID, 4)
}

// The user asks for a refund before shipping: REFUNDED at WeChat and here,
// and the stock is back on the shelf, once.
func TestRefundRestoresStock(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o, wf := placePaid(t, env, token, item{ps[0].ID, 2})
	waitStock(t, env, ps[0].ID, 3)

	resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/refund", token, map[string]string{"reason": "changed my mind"})
	var got orderView
	resp.JSON(t, &got)
	if resp.Status != http.StatusOK || (got.Status != "REFUNDING" && got.Status != "REFUNDED") {
		t.Fatalf("refund: %d %s", resp.Status, resp.Body)
	}
	waitStatus(t, env, o.OrderNo, status.Refunded)
	waitStock(t, env, ps[0].ID, 5)
	if l := ledgerRows(t, env, o.OrderNo, store.LedgerRestore); l != 1 {
		t.Errorf("restore rows: %d, want 1", l)
	}
	r, ok := env.Sim.Refund(workflows.OrderRefundNo(o.OrderNo, 1))
	if !ok || r.Status != "SUCCESS" || r.RefundFen != o.TotalFen {
		t.Errorf("refund at WeChat: %+v", r)
	}
	waitWorkflowClosed(t, env, wf)
	expectStatus(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/refund", token, nil), status.Refunded)
	expectError(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/confirm", token, nil), http.StatusConflict, "ORDER_NOT_CONFIRMABLE")
	waitStock(t, env, ps[0].ID, 5)
}

// Two orders for the last unit, both paid: one keeps it, the other is
// refunded by itself, and stock never goes below zero.
func TestOversoldOrderIsRefundedAutomatically(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Last teapot", PriceFen: 9900, Stock: 1})
	_, alice := env.UserToken("openid-alice")
	_, bob := env.UserToken("openid-bob")
	a := place(t, env, alice, item{ps[0].ID, 1})
	b := place(t, env, bob, item{ps[0].ID, 1})
	historyOnFailure(t, env, workflows.WorkflowID(b.OrderNo))
	pay(t, env, alice, a.OrderNo)
	pay(t, env, bob, b.OrderNo)

	simPay(t, env, a.OrderNo)
	waitStatus(t, env, a.OrderNo, status.Paid)
	simPay(t, env, b.OrderNo)
	waitStatus(t, env, b.OrderNo, status.Refunded)

	waitStock(t, env, ps[0].ID, 0)
	if l := ledgerRows(t, env, b.OrderNo, store.LedgerDeduct); l != 0 {
		t.Errorf("the oversold order deducted stock: %d rows", l)
	}
	tx, _ := env.Sim.Transaction(b.OrderNo)
	if tx.RefundedFen != b.TotalFen {
		t.Errorf("WeChat refunded %d of %d", tx.RefundedFen, b.TotalFen)
	}
	if got := getOrder(t, env, bob, "/v1/orders/"+b.OrderNo); got.Status != "REFUNDED" {
		t.Errorf("bob sees %s", got.Status)
	}
}

// WeChat took money for an order that ended before the notify came (its
// query said ORDER_NOT_EXIST while closing, the notify was held up): the API
// starts the stray payment workflow, which returns the money.
func TestPaymentForAnEndedOrderIsReturnedByTheStrayWorkflow(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	front := newCallbackFront(t, env)
	front.Set(closedFront) // the notifies do not get through for now
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	wf := workflows.WorkflowID(o.OrderNo)
	historyOnFailure(t, env, wf)
	pay(t, env, token, o.OrderNo)

	if _, err := env.Sim.ApplyFaults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{
		"query": {Status: http.StatusNotFound, Code: "ORDER_NOT_EXIST", Count: 2},
	}}); err != nil {
		t.Fatal(err)
	}
	paidTx := simPay(t, env, o.OrderNo)
	resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/cancel", token, nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("cancel: %d %s", resp.Status, resp.Body)
	}
	waitStatus(t, env, o.OrderNo, status.Closed)
	waitWorkflowClosed(t, env, wf)

	// Now WeChat's retry gets through.
	target := newRevProxy(env.URL)
	front.Set(target)
	stray := workflows.StrayPaymentWorkflowID(paidTx.TransactionID)
	historyOnFailure(t, env, stray)
	testenv.Eventually(t, 60*time.Second, "the stray payment workflow returned the money", func() (bool, string) {
		v, err := env.Temporal.QueryWorkflow(context.Background(), stray, "", workflows.QueryState)
		if err != nil {
			return false, err.Error()
		}
		var view workflows.StrayPaymentView
		if err := v.Get(&view); err != nil {
			return false, err.Error()
		}
		return view.Status == workflows.StrayRefunded, view.Status
	})
	desc, err := env.Temporal.DescribeWorkflowExecution(context.Background(), stray, "")
	if err != nil {
		t.Fatal(err)
	}
	if desc.GetWorkflowExecutionInfo().GetParentExecution() != nil {
		t.Errorf("the stray workflow was started by the order, not by the notify endpoint")
	}
	testenv.Eventually(t, 30*time.Second, "the stray workflow is listed next to the order", func() (bool, string) {
		ids := env.Workflows(fmt.Sprintf("OrderNo=%q", o.OrderNo))
		return len(ids) == 2, fmt.Sprint(ids)
	})
	r, ok := env.Sim.Refund(workflows.StrayRefundNo(paidTx.TransactionID))
	if !ok || r.Status != "SUCCESS" || r.RefundFen != o.TotalFen {
		t.Errorf("refund at WeChat: %+v", r)
	}
	if st := row(t, env, o.OrderNo).Status; st != status.Closed {
		t.Errorf("order is %s, want CLOSED", st)
	}
	// The order's workflow ended before the money came: the stock is as
	// seeded and was never deducted.
	if s, l := stock(t, env, ps[0].ID), ledgerRows(t, env, o.OrderNo, store.LedgerDeduct); s != 5 || l != 0 {
		t.Errorf("stock %d, deductions %d; want 5 and 0", s, l)
	}
	// WeChat's later repeats of the notify start nothing new.
	n := newNotifier(t, env)
	status, body := n.send(t, n.sign(t, n.envelope(t, "TRANSACTION.SUCCESS", "transaction",
		payment(env.Config.WechatAppID, env.Config.PayMchID, o.OrderNo, paidTx.TransactionID, o.TotalFen)), time.Now(), nil))
	if status != http.StatusNoContent {
		t.Errorf("repeated notify: %d %s", status, body)
	}
	if ids := env.Workflows(fmt.Sprintf("OrderNo=%q", o.OrderNo)); len(ids) != 2 {
		t.Errorf("workflows of the order: %v", ids)
	}
}

// Temporal is unreachable when WeChat's notify arrives: the API answers 500,
// WeChat retries, and once Temporal is back the retry makes the order PAID.
func TestNotifyDuringATemporalOutageIsRetriedUntilPaid(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{NotifyScale: 0.05})
	front := newCallbackFront(t, env)
	proxy := newTCPProxy(t, temporalServer.FrontendAddress())
	h, err := newAPIThrough(t, env, proxy.addr)
	if err != nil {
		t.Fatal(err)
	}
	front.Set(h)
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	wf := workflows.WorkflowID(o.OrderNo)
	historyOnFailure(t, env, wf)
	// Pay through the API under test: its Temporal connection is up and in use.
	if r := doAt(t, front.URL, http.MethodPost, "/v1/orders/"+o.OrderNo+"/pay", token); r.Status != http.StatusOK {
		t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	if r := doAt(t, front.URL, http.MethodGet, "/readyz", ""); r.Status != http.StatusOK {
		t.Fatalf("readyz before the outage: %d %s", r.Status, r.Body)
	}

	proxy.stop() // Temporal goes away
	if r := doAt(t, front.URL, http.MethodGet, "/readyz", ""); r.Status != http.StatusServiceUnavailable {
		t.Errorf("readyz during the outage: %d %s", r.Status, r.Body)
	}
	simPay(t, env, o.OrderNo)
	testenv.Eventually(t, 60*time.Second, "the notify was answered 5xx", func() (bool, string) {
		ns := simNotifies(t, env, o.OrderNo)
		if len(ns) == 1 && len(ns[0].Attempts) >= 2 {
			return true, ""
		}
		return false, fmt.Sprintf("%+v", ns)
	})
	for _, a := range simNotifies(t, env, o.OrderNo)[0].Attempts {
		if a.Status < 500 {
			t.Fatalf("an attempt while Temporal was away was answered %d (%s)", a.Status, a.Error)
		}
	}
	if st := row(t, env, o.OrderNo).Status; st != status.Pending {
		t.Fatalf("order is %s while Temporal was away", st)
	}
	if n := signals(t, env, wf, workflows.SignalPayment); n != 0 {
		t.Fatalf("payment signals while Temporal was away: %d", n)
	}

	proxy.start(t) // Temporal is back
	waitStatus(t, env, o.OrderNo, status.Paid)
	ns := simNotifies(t, env, o.OrderNo)
	if ns[0].State != "delivered" {
		t.Errorf("notify %s: %v", ns[0].State, attemptStatuses(ns[0]))
	}
	if n := signals(t, env, wf, workflows.SignalPayment); n != 1 {
		t.Errorf("payment signals: %d, want 1", n)
	}
	waitStock(t, env, ps[0].ID, 4)
	t.Logf("notify attempts: %v", attemptStatuses(ns[0]))
	metrics := doAt(t, front.URL, http.MethodGet, "/metrics", "").Body
	for _, want := range []string{
		`ordersaga_wechatpay_notifies_total{event="TRANSACTION.SUCCESS",outcome="failed_temporal"}`,
		`ordersaga_wechatpay_notifies_total{event="TRANSACTION.SUCCESS",outcome="accepted"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A genuine notify replayed by someone who captured it is refused, and
// changes nothing, however its headers are respelt: the SDK verifies a
// timestamp with a sign or leading zeros and a signature with other base64
// pad bits, so each spelling is refused as not canonical, or (white space,
// which HTTP drops) recognised as the copy it is. The genuine one was taken
// once.
func TestReplayedNotifyIsRefusedHoweverItIsSpelt(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	front := newCallbackFront(t, env)
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	_, wf := placePaid(t, env, token, item{ps[0].ID, 1})
	settle(t, env, wf)
	captured := front.Captured()
	if len(captured) != 1 {
		t.Fatalf("captured %d callbacks, want 1", len(captured))
	}
	genuine := captured[0]
	respelt := func(header, value string) callback {
		h := maps.Clone(genuine.headers)
		h[header] = value
		return callback{body: genuine.body, headers: h}
	}
	ts, sig := genuine.headers["Wechatpay-Timestamp"], genuine.headers["Wechatpay-Signature"]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	if !strings.HasSuffix(sig, "==") {
		t.Fatalf("signature %q is not the 256-byte one this test expects", sig)
	}
	// The character before "==" holds 2 bits of the last byte and 4 pad bits.
	padBits := sig[:len(sig)-3] + string(alphabet[strings.IndexByte(alphabet, sig[len(sig)-3])^1]) + "=="

	tests := []struct {
		name string
		cb   callback
	}{
		{"an exact copy", genuine},
		{"timestamp with a plus sign", respelt("Wechatpay-Timestamp", "+"+ts)},
		{"timestamp with a leading zero", respelt("Wechatpay-Timestamp", "0"+ts)},
		{"timestamp with three leading zeros", respelt("Wechatpay-Timestamp", "000"+ts)},
		{"signature with other base64 pad bits", respelt("Wechatpay-Signature", padBits)},
		{"signature without its padding", respelt("Wechatpay-Signature", strings.TrimRight(sig, "="))},
		{"signature in the URL-safe alphabet", respelt("Wechatpay-Signature", strings.NewReplacer("+", "-", "/", "_").Replace(sig))},
		{"signature between spaces", respelt("Wechatpay-Signature", "  "+sig+" ")},
		{"timestamp after a tab", respelt("Wechatpay-Timestamp", "\t"+ts)},
		{"nonce before a space", respelt("Wechatpay-Nonce", genuine.headers["Wechatpay-Nonce"]+" ")},
	}
	dbBefore, tBefore := dbSnapshot(t, env), temporalSnapshot(t, env, wf)
	n := newNotifier(t, env)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := n.send(t, tt.cb)
			if status != http.StatusUnauthorized {
				t.Fatalf("replay: %d %s, want 401", status, body)
			}
			checkNotifyFailure(t, body)
		})
	}
	if after := dbSnapshot(t, env); after != dbBefore {
		t.Errorf("the database changed")
	}
	if after := temporalSnapshot(t, env, wf); after != tBefore {
		t.Errorf("Temporal changed: %s → %s", tBefore, after)
	}
	if got := signals(t, env, wf, workflows.SignalPayment); got != 1 {
		t.Errorf("payment signals: %d, want 1 (the genuine delivery)", got)
	}
}

// The sim retries a notify that an API refused while tampered with, and the
// genuine retry is taken: each tampered attempt is a 4xx that signals nothing.
func TestTamperedNotifiesAreRefusedAndTheGenuineRetryLands(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 10})
	_, token := env.UserToken("openid-alice")
	tests := []struct {
		tamper string
		status int
	}{
		{paysim.TamperFlipSignature, http.StatusUnauthorized},
		{paysim.TamperStaleTimestamp, http.StatusUnauthorized},
		{paysim.TamperWrongSerial, http.StatusUnauthorized},
		{paysim.TamperWrongKey, http.StatusUnauthorized},
		{paysim.TamperCorruptCiphertext, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.tamper, func(t *testing.T) {
			o := place(t, env, token, item{ps[0].ID, 1})
			wf := workflows.WorkflowID(o.OrderNo)
			historyOnFailure(t, env, wf)
			pay(t, env, token, o.OrderNo)
			if _, err := env.Sim.ApplyFaults(paysim.Faults{Notify: &paysim.NotifyFaults{Tamper: tt.tamper, TamperCount: 2}}); err != nil {
				t.Fatal(err)
			}
			simPay(t, env, o.OrderNo)
			waitStatus(t, env, o.OrderNo, status.Paid)
			ns := simNotifies(t, env, o.OrderNo)
			got := attemptStatuses(ns[0])
			if len(got) != 3 || got[0] != tt.status || got[1] != tt.status || got[2] != http.StatusNoContent {
				t.Fatalf("attempts %v, want %d %d 204", got, tt.status, tt.status)
			}
			if n := signals(t, env, wf, workflows.SignalPayment); n != 1 {
				t.Errorf("payment signals: %d, want 1 (the genuine attempt)", n)
			}
		})
	}
}

// The shop ships, the user confirms; what each may do at each step.
func TestAdminShipsAndTheUserConfirms(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	admin := env.Config.AdminToken
	o := place(t, env, token, item{ps[0].ID, 1})
	wf := workflows.WorkflowID(o.OrderNo)
	historyOnFailure(t, env, wf)
	expectError(t, env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/ship", admin, nil), http.StatusConflict, "ORDER_NOT_SHIPPABLE")
	expectError(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/confirm", token, nil), http.StatusConflict, "ORDER_NOT_CONFIRMABLE")
	pay(t, env, token, o.OrderNo)
	simPay(t, env, o.OrderNo)
	waitStatus(t, env, o.OrderNo, status.Paid)

	resp := env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/ship", admin, map[string]string{"tracking_no": "SF1234567890"})
	var shipped orderView
	resp.JSON(t, &shipped)
	if resp.Status != http.StatusOK || shipped.Status != "SHIPPED" || shipped.TrackingNo != "SF1234567890" || shipped.ShippedAt == nil {
		t.Fatalf("ship: %d %s", resp.Status, resp.Body)
	}
	expectError(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/refund", token, nil), http.StatusConflict, "ORDER_NOT_REFUNDABLE")

	var detail struct {
		Status   string   `json:"status"`
		UserID   int64    `json:"user_id"`
		Flags    []string `json:"flags"`
		Payments []struct {
			TransactionID string `json:"transaction_id"`
			AmountFen     int64  `json:"amount_fen"`
		} `json:"payments"`
		Refunds []any `json:"refunds"`
		State   *struct {
			Status      string `json:"status"`
			Transitions []any  `json:"transitions"`
		} `json:"state"`
	}
	resp = env.Do(http.MethodGet, "/v1/admin/orders/"+o.OrderNo, admin, nil)
	resp.JSON(t, &detail)
	if resp.Status != http.StatusOK || detail.Status != "SHIPPED" || len(detail.Payments) != 1 || detail.Payments[0].AmountFen != o.TotalFen ||
		detail.State == nil || detail.State.Status != "SHIPPED" || len(detail.State.Transitions) < 2 || detail.Flags == nil {
		t.Fatalf("admin view: %d %s", resp.Status, resp.Body)
	}

	resp = env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/confirm", token, nil)
	var done orderView
	resp.JSON(t, &done)
	if resp.Status != http.StatusOK || done.Status != "COMPLETED" || done.CompletedAt == nil {
		t.Fatalf("confirm: %d %s", resp.Status, resp.Body)
	}
	waitWorkflowClosed(t, env, wf)
	expectStatus(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/confirm", token, nil), status.Completed)
	expectError(t, env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/ship", admin, nil), http.StatusConflict, "ORDER_NOT_SHIPPABLE")
	expectError(t, env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/refund", admin, nil), http.StatusConflict, "ORDER_NOT_REFUNDABLE")
	// The admin view of an ended order still has the workflow's state.
	resp = env.Do(http.MethodGet, "/v1/admin/orders/"+o.OrderNo, admin, nil)
	resp.JSON(t, &detail)
	if detail.State == nil || detail.State.Status != "COMPLETED" {
		t.Errorf("admin view of a completed order: %s", resp.Body)
	}
}

// The shop refunds an order it has shipped; the goods are not back, so
// neither is the stock.
func TestAdminRefundsAShippedOrder(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	admin := env.Config.AdminToken
	o, wf := placePaid(t, env, token, item{ps[0].ID, 1})
	waitStock(t, env, ps[0].ID, 4) // 5 → 4: the payment deducted it
	if r := env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/ship", admin, nil); r.Status != http.StatusOK {
		t.Fatalf("ship: %d %s", r.Status, r.Body)
	}
	resp := env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/refund", admin, map[string]string{"reason": "parcel lost"})
	var got orderView
	resp.JSON(t, &got)
	if resp.Status != http.StatusOK || (got.Status != "REFUNDING" && got.Status != "REFUNDED") {
		t.Fatalf("admin refund: %d %s", resp.Status, resp.Body)
	}
	waitStatus(t, env, o.OrderNo, status.Refunded)
	// Once the workflow has ended nothing can restore the stock any more:
	// it stays as the payment left it, with no restore in the ledger.
	waitWorkflowClosed(t, env, wf)
	if s := stock(t, env, ps[0].ID); s != 4 {
		t.Errorf("stock %d after refunding a shipped order, want 4 (the goods are not back)", s)
	}
	if d, r := ledgerRows(t, env, o.OrderNo, store.LedgerDeduct), ledgerRows(t, env, o.OrderNo, store.LedgerRestore); d != 1 || r != 0 {
		t.Errorf("ledger: %d deductions, %d restores; want 1 and 0", d, r)
	}
	if r, ok := env.Sim.Refund(workflows.OrderRefundNo(o.OrderNo, 1)); !ok || r.Status != "SUCCESS" || r.RefundFen != o.TotalFen {
		t.Errorf("refund at WeChat: %+v", r)
	}
}

// Nobody confirms: the order completes by itself ORDER_AUTO_CONFIRM after
// shipping.
func TestShippedOrderCompletesByItself(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{AutoConfirm: 2 * time.Second})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o, _ := placePaid(t, env, token, item{ps[0].ID, 1})
	if r := env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/ship", env.Config.AdminToken, nil); r.Status != http.StatusOK {
		t.Fatalf("ship: %d %s", r.Status, r.Body)
	}
	waitStatus(t, env, o.OrderNo, status.Completed)
}

// Closing at WeChat takes longer than the cancel call waits (WeChat answers
// 500 until the fault is cleared): 202 with the order as it is, and the
// workflow finishes the cancel by itself.
func TestSlowCancelIsAcceptedAndFinishesByItself(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	historyOnFailure(t, env, workflows.WorkflowID(o.OrderNo))
	pay(t, env, token, o.OrderNo)
	if _, err := env.Sim.ApplyFaults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{
		"close": {Status: http.StatusInternalServerError, Count: -1},
	}}); err != nil {
		t.Fatal(err)
	}
	resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/cancel", token, nil)
	var got orderView
	resp.JSON(t, &got)
	if resp.Status != http.StatusAccepted || got.Status != "PENDING" {
		t.Fatalf("slow cancel: %d %s, want 202 with the order PENDING", resp.Status, resp.Body)
	}
	env.Sim.ClearFaults() // WeChat is back: the workflow's next retry closes it
	waitStatus(t, env, o.OrderNo, status.Closed)
	if tx, _ := env.Sim.Transaction(o.OrderNo); tx.TradeState != "CLOSED" {
		t.Errorf("at WeChat: %s, want CLOSED", tx.TradeState)
	}
}

// What the mini-program hears when WeChat Pay fails the prepay.
func TestPayWhenWeChatFails(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	tests := []struct {
		name   string
		fault  paysim.EndpointFault
		status int
		code   string
	}{
		{"a moment of 5xx is retried", paysim.EndpointFault{Status: http.StatusInternalServerError, Count: 2}, http.StatusOK, ""},
		{"refused for good: 502 WECHAT_REFUSED", paysim.EndpointFault{Status: http.StatusBadRequest, Code: "PARAM_ERROR", Count: 1}, http.StatusBadGateway, "WECHAT_REFUSED"},
		{"down: 503 UNAVAILABLE, try again", paysim.EndpointFault{Status: http.StatusServiceUnavailable, Count: -1}, http.StatusServiceUnavailable, "UNAVAILABLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := place(t, env, token, item{ps[0].ID, 1})
			historyOnFailure(t, env, workflows.WorkflowID(o.OrderNo))
			f := tt.fault
			if _, err := env.Sim.ApplyFaults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{"prepay": &f}}); err != nil {
				t.Fatal(err)
			}
			defer env.Sim.ClearFaults()
			resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/pay", token, nil)
			if tt.status == http.StatusOK {
				if resp.Status != http.StatusOK {
					t.Fatalf("pay: %d %s", resp.Status, resp.Body)
				}
				return
			}
			expectError(t, resp, tt.status, tt.code)
		})
	}
}
