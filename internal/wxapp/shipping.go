package wxapp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"
)

// Logistics types of upload_shipping_info.
const (
	LogisticsExpress  = 1 // 实体物流配送 (a carrier; tracking numbers)
	LogisticsSameCity = 2 // 同城配送
	LogisticsVirtual  = 3 // 虚拟商品 (nothing physical ships)
	LogisticsPickup   = 4 // 用户自提
)

// Delivery modes of upload_shipping_info.
const (
	DeliveryUnified = 1 // 统一发货: one package
	DeliverySplit   = 2 // 分拆发货: several packages (express only)
)

// Order states of get_order (WeChat's view of one payment).
const (
	OrderToShip    = 1 // 待发货
	OrderShipped   = 2 // 已发货
	OrderConfirmed = 3 // 确认收货
	OrderSettled   = 4 // 交易完成 (the money reached the merchant)
	OrderRefunded  = 5 // 已退款
)

// Limits of upload_shipping_info.
const (
	MaxShippingList = 15  // packages in shipping_list
	MaxItemDesc     = 120 // item_desc, in characters (字)
)

// Order key types (order_key.order_number_type).
const (
	OrderKeyMerchant    = 1 // mchid + out_trade_no
	OrderKeyTransaction = 2 // transaction_id
)

// OrderKey names a payment: by transaction_id, or by the merchant's
// mchid and out_trade_no.
type OrderKey struct {
	OrderNumberType int    `json:"order_number_type"`
	TransactionID   string `json:"transaction_id,omitempty"`
	MchID           string `json:"mchid,omitempty"`
	OutTradeNo      string `json:"out_trade_no,omitempty"`
}

// Contact is the masked phone of the consignor or the receiver (required
// for SF Express): all digits masked but the last four.
type Contact struct {
	ConsignorContact string `json:"consignor_contact,omitempty"`
	ReceiverContact  string `json:"receiver_contact,omitempty"`
}

// ShippingItem is one package.
type ShippingItem struct {
	TrackingNo     string   `json:"tracking_no,omitempty"`
	ExpressCompany string   `json:"express_company,omitempty"` // WeChat's carrier code ("SF", "YTO", …)
	ItemDesc       string   `json:"item_desc"`
	Contact        *Contact `json:"contact,omitempty"`
}

// Payer is who paid.
type Payer struct {
	OpenID string `json:"openid"`
}

// UploadShippingInfo is the body of upload_shipping_info.
type UploadShippingInfo struct {
	OrderKey       OrderKey       `json:"order_key"`
	LogisticsType  int            `json:"logistics_type"`
	DeliveryMode   int            `json:"delivery_mode"`
	IsAllDelivered *bool          `json:"is_all_delivered,omitempty"` // split delivery only
	ShippingList   []ShippingItem `json:"shipping_list"`
	UploadTime     string         `json:"upload_time"` // RFC 3339, +08:00
	Payer          Payer          `json:"payer"`
}

// Shipping is what get_order says was shipped.
type Shipping struct {
	DeliveryMode        int                 `json:"delivery_mode"`
	LogisticsType       int                 `json:"logistics_type"`
	FinishShipping      bool                `json:"finish_shipping"`
	GoodsDesc           string              `json:"goods_desc,omitempty"`
	FinishShippingCount int                 `json:"finish_shipping_count"` // uploads that shipped it in full: 1, or 2 after the re-ship
	ShippingList        []ShippingListEntry `json:"shipping_list,omitempty"`
}

// ShippingListEntry is one package as get_order lists it.
type ShippingListEntry struct {
	TrackingNo     string `json:"tracking_no,omitempty"`
	ExpressCompany string `json:"express_company,omitempty"`
	UploadTime     int64  `json:"upload_time,omitempty"`
}

// ShippingOrder is get_order's order: WeChat's view of one payment.
type ShippingOrder struct {
	TransactionID   string    `json:"transaction_id"`
	MerchantID      string    `json:"merchant_id"`
	MerchantTradeNo string    `json:"merchant_trade_no"`
	Description     string    `json:"description,omitempty"`
	PaidAmount      int64     `json:"paid_amount"`
	OpenID          string    `json:"openid"`
	TradeCreateTime int64     `json:"trade_create_time,omitempty"`
	PayTime         int64     `json:"pay_time,omitempty"`
	OrderState      int       `json:"order_state"`
	InComplaint     bool      `json:"in_complaint"`
	Shipping        *Shipping `json:"shipping,omitempty"`
}

// Shipped reports whether WeChat has the shipment (shipped, confirmed or
// settled).
func (o ShippingOrder) Shipped() bool {
	return o.OrderState == OrderShipped || o.OrderState == OrderConfirmed || o.OrderState == OrderSettled
}

// IsTradeManaged asks whether WeChat holds this mini-program's payments
// until the buyer confirms receipt (shipping management applies).
func (c *Client) IsTradeManaged(ctx context.Context) (bool, error) {
	var a struct {
		Status
		IsTradeManaged bool `json:"is_trade_managed"`
	}
	err := c.call(ctx, "is_trade_managed", "/wxa/sec/order/is_trade_managed", map[string]string{"appid": c.opts.AppID}, &a)
	return a.IsTradeManaged, err
}

// UploadShippingInfo reports a shipment. A payment can be shipped once and
// re-shipped once more: a caller that lost an answer asks GetOrder before
// uploading again.
func (c *Client) UploadShippingInfo(ctx context.Context, in UploadShippingInfo) error {
	var a Status
	return c.call(ctx, "upload_shipping_info", "/wxa/sec/order/upload_shipping_info", in, &a)
}

// OrderRef names a payment for get_order and notify_confirm_receive: its
// transaction_id, or mchid (merchant_id) and out_trade_no (merchant_trade_no).
type OrderRef struct {
	TransactionID   string `json:"transaction_id,omitempty"`
	MerchantID      string `json:"merchant_id,omitempty"`
	MerchantTradeNo string `json:"merchant_trade_no,omitempty"`
}

// GetOrder asks WeChat for its view of a payment.
func (c *Client) GetOrder(ctx context.Context, ref OrderRef) (ShippingOrder, error) {
	var a struct {
		Status
		Order ShippingOrder `json:"order"`
	}
	err := c.call(ctx, "get_order", "/wxa/sec/order/get_order", ref, &a)
	return a.Order, err
}

// NotifyConfirmReceive reminds the buyer to confirm receipt (WeChat takes
// one reminder per order); receivedAt is when the goods arrived.
func (c *Client) NotifyConfirmReceive(ctx context.Context, ref OrderRef, receivedAt time.Time) error {
	body := struct {
		OrderRef
		ReceivedTime int64 `json:"received_time"`
	}{ref, receivedAt.Unix()}
	var a Status
	return c.call(ctx, "notify_confirm_receive", "/wxa/sec/order/notify_confirm_receive", body, &a)
}

// SetMsgJumpPath sets the mini-program page WeChat's shipping and receipt
// messages open (WeChat appends transaction_id, merchant_id and
// merchant_trade_no to it).
func (c *Client) SetMsgJumpPath(ctx context.Context, path string) error {
	var a Status
	return c.call(ctx, "set_msg_jump_path", "/wxa/sec/order/set_msg_jump_path", map[string]string{"path": path}, &a)
}

// UploadTime is t as upload_time wants it: RFC 3339 in Beijing time.
func UploadTime(t time.Time) string { return t.In(beijing).Format(time.RFC3339) }

var beijing = time.FixedZone("CST", 8*3600) // China keeps no daylight saving

// CutChars returns s if it has at most n characters; otherwise its first
// n-1 characters and "…", so the reader sees it goes on. Mini-program
// fields are limited in characters (字), unlike WeChat Pay's, which count
// bytes (wxpay.CutBytes). The cut is deterministic: a retry sends the same.
func CutChars(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// MaskPhone masks all digits of a phone number but the last four, as
// shipping's contact wants it ("138****5678" → "*******5678").
func MaskPhone(phone string) string {
	r := []rune(phone)
	digits := 0
	for i := len(r) - 1; i >= 0; i-- {
		if r[i] >= '0' && r[i] <= '9' {
			digits++
			if digits > 4 {
				r[i] = '*'
			}
		}
	}
	return string(r)
}

// Managed answers whether WeChat manages the shop's shipping
// (WECHAT_SHIPPING_MANAGED): always (on), never (off), or as
// is_trade_managed says (auto) — asked once per process; a failed
// question is asked again by the next caller.
type Managed struct {
	mode   string
	client *Client

	mu    sync.Mutex
	known *bool
}

// Shipping management modes (WECHAT_SHIPPING_MANAGED).
const (
	ManagedAuto = "auto"
	ManagedOn   = "on"
	ManagedOff  = "off"
)

// NewManaged returns the answer of mode; client asks WeChat under auto.
func NewManaged(mode string, client *Client) *Managed {
	return &Managed{mode: mode, client: client}
}

// Mode is the configured mode.
func (m *Managed) Mode() string { return m.mode }

// Get reports whether WeChat manages the shop's shipping.
func (m *Managed) Get(ctx context.Context) (bool, error) {
	switch m.mode {
	case ManagedOn:
		return true, nil
	case ManagedOff:
		return false, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.known != nil {
		return *m.known, nil
	}
	if m.client == nil {
		return false, errors.New("wxapp: shipping management is auto, but there is no client to ask WeChat")
	}
	managed, err := m.client.IsTradeManaged(ctx)
	if err != nil {
		return false, fmt.Errorf("wxapp: ask WeChat whether it manages the shop's shipping: %w", err)
	}
	m.known = &managed
	return managed, nil
}
