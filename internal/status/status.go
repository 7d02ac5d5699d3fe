// Package status is the one set of statuses every layer of the shop uses:
// an order's (the orders.status column, the workflow's state and its
// OrderStatus search attribute, the API's JSON) and a refund's (WeChat
// Pay's refund status, the refunds.status column). It imports nothing, so
// that workflows, activities, store and api can all import it. The strings
// are stored in rows and recorded in workflow histories: never change one.
// (The WeChat Pay simulator keeps its own: it plays WeChat, not the shop.)
package status

// Order is an order's status. The workflow is the only writer of it.
type Order string

const (
	Pending      Order = "PENDING"       // awaiting payment
	Paid         Order = "PAID"          // paid, stock deducted
	Shipped      Order = "SHIPPED"       // handed to the carrier
	Completed    Order = "COMPLETED"     // confirmed by the user or automatically
	Closed       Order = "CLOSED"        // expired or cancelled before payment
	Refunding    Order = "REFUNDING"     // a full refund is in flight
	Refunded     Order = "REFUNDED"      // the money went back to the payer
	RefundFailed Order = "REFUND_FAILED" // WeChat did not return the money: a person must
	// Refused is never stored: it marks, in the workflow's state and its
	// search attribute, an order turned down at creation (out of stock,
	// unknown product). No row exists for it.
	Refused Order = "REFUSED"
)

// Terminal reports whether an order in status s has ended: no transition
// leaves s, and the order's workflow has ended with it. REFUSED is
// terminal: a refused order's workflow ends at once (it has no row, so
// only the workflow and its search attribute ever show it).
func (s Order) Terminal() bool {
	switch s {
	case Closed, Refunded, RefundFailed, Completed, Refused:
		return true
	}
	return false
}

// Stored reports whether s is a status an order row can have: every known
// one but REFUSED.
func (s Order) Stored() bool {
	switch s {
	case Pending, Paid, Shipped, Completed, Closed, Refunding, Refunded, RefundFailed:
		return true
	}
	return false
}

// Kept reports whether an order in status s keeps the money it was paid
// (none of it is on its way back).
func (s Order) Kept() bool {
	switch s {
	case Paid, Shipped, Completed:
		return true
	}
	return false
}

// PaidOrLater reports whether an order in status s was paid at some point —
// WeChat confirmed the money — whether it keeps it (Kept) or is refunding
// or has refunded it.
func (s Order) PaidOrLater() bool {
	return s.Kept() || s == Refunding || s == Refunded || s == RefundFailed
}

// Refund is a refund's status, as WeChat Pay reports it (notify or query)
// and as the refunds row keeps it.
type Refund string

const (
	RefundProcessing Refund = "PROCESSING" // WeChat is on it
	RefundSuccess    Refund = "SUCCESS"    // the money went back
	RefundClosed     Refund = "CLOSED"     // WeChat gave up on it
	// RefundAbnormal: the payer's account cannot take the money (closed,
	// frozen); it stays so until a person acts at WeChat Pay.
	RefundAbnormal Refund = "ABNORMAL"
)

// Final reports whether a refund in status r will not change without a
// person: SUCCESS, CLOSED or ABNORMAL.
func (r Refund) Final() bool {
	return r == RefundSuccess || r == RefundClosed || r == RefundAbnormal
}
