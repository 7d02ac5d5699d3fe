package activities_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"ordersaga/activities"
	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/wxapp"
	"ordersaga/internal/wxpay"
	"ordersaga/worker"
	"ordersaga/workflows"
)

// Keys are generated once per test binary (RSA generation is slow on a
// loaded machine); every test gets its own simulator.
var devKeys paysim.Keys

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "activities-keys-")
	if err != nil {
		panic(err)
	}
	devKeys, err = paysim.EnsureDevKeys(dir)
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// fx is one test's world: a fresh database, a WeChat Pay simulator over real
// HTTP, the real SDK client, and the activities registered on the SDK's
// activity test environment under their workflow names.
type fx struct {
	t    *testing.T
	ctx  context.Context
	st   *store.Store
	sim  *paysim.Sim
	cfg  wxpay.Config
	pay  *wxpay.Client
	env  *testsuite.TestActivityEnvironment
	acts *activities.Activities
	logs *syncBuffer
	// wxapp is the mini-program server client the shipping activities use
	// (WECHAT_SHIPPING_MANAGED as fxOptions.shipping says, default on).
	wxapp *wxapp.Client
}

type fxOptions struct {
	clientTimeout time.Duration
	// beforeRequest, when set, runs in the client's transport before each
	// request to WeChat Pay leaves (to change the database at that moment).
	beforeRequest func(*http.Request)
	// simClock, when set, is the simulator's clock.
	simClock func() time.Time
	// shipping is WECHAT_SHIPPING_MANAGED ("" = on); sim adjusts the
	// simulator's options.
	shipping string
	sim      func(*paysim.Options)
}

func newFx(t *testing.T, st *store.Store, opts ...func(*fxOptions)) *fx {
	t.Helper()
	var o fxOptions
	for _, fn := range opts {
		fn(&o)
	}
	if o.clientTimeout == 0 {
		o.clientTimeout = 5 * time.Second
	}
	// The shop's notify endpoint: the activities never read notifies, so it
	// only acknowledges them (the simulator would otherwise retry).
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	so := devKeys.SimOptions(paysim.DefaultAppID, paysim.DefaultMchID)
	so.NotifyScale = 0.001
	so.RefundDelay = -1 // refunds settle when a test says so
	so.Clock = o.simClock
	so.LoginSecret = "activities-test-app-secret"
	if o.sim != nil {
		o.sim(&so)
	}
	sim := paysim.New(so)
	simSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		sim.Close()
		simSrv.Close()
		sink.Close()
	})
	cfg := wxpay.Config{
		AppID:         paysim.DefaultAppID,
		MchID:         paysim.DefaultMchID,
		MchCertSerial: devKeys.MchCertSerial,
		MchPrivateKey: devKeys.MchPrivateKey,
		APIv3Key:      devKeys.APIv3Key,
		PublicKeyID:   devKeys.PublicKeyID,
		PublicKey:     devKeys.PublicKey,
		BaseURL:       simSrv.URL,
		NotifyURL:     sink.URL + "/v1/wechatpay/notify",
		Timeout:       o.clientTimeout,
	}
	if o.beforeRequest != nil {
		cfg.Transport = hookTransport{before: o.beforeRequest, next: http.DefaultTransport}
	}
	pay, err := wxpay.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	mini := wxapp.New(wxapp.Options{BaseURL: simSrv.URL, AppID: paysim.DefaultAppID, Secret: so.LoginSecret})
	if o.shipping == "" {
		o.shipping = wxapp.ManagedOn
	}
	acts := &activities.Activities{
		Store:    st,
		Pay:      pay,
		Wxapp:    mini,
		Shipping: wxapp.NewManaged(o.shipping, mini),
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      time.Now,
	}
	var suite testsuite.WorkflowTestSuite
	// The SDK logs every failed attempt; the failures here are on purpose.
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestActivityEnvironment()
	worker.RegisterActivities(env, acts)
	return &fx{t: t, ctx: context.Background(), st: st, sim: sim, cfg: cfg, pay: pay, env: env, acts: acts, logs: logs, wxapp: mini}
}

type hookTransport struct {
	before func(*http.Request)
	next   http.RoundTripper
}

func (h hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h.before(r)
	return h.next.RoundTrip(r)
}

// syncBuffer collects the activities' JSON logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the log records with this message.
func (b *syncBuffer) records(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(b.buf.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// run executes one activity by its registered name.
func (f *fx) run(name string, args ...any) (converter.EncodedValue, error) {
	f.t.Helper()
	return f.env.ExecuteActivity(name, args...)
}

// must executes an activity that must succeed.
func (f *fx) must(name string, args ...any) converter.EncodedValue {
	f.t.Helper()
	v, err := f.run(name, args...)
	if err != nil {
		f.t.Fatalf("%s: %v", name, err)
	}
	return v
}

func get[T any](t *testing.T, v converter.EncodedValue) T {
	t.Helper()
	var out T
	if err := v.Get(&out); err != nil {
		t.Fatalf("decode %T: %v", out, err)
	}
	return out
}

// twice runs an activity two times, as Temporal does when the first
// attempt's completion is lost, and checks that the second run left the
// database and WeChat Pay exactly as the first did. It returns both results.
func (f *fx) twice(orderNo, name string, args ...any) [2]converter.EncodedValue {
	f.t.Helper()
	var (
		out    [2]converter.EncodedValue
		db, wx [2]string
	)
	for i := range out {
		v, err := f.run(name, args...)
		if err != nil {
			f.t.Fatalf("%s attempt %d: %v", name, i+1, err)
		}
		out[i] = v
		db[i], wx[i] = f.dbState(orderNo), f.wechatState(orderNo)
	}
	if db[0] != db[1] {
		f.t.Errorf("%s run twice changed the database again:\nafter the first run:\n%s\nafter the second:\n%s", name, db[0], db[1])
	}
	if wx[0] != wx[1] {
		f.t.Errorf("%s run twice changed WeChat Pay again:\nafter the first run:\n%s\nafter the second:\n%s", name, wx[0], wx[1])
	}
	return out
}

// dbState renders everything the activities write about an order (and the
// stock of every product) so that two states compare as strings.
func (f *fx) dbState(orderNo string) string {
	f.t.Helper()
	var s struct {
		Order    *store.Order
		Ledger   []store.StockLedger
		Payments []store.Payment
		Refunds  []store.Refund
		Products []store.Product
	}
	o, err := f.st.GetOrder(f.ctx, orderNo)
	switch {
	case err == nil:
		s.Order = &o
	case !errors.Is(err, store.ErrNotFound):
		f.t.Fatal(err)
	}
	if s.Ledger, err = f.st.StockLedger(f.ctx, orderNo); err != nil {
		f.t.Fatal(err)
	}
	if s.Payments, err = f.st.ListPayments(f.ctx, orderNo); err != nil {
		f.t.Fatal(err)
	}
	if s.Refunds, err = f.st.ListRefunds(f.ctx, orderNo); err != nil {
		f.t.Fatal(err)
	}
	if s.Products, err = f.st.ListProducts(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// wechatState renders the simulator's view of the order's money: its trade
// state, prepay, payment, close and refunds (not its event log, which records
// repeated requests too).
func (f *fx) wechatState(orderNo string) string {
	f.t.Helper()
	v, ok := f.sim.Transaction(orderNo)
	if !ok {
		return "no transaction"
	}
	type refund struct{ OutRefundNo, RefundID, Status string }
	s := struct {
		TradeState, PrepayID, TransactionID string
		TotalFen, RefundedFen               int64
		ClosedAt, SuccessTime               *time.Time
		Refunds                             []refund
	}{v.TradeState, v.PrepayID, v.TransactionID, v.TotalFen, v.RefundedFen, v.ClosedAt, v.SuccessTime, nil}
	for _, r := range v.Refunds {
		s.Refunds = append(s.Refunds, refund{r.OutRefundNo, r.RefundID, r.Status})
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// ---- the shop ----

func (f *fx) product(name string, priceFen, stock int64) store.Product {
	f.t.Helper()
	p, err := f.st.CreateProduct(f.ctx, store.Product{Name: name, PriceFen: priceFen, Stock: stock})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fx) user(openID string) store.User {
	f.t.Helper()
	u, err := f.st.UpsertUserByOpenID(f.ctx, openID)
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

func line(p store.Product, qty int64) workflows.Item {
	return workflows.Item{ProductID: p.ID, Quantity: qty}
}

// order places an order through the CreateOrder activity, payable for 15 minutes.
func (f *fx) order(orderNo string, u store.User, items ...workflows.Item) workflows.CreatedOrder {
	f.t.Helper()
	return get[workflows.CreatedOrder](f.t, f.must(workflows.ActivityCreateOrder, workflows.CreateOrderInput{
		OrderNo: orderNo, UserID: u.ID, Items: items, PayDeadline: time.Now().Add(15 * time.Minute),
	}))
}

// coffeeOrder places an order of 2 × coffee (8800) and 1 × mug (3900).
func (f *fx) coffeeOrder(orderNo string) workflows.CreatedOrder {
	f.t.Helper()
	coffee := f.product("Yunnan coffee beans 500g", 8800, 10)
	mug := f.product("Enamel mug", 3900, 5)
	return f.order(orderNo, f.user("o-"+orderNo), line(coffee, 2), line(mug, 1))
}

func (f *fx) prepay(o workflows.CreatedOrder) workflows.PayParams {
	f.t.Helper()
	stored := f.getOrder(o.OrderNo)
	return get[workflows.PayParams](f.t, f.must(workflows.ActivityRequestPayment, workflows.RequestPaymentInput{
		OrderNo: o.OrderNo, UserID: stored.UserID, TotalFen: o.TotalFen, TimeExpire: o.PayDeadline,
	}))
}

// payerPays plays the payer and returns the payment as a query reports it.
func (f *fx) payerPays(orderNo string) workflows.PaymentNotice {
	f.t.Helper()
	if _, err := f.sim.Pay(orderNo); err != nil {
		f.t.Fatal(err)
	}
	n := get[workflows.PaymentNotice](f.t, f.must(workflows.ActivityQueryPayment, orderNo))
	if !n.Paid() {
		f.t.Fatalf("after paying, the query says %+v", n)
	}
	return n
}

// paidOrder is an order prepaid, paid at WeChat, marked PAID and its stock deducted.
func (f *fx) paidOrder(orderNo string) (workflows.CreatedOrder, workflows.PaymentNotice) {
	f.t.Helper()
	o := f.coffeeOrder(orderNo)
	f.prepay(o)
	n := f.payerPays(orderNo)
	f.must(workflows.ActivityMarkPaid, workflows.MarkPaidInput{OrderNo: orderNo, Payment: n})
	f.must(workflows.ActivityDeductStock, orderNo)
	return o, n
}

// refunding is a paid order moved to REFUNDING with its full refund requested.
func (f *fx) refunding(orderNo string) (workflows.RequestRefundInput, workflows.RefundNotice) {
	f.t.Helper()
	o, n := f.paidOrder(orderNo)
	f.must(workflows.ActivitySetOrderStatus, workflows.SetOrderStatusInput{
		OrderNo: orderNo, From: []status.Order{status.Paid, status.Shipped}, To: status.Refunding,
	})
	in := workflows.RequestRefundInput{
		OrderNo: orderNo, TransactionID: n.TransactionID, OutRefundNo: workflows.OrderRefundNo(orderNo, 1),
		RefundFen: o.TotalFen, TotalFen: o.TotalFen, Reason: "user asked before shipping",
	}
	return in, get[workflows.RefundNotice](f.t, f.must(workflows.ActivityRequestRefund, in))
}

// settled settles a PROCESSING refund at WeChat and returns it as a query reports it.
func (f *fx) settled(outRefundNo, status string) workflows.RefundNotice {
	f.t.Helper()
	if _, err := f.sim.SettleRefund(outRefundNo, status); err != nil {
		f.t.Fatal(err)
	}
	return get[workflows.RefundNotice](f.t, f.must(workflows.ActivityQueryRefund, outRefundNo))
}

func (f *fx) getOrder(orderNo string) store.Order {
	f.t.Helper()
	o, err := f.st.GetOrder(f.ctx, orderNo)
	if err != nil {
		f.t.Fatal(err)
	}
	return o
}

func (f *fx) stock(p store.Product) int64 {
	f.t.Helper()
	got, err := f.st.GetProduct(f.ctx, p.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return got.Stock
}

func (f *fx) transition(orderNo string, from, to status.Order) {
	f.t.Helper()
	if _, _, err := f.st.TransitionOrder(f.ctx, orderNo, []status.Order{from}, to, store.OrderUpdate{}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fx) faults(fs paysim.Faults) {
	f.t.Helper()
	if _, err := f.sim.ApplyFaults(fs); err != nil {
		f.t.Fatal(err)
	}
}

func endpointFault(endpoint string, ef paysim.EndpointFault) paysim.Faults {
	return paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{endpoint: &ef}}
}

func ledgerKinds(t *testing.T, st *store.Store, orderNo string) map[string]int {
	t.Helper()
	rows, err := st.StockLedger(context.Background(), orderNo)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Kind]++
	}
	return out
}

// ---- errors ----

// wantNonRetryable checks that err is a non-retryable ApplicationError of
// type errType, and returns it.
func wantNonRetryable(t *testing.T, err error, errType string) *temporal.ApplicationError {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != errType || !appErr.NonRetryable() {
		t.Fatalf("err = %v; want a non-retryable %s", err, errType)
	}
	return appErr
}

// wantRetryable checks that err is an error Temporal retries: not a
// non-retryable ApplicationError, and of none of the business types.
func wantRetryable(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("err = nil; want a retryable error")
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		if appErr.NonRetryable() {
			t.Fatalf("err = %v (type %s) is non-retryable; want retryable", err, appErr.Type())
		}
		for _, typ := range []string{workflows.ErrTypeOutOfStock, workflows.ErrTypeStatusConflict, workflows.ErrTypeInvalidOrder,
			workflows.ErrTypeWechatRefused, workflows.ErrTypeNotPayable, workflows.ErrTypeUnknownProduct} {
			if appErr.Type() == typ {
				t.Fatalf("err = %v has business type %s; want a plain retryable error", err, typ)
			}
		}
	}
}

// wechatCode is the WeChat error code a WECHAT_REFUSED error carries as its detail.
func wechatCode(t *testing.T, appErr *temporal.ApplicationError) string {
	t.Helper()
	var code string
	if err := appErr.Details(&code); err != nil {
		t.Fatalf("details of %v: %v", appErr, err)
	}
	return code
}

// waitFor polls cond until it holds, failing the test after timeout.
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
