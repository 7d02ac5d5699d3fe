// Package wxpay wires the official WeChat Pay API v3 Go SDK
// (github.com/wechatpay-apiv3/wechatpay-go) for production:
//
//   - Client: the SDK client in public-key mode
//     (option.WithWechatPayPublicKeyAuthCipher), no network at construction,
//     per-call timeouts, and WECHATPAY_BASE_URL routed through a
//     host-rewriting transport (the path is signed, the host is not), which is
//     how the simulator in internal/paysim stands in for WeChat.
//   - Classify / Code / StatusCode: what to do about a failed call. Network
//     errors, timeouts, 5xx, 429, SYSTEM_ERROR and FREQUENCY_LIMITED are
//     KindRetryable (retry with the same out_trade_no / out_refund_no); other
//     4xx are KindPermanent; a 2xx whose signature does not verify is
//     KindUnknown: WeChat may have acted, query before deciding.
//   - NotifyHandler: the SDK's notify.NewRSANotifyHandler with the public-key
//     verifier; Parse returns a decoded Notification (TRANSACTION.* or
//     REFUND.* with refund_status) or an error that is ErrBadSignature (answer
//     401) or ErrBadBody (answer 400). Error texts never contain the request.
//     Only WeChat's spelling of the signed headers is taken (ErrNotCanonical
//     otherwise), and Notification.ReplayKey identifies what was signed, for
//     a replay guard.
//   - CutBytes: WeChat counts its text limits in UTF-8 bytes (description
//     127, attach 128, refund reason 80); the client cuts description and
//     reason on a character boundary.
//
// Errors returned by Client methods are *Error; their text is safe to log.
package wxpay
