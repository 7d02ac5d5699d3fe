package wxpay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
)

// ErrorKind says what a caller should do about a failed call.
type ErrorKind int

const (
	// KindNone is the kind of a nil error.
	KindNone ErrorKind = iota
	// KindRetryable: retry the same call with the same out_trade_no /
	// out_refund_no (network error, timeout, 5xx, 429, SYSTEM_ERROR,
	// FREQUENCY_LIMITED).
	KindRetryable
	// KindPermanent: retrying the same request will not help (other 4xx such
	// as PARAM_ERROR, SIGN_ERROR, ORDER_CLOSED, ORDER_NOT_EXIST, NOT_ENOUGH,
	// or a request that could not even be built).
	KindPermanent
	// KindUnknown: WeChat answered 2xx but the answer failed verification (or
	// could not be read). WeChat may have done it: query before deciding.
	KindUnknown
)

func (k ErrorKind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindRetryable:
		return "retryable"
	case KindPermanent:
		return "permanent"
	case KindUnknown:
		return "unknown"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// Error is what every Client method returns on failure. Its message is short
// and safe to log: it never contains request headers or bodies.
type Error struct {
	Op         string    // "prepay", "query", "close", "refund", "refund_query", "tradebill", … (Config.OnCall)
	Kind       ErrorKind // see Classify
	StatusCode int       // HTTP status when WeChat answered, else 0
	Code       string    // WeChat's error code (e.g. "ORDER_NOT_EXIST"), if any
	Message    string    // WeChat's message, if any
	RequestID  string    // WeChat's Request-Id header, if any
	Err        error     // the underlying error (may be a *core.APIError)
}

func (e *Error) Error() string {
	switch {
	case e.StatusCode != 0 && e.Kind != KindUnknown:
		msg := fmt.Sprintf("wxpay %s: HTTP %d %s", e.Op, e.StatusCode, e.Code)
		if e.Message != "" {
			msg += ": " + e.Message
		}
		if e.RequestID != "" {
			msg += " (request-id " + e.RequestID + ")"
		}
		return msg
	case e.Kind == KindUnknown:
		return fmt.Sprintf("wxpay %s: answer not verified, outcome unknown (query before deciding): %s", e.Op, safeText(e.Err))
	default:
		return fmt.Sprintf("wxpay %s: %s", e.Op, safeText(e.Err))
	}
}

func (e *Error) Unwrap() error { return e.Err }

// safeText keeps error text short; it never renders an SDK *core.APIError
// (whose text lists every response header).
func safeText(err error) string {
	if err == nil {
		return "<nil>"
	}
	var apiErr *core.APIError
	if errors.As(err, &apiErr) {
		return fmt.Sprintf("HTTP %d %s", apiErr.StatusCode, apiErr.Code)
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Classify says whether err (from any Client method, or a raw SDK error) is
// worth retrying with the same identifiers.
func Classify(err error) ErrorKind {
	if err == nil {
		return KindNone
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return classifyRaw(err)
}

// Code returns WeChat's error code carried by err ("" when there is none).
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	var apiErr *core.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code
	}
	return ""
}

// StatusCode returns the HTTP status WeChat answered with (0 when none).
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) && e.StatusCode != 0 {
		return e.StatusCode
	}
	var apiErr *core.APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

// retryableCodes are WeChat error codes that mean "try again later".
var retryableCodes = map[string]bool{
	"SYSTEM_ERROR":        true,
	"SYSTEMERROR":         true,
	"FREQUENCY_LIMITED":   true,
	"BANK_ERROR":          true,
	"FREQUENCY_LIMIT":     true,
	"SERVICE_UNAVAILABLE": true,
}

func classifyAPIError(a *core.APIError) ErrorKind {
	switch {
	case a.StatusCode >= 500, a.StatusCode == http.StatusTooManyRequests, retryableCodes[a.Code]:
		return KindRetryable
	default:
		return KindPermanent
	}
}

// classifyRaw classifies an error that did not come wrapped in *Error.
func classifyRaw(err error) ErrorKind {
	var apiErr *core.APIError
	if errors.As(err, &apiErr) {
		return classifyAPIError(apiErr)
	}
	if isTransportError(err) {
		return KindRetryable
	}
	return KindPermanent
}

// isTransportError reports network failures, timeouts and cancellations: the
// request may or may not have reached WeChat, and repeating it with the same
// identifiers is safe.
func isTransportError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}
