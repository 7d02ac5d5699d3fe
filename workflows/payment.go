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
// between does not move it. It returns once the order is no longer PENDING:
// PAID, or CLOSED.
func (o *order) awaitPayment(ctx workflow.Context) error {
	timerCtx, stopTimer := workflow.WithCancel(ctx)
	defer stopTimer()
	deadline := workflow.NewTimerWithOptions(timerCtx, max(o.Deadline.Sub(workflow.Now(ctx)), 0),
		workflow.TimerOptions{Summary: "Payment deadline " + clock(o.Deadline)})

	for o.Status == status.Pending {
		o.setWaiting(ctx, fmt.Sprintf("Waiting for payment until %s: WeChat's notify, the user's cancel or the deadline", clock(o.Deadline)))
		if err := workflow.Await(ctx, func() bool {
			return len(o.Inbox) > 0 || o.CancelRequested || deadline.IsReady()
		}); err != nil {
			return err
		}
		if p, ok := o.nextPayment(); ok {
			// PAID, CLOSED (it did not match), or a repeated report.
			if err := o.takePayment(ctx, p); err != nil {
				return err
			}
			continue
		}
		why := "payment deadline passed"
		if o.CancelRequested {
			why = "cancelled by the user"
		}
		return o.closeUnpaid(ctx, why)
	}
	return nil
}

func (o *order) nextPayment() (PaymentNotice, bool) {
	if len(o.Inbox) == 0 {
		return PaymentNotice{}, false
	}
	p := o.Inbox[0]
	o.Inbox = o.Inbox[1:]
	return p, true
}

// takePayment handles one payment WeChat reported: the order keeps it
// (PAID). A report of a transaction already handled changes nothing; money
// that does not match the order is never marked paid: the order is closed
// and flagged, and the money returned.
func (o *order) takePayment(ctx workflow.Context, p PaymentNotice) error {
	if !p.Paid() || o.Seen[p.TransactionID] {
		return nil
	}
	o.Seen[p.TransactionID] = true
	if problem := o.mismatch(p); problem != "" {
		return o.refuseMismatchedPayment(ctx, p, problem)
	}

	o.setWaiting(ctx, fmt.Sprintf("WeChat reports the payment (%s): recording it", p.Source))
	opts := dbActivity(fmt.Sprintf("Record payment %s (%s) and mark order %s PAID", p.TransactionID, yuan(p.AmountFen), o.Input.OrderNo))
	var res OrderStatusResult
	if err := o.runDB(ctx, opts, ActivityMarkPaid, MarkPaidInput{OrderNo: o.Input.OrderNo, Payment: p}, &res); err != nil {
		return fmt.Errorf("mark order %s paid: %w", o.Input.OrderNo, err)
	}
	o.TransactionID = p.TransactionID
	o.setStatus(ctx, status.Paid, fmt.Sprintf("WeChat reported the payment by %s (transaction %s)", p.Source, p.TransactionID))
	return nil
}

// mismatch says what in a payment does not belong to this order ("" if
// nothing): WeChat only reports our own out_trade_no to our merchant, so a
// difference here is a misconfiguration or tampering, never a payment.
func (o *order) mismatch(p PaymentNotice) string {
	var problems []string
	if p.OutTradeNo != o.Input.OrderNo {
		problems = append(problems, fmt.Sprintf("out_trade_no is %q", p.OutTradeNo))
	}
	if p.AmountFen != o.Created.TotalFen {
		problems = append(problems, fmt.Sprintf("amount is %d fen, the order is %d fen", p.AmountFen, o.Created.TotalFen))
	}
	if p.Currency != "" && p.Currency != "CNY" {
		problems = append(problems, fmt.Sprintf("currency is %q", p.Currency))
	}
	if o.Input.AppID != "" && p.AppID != o.Input.AppID {
		problems = append(problems, fmt.Sprintf("appid is %q, the shop's is %q", p.AppID, o.Input.AppID))
	}
	if o.Input.MchID != "" && p.MchID != o.Input.MchID {
		problems = append(problems, fmt.Sprintf("mchid is %q, the shop's is %q", p.MchID, o.Input.MchID))
	}
	return strings.Join(problems, "; ")
}

// refuseMismatchedPayment closes the order (WeChat takes no second payment
// for an out_trade_no, so it can never be paid properly), flags it, and
// returns the money.
func (o *order) refuseMismatchedPayment(ctx workflow.Context, p PaymentNotice, problem string) error {
	o.logger.Error("payment does not match the order: closing it and returning the money",
		"transaction_id", p.TransactionID, "problem", problem)
	if o.Status == status.Pending {
		if err := o.closeHere(ctx, "the payment did not match the order: "+problem, FlagPaymentMismatch); err != nil {
			return err
		}
	} else if err := o.flag(ctx, FlagPaymentMismatch, problem); err != nil {
		return err
	}
	o.returnPayment(ctx, p, fmt.Sprintf("the payment does not match order %s: %s", o.Input.OrderNo, problem))
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
		TypedSearchAttributes: temporal.NewSearchAttributes(AttrOrderNo.ValueSet(o.Input.OrderNo)),
		StaticSummary:         fmt.Sprintf("Return stray payment %s · %s · order %s", p.TransactionID, yuan(p.AmountFen), o.Input.OrderNo),
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
	o.Refunds = append(o.Refunds, RefundView{
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
		if !p.Paid() || o.Seen[p.TransactionID] {
			continue
		}
		o.Seen[p.TransactionID] = true
		why := fmt.Sprintf("order %s is %s", o.Input.OrderNo, o.Status)
		if o.TransactionID != "" {
			why += " and keeps transaction " + o.TransactionID
		}
		o.returnPayment(ctx, p, why)
	}
}

// closeUnpaid closes an order nobody paid for — at WeChat first, so that no
// payment can land after it is closed here — unless WeChat says it was paid
// after all, which makes it PAID. A close can be answered 204 for an order
// paid a moment before, so the answer decides nothing: the query after it
// does. It returns once the order is CLOSED or PAID.
func (o *order) closeUnpaid(ctx workflow.Context, why string) error {
	o.Closing = why
	o.setWaiting(ctx, "Closing ("+why+")")
	// A prepay being made now must reach WeChat before the close does.
	if err := workflow.Await(ctx, func() bool { return !o.paying }); err != nil {
		return err
	}
	if o.Prepay.State == PrepayNone {
		// WeChat never heard of this order: nothing can be paid, nothing to close there.
		return o.closeHere(ctx, why, "")
	}

	retry, userPaying := closeRetryFirst, 0
	for attempt := 1; ; attempt++ {
		st := o.queryPayment(ctx, "before closing it")
		if err := o.takePayments(ctx, st); err != nil || o.Status != status.Pending {
			return err
		}
		if st.TradeState == TradeUserPaying && userPaying < userPayingRounds {
			userPaying++
			o.pause(ctx, userPayingGrace, "The payer is entering the password: give them time")
			attempt--
			continue
		}

		o.closeAtWechat(ctx)
		st = o.queryPayment(ctx, "after closing it")
		if err := o.takePayments(ctx, st); err != nil || o.Status != status.Pending {
			return err
		}
		switch st.TradeState {
		case TradeClosed, TradeNotFound, TradeRevoked:
			return o.closeHere(ctx, why, "")
		case TradeRefund:
			return o.closeHere(ctx, why+"; WeChat says its payment was refunded outside this order", FlagUnexpectedRefund)
		}
		if attempt >= closeAttempts {
			// Closed here all the same, so the order does not wait forever: a
			// payment that lands later is returned by a StrayPaymentWorkflow.
			return o.closeHere(ctx, fmt.Sprintf("%s; WeChat still says %q after %d attempts to close it", why, st.TradeState, attempt), FlagCloseUnconfirmed)
		}
		o.pause(ctx, retry, fmt.Sprintf("Retry closing at WeChat (it says %q)", st.TradeState))
		retry = min(retry*2, closeRetryMax)
	}
}

// takePayments takes, while closing, every payment known now: a paid
// query answer, then those reported meanwhile — until one changes the
// order's status (PAID, or CLOSED for money that does not match).
func (o *order) takePayments(ctx workflow.Context, queried PaymentNotice) error {
	if queried.Paid() {
		if err := o.takePayment(ctx, queried); err != nil || o.Status != status.Pending {
			return err
		}
	}
	for o.Status == status.Pending {
		p, ok := o.nextPayment()
		if !ok {
			return nil
		}
		if err := o.takePayment(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// queryPayment asks WeChat for the order's trade state. A permanent failure
// is logged and answered with an empty state: the caller treats it as
// "not known to be closed" and tries again later.
func (o *order) queryPayment(ctx workflow.Context, when string) PaymentNotice {
	o.setWaiting(ctx, "Asking WeChat Pay for the trade state "+when)
	actx := workflow.WithActivityOptions(ctx, wechatActivity(fmt.Sprintf("Ask WeChat Pay whether order %s was paid (%s)", o.Input.OrderNo, when)))
	var st PaymentNotice
	if err := workflow.ExecuteActivity(actx, ActivityQueryPayment, o.Input.OrderNo).Get(ctx, &st); err != nil {
		o.logger.Warn("payment query failed", "error", err)
		return PaymentNotice{OutTradeNo: o.Input.OrderNo, Source: "query"}
	}
	o.logger.Info("payment queried", "trade_state", st.TradeState, "when", when)
	return st
}

func (o *order) closeAtWechat(ctx workflow.Context) {
	o.setWaiting(ctx, "Closing the order at WeChat Pay")
	actx := workflow.WithActivityOptions(ctx, wechatActivity("Close order "+o.Input.OrderNo+" at WeChat Pay"))
	if err := workflow.ExecuteActivity(actx, ActivityClosePayment, o.Input.OrderNo).Get(ctx, nil); err != nil {
		// Refused or unverified: the query that follows decides.
		o.logger.Info("WeChat did not confirm the close; asking it", "error", errorMessage(err))
	}
}

// closeHere closes the order in the database (CLOSED), flagging it when flag
// is set.
func (o *order) closeHere(ctx workflow.Context, why, flag string) error {
	o.setWaiting(ctx, "Closing the order: "+why)
	var res OrderStatusResult
	if err := o.runDB(ctx, dbActivity("Close order "+o.Input.OrderNo+": "+why), ActivityCloseOrder, CloseOrderInput{
		OrderNo: o.Input.OrderNo, Reason: why, Flag: flag,
	}, &res); err != nil {
		return fmt.Errorf("close order %s: %w", o.Input.OrderNo, err)
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
	}, func() bool { return len(o.Inbox) > 0 })
}

// validatePay refuses a pay update before anything is written to history.
func (o *order) validatePay(ctx workflow.Context) error {
	switch {
	case !o.Placed:
		return refuse(ErrTypeNotPayable, "order %s is still being placed", o.Input.OrderNo)
	case o.Status != status.Pending:
		return refuse(ErrTypeNotPayable, "order %s is %s", o.Input.OrderNo, o.Status)
	case o.Closing != "" || o.CancelRequested:
		return refuse(ErrTypeNotPayable, "order %s is being closed", o.Input.OrderNo)
	case !workflow.Now(ctx).Before(o.Deadline):
		return refuse(ErrTypeNotPayable, "the payment deadline of order %s passed at %s", o.Input.OrderNo, clock(o.Deadline))
	}
	return nil
}

// validatePayUpdate is the pay update's validator: validatePay, and a pay
// of an order that holds a fresh prepay is refused as ErrTypeAlreadyRequested
// before anything is written to history — the API answers it from
// QueryPayParams, which writes nothing either. (Validators do not run on
// replay, so pays accepted before this check replay as they ran; pay
// itself still re-checks with validatePay alone.) A pay while the first
// prepay is being made is accepted and waits for it: at most
// history.maxInFlightUpdates (10) wait at a time.
func (o *order) validatePayUpdate(ctx workflow.Context) error {
	if err := o.validatePay(ctx); err != nil {
		return err
	}
	if _, ok := o.freshPrepay(ctx); ok {
		return refuse(ErrTypeAlreadyRequested, "order %s holds a prepay: its parameters are in the %s query", o.Input.OrderNo, QueryPayParams)
	}
	return nil
}

// freshPrepay is the prepay the order holds while it can still be used.
func (o *order) freshPrepay(ctx workflow.Context) (PayParams, bool) {
	p := o.Prepay
	if p.State != PrepayMade || p.Params == nil || o.paying || workflow.Now(ctx).Sub(p.MadeAt) >= prepayReuse {
		return PayParams{}, false
	}
	return *p.Params, true
}

// queryPayParams answers QueryPayParams: the parameters of the fresh
// prepay of an order that can still be paid.
func (o *order) queryPayParams(ctx workflow.Context) (PayParams, error) {
	if err := o.validatePay(ctx); err != nil {
		return PayParams{}, err
	}
	p, ok := o.freshPrepay(ctx)
	if !ok {
		return PayParams{}, fmt.Errorf("order %s holds no prepay: send the %s update", o.Input.OrderNo, UpdatePay)
	}
	return p, nil
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

	if err := o.runDB(ctx, userWaitsActivity("Check that order "+o.Input.OrderNo+"'s items are still in stock"), ActivityCheckStock, o.Input.OrderNo, nil); err != nil {
		if errorType(err) == ErrTypeOutOfStock {
			return PayParams{}, refuse(ErrTypeOutOfStock, "%s", errorMessage(err))
		}
		return PayParams{}, refuse(ErrTypeWechatUnavailable, "the shop could not check stock in time; try again")
	}
	if o.Prepay.State == PrepayMade && workflow.Now(ctx).Sub(o.Prepay.MadeAt) < prepayReuse {
		return *o.Prepay.Params, nil
	}

	o.Prepay.State = PrepayAsked
	actx := workflow.WithActivityOptions(ctx, userWaitsActivity(fmt.Sprintf(
		"Create the WeChat Pay prepay of order %s (%s, expires %s)", o.Input.OrderNo, yuan(o.Created.TotalFen), clock(o.Deadline))))
	var params PayParams
	if err := workflow.ExecuteActivity(actx, ActivityRequestPayment, RequestPaymentInput{
		OrderNo: o.Input.OrderNo, UserID: o.Input.UserID, TotalFen: o.Created.TotalFen, TimeExpire: o.Deadline,
	}).Get(ctx, &params); err != nil {
		switch t := errorType(err); t {
		case ErrTypeNotPayable, ErrTypeWechatRefused:
			return PayParams{}, refuse(t, "%s", errorMessage(err))
		default:
			o.logger.Warn("prepay failed", "error", err)
			return PayParams{}, refuse(ErrTypeWechatUnavailable, "WeChat Pay did not answer in time; try again")
		}
	}
	o.Prepay = Prepay{State: PrepayMade, Params: &params, MadeAt: workflow.Now(ctx)}
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
	case !o.Placed || o.Status != status.Pending:
		return refuse(ErrTypeSyncNotNeeded, "order %s is %s", o.Input.OrderNo, o.Status)
	case o.Closing != "":
		return refuse(ErrTypeSyncNotNeeded, "order %s is being closed", o.Input.OrderNo)
	case o.Prepay.State == PrepayNone:
		return refuse(ErrTypeSyncNotNeeded, "order %s was never sent to WeChat Pay", o.Input.OrderNo)
	case !o.LastSync.IsZero() && workflow.Now(ctx).Sub(o.LastSync) < SyncInterval:
		return refuse(ErrTypeSyncNotNeeded, "WeChat was asked about order %s less than %s ago", o.Input.OrderNo, SyncInterval)
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
		return SyncResult{Confirmed: o.TransactionID != "", Order: o.view()}, nil
	}
	o.LastSync = workflow.Now(ctx)
	actx := workflow.WithActivityOptions(ctx, userWaitsActivity("Ask WeChat Pay whether order "+o.Input.OrderNo+" was paid (the mini-program asked)"))
	var st PaymentNotice
	if err := workflow.ExecuteActivity(actx, ActivityQueryPayment, o.Input.OrderNo).Get(ctx, &st); err != nil {
		o.logger.Warn("sync query failed", "error", err)
		return SyncResult{Order: o.view()}, nil
	}
	if st.Paid() {
		o.Inbox = append(o.Inbox, st)
		// The main loop applies it (or has already, from the notify).
		if err := workflow.Await(ctx, func() bool { return o.Status != status.Pending }); err != nil {
			return SyncResult{}, err
		}
	}
	return SyncResult{Confirmed: o.TransactionID != "", Queried: true, Order: o.view()}, nil
}
