package wxpay_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxpay"
)

// Keys are generated once per test binary (RSA generation is slow on a
// loaded machine).
var (
	devKeys  paysim.Keys
	otherKey *rsa.PrivateKey // a merchant key the simulator does not know
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wxpay-keys-")
	if err != nil {
		panic(err)
	}
	devKeys, err = paysim.EnsureDevKeys(dir)
	if err != nil {
		panic(err)
	}
	otherKey, err = rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// testClock is real time plus an adjustable offset (keeps the monotonic
// reading, so differences between recorded times are exact).
type testClock struct{ off atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// received is one callback as the merchant's notify endpoint saw it.
type received struct {
	n      wxpay.Notification
	err    error
	status int
}

// recorder is the merchant's notify endpoint: it parses with the SDK-based
// NotifyHandler and answers like the API will (204, 401, 400), unless a
// scripted status is queued.
type recorder struct {
	h      *wxpay.NotifyHandler
	mu     sync.Mutex
	got    []received
	script []int
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	n, err := r.h.Parse(req.Context(), req)
	status := http.StatusNoContent
	if err != nil {
		status = wxpay.NotifyStatus(err)
	}
	r.mu.Lock()
	if len(r.script) > 0 {
		status = r.script[0]
		r.script = r.script[1:]
	}
	r.got = append(r.got, received{n: n, err: err, status: status})
	r.mu.Unlock()
	if status >= 300 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": "FAIL", "message": http.StatusText(status)})
		return
	}
	w.WriteHeader(status)
}

func (r *recorder) answerNext(statuses ...int) {
	r.mu.Lock()
	r.script = append(r.script, statuses...)
	r.mu.Unlock()
}

func (r *recorder) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

type env struct {
	sim    *paysim.Sim
	simURL string
	cfg    wxpay.Config
	client *wxpay.Client
	rec    *recorder
	clock  *testClock
	memo   string // scratch for table tests
}

type envOption func(*paysim.Options, *wxpay.Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	clock := &testClock{}
	so := devKeys.SimOptions(paysim.DefaultAppID, paysim.DefaultMchID)
	so.NotifyScale = 0.001
	so.RefundDelay = 30 * time.Millisecond
	// WeChat's minute between two refunds of a payment is the simulator's
	// test (paysim), not the client's.
	so.RefundInterval = -1
	so.Clock = clock.Now
	so.LoginSecret = "secret"

	cfg := wxpay.Config{
		AppID:         paysim.DefaultAppID,
		MchID:         paysim.DefaultMchID,
		MchCertSerial: devKeys.MchCertSerial,
		MchPrivateKey: devKeys.MchPrivateKey,
		APIv3Key:      devKeys.APIv3Key,
		PublicKeyID:   devKeys.PublicKeyID,
		PublicKey:     devKeys.PublicKey,
		Timeout:       5 * time.Second,
	}
	for _, o := range opts {
		o(&so, &cfg)
	}
	sim := paysim.New(so)
	simSrv := httptest.NewServer(sim.Handler())

	h, err := wxpay.NewNotifyHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{h: h}
	recSrv := httptest.NewServer(rec)
	t.Cleanup(func() {
		sim.Close()
		simSrv.Close()
		recSrv.Close()
	})

	cfg.BaseURL = simSrv.URL
	cfg.NotifyURL = recSrv.URL + "/v1/wechatpay/notify"
	client, err := wxpay.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{sim: sim, simURL: simSrv.URL, cfg: cfg, client: client, rec: rec, clock: clock}
}

// clientWith builds another client on the same simulator and notify URL.
func (e *env) clientWith(t *testing.T, mod func(*wxpay.Config)) *wxpay.Client {
	t.Helper()
	cfg := e.cfg
	mod(&cfg)
	c, err := wxpay.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var orderSeq atomic.Int64

func newOrderNo() string {
	return fmt.Sprintf("T%d%06d", time.Now().UnixNano()%1e9, orderSeq.Add(1))
}

func (e *env) prepay(t *testing.T, no string, total int64) wxpay.PayParams {
	t.Helper()
	p, err := e.client.Prepay(context.Background(), wxpay.PrepayRequest{
		OutTradeNo: no, Description: "测试商品", TotalFen: total, PayerOpenID: "oUser1",
		TimeExpire: e.clock.Now().Add(15 * time.Minute),
	})
	if err != nil {
		t.Fatalf("prepay %s: %v", no, err)
	}
	return p
}

func (e *env) prepayAndPay(t *testing.T, no string, total int64) {
	t.Helper()
	e.prepay(t, no, total)
	if _, err := e.sim.Pay(no); err != nil {
		t.Fatalf("pay %s: %v", no, err)
	}
}

func (e *env) setFaults(t *testing.T, f paysim.Faults) {
	t.Helper()
	if _, err := e.sim.ApplyFaults(f); err != nil {
		t.Fatal(err)
	}
}

func (e *env) view(t *testing.T, no string) paysim.TransactionView {
	t.Helper()
	v, ok := e.sim.Transaction(no)
	if !ok {
		t.Fatalf("simulator has no transaction %s", no)
	}
	return v
}

// waitFor polls cond until it holds or the deadline passes.
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

// wantErr checks kind, code and HTTP status of an error.
func wantErr(t *testing.T, err error, kind wxpay.ErrorKind, code string, status int) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %v error %q, got nil", kind, code)
	}
	if got := wxpay.Classify(err); got != kind {
		t.Errorf("Classify = %v, want %v (err: %v)", got, kind, err)
	}
	if got := wxpay.Code(err); got != code {
		t.Errorf("Code = %q, want %q (err: %v)", got, code, err)
	}
	if status != 0 {
		if got := wxpay.StatusCode(err); got != status {
			t.Errorf("StatusCode = %d, want %d (err: %v)", got, status, err)
		}
	}
}

func endpointFault(name string, f paysim.EndpointFault) paysim.Faults {
	return paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{name: &f}}
}
