package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"ordersaga/workflows"
)

// Error codes: stable strings clients may branch on. The HTTP status says the
// class, the code says what exactly. docs/openapi.yaml lists the same set
// (ErrorCode), and a test keeps the two equal.
const (
	CodeInvalidArgument  = "INVALID_ARGUMENT"
	CodeUnauthenticated  = "UNAUTHENTICATED"
	CodePermissionDenied = "PERMISSION_DENIED"
	CodeNotFound         = "NOT_FOUND"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	CodeOutOfStock       = "OUT_OF_STOCK"
	CodeUnknownProduct   = "UNKNOWN_PRODUCT"
	CodeBodyTooLarge     = "BODY_TOO_LARGE"
	CodeUnavailable      = "UNAVAILABLE"
	CodeInternal         = "INTERNAL"
	// CodeRateLimited: the client sent more than RATE_LIMIT_USER or
	// RATE_LIMIT_LOGIN allow (429, with Retry-After).
	CodeRateLimited = "RATE_LIMITED"
	// CodeOrderLimitReached: Temporal refused the request because the
	// order's workflow reached a lasting limit (its updates or signals);
	// 503, counted, for an operator to raise (docs/OPERATIONS.md).
	CodeOrderLimitReached = "ORDER_LIMIT_REACHED"
	// CodeIdempotencyKeyReused: an Idempotency-Key already made an order of
	// another request (409).
	CodeIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"

	// Refusals of order actions: the order is not in a state that allows it.
	CodeOrderNotPayable     = workflows.ErrTypeNotPayable
	CodeOrderNotCancellable = workflows.ErrTypeNotCancellable
	CodeOrderNotRefundable  = workflows.ErrTypeNotRefundable
	CodeOrderNotShippable   = workflows.ErrTypeNotShippable
	CodeOrderNotConfirmable = workflows.ErrTypeNotConfirmable
	// CodeWechatRefused: WeChat Pay refused the request for good (502);
	// retrying the same request cannot help, a person should look.
	CodeWechatRefused = workflows.ErrTypeWechatRefused
	// CodeRefundExceedsOrder: a refund asks for goods the order does not
	// have, or more than were bought or are left to refund (409).
	CodeRefundExceedsOrder = workflows.ErrTypeRefundExceedsOrder
	// After-sales (409): another after-sale of the order is under way; the
	// order takes none (not shipped or completed, its window passed, or
	// paid before after-sales); the action is not the after-sale's next
	// step.
	CodeAfterSaleInProgress = workflows.ErrTypeAfterSaleInProgress
	CodeAfterSaleNotAllowed = workflows.ErrTypeAfterSaleNotAllowed
	CodeAfterSaleWrongStep  = workflows.ErrTypeAfterSaleWrongStep
)

// errorCodes is every code the API answers with (login's are in login.go).
var errorCodes = []string{
	CodeInvalidArgument, CodeUnauthenticated, CodePermissionDenied, CodeNotFound,
	CodeMethodNotAllowed, CodeOutOfStock, CodeUnknownProduct, CodeBodyTooLarge,
	CodeUnavailable, CodeInternal, CodeRateLimited, CodeOrderLimitReached, CodeIdempotencyKeyReused,
	CodeOrderNotPayable, CodeOrderNotCancellable, CodeOrderNotRefundable,
	CodeOrderNotShippable, CodeOrderNotConfirmable, CodeWechatRefused, CodeRefundExceedsOrder,
	CodeInvalidLoginCode, CodeLoginBlocked,
	CodeAfterSaleInProgress, CodeAfterSaleNotAllowed, CodeAfterSaleWrongStep,
}

// ErrorBody is the one error shape of the API: {"error":{"code","message"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func abortError(c *gin.Context, status int, code, message string) {
	c.AbortWithStatusJSON(status, ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
}

func badRequest(c *gin.Context, message string) {
	abortError(c, http.StatusBadRequest, CodeInvalidArgument, message)
}

func notFound(c *gin.Context, what string) {
	abortError(c, http.StatusNotFound, CodeNotFound, what+" not found")
}

// internalError logs the cause and tells the client only that it failed: the
// cause may hold details (SQL, hosts) that are not the client's business.
func internalError(c *gin.Context, err error) {
	_ = c.Error(err)
	abortError(c, http.StatusInternalServerError, CodeInternal, "internal error; try again later (request id "+c.GetString(ctxRequestID)+")")
}

func unavailable(c *gin.Context, err error) {
	_ = c.Error(err)
	abortError(c, http.StatusServiceUnavailable, CodeUnavailable, "the order service is temporarily unavailable; try again")
}

// temporalUnavailable reports whether err means Temporal (or the call to it)
// did not answer in time: the request may be retried as it is.
func temporalUnavailable(err error) bool {
	var (
		unavail   *serviceerror.Unavailable
		deadline  *serviceerror.DeadlineExceeded
		exhausted *serviceerror.ResourceExhausted
		canceled  *serviceerror.Canceled
		updTO     *client.WorkflowUpdateServiceTimeoutOrCanceledError
	)
	if errors.As(err, &unavail) || errors.As(err, &deadline) || errors.As(err, &exhausted) ||
		errors.As(err, &canceled) || errors.As(err, &updTO) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	// The SDK passes some transport failures on as raw gRPC statuses
	// ("failed reaching server: …").
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Canceled:
		return true
	}
	return false
}

// workflowEnded reports whether err says the order's workflow is no longer
// running (it completed, or never existed).
func workflowEnded(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// refusalStatus maps the Type of an ApplicationError a workflow returned to
// an HTTP status and error code; ok is false for types the API does not know.
func refusalStatus(errType string) (status int, code string, ok bool) {
	switch errType {
	case workflows.ErrTypeNotPayable, workflows.ErrTypeNotCancellable, workflows.ErrTypeNotRefundable,
		workflows.ErrTypeNotShippable, workflows.ErrTypeNotConfirmable, workflows.ErrTypeOutOfStock,
		workflows.ErrTypeRefundExceedsOrder, workflows.ErrTypeAfterSaleInProgress, workflows.ErrTypeAfterSaleNotAllowed,
		workflows.ErrTypeAfterSaleWrongStep:
		return http.StatusConflict, errType, true
	case workflows.ErrTypeIdempotencyKeyReused:
		return http.StatusConflict, CodeIdempotencyKeyReused, true
	case workflows.ErrTypeUnknownProduct:
		return http.StatusBadRequest, CodeUnknownProduct, true
	case workflows.ErrTypeInvalidOrder:
		return http.StatusBadRequest, CodeInvalidArgument, true
	case workflows.ErrTypeWechatUnavailable:
		return http.StatusServiceUnavailable, CodeUnavailable, true
	case workflows.ErrTypeWechatRefused:
		return http.StatusBadGateway, CodeWechatRefused, true
	}
	return 0, "", false
}

// applicationError is the workflow's business error inside err, if any.
func applicationError(err error) (*temporal.ApplicationError, bool) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr, true
	}
	return nil, false
}

// isRefusal reports whether err is a workflow's refusal of type errType.
func isRefusal(err error, errType string) bool {
	appErr, ok := applicationError(err)
	return ok && appErr.Type() == errType
}

// hasControl reports whether s holds a control character — C0 (NUL,
// newline, ESC, …), DEL or C1 (U+0080–U+009F: NEL, CSI, …), which
// terminals and some viewers act on: free text the shop stores and shows is
// one line of print.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}
