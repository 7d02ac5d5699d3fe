package api

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// Refunds of some items (issue 18). POST /v1/orders/:no/refund and its
// admin twin take {"items":[{"product_id","quantity"}],"reason"}: no items
// refund everything not refunded yet (the whole order, as before, when
// nothing was). The order's workflow decides what is left (409
// REFUND_EXCEEDS_ORDER past it) and queues each accepted request as a
// refund of its own; the answer is the order with its refunds. Under an
// Idempotency-Key a repeated request is the refund it made, never a second
// one (409 IDEMPOTENCY_KEY_REUSED for other goods under the same key).

// maxRefundLines bounds the items of one refund request: an order has at
// most maxOrderLines.
const maxRefundLines = maxOrderLines

type refundRequest struct {
	// Items is a pointer so that an empty list can be told from none: "[]"
	// is most likely a client that lost its selection, and taking it for
	// "everything left" would refund the whole order.
	Items  *[]workflows.RefundItem `json:"items"`
	Reason string                  `json:"reason"`
}

// refundArgs checks a refund request's body and Idempotency-Key as far as
// it can without the order, and makes the update's argument: 400 for what
// no order could take (a line without a product, a quantity below 1, a
// product twice), the rest is the workflow's to judge.
func refundArgs(c *gin.Context, by string) (workflows.RefundRequest, bool) {
	var req refundRequest
	if !decodeOptionalJSON(c, &req) {
		return workflows.RefundRequest{}, false
	}
	reason, ok := checkReason(c, req.Reason)
	if !ok {
		return workflows.RefundRequest{}, false
	}
	items, ok := checkRefundItems(c, req.Items)
	if !ok {
		return workflows.RefundRequest{}, false
	}
	key, ok := idempotencyKey(c)
	if !ok {
		return workflows.RefundRequest{}, false
	}
	return workflows.RefundRequest{By: by, Reason: reason, Items: items, IdempotencyKey: key}, true
}

// checkRefundItems checks the goods of a refund or an after-sale as far as
// no order is needed (400), sorted by product.
func checkRefundItems(c *gin.Context, given *[]workflows.RefundItem) ([]workflows.RefundItem, bool) {
	// None (absent or null) is everything left; an empty list is most
	// likely a client that lost its selection, and must not be taken for
	// everything.
	var in []workflows.RefundItem
	if given != nil {
		if in = *given; len(in) == 0 {
			badRequest(c, "items is empty: leave it out for everything not refunded yet, or name the lines")
			return nil, false
		}
	}
	if len(in) > maxRefundLines {
		badRequest(c, fmt.Sprintf("items: at most %d lines", maxRefundLines))
		return nil, false
	}
	seen := map[int64]bool{}
	for i, it := range in {
		switch {
		case it.ProductID <= 0:
			badRequest(c, fmt.Sprintf("items[%d].product_id must be a positive integer", i))
			return nil, false
		case it.Quantity <= 0 || it.Quantity > maxLineQuantity:
			badRequest(c, fmt.Sprintf("items[%d].quantity must be between 1 and %d", i, maxLineQuantity))
			return nil, false
		case seen[it.ProductID]:
			badRequest(c, fmt.Sprintf("items[%d]: product %d is listed twice", i, it.ProductID))
			return nil, false
		}
		seen[it.ProductID] = true
	}
	items := slices.Clone(in)
	slices.SortFunc(items, func(a, b workflows.RefundItem) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return items, true
}

// idempotencyKey is the request's Idempotency-Key ("" for none); a
// malformed one is 400.
func idempotencyKey(c *gin.Context) (string, bool) {
	key, keyed := c.Request.Header[http.CanonicalHeaderKey(IdempotencyKeyHeader)]
	if !keyed {
		return "", true
	}
	if len(key) != 1 || !validIdempotencyKey(key[0]) {
		badRequest(c, fmt.Sprintf("%s must be one value of %d to %d letters, digits or ._:-",
			IdempotencyKeyHeader, minIdempotencyKey, maxIdempotencyKey))
		return "", false
	}
	return key[0], true
}

// addRefunds lists the order's refunds in out: those asked of WeChat from
// the database (their goods and status), then those the workflow's view
// holds that WeChat was not asked for yet (QUEUED). A stray payment's
// refund, though recorded under the order's number, is not the order's.
func (s *server) addRefunds(ctx context.Context, out *orderJSON, o store.Order, view *workflows.OrderView) error {
	// (And its after-sales: the single-order answers show both.)
	if err := s.addAfterSales(ctx, out, o.OrderNo); err != nil {
		return err
	}
	rows, err := s.Store.ListRefunds(ctx, o.OrderNo)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, r := range rows {
		if !strings.HasPrefix(r.OutRefundNo, o.OrderNo+"-R") {
			continue
		}
		have[r.OutRefundNo] = true
		j := orderRefundJSON{OutRefundNo: r.OutRefundNo, RefundFen: r.RefundFen, Status: string(r.Status), Reason: r.Reason}
		for _, it := range r.Items {
			j.Items = append(j.Items, itemJSON{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
		}
		out.Refunds = append(out.Refunds, j)
	}
	if view == nil {
		return nil
	}
	for _, r := range view.Refunds {
		if have[r.OutRefundNo] {
			continue
		}
		j := orderRefundJSON{OutRefundNo: r.OutRefundNo, RefundFen: r.RefundFen, Status: r.Status, Reason: r.Reason}
		for _, it := range r.Items {
			j.Items = append(j.Items, itemJSON{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
		}
		out.Refunds = append(out.Refunds, j)
	}
	return nil
}

// addAfterSales lists the order's after-sales in out, from the database.
func (s *server) addAfterSales(ctx context.Context, out *orderJSON, orderNo string) error {
	rows, err := s.Store.ListOrderAfterSales(ctx, orderNo)
	if err != nil {
		return err
	}
	for _, r := range rows {
		out.AfterSales = append(out.AfterSales, afterSaleFromRow(r))
	}
	return nil
}
