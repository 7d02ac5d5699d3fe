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
// and the stray payment.
type refunder interface {
	wechatRefunds() *WechatRefunds
	// setWaiting says what the workflow waits for now.
	setWaiting(ctx workflow.Context, what string)
	// refundStalled tells a person that WeChat has kept a refund
	// PROCESSING for refundStallAfter (the waiting goes on).
	refundStalled(ctx workflow.Context, outRefundNo string)
	log() log.Logger
}

// listenRefunds records the refund results WeChat reports (SignalRefund):
// the first final one of each refund.
func listenRefunds(ctx workflow.Context, logger log.Logger, refunds *WechatRefunds) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalRefund)
		for {
			var r RefundNotice
			ch.Receive(ctx, &r)
			logger.Info("refund result reported", "out_refund_no", r.OutRefundNo, "status", r.Status, "source", r.Source)
			if _, known := refunds.Results[r.OutRefundNo]; r.Final() && !known {
				refunds.Results[r.OutRefundNo] = r
			}
		}
	})
}

// requestRefund asks WeChat Pay for one refund and returns its final
// result, for the caller to record. The out_refund_no of in is
// deterministic, so a retried request never refunds twice; WeChat may
// refuse for a while (merchant balance short), so the request is retried
// for refundRequestFor, then taken as refused (CLOSED) and left to a
// person. An accepted refund's result is awaited (awaitRefund). Each
// refund is one call: an order refunding in parts calls it per part, each
// with its own out_refund_no and amount.
func requestRefund(ctx workflow.Context, w refunder, in RequestRefundInput, summary string) RefundNotice {
	w.setWaiting(ctx, "Asking WeChat Pay for refund "+in.OutRefundNo)
	opts := wechatActivity(summary)
	opts.ScheduleToCloseTimeout = refundRequestFor
	var accepted RefundNotice
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivityRequestRefund, in).Get(ctx, &accepted); err != nil {
		w.log().Error("WeChat did not take the refund", "out_refund_no", in.OutRefundNo, "error", err)
		return RefundNotice{OutRefundNo: in.OutRefundNo, Status: status.RefundClosed, Source: "request refused: " + errorMessage(err)}
	}
	if accepted.Final() {
		return accepted
	}
	w.wechatRefunds().Awaiting = &RefundWait{OutRefundNo: in.OutRefundNo, Since: workflow.Now(ctx), Poll: refundPollFirst}
	return awaitRefund(ctx, w)
}

// awaitRefund waits for the final result of the refund being awaited
// (WechatRefunds.Awaiting): its notify or — when none comes — a query,
// asked with backoff. WeChat settles refunds within days; one still
// PROCESSING after refundStallAfter is reported once (refundStalled) so
// that a person looks, and the waiting goes on.
func awaitRefund(ctx workflow.Context, w refunder) RefundNotice {
	refunds := w.wechatRefunds()
	wait := refunds.Awaiting
	defer func() { refunds.Awaiting = nil }()
	no := wait.OutRefundNo
	for {
		w.setWaiting(ctx, fmt.Sprintf("Refund %s is with WeChat Pay: waiting for its notify (asking after %s)", no, wait.Poll))
		ok, _ := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      wait.Poll,
			TimerOptions: workflow.TimerOptions{Summary: "Wait for the notify of refund " + no},
		}, func() bool { _, ok := refunds.Results[no]; return ok })
		if ok {
			return refunds.Results[no]
		}
		actx := workflow.WithActivityOptions(ctx, wechatActivity("Ask WeChat Pay for the result of refund "+no))
		var r RefundNotice
		if err := workflow.ExecuteActivity(actx, ActivityQueryRefund, no).Get(ctx, &r); err != nil {
			w.log().Warn("refund query failed", "out_refund_no", no, "error", err)
		} else if r.Final() {
			return r
		}
		if !wait.Stalled && workflow.Now(ctx).Sub(wait.Since) >= refundStallAfter {
			wait.Stalled = true
			// Refunds that began before this step existed replay without it.
			if reportsStalledRefunds(ctx) {
				w.log().Error("refund still not settled by WeChat: a person should look", "out_refund_no", no, "since", wait.Since)
				w.refundStalled(ctx, no)
			}
		}
		wait.Poll = min(wait.Poll*2, refundPollMax)
	}
}
