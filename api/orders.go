package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/status"
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
	ShippedAt    *time.Time `json:"shipped_at,omitempty"`
	TrackingNo   string     `json:"tracking_no,omitempty"`
	CompletedAt  *time.Time `json:"completed_at,omitempty"`
	WechatSynced *bool      `json:"wechat_synced,omitempty"`
	// ShippingAddress is the structured address, when the order has one.
	ShippingAddress *workflows.ShippingAddress `json:"shipping_address,omitempty"`
	// Shipment is how the order was shipped (logistics type, packages).
	Shipment *shipmentJSON `json:"shipment,omitempty"`
	// RefundedFen is what WeChat returned of the payment so far.
	RefundedFen int64 `json:"refunded_fen"`
	// Refunds are the order's refunds, each with its goods (none: the
	// whole order), oldest first: in the single-order answers only.
	Refunds []orderRefundJSON `json:"refunds,omitempty"`
	// AfterSales are the order's after-sales, oldest first: in the
	// single-order answers only.
	AfterSales []afterSaleJSON `json:"after_sales,omitempty"`
}

// orderRefundJSON is one refund of an order as its owner sees it.
type orderRefundJSON struct {
	OutRefundNo string `json:"out_refund_no"`
	RefundFen   int64  `json:"refund_fen"`
	// Status is QUEUED (accepted, to be asked of WeChat), PROCESSING,
	// SUCCESS, CLOSED or ABNORMAL.
	Status string     `json:"status"`
	Reason string     `json:"reason,omitempty"`
	Items  []itemJSON `json:"items,omitempty"`
}

func orderFromRow(o store.Order) orderJSON {
	out := orderJSON{
		OrderNo: o.OrderNo, Status: string(o.Status), TotalFen: o.TotalFen, Address: o.Address,
		CreatedAt: o.CreatedAt.UTC(), PayDeadline: o.PayDeadline.UTC(), PaidAt: utc(o.PaidAt), ClosedAt: utc(o.ClosedAt),
		ShippedAt: utc(o.ShippedAt), TrackingNo: o.TrackingNo, CompletedAt: utc(o.CompletedAt),
		Items: make([]itemJSON, 0, len(o.Items)), ShippingAddress: shippingAddressJSON(o.ShipTo), Shipment: shipmentFromRow(o.Shipment),
		RefundedFen: o.RefundedFen,
	}
	for _, it := range o.Items {
		out.Items = append(out.Items, itemJSON{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
	}
	return out
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func orderFromView(v workflows.OrderView, address string, shipTo *workflows.ShippingAddress) orderJSON {
	out := orderJSON{
		OrderNo: v.OrderNo, Status: string(v.Status), TotalFen: v.TotalFen, Address: address, ShippingAddress: shipTo,
		CreatedAt: v.CreatedAt.UTC(), PayDeadline: v.PayDeadline.UTC(), Items: make([]itemJSON, 0, len(v.Items)),
	}
	for _, it := range v.Items {
		out.Items = append(out.Items, itemJSON{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
	}
	return out
}

type createOrderRequest struct {
	Items []workflows.Item `json:"items"`
	// Address is the delivery address as free text (the form of before
	// structured addresses, kept for older clients); ShippingAddress the
	// structured one (wx.chooseAddress). One or the other.
	Address         string                     `json:"address"`
	ShippingAddress *workflows.ShippingAddress `json:"shipping_address"`
}

// decodeJSON reads exactly one JSON object into v, with messages a client
// developer can act on. Unknown fields are ignored (older clients may send
// more than this version reads).
func decodeJSON(c *gin.Context, v any) bool {
	return decodeBody(c, v, false, false)
}

// decodeJSONStrict is decodeJSON refusing unknown fields: for the admin API,
// where a misspelt field must not pass silently as "not given".
func decodeJSONStrict(c *gin.Context, v any) bool {
	return decodeBody(c, v, true, false)
}

// decodeOptionalJSON is decodeJSON for endpoints whose body may be empty.
func decodeOptionalJSON(c *gin.Context, v any) bool {
	return decodeBody(c, v, true, true)
}

func decodeBody(c *gin.Context, v any, strict, optional bool) bool {
	dec := json.NewDecoder(c.Request.Body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			abortError(c, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is larger than 64 KiB")
		case errors.Is(err, io.EOF) && optional:
			return true
		case errors.Is(err, io.EOF):
			badRequest(c, "request body is empty; expected a JSON object")
		case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
			badRequest(c, "request body is not valid JSON")
		case errors.As(err, &typ):
			if typ.Field == "" {
				badRequest(c, "request body must be a JSON object")
			} else {
				badRequest(c, fmt.Sprintf("field %q must be %s", typ.Field, jsonType(typ.Type.Kind().String())))
			}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			badRequest(c, "unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			badRequest(c, "request body is not a valid JSON object")
		}
		return false
	}
	// Nothing but white space may follow the object (dec.More alone lets a
	// stray "]" or "}" through). White space past the limit is a body too
	// large, like any other byte past it.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			abortError(c, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is larger than 64 KiB")
			return false
		}
		badRequest(c, "request body must hold a single JSON object")
		return false
	}
	return true
}

// jsonType names a Go kind the way a JSON client thinks of it.
func jsonType(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	case "string":
		return "a string"
	}
	return "a " + kind
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
// Under an Idempotency-Key, every attempt of one order names the same
// workflow and gets the same order (idempotency.go).
func (s *server) createOrder(c *gin.Context) {
	key, keyed := c.Request.Header[http.CanonicalHeaderKey(IdempotencyKeyHeader)]
	if keyed && (len(key) != 1 || !validIdempotencyKey(key[0])) {
		badRequest(c, fmt.Sprintf("%s must be one header of %d to %d letters, digits or . _ : - (a UUID will do)",
			IdempotencyKeyHeader, minIdempotencyKey, maxIdempotencyKey))
		return
	}
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
	if hasControl(req.Address) {
		// PostgreSQL refuses a NUL in text: it must not get as far as the
		// workflow's insert.
		badRequest(c, "address must not contain control characters")
		return
	}
	if a := req.ShippingAddress; a != nil {
		if req.Address != "" {
			badRequest(c, "give shipping_address or address, not both (address is the free-text form of older clients)")
			return
		}
		if problem := validateShippingAddress(a); problem != "" {
			badRequest(c, problem)
			return
		}
		// Readers of the one-line address (older clients, the Web UI) see it too.
		req.Address = addressLine(*a)
	}
	ctx := c.Request.Context()
	uid := c.GetInt64(ctxUserID)

	var attempt keyedAttempt
	if keyed {
		// An attempt of an order that is stored already is answered by its
		// row, whatever the stock is now.
		attempt = newKeyedAttempt(uid, key[0], items, hashedAddress(req.Address, req.ShippingAddress))
		if s.answerStored(c, attempt, uid) {
			return
		}
	}

	// A cheap read refuses unknown products and empty shelves without
	// creating a workflow. The workflow checks again: stock may change.
	products, refused := s.precheck(c, items)
	if refused {
		return
	}
	summary := orderSummary(items, products)
	details := staticDetails(uid, items, products, req.Address)

	if keyed {
		no := attempt.orderNo
		view, err := s.startOrder(ctx, no, uid, items, req.Address, req.ShippingAddress, "Order "+no+" · "+summary, details, &attempt)
		switch {
		case err == nil:
			s.keyedStarted(c, attempt, view, req.Address, req.ShippingAddress)
		case alreadyStarted(err):
			s.keyedClosed(c, attempt, err)
		case s.joinedOtherRequest(c, attempt, err):
		default:
			s.orderStartFailed(c, err)
		}
		return
	}
	var (
		view workflows.OrderView
		err  error
	)
	for try := 0; try < 3; try++ { // a fresh number if one ever collides
		no := newOrderNo(s.Now())
		view, err = s.startOrder(ctx, no, uid, items, req.Address, req.ShippingAddress, "Order "+no+" · "+summary, details, nil)
		if !alreadyStarted(err) {
			break
		}
	}
	if err != nil {
		s.orderStartFailed(c, err)
		return
	}
	s.ordersPlaced.WithLabelValues("created").Inc()
	c.JSON(http.StatusCreated, orderFromView(view, req.Address, req.ShippingAddress))
}

func (s *server) precheck(c *gin.Context, items []workflows.Item) (map[int64]store.Product, bool) {
	ids := make([]int64, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.ProductID)
	}
	products, err := s.Store.GetProducts(c.Request.Context(), ids)
	if err != nil {
		internalError(c, err)
		return nil, true
	}
	for _, it := range items {
		p, ok := products[it.ProductID]
		if !ok {
			s.ordersPlaced.WithLabelValues("unknown_product").Inc()
			abortError(c, http.StatusBadRequest, CodeUnknownProduct, fmt.Sprintf("product %d does not exist", it.ProductID))
			return nil, true
		}
		if p.Stock < it.Quantity {
			s.ordersPlaced.WithLabelValues("out_of_stock").Inc()
			abortError(c, http.StatusConflict, CodeOutOfStock, fmt.Sprintf("%s: only %d left, %d requested", p.Name, p.Stock, it.Quantity))
			return nil, true
		}
	}
	return products, false
}

// orderSummary reads "¥128.00 · 2 items" from the prices the precheck read;
// the workflow prices the order again, from the database, when it stores it.
func orderSummary(items []workflows.Item, products map[int64]store.Product) string {
	var total, units int64
	for _, it := range items {
		units += it.Quantity
		line, ok := mulFen(products[it.ProductID].PriceFen, it.Quantity)
		if !ok || total > math.MaxInt64-line {
			return fmt.Sprintf("%d items", units)
		}
		total += line
	}
	noun := "items"
	if units == 1 {
		noun = "item"
	}
	return fmt.Sprintf("%s · %d %s", yuan(total), units, noun)
}

func mulFen(price, qty int64) (int64, bool) {
	if price < 0 || qty < 0 || (qty != 0 && price > math.MaxInt64/qty) {
		return 0, false
	}
	return price * qty, true
}

// startOrder starts the order's workflow with its create update. Without a
// keyed attempt a number already used fails (conflict policy FAIL); with
// one, an attempt joins the workflow a concurrent attempt started
// (USE_EXISTING), and the memo records which attempt started it and what it
// asked for. Either way a number names one workflow, ever
// (REJECT_DUPLICATE).
func (s *server) startOrder(ctx context.Context, orderNo string, uid int64, items []workflows.Item, address string, shipTo *workflows.ShippingAddress, summary, details string, keyed *keyedAttempt) (workflows.OrderView, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conflict := enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL
	var memo map[string]any
	if keyed != nil {
		conflict, memo = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING, keyed.memo()
	}
	start := s.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.WorkflowID(orderNo),
		TaskQueue:                s.TaskQueue,
		WorkflowIDConflictPolicy: conflict,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrOrderNo.ValueSet(orderNo),
			workflows.AttrOrderUserID.ValueSet(strconv.FormatInt(uid, 10)),
			workflows.AttrOrderStatus.ValueSet(string(status.Pending)),
		),
		Memo:          memo,
		StaticSummary: summary,
		StaticDetails: details,
	}, workflows.OrderWorkflowName, workflows.OrderInput{
		OrderNo: orderNo, UserID: uid, Items: items, Address: address, ShippingAddress: shipTo,
		PayTimeout: s.PayTimeout, AutoConfirm: s.AutoConfirm, RefundInterval: s.RefundInterval, AppID: s.AppID, MchID: s.MchID,
		AfterSaleWindow: s.AfterSale.Window, AfterSaleAutoApprove: s.AfterSale.AutoApprove,
		AfterSaleReturnTimeout: s.AfterSale.ReturnTimeout, AfterSaleReceiveTimeout: s.AfterSale.ReceiveTimeout,
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

func staticDetails(uid int64, items []workflows.Item, products map[int64]store.Product, address string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "User %d ordered (priced by the workflow from the database):\n", uid)
	for _, it := range items {
		fmt.Fprintf(&b, "- %s (product %d) × %d\n", products[it.ProductID].Name, it.ProductID, it.Quantity)
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

// getOrder answers one of the caller's orders from the database. With
// ?sync=1 on a PENDING order it first asks the workflow to query WeChat (the
// mini-program polls so right after wx.requestPayment) and says whether
// WeChat confirmed the payment.
func (s *server) getOrder(c *gin.Context) {
	sync, ok := boolQuery(c, "sync")
	if !ok {
		return
	}
	o, ok := s.userOrder(c)
	if !ok {
		return
	}
	out := orderFromRow(o)
	if !sync {
		if err := s.addRefunds(c.Request.Context(), &out, o, nil); err != nil {
			internalError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
		return
	}
	confirmed := o.Status.PaidOrLater()
	if o.Status == status.Pending {
		var res workflows.SyncResult
		err := s.runUpdate(c.Request.Context(), o.OrderNo, workflows.UpdateSync, nil, &res, syncWait)
		switch {
		case err == nil:
			confirmed = res.Confirmed
		case workflowEnded(err):
			// Ended meanwhile: the row below says how.
		case isRefusal(err, workflows.ErrTypeSyncNotNeeded):
			// Nothing to ask WeChat now (asked a moment ago, not sent to
			// WeChat yet, or no longer PENDING): the row below says where
			// the order stands.
		default:
			if limit := temporalLimit(err); limit != "" {
				s.countTemporalLimit(c, workflows.UpdateSync, limit, o.OrderNo, err)
			}
			// A read does not fail because WeChat or Temporal is slow: the
			// answer says the order was not confirmed, the client asks again.
			s.Logger.Warn("sync with WeChat failed", "request_id", c.GetString(ctxRequestID), "order_no", o.OrderNo, "error", err.Error())
		}
		again, err := s.Store.GetOrderForUser(c.Request.Context(), o.OrderNo, o.UserID)
		if err != nil {
			internalError(c, err)
			return
		}
		out = orderFromRow(again)
		confirmed = confirmed || again.Status.PaidOrLater()
	}
	out.WechatSynced = &confirmed
	c.JSON(http.StatusOK, out)
}

// boolQuery reads an optional boolean query parameter (1/true/0/false).
func boolQuery(c *gin.Context, name string) (value, ok bool) {
	switch strings.ToLower(c.Query(name)) {
	case "", "0", "false":
		return false, true
	case "1", "true":
		return true, true
	}
	badRequest(c, name+" must be 1 or 0")
	return false, false
}

// userOrder loads the caller's order named by the path, or answers 404:
// someone else's order is "not found" too, so numbers do not leak. Every
// user route does this before it talks to Temporal.
func (s *server) userOrder(c *gin.Context) (store.Order, bool) {
	no := c.Param("no")
	if !validOrderNo(no) {
		notFound(c, "order")
		return store.Order{}, false
	}
	o, err := s.Store.GetOrderForUser(c.Request.Context(), no, c.GetInt64(ctxUserID))
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
