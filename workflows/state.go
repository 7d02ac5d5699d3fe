package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/status"
)

// OrderState is everything an order's workflow knows that outlives a
// workflow task: plain data (exported fields, JSON), apart from what only
// the running code holds (the logger, timers' futures, the lock of a pay
// update under way), so that it can be handed as is to a new run of the
// workflow (continue-as-new) and read whole. OrderView, the state query's
// answer, is made from it.
type OrderState struct {
	Input  OrderInput   `json:"input"`
	Status status.Order `json:"status"`
	// Placed: the create activity has finished, one way or the other. (The
	// status is PENDING both while the order is being placed and after.)
	Placed bool `json:"placed"`
	// Refusal is why the order was refused (Status REFUSED).
	Refusal  *Refusal     `json:"refusal,omitempty"`
	Deadline time.Time    `json:"deadline"` // the payment deadline
	Created  CreatedOrder `json:"created"`

	// Payment.
	Inbox         []PaymentNotice `json:"inbox,omitempty"`          // payments reported and not yet handled
	Seen          map[string]bool `json:"seen,omitempty"`           // transaction ids already handled
	TransactionID string          `json:"transaction_id,omitempty"` // the payment this order keeps
	Prepay        Prepay          `json:"prepay"`
	// CancelRequested: the user (or a cancel of the workflow) asked to
	// close the unpaid order; the main loop closes it.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// Closing is why the unpaid order is being closed ("" while it is not):
	// no new prepay is made from then on.
	Closing  string    `json:"closing,omitempty"`
	LastSync time.Time `json:"last_sync,omitempty"` // when the sync update last asked WeChat

	// After payment: requests the main loop decides on (decideRequests).
	RefundRequest  *request[RefundRequest] `json:"refund_request,omitempty"`
	ShipRequest    *request[ShipRequest]   `json:"ship_request,omitempty"`
	ConfirmRequest *request[struct{}]      `json:"confirm_request,omitempty"`
	// AutoConfirmAt is when a shipped order completes by itself (on the
	// shipping-management path: when WeChat is first asked).
	AutoConfirmAt time.Time `json:"auto_confirm_at,omitempty"`
	RefundSeq     int       `json:"refund_seq,omitempty"` // refunds asked of WeChat: the n of OrderRefundNo
	// RestoreStock: the refund under way puts the order's stock back when
	// it succeeds (it was asked before shipping).
	RestoreStock  bool          `json:"restore_stock,omitempty"`
	Refunds       []RefundView  `json:"refunds,omitempty"`
	WechatRefunds WechatRefunds `json:"wechat_refunds"` // their results, and the one awaited now
	// Parts are the order's part refunds (parts.go): the path of orders
	// started since ChangePartialRefunds (nil before: one full refund).
	Parts *PartRefunds `json:"parts,omitempty"`
	// AfterSales are the order's after-sales (aftersale.go; orders with
	// Parts only), AfterSaleSeq the n of the last AfterSaleNo, and
	// AfterSaleWindowOver: a completed order's window passed.
	AfterSales          []*AfterSale `json:"after_sales,omitempty"`
	AfterSaleSeq        int          `json:"after_sale_seq,omitempty"`
	AfterSaleWindowOver bool         `json:"after_sale_window_over,omitempty"`

	// WeChat's shipping management (shipping.go): the path of orders
	// started since ChangeWechatShipping (nil before), and the events
	// WeChat pushed about the payment — the settlement (receipt confirmed)
	// and a reminder to ship not yet acted on.
	WechatShipping   *WechatShipping `json:"wechat_shipping,omitempty"`
	WechatSettlement *WechatEvent    `json:"wechat_settlement,omitempty"`
	ShippingReminder *WechatEvent    `json:"shipping_reminder,omitempty"`

	Flags       []string     `json:"flags,omitempty"`
	Transitions []Transition `json:"transitions,omitempty"`
	Waiting     string       `json:"waiting,omitempty"` // what the order waits for now
	// Runs is how many runs of the workflow came before this one: each
	// continued as new when its history reached the budget.
	Runs int `json:"runs,omitempty"`
}

// Prepay is how far the order's JSAPI prepay at WeChat Pay has got.
type Prepay struct {
	State  PrepayState `json:"state,omitempty"`
	Params *PayParams  `json:"params,omitempty"` // the wx.requestPayment parameters, once made
	MadeAt time.Time   `json:"made_at,omitempty"`
}

// PrepayState says what WeChat Pay may know of the order, which decides
// how it is closed.
type PrepayState string

const (
	// PrepayNone: never asked for; WeChat has never heard of the order, so
	// nothing can be paid and there is nothing to close there.
	PrepayNone PrepayState = ""
	// PrepayAsked: asked for, and no prepay taken from the answer (it is on
	// its way, or the call failed): WeChat may know the order, so it is
	// closed there before it is closed here.
	PrepayAsked PrepayState = "ASKED"
	// PrepayMade: Params are ready, and reused for prepayReuse.
	PrepayMade PrepayState = "MADE"
)

// Refusal is a business "no" as plain data: the error type (ErrType*) an
// update is answered with, and why. The order keeps the one it was refused
// with; a decided request, the one its update is answered with.
type Refusal struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func newRefusal(errType, format string, args ...any) *Refusal {
	return &Refusal{Type: errType, Message: fmt.Sprintf(format, args...)}
}

// err is the refusal as an update's answer (nil for none).
func (r *Refusal) err() error {
	if r == nil {
		return nil
	}
	return temporal.NewApplicationError(r.Message, r.Type)
}

// request is a refund, ship or confirm the main loop has yet to act on.
// The update that made it answers once the loop decided: done, or refused
// because the order moved on meanwhile (a ship, an auto-confirm or an
// oversold refund that was already under way when the request came).
type request[T any] struct {
	Arg     T        `json:"arg"`
	Done    bool     `json:"done,omitempty"`
	Refused *Refusal `json:"refused,omitempty"`
}

func (r *request[T]) decide(refused *Refusal) { r.Done, r.Refused = true, refused }

func pending[T any](r *request[T]) bool { return r != nil && !r.Done }
