package api_test

// Paths of the order saga that only WeChat's side can start — a refund
// settled by its notify, a payment that does not match its order, a notify
// lost until the deadline, polls faster than WeChat is asked — end to end:
// the API over HTTP, the embedded Temporal server, PostgreSQL, the simulator.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/internal/wxpay"
	"ordersaga/workflows"
)

// The user's refund is settled by WeChat's REFUND.SUCCESS notify: the notify
// endpoint hands it to the workflow as the refund signal, which makes the
// order REFUNDED and puts the stock back once.
func TestRefundNotifyReachesTheWorkflowAsTheRefundSignal(t *testing.T) {
	// The simulator settles a refund only when the test says so, so the
	// notify, not a refund query, is what settles it.
	env := testenv.New(t, temporalServer, testenv.Options{RefundDelay: -1})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o, wf := placePaid(t, env, token, item{ps[0].ID, 2})
	waitStock(t, env, ps[0].ID, 3)

	resp := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/refund", token, map[string]string{"reason": "changed my mind"})
	var got orderView
	resp.JSON(t, &got)
	if (resp.Status != http.StatusOK && resp.Status != http.StatusAccepted) || got.Status != "REFUNDING" {
		t.Fatalf("refund: %d %s, want the order REFUNDING", resp.Status, resp.Body)
	}
	outRefundNo := workflows.OrderRefundNo(o.OrderNo, 1)
	testenv.Eventually(t, 30*time.Second, "WeChat holds the refund", func() (bool, string) {
		r, ok := env.Sim.Refund(outRefundNo)
		return ok && r.Status == paysim.RefundProcessing, fmt.Sprintf("%+v", r)
	})
	// Nothing is settled before WeChat says so.
	if st, n, s := row(t, env, o.OrderNo).Status, signals(t, env, wf, workflows.SignalRefund), stock(t, env, ps[0].ID); st != status.Refunding || n != 0 || s != 3 {
		t.Fatalf("before WeChat settled the refund: order %s, %d refund signals, stock %d; want REFUNDING, 0, 3", st, n, s)
	}

	if _, err := env.Sim.SettleRefund(outRefundNo, paysim.RefundSuccess); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, env, o.OrderNo, status.Refunded)
	waitWorkflowClosed(t, env, wf)
	if n := signals(t, env, wf, workflows.SignalRefund); n != 1 {
		t.Errorf("refund signals: %d, want 1", n)
	}
	// Ended: nothing can move the stock any more.
	if s, l := stock(t, env, ps[0].ID), ledgerRows(t, env, o.OrderNo, store.LedgerRestore); s != 5 || l != 1 {
		t.Errorf("stock %d with %d restores, want 5 and 1", s, l)
	}
	var refundNotify *paysim.NotifyView
	for _, n := range simNotifies(t, env, o.OrderNo) {
		if n.OutRefundNo == outRefundNo {
			refundNotify = &n
		}
	}
	if refundNotify == nil || refundNotify.EventType != paysim.EventRefundSuccess || refundNotify.State != paysim.NotifyDelivered ||
		!slices.Equal(attemptStatuses(*refundNotify), []int{http.StatusNoContent}) {
		t.Errorf("WeChat's refund notify: %+v", refundNotify)
	}
	state := orderState(t, env, o.OrderNo)
	last := state.Transitions[len(state.Transitions)-1]
	if last.To != status.Refunded || !strings.Contains(last.Why, "notify") {
		t.Errorf("last transition %+v, want to REFUNDED by the notify", last)
	}
	if m := metricsText(t, env); !strings.Contains(m, `ordersaga_wechatpay_notifies_total{event="REFUND.SUCCESS",outcome="accepted"} 1`) {
		t.Errorf("/metrics does not count one accepted refund notify:\n%s", grepLines(m, "ordersaga_wechatpay_notifies_total"))
	}
}

// WeChat reports, signed and encrypted as always, a payment for the order's
// number but of another amount (a checkout that made its own prepay): the
// order is never PAID, it is CLOSED and flagged PAYMENT_MISMATCH, its stock
// is untouched, and the stray payment workflow returns the money.
func TestMismatchedPaymentIsNeverPaidAndIsReturned(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	wf := workflows.WorkflowID(o.OrderNo)
	historyOnFailure(t, env, wf)

	// A prepay of 1 fen for the order's number, through the official SDK, as
	// the worker makes them; WeChat notifies the shop's URL of its payment.
	const paidFen = 1
	if _, err := env.Pay.Prepay(context.Background(), wxpay.PrepayRequest{
		OutTradeNo: o.OrderNo, Description: "not this shop's checkout", TotalFen: paidFen, PayerOpenID: "o-test-payer",
	}); err != nil {
		t.Fatalf("prepay at another amount: %v", err)
	}
	tx := simPay(t, env, o.OrderNo)
	stray := workflows.StrayPaymentWorkflowID(tx.TransactionID)
	historyOnFailure(t, env, stray)

	closed := waitStatus(t, env, o.OrderNo, status.Closed)
	waitWorkflowClosed(t, env, wf)
	if closed.PaidAt != nil || closed.TransactionID != "" || !strings.Contains(closed.Flag, workflows.FlagPaymentMismatch) {
		t.Errorf("closed row: paid_at %v, transaction %q, flag %q; want none, none, %s", closed.PaidAt, closed.TransactionID, closed.Flag, workflows.FlagPaymentMismatch)
	}
	state := orderState(t, env, o.OrderNo)
	for _, tr := range state.Transitions {
		if tr.To == status.Paid {
			t.Errorf("the order was PAID on the way: %+v", state.Transitions)
		}
	}
	if state.Status != status.Closed || !slices.Contains(state.Flags, workflows.FlagPaymentMismatch) {
		t.Errorf("workflow state: %s, flags %v", state.Status, state.Flags)
	}
	var admin struct {
		Status string   `json:"status"`
		Flags  []string `json:"flags"`
	}
	env.Do(http.MethodGet, "/v1/admin/orders/"+o.OrderNo, env.Config.AdminToken, nil).JSON(t, &admin)
	if admin.Status != "CLOSED" || !slices.Contains(admin.Flags, workflows.FlagPaymentMismatch) {
		t.Errorf("admin view: %+v", admin)
	}
	if n := signals(t, env, wf, workflows.SignalPayment); n != 1 {
		t.Errorf("payment signals: %d, want 1 (WeChat's notify)", n)
	}

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
	waitWorkflowClosed(t, env, stray)
	r, ok := env.Sim.Refund(workflows.StrayRefundNo(tx.TransactionID))
	if !ok || r.Status != paysim.RefundSuccess || r.RefundFen != paidFen {
		t.Errorf("refund at WeChat: %+v, want %d fen SUCCESS", r, paidFen)
	}
	if v, _ := env.Sim.Transaction(o.OrderNo); v.RefundedFen != paidFen {
		t.Errorf("WeChat refunded %d fen of the %d paid", v.RefundedFen, paidFen)
	}
	// Both workflows have ended: the stock is as seeded, never deducted.
	if s, l := stock(t, env, ps[0].ID), ledgerRows(t, env, o.OrderNo, store.LedgerDeduct); s != 5 || l != 0 {
		t.Errorf("stock %d, deductions %d; want 5 and 0", s, l)
	}
}

// WeChat's notify is lost and the mini-program never polls: at the deadline
// the workflow asks WeChat before closing, hears SUCCESS and makes the order
// PAID, deducting its stock once.
func TestLostNotifyIsSettledAtTheDeadline(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{PayTimeout: 8 * time.Second})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	wf := workflows.WorkflowID(o.OrderNo)
	historyOnFailure(t, env, wf)
	pay(t, env, token, o.OrderNo)
	if _, err := env.Sim.ApplyFaults(paysim.Faults{Notify: &paysim.NotifyFaults{Drop: 1}}); err != nil {
		t.Fatal(err)
	}
	simPay(t, env, o.OrderNo)

	paid := waitStatus(t, env, o.OrderNo, status.Paid)
	if paid.TransactionID == "" || paid.PaidAt == nil {
		t.Errorf("paid row: transaction %q, paid_at %v", paid.TransactionID, paid.PaidAt)
	}
	waitStock(t, env, ps[0].ID, 4) // 5 → 4
	settle(t, env, wf)             // PAID and deducted: the workflow waits for shipping now
	if s, d, p := stock(t, env, ps[0].ID), ledgerRows(t, env, o.OrderNo, store.LedgerDeduct), paymentRows(t, env, o.OrderNo); s != 4 || d != 1 || p != 1 {
		t.Errorf("stock %d, deductions %d, payments %d; want 4, 1, 1", s, d, p)
	}
	if n := simNotifies(t, env, o.OrderNo); len(n) != 1 || n[0].State != paysim.NotifyDropped {
		t.Errorf("the notify was not lost: %+v", n)
	}
	if n, u := signals(t, env, wf, workflows.SignalPayment), updatesAccepted(t, env, wf, workflows.UpdateSync); n != 0 || u != 0 {
		t.Errorf("payment signals %d, sync updates %d; want 0 and 0 (only the deadline asked)", n, u)
	}
	state := orderState(t, env, o.OrderNo)
	i := slices.IndexFunc(state.Transitions, func(tr workflows.Transition) bool { return tr.To == status.Paid })
	if i < 0 {
		t.Fatalf("no transition to PAID: %+v", state.Transitions)
	}
	if tr := state.Transitions[i]; !strings.Contains(tr.Why, "query") || tr.At.Before(o.PayDeadline) {
		t.Errorf("PAID %v by %q; want by the query at the deadline %v", tr.At, tr.Why, o.PayDeadline)
	}
}

// The mini-program polls ?sync=1 twice in quick succession: both answers say
// PENDING and not synced, WeChat is asked once, and the workflow's history
// holds one sync update — the second poll was refused before it.
func TestQuickSyncPollsAskWeChatOnce(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	wf := workflows.WorkflowID(o.OrderNo)
	historyOnFailure(t, env, wf)
	pay(t, env, token, o.OrderNo)

	start := time.Now()
	for i := range 2 {
		got := getOrder(t, env, token, "/v1/orders/"+o.OrderNo+"?sync=1")
		if got.Status != "PENDING" || got.WechatSynced == nil || *got.WechatSynced {
			t.Fatalf("poll %d: %+v, want PENDING with wechat_synced false", i+1, got)
		}
	}
	if d := time.Since(start); d >= workflows.SyncInterval {
		t.Fatalf("the two polls took %v, not less than the sync interval %v: the machine is too slow for this test", d, workflows.SyncInterval)
	}
	queries := grepLines(metricsText(t, env), `ordersaga_wechatpay_calls_total{op="query"`)
	if queries != `ordersaga_wechatpay_calls_total{op="query",outcome="ok"} 1` {
		t.Errorf("WeChat queries:\n%s\nwant one, ok", queries)
	}
	if n := updatesAccepted(t, env, wf, workflows.UpdateSync); n != 1 {
		t.Errorf("sync updates in the history: %d, want 1", n)
	}
}
