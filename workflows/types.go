package workflows

import (
	"strconv"
	"time"

	"ordersaga/internal/status"
)

// WeChat Pay trade states (trade_state of a query or notify), plus
// TradeStateNotFound for an order WeChat never saw (no prepay was made).
const (
	TradeSuccess    = "SUCCESS"
	TradeRefund     = "REFUND"
	TradeNotPay     = "NOTPAY"
	TradeClosed     = "CLOSED"
	TradeUserPaying = "USERPAYING"
	TradePayError   = "PAYERROR"
	TradeRevoked    = "REVOKED"
	TradeNotFound   = "NOT_FOUND"
)

// Who asks for a refund (RefundRequest.By).
const (
	ByUser   = "user"
	ByAdmin  = "admin"
	BySystem = "system" // compensation: oversold, mismatch, stray payment
)

// Item is one line of an order as the customer asked for it; prices are never
// taken from the client.
type Item struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

// ShippingAddress is where an order goes: the fields of wx.chooseAddress
// (userName, telNumber, provinceName, cityName, countyName, detailInfo,
// postalCode), named as the API names them.
type ShippingAddress struct {
	ReceiverName string `json:"receiver_name"`
	Phone        string `json:"phone"`
	Province     string `json:"province"`
	City         string `json:"city"`
	District     string `json:"district,omitempty"`
	Detail       string `json:"detail"`
	PostalCode   string `json:"postal_code,omitempty"`
}

// OrderInput starts an order workflow.
type OrderInput struct {
	OrderNo string `json:"order_no"`
	UserID  int64  `json:"user_id"`
	Items   []Item `json:"items"`
	// Address is the delivery address as one line: the free text older
	// clients send, or ShippingAddress written out (without the phone).
	Address string `json:"address,omitempty"`
	// ShippingAddress is the structured address, when the client sent one.
	ShippingAddress *ShippingAddress `json:"shipping_address,omitempty"`
	// PayTimeout is ORDER_PAY_TIMEOUT at the moment the order was placed; it is
	// part of the input so a configuration change never moves the deadline of
	// a running order.
	PayTimeout time.Duration `json:"pay_timeout"`
	// AutoConfirm is ORDER_AUTO_CONFIRM when the order was placed: how long
	// after shipping the order completes by itself. 0 means 7 days.
	AutoConfirm time.Duration `json:"auto_confirm,omitempty"`
	// RefundInterval is WECHATPAY_REFUND_INTERVAL when the order was
	// placed: the least time between two refund requests of its payment
	// (WeChat answers FREQUENCY_LIMITED to a second within a minute). 0
	// means DefaultRefundInterval.
	RefundInterval time.Duration `json:"refund_interval,omitempty"`
	// The after-sale timings when the order was placed
	// (ORDER_AFTERSALE_WINDOW, ORDER_AFTERSALE_AUTO_APPROVE,
	// ORDER_AFTERSALE_RETURN_TIMEOUT, ORDER_AFTERSALE_RECEIVE_TIMEOUT; 0:
	// the Default* of aftersale.go): how long a completed order takes
	// after-sales, and when a request is approved, a return closed and a
	// parcel received by themselves.
	AfterSaleWindow         time.Duration `json:"after_sale_window,omitempty"`
	AfterSaleAutoApprove    time.Duration `json:"after_sale_auto_approve,omitempty"`
	AfterSaleReturnTimeout  time.Duration `json:"after_sale_return_timeout,omitempty"`
	AfterSaleReceiveTimeout time.Duration `json:"after_sale_receive_timeout,omitempty"`
	// AppID and MchID are the shop's mini-program and merchant: a payment
	// reported for this order under any other is not this order's money.
	AppID string `json:"app_id"`
	MchID string `json:"mch_id"`
	// Continued is the state an earlier run of the order's workflow handed
	// on when it continued as new (its history budget); nil for the first
	// run, which the API starts.
	Continued *OrderState `json:"continued,omitempty"`
}

// DefaultAutoConfirm is how long after shipping an order completes by itself
// when OrderInput.AutoConfirm is 0.
const DefaultAutoConfirm = 7 * 24 * time.Hour

// DefaultRefundInterval is the least time between two refund requests of
// one payment when OrderInput.RefundInterval is 0: WeChat's minute.
const DefaultRefundInterval = time.Minute

// PricedItem is an order line priced from the database.
type PricedItem struct {
	ProductID    int64  `json:"product_id"`
	Name         string `json:"name"`
	UnitPriceFen int64  `json:"unit_price_fen"`
	Quantity     int64  `json:"quantity"`
}

// CreateOrderInput is the CreateOrder activity's input.
type CreateOrderInput struct {
	OrderNo     string    `json:"order_no"`
	UserID      int64     `json:"user_id"`
	Items       []Item    `json:"items"`
	Address     string    `json:"address,omitempty"`
	PayDeadline time.Time `json:"pay_deadline"`
	// ShippingAddress is stored in the order's ship_to columns.
	ShippingAddress *ShippingAddress `json:"shipping_address,omitempty"`
}

// CreatedOrder is what CreateOrder stored.
type CreatedOrder struct {
	OrderNo     string       `json:"order_no"`
	TotalFen    int64        `json:"total_fen"`
	Items       []PricedItem `json:"items"`
	PayDeadline time.Time    `json:"pay_deadline"`
	CreatedAt   time.Time    `json:"created_at"`
}

// CloseOrderInput is the CloseOrder activity's input.
type CloseOrderInput struct {
	OrderNo string `json:"order_no"`
	Reason  string `json:"reason"`
	// Flag, when set, marks the order for a person in the same write.
	Flag string `json:"flag,omitempty"`
}

// OrderStatusResult is the order's status after an activity that moves it
// (CloseOrder, MarkPaid, SetOrderStatus, SettleRefund).
type OrderStatusResult struct {
	Status status.Order `json:"status"`
	// RefundedFen is the order row's refunded_fen after SettleRefund (the
	// other activities leave it 0).
	RefundedFen int64 `json:"refunded_fen,omitempty"`
}

// PayParams are the five arguments of wx.requestPayment, named as WeChat
// names them; the mini-program passes them on unchanged.
type PayParams struct {
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

// RequestPaymentInput is the RequestPayment activity's input: the JSAPI
// prepay of an order, expiring at its payment deadline.
type RequestPaymentInput struct {
	OrderNo    string    `json:"order_no"`
	UserID     int64     `json:"user_id"`
	TotalFen   int64     `json:"total_fen"`
	TimeExpire time.Time `json:"time_expire"`
}

// PaymentNotice is a payment as WeChat reported it, by notify or by query.
type PaymentNotice struct {
	OutTradeNo    string     `json:"out_trade_no"`
	TransactionID string     `json:"transaction_id,omitempty"`
	TradeState    string     `json:"trade_state"`
	AppID         string     `json:"app_id,omitempty"`
	MchID         string     `json:"mch_id,omitempty"`
	AmountFen     int64      `json:"amount_fen"`      // amount.total: what the order was for
	PayerTotalFen int64      `json:"payer_total_fen"` // what the payer paid
	Currency      string     `json:"currency,omitempty"`
	PayerOpenID   string     `json:"payer_open_id,omitempty"`
	SuccessTime   *time.Time `json:"success_time,omitempty"`
	// Source says how it arrived: "notify" or "query".
	Source string `json:"source"`
}

// Paid reports whether the notice says money was taken.
func (p PaymentNotice) Paid() bool {
	return p.TradeState == TradeSuccess && p.TransactionID != ""
}

// MarkPaidInput is the MarkPaid activity's input.
type MarkPaidInput struct {
	OrderNo string        `json:"order_no"`
	Payment PaymentNotice `json:"payment"`
}

// RefundNotice is a refund result as WeChat reported it (notify or query).
type RefundNotice struct {
	OutRefundNo   string        `json:"out_refund_no"`
	RefundID      string        `json:"refund_id,omitempty"`
	OutTradeNo    string        `json:"out_trade_no,omitempty"`
	TransactionID string        `json:"transaction_id,omitempty"`
	Status        status.Refund `json:"status"`
	RefundFen     int64         `json:"refund_fen,omitempty"`
	SuccessTime   *time.Time    `json:"success_time,omitempty"`
	Source        string        `json:"source"` // "notify" or "query"
}

// Final reports whether the refund will not change any more.
func (r RefundNotice) Final() bool { return r.Status.Final() }

// RefundRequest is the request_refund update's argument.
type RefundRequest struct {
	By     string `json:"by"` // ByUser or ByAdmin
	Reason string `json:"reason,omitempty"`
	// Items are the goods to refund (orders since ChangePartialRefunds);
	// none: everything not refunded yet.
	Items []RefundItem `json:"items,omitempty"`
	// IdempotencyKey names the client's request (the API's
	// Idempotency-Key header): a request repeated under it is the refund
	// it made, never a second one.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// RefundItem is one product of an order and how many of it a refund
// returns.
type RefundItem struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

// Logistics types of a shipment (ShipRequest.LogisticsType): WeChat's four.
const (
	LogisticsExpress  = "express"   // a carrier, with tracking numbers
	LogisticsSameCity = "same_city" // local delivery
	LogisticsVirtual  = "virtual"   // nothing physical ships
	LogisticsPickup   = "pickup"    // the buyer collects it
)

// Package is one parcel of an express shipment.
type Package struct {
	// ExpressCompany is WeChat's carrier code ("SF", "YTO", "ZTO", …).
	ExpressCompany string `json:"express_company"`
	TrackingNo     string `json:"tracking_no"`
}

// ShipRequest is the ship update's argument: how the order left the shop.
// The API fills it whole; a request of before shipping management (only
// TrackingNo) has no LogisticsType, and WeChat cannot be told of it.
type ShipRequest struct {
	// TrackingNo is the first package's (as the order row keeps it).
	TrackingNo    string    `json:"tracking_no,omitempty"`
	LogisticsType string    `json:"logistics_type,omitempty"`
	Packages      []Package `json:"packages,omitempty"`
	// ItemDesc is what WeChat shows the buyer (≤ 120 characters).
	ItemDesc string `json:"item_desc,omitempty"`
	// ConsignorPhone is the shop's phone, sent (masked) for SF Express when
	// the order has no receiver phone.
	ConsignorPhone string `json:"consignor_phone,omitempty"`
}

// RequestRefundInput is the RequestRefund activity's input: record the refund
// and ask WeChat for it, with the same out_refund_no on every retry.
type RequestRefundInput struct {
	OrderNo       string `json:"order_no"`
	TransactionID string `json:"transaction_id"`
	OutRefundNo   string `json:"out_refund_no"`
	RefundFen     int64  `json:"refund_fen"`
	TotalFen      int64  `json:"total_fen"`
	Reason        string `json:"reason"`
	// Items are a part refund's goods, priced as the order was (WeChat's
	// goods_detail; RefundFen is their sum). None for a whole order's
	// refund and a stray payment's.
	Items []PricedItem `json:"items,omitempty"`
}

// SettleRefundInput is the SettleRefund activity's input: record the
// refund's final status and move the order accordingly.
type SettleRefundInput struct {
	OrderNo string       `json:"order_no"`
	Refund  RefundNotice `json:"refund"`
	// OrderRefund is false for a stray payment's refund: the order's status
	// is not this refund's business.
	OrderRefund bool `json:"order_refund"`
	// RestoreStock puts the order's deducted stock back (refund before
	// shipping): all of it, or a part refund's Items.
	RestoreStock bool `json:"restore_stock"`
	// Part: a part refund of the order (ChangePartialRefunds). Its status
	// does not move the order's; its success adds to refunded_fen, and
	// with RestoreStock its Items go back to stock, once per refund. A
	// failed part flags the order REFUND_FAILED.
	Part  bool         `json:"part,omitempty"`
	Items []PricedItem `json:"items,omitempty"`
}

// SetOrderStatusInput is the SetOrderStatus activity's input: one
// conditional transition of the order row.
type SetOrderStatusInput struct {
	OrderNo    string         `json:"order_no"`
	From       []status.Order `json:"from"`
	To         status.Order   `json:"to"`
	TrackingNo string         `json:"tracking_no,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	// Shipment is stored with SHIPPED (nil: a ship of before shipping
	// management, or another transition).
	Shipment *ShipRequest `json:"shipment,omitempty"`
}

// FlagOrderInput is the FlagOrder activity's input.
type FlagOrderInput struct {
	OrderNo string `json:"order_no"`
	Flag    string `json:"flag"`
	Reason  string `json:"reason"`
}

// Order flags: why an order needs a person (stored on the row, shown in the
// state query).
const (
	FlagPaymentMismatch  = "PAYMENT_MISMATCH"
	FlagRefundFailed     = "REFUND_FAILED"
	FlagCloseUnconfirmed = "CLOSE_UNCONFIRMED"
	FlagUnexpectedRefund = "UNEXPECTED_REFUND"
	// FlagRefundStalled: WeChat has not settled the order's refund for
	// refundStallAfter; the order stays REFUNDING and keeps asking.
	FlagRefundStalled = "REFUND_STALLED"
	// FlagShippingUploadFailed: WeChat refused the shipment of the order
	// (or took none for shippingUploadFlagAfter): the payer's money stays
	// frozen at WeChat until a person reports it (OPERATIONS.md).
	FlagShippingUploadFailed = "SHIPPING_UPLOAD_FAILED"
	// FlagShippingReminded: WeChat reminded the shop to ship a paid order
	// it has no shipment of (trade_manage_remind_shipping).
	FlagShippingReminded = "SHIPPING_REMINDED"
)

// SyncResult is the sync update's answer.
type SyncResult struct {
	// Confirmed is true when WeChat says the order was paid (now or before).
	Confirmed bool `json:"confirmed"`
	// Queried is false when the answer comes from a query made less than
	// SyncInterval ago (or the order was no longer PENDING).
	Queried bool      `json:"queried"`
	Order   OrderView `json:"order"`
}

// Transition is one change of an order's status, as the workflow decided it.
type Transition struct {
	At   time.Time    `json:"at"`
	From status.Order `json:"from"`
	To   status.Order `json:"to"`
	Why  string       `json:"why"`
}

// RefundView is one refund of an order as the workflow knows it.
type RefundView struct {
	OutRefundNo string `json:"out_refund_no"`
	RefundFen   int64  `json:"refund_fen"`
	// Status is QUEUED (a part not asked of WeChat yet), PROCESSING, or
	// WeChat's final status (SUCCESS, CLOSED, ABNORMAL).
	Status string `json:"status"`
	Reason string `json:"reason"`
	// Items are a part refund's goods (none: the whole order).
	Items []PricedItem `json:"items,omitempty"`
	// AfterSaleID is the after-sale that made the refund ("" for none).
	AfterSaleID string `json:"after_sale_id,omitempty"`
}

// OrderView is the workflow's view of its order: the answer of the create,
// cancel, refund, ship and confirm updates and of the state query.
type OrderView struct {
	OrderNo       string       `json:"order_no"`
	UserID        int64        `json:"user_id"`
	Status        status.Order `json:"status"`
	TotalFen      int64        `json:"total_fen"`
	Items         []PricedItem `json:"items"`
	PayDeadline   time.Time    `json:"pay_deadline"`
	CreatedAt     time.Time    `json:"created_at"`
	TransactionID string       `json:"transaction_id,omitempty"`
	Refunds       []RefundView `json:"refunds,omitempty"`
	// RefundedFen is what WeChat returned of the payment so far;
	// RefundedItems how many of each product (part refunds).
	RefundedFen   int64        `json:"refunded_fen,omitempty"`
	RefundedItems []RefundItem `json:"refunded_items,omitempty"`
	Flags         []string     `json:"flags,omitempty"`
	Transitions   []Transition `json:"transitions,omitempty"`
	// Waiting says what the order waits for now (the same text as the
	// workflow's current details in the Web UI).
	Waiting string `json:"waiting,omitempty"`
	// Refusal is set when Status is REFUSED: the error type and message.
	RefusalType    string `json:"refusal_type,omitempty"`
	RefusalMessage string `json:"refusal_message,omitempty"`
	// Wechat is WeChat's view of the shipment (shipping management): nil
	// when WeChat has no part in the order's story.
	Wechat *WechatShippingView `json:"wechat,omitempty"`
	// AfterSales are the order's after-sales, oldest first.
	AfterSales []AfterSale `json:"after_sales,omitempty"`
}

// StrayPaymentInput starts a StrayPaymentWorkflow.
type StrayPaymentInput struct {
	Payment PaymentNotice `json:"payment"`
	// Reason is why no order keeps this money ("order closed", "amount mismatch", ...).
	Reason string `json:"reason"`
	// Continued is the state an earlier run handed on when it continued
	// as new (its history budget); nil for the first run.
	Continued *StrayState `json:"continued,omitempty"`
}

// StrayDecision is what ExamineStrayPayment found.
type StrayDecision struct {
	// Refund is false when the payment turned out to be the one its order
	// keeps (a late duplicate notify): nothing to return.
	Refund bool   `json:"refund"`
	Why    string `json:"why"`
	// OrderKnown is false for an out_trade_no the shop never issued.
	OrderKnown bool `json:"order_known"`
}

// StrayPaymentView is the stray payment workflow's state query answer.
type StrayPaymentView struct {
	Payment     PaymentNotice `json:"payment"`
	Reason      string        `json:"reason"`
	OutRefundNo string        `json:"out_refund_no,omitempty"`
	Status      string        `json:"status"` // EXAMINING, REFUNDING, REFUNDED, REFUND_FAILED, KEPT, IGNORED
}

// OrderRefundNo is the out_refund_no of an order's n-th refund (n from 1):
// deterministic, so a retried request never refunds twice. An order of
// before ChangePartialRefunds is refunded once (n is 1); one since numbers
// its part refunds in the order they were accepted.
func OrderRefundNo(orderNo string, n int) string {
	return orderNo + "-R" + strconv.Itoa(n)
}

// StrayRefundNo is the out_refund_no of the refund of a stray payment.
func StrayRefundNo(transactionID string) string { return "S" + transactionID }
