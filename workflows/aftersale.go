package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// After-sales (issue 18): a buyer asks for money back after delivery — a
// SHIPPED order, or a COMPLETED one within OrderInput.AfterSaleWindow of
// its completion — with or without sending the goods back. An after-sale
// lives inside the order's workflow, not in a child workflow: the order
// keeps one history, and the refund queue (parts.go), WeChat's minute
// between two refunds of a payment and the money invariant (never more
// refunded than paid, no goods twice) stay in one place, in one thread. A
// child would need the two workflows to agree on every refund they ask.
//
//	REQUESTED ── approve ──► APPROVED (refund_only: a part refund queued, no restock)
//	    │                       └─ return_and_refund ─► AWAITING_RETURN
//	    ├─ reject ─► REJECTED                  ├─ buyer's parcel ─► RETURNED
//	    └─ AfterSaleAutoApprove ─► approved    └─ AfterSaleReturnTimeout ─► CLOSED
//	RETURNED ── receive (or AfterSaleReceiveTimeout) ─► RECEIVED: a part
//	    refund queued with restock
//	its part SUCCESS ─► REFUNDED; FAILED ─► REFUND_FAILED (REFUND_FAILED flag)
//
// The update handlers move an after-sale at once (in the workflow's one
// thread, after checking again what their validators checked); its timers
// are deadlines in the state, and the main loop takes them as part-refund
// steps (partStep), as it writes each step's row (SaveAfterSale). Nothing
// waits in a future, so a run continues as new between any two steps.
//
// Versioning: after-sales exist only on orders that refund in parts (Parts
// set: ChangePartialRefunds) — the validators refuse any other order, and
// a completed one waits for its window only then. Both land in the same
// release (issue 18), so no history of a run that decided
// ChangePartialRefunds without after-sales exists outside this repository
// (its recorded histories were recorded again): no GetVersion of their
// own is needed. Orders of before ChangePartialRefunds end at COMPLETED as
// they did.

// AfterSaleType is what the buyer asks for.
type AfterSaleType string

const (
	AfterSaleRefundOnly      AfterSaleType = "refund_only"       // money back, the goods stay with the buyer
	AfterSaleReturnAndRefund AfterSaleType = "return_and_refund" // the goods come back, then the money
)

// AfterSaleStatus is how far an after-sale has got.
type AfterSaleStatus string

const (
	AfterSaleRequested      AfterSaleStatus = "REQUESTED"
	AfterSaleApproved       AfterSaleStatus = "APPROVED"
	AfterSaleRejected       AfterSaleStatus = "REJECTED"
	AfterSaleAwaitingReturn AfterSaleStatus = "AWAITING_RETURN"
	AfterSaleReturned       AfterSaleStatus = "RETURNED"
	AfterSaleReceived       AfterSaleStatus = "RECEIVED"
	AfterSaleRefunded       AfterSaleStatus = "REFUNDED"
	AfterSaleRefundFailed   AfterSaleStatus = "REFUND_FAILED"
	AfterSaleClosed         AfterSaleStatus = "CLOSED"
)

// Open reports whether the after-sale is still under way: the order takes
// no other until it is not. (REFUND_FAILED is settled: the order is
// flagged REFUND_FAILED and a person returns the money.)
func (s AfterSaleStatus) Open() bool {
	switch s {
	case AfterSaleRejected, AfterSaleRefunded, AfterSaleRefundFailed, AfterSaleClosed:
		return false
	}
	return true
}

// Actions of the after_sale_action update.
const (
	AfterSaleApprove = "approve" // admin
	AfterSaleReject  = "reject"  // admin
	AfterSaleReturn  = "return"  // the buyer sent the parcel
	AfterSaleReceive = "receive" // admin: the parcel arrived
)

// Default after-sale timings, when OrderInput leaves them 0.
const (
	DefaultAfterSaleWindow         = 7 * 24 * time.Hour
	DefaultAfterSaleAutoApprove    = 3 * 24 * time.Hour
	DefaultAfterSaleReturnTimeout  = 7 * 24 * time.Hour
	DefaultAfterSaleReceiveTimeout = 10 * 24 * time.Hour
)

// MaxAfterSalePhotos is how many photo URLs an after-sale may carry.
const MaxAfterSalePhotos = 9

// AfterSaleRequest is the request_after_sale update's argument (the buyer).
type AfterSaleRequest struct {
	Type AfterSaleType `json:"type"`
	// Items are the goods (none: everything not refunded yet).
	Items  []RefundItem `json:"items,omitempty"`
	Reason string       `json:"reason,omitempty"`
	Photos []string     `json:"photos,omitempty"`
	// IdempotencyKey names the client's request: repeated under it, the
	// answer is the after-sale it made.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// AfterSaleAction is the after_sale_action update's argument.
type AfterSaleAction struct {
	ID     string `json:"id"`
	Action string `json:"action"` // AfterSaleApprove, …
	Note   string `json:"note,omitempty"`
	// The buyer's parcel (return).
	ExpressCompany string `json:"express_company,omitempty"`
	TrackingNo     string `json:"tracking_no,omitempty"`
	By             string `json:"by"` // ByUser (return) or ByAdmin
}

// AfterSale is one after-sale of an order: plain data in OrderState, and
// the state query's view of it.
type AfterSale struct {
	ID      string          `json:"id"`
	OrderNo string          `json:"order_no"`
	UserID  int64           `json:"user_id"`
	Type    AfterSaleType   `json:"type"`
	Status  AfterSaleStatus `json:"status"`
	// Items are its goods, priced as the order was; RefundFen their sum.
	Items     []PricedItem `json:"items"`
	RefundFen int64        `json:"refund_fen"`
	Reason    string       `json:"reason,omitempty"`
	Photos    []string     `json:"photos,omitempty"`
	// Note is the shop's last word (approve, reject, receive), or what
	// the workflow did by itself.
	Note           string `json:"note,omitempty"`
	ExpressCompany string `json:"return_express_company,omitempty"`
	TrackingNo     string `json:"return_tracking_no,omitempty"`
	// OutRefundNo is its part refund's, once queued.
	OutRefundNo    string    `json:"out_refund_no,omitempty"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Deadline is when the step it waits in times out (zero: none):
	// REQUESTED → approved, AWAITING_RETURN → CLOSED, RETURNED → received.
	Deadline time.Time `json:"deadline,omitempty"`
	// Rev counts its changes; SavedRev is the last written to the
	// database (SaveAfterSale). The main loop writes it when they differ.
	Rev      int `json:"rev"`
	SavedRev int `json:"saved_rev,omitempty"`
}

// AfterSaleNo is the ID of an order's n-th after-sale (n from 1).
func AfterSaleNo(orderNo string, n int) string { return fmt.Sprintf("%s-AS%d", orderNo, n) }

// --- timings

func (o *order) afterSaleWindow() time.Duration {
	return cmpOr(o.Input.AfterSaleWindow, DefaultAfterSaleWindow)
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// completedAt is when the order completed (zero: it has not).
func (o *order) completedAt() time.Time {
	for i := len(o.Transitions) - 1; i >= 0; i-- {
		if o.Transitions[i].To == status.Completed {
			return o.Transitions[i].At
		}
	}
	return time.Time{}
}

// windowEnds is when a completed order stops taking after-sales.
func (o *order) windowEnds() time.Time {
	at := o.completedAt()
	if at.IsZero() {
		return at
	}
	return at.Add(o.afterSaleWindow())
}

// --- what the order holds

// openAfterSale is the order's after-sale under way (nil: none).
func (o *order) openAfterSale() *AfterSale {
	for _, a := range o.AfterSales {
		if a.Status.Open() {
			return a
		}
	}
	return nil
}

func (o *order) afterSale(id string) *AfterSale {
	for _, a := range o.AfterSales {
		if a.ID == id {
			return a
		}
	}
	return nil
}

// afterSaleHeld is what of each product after-sales hold that have no part
// refund yet: requested or waiting for their goods. Counted in committed,
// so a refund request cannot take them meanwhile (nothing twice).
func (o *order) afterSaleHeld(out map[int64]int64) {
	for _, a := range o.AfterSales {
		if a.Status.Open() && a.OutRefundNo == "" {
			for _, it := range a.Items {
				out[it.ProductID] += it.Quantity
			}
		}
	}
}

// afterSalesKeepOpen: after-sales keep the order's workflow going — one
// under way, a step not written yet, or a completed order in its window.
func (o *order) afterSalesKeepOpen() bool {
	if !o.inParts() {
		return false
	}
	if o.openAfterSale() != nil || o.afterSaleUnsaved() != nil {
		return true
	}
	return o.Status == status.Completed && !o.AfterSaleWindowOver
}

func (o *order) afterSaleUnsaved() *AfterSale {
	for _, a := range o.AfterSales {
		if a.SavedRev != a.Rev {
			return a
		}
	}
	return nil
}

// nextAfterSaleDeadline is the soonest after-sale timer (zero: none),
// and the window's end of a completed order.
func (o *order) nextAfterSaleDeadline() time.Time {
	var next time.Time
	if a := o.openAfterSale(); a != nil {
		next = a.Deadline
	}
	if o.inParts() && o.Status == status.Completed && !o.AfterSaleWindowOver {
		if end := o.windowEnds(); next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return next
}

// afterSaleDue reports whether an after-sale step is due now.
func (o *order) afterSaleDue(now time.Time) bool {
	if !o.inParts() {
		return false
	}
	if o.afterSaleUnsaved() != nil {
		return true
	}
	d := o.nextAfterSaleDeadline()
	return !d.IsZero() && !now.Before(d)
}

// --- the updates

func (o *order) validateAfterSale(ctx workflow.Context, req AfterSaleRequest) error {
	if a := o.keyedAfterSale(req.IdempotencyKey); a != nil {
		return refuse(ErrTypeAlreadyRequested, "after-sale %s of order %s was made by this request", a.ID, o.Input.OrderNo)
	}
	return o.afterSaleRefusal(workflow.Now(ctx), req).err()
}

func (o *order) keyedAfterSale(key string) *AfterSale {
	if key == "" {
		return nil
	}
	for _, a := range o.AfterSales {
		if a.IdempotencyKey == key {
			return a
		}
	}
	return nil
}

// afterSaleRefusal says why the order cannot take req now (nil: it can);
// asked by the validator and again by the handler.
func (o *order) afterSaleRefusal(now time.Time, req AfterSaleRequest) *Refusal {
	no := o.Input.OrderNo
	if !o.inParts() {
		return newRefusal(ErrTypeAfterSaleNotAllowed, "order %s was paid before after-sales: ask the shop", no)
	}
	if a := o.openAfterSale(); a != nil {
		return newRefusal(ErrTypeAfterSaleInProgress, "after-sale %s of order %s is %s: one at a time", a.ID, no, a.Status)
	}
	switch o.Status {
	case status.Shipped:
	case status.Completed:
		if o.AfterSaleWindowOver || !now.Before(o.windowEnds()) {
			return newRefusal(ErrTypeAfterSaleNotAllowed, "order %s completed more than %s ago", no, human(o.afterSaleWindow()))
		}
	default:
		return newRefusal(ErrTypeAfterSaleNotAllowed, "order %s is %s; after-sales are for shipped or completed orders", no, o.Status)
	}
	switch {
	case req.Type != AfterSaleRefundOnly && req.Type != AfterSaleReturnAndRefund:
		return newRefusal(ErrTypeInvalidOrder, "after-sale type %q; want %q or %q", req.Type, AfterSaleRefundOnly, AfterSaleReturnAndRefund)
	case len(req.Photos) > MaxAfterSalePhotos:
		return newRefusal(ErrTypeInvalidOrder, "%d photos; at most %d", len(req.Photos), MaxAfterSalePhotos)
	}
	return o.partRefusal(RefundRequest{By: ByUser, Items: req.Items})
}

// handleAfterSale opens the after-sale REQUESTED, its goods held at once
// (afterSaleHeld), and answers once its row is written.
func (o *order) handleAfterSale(ctx workflow.Context, req AfterSaleRequest) (OrderView, error) {
	if a := o.keyedAfterSale(req.IdempotencyKey); a != nil {
		return o.awaitSaved(ctx, a)
	}
	now := workflow.Now(ctx)
	if r := o.afterSaleRefusal(now, req); r != nil {
		return o.view(), r.err()
	}
	items := req.Items
	if len(items) == 0 {
		items = o.leftToRefund()
	}
	priced, fen := o.priced(items)
	o.AfterSaleSeq++
	a := &AfterSale{
		ID: AfterSaleNo(o.Input.OrderNo, o.AfterSaleSeq), OrderNo: o.Input.OrderNo, UserID: o.Input.UserID,
		Type: req.Type, Status: AfterSaleRequested, Items: priced, RefundFen: fen, Reason: req.Reason,
		Photos: slices.Clone(req.Photos), IdempotencyKey: req.IdempotencyKey, CreatedAt: now,
		Deadline: now.Add(cmpOr(o.Input.AfterSaleAutoApprove, DefaultAfterSaleAutoApprove)),
	}
	o.AfterSales = append(o.AfterSales, a)
	o.moveAfterSale(ctx, a, AfterSaleRequested, "")
	return o.awaitSaved(ctx, a)
}

// awaitSaved answers once the after-sale's row holds what it is now, so
// that the admin's list (read from the database) shows what the caller
// was told.
func (o *order) awaitSaved(ctx workflow.Context, a *AfterSale) (OrderView, error) {
	rev := a.Rev
	err := workflow.Await(ctx, func() bool { return a.SavedRev >= rev })
	return o.view(), err
}

func (o *order) validateAfterSaleAction(ctx workflow.Context, act AfterSaleAction) error {
	return o.actionRefusal(act).err()
}

// actionRefusal says why act cannot be taken now (nil: it can).
func (o *order) actionRefusal(act AfterSaleAction) *Refusal {
	a := o.afterSale(act.ID)
	if a == nil || !o.inParts() {
		return newRefusal(ErrTypeInvalidOrder, "order %s has no after-sale %q", o.Input.OrderNo, act.ID)
	}
	var by string
	var from AfterSaleStatus
	switch act.Action {
	case AfterSaleApprove, AfterSaleReject:
		by, from = ByAdmin, AfterSaleRequested
	case AfterSaleReturn:
		by, from = ByUser, AfterSaleAwaitingReturn
		if act.ExpressCompany == "" || act.TrackingNo == "" {
			return newRefusal(ErrTypeInvalidOrder, "a return names its express company and tracking number")
		}
	case AfterSaleReceive:
		by, from = ByAdmin, AfterSaleReturned
	default:
		return newRefusal(ErrTypeInvalidOrder, "after-sale action %q; want approve, reject, return or receive", act.Action)
	}
	if act.By != by {
		return newRefusal(ErrTypeAfterSaleNotAllowed, "%s of after-sale %s is the %s's, not the %s's", act.Action, a.ID, by, act.By)
	}
	if a.Status != from || (act.Action == AfterSaleReturn && a.Type != AfterSaleReturnAndRefund) {
		return newRefusal(ErrTypeAfterSaleWrongStep, "after-sale %s is %s: %s is for one %s", a.ID, a.Status, act.Action, from)
	}
	return nil
}

// handleAfterSaleAction takes the step, checked again (validators do not
// run on replay; another action may have come first), and answers once
// its row is written.
func (o *order) handleAfterSaleAction(ctx workflow.Context, act AfterSaleAction) (OrderView, error) {
	if r := o.actionRefusal(act); r != nil {
		return o.view(), r.err()
	}
	a := o.afterSale(act.ID)
	switch act.Action {
	case AfterSaleApprove:
		o.approveAfterSale(ctx, a, note(act.Note, "approved by the shop"))
	case AfterSaleReject:
		a.Deadline = time.Time{}
		o.moveAfterSale(ctx, a, AfterSaleRejected, note(act.Note, "rejected by the shop"))
	case AfterSaleReturn:
		a.ExpressCompany, a.TrackingNo = act.ExpressCompany, act.TrackingNo
		a.Deadline = workflow.Now(ctx).Add(cmpOr(o.Input.AfterSaleReceiveTimeout, DefaultAfterSaleReceiveTimeout))
		o.moveAfterSale(ctx, a, AfterSaleReturned, fmt.Sprintf("sent back by %s, tracking number %s", act.ExpressCompany, act.TrackingNo))
	case AfterSaleReceive:
		o.receiveAfterSale(ctx, a, note(act.Note, "received by the shop"))
	}
	return o.awaitSaved(ctx, a)
}

func note(given, def string) string {
	if given != "" {
		return given
	}
	return def
}

// approveAfterSale: refund_only queues its part refund at once (the goods
// stay with the buyer: no restock); return_and_refund waits for the goods.
func (o *order) approveAfterSale(ctx workflow.Context, a *AfterSale, why string) {
	if a.Type == AfterSaleRefundOnly {
		o.refundAfterSale(ctx, a, AfterSaleApproved, why, false)
		return
	}
	a.Deadline = workflow.Now(ctx).Add(cmpOr(o.Input.AfterSaleReturnTimeout, DefaultAfterSaleReturnTimeout))
	o.moveAfterSale(ctx, a, AfterSaleAwaitingReturn, why)
}

// receiveAfterSale: the goods are back on the shelf — their part refund
// restores their stock when it succeeds.
func (o *order) receiveAfterSale(ctx workflow.Context, a *AfterSale, why string) {
	o.refundAfterSale(ctx, a, AfterSaleReceived, why, true)
}

// refundAfterSale queues the after-sale's part refund. Its goods were held
// by the after-sale since it was requested (afterSaleHeld), so the part
// takes them over in the same step: no other request took them meanwhile.
func (o *order) refundAfterSale(ctx workflow.Context, a *AfterSale, to AfterSaleStatus, why string, restock bool) {
	items := make([]RefundItem, 0, len(a.Items))
	for _, it := range a.Items {
		items = append(items, RefundItem{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	reason := fmt.Sprintf("after-sale %s (%s)", a.ID, a.Type)
	if a.Reason != "" {
		reason += ": " + a.Reason
	}
	p := o.queuePart(ctx, RefundRequest{By: ByUser, Reason: reason, Items: items}, a.ID, restock)
	a.OutRefundNo = p.OutRefundNo
	a.Deadline = time.Time{}
	o.moveAfterSale(ctx, a, to, why)
}

// moveAfterSale records a step of the after-sale; the main loop writes
// its row next (SaveAfterSale).
func (o *order) moveAfterSale(ctx workflow.Context, a *AfterSale, to AfterSaleStatus, why string) {
	o.logger.Info("after-sale step", "after_sale_id", a.ID, "from", a.Status, "to", to, "why", why)
	a.Status = to
	if why != "" {
		a.Note = why
	}
	a.UpdatedAt = workflow.Now(ctx)
	a.Rev++
	o.showDetails(ctx)
}

// afterSalePartSettled moves the after-sale whose part refund p settled.
func (o *order) afterSalePartSettled(ctx workflow.Context, p *PartRefund) {
	a := o.afterSale(p.AfterSaleID)
	if a == nil || !a.Status.Open() {
		return
	}
	if p.Status == PartSucceeded {
		o.moveAfterSale(ctx, a, AfterSaleRefunded, fmt.Sprintf("WeChat refunded %s (%s)", yuan(p.RefundFen), p.OutRefundNo))
		return
	}
	o.moveAfterSale(ctx, a, AfterSaleRefundFailed, fmt.Sprintf("refund %s failed: %s — a person returns the money", p.OutRefundNo, p.Result))
}

// --- the main loop's steps

// afterSaleStep runs the after-sale step that is due: the row of a step
// not written yet first, then a timer that passed.
func (o *order) afterSaleStep(ctx workflow.Context) error {
	if a := o.afterSaleUnsaved(); a != nil {
		return o.saveAfterSale(ctx, a)
	}
	now := workflow.Now(ctx)
	if a := o.openAfterSale(); a != nil && !a.Deadline.IsZero() && !now.Before(a.Deadline) {
		switch a.Status {
		case AfterSaleRequested:
			o.approveAfterSale(ctx, a, fmt.Sprintf("approved by itself: the shop did not answer in %s", human(cmpOr(o.Input.AfterSaleAutoApprove, DefaultAfterSaleAutoApprove))))
		case AfterSaleAwaitingReturn:
			a.Deadline = time.Time{}
			o.moveAfterSale(ctx, a, AfterSaleClosed, fmt.Sprintf("closed: no parcel sent back in %s", human(cmpOr(o.Input.AfterSaleReturnTimeout, DefaultAfterSaleReturnTimeout))))
		case AfterSaleReturned:
			// The buyer is protected: the parcel's tracking number is on
			// record, and a shop that never confirms its arrival must not
			// keep both the goods and the money.
			o.receiveAfterSale(ctx, a, fmt.Sprintf("received by itself: the shop did not confirm the parcel in %s", human(cmpOr(o.Input.AfterSaleReceiveTimeout, DefaultAfterSaleReceiveTimeout))))
		default:
			a.Deadline = time.Time{}
		}
		return nil
	}
	if o.Status == status.Completed && !o.AfterSaleWindowOver && !now.Before(o.windowEnds()) {
		o.AfterSaleWindowOver = true
		o.logger.Info("after-sale window over", "window", o.afterSaleWindow())
	}
	return nil
}

// saveAfterSale writes the after-sale's row as it is now (SaveAfterSale:
// an upsert by its ID, a repeat or an older step changes nothing).
func (o *order) saveAfterSale(ctx workflow.Context, a *AfterSale) error {
	rev := a.Rev
	in := a.record()
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, dbActivity(fmt.Sprintf("Save after-sale %s as %s", a.ID, a.Status))),
		ActivitySaveAfterSale, in).Get(ctx, nil)
	if err != nil {
		return fmt.Errorf("save after-sale %s: %w", a.ID, err)
	}
	a.SavedRev = rev
	return nil
}

// record is the after-sale as its row holds it.
func (a *AfterSale) record() AfterSale {
	r := *a
	r.Items = slices.Clone(a.Items)
	r.Photos = slices.Clone(a.Photos)
	return r
}

// priced prices items as the order was, in its line order.
func (o *order) priced(items []RefundItem) ([]PricedItem, int64) {
	asked := map[int64]int64{}
	for _, it := range items {
		asked[it.ProductID] = it.Quantity
	}
	var (
		priced []PricedItem
		fen    int64
	)
	for _, it := range o.Created.Items {
		if n := asked[it.ProductID]; n > 0 {
			priced = append(priced, PricedItem{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: n})
			fen += it.UnitPriceFen * n
		}
	}
	return priced, fen
}

// afterSaleWaiting is what the open after-sale waits for ("" for none).
func (o *order) afterSaleWaiting() string {
	a := o.openAfterSale()
	if a == nil {
		return ""
	}
	switch a.Status {
	case AfterSaleRequested:
		return fmt.Sprintf("after-sale %s (%s, %s) awaits the shop: approved by itself at %s", a.ID, a.Type, yuan(a.RefundFen), clock(a.Deadline))
	case AfterSaleAwaitingReturn:
		return fmt.Sprintf("after-sale %s awaits the buyer's parcel: closed at %s", a.ID, clock(a.Deadline))
	case AfterSaleReturned:
		return fmt.Sprintf("after-sale %s: parcel %s %s on its way back, received by itself at %s", a.ID, a.ExpressCompany, a.TrackingNo, clock(a.Deadline))
	}
	return fmt.Sprintf("after-sale %s %s: refund %s", a.ID, a.Status, a.OutRefundNo)
}

// afterSaleDetails is the details line's word on the open after-sale.
func (o *order) afterSaleDetails() string {
	if a := o.openAfterSale(); a != nil {
		return fmt.Sprintf("after-sale %s %s", a.ID, a.Status)
	}
	return ""
}

func (o *order) afterSaleViews() []AfterSale {
	var out []AfterSale
	for _, a := range o.AfterSales {
		out = append(out, a.record())
	}
	return out
}
