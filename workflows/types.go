package workflows

import "time"

// Status is an order's state. The same strings are stored in the database.
type Status string

const (
	StatusPending      Status = "PENDING"
	StatusPaid         Status = "PAID"
	StatusShipped      Status = "SHIPPED"
	StatusCompleted    Status = "COMPLETED"
	StatusClosed       Status = "CLOSED"
	StatusRefunding    Status = "REFUNDING"
	StatusRefunded     Status = "REFUNDED"
	StatusRefundFailed Status = "REFUND_FAILED"
	// StatusRefused is never stored: it marks, in the workflow and its search
	// attribute, an order turned down at creation (out of stock, unknown product).
	StatusRefused Status = "REFUSED"
)

// Item is one line of an order as the customer asked for it; prices are never
// taken from the client.
type Item struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

// OrderInput starts an order workflow.
type OrderInput struct {
	OrderNo string `json:"order_no"`
	UserID  int64  `json:"user_id"`
	Items   []Item `json:"items"`
	Address string `json:"address,omitempty"`
	// PayTimeout is ORDER_PAY_TIMEOUT at the moment the order was placed; it is
	// part of the input so a configuration change never moves the deadline of
	// a running order.
	PayTimeout time.Duration `json:"pay_timeout"`
}

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
}

// CloseOrderResult says what the order's status is after the close.
type CloseOrderResult struct {
	Status Status `json:"status"`
}

// OrderView is the workflow's view of its order: the answer of the create
// update and of the state query.
type OrderView struct {
	OrderNo     string       `json:"order_no"`
	UserID      int64        `json:"user_id"`
	Status      Status       `json:"status"`
	TotalFen    int64        `json:"total_fen"`
	Items       []PricedItem `json:"items"`
	PayDeadline time.Time    `json:"pay_deadline"`
	CreatedAt   time.Time    `json:"created_at"`
	// Refusal is set when Status is REFUSED: the error type and message.
	RefusalType    string `json:"refusal_type,omitempty"`
	RefusalMessage string `json:"refusal_message,omitempty"`
}
