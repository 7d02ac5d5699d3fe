package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"ordersaga/internal/ratelimit"
)

// No client can wedge an order. Three things keep it so:
//
//   - A repeated pay, cancel, refund or ship is refused by the workflow's
//     validator (workflows.ErrTypeAlreadyRequested) and answered from what
//     the order already has, so it writes nothing to the workflow's history
//     and uses up none of Temporal's per-workflow limits
//     (history.maxTotalUpdates, 2000 by default) that the order's later
//     steps need.
//   - Each user's mutating requests and each address's logins are rate
//     limited here (RATE_LIMIT_USER, RATE_LIMIT_LOGIN).
//   - Should Temporal refuse an update or a signal for a limit all the same,
//     the answer is a stable code (ORDER_LIMIT_REACHED, or UNAVAILABLE for
//     a transient one), counted in ordersaga_temporal_limit_refusals_total,
//     never 500 INTERNAL; docs/OPERATIONS.md says what to do.

// Temporal's per-workflow limits, as the label of
// ordersaga_temporal_limit_refusals_total.
const (
	limitTotalUpdates = "total_updates" // history.maxTotalUpdates: for good, until an operator raises it
	limitSignals      = "signals"       // history.maximumSignalsPerExecution: likewise
)

// temporalLimit names the Temporal limit err is a refusal for, "" when it is
// not one. Server v1.32.1 answers (service/history/workflow/update/registry.go
// and service/history/api/signal_workflow_util.go):
//
//   - history.maxTotalUpdates reached: FailedPrecondition "The limit on the
//     total number of distinct updates in this workflow has been reached".
//   - history.maximumSignalsPerExecution reached: InvalidArgument "exceeded
//     workflow execution limit for signal events".
//   - history.maxInFlightUpdates (and the in-flight payload size):
//     ResourceExhausted, cause CONCURRENT_LIMIT; the SDK retries it until the
//     call's deadline, so it rarely gets here. Namespace rate limits are
//     ResourceExhausted too. Both pass with time: label by their cause.
func temporalLimit(err error) string {
	var fp *serviceerror.FailedPrecondition
	if errors.As(err, &fp) && strings.Contains(fp.Message, "limit on the total number of distinct updates") {
		return limitTotalUpdates
	}
	var ia *serviceerror.InvalidArgument
	if errors.As(err, &ia) && strings.Contains(ia.Message, "limit for signal events") {
		return limitSignals
	}
	var re *serviceerror.ResourceExhausted
	if errors.As(err, &re) {
		cause := re.Cause
		if cause == enumspb.RESOURCE_EXHAUSTED_CAUSE_UNSPECIFIED {
			return "resource_exhausted"
		}
		return strings.ToLower(strings.TrimPrefix(cause.String(), "RESOURCE_EXHAUSTED_CAUSE_"))
	}
	return ""
}

// lastingLimit reports whether a Temporal limit holds until an operator
// raises it (the order's workflow takes no more of that kind), rather than
// passing with time.
func lastingLimit(limit string) bool {
	return limit == limitTotalUpdates || limit == limitSignals
}

// countTemporalLimit counts a refusal of op (an update or signal name) for a
// Temporal limit, and logs it: operators alert on the counter.
func (s *server) countTemporalLimit(c *gin.Context, op, limit, orderNo string, err error) {
	s.temporalLimits.WithLabelValues(op, limit).Inc()
	s.Logger.Error("Temporal refused a request to an order for a limit", "request_id", c.GetString(ctxRequestID),
		"order_no", orderNo, "operation", op, "limit", limit, "error", err.Error())
}

// temporalLimitRefused answers a user's or admin's request that Temporal
// refused for a limit, if err is one; false when it is not.
func (s *server) temporalLimitRefused(c *gin.Context, op, orderNo string, err error) bool {
	limit := temporalLimit(err)
	if limit == "" {
		return false
	}
	s.countTemporalLimit(c, op, limit, orderNo, err)
	if lastingLimit(limit) {
		_ = c.Error(err)
		abortError(c, http.StatusServiceUnavailable, CodeOrderLimitReached, fmt.Sprintf(
			"order %s has taken as many requests as the order service allows one order; the shop has been alerted (request id %s)",
			orderNo, c.GetString(ctxRequestID)))
		return true
	}
	unavailable(c, err)
	return true
}

// limit answers 429 RATE_LIMITED, with Retry-After, to a request over its
// client's rate; key names the client.
func (s *server) limit(l *ratelimit.Limiter, key func(*gin.Context) string) gin.HandlerFunc {
	return func(c *gin.Context) {
		ok, wait := l.Allow(key(c))
		if ok {
			c.Next()
			return
		}
		s.rateLimited.WithLabelValues(c.FullPath()).Inc()
		c.Header("Retry-After", ratelimit.RetryAfter(wait))
		abortError(c, http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf(
			"too many requests: at most %d per %s; retry after %s s", l.Rate().Requests, l.Rate().Per, ratelimit.RetryAfter(wait)))
	}
}

// limitUser limits each user's mutating requests (after requireUser).
func (s *server) limitUser() gin.HandlerFunc {
	return s.limit(s.userLimiter, func(c *gin.Context) string { return strconv.FormatInt(c.GetInt64(ctxUserID), 10) })
}

// limitLogin limits the logins of each client address: the connection's,
// or X-Forwarded-For's from HTTP_TRUSTED_PROXIES only.
func (s *server) limitLogin() gin.HandlerFunc {
	return s.limit(s.loginLimiter, func(c *gin.Context) string { return c.ClientIP() })
}
