package workflows

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/metrics"
	"ordersaga/internal/status"
)

// Orders that wait for months, in the time-skipping environment: every
// run of the workflow's chain in an environment of its own, the next one
// started from the continue-as-new the last ended with, at the time it
// ended, with the same world (database, WeChat) behind them.

const day = 24 * time.Hour

// historyModel counts, for one run, the events the server would have
// written to its history, and hands the count to the workflow as
// GetCurrentHistoryLength (the time-skipping environment keeps no
// history). It counts high: every input in a workflow task of its own
// (three events), every activity completion with a search-attribute upsert
// or marker after it, every retry attempt as a new activity.
type historyModel struct {
	env    *testsuite.TestWorkflowEnvironment
	events int
}

func newHistoryModel(env *testsuite.TestWorkflowEnvironment) *historyModel {
	m := &historyModel{env: env}
	m.add(4) // started, and the first workflow task
	env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { m.add(2) })
	env.SetOnActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) { m.add(5) })
	env.SetOnLocalActivityStartedListener(func(*activity.Info, context.Context, []any) { m.add(2) })
	env.SetOnTimerScheduledListener(func(string, time.Duration) { m.add(1) })
	env.SetOnTimerFiredListener(func(string) { m.add(4) })
	env.SetOnTimerCanceledListener(func(string) { m.add(1) })
	return m
}

func (m *historyModel) add(n int) {
	m.events += n
	m.env.SetCurrentHistoryLength(m.events)
}

// runRecord is one run of a chain.
type runRecord struct {
	from, to time.Duration // since the chain started
	events   int           // its modelled history at its end
}

// chain drives one workflow through all its runs. Steps are scheduled at
// times since the chain started, and run in whichever run is alive then.
type chain struct {
	t       *testing.T
	w       *world
	start   time.Time
	metrics *metrics.Temporal
	steps   []*chainStep
	runs    []runRecord
	// handedOn are the inputs the runs that continued as new handed on.
	handedOn []any
	// The run now: its environment and history.
	env   *testsuite.TestWorkflowEnvironment
	model *historyModel
	// setup runs on each new environment before the run starts.
	setup func(env *testsuite.TestWorkflowEnvironment)
	// strays are the stray payment workflows the runs started, by ID.
	strays map[string]StrayPaymentInput
	seq    int
}

type chainStep struct {
	at   time.Duration
	do   func()
	done bool
}

func newChain(t *testing.T, w *world) *chain {
	var suite testsuite.WorkflowTestSuite
	return &chain{t: t, w: w, start: suite.NewTestWorkflowEnvironment().Now(), metrics: metrics.NewTemporal(),
		strays: map[string]StrayPaymentInput{}}
}

func (c *chain) at(at time.Duration, do func()) {
	c.steps = append(c.steps, &chainStep{at: at, do: do})
}

// signal sends a signal at `at`; arg is evaluated then.
func (c *chain) signal(at time.Duration, name string, arg func() any) {
	c.at(at, func() {
		c.env.SignalWorkflow(name, arg())
		c.model.add(4)
	})
}

func (c *chain) update(at time.Duration, name string, args ...any) *updateResult {
	c.seq++
	u := &updateResult{name: fmt.Sprintf("%s-%d", name, c.seq)}
	c.at(at, func() {
		c.env.UpdateWorkflow(name, u.name, &testsuite.TestUpdateCallback{
			OnAccept:   func() {},
			OnReject:   func(err error) { u.done, u.rejected, u.err = true, true, err },
			OnComplete: func(v any, err error) { u.done, u.value, u.err = true, v, err },
		}, args...)
		c.model.add(5)
	})
	return u
}

// state queries the workflow at `at`, in the run alive then.
func (c *chain) state(at time.Duration) *OrderView {
	v := &OrderView{}
	c.at(at, func() {
		enc, err := c.env.QueryWorkflow(QueryState)
		if err == nil {
			err = enc.Get(v)
		}
		if err != nil {
			c.t.Errorf("state query at %v: %v", at, err)
		}
	})
	return v
}

// scheduleNext registers the first step not yet done with the run that
// began at offset; each step registers the next when it has run. (One at a
// time: the environment takes at most a thousand callbacks ahead.)
func (c *chain) scheduleNext(env *testsuite.TestWorkflowEnvironment, offset time.Duration) {
	slices.SortStableFunc(c.steps, func(a, b *chainStep) int { return int(a.at - b.at) })
	for _, s := range c.steps {
		if s.done {
			continue
		}
		now := env.Now().Sub(c.start)
		env.RegisterDelayedCallback(func() {
			s.done = true
			s.do()
			c.scheduleNext(env, offset)
		}, max(s.at-now, 0))
		return
	}
}

// maxRuns bounds a chain: a year of waiting takes a handful of runs.
const maxRuns = 30

// runChain runs workflow name from in through every run until one ends,
// and returns its result.
func runChain[In, Out any](c *chain, name string, in In) Out {
	c.t.Helper()
	var offset time.Duration
	for {
		var suite testsuite.WorkflowTestSuite
		suite.SetMetricsHandler(c.metrics.Handler())
		env := suite.NewTestWorkflowEnvironment()
		// A chain runs thousands of workflow tasks: on a busy shared
		// machine one can wait past the default 1 s deadlock detector
		// without any coroutine being stuck.
		env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: time.Minute})
		c.w.register(env)
		env.SetStartTime(c.start.Add(offset))
		// A stray payment workflow a run started outlives it (ABANDON):
		// the run's end does not wait for it.
		env.SetDetachedChildWait(false)
		env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
			var in StrayPaymentInput
			if err := args.Get(&in); err == nil {
				c.strays[info.WorkflowExecution.ID] = in
			}
			c.model.add(5)
		})
		c.env, c.model = env, newHistoryModel(env)
		if c.setup != nil {
			c.setup(env)
		}
		c.scheduleNext(env, offset)
		if len(c.runs) == maxRuns {
			c.t.Fatalf("%d runs and still waiting: a workflow that never ends", maxRuns)
		}
		env.ExecuteWorkflow(name, in)
		end := env.Now().Sub(c.start)
		c.runs = append(c.runs, runRecord{from: offset, to: end, events: c.model.events + 2})
		if !env.IsWorkflowCompleted() {
			c.t.Fatalf("run %d did not complete", len(c.runs))
		}
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			if can.WorkflowType.Name != name {
				c.t.Fatalf("run %d continued as %s, want %s", len(c.runs), can.WorkflowType.Name, name)
			}
			var next In
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				c.t.Fatalf("run %d: the continued input: %v", len(c.runs), err)
			}
			c.handedOn = append(c.handedOn, next)
			in, offset = next, end
			continue
		}
		if err != nil {
			c.t.Fatalf("run %d failed: %v", len(c.runs), err)
		}
		var out Out
		if err := env.GetWorkflowResult(&out); err != nil {
			c.t.Fatal(err)
		}
		return out
	}
}

// withinBudget fails the test unless every run's history stayed under the
// budget: a run hands over at the first check past it, so it passes the
// budget by at most one round of its wait and the continue-as-new itself.
func (c *chain) withinBudget(round int) int {
	c.t.Helper()
	largest := 0
	for i, r := range c.runs {
		largest = max(largest, r.events)
		if r.events > historyBudgetEvents+round {
			c.t.Errorf("run %d (%v to %v) reached %d events; the budget is %d", i+1, r.from, r.to, r.events, historyBudgetEvents)
		}
	}
	if n := c.metrics.Sum(MetricHistoryLarge+"_total", nil); n != 0 {
		c.t.Errorf("%s counted %v: a run passed the warning size", MetricHistoryLarge, n)
	}
	return largest
}

// runsStartedBefore counts the runs that began before d.
func (c *chain) runsStartedBefore(d time.Duration) int {
	n := 0
	for _, r := range c.runs {
		if r.from < d {
			n++
		}
	}
	return n
}

func (c *chain) orderInput() OrderInput {
	return OrderInput{OrderNo: orderNo, UserID: 7, Items: []Item{{ProductID: 1, Quantity: 2}},
		PayTimeout: 15 * time.Minute, AppID: shopAppID, MchID: shopMchID}
}

// paidOrder schedules the order's creation, prepay and payment.
func (c *chain) paidOrder() {
	c.update(0, UpdateCreate)
	c.update(time.Minute, UpdatePay)
	c.signal(2*time.Minute, SignalPayment, func() any { return c.w.pay(orderNo) })
}

// pollRound is the most events one round of a refund's wait adds (a timer,
// a query): what a run may pass its budget by.
const pollRound = 11

func TestRefundProcessingFor400DaysSettlesOnceAcrossRuns(t *testing.T) {
	w := newWorld()
	c := newChain(t, w)
	c.paidOrder()
	c.update(time.Hour, UpdateRequestRefund, RefundRequest{By: ByUser, Reason: "changed my mind"})
	mid := c.state(time.Hour + 200*day)
	settledAt := time.Hour + 400*day
	c.signal(settledAt, SignalRefund, func() any {
		return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), status.RefundSuccess)
	})
	final := runChain[OrderInput, OrderView](c, OrderWorkflowName, c.orderInput())

	largest := c.withinBudget(pollRound)
	t.Logf("400 days of a PROCESSING refund: %d runs (%d began in the first year), the largest history %d events, %d queries",
		len(c.runs), c.runsStartedBefore(time.Hour+365*day), largest, w.count(ActivityQueryRefund))
	if len(c.runs) < 2 {
		t.Fatalf("one run waited 400 days (%d events): it never continued as new", c.runs[0].events)
	}
	if n := c.metrics.Sum(MetricContinuedAsNew+"_total", map[string]string{"workflow": OrderWorkflowName, "reason": continueEvents}); int(n) != len(c.runs)-1 {
		t.Errorf("%s counted %v for %d runs", MetricContinuedAsNew, n, len(c.runs))
	}
	// The outcome, once.
	if final.Status != status.Refunded || w.order(orderNo).status != status.Refunded {
		t.Fatalf("final %s, row %s; want REFUNDED", final.Status, w.order(orderNo).status)
	}
	if got, want := statuses(final), []status.Order{status.Paid, status.Refunding, status.Refunded}; !slices.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
	if at := final.Transitions[2].At.Sub(c.start); at != settledAt {
		t.Errorf("REFUNDED at %v, want at the notify (%v)", at, settledAt)
	}
	for name, want := range map[string]int{ActivityRequestRefund: 1, ActivitySettleRefund: 1, ActivityDeductStock: 1, ActivityFlagOrder: 1} {
		if n := w.count(name); n != want {
			t.Errorf("%s ran %d times, want %d", name, n, want)
		}
	}
	for _, to := range []status.Order{status.Refunding, status.Refunded} {
		if n := c.metrics.Sum(MetricOrderTransitions+"_total", map[string]string{"to": string(to)}); n != 1 {
			t.Errorf("%s counted %v times, want 1", to, n)
		}
	}
	// Stock and money as for a refund of a day.
	if w.stockOf(1) != 10 || w.restored[orderNo] != 1 {
		t.Errorf("stock %d restored %d times; want 10, once", w.stockOf(1), w.restored[orderNo])
	}
	if r := w.refund(OrderRefundNo(orderNo, 1)); r.amount != 17600 || r.status != status.RefundSuccess {
		t.Errorf("refund at WeChat %+v", r)
	}
	if !slices.Equal(final.Flags, []string{FlagRefundStalled}) {
		t.Errorf("flags %v, want REFUND_STALLED once", final.Flags)
	}
	// The state query sees one order, whichever run answers it.
	if mid.Status != status.Refunding || !slices.Equal(mid.Transitions, final.Transitions[:2]) || !reflect.DeepEqual(mid.Refunds[:1], []RefundView{{
		OutRefundNo: OrderRefundNo(orderNo, 1), RefundFen: 17600, Status: string(status.RefundProcessing), Reason: final.Refunds[0].Reason,
	}}) {
		t.Errorf("state on day 200: %+v", mid)
	}
	// The polling slowed: 30 min for 3 days (~150), 2 h until day 14
	// (~130), then 6 h (~1550 in 386 days) — not the 19 000 of 30 min.
	if n := w.count(ActivityQueryRefund); n < 1600 || n > 2100 {
		t.Errorf("%d refund queries in 400 days; want ~1850", n)
	}
}

// Signals that reach a run in the workflow task it continues as new in —
// the refund's notify, a second payment — are carried into the next run,
// not dropped with the run.
func TestSignalsThatArriveAsARunContinuesAreCarried(t *testing.T) {
	w := newWorld()
	c := newChain(t, w)
	c.paidOrder()
	c.update(time.Hour, UpdateRequestRefund, RefundRequest{By: ByAdmin, Reason: "damaged"})
	const switchAt = 5
	queries := 0
	w.onRefundQuery = func(w *world, no string) {
		queries++
		if queries != switchAt {
			return
		}
		// Temporal suggests continuing in the task this answer starts, and
		// two signals come in the same task, before the workflow runs.
		c.env.SetContinueAsNewSuggested(true)
		r := w.refunds[no]
		c.env.SignalWorkflowSkippingWorkflowTask(SignalRefund, RefundNotice{OutRefundNo: no, OutTradeNo: orderNo, TransactionID: r.txID,
			Status: status.RefundSuccess, RefundFen: r.amount, Source: "notify"})
		second := PaymentNotice{OutTradeNo: orderNo, TransactionID: "tx-second", TradeState: TradeSuccess, AppID: shopAppID, MchID: shopMchID,
			AmountFen: 17600, PayerTotalFen: 17600, Currency: "CNY", Source: "notify"}
		c.env.SignalWorkflowSkippingWorkflowTask(SignalPayment, second)
	}
	final := runChain[OrderInput, OrderView](c, OrderWorkflowName, c.orderInput())

	if len(c.runs) != 2 {
		t.Fatalf("%d runs, want 2 (one continue-as-new, when Temporal suggested it)", len(c.runs))
	}
	if n := c.metrics.Sum(MetricContinuedAsNew+"_total", map[string]string{"reason": continueSuggested}); n != 1 {
		t.Errorf("continue-as-new for Temporal's suggestion counted %v, want 1", n)
	}
	// The notify taken in the switch settled the refund: no more queries.
	if final.Status != status.Refunded || w.count(ActivityQueryRefund) != switchAt || w.count(ActivitySettleRefund) != 1 {
		t.Fatalf("final %s after %d queries and %d settles; want REFUNDED by the notify after %d queries, settled once",
			final.Status, w.count(ActivityQueryRefund), w.count(ActivitySettleRefund), switchAt)
	}
	if got := final.Transitions[len(final.Transitions)-1].Why; !strings.Contains(got, "notify") {
		t.Errorf("REFUNDED because %q; want the notify", got)
	}
	// The second payment, taken in the switch, is returned by its workflow.
	in, ok := c.strays[StrayPaymentWorkflowID("tx-second")]
	if !ok || in.Payment.TransactionID != "tx-second" || in.Payment.AmountFen != 17600 {
		t.Fatalf("the second payment was not handed to a stray payment workflow: %v", c.strays)
	}
	if len(c.strays) != 1 {
		t.Errorf("stray payment workflows %v, want the second payment's alone", c.strays)
	}
}

// WeChat's repeats of a payment's notify queue up while an order waits for
// its refund (only the end of the order looks at them), and a run hands its
// queue on. What the next run would skip anyway — repeats of the payment it
// keeps, a second notify of the same transaction — is left behind: a notify
// storm would otherwise grow the state run after run until the input of the
// continue-as-new passes Temporal's 2 MB payload limit, and Temporal
// terminates a run whose continue-as-new is too large. A payment the order
// does not keep is handed on, once, and returned.
func TestRepeatedNotifiesAreNotCarriedFromRunToRun(t *testing.T) {
	w := newWorld()
	c := newChain(t, w)
	c.paidOrder()
	c.update(time.Hour, UpdateRequestRefund, RefundRequest{By: ByUser})
	second := PaymentNotice{OutTradeNo: orderNo, TransactionID: "tx-second", TradeState: TradeSuccess, AppID: shopAppID, MchID: shopMchID,
		AmountFen: 17600, PayerTotalFen: 17600, Currency: "CNY", Source: "notify"}
	for i := range 300 {
		c.signal(2*time.Hour+time.Duration(i)*time.Second, SignalPayment, func() any { return w.pay(orderNo) })
	}
	for i := range 3 {
		c.signal(3*time.Hour+time.Duration(i)*time.Second, SignalPayment, func() any { return second })
	}
	c.at(day, func() { c.env.SetContinueAsNewSuggested(true) })
	c.at(day+time.Hour, func() { c.env.SetContinueAsNewSuggested(false) })
	c.signal(2*day, SignalRefund, func() any { return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), status.RefundSuccess) })
	final := runChain[OrderInput, OrderView](c, OrderWorkflowName, c.orderInput())

	if len(c.runs) != 2 {
		t.Fatalf("%d runs, want 2", len(c.runs))
	}
	inbox := c.handedOn[0].(OrderInput).Continued.Inbox
	if len(inbox) != 1 || inbox[0].TransactionID != second.TransactionID {
		byTx := map[string]int{}
		for _, p := range inbox {
			byTx[p.TransactionID]++
		}
		t.Errorf("the run handed on %d notices (by transaction: %v); want the second payment's, once", len(inbox), byTx)
	}
	if final.Status != status.Refunded {
		t.Fatalf("final %s, want REFUNDED", final.Status)
	}
	if _, ok := c.strays[StrayPaymentWorkflowID(second.TransactionID)]; !ok || len(c.strays) != 1 {
		t.Errorf("stray payment workflows %v, want the second payment's alone", c.strays)
	}
}

// A SHIPPED order waits for the user's confirmation or its auto-confirm —
// here 60 days — across runs: the deadline is in the state, so the order
// completes at the same moment whichever run is alive then. So it does on
// both paths: an order started before ChangeWechatShipping (its timer
// armed again in each run from AutoConfirmAt, and never the new path in a
// continued run, where a fresh GetVersion would answer it), and one of a
// shop WeChat does not manage (the deadline waited for by the
// shipping-management path).
func TestShippedOrderWaits60DaysAcrossRuns(t *testing.T) {
	paths := []struct {
		name    string
		oldPath bool
	}{
		{"started before shipping management", true},
		{"a shop WeChat does not manage", false},
	}
	tests := []struct {
		name string
		// busy schedules what happens while the order waits.
		busy     func(c *chain)
		wantRuns int // 0: at least 2
		reason   string
	}{
		{"Temporal suggests continuing on day 20 and day 40", func(c *chain) {
			for _, d := range []time.Duration{20 * day, 40 * day} {
				c.at(d, func() {
					// The suggestion comes with the next workflow task: a
					// repeated notify of the kept payment.
					c.env.SetContinueAsNewSuggested(true)
					c.env.SignalWorkflow(SignalPayment, c.w.pay(orderNo))
					c.model.add(4)
				})
			}
		}, 3, continueSuggested},
		{"WeChat repeats the payment notify every hour: the history reaches the budget", func(c *chain) {
			for h := 2 * time.Hour; h < 60*day; h += time.Hour {
				c.signal(h, SignalPayment, func() any { return c.w.pay(orderNo) })
			}
		}, 0, continueEvents},
	}
	for _, path := range paths {
		for _, tt := range tests {
			t.Run(path.name+"/"+tt.name, func(t *testing.T) {
				shippedOrderWaits60Days(t, path.oldPath, tt.busy, tt.wantRuns, tt.reason)
			})
		}
	}
}

func shippedOrderWaits60Days(t *testing.T, oldPath bool, busy func(c *chain), wantRuns int, reason string) {
	shippedAt := time.Hour
	w := newWorld()
	c := newChain(t, w)
	if oldPath {
		// The first run answers ChangeWechatShipping as an order
		// of before it; later runs would answer the new path if
		// they asked.
		c.setup = func(env *testsuite.TestWorkflowEnvironment) {
			if len(c.runs) == 0 {
				env.OnGetVersion(ChangeWechatShipping, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
			}
		}
	}
	c.paidOrder()
	ship := c.update(shippedAt, UpdateShip, ShipRequest{TrackingNo: "SF60"})
	busy(c)
	mid := c.state(30 * day)
	in := c.orderInput()
	in.AutoConfirm = 60 * day
	final := runChain[OrderInput, OrderView](c, OrderWorkflowName, in)

	largest := c.withinBudget(pollRound)
	t.Logf("%d runs, the largest history %d events", len(c.runs), largest)
	if wantRuns > 0 && len(c.runs) != wantRuns || len(c.runs) < 2 {
		t.Fatalf("%d runs, want %d", len(c.runs), wantRuns)
	}
	if n := c.metrics.Sum(MetricContinuedAsNew+"_total", map[string]string{"reason": reason}); int(n) != len(c.runs)-1 {
		t.Errorf("continue-as-new (%s) counted %v for %d runs", reason, n, len(c.runs))
	}
	if oldPath && (w.count(ActivityUploadShipping) != 0 || final.Wechat != nil) {
		t.Errorf("an order of before shipping management took the new path in a continued run: %d uploads, WeChat %+v",
			w.count(ActivityUploadShipping), final.Wechat)
	}
	if !oldPath && (w.count(ActivityUploadShipping) != 1 || final.Wechat == nil || final.Wechat.Managed == nil || *final.Wechat.Managed) {
		t.Errorf("WeChat asked %d times whether it manages the shop; WeChat's side %+v; want once, not managed",
			w.count(ActivityUploadShipping), final.Wechat)
	}
	if ship.view(t).Status != status.Shipped {
		t.Fatalf("ship answered %+v", ship.value)
	}
	if final.Status != status.Completed || w.order(orderNo).status != status.Completed {
		t.Fatalf("final %s, row %s", final.Status, w.order(orderNo).status)
	}
	done := final.Transitions[len(final.Transitions)-1]
	if at := done.At.Sub(c.start); at != shippedAt+60*day || !strings.Contains(done.Why, "60 days") {
		t.Errorf("completed at %v (%q), want by itself 60 days after shipping (%v)", at, done.Why, shippedAt+60*day)
	}
	if got, want := statuses(final), []status.Order{status.Paid, status.Shipped, status.Completed}; !slices.Equal(got, want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
	if w.count(ActivitySetOrderStatus) != 2 || w.count(ActivityDeductStock) != 1 || w.stockOf(1) != 8 {
		t.Errorf("SetOrderStatus %d, DeductStock %d, stock %d; want 2, 1, 8", w.count(ActivitySetOrderStatus), w.count(ActivityDeductStock), w.stockOf(1))
	}
	if len(c.strays) != 0 {
		t.Errorf("repeats of the kept payment were returned: %v", c.strays)
	}
	if mid.Status != status.Shipped || !slices.Equal(mid.Transitions, final.Transitions[:2]) {
		t.Errorf("state on day 30: %+v", mid)
	}
}

// An update that the step before a check decided is answered before the
// run continues: the ship update that came with Temporal's suggestion gets
// SHIPPED, and the next run waits for the auto-confirm.
func TestUpdateDecidedAsARunContinuesIsAnswered(t *testing.T) {
	w := newWorld()
	c := newChain(t, w)
	c.paidOrder()
	var ship *updateResult
	c.at(10*day, func() { c.env.SetContinueAsNewSuggested(true) })
	ship = c.update(10*day, UpdateShip, ShipRequest{TrackingNo: "SF10"})
	final := runChain[OrderInput, OrderView](c, OrderWorkflowName, c.orderInput())

	if len(c.runs) != 2 || c.runs[0].to != 10*day {
		t.Fatalf("runs %+v; want the first to continue on day 10, after the ship", c.runs)
	}
	if v := ship.view(t); v.Status != status.Shipped {
		t.Fatalf("ship answered %s", v.Status)
	}
	if final.Status != status.Completed || final.Transitions[2].At.Sub(c.start) != 10*day+DefaultAutoConfirm {
		t.Fatalf("final %s at %v; want COMPLETED by itself %s after shipping", final.Status, final.Transitions[2].At.Sub(c.start), human(DefaultAutoConfirm))
	}
	if w.count(ActivitySetOrderStatus) != 2 {
		t.Errorf("SetOrderStatus ran %d times, want 2 (ship, complete)", w.count(ActivitySetOrderStatus))
	}
}

func TestStrayPaymentRefundStalledForAYearSettlesOnceAcrossRuns(t *testing.T) {
	w := newWorld()
	w.orders["S1000001"] = &shopOrder{no: "S1000001", status: status.Closed, total: 100}
	w.trades["S1000001"] = &trade{state: TradeSuccess, txID: "tx-s", amount: 100}
	c := newChain(t, w)
	c.at(365*day, func() {
		w.mu.Lock()
		w.refundSettlesAs = status.RefundSuccess
		w.mu.Unlock()
	})
	final := runChain[StrayPaymentInput, StrayPaymentView](c, StrayPaymentWorkflowName, StrayPaymentInput{
		Payment: PaymentNotice{OutTradeNo: "S1000001", TransactionID: "tx-s", TradeState: TradeSuccess, AmountFen: 100, Source: "notify"},
		Reason:  "order S1000001 has ended",
	})

	largest := c.withinBudget(pollRound)
	t.Logf("a stray refund stalled for a year: %d runs, the largest history %d events, %d queries", len(c.runs), largest, w.count(ActivityQueryRefund))
	if len(c.runs) < 2 {
		t.Fatalf("one run waited a year: it never continued as new")
	}
	if final.Status != StrayRefunded || final.OutRefundNo != StrayRefundNo("tx-s") {
		t.Fatalf("final %+v", final)
	}
	for name, want := range map[string]int{ActivityRequestRefund: 1, ActivitySettleRefund: 1, ActivityExamineStrayPayment: 1} {
		if n := w.count(name); n != want {
			t.Errorf("%s ran %d times, want %d", name, n, want)
		}
	}
	for _, outcome := range []string{StrayRefunded, StrayRefundStalled} {
		if n := c.metrics.Sum(MetricStrayPayments+"_total", map[string]string{"outcome": outcome}); n != 1 {
			t.Errorf("stray outcome %s counted %v times, want 1", outcome, n)
		}
	}
	if n := c.metrics.Sum(MetricContinuedAsNew+"_total", map[string]string{"workflow": StrayPaymentWorkflowName}); int(n) != len(c.runs)-1 {
		t.Errorf("%s counted %v for %d runs", MetricContinuedAsNew, n, len(c.runs))
	}
	if r := w.refund(StrayRefundNo("tx-s")); r.amount != 100 || r.status != status.RefundSuccess {
		t.Errorf("refund at WeChat %+v", r)
	}
}

// The polling curve: every 30 minutes at most for the first 3 days, every
// 2 hours until day 14, then every 6.
func TestRefundPollingSlowsAsTheRefundAges(t *testing.T) {
	for _, tt := range []struct {
		age  time.Duration
		want time.Duration
	}{
		{time.Hour, 30 * time.Minute},
		{3*day - time.Minute, 30 * time.Minute},
		{3 * day, 2 * time.Hour},
		{14*day - time.Minute, 2 * time.Hour},
		{14 * day, 6 * time.Hour},
		{365 * day, 6 * time.Hour},
	} {
		if got := refundPollCap(tt.age); got != tt.want {
			t.Errorf("refundPollCap(%v) = %v, want %v", tt.age, got, tt.want)
		}
	}
}

// A run whose history is past the budget continues at its next check,
// whichever measure it passed; one past the warning size is counted
// (MetricHistoryLarge) for operators, once.
func TestRunPastItsBudgetContinuesAndIsCounted(t *testing.T) {
	tests := []struct {
		name      string
		grow      func(c *chain)
		reason    string
		wantLarge float64
	}{
		{"events", func(c *chain) { c.model.add(historyBudgetEvents) }, continueEvents, 0},
		{"bytes", func(c *chain) { c.env.SetCurrentHistorySize(historyBudgetBytes) }, continueBytes, 0},
		{"past the warning size", func(c *chain) { c.model.add(historyWarnEvents) }, continueEvents, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			c := newChain(t, w)
			c.paidOrder()
			c.at(day, func() {
				tt.grow(c)
				// The next workflow task: a repeated notify wakes the order.
				c.env.SignalWorkflow(SignalPayment, w.pay(orderNo))
			})
			c.update(2*day, UpdateRequestRefund, RefundRequest{By: ByUser})
			c.signal(2*day+time.Minute, SignalRefund, func() any {
				return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), status.RefundSuccess)
			})
			final := runChain[OrderInput, OrderView](c, OrderWorkflowName, c.orderInput())

			if len(c.runs) != 2 || c.runs[0].to != day {
				t.Fatalf("runs %+v; want the first to continue on day 1", c.runs)
			}
			if n := c.metrics.Sum(MetricContinuedAsNew+"_total", map[string]string{"workflow": OrderWorkflowName, "reason": tt.reason}); n != 1 {
				t.Errorf("continue-as-new (%s) counted %v, want 1", tt.reason, n)
			}
			if n := c.metrics.Sum(MetricHistoryLarge+"_total", map[string]string{"workflow": OrderWorkflowName}); n != tt.wantLarge {
				t.Errorf("%s counted %v, want %v", MetricHistoryLarge, n, tt.wantLarge)
			}
			// The next run takes the refund request as the first would have.
			if final.Status != status.Refunded || w.stockOf(1) != 10 || w.count(ActivitySettleRefund) != 1 {
				t.Errorf("final %s, stock %d, settled %d times", final.Status, w.stockOf(1), w.count(ActivitySettleRefund))
			}
		})
	}
}
