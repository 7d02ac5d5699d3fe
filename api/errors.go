package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// Error codes: stable strings clients may branch on. The HTTP status says the
// class, the code says what exactly.
const (
	CodeInvalidArgument  = "INVALID_ARGUMENT"
	CodeUnauthenticated  = "UNAUTHENTICATED"
	CodePermissionDenied = "PERMISSION_DENIED"
	CodeNotFound         = "NOT_FOUND"
	CodeOutOfStock       = "OUT_OF_STOCK"
	CodeUnknownProduct   = "UNKNOWN_PRODUCT"
	CodeOrderNotPayable  = "ORDER_NOT_PAYABLE"
	CodeBodyTooLarge     = "BODY_TOO_LARGE"
	CodeUnavailable      = "UNAVAILABLE"
	CodeInternal         = "INTERNAL"
)

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
