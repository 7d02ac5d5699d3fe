package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ordersaga/internal/app"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// notifyFailure is WeChat's failure shape, which the notify endpoint answers.
func checkNotifyFailure(t *testing.T, body string) {
	t.Helper()
	var f struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &f); err != nil || f.Code != "FAIL" || f.Message == "" {
		t.Fatalf("answer is not {\"code\":\"FAIL\",\"message\":…}: %s", body)
	}
}

// Callbacks that are not WeChat's, or not WeChat's now, are refused with a
// 4xx, and neither the database nor Temporal sees any of them.
func TestUnverifiedCallbacksAreRefusedAndChangeNothing(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Tea", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})
	n := newNotifier(t, env)
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	txID := "4200000000" + fmt.Sprint(time.Now().UnixNano())
	paid := n.envelope(t, "TRANSACTION.SUCCESS", "transaction", payment(env.Config.WechatAppID, env.Config.PayMchID, o.OrderNo, txID, o.TotalFen))
	now := time.Now()
	with := func(cb callback, header, value string) callback {
		h := map[string]string{}
		for k, v := range cb.headers {
			h[k] = v
		}
		if value == "" {
			delete(h, header)
		} else {
			h[header] = value
		}
		return callback{body: cb.body, headers: h}
	}
	swapped := n.sign(t, paid, now, nil)
	swapped.body = n.envelope(t, "TRANSACTION.SUCCESS", "transaction", payment(env.Config.WechatAppID, env.Config.PayMchID, o.OrderNo, txID, 1))
	var corrupt map[string]any
	_ = json.Unmarshal(paid, &corrupt)
	res := corrupt["resource"].(map[string]any)
	ct := []byte(res["ciphertext"].(string))
	ct[3] ^= 'A' ^ 'B'
	res["ciphertext"] = string(ct)
	corruptBody, _ := json.Marshal(corrupt)
	otherKey := &notifier{url: n.url, serial: n.serial, key: n.key, apiV3Key: strings.Repeat("k", 32), now: time.Now}

	tests := []struct {
		name   string
		cb     callback
		status int
	}{
		{"forged: signed with another key", n.sign(t, paid, now, forger), http.StatusUnauthorized},
		{"tampered: another body under a genuine signature", swapped, http.StatusUnauthorized},
		{"stale: genuinely signed 6 minutes ago", n.sign(t, paid, now.Add(-6*time.Minute), nil), http.StatusUnauthorized},
		{"from the future: 6 minutes ahead", n.sign(t, paid, now.Add(6*time.Minute), nil), http.StatusUnauthorized},
		{"another public key id", with(n.sign(t, paid, now, nil), "Wechatpay-Serial", "PUB_KEY_ID_0000000000000000000000000000000"), http.StatusUnauthorized},
		{"no signature", with(n.sign(t, paid, now, nil), "Wechatpay-Signature", ""), http.StatusUnauthorized},
		{"no timestamp", with(n.sign(t, paid, now, nil), "Wechatpay-Timestamp", ""), http.StatusUnauthorized},
		{"SIGNTEST probe", with(n.sign(t, paid, now, nil), "Wechatpay-Signature", "WECHATPAY/SIGNTEST/"+strings.Repeat("A", 344)), http.StatusUnauthorized},
		{"another signature type", with(n.sign(t, paid, now, nil), "Wechatpay-Signature-Type", "HMAC-SHA256"), http.StatusUnauthorized},
		{"genuinely signed, ciphertext corrupted", n.sign(t, corruptBody, now, nil), http.StatusBadRequest},
		{"genuinely signed, sealed with another APIv3 key", n.sign(t, otherKey.envelope(t, "TRANSACTION.SUCCESS", "transaction", payment(env.Config.WechatAppID, env.Config.PayMchID, o.OrderNo, txID, o.TotalFen)), now, nil), http.StatusBadRequest},
		{"genuinely signed, not JSON", n.sign(t, []byte("this is not json"), now, nil), http.StatusBadRequest},
		{"genuinely signed, 1 MB envelope naming another algorithm", n.sign(t, []byte(`{"id":"`+strings.Repeat("x", 1_000_000)+`","resource":{"algorithm":"ROT13"}}`), now, nil), http.StatusBadRequest},
		{"a body over 1 MiB", n.sign(t, []byte(strings.Repeat(" ", 2<<20)), now, nil), http.StatusRequestEntityTooLarge},
		{"a chunked body over 1 MiB (no Content-Length)", chunked(n.sign(t, []byte(strings.Repeat(" ", 2<<20)), now, nil)), http.StatusRequestEntityTooLarge},
		{"a chunked body of 1 MiB and a byte", chunked(n.sign(t, []byte(strings.Repeat(" ", 1<<20+1)), now, nil)), http.StatusRequestEntityTooLarge},
	}
	ids := []string{workflows.WorkflowID(o.OrderNo), workflows.StrayPaymentWorkflowID(txID)}
	settle(t, env, ids[0])
	dbBefore, tBefore := dbSnapshot(t, env), temporalSnapshot(t, env, ids...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := n.send(t, tt.cb)
			if status != tt.status {
				t.Fatalf("status %d (%s), want %d", status, body, tt.status)
			}
			checkNotifyFailure(t, body)
		})
	}
	// WeChat's own probe, from the simulator.
	probe, err := env.Sim.SendSignTest(context.Background(), env.URL+"/v1/wechatpay/notify")
	if err != nil || !probe.Refused || probe.Status != http.StatusUnauthorized {
		t.Fatalf("SIGNTEST probe: %+v (%v), want refused with 401", probe, err)
	}

	if after := dbSnapshot(t, env); after != dbBefore {
		t.Errorf("the database changed:\nbefore %s\nafter  %s", dbBefore, after)
	}
	if after := temporalSnapshot(t, env, ids...); after != tBefore {
		t.Errorf("Temporal changed: before %s, after %s", tBefore, after)
	}
	if st := row(t, env, o.OrderNo).Status; st != status.Pending {
		t.Errorf("order is %s, want PENDING", st)
	}
	metrics := string(env.Do(http.MethodGet, "/metrics", "", nil).Body)
	for _, want := range []string{
		`ordersaga_wechatpay_notifies_total{event="unverified",outcome="refused_signature"}`,
		`ordersaga_wechatpay_notifies_total{event="unverified",outcome="refused_body"}`,
		`ordersaga_wechatpay_notifies_total{event="unverified",outcome="refused_too_large"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// chunked is cb sent without a Content-Length.
func chunked(cb callback) callback {
	cb.chunked = true
	return cb
}

// settle waits until a workflow's history stops growing (its last task is
// done), so that a snapshot taken next is not a moving target.
func settle(t *testing.T, env *testenv.Env, workflowID string) {
	t.Helper()
	last, same := int64(-2), 0
	testenv.Eventually(t, 30*time.Second, workflowID+" settles", func() (bool, string) {
		n := historyLength(t, env, workflowID)
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
		return same >= 5, fmt.Sprint(n)
	})
}

// Verified callbacks with nothing to act on are acknowledged, so WeChat stops
// sending them, and start nothing.
func TestCallbacksForUnknownOrdersAndEventsAreAcknowledged(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	n := newNotifier(t, env)
	tx := "4200000000" + fmt.Sprint(time.Now().UnixNano())
	tests := []struct {
		name  string
		event string
		orig  string
		body  any
	}{
		{"payment for an order this shop never issued", "TRANSACTION.SUCCESS", "transaction",
			payment(env.Config.WechatAppID, env.Config.PayMchID, "20990101000000123456", tx, 100)},
		{"payment for a number this shop cannot have issued", "TRANSACTION.SUCCESS", "transaction",
			payment(env.Config.WechatAppID, env.Config.PayMchID, "SIGNTEST000000", tx+"1", 100)},
		{"refund of an unknown order", "REFUND.SUCCESS", "refund", map[string]any{
			"mchid": env.Config.PayMchID, "out_trade_no": "20990101000000123456", "transaction_id": tx,
			"out_refund_no": "20990101000000123456-R1", "refund_id": "5030000", "refund_status": "SUCCESS",
			"amount": map[string]any{"total": 100, "refund": 100, "payer_total": 100, "payer_refund": 100}}},
		{"an event type this version does not know", "TRANSACTION.SOMETHING_NEW", "transaction",
			payment(env.Config.WechatAppID, env.Config.PayMchID, "20990101000000123457", tx+"2", 100)},
	}
	dbBefore := dbSnapshot(t, env)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := n.send(t, n.sign(t, n.envelope(t, tt.event, tt.orig, tt.body), time.Now(), nil))
			if status != http.StatusNoContent {
				t.Fatalf("status %d (%s), want 204", status, body)
			}
		})
	}
	// A body of unknown length is read by the endpoint itself and handed on
	// to verification and decryption all the same.
	if status, body := n.send(t, chunked(n.sign(t, n.envelope(t, "TRANSACTION.SUCCESS", "transaction",
		payment(env.Config.WechatAppID, env.Config.PayMchID, "20990101000000123458", tx+"3", 100)), time.Now(), nil))); status != http.StatusNoContent {
		t.Errorf("chunked callback: status %d (%s), want 204", status, body)
	}
	if after := dbSnapshot(t, env); after != dbBefore {
		t.Errorf("the database changed:\nbefore %s\nafter  %s", dbBefore, after)
	}
	for _, id := range []string{workflows.StrayPaymentWorkflowID(tx), workflows.StrayPaymentWorkflowID(tx + "1"),
		workflows.StrayPaymentWorkflowID(tx + "3"), workflows.WorkflowID("20990101000000123456")} {
		if n := historyLength(t, env, id); n != -1 {
			t.Errorf("workflow %s exists (%d events)", id, n)
		}
	}
}

// An API whose Temporal cannot be reached answers WeChat 500 in WeChat's
// shape (so WeChat retries), within WeChat's 5 s, and changes nothing.
func TestCallbackIsAnswered500WhenTemporalIsUnreachable(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Tea", PriceFen: 1280, Stock: 5})
	_, token := env.UserToken("openid-alice")
	o := place(t, env, token, item{ps[0].ID, 1})

	proxy := newTCPProxy(t, temporalServer.FrontendAddress())
	proxy.stop() // Temporal is unreachable for this API from the start
	h, err := app.NewAPIHandler(env.Config, env.Store, lazyClient(t, proxy.addr), prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	front := newTestServer(t, h)
	n := newNotifier(t, env)
	n.url = front + "/v1/wechatpay/notify"
	tx := "4200000000" + fmt.Sprint(time.Now().UnixNano())

	ids := []string{workflows.WorkflowID(o.OrderNo), workflows.StrayPaymentWorkflowID(tx)}
	settle(t, env, ids[0])
	dbBefore, tBefore := dbSnapshot(t, env), temporalSnapshot(t, env, ids...)
	status, body := n.send(t, n.sign(t, n.envelope(t, "TRANSACTION.SUCCESS", "transaction",
		payment(env.Config.WechatAppID, env.Config.PayMchID, o.OrderNo, tx, o.TotalFen)), time.Now(), nil))
	if status != http.StatusInternalServerError {
		t.Fatalf("status %d (%s), want 500", status, body)
	}
	checkNotifyFailure(t, body)
	if after := dbSnapshot(t, env); after != dbBefore {
		t.Errorf("the database changed")
	}
	if after := temporalSnapshot(t, env, ids...); after != tBefore {
		t.Errorf("Temporal changed: before %s, after %s", tBefore, after)
	}
	// Readiness says so too.
	resp, err := http.Get(front + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with Temporal unreachable: %d, want 503", resp.StatusCode)
	}
}
