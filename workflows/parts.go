package workflows

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// Part refunds (ChangePartialRefunds). An order started since the change
// refunds some of its items at a time: every accepted request is a part of
// its own — `<order_no>-R<n>`, its goods priced as the order was — queued
// by the update handler and driven by the main loop as steps with their
// deadlines in the state, never one wait that holds the loop:
//
//	askNextPart    the first QUEUED part, once the refund interval has passed
//	               since the last request of the payment: RequestRefund
//	               (goods_detail, the same out_refund_no every round) → ASKED
//	settle         an ASKED part whose result WeChat reported, or whose next
//	               question is due (QueryRefund): SettleRefund records it →
//	               SUCCESS (refunded_fen, the stock of its items once when
//	               restocked), or FAILED (REFUND_FAILED, the order's status
//	               unchanged: a person must act)
//	all refunded   when SUCCESS parts cover every item bought → REFUNDED
//
// The order stays in its status (PAID, SHIPPED, COMPLETED) meanwhile, and
// its workflow does not end while a part is QUEUED or ASKED. After-sales
// (issue 18, after-sale.go) queue their parts here too (AfterSaleID,
// Restock on a received return), and wait for them by their status.

// PartRefunds are the part refunds of an order: plain data, part of
// OrderState (nil for orders of before ChangePartialRefunds).
type PartRefunds struct {
	// Parts, in the order they were accepted. Pointers: a step holds its
	// part across activities while update handlers append new ones.
	Parts []*PartRefund `json:"parts,omitempty"`
	// LastAskedAt is when WeChat was last asked for a refund of the
	// payment: the next request waits for the refund interval after it.
	LastAskedAt time.Time `json:"last_asked_at,omitempty"`
}

// PartStatus is how far a part refund has got.
type PartStatus string

const (
	PartQueued    PartStatus = "QUEUED"  // accepted, not asked of WeChat yet
	PartAsked     PartStatus = "ASKED"   // WeChat took it: its result is awaited
	PartSucceeded PartStatus = "SUCCESS" // the money went back
	// PartFailed: WeChat refused or closed it, or never took it within
	// refundRequestFor. Its goods stay committed (never refunded twice):
	// a person returns the money (REFUND_FAILED).
	PartFailed PartStatus = "FAILED"
)

// PartRefund is one part refund of an order.
type PartRefund struct {
	OutRefundNo string       `json:"out_refund_no"`
	Items       []PricedItem `json:"items"`
	RefundFen   int64        `json:"refund_fen"`
	Reason      string       `json:"reason,omitempty"`
	By          string       `json:"by"`
	// IdempotencyKey is the client's name of the request that made it.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// AfterSaleID is the after-sale that made it ("" for a refund request).
	AfterSaleID string `json:"after_sale_id,omitempty"`
	// Restock: its goods are back on the shelf (refunded before shipping,
	// or a return received), so its success restores their stock.
	Restock  bool       `json:"restock,omitempty"`
	Status   PartStatus `json:"status"`
	QueuedAt time.Time  `json:"queued_at"`

	// Asking: the rounds so far, the first's time, when the next is due
	// (zero: at once) and the last round's failure.
	AskRounds    int       `json:"ask_rounds,omitempty"`
	FirstAskedAt time.Time `json:"first_asked_at,omitempty"`
	NextAskAt    time.Time `json:"next_ask_at,omitempty"`
	AskError     string    `json:"ask_error,omitempty"`
	// Awaiting the result: since when (REFUND_STALLED counts from here),
	// when WeChat is next asked, the wait before that, and whether the
	// stall was reported.
	AskedAt    time.Time     `json:"asked_at,omitempty"`
	NextPollAt time.Time     `json:"next_poll_at,omitempty"`
	Poll       time.Duration `json:"poll,omitempty"`
	Stalled    bool          `json:"stalled,omitempty"`
	// The outcome: WeChat's final status and how it was learnt.
	RefundStatus status.Refund `json:"refund_status,omitempty"`
	Result       string        `json:"result,omitempty"`
	SettledAt    time.Time     `json:"settled_at,omitempty"`
}

// open: the part is not settled yet (queued or asked).
func (p *PartRefund) open() bool { return p.Status == PartQueued || p.Status == PartAsked }

func (p *PartRefund) view() RefundView {
	st := string(p.Status)
	switch p.Status {
	case PartAsked:
		st = string(status.RefundProcessing)
	case PartSucceeded, PartFailed:
		st = string(p.RefundStatus)
	}
	return RefundView{OutRefundNo: p.OutRefundNo, RefundFen: p.RefundFen, Status: st, Reason: p.Reason,
		Items: slices.Clone(p.Items), AfterSaleID: p.AfterSaleID}
}

// inParts: the order refunds in parts (ChangePartialRefunds).
func (o *order) inParts() bool { return o.Parts != nil }

// partsOpen reports whether a part refund is still queued or asked.
func (o *order) partsOpen() bool {
	if o.Parts == nil {
		return false
	}
	for _, p := range o.Parts.Parts {
		if p.open() {
			return true
		}
	}
	return false
}

// hasWorkLeft reports whether the order's workflow goes on: its status is
// not final, or part refunds are still under way. (After-sales add their
// own: an open after-sale, the after-sale window of a completed order.)
func (o *order) hasWorkLeft() bool {
	return !o.Status.Terminal() || o.partsOpen() || o.afterSalesKeepOpen()
}

// committed is how many of each product the order's refunds hold: parts in
// any status (a FAILED one keeps its goods until a person acts), and all
// of them while a whole-order refund is under way or done.
func (o *order) committed() map[int64]int64 {
	out := map[int64]int64{}
	if o.Status == status.Refunding || o.Status == status.Refunded || o.Status == status.RefundFailed {
		for _, it := range o.Created.Items {
			out[it.ProductID] = it.Quantity
		}
		return out
	}
	if o.Parts != nil {
		for _, p := range o.Parts.Parts {
			for _, it := range p.Items {
				out[it.ProductID] += it.Quantity
			}
		}
	}
	o.afterSaleHeld(out)
	return out
}

// leftToRefund is what of each product bought no refund holds yet.
func (o *order) leftToRefund() []RefundItem {
	held := o.committed()
	var out []RefundItem
	for _, it := range o.Created.Items {
		if n := it.Quantity - held[it.ProductID]; n > 0 {
			out = append(out, RefundItem{ProductID: it.ProductID, Quantity: n})
		}
	}
	return out
}

// nothingToShip: part refunds that are queued, asked or succeeded hold
// every item bought, so a parcel would hold none. (Goods of a FAILED part
// may still ship: a person decides what becomes of them.)
func (o *order) nothingToShip() bool {
	if o.Parts == nil || len(o.Created.Items) == 0 {
		return false
	}
	held := map[int64]int64{}
	for _, p := range o.Parts.Parts {
		if p.Status == PartFailed {
			continue
		}
		for _, it := range p.Items {
			held[it.ProductID] += it.Quantity
		}
	}
	for _, it := range o.Created.Items {
		if held[it.ProductID] < it.Quantity {
			return false
		}
	}
	return true
}

// refundedItems is how many of each product WeChat refunded (SUCCESS
// parts, or everything once a whole-order refund succeeded).
func (o *order) refundedItems() []RefundItem {
	got := map[int64]int64{}
	if o.Status == status.Refunded && !o.partsSucceeded() {
		for _, it := range o.Created.Items {
			got[it.ProductID] = it.Quantity
		}
	}
	if o.Parts != nil {
		for _, p := range o.Parts.Parts {
			if p.Status == PartSucceeded {
				for _, it := range p.Items {
					got[it.ProductID] += it.Quantity
				}
			}
		}
	}
	var out []RefundItem
	for _, it := range o.Created.Items {
		if n := got[it.ProductID]; n > 0 {
			out = append(out, RefundItem{ProductID: it.ProductID, Quantity: n})
		}
	}
	return out
}

func (o *order) partsSucceeded() bool {
	if o.Parts == nil {
		return false
	}
	for _, p := range o.Parts.Parts {
		if p.Status == PartSucceeded {
			return true
		}
	}
	return false
}

// refundedFen is what WeChat returned of the payment: the SUCCESS refunds
// of the whole order and of its parts.
func (o *order) refundedFen() int64 {
	var fen int64
	for _, r := range o.Refunds {
		if r.Status == string(status.RefundSuccess) {
			fen += r.RefundFen
		}
	}
	if o.Parts != nil {
		for _, p := range o.Parts.Parts {
			if p.Status == PartSucceeded {
				fen += p.RefundFen
			}
		}
	}
	return fen
}

// allRefunded: SUCCESS parts cover every item bought.
func (o *order) allRefunded() bool {
	got := map[int64]int64{}
	for _, it := range o.refundedItems() {
		got[it.ProductID] = it.Quantity
	}
	for _, it := range o.Created.Items {
		if got[it.ProductID] < it.Quantity {
			return false
		}
	}
	return len(o.Created.Items) > 0
}

// takesWholeRefund: a request of an order refunding in parts that takes
// the path of before — no items, and nothing refunded or queued before —
// REFUNDING → REFUNDED (o.refund), with the stock restored when PAID.
func (o *order) takesWholeRefund(req RefundRequest) bool {
	// (An after-sale holding goods makes it a part of what is left: the
	// whole payment may no longer go back.)
	return len(req.Items) == 0 && len(o.Parts.Parts) == 0 && o.openAfterSale() == nil
}

// partRefusal says why the order cannot take req as a part refund now
// (nil: it can). It is asked by the validator, before anything is written,
// and again by the handler: validators do not run on replay, and another
// request may have been taken between the two.
func (o *order) partRefusal(req RefundRequest) *Refusal {
	no := o.Input.OrderNo
	if r := o.RefundRequest; pending(r) {
		return newRefusal(ErrTypeRefundExceedsOrder, "a refund of the whole order %s is being decided", no)
	}
	if pending(o.ShipRequest) {
		// Its goods may be in the parcel: whether they go back on the
		// shelf is not known until it has shipped.
		return newRefusal(ErrTypeNotRefundable, "order %s is being shipped: ask again once it has shipped", no)
	}
	left := map[int64]int64{}
	for _, it := range o.leftToRefund() {
		left[it.ProductID] = it.Quantity
	}
	if len(req.Items) == 0 {
		if len(left) == 0 {
			return newRefusal(ErrTypeRefundExceedsOrder, "every item of order %s is refunded or being refunded", no)
		}
		return nil
	}
	if n := len(req.Items); n > len(o.Created.Items) {
		return newRefusal(ErrTypeRefundExceedsOrder, "%d items asked, order %s has %d", n, no, len(o.Created.Items))
	}
	bought := map[int64]int64{}
	for _, it := range o.Created.Items {
		bought[it.ProductID] = it.Quantity
	}
	seen := map[int64]bool{}
	for _, it := range req.Items {
		b, ok := bought[it.ProductID]
		switch {
		case !ok:
			return newRefusal(ErrTypeRefundExceedsOrder, "product %d is not in order %s", it.ProductID, no)
		case it.Quantity <= 0:
			return newRefusal(ErrTypeRefundExceedsOrder, "product %d: quantity %d; want at least 1", it.ProductID, it.Quantity)
		case seen[it.ProductID]:
			return newRefusal(ErrTypeRefundExceedsOrder, "product %d is listed twice", it.ProductID)
		case it.Quantity > b:
			return newRefusal(ErrTypeRefundExceedsOrder, "product %d: %d asked, %d bought", it.ProductID, it.Quantity, b)
		case it.Quantity > left[it.ProductID]:
			return newRefusal(ErrTypeRefundExceedsOrder, "product %d: %d asked, %d left to refund (%d bought, the rest refunded or being refunded)",
				it.ProductID, it.Quantity, left[it.ProductID], b)
		}
		seen[it.ProductID] = true
	}
	return nil
}

// keyedPart is the part an earlier request under req's idempotency key
// made (nil: none), and whether req asks for the same.
func (o *order) keyedPart(req RefundRequest) (*PartRefund, bool) {
	if req.IdempotencyKey == "" || o.Parts == nil {
		return nil, false
	}
	for _, p := range o.Parts.Parts {
		if p.IdempotencyKey != req.IdempotencyKey {
			continue
		}
		same := p.By == req.By && p.Reason == req.Reason
		if len(req.Items) > 0 {
			same = same && sameItems(p.Items, req.Items)
		}
		return p, same
	}
	return nil, false
}

func sameItems(have []PricedItem, asked []RefundItem) bool {
	if len(have) != len(asked) {
		return false
	}
	a := slices.Clone(asked)
	slices.SortFunc(a, func(x, y RefundItem) int { return cmp.Compare(x.ProductID, y.ProductID) })
	for i, it := range sortedPriced(have) {
		if it.ProductID != a[i].ProductID || it.Quantity != a[i].Quantity {
			return false
		}
	}
	return true
}

func sortedPriced(items []PricedItem) []PricedItem {
	out := slices.Clone(items)
	slices.SortFunc(out, func(x, y PricedItem) int { return cmp.Compare(x.ProductID, y.ProductID) })
	return out
}

// validateParts is the validator's part of a refund request of an order
// refunding in parts (after refundRefusal): a repeat under its key writes
// nothing.
func (o *order) validateParts(req RefundRequest) error {
	if p, same := o.keyedPart(req); p != nil {
		if same {
			return refuse(ErrTypeAlreadyRequested, "refund %s of order %s was made by this request", p.OutRefundNo, o.Input.OrderNo)
		}
		return refuse(ErrTypeIdempotencyKeyReused, "this Idempotency-Key already made refund %s of order %s, of other goods", p.OutRefundNo, o.Input.OrderNo)
	}
	if o.takesWholeRefund(req) {
		return nil
	}
	return o.partRefusal(req).err()
}

// handlePartsRefund is the request_refund handler of an order refunding
// in parts. A whole refund takes the path of before, with a request of its
// own: one decided before (a user's refund refused while the order was
// being shipped) never answers this one. Anything else is checked again
// and queued at once as a part, in the workflow's one thread, so that
// however many requests come together no goods are refunded twice; the
// answer is the order with the part QUEUED.
func (o *order) handlePartsRefund(ctx workflow.Context, req RefundRequest) (OrderView, error) {
	if o.Status == status.Refunding || o.Status == status.Refunded {
		return o.view(), nil
	}
	if r := o.refundRefusal(req.By); r != nil {
		return o.view(), r.err()
	}
	if p, same := o.keyedPart(req); p != nil {
		if same {
			return o.view(), nil
		}
		return o.view(), refuse(ErrTypeIdempotencyKeyReused, "this Idempotency-Key already made refund %s of order %s, of other goods", p.OutRefundNo, o.Input.OrderNo)
	}
	if o.takesWholeRefund(req) {
		if r := o.RefundRequest; r == nil || r.Done {
			o.RefundRequest = &request[RefundRequest]{Arg: req}
		}
		return awaitDecision(ctx, o, o.RefundRequest)
	}
	if r := o.partRefusal(req); r != nil {
		return o.view(), r.err()
	}
	o.queuePart(ctx, req, "", o.Status == status.Paid)
	return o.view(), nil
}

// queuePart adds a part refund of req's items (none: everything left), in
// the order's prices, to be asked of WeChat by the main loop. afterSaleID
// names the after-sale that made it; restock whether its goods are back
// on the shelf. The caller checked partRefusal.
func (o *order) queuePart(ctx workflow.Context, req RefundRequest, afterSaleID string, restock bool) *PartRefund {
	items := req.Items
	if len(items) == 0 {
		items = o.leftToRefund()
	}
	priced, fen := o.priced(items)
	o.RefundSeq++
	reason := req.Reason
	if reason == "" {
		reason = fmt.Sprintf("refund requested by the %s", req.By)
	}
	p := &PartRefund{
		OutRefundNo: OrderRefundNo(o.Input.OrderNo, o.RefundSeq), Items: priced, RefundFen: fen,
		Reason: reason, By: req.By, IdempotencyKey: req.IdempotencyKey, AfterSaleID: afterSaleID,
		Restock: restock, Status: PartQueued, QueuedAt: workflow.Now(ctx),
	}
	o.Parts.Parts = append(o.Parts.Parts, p)
	o.logger.Info("part refund queued", "out_refund_no", p.OutRefundNo, "refund_fen", p.RefundFen, "by", req.By, "restock", restock)
	o.showDetails(ctx)
	return p
}

// refundInterval is the least time between two refund requests of the
// order's payment.
func (o *order) refundInterval() time.Duration {
	if o.Input.RefundInterval > 0 {
		return o.Input.RefundInterval
	}
	return DefaultRefundInterval
}

// nextQueued is the part to ask next: the first QUEUED one (parts are
// asked in the order they were accepted).
func (o *order) nextQueued() *PartRefund {
	if o.Parts == nil {
		return nil
	}
	for _, p := range o.Parts.Parts {
		if p.Status == PartQueued {
			return p
		}
	}
	return nil
}

// askAt is when the next queued part may be asked: the refund interval
// after the last request, and its round's backoff.
func (o *order) askAt(p *PartRefund) time.Time {
	at := p.QueuedAt
	if p.NextAskAt.After(at) {
		at = p.NextAskAt
	}
	if !o.Parts.LastAskedAt.IsZero() {
		if next := o.Parts.LastAskedAt.Add(o.refundInterval()); next.After(at) {
			at = next
		}
	}
	return at
}

// partResultIn: WeChat reported the final result of an ASKED part.
func (o *order) partResultIn() bool {
	if o.Parts == nil {
		return false
	}
	for _, p := range o.Parts.Parts {
		if _, ok := o.WechatRefunds.Results[p.OutRefundNo]; ok && p.Status == PartAsked {
			return true
		}
	}
	// (And an after-sale step an update handler took, whose row the loop
	// writes next: it wakes the same waits.)
	return o.afterSaleUnsaved() != nil
}

// partDue reports whether a part-refund step is due now.
func (o *order) partDue(now time.Time) bool {
	return o.partResultIn() || o.nextPartStep(now) != nil || o.afterSaleDue(now)
}

// nextPartStep is the ASKED part whose question is due, or the QUEUED part
// whose request is due (nil: none now).
func (o *order) nextPartStep(now time.Time) *PartRefund {
	if o.Parts == nil {
		return nil
	}
	for _, p := range o.Parts.Parts {
		if p.Status == PartAsked && !now.Before(p.NextPollAt) {
			return p
		}
	}
	if p := o.nextQueued(); p != nil && !now.Before(o.askAt(p)) {
		return p
	}
	return nil
}

// nextPartDeadline is the soonest time a part-refund step is due (zero:
// none is waiting for a time).
func (o *order) nextPartDeadline() time.Time {
	if o.Parts == nil {
		return time.Time{}
	}
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, p := range o.Parts.Parts {
		if p.Status == PartAsked {
			soonest(p.NextPollAt)
		}
	}
	if p := o.nextQueued(); p != nil {
		soonest(o.askAt(p))
	}
	// After-sales' timers and a completed order's window are steps of the
	// same loop (aftersale.go).
	if t := o.nextAfterSaleDeadline(); !t.IsZero() {
		soonest(t)
	}
	return next
}

// partStep runs the part-refund step that is due: a reported result first
// (the money's outcome is recorded before anything else is asked), then a
// question or a request whose time has come.
func (o *order) partStep(ctx workflow.Context) error {
	for _, p := range o.Parts.Parts {
		if r, ok := o.WechatRefunds.Results[p.OutRefundNo]; ok && p.Status == PartAsked {
			return o.settlePart(ctx, p, r)
		}
	}
	if o.afterSaleDue(workflow.Now(ctx)) {
		return o.afterSaleStep(ctx)
	}
	p := o.nextPartStep(workflow.Now(ctx))
	switch {
	case p == nil:
		return nil
	case p.Status == PartAsked:
		return o.pollPart(ctx, p)
	}
	return o.askPart(ctx, p)
}

// askPart is one round of asking WeChat for a queued part: RequestRefund
// with its goods (goods_detail), retried within the round — FREQUENCY_LIMITED
// included — with the same out_refund_no, which never refunds twice.
func (o *order) askPart(ctx workflow.Context, p *PartRefund) error {
	now := workflow.Now(ctx)
	p.AskRounds++
	if p.FirstAskedAt.IsZero() {
		p.FirstAskedAt = now
	}
	o.setWaiting(ctx, fmt.Sprintf("Asking WeChat Pay for refund %s (%s, round %d)", p.OutRefundNo, yuan(p.RefundFen), p.AskRounds))
	opts := wechatActivity(fmt.Sprintf("Refund %s of order %s (%s, %d goods) at WeChat Pay", yuan(p.RefundFen), o.Input.OrderNo, p.OutRefundNo, len(p.Items)))
	opts.ScheduleToCloseTimeout = refundAskRound
	var accepted RefundNotice
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivityRequestRefund, RequestRefundInput{
		OrderNo: o.Input.OrderNo, TransactionID: o.TransactionID, OutRefundNo: p.OutRefundNo,
		RefundFen: p.RefundFen, TotalFen: o.Created.TotalFen, Reason: p.Reason, Items: p.Items,
	}).Get(ctx, &accepted)
	now = workflow.Now(ctx)
	// Counted from the round's end: WeChat saw the request some time in it.
	o.Parts.LastAskedAt = now
	switch t := errorType(err); {
	case err == nil:
		p.Status, p.AskedAt, p.AskError = PartAsked, now, ""
		p.Poll = refundPollFirst
		p.NextPollAt = now.Add(p.Poll)
		o.logger.Info("part refund asked", "out_refund_no", p.OutRefundNo, "status", accepted.Status)
		if accepted.Final() {
			return o.settlePart(ctx, p, accepted)
		}
		o.showDetails(ctx)
		return nil
	case t == ErrTypeWechatRefused || t == ErrTypeInvalidOrder:
		o.logger.Error("WeChat refused the part refund", "out_refund_no", p.OutRefundNo, "error", err)
		return o.settlePart(ctx, p, RefundNotice{OutRefundNo: p.OutRefundNo, Status: status.RefundClosed, Source: "request refused: " + errorMessage(err)})
	case now.Sub(p.FirstAskedAt) >= refundRequestFor:
		o.logger.Error("WeChat did not take the part refund", "out_refund_no", p.OutRefundNo, "for", refundRequestFor, "error", err)
		return o.settlePart(ctx, p, RefundNotice{OutRefundNo: p.OutRefundNo, Status: status.RefundClosed,
			Source: fmt.Sprintf("not taken by WeChat in %s: %s", human(refundRequestFor), errorMessage(err))})
	}
	p.AskError = errorMessage(err)
	wait := backoff(refundAskRetryFirst, p.AskRounds, refundAskRetryMax)
	p.NextAskAt = now.Add(wait)
	o.logger.Warn("WeChat did not take the part refund this round", "out_refund_no", p.OutRefundNo, "round", p.AskRounds, "retry_in", wait, "error", p.AskError)
	o.showDetails(ctx)
	return nil
}

// pollPart asks WeChat for the result of an ASKED part whose notify has
// not come: settled when final; otherwise asked again later, less often
// as it ages (refundPollCap), and reported once when it stalls.
func (o *order) pollPart(ctx workflow.Context, p *PartRefund) error {
	opts := wechatActivity("Ask WeChat Pay for the result of refund " + p.OutRefundNo)
	opts.ScheduleToCloseTimeout = refundAskRound
	var r RefundNotice
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ActivityQueryRefund, p.OutRefundNo).Get(ctx, &r)
	switch {
	case err != nil:
		o.logger.Warn("refund query failed", "out_refund_no", p.OutRefundNo, "error", err)
	case r.Final():
		return o.settlePart(ctx, p, r)
	}
	now := workflow.Now(ctx)
	age := now.Sub(p.AskedAt)
	p.Poll = min(p.Poll*2, refundPollCap(age))
	p.NextPollAt = now.Add(p.Poll)
	if !p.Stalled && age >= refundStallAfter {
		p.Stalled = true
		o.logger.Error("refund still not settled by WeChat: a person should look", "out_refund_no", p.OutRefundNo, "since", p.AskedAt)
		return o.flag(ctx, FlagRefundStalled, fmt.Sprintf("refund %s has been with WeChat Pay for over %s", p.OutRefundNo, human(refundStallAfter)))
	}
	o.showDetails(ctx)
	return nil
}

// settlePart records a part's final result (SettleRefund: the refund row,
// refunded_fen, the stock of its goods when restocked — each once) and
// then the part: SUCCESS, and REFUNDED once every item is; or FAILED,
// flagged for a person with the order's status unchanged.
func (o *order) settlePart(ctx workflow.Context, p *PartRefund, r RefundNotice) error {
	ok := r.Status == status.RefundSuccess
	summary := fmt.Sprintf("Record refund %s of order %s as %s", p.OutRefundNo, o.Input.OrderNo, r.Status)
	if ok && p.Restock {
		summary += ", restoring the stock of its goods"
	}
	var res OrderStatusResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, dbActivity(summary)), ActivitySettleRefund, SettleRefundInput{
		OrderNo: o.Input.OrderNo, Refund: r, OrderRefund: true, RestoreStock: ok && p.Restock, Part: true, Items: p.Items,
	}).Get(ctx, &res)
	if err != nil {
		if !slices.Contains(businessErrorTypes, errorType(err)) {
			return fmt.Errorf("settle refund %s: %w", p.OutRefundNo, err)
		}
		// The row could not take the result (a refund WeChat refused
		// before it was recorded): the part fails, for a person.
		ok = false
		r.Source += "; not recorded: " + errorMessage(err)
	}
	p.RefundStatus, p.SettledAt = r.Status, workflow.Now(ctx)
	p.Result = fmt.Sprintf("%s (%s)", r.Status, r.Source)
	if !ok {
		p.Status = PartFailed
		o.afterSalePartSettled(ctx, p)
		o.logger.Error("part refund failed: a person must return the money", "out_refund_no", p.OutRefundNo, "status", r.Status, "source", r.Source)
		if err != nil {
			return o.flag(ctx, FlagRefundFailed, fmt.Sprintf("refund %s failed: %s", p.OutRefundNo, p.Result))
		}
		o.addFlag(ctx, FlagRefundFailed)
		o.publish(ctx)
		return nil
	}
	p.Status = PartSucceeded
	o.afterSalePartSettled(ctx, p)
	o.logger.Info("part refund succeeded", "out_refund_no", p.OutRefundNo, "refund_fen", p.RefundFen, "refunded_fen", o.refundedFen())
	if o.allRefunded() {
		n := 0
		for _, q := range o.Parts.Parts {
			if q.Status == PartSucceeded {
				n++
			}
		}
		return o.transition(ctx, []status.Order{o.Status}, status.Refunded,
			fmt.Sprintf("WeChat refunded %s in %d refunds", yuan(o.refundedFen()), n), "", nil)
	}
	o.publish(ctx)
	return nil
}

// partsWaiting is what the order's part refunds wait for ("" for none).
func (o *order) partsWaiting() string {
	if p := o.nextQueued(); p != nil {
		at := o.askAt(p)
		if p.AskError != "" {
			return fmt.Sprintf("refund %s queued: asking WeChat again at %s (%d rounds so far: %s)", p.OutRefundNo, clock(at), p.AskRounds, p.AskError)
		}
		return fmt.Sprintf("refund %s queued: asking WeChat at %s", p.OutRefundNo, clock(at))
	}
	if o.Parts != nil {
		for _, p := range o.Parts.Parts {
			if p.Status == PartAsked {
				return fmt.Sprintf("refund %s is with WeChat Pay: waiting for its notify (asking at %s)", p.OutRefundNo, clock(p.NextPollAt))
			}
		}
	}
	return ""
}

// withParts adds what the part refunds wait for to a waiting line.
func (o *order) withParts(what string) string {
	if w := o.afterSaleWaiting(); w != "" {
		what += "; " + w
	}
	if w := o.partsWaiting(); w != "" {
		what += "; " + w
	}
	return what
}

// awaitUntil waits until cond holds or, when deadline is not zero, the
// deadline comes. The timer is cancelled when cond ends the wait (see
// awaitShippedAtWechat: a timer left pending would pile up).
func awaitUntil(ctx workflow.Context, cond func() bool, deadline time.Time, summary string) error {
	if deadline.IsZero() || cond() {
		return workflow.Await(ctx, cond)
	}
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timer := workflow.NewTimerWithOptions(timerCtx, max(deadline.Sub(workflow.Now(ctx)), time.Millisecond),
		workflow.TimerOptions{Summary: summary})
	return workflow.Await(ctx, func() bool { return cond() || timer.IsReady() })
}

// partTimerSummary names the timer of the next part-refund step.
func (o *order) partTimerSummary() string {
	if a := o.openAfterSale(); a != nil && !a.Deadline.IsZero() && a.Deadline.Equal(o.nextPartDeadline()) {
		return fmt.Sprintf("After-sale %s: %s times out", a.ID, a.Status)
	}
	if o.inParts() && o.Status == status.Completed && !o.AfterSaleWindowOver && o.windowEnds().Equal(o.nextPartDeadline()) {
		return fmt.Sprintf("After-sale window (%s after completion) ends", human(o.afterSaleWindow()))
	}
	if p := o.nextQueued(); p != nil && o.askAt(p).Equal(o.nextPartDeadline()) {
		return "Ask WeChat Pay for refund " + p.OutRefundNo
	}
	return "Ask WeChat Pay for the result of a refund"
}

// awaitRefundsAndAfterSales is the wait of a COMPLETED order whose
// workflow has work left (hasWorkLeft): its part refunds' results and
// deadlines, and payments to return. (After-sales add their requests and
// deadlines here.)
func (o *order) awaitRefundsAndAfterSales(ctx workflow.Context) error {
	what := string(o.Status)
	if o.Status == status.Completed && !o.AfterSaleWindowOver {
		what = "Completed: taking after-sales until " + clock(o.windowEnds())
	}
	o.setWaiting(ctx, o.withParts(what))
	partsNext := o.nextPartDeadline()
	cond := func() bool { return o.partResultIn() || !o.nextPartDeadline().Equal(partsNext) || len(o.Inbox) > 0 }
	return awaitUntil(ctx, cond, partsNext, o.partTimerSummary())
}

// partsCoverPayment: the part refunds WeChat took (asked or succeeded) add
// up to the whole payment, so WeChat's shipping management rightly shows it
// refunded (state 5, which it shows for a payment refunded in full only).
func (o *order) partsCoverPayment() bool {
	if o.Parts == nil {
		return false
	}
	var fen int64
	for _, p := range o.Parts.Parts {
		if p.Status == PartAsked || p.Status == PartSucceeded {
			fen += p.RefundFen
		}
	}
	return fen >= o.Created.TotalFen
}
