package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/wxpay"
	"ordersaga/workflows"
)

// CheckStock checks that every item of the stored order still has stock for
// its quantity. Nothing is reserved (stock is deducted on payment). A short
// item is a non-retryable ErrTypeOutOfStock whose message a shopper can read.
func (a *Activities) CheckStock(ctx context.Context, orderNo string) error {
	if err := a.Store.CheckOrderStock(ctx, orderNo); err != nil {
		return businessError(err)
	}
	return nil
}

// RequestPayment creates the JSAPI prepay of a PENDING order — or gets the
// same prepay_id back, WeChat answering the same prepay_id for the same
// out_trade_no and parameters — records the prepay_id and returns the
// wx.requestPayment parameters. Every parameter comes from the stored order,
// so a retry sends exactly the same request.
func (a *Activities) RequestPayment(ctx context.Context, in workflows.RequestPaymentInput) (workflows.PayParams, error) {
	o, err := a.Store.GetOrder(ctx, in.OrderNo)
	if err != nil {
		return workflows.PayParams{}, businessError(err)
	}
	if o.Status != status.Pending {
		return workflows.PayParams{}, nonRetryable(workflows.ErrTypeNotPayable, "order %s is %s: it can no longer be paid", o.OrderNo, o.Status)
	}
	if in.TotalFen != 0 && in.TotalFen != o.TotalFen {
		return workflows.PayParams{}, nonRetryable(workflows.ErrTypeInvalidOrder,
			"order %s: asked to charge %d fen, the order is for %d fen", o.OrderNo, in.TotalFen, o.TotalFen)
	}
	if in.UserID != 0 && in.UserID != o.UserID {
		return workflows.PayParams{}, nonRetryable(workflows.ErrTypeInvalidOrder,
			"order %s belongs to user %d, not %d", o.OrderNo, o.UserID, in.UserID)
	}
	expire := in.TimeExpire
	if expire.IsZero() {
		expire = o.PayDeadline
	}
	if !expire.After(a.now()) {
		return workflows.PayParams{}, nonRetryable(workflows.ErrTypeNotPayable,
			"order %s: the payment deadline %s has passed", o.OrderNo, expire.UTC().Format("2006-01-02 15:04:05Z"))
	}
	user, err := a.Store.GetUser(ctx, o.UserID)
	if err != nil {
		return workflows.PayParams{}, businessError(err)
	}

	p, err := a.Pay.Prepay(ctx, wxpay.PrepayRequest{
		OutTradeNo:  o.OrderNo,
		Description: describe(o.Items),
		TotalFen:    o.TotalFen,
		PayerOpenID: user.OpenID,
		TimeExpire:  expire,
	})
	if err != nil {
		return workflows.PayParams{}, wechatError("prepay order "+o.OrderNo, err)
	}
	if err := a.Store.SetPrepayID(ctx, o.OrderNo, p.PrepayID); err != nil {
		if errors.Is(err, store.ErrStatusConflict) {
			return workflows.PayParams{}, nonRetryable(workflows.ErrTypeNotPayable, "order %s: %v", o.OrderNo, err)
		}
		return workflows.PayParams{}, businessError(err)
	}
	a.log(ctx, o.OrderNo).Info("prepay ready", "prepay_id", p.PrepayID, "total_fen", o.TotalFen)
	return workflows.PayParams{
		TimeStamp: p.TimeStamp, NonceStr: p.NonceStr, Package: p.Package, SignType: p.SignType, PaySign: p.PaySign,
	}, nil
}

// describe is the prepay's description the payer sees, from the order's
// items: "Yunnan coffee beans 500g ×2 and 1 more item", within WeChat's 127
// bytes (not characters: a Chinese name of 43 characters is 129 bytes). The
// first item's name is cut, on a character boundary and with "…", to leave
// room for the rest.
func describe(items []store.OrderItem) string {
	if len(items) == 0 {
		return "Order"
	}
	first := items[0]
	var suffix string
	if first.Quantity > 1 {
		suffix = fmt.Sprintf(" ×%d", first.Quantity)
	}
	switch more := len(items) - 1; more {
	case 0:
	case 1:
		suffix += " and 1 more item"
	default:
		suffix += fmt.Sprintf(" and %d more items", more)
	}
	name := strings.Join(strings.Fields(first.Name), " ")
	if name == "" {
		name = fmt.Sprintf("Product %d", first.ProductID)
	}
	return wxpay.CutBytes(name, wxpay.MaxDescriptionBytes-len(suffix)) + suffix
}

// QueryPayment asks WeChat for the order's payment (查单). An order WeChat
// never saw (no prepay was made) is TradeState NOT_FOUND, not an error.
func (a *Activities) QueryPayment(ctx context.Context, orderNo string) (workflows.PaymentNotice, error) {
	tx, err := a.Pay.QueryOrder(ctx, orderNo)
	if err != nil {
		if wxpay.Code(err) == codeOrderNotExist {
			return workflows.PaymentNotice{OutTradeNo: orderNo, TradeState: workflows.TradeNotFound, Source: "query"}, nil
		}
		return workflows.PaymentNotice{}, wechatError("query payment of order "+orderNo, err)
	}
	return workflows.PaymentNotice{
		OutTradeNo:    tx.OutTradeNo,
		TransactionID: tx.TransactionID,
		TradeState:    tx.TradeState,
		AppID:         tx.AppID,
		MchID:         tx.MchID,
		AmountFen:     tx.AmountTotalFen,
		PayerTotalFen: tx.PayerTotalFen,
		Currency:      tx.Currency,
		PayerOpenID:   tx.PayerOpenID,
		SuccessTime:   tx.SuccessTime,
		Source:        "query",
	}, nil
}

// ClosePayment closes the order at WeChat so that it can no longer be paid.
// It decides nothing: WeChat's answer to closing an order paid a moment ago
// is not settled (a refusal, or 204 with the order still paid), so the
// workflow always queries afterwards. A refusal, and an answer that failed
// verification, are non-retryable ErrTypeWechatRefused (query next); 5xx and
// network failures are retried.
func (a *Activities) ClosePayment(ctx context.Context, orderNo string) error {
	err := a.Pay.CloseOrder(ctx, orderNo)
	switch wxpay.Classify(err) {
	case wxpay.KindNone:
		a.log(ctx, orderNo).Info("closed at WeChat Pay")
		return nil
	case wxpay.KindRetryable:
		return fmt.Errorf("close order %s at WeChat Pay: %w", orderNo, err)
	default:
		a.log(ctx, orderNo).Warn("close at WeChat Pay not confirmed", "code", wxpay.Code(err), "error", err)
		return refused("close order "+orderNo+" at WeChat Pay", err)
	}
}

// MarkPaid records the payment (one row per transaction_id, never
// overwritten) and moves the order PENDING → PAID with its transaction_id and
// paid_at. A retry — the order already PAID by this transaction, or further
// along — returns the current status. Any other status (CLOSED, or paid by
// another transaction) is a non-retryable ErrTypeStatusConflict.
func (a *Activities) MarkPaid(ctx context.Context, in workflows.MarkPaidInput) (workflows.OrderStatusResult, error) {
	p := in.Payment
	if !p.Paid() {
		return workflows.OrderStatusResult{}, nonRetryable(workflows.ErrTypeInvalidOrder,
			"order %s: trade_state %s (transaction %q) is not a payment", in.OrderNo, p.TradeState, p.TransactionID)
	}
	if p.OutTradeNo != "" && p.OutTradeNo != in.OrderNo {
		return workflows.OrderStatusResult{}, nonRetryable(workflows.ErrTypeInvalidOrder,
			"payment %s is for order %s, not %s", p.TransactionID, p.OutTradeNo, in.OrderNo)
	}
	if _, err := a.Store.RecordPayment(ctx, paymentRow(in.OrderNo, p)); err != nil {
		return workflows.OrderStatusResult{}, businessError(err)
	}
	o, err := a.Store.GetOrder(ctx, in.OrderNo)
	if err != nil {
		return workflows.OrderStatusResult{}, businessError(err)
	}
	// The workflow checks the payment before marking; this is the last guard:
	// money that does not match the order never makes it PAID.
	if p.AmountFen != o.TotalFen {
		return workflows.OrderStatusResult{}, nonRetryable(workflows.ErrTypeInvalidOrder,
			"order %s: payment %s is for %d fen, the order for %d fen", in.OrderNo, p.TransactionID, p.AmountFen, o.TotalFen)
	}

	paidAt := a.now()
	if p.SuccessTime != nil {
		paidAt = p.SuccessTime.UTC()
	}
	txID := p.TransactionID
	changed, o, err := a.Store.TransitionOrder(ctx, in.OrderNo, []status.Order{status.Pending}, status.Paid,
		store.OrderUpdate{TransactionID: &txID, PaidAt: &paidAt})
	if err != nil && !errors.Is(err, store.ErrStatusConflict) {
		return workflows.OrderStatusResult{}, businessError(err)
	}
	if changed {
		a.log(ctx, in.OrderNo).Info("order paid", "transaction_id", txID, "source", p.Source)
		return workflows.OrderStatusResult{Status: status.Order(o.Status)}, nil
	}
	if o.TransactionID == txID && o.Status.PaidOrLater() {
		return workflows.OrderStatusResult{Status: status.Order(o.Status)}, nil // a retry
	}
	if o.TransactionID != "" && o.TransactionID != txID {
		return workflows.OrderStatusResult{Status: status.Order(o.Status)}, nonRetryable(workflows.ErrTypeStatusConflict,
			"order %s is %s, paid by transaction %s: payment %s is not this order's", in.OrderNo, o.Status, o.TransactionID, txID)
	}
	return workflows.OrderStatusResult{Status: status.Order(o.Status)}, nonRetryable(workflows.ErrTypeStatusConflict,
		"order %s is %s: payment %s cannot be applied", in.OrderNo, o.Status, txID)
}

// paymentRow is the payments row of a reported payment.
func paymentRow(orderNo string, p workflows.PaymentNotice) store.Payment {
	if orderNo == "" {
		orderNo = p.OutTradeNo
	}
	return store.Payment{
		TransactionID: p.TransactionID,
		OrderNo:       orderNo,
		AmountFen:     p.AmountFen,
		PayerOpenID:   p.PayerOpenID,
		AppID:         p.AppID,
		MchID:         p.MchID,
		TradeState:    p.TradeState,
		SuccessTime:   p.SuccessTime,
	}
}

// DeductStock takes the order's items out of stock, all or none, once (the
// stock ledger's unique key makes a retry a no-op). A short product is a
// non-retryable ErrTypeOutOfStock: the workflow refunds.
func (a *Activities) DeductStock(ctx context.Context, orderNo string) error {
	if err := a.Store.DeductStock(ctx, orderNo); err != nil {
		return businessError(err)
	}
	return nil
}
