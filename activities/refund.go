package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/wxpay"
	"ordersaga/workflows"
)

// RequestRefund records the refund (PROCESSING; a retry finds the row and
// uses what it recorded) and asks WeChat for it with the same out_refund_no,
// which never refunds twice. It returns WeChat's view: usually PROCESSING,
// or the final status when WeChat already settled it.
//
// WeChat's NOT_ENOUGH (the merchant's balance cannot cover the refund) is a
// plain, retryable error: the refund goes through once the merchant account is
// funded, and the workflow bounds how long it waits. Other permanent answers
// are non-retryable ErrTypeWechatRefused.
func (a *Activities) RequestRefund(ctx context.Context, in workflows.RequestRefundInput) (workflows.RefundNotice, error) {
	items := refundItems(in.Items)
	row, err := a.Store.UpsertRefund(ctx, store.Refund{
		OutRefundNo:   in.OutRefundNo,
		OrderNo:       in.OrderNo,
		TransactionID: in.TransactionID,
		RefundFen:     in.RefundFen,
		TotalFen:      in.TotalFen,
		Reason:        in.Reason,
		Items:         items,
	})
	if err != nil {
		return workflows.RefundNotice{}, businessError(err)
	}
	if row.OrderNo != in.OrderNo || row.TransactionID != in.TransactionID ||
		row.RefundFen != in.RefundFen || row.TotalFen != in.TotalFen || !slices.Equal(row.Items, items) {
		return workflows.RefundNotice{}, nonRetryable(workflows.ErrTypeInvalidOrder,
			"out_refund_no %s is already a refund of %d/%d fen of order %s (transaction %q)",
			row.OutRefundNo, row.RefundFen, row.TotalFen, row.OrderNo, row.TransactionID)
	}

	req := wxpay.RefundRequest{
		TransactionID: row.TransactionID,
		OutRefundNo:   row.OutRefundNo,
		Reason:        refundReason(row.Reason),
		RefundFen:     row.RefundFen,
		TotalFen:      row.TotalFen,
	}
	if req.TransactionID == "" {
		req.OutTradeNo = row.OrderNo
	}
	// A part refund says which goods it returns (goods_detail), from the
	// row: a retry sends what the first attempt recorded.
	for _, it := range row.Items {
		req.Goods = append(req.Goods, wxpay.RefundGoods{MerchantGoodsID: strconv.FormatInt(it.ProductID, 10), Name: goodsName(it.Name),
			UnitPriceFen: it.UnitPriceFen, RefundFen: it.UnitPriceFen * it.Quantity, Quantity: it.Quantity})
	}
	res, err := a.Pay.CreateRefund(ctx, req)
	if err != nil {
		what := fmt.Sprintf("refund %s of order %s", row.OutRefundNo, row.OrderNo)
		if wxpay.Code(err) == codeNotEnough {
			a.log(ctx, row.OrderNo).Error("refund waits for funds: the WeChat Pay merchant account balance is not enough",
				"out_refund_no", row.OutRefundNo, "refund_fen", row.RefundFen)
			return workflows.RefundNotice{}, fmt.Errorf("%s: the merchant account balance is not enough; "+
				"fund the WeChat Pay merchant account and the refund will be retried: %w", what, err)
		}
		return workflows.RefundNotice{}, wechatError(what, err)
	}
	if res.RefundID != "" {
		if err := a.Store.SetRefundID(ctx, row.OutRefundNo, res.RefundID); err != nil {
			return workflows.RefundNotice{}, businessError(err)
		}
	}
	a.log(ctx, row.OrderNo).Info("refund requested", "out_refund_no", row.OutRefundNo,
		"refund_id", res.RefundID, "status", res.Status, "refund_fen", row.RefundFen)
	return refundNotice(res), nil
}

// refundItems are a part refund's goods as the refund row keeps them (nil
// for a whole order's refund).
func refundItems(items []workflows.PricedItem) []store.RefundItem {
	var out []store.RefundItem
	for _, it := range items {
		out = append(out, store.RefundItem{ProductID: it.ProductID, Name: it.Name, UnitPriceFen: it.UnitPriceFen, Quantity: it.Quantity})
	}
	return out
}

// goodsName fits a product name into goods_detail's goods_name (256
// bytes), cut on a character boundary.
func goodsName(name string) string { return wxpay.CutBytes(name, 256) }

// refundReason fits the reason, shown to the payer, into WeChat's 80 bytes
// (26 Chinese characters; the API takes longer reasons and the refund row
// keeps them whole), cut on a character boundary with "…". Deterministic, so
// a retry sends the same request.
func refundReason(reason string) string {
	return wxpay.CutBytes(strings.Join(strings.Fields(reason), " "), wxpay.MaxRefundReasonBytes)
}

// QueryRefund asks WeChat for a refund's status.
func (a *Activities) QueryRefund(ctx context.Context, outRefundNo string) (workflows.RefundNotice, error) {
	res, err := a.Pay.QueryRefund(ctx, outRefundNo)
	if err != nil {
		return workflows.RefundNotice{}, wechatError("query refund "+outRefundNo, err)
	}
	return refundNotice(res), nil
}

func refundNotice(r wxpay.RefundResult) workflows.RefundNotice {
	return workflows.RefundNotice{
		OutRefundNo:   r.OutRefundNo,
		RefundID:      r.RefundID,
		OutTradeNo:    r.OutTradeNo,
		TransactionID: r.TransactionID,
		Status:        status.Refund(r.Status),
		RefundFen:     r.RefundFen,
		SuccessTime:   r.SuccessTime,
		Source:        "query",
	}
}

// SettleRefund records a refund's status and moves the order accordingly.
// The refund row decides, not the report: a final status (SUCCESS, CLOSED) is
// never overwritten, so a late or reordered report cannot undo it.
//
// For an order's refund (OrderRefund): SUCCESS → REFUNDED (also from
// REFUND_FAILED: a refund a person got through after all), then, with
// RestoreStock, the deducted stock goes back (at most once, by the ledger);
// CLOSED or ABNORMAL → REFUND_FAILED with the REFUND_FAILED flag; PROCESSING
// changes only the row. For a stray payment's refund only the row changes,
// and a failed refund flags the order if there is one.
//
// Every step is idempotent: retrying the whole activity is safe. The result is
// the order's status after ("" when the order row does not exist).
func (a *Activities) SettleRefund(ctx context.Context, in workflows.SettleRefundInput) (workflows.OrderStatusResult, error) {
	r := in.Refund
	if r.OutRefundNo == "" || r.Status == "" {
		return workflows.OrderStatusResult{}, nonRetryable(workflows.ErrTypeInvalidOrder,
			"order %s: a refund report needs out_refund_no and status, got %q %q", in.OrderNo, r.OutRefundNo, r.Status)
	}
	row, err := a.Store.GetRefund(ctx, r.OutRefundNo)
	if err != nil {
		return workflows.OrderStatusResult{}, businessError(err)
	}
	orderNo := in.OrderNo
	if orderNo == "" {
		orderNo = row.OrderNo
	}
	if row.OrderNo != orderNo {
		return workflows.OrderStatusResult{}, nonRetryable(workflows.ErrTypeInvalidOrder,
			"refund %s belongs to order %s, not %s", row.OutRefundNo, row.OrderNo, orderNo)
	}
	if err := a.Store.UpdateRefundStatus(ctx, r.OutRefundNo, r.Status, r.RefundID); err != nil {
		return workflows.OrderStatusResult{}, businessError(err)
	}
	if row, err = a.Store.GetRefund(ctx, r.OutRefundNo); err != nil {
		return workflows.OrderStatusResult{}, businessError(err)
	}
	log := a.log(ctx, orderNo).With("out_refund_no", row.OutRefundNo, "refund_status", row.Status)
	if row.Status != r.Status {
		log.Warn("refund report ignored: the refund is already final", "reported", r.Status)
	}
	failed := row.Status == status.RefundClosed || row.Status == status.RefundAbnormal

	if in.Part {
		return a.settlePart(ctx, in, row, failed, log)
	}
	if !in.OrderRefund {
		if failed {
			switch err := a.Store.FlagOrder(ctx, orderNo, workflows.FlagRefundFailed); {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return workflows.OrderStatusResult{}, businessError(err)
			}
			log.Error("refund of a stray payment failed: needs a person", "flag", workflows.FlagRefundFailed,
				"transaction_id", row.TransactionID, "refund_fen", row.RefundFen)
		}
		return a.orderStatus(ctx, orderNo)
	}

	switch {
	case row.Status == status.RefundSuccess:
		changed, o, err := a.Store.TransitionOrder(ctx, orderNo,
			[]status.Order{status.Refunding, status.RefundFailed}, status.Refunded, store.OrderUpdate{})
		if err != nil {
			return workflows.OrderStatusResult{}, businessError(err)
		}
		if in.RestoreStock {
			if err := a.Store.RestoreStock(ctx, orderNo); err != nil {
				return workflows.OrderStatusResult{}, businessError(err)
			}
		}
		refunded, err := a.Store.RecountRefunded(ctx, orderNo)
		if err != nil {
			return workflows.OrderStatusResult{}, businessError(err)
		}
		if changed {
			log.Info("order refunded", "restore_stock", in.RestoreStock, "refund_fen", row.RefundFen)
		}
		return workflows.OrderStatusResult{Status: status.Order(o.Status), RefundedFen: refunded}, nil
	case failed:
		changed, o, err := a.Store.TransitionOrder(ctx, orderNo,
			[]status.Order{status.Refunding}, status.RefundFailed,
			store.OrderUpdate{AddFlag: workflows.FlagRefundFailed})
		if err != nil {
			return workflows.OrderStatusResult{}, businessError(err)
		}
		if !changed {
			if err := a.Store.FlagOrder(ctx, orderNo, workflows.FlagRefundFailed); err != nil {
				return workflows.OrderStatusResult{}, businessError(err)
			}
		}
		log.Error("refund failed: needs a person", "flag", workflows.FlagRefundFailed, "refund_fen", row.RefundFen)
		return workflows.OrderStatusResult{Status: status.Order(o.Status)}, nil
	default:
		return a.orderStatus(ctx, orderNo)
	}
}

// settlePart records the result of a part refund of the order: its
// status does not move the order's. SUCCESS recounts refunded_fen and, with
// RestoreStock, puts the part's goods back — once per refund, by the
// ledger; CLOSED or ABNORMAL flags the order REFUND_FAILED. Every step is
// idempotent.
func (a *Activities) settlePart(ctx context.Context, in workflows.SettleRefundInput, row store.Refund, failed bool, log *slog.Logger) (workflows.OrderStatusResult, error) {
	switch {
	case row.Status == status.RefundSuccess:
		if in.RestoreStock {
			var items []store.ItemQty
			for _, it := range row.Items {
				items = append(items, store.ItemQty{ProductID: it.ProductID, Quantity: it.Quantity})
			}
			if len(items) == 0 {
				return workflows.OrderStatusResult{}, nonRetryable(workflows.ErrTypeInvalidOrder,
					"refund %s of order %s has no goods to restore", row.OutRefundNo, in.OrderNo)
			}
			if err := a.Store.RestoreRefundStock(ctx, in.OrderNo, row.OutRefundNo, items); err != nil {
				return workflows.OrderStatusResult{}, businessError(err)
			}
		}
		refunded, err := a.Store.RecountRefunded(ctx, in.OrderNo)
		if err != nil {
			return workflows.OrderStatusResult{}, businessError(err)
		}
		log.Info("part refund succeeded", "refund_fen", row.RefundFen, "refunded_fen", refunded, "restore_stock", in.RestoreStock)
		res, err := a.orderStatus(ctx, in.OrderNo)
		res.RefundedFen = refunded
		return res, err
	case failed:
		if err := a.Store.FlagOrder(ctx, in.OrderNo, workflows.FlagRefundFailed); err != nil {
			return workflows.OrderStatusResult{}, businessError(err)
		}
		log.Error("part refund failed: needs a person", "flag", workflows.FlagRefundFailed, "refund_fen", row.RefundFen)
	}
	return a.orderStatus(ctx, in.OrderNo)
}

// orderStatus is the order's current status, "" when there is no such order.
func (a *Activities) orderStatus(ctx context.Context, orderNo string) (workflows.OrderStatusResult, error) {
	o, err := a.Store.GetOrder(ctx, orderNo)
	if errors.Is(err, store.ErrNotFound) {
		return workflows.OrderStatusResult{}, nil
	}
	if err != nil {
		return workflows.OrderStatusResult{}, err
	}
	return workflows.OrderStatusResult{Status: status.Order(o.Status)}, nil
}

// ExamineStrayPayment decides whether a payment that reached no running order
// must go back to the payer. It records the payment (once per transaction)
// and looks at its order:
//   - no such order: never refunded (DESIGN: unknown orders are acknowledged
//     and logged; they may belong to another system on the same merchant);
//   - the order was paid by this very transaction: a late duplicate, kept;
//   - not a payment (trade_state is not SUCCESS): nothing to return;
//   - otherwise nobody keeps it: refund.
func (a *Activities) ExamineStrayPayment(ctx context.Context, p workflows.PaymentNotice) (workflows.StrayDecision, error) {
	log := a.log(ctx, p.OutTradeNo).With("transaction_id", p.TransactionID, "trade_state", p.TradeState)
	if p.OutTradeNo == "" {
		return workflows.StrayDecision{}, nonRetryable(workflows.ErrTypeInvalidOrder,
			"payment %s has no out_trade_no", p.TransactionID)
	}
	if p.Paid() {
		if _, err := a.Store.RecordPayment(ctx, paymentRow(p.OutTradeNo, p)); err != nil {
			return workflows.StrayDecision{}, businessError(err)
		}
	}
	o, err := a.Store.GetOrder(ctx, p.OutTradeNo)
	if errors.Is(err, store.ErrNotFound) {
		log.Warn("payment for an order this shop never issued: acknowledged, not refunded", "amount_fen", p.AmountFen)
		return workflows.StrayDecision{Refund: false, OrderKnown: false,
			Why: fmt.Sprintf("no order %s in this shop", p.OutTradeNo)}, nil
	}
	if err != nil {
		return workflows.StrayDecision{}, err
	}
	if !p.Paid() {
		return workflows.StrayDecision{Refund: false, OrderKnown: true,
			Why: fmt.Sprintf("trade_state %s is not a payment", p.TradeState)}, nil
	}
	if o.TransactionID == p.TransactionID && o.Status.PaidOrLater() {
		return workflows.StrayDecision{Refund: false, OrderKnown: true, Why: "order keeps this payment"}, nil
	}
	log.Warn("payment nobody keeps: to be refunded", "order_status", o.Status, "amount_fen", p.AmountFen)
	return workflows.StrayDecision{Refund: true, OrderKnown: true,
		Why: fmt.Sprintf("order %s is %s; nobody keeps this payment", o.OrderNo, o.Status)}, nil
}
