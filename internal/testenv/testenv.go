// Package testenv runs the real stack for end-to-end tests: the embedded
// Temporal server (one per test binary), PostgreSQL (a fresh schema per test),
// the order worker and the API over real HTTP.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/server/common/dynamicconfig"

	"ordersaga/internal/app"
	"ordersaga/internal/config"
	"ordersaga/internal/devserver"
	"ordersaga/internal/paysim"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
	"ordersaga/internal/wxpay"
	"ordersaga/workflows"
)

// Temporal starts the embedded server for a test binary; call it from
// TestMain and Stop it after m.Run.
func Temporal() (*devserver.Server, error) { return TemporalWithLimits(Limits{}) }

// Limits are Temporal's per-workflow limits, lowered so that a test can
// reach them in a few hundred requests; zero keeps Temporal's default.
type Limits struct {
	TotalUpdates int // history.maxTotalUpdates (2000)
	Signals      int // history.maximumSignalsPerExecution (10000)
	// SuggestContinueAsNew: limit.historyCount.suggestContinueAsNew (4096),
	// the history length at which Temporal suggests a workflow continue as
	// new — lowered, an order continues after a few steps.
	SuggestContinueAsNew int
}

// TemporalWithLimits is Temporal with the per-workflow limits given: every
// test of the binary runs under them.
func TemporalWithLimits(l Limits) (*devserver.Server, error) {
	dir, err := os.MkdirTemp("", "ordersaga-temporal-*")
	if err != nil {
		return nil, err
	}
	dc := map[dynamicconfig.Key]any{}
	if l.TotalUpdates > 0 {
		dc[dynamicconfig.WorkflowExecutionMaxTotalUpdates.Key()] = l.TotalUpdates
	}
	if l.Signals > 0 {
		dc[dynamicconfig.MaximumSignalsPerExecution.Key()] = l.Signals
	}
	if l.SuggestContinueAsNew > 0 {
		dc[dynamicconfig.HistoryCountSuggestContinueAsNew.Key()] = l.SuggestContinueAsNew
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return devserver.Start(ctx, devserver.Options{
		Dir: dir, FrontendPort: -1, UIPort: 0, SearchAttributes: workflows.SearchAttributes(), DynamicConfig: dc,
	})
}

// Options tune one environment.
type Options struct {
	PayTimeout  time.Duration // default 15m
	AutoConfirm time.Duration // default 7 days
	// NotifyScale shrinks WeChat's notify retry schedule (15 s, 15 s, 30 s,
	// 3 min, …); default 0.01.
	NotifyScale float64
	// RefundDelay is how long the simulator takes to settle a refund;
	// default 300 ms, negative = only when settled through the simulator.
	RefundDelay time.Duration
	// RefundInterval is WECHATPAY_REFUND_INTERVAL, and the simulator's
	// least time between two refunds of a payment (FREQUENCY_LIMITED);
	// default 1 s (WeChat's minute would make every test of refunds in
	// parts wait minutes).
	RefundInterval time.Duration
	// AfterSaleWindow is ORDER_AFTERSALE_WINDOW: default 1 s, so that the
	// workflow of a completed order ends about when it did before
	// after-sales; a test of after-sales of a completed order sets more.
	// The other after-sale timings are the defaults (days).
	AfterSaleWindow time.Duration
	// ShippingManaged is WECHAT_SHIPPING_MANAGED: "off" by default (a
	// shipped order completes as it did before shipping management);
	// "on" reports shipments to the simulator and completes on its word.
	ShippingManaged string
	// Sim adjusts the simulator's options (shipping faults, receipt
	// auto-confirm, …) before it starts.
	Sim func(*paysim.Options)
}

// Env is one test's stack.
type Env struct {
	t         testing.TB
	Store     *store.Store
	Temporal  client.Client
	Config    config.Config
	URL       string
	TaskQueue string
	// Sim is the WeChat Pay simulator the worker and the API talk to over
	// HTTP at SimURL; tests play the payer and inject faults through it.
	Sim    *paysim.Sim
	SimURL string
	// Pay is a WeChat Pay client like the worker's (official SDK), for tests
	// that look at WeChat's side directly.
	Pay *wxpay.Client
	// Shipping is the worker's side of WeChat's shipping management.
	Shipping *app.Shipping

	log    *slog.Logger
	worker sdkworker.Worker
}

var queueSeq atomic.Int64

const (
	testAppID     = "wx0000000000test01"
	testAppSecret = "test-app-secret"
	testMchID     = "1900000109"
	// The message push settings of the test shop's console.
	TestPushToken  = "testPushToken01"
	TestPushAESKey = "testPushAesKey0123456789abcdefghijklmnopqrs"
)

// New starts a worker on a task queue of its own, against a fresh database
// schema, the WeChat Pay simulator, and the API in front of them, all over
// real HTTP.
func New(t testing.TB, ts *devserver.Server, opts Options) *Env {
	t.Helper()
	if opts.PayTimeout == 0 {
		opts.PayTimeout = 15 * time.Minute
	}
	if opts.AutoConfirm == 0 {
		opts.AutoConfirm = 7 * 24 * time.Hour
	}
	if opts.NotifyScale == 0 {
		opts.NotifyScale = 0.01
	}
	if opts.RefundDelay == 0 {
		opts.RefundDelay = 300 * time.Millisecond
	}
	if opts.RefundInterval == 0 {
		opts.RefundInterval = time.Second
	}
	if opts.AfterSaleWindow == 0 {
		opts.AfterSaleWindow = time.Second
	}
	if opts.ShippingManaged == "" {
		opts.ShippingManaged = config.ShippingOff
	}
	tw := &testWriter{t: t}
	t.Cleanup(func() { tw.done.Store(true) }) // registered first, so it runs last
	log := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st := storetest.NewPostgres(t)

	// The API's address must be known before the worker is configured: it is
	// the notify URL the worker gives WeChat with each prepay.
	var api atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := api.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)

	// The simulator stands in for WeChat Pay and jscode2session, over real HTTP.
	keys, err := paysim.EnsureDevKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	shop := app.SimShop{AppID: testAppID, AppSecret: testAppSecret, MchID: testMchID, PushToken: TestPushToken, PushAESKey: TestPushAESKey}
	simOpts := shop.SimOptions(keys)
	simOpts.NotifyScale = opts.NotifyScale
	simOpts.RefundDelay = opts.RefundDelay
	simOpts.RefundInterval = opts.RefundInterval
	simOpts.PushURL = app.EventsURL(srv.URL)
	simOpts.Logger = log.With("component", "paysim")
	if opts.Sim != nil {
		opts.Sim(&simOpts)
	}
	sim := paysim.New(simOpts)
	simSrv := httptest.NewServer(sim.Handler())
	// Stop the simulator (and its notify retries) before the API goes away.
	t.Cleanup(simSrv.Close)
	t.Cleanup(sim.Close)

	cfg := config.Config{
		TemporalNamespace: ts.Namespace(),
		TemporalTaskQueue: fmt.Sprintf("orders-test-%d-%d", os.Getpid(), queueSeq.Add(1)),
		OrderPayTimeout:   opts.PayTimeout,
		OrderAutoConfirm:  opts.AutoConfirm,
		RefundInterval:    opts.RefundInterval,
		AfterSaleWindow:   opts.AfterSaleWindow,
		JWTSecret:         strings.Repeat("j", 32),
		AdminToken:        "admin-token-for-tests",
		ShutdownTimeout:   5 * time.Second,
		HTTPClientTimeout: 5 * time.Second,
		ShippingManaged:   opts.ShippingManaged,
	}
	app.UseSimulator(&cfg, shop, keys, simSrv.URL, srv.URL)
	// One registry, as in `ordersaga dev`: the API's /metrics shows the
	// worker's WeChat calls, the SDK's metrics and the workflows' counters.
	reg, sdkMetrics := app.NewMetrics()
	app.DeclareWorkerMetrics(sdkMetrics, cfg.TemporalNamespace, cfg.TemporalTaskQueue)
	pay, err := app.NewWechatPay(cfg, app.WithCallMetrics(reg))
	if err != nil {
		t.Fatalf("wechat pay client: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tc, err := ts.Dial(ctx, client.Options{Logger: sdklog.NewStructuredLogger(log), MetricsHandler: sdkMetrics.Handler()})
	if err != nil {
		t.Fatalf("dial temporal: %v", err)
	}
	t.Cleanup(tc.Close)

	e := &Env{t: t, Store: st, Temporal: tc, Config: cfg, URL: srv.URL, TaskQueue: cfg.TemporalTaskQueue,
		Sim: sim, SimURL: simSrv.URL, Pay: pay, Shipping: app.NewShipping(cfg, log, reg), log: log}
	e.StartWorker()
	t.Cleanup(e.StopWorker)

	h, err := app.NewAPIHandler(cfg, st, tc, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	api.Store(&h)
	return e
}

// StartWorker starts the order worker (New does; after StopWorker it starts a
// new one, as a restarted worker process would).
func (e *Env) StartWorker() {
	e.t.Helper()
	e.StartWorkerWith(func(*sdkworker.Options) {})
}

// StartWorkerWith is StartWorker with the worker's options edited: a test
// that stands in for another build of the worker (an interceptor, a longer
// deadlock timeout).
func (e *Env) StartWorkerWith(edit func(*sdkworker.Options)) {
	e.t.Helper()
	if e.worker != nil {
		return
	}
	opts := app.WorkerOptions(e.Config)
	edit(&opts)
	w := app.NewWorkerWithOptions(e.Config, e.Temporal, e.Store, e.Pay, e.Shipping, e.log, opts)
	if err := w.Start(); err != nil {
		e.t.Fatalf("start worker: %v", err)
	}
	e.worker = w
}

// StopWorker stops the worker: workflows and activities wait on the server
// until StartWorker.
func (e *Env) StopWorker() {
	if e.worker != nil {
		e.worker.Stop()
		e.worker = nil
	}
}

// Seed adds products and returns them with their ids.
func (e *Env) Seed(ps ...store.Product) []store.Product {
	e.t.Helper()
	out := make([]store.Product, 0, len(ps))
	for _, p := range ps {
		created, err := e.Store.CreateProduct(context.Background(), p)
		if err != nil {
			e.t.Fatalf("seed product %q: %v", p.Name, err)
		}
		out = append(out, created)
	}
	return out
}

// UserToken creates (or finds) the user with this openid and returns its id
// and a valid token, as login would.
func (e *Env) UserToken(openID string) (int64, string) {
	e.t.Helper()
	u, err := e.Store.UpsertUserByOpenID(context.Background(), openID)
	if err != nil {
		e.t.Fatal(err)
	}
	tokens, err := app.Tokens(e.Config)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, _, err := tokens.Issue(u.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID, tok
}

// Response is an HTTP answer with its body read.
type Response struct {
	Status int
	Body   []byte
	Header http.Header
}

// JSON decodes the body into v, failing the test when it is not JSON.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.Body)
	}
}

// ErrorCode is the code of an error body, "" when the body is not one.
func (r Response) ErrorCode() string {
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(r.Body, &b) != nil || b.Error.Message == "" {
		return ""
	}
	return b.Error.Code
}

// ErrorMessage is the message of an error body, "" when the body is not one.
func (r Response) ErrorMessage() string {
	var b struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &b)
	return b.Error.Message
}

// Do sends a request; body may be nil, a string/[]byte sent as is, or a value
// marshalled to JSON.
func (e *Env) Do(method, path, token string, body any) Response {
	e.t.Helper()
	return e.DoWith(method, path, token, body, nil)
}

// DoWith is Do with edit applied to the request before it is sent (headers).
func (e *Env) DoWith(method, path, token string, body any, edit func(*http.Request)) Response {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Body: data, Header: resp.Header}
}

// Eventually polls cond until it holds or the deadline passes. Waiting is not
// a timing assertion: the deadline only bounds a hung test.
func Eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v (last: %s)", what, within, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Workflows lists the workflows matching a visibility query on this env's
// task queue.
func (e *Env) Workflows(query string) []string {
	e.t.Helper()
	q := fmt.Sprintf("TaskQueue=%q", e.TaskQueue)
	if query != "" {
		q += " AND " + query
	}
	resp, err := e.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: q})
	if err != nil {
		e.t.Fatalf("list workflows %q: %v", q, err)
	}
	var ids []string
	for _, ex := range resp.GetExecutions() {
		ids = append(ids, ex.GetExecution().GetWorkflowId())
	}
	return ids
}

// UserQuery is the visibility filter for a user's orders.
func UserQuery(uid int64) string {
	return fmt.Sprintf("OrderUserID=%q", strconv.FormatInt(uid, 10))
}

// testWriter sends logs to the test's output; after the test it drops them
// (the SDK may still log while its goroutines wind down).
type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
