package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// Limits on an order: generous for a shop, small enough that no request can
// make the workflow's history or the database row huge.
const (
	maxOrderLines   = 50
	maxLineQuantity = 999
	maxAddressLen   = 500
)

type itemJSON struct {
	ProductID    int64  `json:"product_id"`
	Name         string `json:"name"`
	UnitPriceFen int64  `json:"unit_price_fen"`
	Quantity     int64  `json:"quantity"`
}

type orderJSON struct {
	OrderNo      string     `json:"order_no"`
	Status       string     `json:"status"`
	TotalFen     int64      `json:"total_fen"`
	Items        []itemJSON `json:"items"`
	Address      string     `json:"address,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	PayDeadline  time.Time  `json:"pay_deadline"`
	PaidAt       *time.Time `json:"paid_at,omitempty"`
	ClosedAt     *time.Time `json:"closed_at,omitempty"`
	WechatSynced *bool      `json:"wechat_synced,omitempty"`
}

func orderFromRow(o store.Order) orderJSON {
	out := orderJSON{
		OrderNo: o.OrderNo, Status: string(o.Status), TotalFen: o.TotalFen, Address: o.Address,
		CreatedAt: o.CreatedAt.UTC(), PayDeadline: o.PayDeadline.UTC(), PaidAt: o.PaidAt, ClosedAt: o.ClosedAt,
		Items: make([]itemJSON, 0, len(o.Items)),
	}
	for _, it := range o.Items {
		out.Items = append(out.Items, itemJSON{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
	}
	return out
}

func orderFromView(v workflows.OrderView, address string) orderJSON {
	out := orderJSON{
		OrderNo: v.OrderNo, Status: string(v.Status), TotalFen: v.TotalFen, Address: address,
		CreatedAt: v.CreatedAt.UTC(), PayDeadline: v.PayDeadline.UTC(), Items: make([]itemJSON, 0, len(v.Items)),
	}
	for _, it := range v.Items {
		out.Items = append(out.Items, itemJSON{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
	}
	return out
}

type createOrderRequest struct {
	Items   []workflows.Item `json:"items"`
	Address string           `json:"address"`
}

// decodeJSON reads exactly one JSON object into v, with messages a client
// developer can act on.
func decodeJSON(c *gin.Context, v any) bool {
	dec := json.NewDecoder(c.Request.Body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			abortError(c, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is larger than 64 KiB")
		case errors.Is(err, io.EOF):
			badRequest(c, "request body is empty; expected a JSON object")
		case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
			badRequest(c, "request body is not valid JSON")
		case errors.As(err, &typ):
			badRequest(c, fmt.Sprintf("field %q must be a %s", typ.Field, typ.Type))
		default:
			badRequest(c, "request body is not a valid JSON object")
		}
		return false
	}
	if dec.More() {
		badRequest(c, "request body must hold a single JSON object")
		return false
	}
	return true
}

func validateItems(items []workflows.Item) ([]workflows.Item, string) {
	if len(items) == 0 {
		return nil, "items: at least one item is required"
	}
	if len(items) > maxOrderLines {
		return nil, fmt.Sprintf("items: at most %d lines per order", maxOrderLines)
	}
	merged := make([]workflows.Item, 0, len(items))
	index := map[int64]int{}
	for i, it := range items {
		if it.ProductID <= 0 {
			return nil, fmt.Sprintf("items[%d].product_id must be a positive integer", i)
		}
		if it.Quantity <= 0 || it.Quantity > maxLineQuantity {
			return nil, fmt.Sprintf("items[%d].quantity must be between 1 and %d", i, maxLineQuantity)
		}
		if j, ok := index[it.ProductID]; ok {
			merged[j].Quantity += it.Quantity
			if merged[j].Quantity > maxLineQuantity {
				return nil, fmt.Sprintf("items: product %d quantity must be at most %d", it.ProductID, maxLineQuantity)
			}
			continue
		}
		index[it.ProductID] = len(merged)
		merged = append(merged, it)
	}
	return merged, ""
}

// createOrder starts the order's workflow and, in the same round trip, asks it
// (update-with-start) for the stored order or the reason it was refused.
func (s *server) createOrder(c *gin.Context) {
	var req createOrderRequest
	if !decodeJSON(c, &req) {
		return
	}
	items, problem := validateItems(req.Items)
	if problem != "" {
		badRequest(c, problem)
		return
	}
	req.Address = strings.TrimSpace(req.Address)
	if len([]rune(req.Address)) > maxAddressLen {
		badRequest(c, fmt.Sprintf("address must be at most %d characters", maxAddressLen))
		return
	}
	ctx := c.Request.Context()
	uid := c.GetInt64(ctxUserID)

	// A cheap read refuses unknown products and empty shelves without
	// creating a workflow. The workflow checks again: stock may change.
	if refused := s.precheck(c, items); refused {
		return
	}

	var (
		view workflows.OrderView
		err  error
	)
	for attempt := 0; attempt < 3; attempt++ { // a fresh number if one ever collides
		view, err = s.startOrder(ctx, newOrderNo(s.Now()), uid, items, req.Address)
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if !errors.As(err, &started) {
			break
		}
	}
	if err != nil {
		s.orderStartFailed(c, err)
		return
	}
	s.ordersPlaced.WithLabelValues("created").Inc()
	c.JSON(http.StatusCreated, orderFromView(view, req.Address))
}

func (s *server) precheck(c *gin.Context, items []workflows.Item) bool {
	ids := make([]int64, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.ProductID)
	}
	products, err := s.Store.GetProducts(c.Request.Context(), ids)
	if err != nil {
		internalError(c, err)
		return true
	}
	for _, it := range items {
		p, ok := products[it.ProductID]
		if !ok {
			s.ordersPlaced.WithLabelValues("unknown_product").Inc()
			abortError(c, http.StatusBadRequest, CodeUnknownProduct, fmt.Sprintf("product %d does not exist", it.ProductID))
			return true
		}
		if p.Stock < it.Quantity {
			s.ordersPlaced.WithLabelValues("out_of_stock").Inc()
			abortError(c, http.StatusConflict, CodeOutOfStock, fmt.Sprintf("%s: only %d left, %d requested", p.Name, p.Stock, it.Quantity))
			return true
		}
	}
	return false
}

func (s *server) startOrder(ctx context.Context, orderNo string, uid int64, items []workflows.Item, address string) (workflows.OrderView, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := s.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:        workflows.WorkflowID(orderNo),
		TaskQueue: s.TaskQueue,
		// One order number, one workflow, ever.
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrOrderNo.ValueSet(orderNo),
			workflows.AttrOrderUserID.ValueSet(strconv.FormatInt(uid, 10)),
			workflows.AttrOrderStatus.ValueSet(string(workflows.StatusPending)),
		),
		StaticSummary: fmt.Sprintf("Order %s · user %d · %d line(s)", orderNo, uid, len(items)),
		StaticDetails: staticDetails(items, address),
	}, workflows.OrderWorkflowName, workflows.OrderInput{
		OrderNo: orderNo, UserID: uid, Items: items, Address: address, PayTimeout: s.PayTimeout,
	})
	handle, err := s.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   workflows.UpdateCreate,
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return workflows.OrderView{}, err
	}
	var view workflows.OrderView
	if err := handle.Get(ctx, &view); err != nil {
		return workflows.OrderView{}, err
	}
	return view, nil
}

func staticDetails(items []workflows.Item, address string) string {
	var b strings.Builder
	b.WriteString("Items as ordered (priced by the workflow from the database):\n")
	for _, it := range items {
		fmt.Fprintf(&b, "- product %d × %d\n", it.ProductID, it.Quantity)
	}
	if address != "" {
		fmt.Fprintf(&b, "\nShip to: %s\n", address)
	}
	return b.String()
}

func (s *server) orderStartFailed(c *gin.Context, err error) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case workflows.ErrTypeOutOfStock:
			s.ordersPlaced.WithLabelValues("out_of_stock").Inc()
			abortError(c, http.StatusConflict, CodeOutOfStock, appErr.Message())
			return
		case workflows.ErrTypeUnknownProduct:
			s.ordersPlaced.WithLabelValues("unknown_product").Inc()
			abortError(c, http.StatusBadRequest, CodeUnknownProduct, appErr.Message())
			return
		case workflows.ErrTypeInvalidOrder:
			badRequest(c, appErr.Message())
			return
		}
	}
	s.ordersPlaced.WithLabelValues("error").Inc()
	unavailable(c, fmt.Errorf("start order workflow: %w", err))
}

func (s *server) getOrder(c *gin.Context) {
	no := c.Param("no")
	if !validOrderNo(no) {
		notFound(c, "order")
		return
	}
	o, err := s.Store.GetOrderForUser(c.Request.Context(), no, c.GetInt64(ctxUserID))
	if errors.Is(err, store.ErrNotFound) {
		// Someone else's order is "not found" too: numbers must not leak.
		notFound(c, "order")
		return
	}
	if err != nil {
		internalError(c, err)
		return
	}
	c.JSON(http.StatusOK, orderFromRow(o))
}

func (s *server) listOrders(c *gin.Context) {
	limit := 20
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			badRequest(c, "limit must be an integer between 1 and 100")
			return
		}
		limit = n
	}
	var before *store.Cursor
	if v := c.Query("cursor"); v != "" {
		cur, err := store.DecodeCursor(v)
		if err != nil {
			badRequest(c, "cursor is not one this API returned")
			return
		}
		before = cur
	}
	orders, next, err := s.Store.ListOrdersByUser(c.Request.Context(), c.GetInt64(ctxUserID), limit, before)
	if err != nil {
		internalError(c, err)
		return
	}
	out := make([]orderJSON, 0, len(orders))
	for _, o := range orders {
		out = append(out, orderFromRow(o))
	}
	resp := gin.H{"orders": out}
	if next != nil {
		resp["next_cursor"] = next.Encode()
	}
	c.JSON(http.StatusOK, resp)
}

// newOrderNo is the order number, also WeChat's out_trade_no (6–32 of
// [0-9A-Za-z_-|*]): the Shanghai date and time a person can read, then 8
// random digits so numbers cannot be guessed or enumerated.
func newOrderNo(now time.Time) string {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return now.In(shanghai).Format("20060102150405") + fmt.Sprintf("%08d", n.Int64())
}

func validOrderNo(s string) bool {
	if len(s) < 6 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

var shanghai = func() *time.Location {
	if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return loc
	}
	// No tzdata on the host: China has no daylight saving, a fixed zone is exact.
	return time.FixedZone("CST", 8*3600)
}()
