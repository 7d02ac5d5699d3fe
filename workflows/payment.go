package workflows

import (
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// awaitPayment waits for whichever comes first: a payment WeChat reports
// (notify, or a query the mini-program's sync asked for), the user's cancel,
// or the payment deadline — a durable timer, so a restart of every process in
// between does not move it. It returns true once the order is PAID, false
// once it is CLOSED.
func (o *order) awaitPayment(ctx workflow.Context) (bool, error) {
	timerCtx, stopTimer := workflow.WithCancel(ctx)
	defer stopTimer()
	deadline := workflow.NewTimerWithOptions(timerCtx, max(o.deadline.Sub(workflow.Now(ctx)), 0),
		workflow.TimerOptions{Summary: "Payment deadline " + clock(o.deadline)})

	for {
		o.setWaiting(ctx, fmt.Sprintf("Waiting for payment until %s: WeChat's notify, the user's cancel or the deadline", clock(o.deadline)))
		if err := workflow.Await(ctx, func() bool {
			return len(o.inbox) > 0 || o.cancelRequested || deadline.IsReady()
		}); err != nil {
			return false, err
		}
		if p, ok := o.nextPayment(); ok {
			paid, err := o.takePayment(ctx, p)
			if err != nil || o.status != status.Pending {
				return paid, err
			}
			continue // a repeated report
		}
		why := "payment deadline passed"
		if o.cancelRequested {
			why = "cancelled by the user"
		}
		return o.closeUnpaid(ctx, why)
	}
}

func (o *order) nextPayment() (PaymentNotice, bool) {
	if len(o.inbox) == 0 {
		return PaymentNotice{}, false
	}
	p := o.inbox[0]
	o.inbox = o.inbox[1:]
	return p, true
}

// takePayment handles one payment WeChat reported. It returns true when the
// order keeps it (PAID). A report of a transaction already handled changes
// nothing; money that does not match the order is never marked paid: the
// order is closed and flagged, and the money returned.
func (o *order) takePayment(ctx workflow.Context, p PaymentNotice) (bool, error) {
	if !p.Paid() || o.seen[p.TransactionID] {
		return false, nil
	}
	o.seen[p.TransactionID] = true
	if problem := o.mismatch(p); problem != "" {
		return false, o.refuseMismatchedPayment(ctx, p, problem)
	}

	o.setWaiting(ctx, fmt.Sprintf("WeChat reports the payment (%s): recording it", p.Source))
	opts := dbActivity(fmt.Sprintf("Record payment %s (%s) and mark order %s PAID", p.TransactionID, yuan(p.AmountFen), o.in.OrderNo))
	var res OrderStatusResult
	if err := o.runDB(ctx, opts, ActivityMarkPaid, MarkPaidInput{OrderNo: o.in.OrderNo, Payment: p}, &res); err != nil {
		return false, fmt.Errorf("mark order %s paid: %w", o.in.OrderNo, err)
	}
	o.transactionID = p.TransactionID
	o.setStatus(ctx, status.Paid, fmt.Sprintf("WeChat reported the payment by %s (transaction %s)", p.Source, p.TransactionID))
	return true, nil
}

// mismatch says what in a payment does not belong to this order ("" if
// nothing): WeChat only reports our own out_trade_no to our merchant, so a
// difference here is a misconfiguration or tampering, never a payment.
func (o *order) mismatch(p PaymentNotice) string {
	var problems []string
	if p.OutTradeNo != o.in.OrderNo {
		problems = append(problems, fmt.Sprintf("out_trade_no is %q", p.OutTradeNo))
	}
	if p.AmountFen != o.created.TotalFen {
		problems = append(problems, fmt.Sprintf("amount is %d fen, the order is %d fen", p.AmountFen, o.created.TotalFen))
	}
	if p.Currency != "" && p.Currency != "CNY" {
		problems = append(problems, fmt.Sprintf("currency is %q", p.Currency))
	}
	if o.in.AppID != "" && p.AppID != o.in.AppID {
		problems = append(problems, fmt.Sprintf("appid is %q, the shop's is %q", p.AppID, o.in.AppID))
	}
	if o.in.MchID != "" && p.MchID != o.in.MchID {
		problems = append(problems, fmt.Sprintf("mchid is %q, the shop's is %q", p.MchID, o.in.MchID))
	}
	return strings.Join(problems, "; ")
}

// refuseMismatchedPayment closes the order (WeChat takes no second payment
// for an out_trade_no, so it can never be paid properly), flags it, and
// returns the money.
func (o *order) refuseMismatchedPayment(ctx workflow.Context, p PaymentNotice, problem string) error {
	o.logger.Error("payment does not match the order: closing it and returning the money",
		"transaction_id", p.TransactionID, "problem", problem)
	if o.status == status.Pending {
		if err := o.closeHere(ctx, "the payment did not match the order: "+problem, FlagPaymentMismatch); err != nil {
			return err
		}
	} else if err := o.flag(ctx, FlagPaymentMismatch, problem); err != nil {
		return err
	}
	o.returnPayment(ctx, p, fmt.Sprintf("the payment does not match order %s: %s", o.in.OrderNo, problem))
	return nil
}

// returnPayment hands money this order does not keep to a
// StrayPaymentWorkflow, which refunds it. The child outlives this workflow
// (ABANDON) and has the transaction's ID, so the API's start for a repeated
// notify finds it instead of starting another.
func (o *order) returnPayment(ctx workflow.Context, p PaymentNotice, reason string) {
	o.setWaiting(ctx, "Handing stray payment "+p.TransactionID+" to its refund workflow")
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            StrayPaymentWorkflowID(p.TransactionID),
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(AttrOrderNo.ValueSet(o.in.OrderNo)),
		StaticSummary:         fmt.Sprintf("Return stray payment %s · %s · order %s", p.TransactionID, yuan(p.AmountFen), o.in.OrderNo),
		StaticDetails:         reason,
	})
	child := workflow.ExecuteChildWorkflow(cctx, StrayPaymentWorkflowName, StrayPaymentInput{Payment: p, Reason: reason})
	err := child.GetChildWorkflowExecution().Get(ctx, nil)
	switch {
	case err == nil:
		o.logger.Warn("stray payment handed to its refund workflow", "transaction_id", p.TransactionID, "reason", reason)
	case temporal.IsWorkflowExecutionAlreadyStartedError(err):
		o.logger.Info("stray payment already has its refund workflow", "transaction_id", p.TransactionID)
	default:
		// Only a bug gets here (the start is a command of this workflow).
		o.logger.Error("could not start the stray payment's refund workflow", "transaction_id", p.TransactionID, "error", err)
	}
	o.refunds = append(o.refunds, RefundView{
		OutRefundNo: StrayRefundNo(p.TransactionID), RefundFen: p.AmountFen,
		Status: "see workflow " + StrayPaymentWorkflowID(p.TransactionID), Reason: reason,
	})
}

// returnStrayPayments returns every reported payment this order does not
// keep: a second transaction after it was paid, or money that arrived as it
// closed.
func (o *order) returnStrayPayments(ctx workflow.Context) {
	for {
		p, ok := o.nextPayment()
		if !ok {
			return
		}
		if !p.Paid() || o.seen[p.TransactionID] {
			continue
		}
		o.seen[p.TransactionID] = true
		why := fmt.Sprintf("order %s is %s", o.in.OrderNo, o.status)
		if o.transactionID != "" {
			why += " and keeps transaction " + o.transactionID
		}
		o.returnPayment(ctx, p, why)
	}
}

// closeUnpaid closes an order nobody paid for — at WeChat first, so that no
// payment can land after it is closed here — unless WeChat says it was paid
// after all, which makes it PAID (true). A close can be answered 204 for an
// order paid a moment before, so the answer decides nothing: the query after
// it does.
func (o *order) closeUnpaid(ctx workflow.Context, why string) (bool, error) {
	o.closing = true
	o.setWaiting(ctx, "Closing ("+why+")")
	// A prepay being made now must reach WeChat before the close does.
	if err := workflow.Await(ctx, func() bool { return !o.paying }); err != nil {
		return false, err
	}
	if !o.prepayAttempted {
		// WeChat never heard of this order: nothing can be paid, nothing to close there.
		return false, o.closeHere(ctx, why, "")
	}

	retry, userPaying := closeRetryFirst, 0
	for attempt := 1; ; attempt++ {
		st := o.queryPayment(ctx, "before closing it")
		if done, paid, err := o.takePayments(ctx, st); done {
			return paid, err
		}
		if st.TradeState == TradeUserPaying && userPaying < userPayingRounds {
			userPaying++
			o.pause(ctx, userPayingGrace, "The payer is entering the password: give them time")
			attempt--
			continue
		}

		o.closeAtWechat(ctx)
		st = o.queryPayment(ctx, "after closing it")
		if done, paid, err := o.takePayments(ctx, st); done {
			return paid, err
		}
		switch st.TradeState {
		case TradeClosed, TradeNotFound, TradeRevoked:
			return false, o.closeHere(ctx, why, "")
		case TradeRefund:
			return false, o.closeHere(ctx, why+"; WeChat says its payment was refunded outside this order", FlagUnexpectedRefund)
		}
		if attempt >= closeAttempts {
			// Closed here all the same, so the order does not wait forever: a
			// payment that lands later is returned by a StrayPaymentWorkflow.
			return false, o.closeHere(ctx, fmt.Sprintf("%s; WeChat still says %q after %d attempts to close it", why, st.TradeState, attempt), FlagCloseUnconfirmed)
		}
		o.pause(ctx, retry, fmt.Sprintf("Retry closing at WeChat (it says %q)", st.TradeState))
		retry = min(retry*2, closeRetryMax)
	}
}

// takePayments applies what is known about a payment while closing: a paid query
// answer, or a payment reported meanwhile. done is true when the order is no
// longer PENDING.
func (o *order) takePayments(ctx workflow.Context, st PaymentNotice) (done, paid bool, err error) {
	if st.Paid() {
		if paid, err = o.takePayment(ctx, st); err != nil || o.status != status.Pending {
			return true, paid, err
		}
	}
	for {
		p, ok := o.nextPayment()
		if !ok {
			return false, false, nil
		}
		if paid, err = o.takePayment(ctx, p); err != nil || o.status != status.Pending {
			return true, paid, err
		}
	}
}

// queryPayment asks WeChat for the order's trade state. A permanent failure
// is logged and answered with an empty state: the caller treats it as
// "not known to be closed" and tries again later.
func (o *order) queryPayment(ctx workflow.Context, when string) PaymentNotice {
	o.setWaiting(ctx, "Asking WeChat Pay for the trade state "+when)
	actx := workflow.WithActivityOptions(ctx, wechatActivity(fmt.Sprintf("Ask WeChat Pay whether order %s was paid (%s)", o.in.OrderNo, when)))
	var st PaymentNotice
	if err := workflow.ExecuteActivity(actx, ActivityQueryPayment, o.in.OrderNo).Get(ctx, &st); err != nil {
		o.logger.Warn("payment query failed", "error", err)
		return PaymentNotice{OutTradeNo: o.in.OrderNo, Source: "query"}
	}
	o.logger.Info("payment queried", "trade_state", st.TradeState, "when", when)
	return st
}

func (o *order) closeAtWechat(ctx workflow.Context) {
	o.setWaiting(ctx, "Closing the order at WeChat Pay")
	actx := workflow.WithActivityOptions(ctx, wechatActivity("Close order "+o.in.OrderNo+" at WeChat Pay"))
	if err := workflow.ExecuteActivity(actx, ActivityClosePayment, o.in.OrderNo).Get(ctx, nil); err != nil {
		// Refused or unverified: the query that follows decides.
		o.logger.Info("WeChat did not confirm the close; asking it", "error", errorMessage(err))
	}
}

// closeHere closes the order in the database (CLOSED), flagging it when flag
// is set.
func (o *order) closeHere(ctx workflow.Context, why, flag string) error {
	o.setWaiting(ctx, "Closing the order: "+why)
	var res OrderStatusResult
	if err := o.runDB(ctx, dbActivity("Close order "+o.in.OrderNo+": "+why), ActivityCloseOrder, CloseOrderInput{
		OrderNo: o.in.OrderNo, Reason: why, Flag: flag,
	}, &res); err != nil {
		return fmt.Errorf("close order %s: %w", o.in.OrderNo, err)
	}
	if flag != "" {
		o.logger.Error("order closed and flagged for a person", "flag", flag, "why", why)
		o.addFlag(ctx, flag)
	}
	o.setStatus(ctx, res.Status, why)
	return nil
}

// pause waits d, or less if a payment is reported meanwhile.
func (o *order) pause(ctx workflow.Context, d time.Duration, summary string) {
	o.setWaiting(ctx, summary)
	_, _ = workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
		Timeout: d, TimerOptions: workflow.TimerOptions{Summary: summary},
	}, func() bool { return len(o.inbox) > 0 })
}

// validatePay refuses a pay update before anything is written to history.
func (o *order) validatePay(ctx workflow.Context) error {
	switch {
	case !o.placed:
		return refuse(ErrTypeNotPayable, "order %s is still being placed", o.in.OrderNo)
	case o.status != status.Pending:
		return refuse(ErrTypeNotPayable, "order %s is %s", o.in.OrderNo, o.status)
	case o.closing || o.cancelRequested:
		return refuse(ErrTypeNotPayable, "order %s is being closed", o.in.OrderNo)
	case !workflow.Now(ctx).Before(o.deadline):
		return refuse(ErrTypeNotPayable, "the payment deadline of order %s passed at %s", o.in.OrderNo, clock(o.deadline))
	}
	return nil
}

// pay returns the wx.requestPayment parameters: stock is checked again, the
// JSAPI prepay is made once (expiring at the order's deadline) and reused.
func (o *order) pay(ctx workflow.Context) (PayParams, error) {
	// One prepay at a time: a second tap waits for the first and gets the
	// same parameters.
	if err := workflow.Await(ctx, func() bool { return !o.paying }); err != nil {
		return PayParams{}, err
	}
	if err := o.validatePay(ctx); err != nil {
		return PayParams{}, err
	}
	o.paying = true
	defer func() { o.paying = false }()

	if err := o.runDB(ctx, userWaitsActivity("Check that order "+o.in.OrderNo+"'s items are still in stock"), ActivityCheckStock, o.in.OrderNo, nil); err != nil {
		if errorType(err) == ErrTypeOutOfStock {
			return PayParams{}, refuse(ErrTypeOutOfStock, "%s", errorMessage(err))
		}
		return PayParams{}, refuse(ErrTypeWechatUnavailable, "the shop could not check stock in time; try again")
	}
	if o.payParams != nil && workflow.Now(ctx).Sub(o.prepaidAt) < prepayReuse {
		return *o.payParams, nil
	}

	o.prepayAttempted = true
	actx := workflow.WithActivityOptions(ctx, userWaitsActivity(fmt.Sprintf(
		"Create the WeChat Pay prepay of order %s (%s, expires %s)", o.in.OrderNo, yuan(o.created.TotalFen), clock(o.deadline))))
	var params PayParams
	if err := workflow.ExecuteActivity(actx, ActivityRequestPayment, RequestPaymentInput{
		OrderNo: o.in.OrderNo, UserID: o.in.UserID, TotalFen: o.created.TotalFen, TimeExpire: o.deadline,
	}).Get(ctx, &params); err != nil {
		switch t := errorType(err); t {
		case ErrTypeNotPayable, ErrTypeWechatRefused:
			return PayParams{}, refuse(t, "%s", errorMessage(err))
		default:
			o.logger.Warn("prepay failed", "error", err)
			return PayParams{}, refuse(ErrTypeWechatUnavailable, "WeChat Pay did not answer in time; try again")
		}
	}
	o.payParams, o.prepaidAt = &params, workflow.Now(ctx)
	o.logger.Info("prepay ready", "package", params.Package)
	return params, nil
}

// validateSync refuses a sync that would not ask WeChat — the order is
// not PENDING, has no prepay yet or is being closed, or WeChat was asked
// less than SyncInterval ago — before anything is written to history: a
// mini-program polling every second for the whole payment window would
// otherwise add an update per poll, and Temporal limits the updates of one
// workflow (history.maxTotalUpdates, 2000 by default).
func (o *order) validateSync(ctx workflow.Context) error {
	switch {
	case !o.placed || o.status != status.Pending:
		return refuse(ErrTypeSyncNotNeeded, "order %s is %s", o.in.OrderNo, o.status)
	case o.closing:
		return refuse(ErrTypeSyncNotNeeded, "order %s is being closed", o.in.OrderNo)
	case !o.prepayAttempted:
		return refuse(ErrTypeSyncNotNeeded, "order %s was never sent to WeChat Pay", o.in.OrderNo)
	case !o.lastSync.IsZero() && workflow.Now(ctx).Sub(o.lastSync) < SyncInterval:
		return refuse(ErrTypeSyncNotNeeded, "WeChat was asked about order %s less than %s ago", o.in.OrderNo, SyncInterval)
	}
	return nil
}

// sync asks WeChat, at most once per SyncInterval, whether the order was
// paid — for the mini-program polling right after wx.requestPayment, when
// the notify may be late or lost — and answers once a payment it found has
// been applied. Confirmed means the order keeps a payment: money WeChat
// took that does not match the order is returned, not confirmed.
func (o *order) sync(ctx workflow.Context) (SyncResult, error) {
	// Updates accepted before validateSync existed replay here unvalidated.
	if err := o.validateSync(ctx); err != nil {
		return SyncResult{Confirmed: o.transactionID != "", Order: o.view()}, nil
	}
	o.lastSync = workflow.Now(ctx)
	actx := workflow.WithActivityOptions(ctx, userWaitsActivity("Ask WeChat Pay whether order "+o.in.OrderNo+" was paid (the mini-program asked)"))
	var st PaymentNotice
	if err := workflow.ExecuteActivity(actx, ActivityQueryPayment, o.in.OrderNo).Get(ctx, &st); err != nil {
		o.logger.Warn("sync query failed", "error", err)
		return SyncResult{Order: o.view()}, nil
	}
	if st.Paid() {
		o.inbox = append(o.inbox, st)
		// The main loop applies it (or has already, from the notify).
		if err := workflow.Await(ctx, func() bool { return o.status != status.Pending }); err != nil {
			return SyncResult{}, err
		}
	}
	return SyncResult{Confirmed: o.transactionID != "", Queried: true, Order: o.view()}, nil
}
