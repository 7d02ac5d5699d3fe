package workflows

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/metrics"
	"ordersaga/internal/status"
)

// world stands in for the shop's database and WeChat Pay in the workflow
// unit tests, which are about the order of decisions under time skipping.
// The real activities have their own tests against PostgreSQL and the
// simulator, and the end-to-end tests run the workflow on all of them.
type world struct {
	mu sync.Mutex

	// The shop.
	stock    map[int64]int64
	price    map[int64]int64
	orders   map[string]*shopOrder
	restored map[string]int // order → RestoreStock runs that restored something
	// partRestored: part refund → its goods were put back (once).
	partRestored map[string]bool
	// refunded is what the shop's row says was refunded, by order.
	refunded map[string]int64
	// afterSaleRows are the after-sales' rows as SaveAfterSale wrote them,
	// by ID.
	afterSaleRows map[string]AfterSale

	// WeChat Pay.
	trades  map[string]*trade
	refunds map[string]*wxRefund
	// closeOnPaid: "refuse" (default) or "ok204" — WeChat's answer to closing
	// a paid order is unverified; the workflow must be right under both.
	closeOnPaid string
	// closeHasNoEffect: the close is answered but the order stays NOTPAY.
	closeHasNoEffect bool
	// refundSettlesAs is the status a PROCESSING refund has when it is next
	// queried ("" = stays PROCESSING).
	refundSettlesAs status.Refund
	// onQuery runs before each payment query answers (a payer acting
	// between the workflow's steps).
	onQuery func(w *world, orderNo string, n int)
	// onClose runs before the close is applied (paid a moment before close).
	onClose func(w *world, orderNo string)
	// onRefundQuery runs before each refund query answers.
	onRefundQuery func(w *world, outRefundNo string)

	// WeChat's shipping management: whether it manages the shop (false: the
	// activities answer Managed false, as with WECHAT_SHIPPING_MANAGED=off),
	// and its view of each order's payment.
	wxManaged bool
	wxOrders  map[string]*wxShipping
	// lostUploads: the next N uploads reach WeChat, their answers are lost.
	lostUploads int
	// onUpload runs before each attempt of an upload answers (attempt 1
	// begins a round); onWechatQuery before each question about an order.
	onUpload      func(w *world, in UploadShippingInput, attempt int32)
	onWechatQuery func(w *world, orderNo string)

	// Injected failures, taken in order, per activity name.
	failures map[string][]error
	// Every activity call, by name, with the argument it was given.
	calls map[string][]any
}

type shopOrder struct {
	no       string
	userID   int64
	status   status.Order
	total    int64
	items    []PricedItem
	txID     string
	flags    []string
	deducted bool
	tracking string
}

type trade struct {
	state  string
	txID   string
	amount int64
	appID  string
	mchID  string
}

// wxShipping is WeChat's shipping view of one order's payment.
type wxShipping struct {
	uploads  int // accepted uploads: 1, or 2 once the re-ship was spent
	state    int // WechatToShip … WechatRefunded
	reminded int
	lastBody UploadShippingInput
}

type wxRefund struct {
	no, txID, orderNo string
	amount            int64
	status            status.Refund
	items             []PricedItem // goods_detail
}

const (
	shopAppID = "wx-shop-app"
	shopMchID = "1900000001"
)

func newWorld() *world {
	return &world{
		stock:         map[int64]int64{1: 10, 2: 5},
		price:         map[int64]int64{1: 8800, 2: 3900},
		orders:        map[string]*shopOrder{},
		restored:      map[string]int{},
		partRestored:  map[string]bool{},
		refunded:      map[string]int64{},
		afterSaleRows: map[string]AfterSale{},
		trades:        map[string]*trade{},
		refunds:       map[string]*wxRefund{},
		closeOnPaid:   "refuse",
		failures:      map[string][]error{},
		calls:         map[string][]any{},
		wxOrders:      map[string]*wxShipping{},
	}
}

// wxOrder is WeChat's shipping view of an order (created as "to ship").
func (w *world) wxOrderLocked(no string) *wxShipping {
	x := w.wxOrders[no]
	if x == nil {
		x = &wxShipping{state: WechatToShip}
		w.wxOrders[no] = x
	}
	return x
}

func (w *world) wxOrder(no string) wxShipping {
	w.mu.Lock()
	defer w.mu.Unlock()
	return *w.wxOrderLocked(no)
}

// wxSetState sets WeChat's order_state of an order (the buyer confirmed,
// a refund outside the shop, …).
func (w *world) wxSetState(no string, state int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wxOrderLocked(no).state = state
}

func (w *world) enter(name string, arg any) error {
	w.calls[name] = append(w.calls[name], arg)
	if f := w.failures[name]; len(f) > 0 {
		w.failures[name] = f[1:]
		return f[0]
	}
	return nil
}

// failNext makes the next calls of an activity fail with errs, in order.
func (w *world) failNext(name string, errs ...error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures[name] = append(w.failures[name], errs...)
}

func (w *world) count(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.calls[name])
}

func (w *world) order(no string) shopOrder {
	w.mu.Lock()
	defer w.mu.Unlock()
	if o, ok := w.orders[no]; ok {
		return *o
	}
	return shopOrder{}
}

func (w *world) stockOf(id int64) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stock[id]
}

func (w *world) setStock(id, n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stock[id] = n
}

// payLocked plays the payer paying the order in full; it returns what the
// notify carries.
func (w *world) payLocked(no string) PaymentNotice {
	t := w.trades[no]
	if t == nil {
		panic("paying an order with no prepay: " + no)
	}
	if t.state != TradeSuccess {
		t.state, t.txID = TradeSuccess, "tx-"+no
	}
	return w.noticeLocked(no, "notify")
}

func (w *world) pay(no string) PaymentNotice {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.payLocked(no)
}

func (w *world) noticeLocked(no, source string) PaymentNotice {
	t := w.trades[no]
	n := PaymentNotice{OutTradeNo: no, TradeState: t.state, Source: source, AppID: t.appID, MchID: t.mchID, AmountFen: t.amount, Currency: "CNY"}
	if t.state == TradeSuccess || t.state == TradeRefund {
		n.TransactionID, n.PayerTotalFen = t.txID, t.amount
	}
	return n
}

func (w *world) refund(no string) wxRefund {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r, ok := w.refunds[no]; ok {
		return *r
	}
	return wxRefund{}
}

// --- the activities, as the workflow calls them by name ---

func (w *world) createOrder(_ context.Context, in CreateOrderInput) (CreatedOrder, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityCreateOrder, in); err != nil {
		return CreatedOrder{}, err
	}
	if o, ok := w.orders[in.OrderNo]; ok {
		return CreatedOrder{OrderNo: o.no, TotalFen: o.total, Items: o.items, PayDeadline: in.PayDeadline}, nil
	}
	var total int64
	var items []PricedItem
	for _, it := range in.Items {
		price, ok := w.price[it.ProductID]
		if !ok {
			return CreatedOrder{}, temporal.NewNonRetryableApplicationError("product does not exist", ErrTypeUnknownProduct, nil)
		}
		if w.stock[it.ProductID] < it.Quantity {
			return CreatedOrder{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("only %d left", w.stock[it.ProductID]), ErrTypeOutOfStock, nil)
		}
		total += price * it.Quantity
		items = append(items, PricedItem{ProductID: it.ProductID, UnitPriceFen: price, Quantity: it.Quantity})
	}
	w.orders[in.OrderNo] = &shopOrder{no: in.OrderNo, userID: in.UserID, status: status.Pending, total: total, items: items}
	return CreatedOrder{OrderNo: in.OrderNo, TotalFen: total, Items: items, PayDeadline: in.PayDeadline}, nil
}

func (w *world) checkStock(_ context.Context, no string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityCheckStock, no); err != nil {
		return err
	}
	for _, it := range w.orders[no].items {
		if w.stock[it.ProductID] < it.Quantity {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("product %d: only %d left", it.ProductID, w.stock[it.ProductID]), ErrTypeOutOfStock, nil)
		}
	}
	return nil
}

func (w *world) requestPayment(_ context.Context, in RequestPaymentInput) (PayParams, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityRequestPayment, in); err != nil {
		return PayParams{}, err
	}
	t := w.trades[in.OrderNo]
	switch {
	case t == nil:
		t = &trade{state: TradeNotPay, amount: in.TotalFen, appID: shopAppID, mchID: shopMchID}
		w.trades[in.OrderNo] = t
	case t.state == TradeClosed:
		return PayParams{}, temporal.NewNonRetryableApplicationError("ORDER_CLOSED", ErrTypeWechatRefused, nil)
	}
	n := len(w.calls[ActivityRequestPayment])
	return PayParams{TimeStamp: "1700000000", NonceStr: fmt.Sprint("nonce", n), Package: "prepay_id=wx" + in.OrderNo, SignType: "RSA", PaySign: fmt.Sprint("sign", n)}, nil
}

func (w *world) queryPayment(_ context.Context, no string) (PaymentNotice, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityQueryPayment, no); err != nil {
		return PaymentNotice{}, err
	}
	if w.onQuery != nil {
		w.onQuery(w, no, len(w.calls[ActivityQueryPayment]))
	}
	if w.trades[no] == nil {
		return PaymentNotice{OutTradeNo: no, TradeState: TradeNotFound, Source: "query"}, nil
	}
	return w.noticeLocked(no, "query"), nil
}

func (w *world) closePayment(_ context.Context, no string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityClosePayment, no); err != nil {
		return err
	}
	if w.onClose != nil {
		w.onClose(w, no)
	}
	t := w.trades[no]
	switch {
	case t == nil:
		return nil
	case t.state == TradeSuccess:
		if w.closeOnPaid == "refuse" {
			return temporal.NewNonRetryableApplicationError("ORDERPAID", ErrTypeWechatRefused, nil)
		}
		return nil
	case !w.closeHasNoEffect:
		t.state = TradeClosed
	}
	return nil
}

func (w *world) markPaid(_ context.Context, in MarkPaidInput) (OrderStatusResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityMarkPaid, in); err != nil {
		return OrderStatusResult{}, err
	}
	o := w.orders[in.OrderNo]
	switch {
	case o.status == status.Pending:
		o.status, o.txID = status.Paid, in.Payment.TransactionID
	case o.txID != in.Payment.TransactionID:
		return OrderStatusResult{}, temporal.NewNonRetryableApplicationError("order is "+string(o.status), ErrTypeStatusConflict, nil)
	}
	return OrderStatusResult{Status: o.status}, nil
}

func (w *world) deductStock(_ context.Context, no string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityDeductStock, no); err != nil {
		return err
	}
	o := w.orders[no]
	if o.deducted {
		return nil
	}
	for _, it := range o.items {
		if w.stock[it.ProductID] < it.Quantity {
			return temporal.NewNonRetryableApplicationError("out of stock", ErrTypeOutOfStock, nil)
		}
	}
	for _, it := range o.items {
		w.stock[it.ProductID] -= it.Quantity
	}
	o.deducted = true
	return nil
}

func (w *world) closeOrder(_ context.Context, in CloseOrderInput) (OrderStatusResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityCloseOrder, in); err != nil {
		return OrderStatusResult{}, err
	}
	o := w.orders[in.OrderNo]
	if o.status != status.Pending && o.status != status.Closed {
		return OrderStatusResult{}, temporal.NewNonRetryableApplicationError("order is "+string(o.status), ErrTypeStatusConflict, nil)
	}
	o.status = status.Closed
	if in.Flag != "" && !slices.Contains(o.flags, in.Flag) {
		o.flags = append(o.flags, in.Flag)
	}
	return OrderStatusResult{Status: o.status}, nil
}

func (w *world) setOrderStatus(_ context.Context, in SetOrderStatusInput) (OrderStatusResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivitySetOrderStatus, in); err != nil {
		return OrderStatusResult{}, err
	}
	o := w.orders[in.OrderNo]
	if o.status != in.To {
		if !slices.Contains(in.From, o.status) {
			return OrderStatusResult{}, temporal.NewNonRetryableApplicationError("order is "+string(o.status), ErrTypeStatusConflict, nil)
		}
		o.status = in.To
		if in.TrackingNo != "" {
			o.tracking = in.TrackingNo
		}
	}
	return OrderStatusResult{Status: o.status}, nil
}

func (w *world) flagOrder(_ context.Context, in FlagOrderInput) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityFlagOrder, in); err != nil {
		return err
	}
	if o := w.orders[in.OrderNo]; o != nil && !slices.Contains(o.flags, in.Flag) {
		o.flags = append(o.flags, in.Flag)
	}
	return nil
}

func (w *world) requestRefund(_ context.Context, in RequestRefundInput) (RefundNotice, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityRequestRefund, in); err != nil {
		return RefundNotice{}, err
	}
	r := w.refunds[in.OutRefundNo]
	if r == nil {
		r = &wxRefund{no: in.OutRefundNo, txID: in.TransactionID, orderNo: in.OrderNo, amount: in.RefundFen, status: status.RefundProcessing, items: in.Items}
		w.refunds[in.OutRefundNo] = r
		if t := w.trades[in.OrderNo]; t != nil && t.txID == in.TransactionID {
			t.state = TradeRefund
		}
	}
	return RefundNotice{OutRefundNo: r.no, OutTradeNo: r.orderNo, TransactionID: r.txID, Status: r.status, RefundFen: r.amount, Source: "query"}, nil
}

func (w *world) queryRefund(_ context.Context, no string) (RefundNotice, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityQueryRefund, no); err != nil {
		return RefundNotice{}, err
	}
	if w.onRefundQuery != nil {
		w.onRefundQuery(w, no)
	}
	r := w.refunds[no]
	if r.status == status.RefundProcessing && w.refundSettlesAs != "" {
		r.status = w.refundSettlesAs
	}
	return RefundNotice{OutRefundNo: r.no, OutTradeNo: r.orderNo, TransactionID: r.txID, Status: r.status, RefundFen: r.amount, Source: "query"}, nil
}

// settleRefundAtWechat settles a refund as WeChat would before its notify.
func (w *world) settleRefundAtWechat(no string, st status.Refund) RefundNotice {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.refunds[no]
	r.status = st
	return RefundNotice{OutRefundNo: r.no, OutTradeNo: r.orderNo, TransactionID: r.txID, Status: st, RefundFen: r.amount, Source: "notify"}
}

func (w *world) settleRefund(_ context.Context, in SettleRefundInput) (OrderStatusResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivitySettleRefund, in); err != nil {
		return OrderStatusResult{}, err
	}
	o := w.orders[in.OrderNo]
	if !in.OrderRefund || o == nil {
		return OrderStatusResult{}, nil
	}
	if in.Part {
		// The refund row decides: a part counts once, whatever the report.
		if r := w.refunds[in.Refund.OutRefundNo]; r != nil && r.status == status.RefundSuccess && !w.partRestored[r.no+"/counted"] {
			w.partRestored[r.no+"/counted"] = true
			w.refunded[in.OrderNo] += r.amount
		}
		if !in.Refund.Status.Final() || in.Refund.Status != status.RefundSuccess {
			if in.Refund.Status.Final() && !slices.Contains(o.flags, FlagRefundFailed) {
				o.flags = append(o.flags, FlagRefundFailed)
			}
		} else if in.RestoreStock && o.deducted && !w.partRestored[in.Refund.OutRefundNo] {
			for _, it := range in.Items {
				w.stock[it.ProductID] += it.Quantity
			}
			w.partRestored[in.Refund.OutRefundNo] = true
		}
		return OrderStatusResult{Status: o.status, RefundedFen: w.refunded[in.OrderNo]}, nil
	}
	if o.status == status.Refunding {
		if in.Refund.Status == status.RefundSuccess {
			o.status = status.Refunded
		} else {
			o.status = status.RefundFailed
			o.flags = append(o.flags, FlagRefundFailed)
		}
	}
	if in.RestoreStock && o.deducted && w.restored[in.OrderNo] == 0 {
		for _, it := range o.items {
			w.stock[it.ProductID] += it.Quantity
		}
		w.restored[in.OrderNo]++
	}
	return OrderStatusResult{Status: o.status}, nil
}

// saveAfterSale upserts the after-sale's row; an older step (UpdatedAt
// before the row's) changes nothing, as the store's upsert.
func (w *world) saveAfterSale(_ context.Context, a AfterSale) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivitySaveAfterSale, a); err != nil {
		return err
	}
	if old, ok := w.afterSaleRows[a.ID]; ok && old.UpdatedAt.After(a.UpdatedAt) {
		return nil
	}
	w.afterSaleRows[a.ID] = a
	return nil
}

func (w *world) afterSaleRow(id string) AfterSale {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.afterSaleRows[id]
}

func (w *world) examineStrayPayment(_ context.Context, p PaymentNotice) (StrayDecision, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityExamineStrayPayment, p); err != nil {
		return StrayDecision{}, err
	}
	o := w.orders[p.OutTradeNo]
	switch {
	case o == nil:
		return StrayDecision{Why: "unknown order"}, nil
	case o.txID == p.TransactionID:
		return StrayDecision{OrderKnown: true, Why: "order keeps this payment"}, nil
	}
	return StrayDecision{Refund: true, OrderKnown: true, Why: "order is " + string(o.status)}, nil
}

func (w *world) uploadShipping(ctx context.Context, in UploadShippingInput) (WechatShippingResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.onUpload != nil {
		w.onUpload(w, in, activity.GetInfo(ctx).Attempt)
	}
	if err := w.enter(ActivityUploadShipping, in); err != nil {
		return WechatShippingResult{}, err
	}
	if !w.wxManaged {
		return WechatShippingResult{}, nil
	}
	x := w.wxOrderLocked(in.OrderNo)
	res := WechatShippingResult{Managed: true}
	if in.Retry || activity.GetInfo(ctx).Attempt > 1 {
		if x.state >= WechatShipped && x.state <= WechatSettled {
			return WechatShippingResult{Managed: true, Uploaded: true, Already: true, OrderState: x.state}, nil
		}
		if x.state == WechatRefunded {
			res.OrderState = x.state
			return res, nil
		}
	}
	if in.Shipment.LogisticsType == "" {
		return res, temporal.NewNonRetryableApplicationError("shipped without logistics_type", ErrTypeWechatRefused, nil)
	}
	if x.uploads >= 2 {
		return res, temporal.NewNonRetryableApplicationError("errcode 10060003: re-ship used", ErrTypeWechatRefused, nil)
	}
	x.uploads++
	x.state, x.lastBody = WechatShipped, in
	if w.lostUploads > 0 {
		w.lostUploads--
		return res, retryable("answer lost")
	}
	res.Uploaded, res.OrderState = true, WechatShipped
	return res, nil
}

func (w *world) queryWechatShipping(_ context.Context, in WechatShippingInput) (WechatShippingResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityQueryWechatShipping, in); err != nil {
		return WechatShippingResult{}, err
	}
	if w.onWechatQuery != nil {
		w.onWechatQuery(w, in.OrderNo)
	}
	if !w.wxManaged {
		return WechatShippingResult{}, nil
	}
	x := w.wxOrderLocked(in.OrderNo)
	return WechatShippingResult{Managed: true, Uploaded: x.uploads > 0, OrderState: x.state}, nil
}

func (w *world) remindReceipt(_ context.Context, in WechatShippingInput) (RemindResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enter(ActivityRemindReceipt, in); err != nil {
		return RemindResult{}, err
	}
	w.wxOrderLocked(in.OrderNo).reminded++
	return RemindResult{Reminded: true}, nil
}

func (w *world) register(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterWorkflowWithOptions(OrderWorkflow, workflow.RegisterOptions{Name: OrderWorkflowName})
	env.RegisterWorkflowWithOptions(StrayPaymentWorkflow, workflow.RegisterOptions{Name: StrayPaymentWorkflowName})
	for name, fn := range map[string]any{
		ActivityCreateOrder: w.createOrder, ActivityCheckStock: w.checkStock,
		ActivityRequestPayment: w.requestPayment, ActivityQueryPayment: w.queryPayment,
		ActivityClosePayment: w.closePayment, ActivityMarkPaid: w.markPaid,
		ActivityDeductStock: w.deductStock, ActivityCloseOrder: w.closeOrder,
		ActivitySetOrderStatus: w.setOrderStatus, ActivityFlagOrder: w.flagOrder,
		ActivityRequestRefund: w.requestRefund, ActivityQueryRefund: w.queryRefund,
		ActivitySettleRefund: w.settleRefund, ActivityExamineStrayPayment: w.examineStrayPayment,
		ActivityUploadShipping: w.uploadShipping, ActivityQueryWechatShipping: w.queryWechatShipping,
		ActivityRemindReceipt: w.remindReceipt, ActivitySaveAfterSale: w.saveAfterSale,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

// --- driving one order through the test environment ---

const orderNo = "2026112300012"

// harness runs one OrderWorkflow in the time-skipping test environment:
// steps are scheduled at workflow times, then run() executes it all.
type harness struct {
	t     *testing.T
	env   *testsuite.TestWorkflowEnvironment
	w     *world
	in    OrderInput
	start time.Time
	seq   int
	// strays are the results of the StrayPaymentWorkflows the order started,
	// by workflow ID (the SDK's GetWorkflowResultByID answers the parent's).
	strays map[string]StrayPaymentView
	// strayInputs are the inputs they were started with.
	strayInputs map[string]StrayPaymentInput
	// metrics is what the workflows emitted through GetMetricsHandler.
	metrics *metrics.Temporal
}

func newHarness(t *testing.T, w *world) *harness {
	t.Helper()
	m := metrics.NewTemporal()
	var suite testsuite.WorkflowTestSuite
	suite.SetMetricsHandler(m.Handler())
	env := suite.NewTestWorkflowEnvironment()
	w.register(env)
	h := &harness{t: t, env: env, w: w, metrics: m, start: env.Now(), strays: map[string]StrayPaymentView{}, strayInputs: map[string]StrayPaymentInput{}, in: OrderInput{
		OrderNo: orderNo, UserID: 7, Items: []Item{{ProductID: 1, Quantity: 2}},
		PayTimeout: 15 * time.Minute, AppID: shopAppID, MchID: shopMchID,
	}}
	env.SetOnChildWorkflowCompletedListener(func(info *workflow.Info, result converter.EncodedValue, err error) {
		var v StrayPaymentView
		if err == nil && result != nil && result.Get(&v) == nil {
			h.strays[info.WorkflowExecution.ID] = v
		}
	})
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		var in StrayPaymentInput
		if err := args.Get(&in); err == nil {
			h.strayInputs[info.WorkflowExecution.ID] = in
		}
	})
	h.update(0, UpdateCreate)
	return h
}

// updateResult is the answer to one update.
type updateResult struct {
	name     string
	done     bool
	rejected bool
	value    any
	err      error
}

func (u *updateResult) refusedWith(t *testing.T, errType string) {
	t.Helper()
	if !u.done || u.err == nil || errorType(u.err) != errType {
		t.Fatalf("%s: done=%v rejected=%v err=%v; want a %s refusal", u.name, u.done, u.rejected, u.err, errType)
	}
}

func (u *updateResult) view(t *testing.T) OrderView {
	t.Helper()
	if !u.done || u.err != nil {
		t.Fatalf("%s: done=%v err=%v", u.name, u.done, u.err)
	}
	v, ok := u.value.(OrderView)
	if !ok {
		t.Fatalf("%s answered %T", u.name, u.value)
	}
	return v
}

// update sends an update at workflow time `at` (from the start).
func (h *harness) update(at time.Duration, name string, args ...any) *updateResult {
	h.seq++
	id := fmt.Sprintf("%s-%d", name, h.seq)
	u := &updateResult{name: id}
	h.env.RegisterDelayedCallback(func() {
		h.env.UpdateWorkflow(name, id, &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { u.done, u.rejected, u.err = true, true, err },
			OnComplete: func(v any, err error) {
				u.done, u.value, u.err = true, v, err
			},
		}, args...)
	}, at)
	return u
}

// at runs fn at workflow time `at`.
func (h *harness) at(at time.Duration, fn func()) {
	h.env.RegisterDelayedCallback(fn, at)
}

// signal sends a signal at workflow time `at`; arg is evaluated then.
func (h *harness) signal(at time.Duration, name string, arg func() any) {
	h.at(at, func() { h.env.SignalWorkflow(name, arg()) })
}

// state queries the workflow at `at`.
func (h *harness) state(at time.Duration) *OrderView {
	v := &OrderView{}
	h.at(at, func() {
		enc, err := h.env.QueryWorkflow(QueryState)
		if err != nil {
			h.t.Errorf("query at %v: %v", at, err)
			return
		}
		if err := enc.Get(v); err != nil {
			h.t.Errorf("decode state: %v", err)
		}
	})
	return v
}

// run executes the workflow to its end and returns its final view.
// queryPayParams asks the pay_params query at `at`; the error it answered
// lands in the result (nil: it answered parameters).
func (h *harness) queryPayParams(at time.Duration) *error {
	var err error
	h.at(at, func() { _, err = h.env.QueryWorkflow(QueryPayParams) })
	return &err
}

// payParams asks the pay_params query at `at` and fails the test unless it
// answers parameters.
func (h *harness) payParams(at time.Duration) *PayParams {
	p := &PayParams{}
	h.at(at, func() {
		enc, err := h.env.QueryWorkflow(QueryPayParams)
		if err != nil {
			h.t.Errorf("%s query at %v: %v", QueryPayParams, at, err)
			return
		}
		if err := enc.Get(p); err != nil {
			h.t.Errorf("decode %s: %v", QueryPayParams, err)
		}
	})
	return p
}

func (h *harness) run() OrderView {
	h.t.Helper()
	h.env.ExecuteWorkflow(OrderWorkflowName, h.in)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatalf("workflow did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("workflow failed: %v", err)
	}
	var v OrderView
	if err := h.env.GetWorkflowResult(&v); err != nil {
		h.t.Fatal(err)
	}
	return v
}

func (h *harness) elapsed() time.Duration { return h.env.Now().Sub(h.start) }

// completedAfter is when, since the start, the order went COMPLETED (a
// completed order refunding in parts then takes after-sales for its
// window: its workflow ends later).
func (h *harness) completedAfter(v OrderView) time.Duration {
	for _, tr := range v.Transitions {
		if tr.To == status.Completed {
			return tr.At.Sub(h.start)
		}
	}
	return h.elapsed()
}

// payment is the notify of the order's payment, made when the signal is sent.
func (h *harness) payment() func() any { return func() any { return h.w.pay(orderNo) } }

func statuses(v OrderView) []status.Order {
	out := []status.Order{}
	for _, tr := range v.Transitions {
		out = append(out, tr.To)
	}
	return out
}

func retryable(msg string) error { return temporal.NewApplicationError(msg, "WECHAT_5XX") }

func refused(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, ErrTypeWechatRefused, nil)
}

// counted is the value of a counter the workflows emitted.
func (h *harness) counted(name string, match map[string]string) float64 {
	return h.metrics.Sum(name+"_total", match)
}
