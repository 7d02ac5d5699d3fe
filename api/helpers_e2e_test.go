package api_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"ordersaga/internal/app"
	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// ---- the shop as the mini-program sees it ----

type item struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

type payParams struct {
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

type orderView struct {
	orderBody
	PaidAt          *time.Time                 `json:"paid_at"`
	ClosedAt        *time.Time                 `json:"closed_at"`
	ShippedAt       *time.Time                 `json:"shipped_at"`
	TrackingNo      string                     `json:"tracking_no"`
	CompletedAt     *time.Time                 `json:"completed_at"`
	WechatSynced    *bool                      `json:"wechat_synced"`
	Address         string                     `json:"address"`
	ShippingAddress *workflows.ShippingAddress `json:"shipping_address"`
	Shipment        *struct {
		LogisticsType string              `json:"logistics_type"`
		Packages      []workflows.Package `json:"packages"`
		ItemDesc      string              `json:"item_desc"`
	} `json:"shipment"`
}

// place creates an order over HTTP and fails the test unless it is created.
func place(t *testing.T, env *testenv.Env, token string, items ...item) orderView {
	t.Helper()
	resp := env.Do(http.MethodPost, "/v1/orders", token, map[string]any{"items": items})
	if resp.Status != http.StatusCreated {
		t.Fatalf("create order: %d %s", resp.Status, resp.Body)
	}
	var o orderView
	resp.JSON(t, &o)
	return o
}

// pay asks for the wx.requestPayment parameters and fails the test unless
// they come.
func pay(t *testing.T, env *testenv.Env, token, orderNo string) payParams {
	t.Helper()
	resp := env.Do(http.MethodPost, "/v1/orders/"+orderNo+"/pay", token, nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("pay %s: %d %s", orderNo, resp.Status, resp.Body)
	}
	var p payParams
	resp.JSON(t, &p)
	if p.TimeStamp == "" || p.NonceStr == "" || !strings.HasPrefix(p.Package, "prepay_id=") || p.SignType != "RSA" || p.PaySign == "" {
		t.Fatalf("pay %s: not the five wx.requestPayment fields: %s", orderNo, resp.Body)
	}
	return p
}

// simPay plays the payer at the simulator.
func simPay(t *testing.T, env *testenv.Env, orderNo string) paysim.TransactionView {
	t.Helper()
	v, err := env.Sim.Pay(orderNo)
	if err != nil {
		t.Fatalf("simulator pay %s: %v", orderNo, err)
	}
	return v
}

// placePaid places an order, asks for its prepay, has the payer pay at the
// simulator and waits for the row to say PAID (its history is printed if the
// test fails). It returns the order and its workflow ID.
func placePaid(t *testing.T, env *testenv.Env, token string, items ...item) (orderView, string) {
	t.Helper()
	o := place(t, env, token, items...)
	wf := workflows.WorkflowID(o.OrderNo)
	historyOnFailure(t, env, wf)
	pay(t, env, token, o.OrderNo)
	simPay(t, env, o.OrderNo)
	waitStatus(t, env, o.OrderNo, status.Paid)
	return o, wf
}

func row(t *testing.T, env *testenv.Env, orderNo string) store.Order {
	t.Helper()
	o, err := env.Store.GetOrder(context.Background(), orderNo)
	if err != nil {
		t.Fatalf("order %s: %v", orderNo, err)
	}
	return o
}

// waitStatus waits until the order's row has the status.
func waitStatus(t *testing.T, env *testenv.Env, orderNo string, want status.Order) store.Order {
	t.Helper()
	var o store.Order
	testenv.Eventually(t, 90*time.Second, fmt.Sprintf("order %s %s", orderNo, want), func() (bool, string) {
		var err error
		o, err = env.Store.GetOrder(context.Background(), orderNo)
		return err == nil && o.Status == want, fmt.Sprint(o.Status, " ", err)
	})
	return o
}

// waitStock waits until the product's stock is want (stock moves in the
// activity after the status does) and fails the test if it never is.
func waitStock(t *testing.T, env *testenv.Env, productID, want int64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprintf("stock of product %d is %d", productID, want), func() (bool, string) {
		s := stock(t, env, productID)
		return s == want, fmt.Sprint(s)
	})
}

func stock(t *testing.T, env *testenv.Env, productID int64) int64 {
	t.Helper()
	ps, err := env.Store.GetProducts(context.Background(), []int64{productID})
	if err != nil {
		t.Fatal(err)
	}
	return ps[productID].Stock
}

// waitWorkflowClosed waits until the workflow has ended, and returns how.
func waitWorkflowClosed(t *testing.T, env *testenv.Env, workflowID string) enumspb.WorkflowExecutionStatus {
	t.Helper()
	var st enumspb.WorkflowExecutionStatus
	testenv.Eventually(t, 90*time.Second, "workflow "+workflowID+" ends", func() (bool, string) {
		desc, err := env.Temporal.DescribeWorkflowExecution(context.Background(), workflowID, "")
		if err != nil {
			return false, err.Error()
		}
		st = desc.GetWorkflowExecutionInfo().GetStatus()
		return st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, st.String()
	})
	return st
}

// signals counts the signals of a name in a workflow's history.
func signals(t *testing.T, env *testenv.Env, workflowID, name string) int {
	t.Helper()
	it := env.Temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == name {
			n++
		}
	}
	return n
}

// historyLength is the number of events in a workflow's history, -1 when
// there is no such workflow.
func historyLength(t *testing.T, env *testenv.Env, workflowID string) int64 {
	t.Helper()
	desc, err := env.Temporal.DescribeWorkflowExecution(context.Background(), workflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return -1
	}
	if err != nil {
		t.Fatalf("describe %s: %v", workflowID, err)
	}
	return desc.GetWorkflowExecutionInfo().GetHistoryLength()
}

// dumpHistory logs a workflow's history, for a failing saga journey.
func dumpHistory(t *testing.T, env *testenv.Env, workflowID string) {
	t.Helper()
	it := env.Temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var b strings.Builder
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			fmt.Fprintf(&b, "  (history: %v)\n", err)
			break
		}
		fmt.Fprintf(&b, "  %3d %s %s\n", ev.GetEventId(), ev.GetEventType(), eventDetail(ev.String()))
	}
	t.Logf("history of %s:\n%s", workflowID, b.String())
}

func eventDetail(s string) string {
	if len(s) > 400 {
		return s[:400] + "…"
	}
	return s
}

// dbSnapshot is every row the API could change, as text: equal snapshots
// mean the database did not change.
func dbSnapshot(t *testing.T, env *testenv.Env) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		"SELECT * FROM products ORDER BY id",
		"SELECT * FROM orders ORDER BY order_no",
		"SELECT * FROM order_items ORDER BY id",
		"SELECT * FROM payments ORDER BY id",
		"SELECT * FROM refunds ORDER BY id",
		"SELECT * FROM stock_ledger ORDER BY id",
		"SELECT * FROM after_sales ORDER BY id",
		"SELECT id, open_id FROM users ORDER BY id",
	} {
		var rows []map[string]any
		if err := env.Store.DB().Raw(q).Scan(&rows).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		fmt.Fprintf(&b, "%s\n%v\n", q, rows)
	}
	return b.String()
}

// temporalSnapshot is, for the workflows named, their history lengths (-1 =
// no such workflow): equal snapshots mean Temporal did not change them.
func temporalSnapshot(t *testing.T, env *testenv.Env, workflowIDs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, id := range workflowIDs {
		fmt.Fprintf(&b, "%s=%d ", id, historyLength(t, env, id))
	}
	return b.String()
}

// updatesAccepted counts the updates of a name the workflow accepted (a
// validator's refusal leaves no event).
func updatesAccepted(t *testing.T, env *testenv.Env, workflowID, name string) int {
	t.Helper()
	it := env.Temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		if a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil && a.GetAcceptedRequest().GetInput().GetName() == name {
			n++
		}
	}
	return n
}

// orderState is the order workflow's state query answer.
func orderState(t *testing.T, env *testenv.Env, orderNo string) workflows.OrderView {
	t.Helper()
	v, err := env.Temporal.QueryWorkflow(context.Background(), workflows.WorkflowID(orderNo), "", workflows.QueryState)
	if err != nil {
		t.Fatalf("state of order %s: %v", orderNo, err)
	}
	var view workflows.OrderView
	if err := v.Get(&view); err != nil {
		t.Fatal(err)
	}
	return view
}

// metricsText is what the env's /metrics serves (the API's, the worker's and
// the SDK's collectors share one registry in testenv).
func metricsText(t *testing.T, env *testenv.Env) string {
	t.Helper()
	resp := env.Do(http.MethodGet, "/metrics", "", nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.Status)
	}
	return string(resp.Body)
}

// ---- what Temporal's visibility lists ----

// markerPrefix names the workflows waitVisibility starts; snapshots leave
// them out.
const markerPrefix = "visibility-marker-"

// waitVisibility starts a workflow no worker runs and waits until visibility
// lists it, then terminates it. Visibility is indexed after the fact, so a
// list taken right after a request may not show a workflow the request
// started: once a workflow started later is listed, the earlier ones are
// (each history shard indexes in order and the shards keep up with each other
// within milliseconds; checks that must see nothing also hold for a while).
func waitVisibility(t *testing.T, env *testenv.Env) {
	t.Helper()
	ctx := context.Background()
	id := markerPrefix + randText(16)
	run, err := env.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: markerPrefix + "no-worker", WorkflowExecutionTimeout: time.Minute,
	}, "VisibilityMarker")
	if err != nil {
		t.Fatalf("start visibility marker: %v", err)
	}
	testenv.Eventually(t, 30*time.Second, "visibility lists "+id, func() (bool, string) {
		resp, err := env.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId=%q", id)})
		if err != nil {
			return false, err.Error()
		}
		return len(resp.GetExecutions()) == 1, fmt.Sprintf("%d listed", len(resp.GetExecutions()))
	})
	if err := env.Temporal.TerminateWorkflow(ctx, id, run.GetRunID(), "visibility caught up"); err != nil {
		t.Fatalf("terminate visibility marker: %v", err)
	}
}

// consistently fails the test if cond is false at any poll within d.
func consistently(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if ok, state := cond(); !ok {
			t.Fatalf("%s: not true (%s)", what, state)
		}
	}
}

// namespaceSnapshot is every workflow of the namespace (an empty visibility
// query: every test's, not only this env's task queue), as a count and one
// "id run status" line each, once visibility has caught up and the list has
// stopped changing. Equal snapshots mean no workflow was started, ended or
// replaced meanwhile.
func namespaceSnapshot(t *testing.T, env *testenv.Env) string {
	t.Helper()
	waitVisibility(t, env)
	var last string
	same := 0
	testenv.Eventually(t, 30*time.Second, "the namespace's workflow list settles", func() (bool, string) {
		s := listNamespace(t, env)
		if s == last {
			same++
		} else {
			last, same = s, 0
		}
		return same >= 3, ""
	})
	return last
}

func listNamespace(t *testing.T, env *testenv.Env) string {
	t.Helper()
	var lines []string
	var token []byte
	for {
		resp, err := env.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: "", PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			t.Fatalf("list the namespace's workflows: %v", err)
		}
		for _, ex := range resp.GetExecutions() {
			if id := ex.GetExecution().GetWorkflowId(); !strings.HasPrefix(id, markerPrefix) {
				lines = append(lines, id+" "+ex.GetExecution().GetRunId()+" "+ex.GetStatus().String())
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	sort.Strings(lines)
	return fmt.Sprintf("%d workflows\n%s", len(lines), strings.Join(lines, "\n"))
}

// ---- WeChat Pay callbacks made by the test ----

// notifier signs callbacks as WeChat Pay (the simulator's platform key, from
// the key directory testenv generated: docs/PAYSIM.md, "Dev keys"), so tests
// can send callbacks no simulator would: replays, forgeries, stale ones,
// payments for orders it never saw.
type notifier struct {
	url      string
	serial   string
	key      *rsa.PrivateKey
	apiV3Key string
	now      func() time.Time
}

func newNotifier(t *testing.T, env *testenv.Env) *notifier {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(env.Config.PayPublicKeyFile), "paysim_platform_key.pem"))
	if err != nil {
		t.Fatalf("simulator platform key: %v", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("simulator platform key: not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return &notifier{url: env.URL + "/v1/wechatpay/notify", serial: env.Config.PayPublicKeyID, key: k.(*rsa.PrivateKey),
		apiV3Key: env.Config.PayAPIv3Key, now: time.Now}
}

// callback is one signed request, ready to send (and to send again).
type callback struct {
	body    []byte
	headers map[string]string
	// chunked sends the body without a Content-Length (Transfer-Encoding:
	// chunked), so only reading it can tell how long it is.
	chunked bool
}

func randText(n int) string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// envelope seals payload as WeChat does: AEAD_AES_256_GCM with the APIv3 key.
func (n *notifier) envelope(t *testing.T, eventType, originalType string, payload any) []byte {
	t.Helper()
	plain, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher([]byte(n.apiV3Key))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := randText(12)
	ad := originalType
	sealed := gcm.Seal(nil, []byte(nonce), plain, []byte(ad))
	env := map[string]any{
		"id":            "EV-" + randText(16),
		"create_time":   n.now().Format(time.RFC3339),
		"resource_type": "encrypt-resource",
		"event_type":    eventType,
		"summary":       "test",
		"resource": map[string]any{
			"original_type":   originalType,
			"algorithm":       "AEAD_AES_256_GCM",
			"ciphertext":      base64.StdEncoding.EncodeToString(sealed),
			"associated_data": ad,
			"nonce":           nonce,
		},
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign signs body at time ts with key (nil = the platform key).
func (n *notifier) sign(t *testing.T, body []byte, ts time.Time, key *rsa.PrivateKey) callback {
	t.Helper()
	if key == nil {
		key = n.key
	}
	tsText := strconv.FormatInt(ts.Unix(), 10)
	nonce := randText(32)
	h := sha256.Sum256([]byte(tsText + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return callback{body: body, headers: map[string]string{
		"Wechatpay-Timestamp":      tsText,
		"Wechatpay-Nonce":          nonce,
		"Wechatpay-Serial":         n.serial,
		"Wechatpay-Signature":      base64.StdEncoding.EncodeToString(sig),
		"Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
	}}
}

// payment is a TRANSACTION.SUCCESS payload as WeChat sends it.
func payment(appID, mchID, orderNo, transactionID string, totalFen int64) map[string]any {
	return map[string]any{
		"appid": appID, "mchid": mchID, "out_trade_no": orderNo, "transaction_id": transactionID,
		"trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
		"success_time": time.Now().Format(time.RFC3339),
		"payer":        map[string]any{"openid": "o-test-payer"},
		"amount":       map[string]any{"total": totalFen, "payer_total": totalFen, "currency": "CNY", "payer_currency": "CNY"},
	}
}

// send posts a callback; it answers the status and body.
func (n *notifier) send(t *testing.T, cb callback) (int, string) {
	t.Helper()
	var body io.Reader = bytes.NewReader(cb.body)
	if cb.chunked {
		// A reader http.NewRequest cannot take the length of.
		body = io.MultiReader(body)
	}
	req, err := http.NewRequest(http.MethodPost, n.url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range cb.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("notify: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ---- a worker of the test's own, so the test decides where callbacks land ----

// callbackFront is where the simulator sends this test's callbacks: the
// test's own worker gives WeChat front's URL as the notify URL. By default it
// passes them to the env's API; a test can put another handler in front.
type callbackFront struct {
	URL     string
	handler atomic.Pointer[http.Handler]

	mu       sync.Mutex
	captured []callback
}

// Captured returns the callbacks that reached the front, as sent.
func (f *callbackFront) Captured() []callback {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]callback(nil), f.captured...)
}

// newCallbackFront stops env's worker and starts one whose prepays name the
// front as the notify URL.
func newCallbackFront(t *testing.T, env *testenv.Env) *callbackFront {
	t.Helper()
	f := &callbackFront{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 2<<20))
		cb := callback{body: body, headers: map[string]string{}}
		for _, h := range []string{"Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial", "Wechatpay-Signature", "Wechatpay-Signature-Type"} {
			cb.headers[h] = r.Header.Get(h)
		}
		f.mu.Lock()
		f.captured = append(f.captured, cb)
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		(*f.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	f.Set(newRevProxy(env.URL))

	cfg := env.Config
	cfg.PayNotifyURL = f.URL + "/v1/wechatpay/notify"
	pay, err := app.NewWechatPay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.StopWorker()
	w := app.NewWorker(cfg, env.Temporal, env.Store, pay, env.Shipping, testLogger(t))
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return f
}

func (f *callbackFront) Set(h http.Handler) { f.handler.Store(&h) }

// closed answers every callback 503, as an API that is down.
var closedFront = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(`{"code":"FAIL","message":"down"}`))
})

// ---- a Temporal frontend that can be taken away and brought back ----

// tcpProxy forwards TCP connections to Temporal's frontend; stop closes the
// listener and every connection (Temporal is unreachable), start listens on
// the same address again.
type tcpProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, addr: "127.0.0.1:0", conns: map[net.Conn]bool{}}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) start(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old socket may linger a moment
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("proxy listen %s: %v", p.addr, err)
	}
	p.ln, p.addr = ln, ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *tcpProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// lazyClient is a Temporal client that connects when first used, through addr.
func lazyClient(t *testing.T, addr string) client.Client {
	t.Helper()
	c, err := client.NewLazyClient(client.Options{HostPort: addr, Namespace: temporalServer.Namespace(), Logger: quietSDKLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

type quietSDKLogger struct{}

func (quietSDKLogger) Debug(string, ...any) {}
func (quietSDKLogger) Info(string, ...any)  {}
func (quietSDKLogger) Warn(string, ...any)  {}
func (quietSDKLogger) Error(string, ...any) {}

// testLogger logs warnings and errors to the test, until it ends.
func testLogger(t *testing.T) *slog.Logger {
	w := &tLogWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tLogWriter struct {
	t    *testing.T
	done atomic.Bool
}

func (w *tLogWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// simNotifies are the simulator's notifications of an order.
func simNotifies(t *testing.T, env *testenv.Env, orderNo string) []paysim.NotifyView {
	t.Helper()
	v, ok := env.Sim.Transaction(orderNo)
	if !ok {
		t.Fatalf("the simulator has no transaction %s", orderNo)
	}
	return v.Notifies
}

func attemptStatuses(n paysim.NotifyView) []int {
	out := make([]int, 0, len(n.Attempts))
	for _, a := range n.Attempts {
		out = append(out, a.Status)
	}
	return out
}

// newTestServer serves h over HTTP for the test and returns its URL.
func newTestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// newRevProxy passes requests on to the API at base.
func newRevProxy(base string) http.Handler {
	target, _ := url.Parse(base)
	return httputil.NewSingleHostReverseProxy(target)
}

// newAPIThrough is an API like env's whose Temporal client connects through
// addr (a tcpProxy the test can stop).
func newAPIThrough(t *testing.T, env *testenv.Env, addr string) (http.Handler, error) {
	t.Helper()
	return app.NewAPIHandler(env.Config, env.Store, lazyClient(t, addr), prometheus.NewRegistry(), testLogger(t))
}

// doAt sends a bodiless request to an API at base (not env's).
func doAt(t *testing.T, base, method, path, token string) testenv.Response {
	t.Helper()
	return sendAt(t, base, method, path, token, nil)
}

// sendAt sends a request to an API at base, with headers given as name,
// value pairs. A body http.NewRequest cannot take the length of (wrap it in
// io.MultiReader) goes chunked, without a Content-Length.
func sendAt(t *testing.T, base, method, path, token string, body io.Reader, header ...string) testenv.Response {
	t.Helper()
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return testenv.Response{Status: resp.StatusCode, Body: b, Header: resp.Header}
}
