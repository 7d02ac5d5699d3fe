package activities

import (
	"fmt"

	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/wxpay"
	"ordersaga/workflows"
)

// WeChat Pay error codes the activities branch on.
const (
	codeOrderNotExist = "ORDER_NOT_EXIST" // query: no prepay was ever made for this out_trade_no
	codeNotEnough     = "NOT_ENOUGH"      // refund: the merchant's balance cannot cover it
)

// wechatError sorts a failed WeChat Pay call: a permanent answer becomes a
// non-retryable ErrTypeWechatRefused (its message names WeChat's code, which
// is also its only detail); a retryable one, and one whose outcome is unknown
// (the answer failed verification: retrying with the same out_trade_no /
// out_refund_no is safe), stays a plain error for Temporal to retry.
func wechatError(what string, err error) error {
	if wxpay.Classify(err) == wxpay.KindPermanent {
		return refused(what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// refused is the non-retryable ErrTypeWechatRefused for err.
func refused(what string, err error) error {
	code := wxpay.Code(err)
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: WeChat Pay refused: %v", what, err),
		workflows.ErrTypeWechatRefused, err, code)
}
