package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// After-sales (issue 18): the buyer of a SHIPPED or COMPLETED order asks
// for money back, with or without returning the goods; the shop approves
// or rejects, the buyer sends the parcel, the shop receives it. Each step
// is an update of the order's workflow (request_after_sale,
// after_sale_action), which decides and refuses (409 AFTER_SALE_*,
// REFUND_EXCEEDS_ORDER) and answers once the step's row is written; the
// admin's list reads the rows.

const (
	maxAfterSaleNote    = 200
	maxPhotoURL         = 512
	maxExpressCompany   = 32
	maxReturnTrackingNo = 64
)

type afterSaleRequest struct {
	Type string `json:"type"`
	// Items is a pointer for the reason refundRequest's is: "[]" is a
	// client that lost its selection, not "everything left".
	Items  *[]workflows.RefundItem `json:"items"`
	Reason string                  `json:"reason"`
	Photos []string                `json:"photos"`
}

type afterSaleNote struct {
	Note string `json:"note"`
}

type afterSaleReturn struct {
	ExpressCompany string `json:"express_company"`
	TrackingNo     string `json:"tracking_no"`
}

// afterSaleJSON is one after-sale as the API shows it.
type afterSaleJSON struct {
	ID                   string     `json:"id"`
	OrderNo              string     `json:"order_no"`
	Type                 string     `json:"type"`
	Status               string     `json:"status"`
	Items                []itemJSON `json:"items"`
	RefundFen            int64      `json:"refund_fen"`
	Reason               string     `json:"reason,omitempty"`
	Photos               []string   `json:"photos,omitempty"`
	Note                 string     `json:"note,omitempty"`
	ReturnExpressCompany string     `json:"return_express_company,omitempty"`
	ReturnTrackingNo     string     `json:"return_tracking_no,omitempty"`
	OutRefundNo          string     `json:"out_refund_no,omitempty"`
	CreatedAt            time.Time  `json:"created_at"`
	UpdatedAt            time.Time  `json:"updated_at"`
	Deadline             *time.Time `json:"deadline,omitempty"`
}

func afterSaleFromRow(a store.AfterSale) afterSaleJSON {
	out := afterSaleJSON{ID: a.ID, OrderNo: a.OrderNo, Type: a.Type, Status: a.Status, RefundFen: a.RefundFen,
		Reason: a.Reason, Photos: a.Photos, Note: a.Note, ReturnExpressCompany: a.ReturnExpressCompany,
		ReturnTrackingNo: a.ReturnTrackingNo, OutRefundNo: a.OutRefundNo, CreatedAt: a.CreatedAt.UTC(),
		UpdatedAt: a.UpdatedAt.UTC(), Deadline: utc(a.Deadline), Items: []itemJSON{}}
	for _, it := range a.Items {
		out.Items = append(out.Items, itemJSON{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
	}
	return out
}

func afterSaleFromView(a workflows.AfterSale) afterSaleJSON {
	out := afterSaleJSON{ID: a.ID, OrderNo: a.OrderNo, Type: string(a.Type), Status: string(a.Status), RefundFen: a.RefundFen,
		Reason: a.Reason, Photos: a.Photos, Note: a.Note, ReturnExpressCompany: a.ExpressCompany,
		ReturnTrackingNo: a.TrackingNo, OutRefundNo: a.OutRefundNo, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		Items: []itemJSON{}}
	if !a.Deadline.IsZero() {
		d := a.Deadline.UTC()
		out.Deadline = &d
	}
	for _, it := range a.Items {
		out.Items = append(out.Items, itemJSON{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
	}
	return out
}

var (
	actAfterSale       = action{workflows.UpdateRequestAfterSale, "taken for an after-sale", CodeAfterSaleNotAllowed, nil, nil}
	actAfterSaleAction = action{workflows.UpdateAfterSaleAction, "changed by an after-sale", CodeAfterSaleNotAllowed, nil, nil}
)

// afterSaleArgs checks an after-sale request's body and Idempotency-Key
// as far as it can without the order (400), and makes the update's
// argument; the rest (the order's status, the window, what is left) is the
// workflow's to judge.
func afterSaleArgs(c *gin.Context) (workflows.AfterSaleRequest, bool) {
	var req afterSaleRequest
	if !decodeJSON(c, &req) {
		return workflows.AfterSaleRequest{}, false
	}
	reason, ok := checkReason(c, req.Reason)
	if !ok {
		return workflows.AfterSaleRequest{}, false
	}
	if req.Type != string(workflows.AfterSaleRefundOnly) && req.Type != string(workflows.AfterSaleReturnAndRefund) {
		badRequest(c, fmt.Sprintf("type must be %q or %q", workflows.AfterSaleRefundOnly, workflows.AfterSaleReturnAndRefund))
		return workflows.AfterSaleRequest{}, false
	}
	if len(req.Photos) > workflows.MaxAfterSalePhotos {
		badRequest(c, fmt.Sprintf("photos: at most %d", workflows.MaxAfterSalePhotos))
		return workflows.AfterSaleRequest{}, false
	}
	for i, p := range req.Photos {
		if u, err := url.Parse(p); err != nil || len(p) > maxPhotoURL || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			badRequest(c, fmt.Sprintf("photos[%d] must be an http(s) URL of at most %d characters", i, maxPhotoURL))
			return workflows.AfterSaleRequest{}, false
		}
	}
	// The goods are checked as a refund's (400 for what no order could take).
	items, ok := checkRefundItems(c, req.Items)
	if !ok {
		return workflows.AfterSaleRequest{}, false
	}
	key, ok := idempotencyKey(c)
	if !ok {
		return workflows.AfterSaleRequest{}, false
	}
	return workflows.AfterSaleRequest{Type: workflows.AfterSaleType(req.Type), Items: items, Reason: reason, Photos: req.Photos, IdempotencyKey: key}, true
}

// createAfterSale opens an after-sale of the user's own order.
func (s *server) createAfterSale(c *gin.Context) {
	arg, ok := afterSaleArgs(c)
	if !ok {
		return
	}
	key := arg.IdempotencyKey
	o, ok := s.userOrder(c)
	if !ok {
		return
	}
	var view workflows.OrderView
	err := s.runUpdate(c.Request.Context(), o.OrderNo, workflows.UpdateRequestAfterSale, arg, &view, actionWait)
	if isRefusal(err, workflows.ErrTypeAlreadyRequested) {
		// Repeated under its key: the after-sale it made.
		if v, qerr := s.queryState(c.Request.Context(), o.OrderNo); qerr == nil {
			for _, a := range v.AfterSales {
				if a.IdempotencyKey == key {
					c.JSON(http.StatusOK, afterSaleFromView(a))
					return
				}
			}
		}
		unavailable(c, fmt.Errorf("after-sale of order %s: %w", o.OrderNo, err))
		return
	}
	s.answerAfterSale(c, actAfterSale, o, view, err, "")
}

// answerAfterSale answers an after-sale update: the after-sale named id
// (the newest when id is "") as the workflow has it.
func (s *server) answerAfterSale(c *gin.Context, a action, o store.Order, view workflows.OrderView, err error, id string) {
	code := http.StatusOK
	if errors.Is(err, errUpdatePending) {
		// Accepted: the step is taken, its row not written yet (the order's
		// loop was busy). 202 with the after-sale as the workflow has it — a
		// retry would be refused as a step already taken.
		v, qerr := s.queryState(c.Request.Context(), o.OrderNo)
		if qerr != nil {
			unavailable(c, fmt.Errorf("%s of order %s: %w (then the state query: %v)", a.update, o.OrderNo, err, qerr))
			return
		}
		view, err, code = v, nil, http.StatusAccepted
	}
	if err != nil {
		s.actionFailed(c, a, o, err)
		return
	}
	for i := len(view.AfterSales) - 1; i >= 0; i-- {
		if id == "" || view.AfterSales[i].ID == id {
			c.JSON(code, afterSaleFromView(view.AfterSales[i]))
			return
		}
	}
	internalError(c, fmt.Errorf("%s of order %s: the answer holds no after-sale %q", a.update, o.OrderNo, id))
}

// returnAfterSale: the buyer sent the goods back.
func (s *server) returnAfterSale(c *gin.Context) {
	var req afterSaleReturn
	if !decodeJSON(c, &req) {
		return
	}
	req.ExpressCompany, req.TrackingNo = strings.TrimSpace(req.ExpressCompany), strings.TrimSpace(req.TrackingNo)
	if req.ExpressCompany == "" || len(req.ExpressCompany) > maxExpressCompany || req.TrackingNo == "" || len(req.TrackingNo) > maxReturnTrackingNo {
		badRequest(c, fmt.Sprintf("express_company (≤ %d) and tracking_no (≤ %d) are required", maxExpressCompany, maxReturnTrackingNo))
		return
	}
	if _, ok := idempotencyKey(c); !ok {
		return
	}
	row, o, ok := s.afterSaleOf(c, c.GetInt64(ctxUserID))
	if !ok {
		return
	}
	s.runAfterSaleAction(c, o, workflows.AfterSaleAction{ID: row.ID, Action: workflows.AfterSaleReturn, By: workflows.ByUser,
		ExpressCompany: req.ExpressCompany, TrackingNo: req.TrackingNo})
}

// adminAfterSaleAction is approve, reject or receive, by the shop.
// (action: workflows.AfterSaleApprove, AfterSaleReject or AfterSaleReceive.)
func (s *server) adminAfterSaleAction(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req afterSaleNote
		if !decodeOptionalJSON(c, &req) {
			return
		}
		req.Note = strings.TrimSpace(req.Note)
		if len([]rune(req.Note)) > maxAfterSaleNote {
			badRequest(c, fmt.Sprintf("note must be at most %d characters", maxAfterSaleNote))
			return
		}
		row, o, ok := s.afterSaleOf(c, 0)
		if !ok {
			return
		}
		s.runAfterSaleAction(c, o, workflows.AfterSaleAction{ID: row.ID, Action: action, By: workflows.ByAdmin, Note: req.Note})
	}
}

func (s *server) runAfterSaleAction(c *gin.Context, o store.Order, act workflows.AfterSaleAction) {
	var view workflows.OrderView
	err := s.runUpdate(c.Request.Context(), o.OrderNo, workflows.UpdateAfterSaleAction, act, &view, actionWait)
	s.answerAfterSale(c, actAfterSaleAction, o, view, err, act.ID)
}

// afterSaleOf is the after-sale named in the path and its order; userID
// (0: the admin) must own it — someone else's is 404, as their orders are.
func (s *server) afterSaleOf(c *gin.Context, userID int64) (store.AfterSale, store.Order, bool) {
	id := c.Param("id")
	no, _, found := strings.Cut(id, "-AS")
	if !found || !validOrderNo(no) {
		notFound(c, "after-sale")
		return store.AfterSale{}, store.Order{}, false
	}
	row, err := s.Store.GetAfterSale(c.Request.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && userID != 0 && row.UserID != userID) {
		notFound(c, "after-sale")
		return store.AfterSale{}, store.Order{}, false
	}
	if err != nil {
		internalError(c, err)
		return store.AfterSale{}, store.Order{}, false
	}
	o, err := s.Store.GetOrder(c.Request.Context(), row.OrderNo)
	if err != nil {
		internalError(c, err)
		return store.AfterSale{}, store.Order{}, false
	}
	return row, o, true
}

// adminListAfterSales lists after-sales from the database, oldest first:
// ?status=open those under way (what awaits the shop or the buyer).
func (s *server) adminListAfterSales(c *gin.Context) {
	open := false
	switch c.Query("status") {
	case "open":
		open = true
	case "", "all":
	default:
		badRequest(c, `status must be "open" or "all"`)
		return
	}
	rows, err := s.Store.ListAfterSales(c.Request.Context(), open, 200)
	if err != nil {
		internalError(c, err)
		return
	}
	out := []afterSaleJSON{}
	for _, r := range rows {
		out = append(out, afterSaleFromRow(r))
	}
	c.JSON(http.StatusOK, gin.H{"after_sales": out})
}
