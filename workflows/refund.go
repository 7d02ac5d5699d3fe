package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// Refunds at WeChat Pay: one routine, requestRefund, for every refund a
// workflow asks for — an order's, a stray payment's.

// WechatRefunds is what a workflow knows of the refunds it asked WeChat Pay
// for: plain data, part of its durable state (OrderState, StrayState).
type WechatRefunds struct {
	// Results are the final results WeChat reported by notify, by
	// out_refund_no (the first one of each counts).
	Results map[string]RefundNotice `json:"results,omitempty"`
	// Awaiting is the refund WeChat accepted whose result the workflow
	// waits for now (nil when none).
	Awaiting *RefundWait `json:"awaiting,omitempty"`
}

// RefundWait is how far the wait for one refund's result has got.
type RefundWait struct {
	OutRefundNo string `json:"out_refund_no"`
	// Since is when WeChat accepted the refund: REFUND_STALLED counts from here.
	Since time.Time `json:"since"`
	// Poll is how long the next wait for the refund's notify is, before
	// WeChat is asked.
	Poll time.Duration `json:"poll"`
	// Stalled: refundStallAfter has passed (reported once).
	Stalled bool `json:"stalled,omitempty"`
}

// refunder is a workflow that returns money with requestRefund: the order
// and the stray payment. It keeps a history budget (continuer): a refund
// WeChat keeps PROCESSING is waited for across runs.
type refunder interface {
	continuer
	wechatRefunds() *WechatRefunds
	historyBudget() *historyBudget
	// setWaiting says what the workflow waits for now.
	setWaiting(ctx workflow.Context, what string)
	// refundStalled tells a person that WeChat has kept a refund
	// PROCESSING for refundStallAfter (the waiting goes on).
	refundStalled(ctx workflow.Context, outRefundNo string)
}

// listenRefunds records the refund results WeChat reports (SignalRefund).
func listenRefunds(ctx workflow.Context, logger log.Logger, refunds *WechatRefunds) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalRefund)
		for {
			var r RefundNotice
			ch.Receive(ctx, &r)
			refunds.take(logger, r)
		}
	})
}

// drainRefunds takes the refund results reported and not yet taken (a run
// about to continue as new).
func drainRefunds(ctx workflow.Context, logger log.Logger, refunds *WechatRefunds) {
	drainChannel(ctx, SignalRefund, func(r RefundNotice) { refunds.take(logger, r) })
}

// take records a refund result WeChat reported: the first final one of
// each refund counts.
func (refunds *WechatRefunds) take(logger log.Logger, r RefundNotice) {
	logger.Info("refund result reported", "out_refund_no", r.OutRefundNo, "status", r.Status, "source", r.Source)
	if _, known := refunds.Results[r.OutRefundNo]; r.Final() && !known {
		refunds.Results[r.OutRefundNo] = r
	}
}

// requestRefund asks WeChat Pay for one refund and returns its final
// result, for the caller to record. The out_refund_no of in is
// deterministic, so a retried request never refunds twice; WeChat may
// refuse for a while (merchant balance short), so the request is retried
// for refundRequestFor, then taken as refused (CLOSED) and left to a
// person. An accepted refund's result is awaited (awaitRefund), and the
// error is the continue-as-new that ends the run while it waits. Each
// refund is one call: an order refunding in parts calls it per part, each
// with its own out_refund_no and amount.
func requestRefund(ctx workflow.Context, w refunder, in RequestRefundInput, summary string) (RefundNotice, error) {
	w.setWaiting(ctx, "Asking WeChat Pay for refund "+in.OutRefundNo)
	opts := wechatActivity(summary)
	opts.ScheduleToCloseTimeout = refundRequestFor
	var accepted RefundNotice
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivityRequestRefund, in).Get(ctx, &accepted); err != nil {
		w.log().Error("WeChat did not take the refund", "out_refund_no", in.OutRefundNo, "error", err)
		return RefundNotice{OutRefundNo: in.OutRefundNo, Status: status.RefundClosed, Source: "request refused: " + errorMessage(err)}, nil
	}
	if accepted.Final() {
		return accepted, nil
	}
	w.wechatRefunds().Awaiting = &RefundWait{OutRefundNo: in.OutRefundNo, Since: workflow.Now(ctx), Poll: refundPollFirst}
	return awaitRefund(ctx, w)
}

// awaitRefund waits for the final result of the refund being awaited
// (WechatRefunds.Awaiting): its notify or — when none comes — a query,
// asked less often as the refund ages (nextRefundPoll). WeChat settles
// refunds within days; one still PROCESSING after refundStallAfter is
// reported once (refundStalled) so that a person looks, and the waiting
// goes on — across runs: between two rounds the workflow keeps its history
// budget, and a new run picks the wait up from the state (Awaiting).
func awaitRefund(ctx workflow.Context, w refunder) (RefundNotice, error) {
	refunds := w.wechatRefunds()
	wait := refunds.Awaiting
	no := wait.OutRefundNo
	settled := func(r RefundNotice) (RefundNotice, error) {
		refunds.Awaiting = nil
		return r, nil
	}
	for {
		w.setWaiting(ctx, fmt.Sprintf("Refund %s is with WeChat Pay: waiting for its notify (asking after %s)", no, wait.Poll))
		ok, _ := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      wait.Poll,
			TimerOptions: workflow.TimerOptions{Summary: "Wait for the notify of refund " + no},
		}, func() bool { _, ok := refunds.Results[no]; return ok })
		if ok {
			return settled(refunds.Results[no])
		}
		actx := workflow.WithActivityOptions(ctx, wechatActivity("Ask WeChat Pay for the result of refund "+no))
		var r RefundNotice
		if err := workflow.ExecuteActivity(actx, ActivityQueryRefund, no).Get(ctx, &r); err != nil {
			w.log().Warn("refund query failed", "out_refund_no", no, "error", err)
		} else if r.Final() {
			return settled(r)
		}
		if !wait.Stalled && workflow.Now(ctx).Sub(wait.Since) >= refundStallAfter {
			wait.Stalled = true
			// Refunds that began before this step existed replay without it.
			if reportsStalledRefunds(ctx) {
				w.log().Error("refund still not settled by WeChat: a person should look", "out_refund_no", no, "since", wait.Since)
				w.refundStalled(ctx, no)
			}
		}
		wait.Poll = nextRefundPoll(ctx, wait)
		if err := w.historyBudget().keepHistoryBudget(ctx, w); err != nil {
			return RefundNotice{}, err
		}
	}
}

// nextRefundPoll is how long to wait before asking WeChat again about the
// refund awaited: twice the last wait, up to refundPollCap of its age.
func nextRefundPoll(ctx workflow.Context, wait *RefundWait) time.Duration {
	most := refundPollMax
	// Refunds that reached refundPollSlowAfter before ChangeHistoryBudget
	// replay asking every refundPollMax.
	if age := workflow.Now(ctx).Sub(wait.Since); age >= refundPollSlowAfter && keepsHistoryBudget(ctx) {
		most = refundPollCap(age)
	}
	return min(wait.Poll*2, most)
}

// refundPollCap is the longest wait between two questions about a refund
// WeChat accepted age ago.
func refundPollCap(age time.Duration) time.Duration {
	switch {
	case age < refundPollSlowAfter:
		return refundPollMax
	case age < refundPollSlowestAfter:
		return refundPollSlow
	}
	return refundPollSlowest
}
