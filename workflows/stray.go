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
	s := newStray(ctx, in)
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (StrayPaymentView, error) { return s.view(), nil }); err != nil {
		return s.view(), fmt.Errorf("register %s query: %w", QueryState, err)
	}
	listenRefunds(ctx, s.logger, &s.WechatRefunds)
	// Compensation must finish even if someone cancels this workflow.
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	if err := workflow.UpsertTypedSearchAttributes(ctx, AttrOrderNo.ValueSet(s.Input.Payment.OutTradeNo)); err != nil {
		s.logger.Warn("upsert search attributes", "error", err)
	}

	if in.Continued != nil {
		// An earlier run continued as new while it awaited the refund.
		s.logger.Info("stray payment continued from an earlier run", "status", s.Status, "runs_before", s.Runs)
		if s.Status != StrayRefunding || s.WechatRefunds.Awaiting == nil {
			return s.view(), fmt.Errorf("stray payment %s continued as %s: no way forward", s.Input.Payment.TransactionID, s.Status)
		}
		result, err := awaitRefund(ctx, s)
		if err != nil {
			return StrayPaymentView{}, err // continued as new again
		}
		err = s.recordSettledRefund(ctx, result)
		return s.view(), err
	}

	d, err := s.examine(ctx)
	if err != nil {
		return s.view(), err
	}
	if !d.Refund {
		s.leave(ctx, d)
		return s.view(), nil
	}
	err = s.refund(ctx, d) // before the view: it is the refund's outcome
	if isContinueAsNew(err) {
		return StrayPaymentView{}, err
	}
	return s.view(), err
}

// StrayState is the stray payment workflow's durable state: plain data, as
// OrderState is the order's.
type StrayState struct {
	Input         StrayPaymentInput `json:"input"`
	Status        string            `json:"status"` // Stray*
	OutRefundNo   string            `json:"out_refund_no,omitempty"`
	WechatRefunds WechatRefunds     `json:"wechat_refunds"`
	// Runs is how many runs came before this one (each continued as new).
	Runs int `json:"runs,omitempty"`
}

// stray is one run of a StrayPaymentWorkflow.
type stray struct {
	StrayState
	logger log.Logger
	budget historyBudget
}

func newStray(ctx workflow.Context, in StrayPaymentInput) *stray {
	st := StrayState{Input: in, Status: StrayExamining, WechatRefunds: WechatRefunds{Results: map[string]RefundNotice{}}}
	if in.Continued != nil {
		st = *in.Continued
		st.Runs++
		if st.WechatRefunds.Results == nil {
			st.WechatRefunds.Results = map[string]RefundNotice{}
		}
	}
	p := st.Input.Payment
	return &stray{
		StrayState: st,
		logger: log.With(workflow.GetLogger(ctx), "order_no", p.OutTradeNo,
			"workflow_id", workflow.GetInfo(ctx).WorkflowExecution.ID, "transaction_id", p.TransactionID),
		budget: historyBudget{workflowType: StrayPaymentWorkflowName},
	}
}

// drainSignals takes the refund results reported and not yet taken
// (continuer).
func (s *stray) drainSignals(ctx workflow.Context) { drainRefunds(ctx, s.logger, &s.WechatRefunds) }

// continuation ends this run and starts the next with the state
// (continuer).
func (s *stray) continuation(ctx workflow.Context) error {
	st := s.StrayState
	st.Input.Continued = nil
	next := st.Input
	next.Continued = &st
	return workflow.NewContinueAsNewError(ctx, StrayPaymentWorkflowName, next)
}

func (s *stray) historyBudget() *historyBudget { return &s.budget }

// examine records the payment and finds whether anyone keeps it.
func (s *stray) examine(ctx workflow.Context) (StrayDecision, error) {
	p := s.Input.Payment
	s.setWaiting(ctx, "Examining the payment")
	var d StrayDecision
	actx := workflow.WithActivityOptions(ctx, dbActivity(fmt.Sprintf("Record payment %s and check whether order %s keeps it", p.TransactionID, p.OutTradeNo)))
	if err := workflow.ExecuteActivity(actx, ActivityExamineStrayPayment, p).Get(ctx, &d); err != nil {
		return d, fmt.Errorf("examine payment %s: %w", p.TransactionID, err)
	}
	return d, nil
}

// leave ends with nothing to return: the payment is its order's after all
// (KEPT), or not the shop's (IGNORED).
func (s *stray) leave(ctx workflow.Context, d StrayDecision) {
	if d.OrderKnown {
		s.end(ctx, StrayKept)
	} else {
		s.end(ctx, StrayIgnored)
	}
	s.logger.Info("payment needs no refund", "why", d.Why)
	s.setWaiting(ctx, "Nothing to return: "+d.Why)
}

// refund returns the payment in full (requestRefund) and records the result:
// REFUNDED, or REFUND_FAILED for a person.
func (s *stray) refund(ctx workflow.Context, d StrayDecision) error {
	p := s.Input.Payment
	s.Status, s.OutRefundNo = StrayRefunding, StrayRefundNo(p.TransactionID)
	s.logger.Warn("returning a stray payment", "out_refund_no", s.OutRefundNo, "why", d.Why)
	result, err := requestRefund(ctx, s, RequestRefundInput{
		OrderNo: p.OutTradeNo, TransactionID: p.TransactionID, OutRefundNo: s.OutRefundNo,
		RefundFen: p.AmountFen, TotalFen: p.AmountFen, Reason: "payment returned: " + d.Why,
	}, fmt.Sprintf("Refund stray payment %s (%s) at WeChat Pay", p.TransactionID, yuan(p.AmountFen)))
	if err != nil {
		return err // continued as new: the next run awaits the result
	}
	return s.recordSettledRefund(ctx, result)
}

// recordSettledRefund records the refund's result: REFUNDED, or REFUND_FAILED for a
// person.
func (s *stray) recordSettledRefund(ctx workflow.Context, result RefundNotice) error {
	p := s.Input.Payment
	actx := workflow.WithActivityOptions(ctx, dbActivity(fmt.Sprintf("Record refund %s as %s", result.OutRefundNo, result.Status)))
	if err := workflow.ExecuteActivity(actx, ActivitySettleRefund, SettleRefundInput{
		OrderNo: p.OutTradeNo, Refund: result, OrderRefund: false,
	}).Get(ctx, nil); err != nil {
		return fmt.Errorf("settle refund %s: %w", result.OutRefundNo, err)
	}
	if result.Status == status.RefundSuccess {
		s.end(ctx, StrayRefunded)
		s.setWaiting(ctx, "Returned to the payer")
		return nil
	}
	s.end(ctx, StrayRefundFailed)
	s.logger.Error("stray payment refund failed: a person must return the money", "status", result.Status, "source", result.Source)
	s.setWaiting(ctx, fmt.Sprintf("The refund is %s (%s): a person must return the money", result.Status, result.Source))
	return nil
}

// end sets the outcome and counts it: operators alert on
// MetricStrayPayments.
func (s *stray) end(ctx workflow.Context, outcome string) {
	s.Status = outcome
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"outcome": outcome}).Counter(MetricStrayPayments).Inc(1)
}

// setWaiting shows, in the Web UI's details line, where the payment stands
// and what the workflow is doing now.
func (s *stray) setWaiting(ctx workflow.Context, what string) {
	p := s.Input.Payment
	run := ""
	if s.Runs > 0 {
		// A continued run has no static summary: the details line says what it is.
		run = fmt.Sprintf(" · run %d (continued as new: the history budget)", s.Runs+1)
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** · %s · transaction %s of order %s%s\n\n%s\n\nWhy: %s",
		s.Status, yuan(p.AmountFen), p.TransactionID, p.OutTradeNo, run, what, s.Input.Reason))
}

func (s *stray) wechatRefunds() *WechatRefunds { return &s.WechatRefunds }

func (s *stray) log() log.Logger { return s.logger }

// refundStalled counts the stalled refund: operators alert on this outcome
// (the refund goes on).
func (s *stray) refundStalled(ctx workflow.Context, _ string) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"outcome": StrayRefundStalled}).Counter(MetricStrayPayments).Inc(1)
}

func (s *stray) view() StrayPaymentView {
	return StrayPaymentView{Payment: s.Input.Payment, Reason: s.Input.Reason, OutRefundNo: s.OutRefundNo, Status: s.Status}
}
