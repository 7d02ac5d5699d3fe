package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// WeChat's order shipping management (小程序发货信息管理): for a shop WeChat
// manages, the payer's money stays frozen until the shipment is reported
// to WeChat and the buyer confirms receipt there. An order started since
// ChangeWechatShipping reports its shipment once it is SHIPPED (an upload
// that a retry never repeats: WeChat allows one re-ship, which a lost
// answer must not spend) and completes when WeChat says receipt was
// confirmed — its settlement event, or WeChat asked when the auto-confirm
// time comes and again, with backoff, after it. Every wait of it is a
// deadline in WechatShipping and a step of the main loop.

// WeChat's order states of a payment (get_order order_state).
const (
	WechatToShip    = 1
	WechatShipped   = 2
	WechatConfirmed = 3 // the buyer (or WeChat, after its deadline) confirmed receipt
	WechatSettled   = 4 // the money reached the merchant
	WechatRefunded  = 5
)

// WechatStateText names a WeChat order state for people.
func WechatStateText(state int) string {
	switch state {
	case WechatToShip:
		return "paid, not shipped"
	case WechatShipped:
		return "shipped"
	case WechatConfirmed:
		return "receipt confirmed"
	case WechatSettled:
		return "receipt confirmed, settled"
	case WechatRefunded:
		return "refunded"
	}
	return "unknown"
}

// WeChat's push events the order takes (WechatEvent.Event).
const (
	EventOrderSettlement = "trade_manage_order_settlement"
	EventRemindShipping  = "trade_manage_remind_shipping"
)

// WechatEvent is a shipping-management event WeChat pushed about this
// order's payment (SignalWechatEvent).
type WechatEvent struct {
	Event         string `json:"event"`
	TransactionID string `json:"transaction_id"`
	// ConfirmReceiveMethod: 1 the buyer confirmed, 2 WeChat did after its
	// deadline (settlement only).
	ConfirmReceiveMethod int        `json:"confirm_receive_method,omitempty"`
	ConfirmReceiveTime   *time.Time `json:"confirm_receive_time,omitempty"`
	SettlementTime       *time.Time `json:"settlement_time,omitempty"`
}

// WechatShipping is how far the order's shipping management has got:
// plain data, part of OrderState (nil for orders of before
// ChangeWechatShipping, which take the old path).
type WechatShipping struct {
	// Managed is nil until a worker said whether WeChat manages the shop's
	// shipping (WECHAT_SHIPPING_MANAGED, or is_trade_managed); false: the
	// order completes by itself at AutoConfirmAt, as before.
	Managed *bool `json:"managed,omitempty"`
	// The upload: done, or the rounds tried and when the next one is due.
	Uploaded     bool      `json:"uploaded,omitempty"`
	UploadedAt   time.Time `json:"uploaded_at,omitempty"`
	UploadRounds int       `json:"upload_rounds,omitempty"`
	NextUploadAt time.Time `json:"next_upload_at,omitempty"`
	// UploadRefused is WeChat's permanent refusal (flagged
	// SHIPPING_UPLOAD_FAILED; no more rounds); UploadError the last
	// transient failure.
	UploadRefused string `json:"upload_refused,omitempty"`
	UploadError   string `json:"upload_error,omitempty"`
	UploadFlagged bool   `json:"upload_flagged,omitempty"`
	// WeChat's view of the payment, as last heard.
	OrderState  int  `json:"order_state,omitempty"`
	InComplaint bool `json:"in_complaint,omitempty"`
	// The completion wait: WeChat is asked at NextAskAt (the first time at
	// AutoConfirmAt), Asks times so far; the buyer reminded once.
	NextAskAt time.Time `json:"next_ask_at,omitempty"`
	Asks      int       `json:"asks,omitempty"`
	Reminded  bool      `json:"reminded,omitempty"`
	// StoppedAsking: WeChat says the payment was refunded outside the
	// order (flagged UNEXPECTED_REFUND): nothing will confirm it.
	StoppedAsking bool `json:"stopped_asking,omitempty"`
}

// WechatShippingView is WeChat's side of the order in the state query.
type WechatShippingView struct {
	WechatShipping
	// State is OrderState for people ("shipped", "receipt confirmed", …).
	State string `json:"state"`
	// Settlement is WeChat's settlement event, when one came.
	Settlement *WechatEvent `json:"settlement,omitempty"`
}

// UploadShippingInput is the UploadShippingInfo activity's input.
type UploadShippingInput struct {
	OrderNo       string      `json:"order_no"`
	TransactionID string      `json:"transaction_id"`
	Shipment      ShipRequest `json:"shipment"`
	// Retry: an earlier round may have reached WeChat, so WeChat is asked
	// first whether it has the shipment (its one re-ship is not spent on a
	// lost answer). The activity also asks on its own retries.
	Retry bool `json:"retry,omitempty"`
}

// WechatShippingInput names an order's payment for QueryWechatShipping and
// RemindReceiptConfirmation.
type WechatShippingInput struct {
	OrderNo       string `json:"order_no"`
	TransactionID string `json:"transaction_id"`
	// ReceivedAt is when the goods arrived, for the reminder.
	ReceivedAt time.Time `json:"received_at,omitempty"`
}

// WechatShippingResult is what UploadShippingInfo and QueryWechatShipping
// found.
type WechatShippingResult struct {
	// Managed: WeChat manages the shop's shipping; false, nothing was
	// asked of WeChat.
	Managed bool `json:"managed"`
	// Uploaded: WeChat has the shipment (this call reported it, or an
	// earlier one had: Already).
	Uploaded    bool `json:"uploaded,omitempty"`
	Already     bool `json:"already,omitempty"`
	OrderState  int  `json:"order_state,omitempty"`
	InComplaint bool `json:"in_complaint,omitempty"`
}

// RemindResult is what RemindReceiptConfirmation did.
type RemindResult struct {
	Reminded bool   `json:"reminded"`
	Why      string `json:"why,omitempty"` // why not
}

// reportsToWechat: the order takes the shipping-management path.
func (o *order) reportsToWechat() bool { return o.WechatShipping != nil }

// listenWechat records the shipping-management events WeChat pushes about
// this order's payment (noteWechatEvent).
func (o *order) listenWechat(ctx workflow.Context) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, SignalWechatEvent)
		for {
			var e WechatEvent
			ch.Receive(ctx, &e)
			o.noteWechatEvent(e)
		}
	})
}

// noteWechatEvent records one shipping-management event for the main
// loop: the first settlement (receipt confirmed), and reminders to ship.
// Events of another transaction are not this order's.
func (o *order) noteWechatEvent(e WechatEvent) {
	o.logger.Info("WeChat shipping event", "event", e.Event, "transaction_id", e.TransactionID)
	if o.TransactionID == "" || e.TransactionID != o.TransactionID {
		o.logger.Warn("WeChat shipping event of another payment: ignored", "event", e.Event,
			"transaction_id", e.TransactionID, "order_transaction_id", o.TransactionID)
		return
	}
	switch e.Event {
	case EventOrderSettlement:
		if o.WechatSettlement == nil {
			o.WechatSettlement = &e
		}
	case EventRemindShipping:
		o.ShippingReminder = &e
	}
}

// wechatView is the state query's WechatShippingView (nil when WeChat is
// not part of the order's story).
func (o *order) wechatView() *WechatShippingView {
	w := o.WechatShipping
	if o.WechatSettlement == nil && (w == nil || (w.Managed == nil && w.UploadRounds == 0 && w.OrderState == 0)) {
		return nil // nothing asked of WeChat yet (not shipped)
	}
	v := &WechatShippingView{Settlement: o.WechatSettlement}
	if o.WechatShipping != nil {
		v.WechatShipping = *o.WechatShipping
	}
	if o.WechatSettlement != nil && v.OrderState < WechatSettled {
		v.OrderState = WechatSettled
	}
	v.State = WechatStateText(v.OrderState)
	return v
}

// wechatDetails is WeChat's side for the details line ("" when none).
func (o *order) wechatDetails() string {
	w := o.WechatShipping
	v := o.wechatView()
	switch {
	case v == nil:
		return ""
	case w != nil && w.Managed != nil && !*w.Managed:
		return "WeChat: shipping not managed"
	case w != nil && w.UploadRefused != "":
		return "WeChat: shipment refused (" + w.UploadRefused + ")"
	}
	if v.OrderState == 0 {
		return "WeChat: shipment not reported yet"
	}
	return "WeChat: " + v.State
}

// shipToWechat starts the shipping-management path of a shipped order: the
// upload is due now, WeChat is asked at the auto-confirm time.
func (o *order) shipToWechat() {
	w := o.WechatShipping
	w.NextUploadAt, w.NextAskAt = o.shippedAt(), o.AutoConfirmAt
}

func (o *order) shippedAt() time.Time { return o.AutoConfirmAt.Add(-o.Input.AutoConfirm) }

// uploadDue: the shipment is to be reported to WeChat now.
func (o *order) uploadDue(now time.Time) bool {
	w := o.WechatShipping
	return o.needsUpload() && !now.Before(w.NextUploadAt)
}

func (o *order) needsUpload() bool {
	w := o.WechatShipping
	return !w.Uploaded && w.UploadRefused == "" && (w.Managed == nil || *w.Managed) && w.OrderState != WechatRefunded
}

// managed: a worker said WeChat manages the shop's shipping.
func (o *order) managed() bool { w := o.WechatShipping; return w.Managed != nil && *w.Managed }

// notManaged: a worker said WeChat does not manage it.
func (o *order) notManaged() bool { w := o.WechatShipping; return w.Managed != nil && !*w.Managed }

// askDue: WeChat is to be asked now whether receipt was confirmed.
func (o *order) askDue(now time.Time) bool {
	w := o.WechatShipping
	return o.managed() && !w.StoppedAsking && !now.Before(w.NextAskAt)
}

// autoCompleteDue: not managed, and the auto-confirm time has come.
func (o *order) autoCompleteDue(now time.Time) bool {
	return o.notManaged() && !now.Before(o.AutoConfirmAt)
}

// nextWechatDeadline is the soonest deadline the shipped order waits for
// (zero when none: it waits for a request or an event only).
func (o *order) nextWechatDeadline() time.Time {
	w := o.WechatShipping
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if o.needsUpload() {
		soonest(w.NextUploadAt)
	}
	if o.managed() && !w.StoppedAsking {
		soonest(w.NextAskAt)
	}
	if o.notManaged() {
		soonest(o.AutoConfirmAt)
	}
	return next
}

// awaitShippedAtWechat is one round of a shipped order on the
// shipping-management path: the upload or the question to WeChat that is
// due, or else a wait until the next one is due or something comes (a
// request, WeChat's event, a payment to return). Each round ends where the
// main loop can go on: awaitFulfilment checks the history budget
// (keepHistoryBudget) before the next, and a run that continues as new
// picks the rounds up from WechatShipping (NextUploadAt, UploadRounds,
// NextAskAt, Asks, Reminded).
func (o *order) awaitShippedAtWechat(ctx workflow.Context) error {
	now := workflow.Now(ctx)
	refunding := pending(o.RefundRequest) || o.partDue(now)
	switch {
	case o.uploadDue(now) && !refunding:
		// (A refund asked for meanwhile goes first: a busy WeChat must not
		// hold the money back for a round.)
		return o.uploadShipment(ctx)
	case o.askDue(now) && !pending(o.ConfirmRequest) && !refunding && o.WechatSettlement == nil:
		return o.askRound(ctx)
	}
	o.setWaiting(ctx, o.withParts(o.shippedWaiting()))
	partsNext := o.nextPartDeadline()
	cond := func() bool {
		return pending(o.RefundRequest) || pending(o.ConfirmRequest) || len(o.Inbox) > 0 ||
			o.WechatSettlement != nil || o.ShippingReminder != nil ||
			o.partResultIn() || !o.nextPartDeadline().Equal(partsNext)
	}
	next := o.nextWechatDeadline()
	summary := ""
	if parts := o.nextPartDeadline(); !parts.IsZero() && (next.IsZero() || parts.Before(next)) {
		next, summary = parts, o.partTimerSummary()
	}
	if summary == "" && !next.IsZero() {
		summary = o.shippedTimerSummary(next)
	}
	if next.IsZero() || cond() {
		return workflow.Await(ctx, cond)
	}
	// The timer is cancelled when something else ends the wait. (The SDK's
	// AwaitWithOptions leaves it pending — SDKFlagCancelAwaitTimerOnCondition
	// is off in SDK 1.50 — so an order woken often, by repeated notifies,
	// would pile up timers that all fire at the same deadline, in one run's
	// history, past any budget check.)
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timer := workflow.NewTimerWithOptions(timerCtx, max(next.Sub(now), time.Millisecond),
		workflow.TimerOptions{Summary: summary})
	return workflow.Await(ctx, func() bool { return cond() || timer.IsReady() })
}

func (o *order) shippedWaiting() string {
	w := o.WechatShipping
	switch {
	case o.notManaged():
		return fmt.Sprintf("Shipped (WeChat does not manage the shop's shipping): waiting for the user to confirm receipt (completes by itself at %s)", clock(o.AutoConfirmAt))
	case o.needsUpload():
		return fmt.Sprintf("Shipped: reporting the shipment to WeChat again at %s (%d rounds so far: %s)", clock(w.NextUploadAt), w.UploadRounds, w.UploadError)
	case w.StoppedAsking:
		return "Shipped, but WeChat says the payment was refunded: waiting for a person"
	case w.UploadRefused != "":
		return fmt.Sprintf("Shipped, but WeChat refused the shipment (%s): a person must report it; asking WeChat at %s", w.UploadRefused, clock(w.NextAskAt))
	}
	return fmt.Sprintf("Shipped and reported to WeChat: waiting for the buyer to confirm receipt in WeChat (asking WeChat at %s)", clock(w.NextAskAt))
}

func (o *order) shippedTimerSummary(next time.Time) string {
	w := o.WechatShipping
	switch {
	case o.needsUpload() && next.Equal(w.NextUploadAt):
		return "Report the shipment to WeChat again"
	case o.notManaged():
		return fmt.Sprintf("Auto-confirm %s after shipping", human(o.Input.AutoConfirm))
	}
	return "Ask WeChat whether the buyer confirmed receipt"
}

// uploadShipment is one round of reporting the shipment to WeChat: an
// activity that retries WeChat's busy and not-yet-visible answers for
// shippingUploadRound; a round that fails so is tried again with backoff,
// a permanent refusal flags the order for a person.
func (o *order) uploadShipment(ctx workflow.Context) error {
	w := o.WechatShipping
	w.UploadRounds++
	o.setWaiting(ctx, fmt.Sprintf("Shipped: reporting the shipment to WeChat (round %d)", w.UploadRounds))
	opts := wechatActivity(fmt.Sprintf("Report the shipment of order %s to WeChat (shipping management, round %d)", o.Input.OrderNo, w.UploadRounds))
	opts.ScheduleToCloseTimeout = shippingUploadRound
	var res WechatShippingResult
	in := UploadShippingInput{OrderNo: o.Input.OrderNo, TransactionID: o.TransactionID, Retry: w.UploadRounds > 1}
	if o.ShipRequest != nil {
		in.Shipment = o.ShipRequest.Arg
	}
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivityUploadShipping, in).Get(ctx, &res)
	now := workflow.Now(ctx)
	switch {
	case err == nil:
		o.takeWechatResult(res)
		switch {
		case !res.Managed:
			o.logger.Info("WeChat does not manage the shop's shipping: the order completes by itself")
		case res.Uploaded:
			w.Uploaded, w.UploadedAt, w.UploadError = true, now, ""
			o.logger.Info("shipment reported to WeChat", "already", res.Already, "order_state", res.OrderState)
		case res.OrderState == WechatRefunded:
			return o.refundedAtWechat(ctx)
		}
		o.showDetails(ctx)
		return nil
	case errorType(err) == ErrTypeWechatRefused:
		// Only a shop WeChat manages is answered by it.
		managed := true
		w.Managed, w.UploadRefused = &managed, errorMessage(err)
		o.showDetails(ctx)
		if w.UploadFlagged {
			return nil
		}
		w.UploadFlagged = true
		return o.flag(ctx, FlagShippingUploadFailed, "WeChat refused the shipment: "+w.UploadRefused)
	}
	w.UploadError = errorMessage(err)
	wait := backoff(shippingUploadRetryFirst, w.UploadRounds, shippingUploadRetryMax)
	w.NextUploadAt = now.Add(wait)
	o.logger.Warn("WeChat did not take the shipment this round", "round", w.UploadRounds, "retry_in", wait, "error", w.UploadError)
	if !w.UploadFlagged && now.Sub(o.shippedAt()) >= shippingUploadFlagAfter {
		w.UploadFlagged = true
		return o.flag(ctx, FlagShippingUploadFailed, fmt.Sprintf("WeChat has not taken the shipment for %s (still trying): %s", human(shippingUploadFlagAfter), w.UploadError))
	}
	o.showDetails(ctx)
	return nil
}

func (o *order) takeWechatResult(res WechatShippingResult) {
	w := o.WechatShipping
	managed := res.Managed
	w.Managed = &managed
	if res.OrderState != 0 {
		w.OrderState, w.InComplaint = res.OrderState, res.InComplaint
	}
}

// queryWechat asks WeChat for its view of the payment (get_order).
func (o *order) queryWechat(ctx workflow.Context, why string) (WechatShippingResult, error) {
	opts := wechatActivity(fmt.Sprintf("Ask WeChat whether the buyer of order %s confirmed receipt (%s)", o.Input.OrderNo, why))
	opts.ScheduleToCloseTimeout = shippingAskFor
	var res WechatShippingResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivityQueryWechatShipping,
		WechatShippingInput{OrderNo: o.Input.OrderNo, TransactionID: o.TransactionID}).Get(ctx, &res)
	if err != nil {
		o.logger.Warn("WeChat could not be asked about the order", "error", err)
		return res, err
	}
	o.takeWechatResult(res)
	return res, nil
}

// askRound asks WeChat whether receipt was confirmed, at the auto-confirm
// time and then with backoff: COMPLETED when it was; the buyer reminded
// once when it was not.
func (o *order) askRound(ctx workflow.Context) error {
	w := o.WechatShipping
	w.Asks++
	o.setWaiting(ctx, fmt.Sprintf("Shipped: asking WeChat whether the buyer confirmed receipt (ask %d)", w.Asks))
	res, err := o.queryWechat(ctx, fmt.Sprintf("ask %d", w.Asks))
	if err == nil {
		switch {
		case !res.Managed:
			return nil // the order completes by itself now (autoCompleteDue)
		case res.OrderState == WechatConfirmed || res.OrderState == WechatSettled:
			return o.complete(ctx, fmt.Sprintf("WeChat says the buyer confirmed receipt (%s)", WechatStateText(res.OrderState)))
		case res.OrderState == WechatRefunded:
			return o.refundedAtWechat(ctx)
		case res.OrderState == WechatShipped && !w.Reminded:
			o.remindBuyer(ctx)
		}
	}
	wait := backoff(o.askFirst(), w.Asks, shippingAskMax)
	w.NextAskAt = workflow.Now(ctx).Add(wait)
	o.showDetails(ctx)
	return nil
}

// backoff is the wait after the nth failed try (n ≥ 1): first, doubling
// up to most. (Doubled step by step: a shift by n overflows a Duration
// long before n gets large — a day shifted by 17 already does — and a
// negative wait would ask again at once, in a loop.)
func backoff(first time.Duration, n int, most time.Duration) time.Duration {
	wait := first
	for i := 1; i < n && wait < most; i++ {
		wait *= 2
	}
	return min(wait, most)
}

// askFirst is the first wait between two questions to WeChat: a seventh
// of ORDER_AUTO_CONFIRM (a day of a week), doubling to shippingAskMax.
func (o *order) askFirst() time.Duration { return max(o.Input.AutoConfirm/7, time.Second) }

// remindBuyer asks WeChat, once, to remind the buyer to confirm receipt.
// A refusal changes nothing: it is a courtesy.
func (o *order) remindBuyer(ctx workflow.Context) {
	w := o.WechatShipping
	w.Reminded = true
	opts := wechatActivity("Ask WeChat to remind the buyer of order " + o.Input.OrderNo + " to confirm receipt")
	opts.ScheduleToCloseTimeout = shippingAskFor
	var r RemindResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivityRemindReceipt,
		WechatShippingInput{OrderNo: o.Input.OrderNo, TransactionID: o.TransactionID, ReceivedAt: workflow.Now(ctx)}).Get(ctx, &r)
	switch {
	case err != nil:
		o.logger.Warn("the buyer could not be reminded", "error", err)
	case !r.Reminded:
		o.logger.Info("WeChat took no reminder", "why", r.Why)
	}
}

// refundedAtWechat: WeChat says the payment was refunded while the order
// is SHIPPED and refunded nothing — outside this shop. Nothing will
// confirm receipt: the order waits for a person (UNEXPECTED_REFUND).
func (o *order) refundedAtWechat(ctx workflow.Context) error {
	w := o.WechatShipping
	if w.StoppedAsking {
		return nil
	}
	w.StoppedAsking = true
	if o.partsCoverPayment() {
		// WeChat says "refunded" once the whole payment went back: this
		// order's own part refunds did it, and their results settle it.
		o.logger.Info("WeChat's shipping management says the payment was refunded: by this order's part refunds")
		return nil
	}
	return o.flag(ctx, FlagUnexpectedRefund, "WeChat's shipping management says payment "+o.TransactionID+" was refunded, but this order refunded nothing")
}

// confirmShipped answers the user's confirmation of a shipped order. On
// the shipping-management path WeChat's word counts, not the page's: the
// order completes when WeChat says receipt was confirmed, otherwise the
// request is refused.
func (o *order) confirmShipped(ctx workflow.Context) error {
	if !o.reportsToWechat() || o.notManaged() {
		return o.complete(ctx, "the user confirmed receipt")
	}
	res, err := o.queryWechat(ctx, "the user says the goods arrived")
	switch {
	case err != nil:
		o.ConfirmRequest.decide(newRefusal(ErrTypeWechatUnavailable, "WeChat could not be asked whether receipt of order %s was confirmed; try again", o.Input.OrderNo))
	case !res.Managed:
		return o.complete(ctx, "the user confirmed receipt")
	case res.OrderState == WechatConfirmed || res.OrderState == WechatSettled:
		return o.complete(ctx, fmt.Sprintf("the user confirmed receipt, and WeChat says so (%s)", WechatStateText(res.OrderState)))
	case res.OrderState == WechatRefunded:
		o.ConfirmRequest.decide(newRefusal(ErrTypeNotConfirmable, "WeChat says the payment of order %s was refunded", o.Input.OrderNo))
		return o.refundedAtWechat(ctx)
	default:
		o.ConfirmRequest.decide(newRefusal(ErrTypeNotConfirmable,
			"WeChat has not recorded the receipt of order %s (it says: %s): confirm it in WeChat first (wx.openBusinessView weappOrderConfirm)",
			o.Input.OrderNo, WechatStateText(res.OrderState)))
	}
	return nil
}

// completeOnSettlement completes a shipped order on WeChat's settlement
// event.
func (o *order) completeOnSettlement(ctx workflow.Context) error {
	e := o.WechatSettlement
	by := "the buyer"
	if e.ConfirmReceiveMethod == 2 {
		by = "WeChat, after its deadline"
	}
	if w := o.WechatShipping; w != nil {
		w.OrderState = WechatSettled
	}
	return o.complete(ctx, fmt.Sprintf("WeChat reports receipt confirmed by %s (settlement event)", by))
}

// takeReminder flags an order WeChat reminds the shop to ship — unless
// WeChat has its shipment already (a reminder sent before the upload).
func (o *order) takeReminder(ctx workflow.Context) error {
	e := o.ShippingReminder
	o.ShippingReminder = nil
	if w := o.WechatShipping; w != nil && w.Uploaded {
		o.logger.Info("WeChat's reminder to ship came after the shipment was reported: nothing to do")
		return nil
	}
	if slices.Contains(o.Flags, FlagShippingReminded) {
		return nil // flagged at the first reminder
	}
	why := "WeChat reminds the shop to ship this paid order"
	if o.Status == status.Shipped {
		why = "WeChat reminds the shop to ship: it has no shipment of this order (report it in the mini-program console)"
	}
	o.logger.Warn("WeChat reminds the shop to ship", "transaction_id", e.TransactionID)
	return o.flag(ctx, FlagShippingReminded, why)
}
