package store

import (
	"time"

	"ordersaga/internal/status"
)

// Stock ledger kinds.
const (
	LedgerDeduct  = "DEDUCT"
	LedgerRestore = "RESTORE"
)

// All times written by this package are UTC truncated to the microsecond
// (PostgreSQL's precision), so that values read back compare equal on both
// databases and keyset cursors are exact.

// User is a mini-program user, identified by WeChat's openid.
type User struct {
	ID        int64     `gorm:"column:id;primaryKey;autoIncrement" json:"id"`
	OpenID    string    `gorm:"column:open_id" json:"open_id"`
	CreatedAt time.Time `gorm:"column:created_at" json:"created_at"`
}

// TableName implements gorm's tabler.
func (User) TableName() string { return "users" }

// Product is something for sale. PriceFen is in fen (1/100 yuan).
type Product struct {
	ID        int64     `gorm:"column:id;primaryKey;autoIncrement" json:"id"`
	Name      string    `gorm:"column:name" json:"name"`
	PriceFen  int64     `gorm:"column:price_fen" json:"price_fen"`
	Stock     int64     `gorm:"column:stock" json:"stock"`
	CreatedAt time.Time `gorm:"column:created_at" json:"created_at"`
	UpdatedAt time.Time `gorm:"column:updated_at" json:"updated_at"`
}

// TableName implements gorm's tabler.
func (Product) TableName() string { return "products" }

// Order is the database copy of one order; the order's workflow is the only writer
// of its status.
type Order struct {
	OrderNo       string       `gorm:"column:order_no;primaryKey" json:"order_no"`
	UserID        int64        `gorm:"column:user_id" json:"user_id"`
	Status        status.Order `gorm:"column:status" json:"status"`
	TotalFen      int64        `gorm:"column:total_fen" json:"total_fen"`
	Address       string       `gorm:"column:address" json:"address"`
	PayDeadline   time.Time    `gorm:"column:pay_deadline" json:"pay_deadline"`
	PrepayID      string       `gorm:"column:prepay_id" json:"prepay_id,omitempty"`
	TransactionID string       `gorm:"column:transaction_id" json:"transaction_id,omitempty"`
	PaidAt        *time.Time   `gorm:"column:paid_at" json:"paid_at,omitempty"`
	ClosedAt      *time.Time   `gorm:"column:closed_at" json:"closed_at,omitempty"`
	ShippedAt     *time.Time   `gorm:"column:shipped_at" json:"shipped_at,omitempty"`
	CompletedAt   *time.Time   `gorm:"column:completed_at" json:"completed_at,omitempty"`
	// TrackingNo is the carrier's tracking number given when shipping ("" = none).
	TrackingNo string `gorm:"column:tracking_no" json:"tracking_no,omitempty"`
	// ShipTo is the structured address (wx.chooseAddress); empty for orders
	// placed with the free-text Address only.
	ShipTo ShipTo `gorm:"embedded;embeddedPrefix:ship_to_" json:"ship_to"`
	// Shipment is how the order was shipped (nil: not shipped, or shipped
	// with a tracking number only).
	Shipment *Shipment `gorm:"column:shipment;serializer:json;not null" json:"shipment,omitempty"`
	// RefundedFen is what WeChat returned of the order's payment: the sum
	// of its SUCCESS refunds (RecountRefunded).
	RefundedFen int64 `gorm:"column:refunded_fen" json:"refunded_fen"`
	// Flag is "" when nothing needs a person; otherwise the reason(s), e.g. "PAYMENT_MISMATCH".
	Flag      string      `gorm:"column:flag" json:"flag,omitempty"`
	CreatedAt time.Time   `gorm:"column:created_at" json:"created_at"`
	UpdatedAt time.Time   `gorm:"column:updated_at" json:"updated_at"`
	Items     []OrderItem `gorm:"foreignKey:OrderNo;references:OrderNo" json:"items"`
}

// TableName implements gorm's tabler.
func (Order) TableName() string { return "orders" }

// ShipTo is an order's structured delivery address (the ship_to_*
// columns).
type ShipTo struct {
	Name       string `gorm:"column:name" json:"name,omitempty"`
	Phone      string `gorm:"column:phone" json:"phone,omitempty"`
	Province   string `gorm:"column:province" json:"province,omitempty"`
	City       string `gorm:"column:city" json:"city,omitempty"`
	District   string `gorm:"column:district" json:"district,omitempty"`
	Detail     string `gorm:"column:detail" json:"detail,omitempty"`
	PostalCode string `gorm:"column:postal_code" json:"postal_code,omitempty"`
}

// Empty reports whether no structured address was given.
func (a ShipTo) Empty() bool { return a == ShipTo{} }

// Shipment is how an order left the shop, as reported to WeChat.
type Shipment struct {
	LogisticsType string            `json:"logistics_type"`
	Packages      []ShipmentPackage `json:"packages,omitempty"`
	ItemDesc      string            `json:"item_desc,omitempty"`
}

// ShipmentPackage is one parcel: WeChat's carrier code and its tracking
// number.
type ShipmentPackage struct {
	ExpressCompany string `json:"express_company"`
	TrackingNo     string `json:"tracking_no"`
}

// OrderItem is one line of an order, priced when the order was created.
type OrderItem struct {
	ID           int64  `gorm:"column:id;primaryKey;autoIncrement" json:"-"`
	OrderNo      string `gorm:"column:order_no" json:"-"`
	ProductID    int64  `gorm:"column:product_id" json:"product_id"`
	Name         string `gorm:"column:name" json:"name"`
	UnitPriceFen int64  `gorm:"column:unit_price_fen" json:"unit_price_fen"`
	Quantity     int64  `gorm:"column:quantity" json:"quantity"`
}

// TableName implements gorm's tabler.
func (OrderItem) TableName() string { return "order_items" }

// StockLedger records one stock movement of one order for one product. The unique
// key (order_no, product_id, kind, refund_no) is what makes deduct and restore
// idempotent.
type StockLedger struct {
	ID        int64     `gorm:"column:id;primaryKey;autoIncrement" json:"id"`
	OrderNo   string    `gorm:"column:order_no" json:"order_no"`
	ProductID int64     `gorm:"column:product_id" json:"product_id"`
	Kind      string    `gorm:"column:kind" json:"kind"` // LedgerDeduct | LedgerRestore
	Quantity  int64     `gorm:"column:quantity" json:"quantity"`
	CreatedAt time.Time `gorm:"column:created_at" json:"created_at"`
	// RefundNo is the out_refund_no of the part refund a RESTORE row puts
	// back ("" for a DEDUCT, and for the restoration of a whole order).
	RefundNo string `gorm:"column:refund_no" json:"refund_no,omitempty"`
}

// TableName implements gorm's tabler.
func (StockLedger) TableName() string { return "stock_ledger" }

// Payment is a payment WeChat Pay reported (by notify or by query), one row per
// transaction_id.
type Payment struct {
	ID            int64      `gorm:"column:id;primaryKey;autoIncrement" json:"id"`
	TransactionID string     `gorm:"column:transaction_id" json:"transaction_id"`
	OrderNo       string     `gorm:"column:order_no" json:"order_no"`
	AmountFen     int64      `gorm:"column:amount_fen" json:"amount_fen"`
	PayerOpenID   string     `gorm:"column:payer_open_id" json:"payer_open_id"`
	AppID         string     `gorm:"column:app_id" json:"app_id"`
	MchID         string     `gorm:"column:mch_id" json:"mch_id"`
	TradeState    string     `gorm:"column:trade_state" json:"trade_state"`
	SuccessTime   *time.Time `gorm:"column:success_time" json:"success_time,omitempty"`
	CreatedAt     time.Time  `gorm:"column:created_at" json:"created_at"`
}

// TableName implements gorm's tabler.
func (Payment) TableName() string { return "payments" }

// Refund is one refund request, identified by our out_refund_no.
type Refund struct {
	ID            int64         `gorm:"column:id;primaryKey;autoIncrement" json:"id"`
	OutRefundNo   string        `gorm:"column:out_refund_no" json:"out_refund_no"`
	OrderNo       string        `gorm:"column:order_no" json:"order_no"`
	TransactionID string        `gorm:"column:transaction_id" json:"transaction_id"`
	RefundFen     int64         `gorm:"column:refund_fen" json:"refund_fen"`
	TotalFen      int64         `gorm:"column:total_fen" json:"total_fen"`
	Reason        string        `gorm:"column:reason" json:"reason"`
	Status        status.Refund `gorm:"column:status" json:"status"`
	RefundID      string        `gorm:"column:refund_id" json:"refund_id,omitempty"`
	// Items are the goods a part refund returns (nil: a refund of the
	// whole order, or of a stray payment).
	Items     []RefundItem `gorm:"column:items;serializer:json;not null" json:"items,omitempty"`
	CreatedAt time.Time    `gorm:"column:created_at" json:"created_at"`
	UpdatedAt time.Time    `gorm:"column:updated_at" json:"updated_at"`
}

// TableName implements gorm's tabler.
func (Refund) TableName() string { return "refunds" }

// RefundItem is one line of a part refund: a product of the order, how many
// of it go back and at what unit price (the order's).
type RefundItem struct {
	ProductID    int64  `json:"product_id"`
	Name         string `json:"name,omitempty"`
	UnitPriceFen int64  `json:"unit_price_fen"`
	Quantity     int64  `json:"quantity"`
}

// ItemQty is a product and a quantity, as the client asks for it.
type ItemQty struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

// ProductUpdate lists the product fields to change; nil fields are left alone.
type ProductUpdate struct {
	Name     *string
	PriceFen *int64
	Stock    *int64
}

// OrderUpdate lists the order fields TransitionOrder sets together with the status;
// nil fields are left alone.
type OrderUpdate struct {
	PrepayID      *string
	TransactionID *string
	PaidAt        *time.Time
	ClosedAt      *time.Time
	ShippedAt     *time.Time
	CompletedAt   *time.Time
	TrackingNo    *string
	Shipment      *Shipment
	// Flag replaces the order's flags (use AddFlag to add one).
	Flag *string
	// AddFlag adds one reason to the order's flags in the same UPDATE, as
	// FlagOrder does: a reason already there is not added twice.
	AddFlag string
}

// dbTime normalises a time before it is written: UTC, microsecond precision.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// now is the clock used for created_at/updated_at (tests do not replace it).
func now() time.Time { return dbTime(time.Now()) }
