package workflows

import (
	"slices"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/status"
)

// A shipped order under WeChat's shipping management waits for weeks —
// reporting the shipment round by round, then asking WeChat whether the
// buyer confirmed — in the time-skipping environment, run by run (budget
// _test.go's chain). Each round is a step of the main loop, with the
// history budget checked between two, and its progress (next round or
// question, rounds and questions so far, the reminder) in WechatShipping:
// a continued run goes on where the last one stopped.

// shippingRound is the most events one step of the shipped order's wait
// adds in the history model: a question and the reminder (two activities)
// after a timer, or an upload round whose attempts the model counts one by
// one (a real history records only the last).
const shippingRound = 120

// managedChain is a paid order of a shop WeChat manages, shipped at 1 h.
func managedChain(t *testing.T, w *world) *chain {
	w.wxManaged = true
	c := newChain(t, w)
	c.paidOrder()
	c.update(time.Hour, UpdateShip, expressShipment)
	return c
}

// expectedAsks are the times the order asks WeChat when it shipped at
// shippedAt, the buyer confirmed at confirmedAt and each question came on
// time: at the auto-confirm time, then a seventh of it later, doubling to
// shippingAskMax, until the first question after confirmedAt.
func expectedAsks(shippedAt, autoConfirm, confirmedAt time.Duration) []time.Duration {
	var out []time.Duration
	at, wait := shippedAt+autoConfirm, autoConfirm/7
	for {
		out = append(out, at)
		if at >= confirmedAt {
			return out
		}
		at, wait = at+wait, min(wait*2, shippingAskMax)
	}
}

// The buyer never confirms in WeChat for 60 days: the order asks WeChat
// from the auto-confirm time on, across runs, on the schedule the first run
// set — the buyer reminded once in all, the shipment reported once — and
// completes once, at the first question after WeChat says receipt was
// confirmed.
func TestManagedShippedOrderAsksWeChatAcrossRunsUntilItSaysConfirmed(t *testing.T) {
	const confirmedAt = 60 * day
	tests := []struct {
		name     string
		busy     func(c *chain)
		wantRuns int // 0: at least 2
		reason   string
	}{
		{"Temporal suggests continuing every ten days", func(c *chain) {
			for d := 10 * day; d < confirmedAt; d += 10 * day {
				c.at(d+12*time.Hour, func() {
					// The suggestion comes with the next workflow task: a
					// repeated notify of the kept payment.
					c.env.SetContinueAsNewSuggested(true)
					c.env.SignalWorkflow(SignalPayment, c.w.pay(orderNo))
					c.model.add(4)
				})
			}
		}, 6, continueSuggested},
		{"WeChat repeats the payment notify every hour: the history reaches the budget", func(c *chain) {
			for h := 2 * time.Hour; h < confirmedAt; h += time.Hour {
				c.signal(h, SignalPayment, func() any { return c.w.pay(orderNo) })
			}
		}, 0, continueEvents},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			c := managedChain(t, w)
			var asks []time.Duration
			w.onWechatQuery = func(*world, string) { asks = append(asks, c.env.Now().Sub(c.start)) }
			c.at(confirmedAt, func() { w.wxSetState(orderNo, WechatConfirmed) })
			tt.busy(c)
			mid := c.state(30 * day)
			final := runChain[OrderInput, OrderView](c, OrderWorkflowName, c.orderInput())

			largest := c.withinBudget(shippingRound)
			t.Logf("%d runs, the largest history %d events, %d questions to WeChat", len(c.runs), largest, len(asks))
			if tt.wantRuns > 0 && len(c.runs) != tt.wantRuns || len(c.runs) < 2 {
				t.Fatalf("%d runs, want %d", len(c.runs), tt.wantRuns)
			}
			if n := c.metrics.Sum(MetricContinuedAsNew+"_total", map[string]string{"reason": tt.reason}); int(n) != len(c.runs)-1 {
				t.Errorf("continue-as-new (%s) counted %v for %d runs", tt.reason, n, len(c.runs))
			}
			// The questions came on the first run's schedule, whichever run
			// was alive: the next one is in the state.
			want := expectedAsks(time.Hour, DefaultAutoConfirm, confirmedAt)
			if !slices.Equal(asks, want) {
				t.Fatalf("WeChat asked at %v\nwant %v", asks, want)
			}
			asked := 0
			for _, r := range c.runs {
				if slices.ContainsFunc(asks, func(a time.Duration) bool { return a > r.from && a <= r.to }) {
					asked++
				}
			}
			if asked < 2 {
				t.Errorf("questions to WeChat in %d runs of %d; want the asking to go on across runs", asked, len(c.runs))
			}
			// Completed once, at the question after WeChat's confirmation.
			if final.Status != status.Completed || w.order(orderNo).status != status.Completed {
				t.Fatalf("final %s, row %s", final.Status, w.order(orderNo).status)
			}
			if got, want := statuses(final), []status.Order{status.Paid, status.Shipped, status.Completed}; !slices.Equal(got, want) {
				t.Fatalf("transitions %v, want %v", got, want)
			}
			done := final.Transitions[2]
			if at := done.At.Sub(c.start); at != asks[len(asks)-1] || !strings.Contains(done.Why, "WeChat says the buyer confirmed receipt") {
				t.Errorf("completed at %v (%q); want at the last question (%v), on WeChat's word", at, done.Why, asks[len(asks)-1])
			}
			if n := c.metrics.Sum(MetricOrderTransitions+"_total", map[string]string{"to": string(status.Completed)}); n != 1 {
				t.Errorf("COMPLETED counted %v times, want 1", n)
			}
			// The shipment reported once, the buyer reminded once, in all runs.
			x := w.wxOrder(orderNo)
			if x.uploads != 1 || w.count(ActivityUploadShipping) != 1 {
				t.Errorf("WeChat took %d uploads of %d calls; want one", x.uploads, w.count(ActivityUploadShipping))
			}
			if x.reminded != 1 || w.count(ActivityRemindReceipt) != 1 {
				t.Errorf("the buyer was reminded %d times (%d calls); want once", x.reminded, w.count(ActivityRemindReceipt))
			}
			if w.count(ActivitySetOrderStatus) != 2 {
				t.Errorf("SetOrderStatus ran %d times, want 2 (ship, complete)", w.count(ActivitySetOrderStatus))
			}
			if fw := final.Wechat; fw == nil || fw.Asks != len(asks) || !fw.Reminded || !fw.Uploaded || fw.UploadRounds != 1 {
				t.Errorf("WeChat's side at the end: %+v; want %d questions counted across runs", fw, len(asks))
			}
			if mid.Status != status.Shipped || mid.Wechat == nil || mid.Wechat.Asks == 0 || !mid.Wechat.Reminded ||
				!slices.Equal(mid.Transitions, final.Transitions[:2]) {
				t.Errorf("state on day 30: %s, WeChat %+v", mid.Status, mid.Wechat)
			}
			if len(final.Flags) != 0 || len(c.strays) != 0 {
				t.Errorf("flags %v, stray payments %v", final.Flags, c.strays)
			}
		})
	}
}

// WeChat's settlement event reaches the run in the workflow task it
// continues as new in (with Temporal's suggestion, after a question to
// WeChat): it is carried in the state, and the next run completes the
// order on it at once — no more questions.
func TestSettlementEventArrivingAsARunContinuesIsApplied(t *testing.T) {
	w := newWorld()
	c := managedChain(t, w)
	const switchAt = 2 // the second question (8 days 1 hour)
	questions := 0
	w.onWechatQuery = func(*world, string) {
		questions++
		if questions != switchAt {
			return
		}
		c.env.SetContinueAsNewSuggested(true)
		// The buyer confirms now; WeChat pushes the event twice.
		c.env.SignalWorkflowSkippingWorkflowTask(SignalWechatEvent, settlement(1)())
		c.env.SignalWorkflowSkippingWorkflowTask(SignalWechatEvent, settlement(1)())
	}
	final := runChain[OrderInput, OrderView](c, OrderWorkflowName, c.orderInput())

	switched := time.Hour + DefaultAutoConfirm + DefaultAutoConfirm/7
	if len(c.runs) != 2 || c.runs[0].to != switched {
		t.Fatalf("runs %+v; want the first to continue at the second question (%v)", c.runs, switched)
	}
	if n := c.metrics.Sum(MetricContinuedAsNew+"_total", map[string]string{"reason": continueSuggested}); n != 1 {
		t.Errorf("continue-as-new for Temporal's suggestion counted %v, want 1", n)
	}
	if final.Status != status.Completed || w.order(orderNo).status != status.Completed {
		t.Fatalf("final %s, row %s", final.Status, w.order(orderNo).status)
	}
	done := final.Transitions[len(final.Transitions)-1]
	if done.Why != "WeChat reports receipt confirmed by the buyer (settlement event)" || done.At.Sub(c.start) != switched {
		t.Errorf("completed at %v because %q; want at %v on the settlement event", done.At.Sub(c.start), done.Why, switched)
	}
	if fw := final.Wechat; fw == nil || fw.Settlement == nil || fw.State != WechatStateText(WechatSettled) {
		t.Errorf("WeChat's side at the end: %+v", fw)
	}
	if questions != switchAt || w.count(ActivitySetOrderStatus) != 2 || w.count(ActivityRemindReceipt) != 1 {
		t.Errorf("%d questions, %d status changes, %d reminders; want %d, 2, 1",
			questions, w.count(ActivitySetOrderStatus), w.count(ActivityRemindReceipt), switchAt)
	}
}

// WeChat is busy for two days: the shipment is reported round by round,
// across runs, each run going on with the last one's round count and next
// round time; the order is flagged once (a day on), and WeChat takes the
// shipment once.
func TestUploadRoundsGoOnAcrossRuns(t *testing.T) {
	w := newWorld()
	busy := make([]error, 100_000)
	for i := range busy {
		busy[i] = retryable("errcode -1: system busy")
	}
	w.failNext(ActivityUploadShipping, busy...)
	c := managedChain(t, w)
	var rounds []time.Duration
	var retries []bool // each round's Retry
	w.onUpload = func(_ *world, in UploadShippingInput, attempt int32) {
		if attempt == 1 {
			rounds = append(rounds, c.env.Now().Sub(c.start))
			retries = append(retries, in.Retry)
		}
	}
	for _, d := range []time.Duration{6 * time.Hour, 30 * time.Hour, 40 * time.Hour} {
		c.at(d, func() {
			c.env.SetContinueAsNewSuggested(true)
			c.env.SignalWorkflow(SignalPayment, c.w.pay(orderNo))
			c.model.add(4)
		})
	}
	c.at(2*day, func() {
		w.mu.Lock()
		delete(w.failures, ActivityUploadShipping) // WeChat takes shipments again
		w.mu.Unlock()
	})
	c.signal(3*day, SignalWechatEvent, settlement(1))
	final := runChain[OrderInput, OrderView](c, OrderWorkflowName, c.orderInput())

	largest := c.withinBudget(shippingRound)
	t.Logf("%d runs, the largest history %d events, %d upload rounds", len(c.runs), largest, len(rounds))
	if len(c.runs) != 4 {
		t.Fatalf("%d runs, want 4 (Temporal suggested continuing three times)", len(c.runs))
	}
	if final.Status != status.Completed || final.Wechat == nil || !final.Wechat.Uploaded {
		t.Fatalf("final %s, WeChat %+v", final.Status, final.Wechat)
	}
	// One count of rounds across runs, each one after the first asking
	// WeChat first; a continued run waits for the round the last one set.
	if final.Wechat.UploadRounds != len(rounds) {
		t.Errorf("the order counted %d rounds, WeChat saw %d: the count restarted in a run", final.Wechat.UploadRounds, len(rounds))
	}
	if retries[0] || slices.Contains(retries[1:], false) {
		t.Errorf("rounds' Retry %v; want only the first round without it", retries)
	}
	for _, r := range c.runs[1:] {
		for _, at := range rounds {
			if at == r.from {
				t.Errorf("a round at %v, as the run began: the next round's time was lost", at)
			}
		}
	}
	if last := rounds[len(rounds)-1]; last < 2*day || last > 2*day+shippingUploadRetryMax {
		t.Errorf("the last round at %v; want the first one due after WeChat recovered at 2 days", last)
	}
	if x := w.wxOrder(orderNo); x.uploads != 1 {
		t.Errorf("WeChat took %d uploads", x.uploads)
	}
	if !slices.Equal(final.Flags, []string{FlagShippingUploadFailed}) || w.count(ActivityFlagOrder) != 1 {
		t.Errorf("flags %v (FlagOrder ran %d times); want SHIPPING_UPLOAD_FAILED once", final.Flags, w.count(ActivityFlagOrder))
	}
}

// The waits between rounds double up to their cap and stay there, however
// many rounds: a day doubled 20 times or 1000 times is still two days (a
// shift by the round count overflowed, and a negative wait asked WeChat in
// a loop).
func TestBackoffDoublesToItsCapAndStaysThere(t *testing.T) {
	for _, tt := range []struct {
		first time.Duration
		n     int
		most  time.Duration
		want  time.Duration
	}{
		{day, 1, shippingAskMax, day},
		{day, 2, shippingAskMax, 2 * day},
		{day, 3, shippingAskMax, 2 * day},
		{day, 18, shippingAskMax, 2 * day},
		{day, 1000, shippingAskMax, 2 * day},
		{shippingUploadRetryFirst, 1, shippingUploadRetryMax, time.Minute},
		{shippingUploadRetryFirst, 4, shippingUploadRetryMax, 8 * time.Minute},
		{shippingUploadRetryFirst, 7, shippingUploadRetryMax, time.Hour},
		{shippingUploadRetryFirst, 5000, shippingUploadRetryMax, time.Hour},
	} {
		if got := backoff(tt.first, tt.n, tt.most); got != tt.want {
			t.Errorf("backoff(%v, %d, %v) = %v, want %v", tt.first, tt.n, tt.most, got, tt.want)
		}
	}
}
