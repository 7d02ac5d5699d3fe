package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/wxapp"
	"ordersaga/workflows"
)

// WeChat's order shipping management: report a shipment, ask WeChat for its
// view of a payment, remind the buyer. Each first asks whether WeChat
// manages the shop's shipping (WECHAT_SHIPPING_MANAGED; auto asks WeChat
// once per process) and does nothing when it does not.

var logisticsTypes = map[string]int{
	workflows.LogisticsExpress: wxapp.LogisticsExpress, workflows.LogisticsSameCity: wxapp.LogisticsSameCity,
	workflows.LogisticsVirtual: wxapp.LogisticsVirtual, workflows.LogisticsPickup: wxapp.LogisticsPickup,
}

// managed reports whether WeChat manages the shop's shipping; an error is
// retryable (auto could not ask WeChat).
func (a *Activities) managed(ctx context.Context) (bool, error) {
	if a.Shipping == nil {
		return false, nil
	}
	ok, err := a.Shipping.Get(ctx)
	if err != nil {
		return false, fmt.Errorf("shipping management: %w", err)
	}
	return ok, nil
}

// UploadShippingInfo reports an order's shipment to WeChat
// (upload_shipping_info). WeChat takes a payment's shipment once and one
// change after it, so this never sends it twice: a retry — of the activity,
// or a later round the workflow starts (in.Retry) — first asks WeChat
// (get_order) whether it has the shipment already, and is done if it has.
// WeChat not seeing the payment yet (10060001) and busy answers are
// retryable; a refusal is a non-retryable ErrTypeWechatRefused, its reason
// for a person.
func (a *Activities) UploadShippingInfo(ctx context.Context, in workflows.UploadShippingInput) (workflows.WechatShippingResult, error) {
	managed, err := a.managed(ctx)
	if err != nil || !managed {
		return workflows.WechatShippingResult{}, err
	}
	log := a.log(ctx, in.OrderNo)
	res := workflows.WechatShippingResult{Managed: true}
	ref := wxapp.OrderRef{TransactionID: in.TransactionID}
	if in.Retry || activity.GetInfo(ctx).Attempt > 1 {
		o, err := a.Wxapp.GetOrder(ctx, ref)
		if err != nil {
			return res, shippingError("ask WeChat whether it has the shipment of order "+in.OrderNo, err)
		}
		res.OrderState, res.InComplaint = o.OrderState, o.InComplaint
		switch {
		case o.Shipped():
			log.Info("WeChat has the shipment already: not sent again", "order_state", o.OrderState)
			res.Uploaded, res.Already = true, true
			return res, nil
		case o.OrderState == wxapp.OrderRefunded:
			log.Warn("WeChat says the payment was refunded: nothing to ship")
			return res, nil
		}
	}
	body, err := a.shipmentBody(ctx, in)
	if err != nil {
		return res, err
	}
	err = a.uploadShipment(ctx, body)
	if wxapp.HasCode(err, wxapp.CodeAlreadyShipped) {
		// Shipped by a person in the console, or by a call whose answer
		// was lost: WeChat's word on what it has decides.
		if o, gerr := a.Wxapp.GetOrder(ctx, ref); gerr == nil && o.Shipped() {
			res.OrderState, res.Uploaded, res.Already = o.OrderState, true, true
			return res, nil
		}
	}
	var lost *wxapp.TransportError
	if errors.As(err, &lost) {
		// No answer: WeChat may still take the request. The next attempt
		// asks get_order only once it would have.
		return res, temporal.NewApplicationErrorWithOptions(
			fmt.Sprintf("report the shipment of order %s: no answer from WeChat (asking it again in %s): %v", in.OrderNo, uploadSettle, err),
			workflows.ErrTypeWechatUnavailable, temporal.ApplicationErrorOptions{Cause: err, NextRetryDelay: uploadSettle})
	}
	if err != nil {
		return res, shippingError("report the shipment of order "+in.OrderNo, err)
	}
	log.Info("shipment reported to WeChat", "logistics_type", in.Shipment.LogisticsType, "packages", len(in.Shipment.Packages))
	res.Uploaded, res.OrderState = true, wxapp.OrderShipped
	return res, nil
}

// How an upload whose answer never came is followed up. WeChat may take a
// request after the client gave up on it (a slow answer, a timeout): a retry
// that asked get_order at once could see no shipment yet, upload again, and
// so spend the one re-ship WeChat allows. The next attempt therefore waits
// uploadSettle, far beyond the client's 10 s, before it asks. The upload is
// cut uploadDeadlineMargin before the attempt's deadline so that this
// attempt's error — with its wait — is what Temporal records, not a timeout
// of its own, which the retry policy follows after a second.
const (
	uploadSettle         = 30 * time.Second
	uploadDeadlineMargin = 2 * time.Second
)

// uploadShipment sends upload_shipping_info within the attempt's time.
func (a *Activities) uploadShipment(ctx context.Context, body wxapp.UploadShippingInfo) error {
	if deadline := activity.GetInfo(ctx).Deadline; !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-uploadDeadlineMargin))
		defer cancel()
	}
	return a.Wxapp.UploadShippingInfo(ctx, body)
}

// shipmentBody is upload_shipping_info's body for the order: the payer
// from the payment, the receiver's phone (masked, for SF Express) from the
// order.
func (a *Activities) shipmentBody(ctx context.Context, in workflows.UploadShippingInput) (wxapp.UploadShippingInfo, error) {
	sh := in.Shipment
	logistics, ok := logisticsTypes[sh.LogisticsType]
	if !ok {
		return wxapp.UploadShippingInfo{}, nonRetryable(workflows.ErrTypeWechatRefused,
			"order %s was shipped without logistics_type and packages (the ship request of before shipping management): WeChat needs them; report the shipment in the mini-program admin console", in.OrderNo)
	}
	pay, err := a.Store.GetPayment(ctx, in.TransactionID)
	if err != nil {
		return wxapp.UploadShippingInfo{}, businessError(fmt.Errorf("the payer of order %s: %w", in.OrderNo, err))
	}
	order, err := a.Store.GetOrder(ctx, in.OrderNo)
	if err != nil {
		return wxapp.UploadShippingInfo{}, businessError(err)
	}
	body := wxapp.UploadShippingInfo{
		OrderKey:      wxapp.OrderKey{OrderNumberType: wxapp.OrderKeyTransaction, TransactionID: in.TransactionID},
		LogisticsType: logistics, DeliveryMode: wxapp.DeliveryUnified,
		UploadTime: wxapp.UploadTime(a.now()), Payer: wxapp.Payer{OpenID: pay.PayerOpenID},
	}
	desc := wxapp.CutChars(sh.ItemDesc, wxapp.MaxItemDesc)
	if logistics != wxapp.LogisticsExpress || len(sh.Packages) == 0 {
		body.ShippingList = []wxapp.ShippingItem{{ItemDesc: desc}}
		return body, nil
	}
	if len(sh.Packages) > 1 {
		all := true // the API takes a shipment once every package has left
		body.DeliveryMode, body.IsAllDelivered = wxapp.DeliverySplit, &all
	}
	for _, p := range sh.Packages {
		item := wxapp.ShippingItem{ExpressCompany: p.ExpressCompany, TrackingNo: p.TrackingNo, ItemDesc: desc}
		if p.ExpressCompany == "SF" {
			switch {
			case order.ShipTo.Phone != "":
				item.Contact = &wxapp.Contact{ReceiverContact: wxapp.MaskPhone(order.ShipTo.Phone)}
			case sh.ConsignorPhone != "":
				item.Contact = &wxapp.Contact{ConsignorContact: wxapp.MaskPhone(sh.ConsignorPhone)}
			}
		}
		body.ShippingList = append(body.ShippingList, item)
	}
	return body, nil
}

// QueryWechatShipping asks WeChat for its view of an order's payment
// (get_order): shipped, receipt confirmed, settled, refunded.
func (a *Activities) QueryWechatShipping(ctx context.Context, in workflows.WechatShippingInput) (workflows.WechatShippingResult, error) {
	managed, err := a.managed(ctx)
	if err != nil || !managed {
		return workflows.WechatShippingResult{}, err
	}
	o, err := a.Wxapp.GetOrder(ctx, wxapp.OrderRef{TransactionID: in.TransactionID})
	if err != nil {
		return workflows.WechatShippingResult{Managed: true}, shippingError("ask WeChat about order "+in.OrderNo, err)
	}
	a.log(ctx, in.OrderNo).Info("WeChat's view of the order", "order_state", o.OrderState, "in_complaint", o.InComplaint)
	return workflows.WechatShippingResult{Managed: true, Uploaded: o.Shipped(), OrderState: o.OrderState, InComplaint: o.InComplaint}, nil
}

// RemindReceiptConfirmation asks WeChat to remind the buyer to confirm
// receipt (notify_confirm_receive). WeChat takes one reminder per order: a
// refusal is an answer (Reminded false), not a failure.
func (a *Activities) RemindReceiptConfirmation(ctx context.Context, in workflows.WechatShippingInput) (workflows.RemindResult, error) {
	managed, err := a.managed(ctx)
	if err != nil {
		return workflows.RemindResult{}, err
	}
	if !managed {
		return workflows.RemindResult{Why: "WeChat does not manage the shop's shipping"}, nil
	}
	err = a.Wxapp.NotifyConfirmReceive(ctx, wxapp.OrderRef{TransactionID: in.TransactionID}, in.ReceivedAt)
	var refusal *wxapp.Error
	switch {
	case err == nil:
		a.log(ctx, in.OrderNo).Info("WeChat reminds the buyer to confirm receipt")
		return workflows.RemindResult{Reminded: true}, nil
	case refusedByWechat(err) && errors.As(err, &refusal):
		return workflows.RemindResult{Why: refusal.Error()}, nil
	}
	return workflows.RemindResult{}, fmt.Errorf("remind the buyer of order %s: %w", in.OrderNo, err)
}

// shippingError sorts a failed mini-program call: a refusal WeChat means
// (an errcode that is not busy, nor "payment not visible yet", nor about
// the access token) is a non-retryable ErrTypeWechatRefused naming WeChat's
// code; anything else is retried.
func shippingError(what string, err error) error {
	var e *wxapp.Error
	if refusedByWechat(err) && errors.As(err, &e) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: WeChat refused: errcode %d: %s", what, e.Code, e.Msg),
			workflows.ErrTypeWechatRefused, err, strconv.Itoa(e.Code))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// refusedByWechat reports whether err is WeChat saying no for good: an
// errcode that is not busy, nor "payment not visible yet", nor about the
// access token (renewed on the next try).
func refusedByWechat(err error) bool {
	var e *wxapp.Error
	if !errors.As(err, &e) || wxapp.Retryable(err) || e.Op == "stable_token" {
		return false
	}
	switch e.Code {
	case wxapp.CodePaymentNotFound, wxapp.CodeInvalidCredential, wxapp.CodeTokenExpired:
		return false
	}
	return true
}
