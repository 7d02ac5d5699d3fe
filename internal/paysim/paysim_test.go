package paysim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxpay"
)

var keys paysim.Keys

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "paysim-keys-")
	if err != nil {
		panic(err)
	}
	keys, err = paysim.EnsureDevKeys(dir)
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// merchant is the shop side: the wxpay client and a notify endpoint that
// parses with wxpay.NotifyHandler and records what it accepted.
type merchant struct {
	sim    *paysim.Sim
	simURL string
	client *wxpay.Client
	mu     sync.Mutex
	got    []wxpay.Notification
	errs   []error
}

func newMerchant(t *testing.T, mod func(*paysim.Options)) *merchant {
	t.Helper()
	so := keys.SimOptions(paysim.DefaultAppID, paysim.DefaultMchID)
	so.NotifyScale = 0.001
	so.RefundDelay = 20 * time.Millisecond
	if mod != nil {
		mod(&so)
	}
	m := &merchant{sim: paysim.New(so)}
	simSrv := httptest.NewServer(m.sim.Handler())
	cfg := wxpay.Config{
		AppID: so.AppID, MchID: so.MchID, MchCertSerial: keys.MchCertSerial, MchPrivateKey: keys.MchPrivateKey,
		APIv3Key: keys.APIv3Key, PublicKeyID: keys.PublicKeyID, PublicKey: keys.PublicKey, BaseURL: simSrv.URL,
	}
	h, err := wxpay.NewNotifyHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	notifySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := h.Parse(r.Context(), r)
		m.mu.Lock()
		if err != nil {
			m.errs = append(m.errs, err)
		} else {
			m.got = append(m.got, n)
		}
		m.mu.Unlock()
		if err != nil {
			w.WriteHeader(wxpay.NotifyStatus(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() { m.sim.Close(); simSrv.Close(); notifySrv.Close() })
	cfg.NotifyURL = notifySrv.URL + "/notify"
	m.client, err = wxpay.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.simURL = simSrv.URL
	return m
}

func (m *merchant) notifications() []wxpay.Notification {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]wxpay.Notification(nil), m.got...)
}

var seq atomic.Int64

func orderNo() string { return fmt.Sprintf("P%d%05d", time.Now().UnixNano()%1e9, seq.Add(1)) }

func (m *merchant) prepay(t *testing.T, no string, total int64) {
	t.Helper()
	if _, err := m.client.Prepay(context.Background(), wxpay.PrepayRequest{
		OutTradeNo: no, Description: "商品", TotalFen: total, PayerOpenID: "oPayer",
		TimeExpire: time.Now().Add(10 * time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
}

func (m *merchant) control(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, m.simURL+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (m *merchant) view(t *testing.T, no string) paysim.TransactionView {
	t.Helper()
	v, ok := m.sim.Transaction(no)
	if !ok {
		t.Fatalf("no transaction %s", no)
	}
	return v
}

func (m *merchant) setFaults(t *testing.T, f paysim.Faults) {
	t.Helper()
	if code, out := m.control(t, http.MethodPost, "/sim/faults", f); code != http.StatusOK {
		t.Fatalf("POST /sim/faults: %d %v", code, out)
	}
}

func TestControlAPIPayAndView(t *testing.T) {
	m := newMerchant(t, nil)
	no := orderNo()
	m.prepay(t, no, 300)

	code, v := m.control(t, http.MethodGet, "/sim/transactions/"+no, nil)
	if code != 200 || v["trade_state"] != "NOTPAY" || v["total_fen"] != float64(300) {
		t.Fatalf("view: %d %v", code, v)
	}
	code, v = m.control(t, http.MethodPost, "/sim/transactions/"+no+"/pay", nil)
	if code != 200 || v["trade_state"] != "SUCCESS" || v["transaction_id"] == "" {
		t.Fatalf("pay: %d %v", code, v)
	}
	waitFor(t, 5*time.Second, "delivery", func() bool {
		vv := m.view(t, no)
		return len(vv.Notifies) == 1 && vv.Notifies[0].State == paysim.NotifyDelivered
	})
	code, v = m.control(t, http.MethodGet, "/sim/transactions/"+no, nil)
	notifies, _ := v["notifies"].([]any)
	if code != 200 || len(notifies) != 1 {
		t.Fatalf("view after pay: %v", v)
	}
	n0 := notifies[0].(map[string]any)
	attempts, _ := n0["attempts"].([]any)
	if n0["event_type"] != "TRANSACTION.SUCCESS" || n0["state"] != "delivered" || len(attempts) != 1 {
		t.Errorf("notify view %v", n0)
	}
	if _, ok := v["refunds"].([]any); !ok {
		t.Errorf("view has no refunds list: %v", v)
	}

	tests := []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"pay twice is a conflict", http.MethodPost, "/sim/transactions/" + no + "/pay", nil, http.StatusConflict},
		{"pay an unknown order", http.MethodPost, "/sim/transactions/NOPE123456/pay", nil, http.StatusNotFound},
		{"view an unknown order", http.MethodGet, "/sim/transactions/NOPE123456", nil, http.StatusNotFound},
		{"fail a paid order", http.MethodPost, "/sim/transactions/" + no + "/fail", nil, http.StatusConflict},
		{"bad pay mode", http.MethodPost, "/sim/transactions/" + no + "/pay", map[string]string{"when": "later"}, http.StatusBadRequest},
		{"unknown fault endpoint", http.MethodPost, "/sim/faults", map[string]any{"endpoints": map[string]any{"nope": map[string]any{"status": 500}}}, http.StatusBadRequest},
		{"unknown fault field", http.MethodPost, "/sim/faults", map[string]any{"notify": map[string]any{"dropp": 1}}, http.StatusBadRequest},
		{"bad tamper", http.MethodPost, "/sim/faults", map[string]any{"notify": map[string]any{"tamper": "x"}}, http.StatusBadRequest},
		{"bad close_on_paid", http.MethodPost, "/sim/settings", map[string]any{"close_on_paid": "maybe"}, http.StatusBadRequest},
		{"settle an unknown refund", http.MethodPost, "/sim/refunds/NOPE/settle", nil, http.StatusNotFound},
		{"health", http.MethodGet, "/sim/health", nil, http.StatusOK},
		{"list", http.MethodGet, "/sim/transactions", nil, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, out := m.control(t, tc.method, tc.path, tc.body); code != tc.want {
				t.Errorf("%s %s: %d %v, want %d", tc.method, tc.path, code, out, tc.want)
			}
		})
	}
}

func TestPayerBehaviours(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		actions   []string // control actions in order
		wantState string
		wantCode  int // status of the last action
	}{
		{"payment fails: PAYERROR", []string{"fail"}, "PAYERROR", 200},
		{"after a failure the payer pays", []string{"fail", "pay"}, "SUCCESS", 200},
		{"payer in the middle of paying: USERPAYING", []string{"userpaying"}, "USERPAYING", 200},
		{"payer abandons: stays NOTPAY", []string{"userpaying", "abandon"}, "NOTPAY", 200},
		{"abandon a paid order is a conflict", []string{"pay", "abandon"}, "SUCCESS", 409},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMerchant(t, nil)
			no := orderNo()
			m.prepay(t, no, 100)
			var code int
			for _, a := range tc.actions {
				code, _ = m.control(t, http.MethodPost, "/sim/transactions/"+no+"/"+a, nil)
			}
			if code != tc.wantCode {
				t.Errorf("last action answered %d, want %d", code, tc.wantCode)
			}
			tx, err := m.client.QueryOrder(ctx, no)
			if err != nil || tx.TradeState != tc.wantState {
				t.Errorf("trade_state %q (%v), want %s", tx.TradeState, err, tc.wantState)
			}
		})
	}
}

func TestCloseOnPaidSetting(t *testing.T) {
	ctx := context.Background()
	m := newMerchant(t, nil)
	for _, mode := range []string{paysim.CloseOK204, paysim.CloseRefuse} {
		t.Run(mode, func(t *testing.T) {
			if code, out := m.control(t, http.MethodPost, "/sim/settings", map[string]any{"close_on_paid": mode}); code != 200 || out["close_on_paid"] != mode {
				t.Fatalf("settings: %d %v", code, out)
			}
			no := orderNo()
			m.prepay(t, no, 100)
			if code, _ := m.control(t, http.MethodPost, "/sim/transactions/"+no+"/pay", map[string]string{"when": "on_close"}); code != 200 {
				t.Fatalf("arming pay-on-close: %d", code)
			}
			err := m.client.CloseOrder(ctx, no)
			if mode == paysim.CloseOK204 && err != nil {
				t.Errorf("close: %v, want 204", err)
			}
			if mode == paysim.CloseRefuse && wxpay.Code(err) != paysim.CodeOrderPaid {
				t.Errorf("close: %v, want %s", err, paysim.CodeOrderPaid)
			}
			tx, err := m.client.QueryOrder(ctx, no)
			if err != nil || tx.TradeState != "SUCCESS" || tx.SuccessTime == nil {
				t.Fatalf("after close: %+v %v", tx, err)
			}
		})
	}
}

func TestNotifyFaults(t *testing.T) {
	t.Run("drop: the notification is never sent, the order is paid", func(t *testing.T) {
		m := newMerchant(t, nil)
		m.setFaults(t, paysim.Faults{Notify: &paysim.NotifyFaults{Drop: 1}})
		no := orderNo()
		m.prepay(t, no, 100)
		if _, err := m.sim.Pay(no); err != nil {
			t.Fatal(err)
		}
		v := m.view(t, no)
		if len(v.Notifies) != 1 || v.Notifies[0].State != paysim.NotifyDropped || v.TradeState != "SUCCESS" {
			t.Errorf("view %+v", v)
		}
		// The next one is delivered (the fault is used up).
		no2 := orderNo()
		m.prepay(t, no2, 100)
		if _, err := m.sim.Pay(no2); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the second order's notify", func() bool { return len(m.notifications()) == 1 })
		if got := m.notifications()[0].Transaction.OutTradeNo; got != no2 {
			t.Errorf("delivered %s, want %s", got, no2)
		}
	})
	t.Run("duplicate: the same notification arrives twice", func(t *testing.T) {
		m := newMerchant(t, nil)
		m.setFaults(t, paysim.Faults{Notify: &paysim.NotifyFaults{Duplicate: 1}})
		no := orderNo()
		m.prepay(t, no, 100)
		if _, err := m.sim.Pay(no); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "two deliveries", func() bool { return len(m.notifications()) == 2 })
		got := m.notifications()
		if got[0].ID != got[1].ID || got[0].Transaction.TransactionID != got[1].Transaction.TransactionID {
			t.Errorf("not the same notification: %s %s", got[0].ID, got[1].ID)
		}
		waitFor(t, 5*time.Second, "the duplicate recorded", func() bool {
			a := m.view(t, no).Notifies[0].Attempts
			return len(a) == 2 && a[1].Duplicate
		})
	})
	t.Run("delay: the first attempt waits", func(t *testing.T) {
		m := newMerchant(t, nil)
		m.setFaults(t, paysim.Faults{Notify: &paysim.NotifyFaults{DelayMS: 300}})
		no := orderNo()
		m.prepay(t, no, 100)
		v, err := m.sim.Pay(no)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the delayed notify", func() bool { return len(m.notifications()) == 1 })
		waitFor(t, 5*time.Second, "the attempt recorded", func() bool { return len(m.view(t, no).Notifies[0].Attempts) == 1 })
		at := m.view(t, no).Notifies[0].Attempts[0].At
		if d := at.Sub(*v.SuccessTime); d < 300*time.Millisecond {
			t.Errorf("first attempt %v after payment, want at least 300ms", d)
		}
	})
	t.Run("reorder: a later notification arrives first", func(t *testing.T) {
		m := newMerchant(t, nil)
		m.setFaults(t, paysim.Faults{Notify: &paysim.NotifyFaults{Reorder: true, ReorderHoldMS: 30000}})
		first, second := orderNo(), orderNo()
		m.prepay(t, first, 100)
		m.prepay(t, second, 100)
		if _, err := m.sim.Pay(first); err != nil {
			t.Fatal(err)
		}
		if v := m.view(t, first); v.Notifies[0].State != paysim.NotifyHeld {
			t.Errorf("first notification is %s, want held", v.Notifies[0].State)
		}
		if _, err := m.sim.Pay(second); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "both notifies", func() bool { return len(m.notifications()) == 2 })
		got := m.notifications()
		if got[0].Transaction.OutTradeNo != second || got[1].Transaction.OutTradeNo != first {
			t.Errorf("order %s, %s; want %s first", got[0].Transaction.OutTradeNo, got[1].Transaction.OutTradeNo, second)
		}
	})
	t.Run("reorder: a lone notification is released after the hold", func(t *testing.T) {
		m := newMerchant(t, nil)
		m.setFaults(t, paysim.Faults{Notify: &paysim.NotifyFaults{Reorder: true, ReorderHoldMS: 50}})
		no := orderNo()
		m.prepay(t, no, 100)
		if _, err := m.sim.Pay(no); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the held notify", func() bool { return len(m.notifications()) == 1 })
	})
	t.Run("clearing faults releases a held notification", func(t *testing.T) {
		m := newMerchant(t, nil)
		m.setFaults(t, paysim.Faults{Notify: &paysim.NotifyFaults{Reorder: true, ReorderHoldMS: 60000}})
		no := orderNo()
		m.prepay(t, no, 100)
		if _, err := m.sim.Pay(no); err != nil {
			t.Fatal(err)
		}
		if code, _ := m.control(t, http.MethodDelete, "/sim/faults", nil); code != 200 {
			t.Fatal(code)
		}
		waitFor(t, 10*time.Second, "the released notify", func() bool { return len(m.notifications()) == 1 })
	})
}

func TestEndpointFaultCounts(t *testing.T) {
	ctx := context.Background()
	m := newMerchant(t, nil)
	no := orderNo()
	m.prepay(t, no, 100)
	m.setFaults(t, paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{paysim.EndpointQuery: {Status: 500, Count: 2}}})
	for i := 0; i < 2; i++ {
		if _, err := m.client.QueryOrder(ctx, no); wxpay.Classify(err) != wxpay.KindRetryable {
			t.Fatalf("query %d: %v, want retryable", i+1, err)
		}
	}
	if _, err := m.client.QueryOrder(ctx, no); err != nil {
		t.Fatalf("third query: %v", err)
	}
	f := m.sim.CurrentFaults()
	if len(f.Endpoints) != 0 {
		t.Errorf("faults left: %+v", f.Endpoints)
	}
	// count -1: until cleared
	m.setFaults(t, paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{paysim.EndpointQuery: {Status: 503, Count: -1}}})
	for i := 0; i < 3; i++ {
		if _, err := m.client.QueryOrder(ctx, no); wxpay.StatusCode(err) != 503 {
			t.Fatalf("query %d: %v, want 503", i+1, err)
		}
	}
	m.sim.ClearFaults()
	if _, err := m.client.QueryOrder(ctx, no); err != nil {
		t.Fatalf("after clearing: %v", err)
	}
}

func TestSignTestControl(t *testing.T) {
	m := newMerchant(t, nil)
	code, out := m.control(t, http.MethodPost, "/sim/signtest", map[string]string{"url": m.client.Config().NotifyURL})
	if code != 200 || out["refused"] != true || out["status"] != float64(http.StatusUnauthorized) {
		t.Errorf("probe: %d %v", code, out)
	}
	if len(m.notifications()) != 0 {
		t.Error("the probe was accepted as a notification")
	}
	code, out = m.control(t, http.MethodGet, "/sim/signtest", nil)
	if probes, _ := out["probes"].([]any); code != 200 || len(probes) != 1 {
		t.Errorf("probe list: %v", out)
	}
}

func TestRefundSettleControl(t *testing.T) {
	ctx := context.Background()
	m := newMerchant(t, func(o *paysim.Options) { o.RefundDelay = -1 })
	no := orderNo()
	m.prepay(t, no, 500)
	if _, err := m.sim.Pay(no); err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: "R" + no, RefundFen: 500, TotalFen: 500}); err != nil {
		t.Fatal(err)
	}
	code, out := m.control(t, http.MethodGet, "/sim/refunds/R"+no, nil)
	if code != 200 || out["status"] != "PROCESSING" {
		t.Fatalf("refund view %d %v", code, out)
	}
	code, out = m.control(t, http.MethodPost, "/sim/refunds/R"+no+"/settle", map[string]string{"status": "ABNORMAL"})
	if code != 200 || out["status"] != "ABNORMAL" {
		t.Fatalf("settle %d %v", code, out)
	}
	waitFor(t, 5*time.Second, "REFUND.ABNORMAL", func() bool {
		for _, n := range m.notifications() {
			if n.Refund != nil && n.Refund.RefundStatus == "ABNORMAL" {
				return true
			}
		}
		return false
	})
	if code, _ := m.control(t, http.MethodPost, "/sim/refunds/R"+no+"/settle", nil); code != http.StatusConflict {
		t.Errorf("settling twice: %d, want 409", code)
	}
}

func TestEnsureDevKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k1, err := paysim.EnsureDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1.APIv3Key) != 32 || !strings.HasPrefix(k1.PublicKeyID, "PUB_KEY_ID_") || len(k1.MchCertSerial) != 40 {
		t.Errorf("keys %+v", k1)
	}
	if k1.MchPrivateKey.N.BitLen() != 2048 || k1.PlatformPrivateKey.N.BitLen() != 2048 {
		t.Error("keys are not RSA-2048")
	}
	// The merchant side loads them with the project's loaders (PKCS#8, PKIX).
	if _, err := wxpay.LoadPrivateKeyFile(k1.MchPrivateKeyFile); err != nil {
		t.Error(err)
	}
	if pub, err := wxpay.LoadPublicKeyFile(k1.PublicKeyFile); err != nil || !pub.Equal(&k1.PlatformPrivateKey.PublicKey) {
		t.Errorf("public key file: %v", err)
	}
	st, err := os.Stat(k1.MchPrivateKeyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	k2, err := paysim.EnsureDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k2.PublicKeyID != k1.PublicKeyID || k2.APIv3Key != k1.APIv3Key || !k2.MchPrivateKey.Equal(k1.MchPrivateKey) {
		t.Error("second run did not reuse the keys")
	}
	env := k2.Env("http://127.0.0.1:8091", "http://127.0.0.1:8080/v1/wechatpay/notify")
	if env["WECHATPAY_PUBLIC_KEY_FILE"] != k2.PublicKeyFile || env["WECHATPAY_BASE_URL"] != "http://127.0.0.1:8091" {
		t.Errorf("env %v", env)
	}
	if err := os.Remove(filepath.Join(dir, paysim.FilePublicKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := paysim.EnsureDevKeys(dir); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("partial directory: %v, want an error", err)
	}
}

// syncBuffer is a goroutine-safe output for RunCommand.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- paysim.RunCommand(ctx, []string{"-addr", "127.0.0.1:0", "-keys", keys.Dir, "-notify-scale", "0.01"}, out)
	}()
	var base string
	waitFor(t, 20*time.Second, "the listening line", func() bool {
		s := out.String()
		i := strings.Index(s, "listening on ")
		if i < 0 {
			return false
		}
		base = strings.Fields(s[i+len("listening on "):])[0]
		return true
	})
	resp, err := http.Get(base + "/sim/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("health %d", resp.StatusCode)
	}
	if s := out.String(); !strings.Contains(s, "WECHATPAY_PUBLIC_KEY_ID="+keys.PublicKeyID) || !strings.Contains(s, "WECHATPAY_BASE_URL="+base) {
		t.Errorf("output lacks the merchant settings:\n%s", s)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunCommand: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("RunCommand did not stop")
	}
	if err := paysim.RunCommand(context.Background(), []string{"-close-on-paid", "maybe", "-keys", keys.Dir}, io.Discard); err == nil {
		t.Error("a bad flag value was accepted")
	}
}
