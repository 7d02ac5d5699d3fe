package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// Limits on products: a product must be payable (WeChat wants at least one
// fen) and no order of it may overflow int64 fen.
const (
	maxProductName  = 100
	maxPriceFen     = 100_000_000 // ¥1,000,000.00
	maxStock        = 1_000_000_000
	maxTrackingNo   = 64
	stateQueryWait  = 3 * time.Second
	flaggedPageSize = 50
)

type productRequest struct {
	Name     *string `json:"name"`
	PriceFen *int64  `json:"price_fen"`
	Stock    *int64  `json:"stock"`
}

// validate checks the fields present; create needs all three.
func (r *productRequest) validate(create bool) string {
	if create {
		switch {
		case r.Name == nil:
			return "name is required"
		case r.PriceFen == nil:
			return "price_fen is required (integer fen: 1280 is ¥12.80)"
		case r.Stock == nil:
			return "stock is required"
		}
	} else if r.Name == nil && r.PriceFen == nil && r.Stock == nil {
		return "nothing to update: give name, price_fen and/or stock"
	}
	if r.Name != nil {
		name := strings.TrimSpace(*r.Name)
		r.Name = &name
		if name == "" || len([]rune(name)) > maxProductName {
			return fmt.Sprintf("name must be 1 to %d characters", maxProductName)
		}
		if hasControl(name) {
			return "name must not contain control characters"
		}
	}
	if r.PriceFen != nil && (*r.PriceFen < 1 || *r.PriceFen > maxPriceFen) {
		return fmt.Sprintf("price_fen must be between 1 and %d (integer fen)", maxPriceFen)
	}
	if r.Stock != nil && (*r.Stock < 0 || *r.Stock > maxStock) {
		return fmt.Sprintf("stock must be between 0 and %d", maxStock)
	}
	return ""
}

func productFromRow(p store.Product) productJSON {
	return productJSON{ID: p.ID, Name: p.Name, PriceFen: p.PriceFen, Stock: p.Stock}
}

func (s *server) adminCreateProduct(c *gin.Context) {
	var req productRequest
	if !decodeJSONStrict(c, &req) {
		return
	}
	if problem := req.validate(true); problem != "" {
		badRequest(c, problem)
		return
	}
	p, err := s.Store.CreateProduct(c.Request.Context(), store.Product{Name: *req.Name, PriceFen: *req.PriceFen, Stock: *req.Stock})
	if errors.Is(err, store.ErrInvalidArgument) {
		badRequest(c, "product refused: "+strings.TrimPrefix(err.Error(), "store: create product: "))
		return
	}
	if err != nil {
		internalError(c, err)
		return
	}
	s.Logger.Info("admin: product created", "request_id", c.GetString(ctxRequestID), "product_id", p.ID, "price_fen", p.PriceFen, "stock", p.Stock)
	c.JSON(http.StatusCreated, productFromRow(p))
}

// adminUpdateProduct changes the fields given; stock is set, not added to.
func (s *server) adminUpdateProduct(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		notFound(c, "product")
		return
	}
	var req productRequest
	if !decodeJSONStrict(c, &req) {
		return
	}
	if problem := req.validate(false); problem != "" {
		badRequest(c, problem)
		return
	}
	p, err := s.Store.UpdateProduct(c.Request.Context(), id, store.ProductUpdate{Name: req.Name, PriceFen: req.PriceFen, Stock: req.Stock})
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(c, "product")
		return
	case errors.Is(err, store.ErrInvalidArgument):
		badRequest(c, "product refused: "+err.Error())
		return
	case err != nil:
		internalError(c, err)
		return
	}
	s.Logger.Info("admin: product updated", "request_id", c.GetString(ctxRequestID), "product_id", p.ID, "price_fen", p.PriceFen, "stock", p.Stock)
	c.JSON(http.StatusOK, productFromRow(p))
}

// adminOrderJSON is an order as an operator sees it.
type adminOrderJSON struct {
	orderJSON
	UserID        int64     `json:"user_id"`
	TransactionID string    `json:"transaction_id,omitempty"`
	Flags         []string  `json:"flags"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func adminOrderFromRow(o store.Order) adminOrderJSON {
	out := adminOrderJSON{orderJSON: orderFromRow(o), UserID: o.UserID, TransactionID: o.TransactionID,
		Flags: []string{}, UpdatedAt: o.UpdatedAt.UTC()}
	for _, f := range strings.Split(o.Flag, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out.Flags = append(out.Flags, f)
		}
	}
	return out
}

type paymentJSON struct {
	TransactionID string     `json:"transaction_id"`
	AmountFen     int64      `json:"amount_fen"`
	TradeState    string     `json:"trade_state"`
	AppID         string     `json:"app_id"`
	MchID         string     `json:"mch_id"`
	SuccessTime   *time.Time `json:"success_time,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
}

type refundJSON struct {
	OutRefundNo string     `json:"out_refund_no"`
	RefundID    string     `json:"refund_id,omitempty"`
	RefundFen   int64      `json:"refund_fen"`
	TotalFen    int64      `json:"total_fen"`
	Status      string     `json:"status"`
	Reason      string     `json:"reason,omitempty"`
	Items       []itemJSON `json:"items,omitempty"` // a part refund's goods
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

type adminOrderDetail struct {
	adminOrderJSON
	Payments []paymentJSON `json:"payments"`
	Refunds  []refundJSON  `json:"refunds"`
	// State is the workflow's own view (the state query); null with
	// StateError when the workflow could not be asked.
	State      *workflows.OrderView `json:"state"`
	StateError string               `json:"state_error,omitempty"`
}

// adminGetOrder shows everything about one order: the row, its payments and
// refunds, its flags and what its workflow says.
func (s *server) adminGetOrder(c *gin.Context) {
	no := c.Param("no")
	if !validOrderNo(no) {
		notFound(c, "order")
		return
	}
	ctx := c.Request.Context()
	o, err := s.Store.GetOrder(ctx, no)
	if errors.Is(err, store.ErrNotFound) {
		notFound(c, "order")
		return
	}
	if err != nil {
		internalError(c, err)
		return
	}
	pays, err := s.Store.ListPayments(ctx, no)
	if err != nil {
		internalError(c, err)
		return
	}
	refunds, err := s.Store.ListRefunds(ctx, no)
	if err != nil {
		internalError(c, err)
		return
	}
	out := adminOrderDetail{adminOrderJSON: adminOrderFromRow(o), Payments: []paymentJSON{}, Refunds: []refundJSON{}}
	for _, p := range pays {
		out.Payments = append(out.Payments, paymentJSON{TransactionID: p.TransactionID, AmountFen: p.AmountFen, TradeState: p.TradeState,
			AppID: p.AppID, MchID: p.MchID, SuccessTime: p.SuccessTime, CreatedAt: p.CreatedAt.UTC()})
	}
	for _, r := range refunds {
		j := refundJSON{OutRefundNo: r.OutRefundNo, RefundID: r.RefundID, RefundFen: r.RefundFen, TotalFen: r.TotalFen,
			Status: string(r.Status), Reason: r.Reason, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
		for _, it := range r.Items {
			j.Items = append(j.Items, itemJSON{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
		}
		out.Refunds = append(out.Refunds, j)
	}
	state, err := s.queryState(ctx, no)
	if err != nil {
		s.Logger.Warn("admin: state query failed", "request_id", c.GetString(ctxRequestID), "order_no", no, "error", err.Error())
		out.StateError = "the workflow could not be queried: " + stateErrorText(err)
	} else {
		out.State = &state
	}
	c.JSON(http.StatusOK, out)
}

func (s *server) queryState(ctx context.Context, no string) (workflows.OrderView, error) {
	return queryOrder[workflows.OrderView](ctx, s.Temporal, no, workflows.QueryState, stateQueryWait)
}

// queryOrder asks an order's workflow a query, waiting at most wait; a
// query writes nothing to the workflow's history.
func queryOrder[T any](ctx context.Context, tc client.Client, orderNo, query string, wait time.Duration) (T, error) {
	var out T
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	v, err := tc.QueryWorkflow(ctx, workflows.WorkflowID(orderNo), "", query)
	if err != nil {
		return out, err
	}
	if err := v.Get(&out); err != nil {
		return out, err
	}
	return out, nil
}

func stateErrorText(err error) string {
	switch {
	case workflowEnded(err):
		return "no such workflow"
	case temporalUnavailable(err):
		return "Temporal did not answer in time (is a worker running?)"
	}
	return "query failed"
}

// adminFlaggedOrders lists the orders that need a person, most recently
// changed first.
func (s *server) adminFlaggedOrders(c *gin.Context) {
	limit := flaggedPageSize
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxPageSize {
			badRequest(c, fmt.Sprintf("limit must be an integer between 1 and %d", store.MaxPageSize))
			return
		}
		limit = n
	}
	orders, err := s.Store.ListFlaggedOrders(c.Request.Context(), limit)
	if err != nil {
		internalError(c, err)
		return
	}
	out := make([]adminOrderJSON, 0, len(orders))
	for _, o := range orders {
		out = append(out, adminOrderFromRow(o))
	}
	c.JSON(http.StatusOK, gin.H{"orders": out})
}

// adminRefundOrder refunds a PAID or SHIPPED order: in full, or the items
// asked (refunds.go).
func (s *server) adminRefundOrder(c *gin.Context) {
	req, ok := refundArgs(c, workflows.ByAdmin)
	if !ok {
		return
	}
	o, ok := s.adminOrder(c)
	if !ok {
		return
	}
	s.runAction(c, actRefund, o, req)
}

func (s *server) adminOrder(c *gin.Context) (store.Order, bool) {
	no := c.Param("no")
	if !validOrderNo(no) {
		notFound(c, "order")
		return store.Order{}, false
	}
	o, err := s.Store.GetOrder(c.Request.Context(), no)
	if errors.Is(err, store.ErrNotFound) {
		notFound(c, "order")
		return store.Order{}, false
	}
	if err != nil {
		internalError(c, err)
		return store.Order{}, false
	}
	return o, true
}
