package workflows

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// Stray payment states (StrayPaymentView.Status).
const (
	StrayExamining    = "EXAMINING"
	StrayRefunding    = "REFUNDING"
	StrayRefunded     = "REFUNDED"
	StrayRefundFailed = "REFUND_FAILED"
	StrayKept         = "KEPT"    // it was its order's own payment after all
	StrayIgnored      = "IGNORED" // not the shop's order, or not a payment
	// StrayRefundStalled is not a status: the outcome counted (metric) when
	// WeChat has left the refund PROCESSING for refundStallAfter.
	StrayRefundStalled = "REFUND_STALLED"
)

// StrayPaymentWorkflow returns a payment that no order keeps: money WeChat
// took for an order that had already closed (its notify arrived after the
// order's workflow ended), or a payment that did not match its order. It
// runs once per WeChat transaction (StrayPaymentWorkflowID):
//
//	examine: is it really nobody's? (a late repeat of a kept payment is not)
//	refund it in full, with out_refund_no derived from the transaction id
//	wait for the refund's result: its notify, or a query with backoff
func StrayPaymentWorkflow(ctx workflow.Context, in StrayPaymentInput) (StrayPaymentView, error) {
	p := in.Payment
	v := &StrayPaymentView{Payment: p, Reason: in.Reason, Status: StrayExamining}
	logger := log.With(workflow.GetLogger(ctx), "order_no", p.OutTradeNo,
		"workflow_id", workflow.GetInfo(ctx).WorkflowExecution.ID, "transaction_id", p.TransactionID)
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (StrayPaymentView, error) { return *v, nil }); err != nil {
		return *v, fmt.Errorf("register %s query: %w", QueryState, err)
	}
	results := map[string]RefundNotice{}
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalRefund)
		for {
			var r RefundNotice
			ch.Receive(ctx, &r)
			if _, known := results[r.OutRefundNo]; r.Final() && !known {
				results[r.OutRefundNo] = r
			}
		}
	})
	// Compensation must finish even if someone cancels this workflow.
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	if err := workflow.UpsertTypedSearchAttributes(ctx, AttrOrderNo.ValueSet(p.OutTradeNo)); err != nil {
		logger.Warn("upsert search attributes", "error", err)
	}
	done := func(status string) {
		v.Status = status
		workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"outcome": status}).Counter(MetricStrayPayments).Inc(1)
	}
	show := func(what string) {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** · %s · transaction %s of order %s\n\n%s\n\nWhy: %s",
			v.Status, yuan(p.AmountFen), p.TransactionID, p.OutTradeNo, what, in.Reason))
	}

	show("Examining the payment")
	var d StrayDecision
	actx := workflow.WithActivityOptions(ctx, dbActivity(fmt.Sprintf("Record payment %s and check whether order %s keeps it", p.TransactionID, p.OutTradeNo)))
	if err := workflow.ExecuteActivity(actx, ActivityExamineStrayPayment, p).Get(ctx, &d); err != nil {
		return *v, fmt.Errorf("examine payment %s: %w", p.TransactionID, err)
	}
	if !d.Refund {
		if d.OrderKnown {
			done(StrayKept)
		} else {
			done(StrayIgnored)
		}
		logger.Info("payment needs no refund", "why", d.Why)
		show("Nothing to return: " + d.Why)
		return *v, nil
	}

	v.Status, v.OutRefundNo = StrayRefunding, StrayRefundNo(p.TransactionID)
	logger.Warn("returning a stray payment", "out_refund_no", v.OutRefundNo, "why", d.Why)
	show("Asking WeChat Pay for refund " + v.OutRefundNo)
	opts := wechatActivity(fmt.Sprintf("Refund stray payment %s (%s) at WeChat Pay", p.TransactionID, yuan(p.AmountFen)))
	opts.ScheduleToCloseTimeout = refundRequestFor
	var accepted RefundNotice
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivityRequestRefund, RequestRefundInput{
		OrderNo: p.OutTradeNo, TransactionID: p.TransactionID, OutRefundNo: v.OutRefundNo,
		RefundFen: p.AmountFen, TotalFen: p.AmountFen, Reason: "payment returned: " + d.Why,
	}).Get(ctx, &accepted)
	var result RefundNotice
	if err != nil {
		logger.Error("WeChat did not take the refund of a stray payment", "error", err)
		result = RefundNotice{OutRefundNo: v.OutRefundNo, Status: status.RefundClosed, Source: "request refused: " + errorMessage(err)}
	} else {
		result = awaitRefundResult(ctx, logger, v.OutRefundNo, accepted,
			func(no string) (RefundNotice, bool) { r, ok := results[no]; return r, ok }, show,
			func() {
				// Operators alert on this outcome (the refund goes on).
				workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"outcome": StrayRefundStalled}).Counter(MetricStrayPayments).Inc(1)
			})
	}

	actx = workflow.WithActivityOptions(ctx, dbActivity(fmt.Sprintf("Record refund %s as %s", result.OutRefundNo, result.Status)))
	if err := workflow.ExecuteActivity(actx, ActivitySettleRefund, SettleRefundInput{
		OrderNo: p.OutTradeNo, Refund: result, OrderRefund: false,
	}).Get(ctx, nil); err != nil {
		return *v, fmt.Errorf("settle refund %s: %w", result.OutRefundNo, err)
	}
	if result.Status == status.RefundSuccess {
		done(StrayRefunded)
		show("Returned to the payer")
		return *v, nil
	}
	done(StrayRefundFailed)
	logger.Error("stray payment refund failed: a person must return the money", "status", result.Status, "source", result.Source)
	show(fmt.Sprintf("The refund is %s (%s): a person must return the money", result.Status, result.Source))
	return *v, nil
}
