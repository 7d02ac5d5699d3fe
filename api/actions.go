package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// How long an action waits for its order's workflow. WeChat is called inside
// pay, cancel and sync: the bounds leave it a few seconds and stay well under
// what a mini-program user waits for.
const (
	payWait    = 20 * time.Second
	cancelWait = 10 * time.Second
	actionWait = 10 * time.Second
	syncWait   = 8 * time.Second
)

// maxReasonLen is WeChat's limit on a refund reason (80 characters).
const maxReasonLen = 80

// errUpdatePending: the workflow accepted the update but did not finish it
// within the wait; it goes on by itself.
var errUpdatePending = errors.New("accepted by the order, still in progress")

// runUpdate sends an update to an order's workflow and waits, at most wait,
// for its result in out. An update the workflow accepted but did not finish
// in time is errUpdatePending; a refusal (validator or handler) is the
// workflow's *temporal.ApplicationError; an ended workflow is
// *serviceerror.NotFound.
func (s *server) runUpdate(ctx context.Context, orderNo, name string, arg, out any, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	opts := client.UpdateWorkflowOptions{
		WorkflowID:   workflows.WorkflowID(orderNo),
		UpdateName:   name,
		WaitForStage: client.WorkflowUpdateStageAccepted,
	}
	if arg != nil {
		opts.Args = []any{arg}
	}
	h, err := s.Temporal.UpdateWorkflow(ctx, opts)
	if err != nil {
		return err
	}
	if err := h.Get(ctx, out); err != nil {
		if _, refused := applicationError(err); refused {
			return err
		}
		// Accepted is durable: whatever kept the answer from us (the wait,
		// Temporal going away) does not stop the workflow.
		return fmt.Errorf("%w: %v", errUpdatePending, err)
	}
	return nil
}

// action is one user or admin action on an order.
type action struct {
	update  string
	verb    string // "paid", "cancelled", … for messages
	notCode string // the refusal code when the order cannot do it
	// done are the statuses in which an ended order shows the action took
	// place: asking again answers the order, as the workflow does while it
	// runs, rather than a refusal.
	done []status.Order
}

var (
	actPay     = action{workflows.UpdatePay, "paid", CodeOrderNotPayable, nil}
	actCancel  = action{workflows.UpdateCancel, "cancelled", CodeOrderNotCancellable, []status.Order{status.Closed}}
	actRefund  = action{workflows.UpdateRequestRefund, "refunded", CodeOrderNotRefundable, []status.Order{status.Refunded}}
	actShip    = action{workflows.UpdateShip, "shipped", CodeOrderNotShippable, nil}
	actConfirm = action{workflows.UpdateConfirm, "confirmed", CodeOrderNotConfirmable, []status.Order{status.Completed}}
)

// actionFailed answers an update that did not succeed.
func (s *server) actionFailed(c *gin.Context, a action, o store.Order, err error) {
	if appErr, ok := applicationError(err); ok {
		if status, code, known := refusalStatus(appErr.Type()); known {
			msg := appErr.Message()
			switch code {
			case CodeWechatRefused:
				// WeChat's own words go to the log, not to the mini-program.
				_ = c.Error(err)
				msg = "WeChat Pay refused this request and retrying will not change that; the shop can look it up by request id " + c.GetString(ctxRequestID)
			case CodeUnavailable:
				_ = c.Error(err)
			}
			abortError(c, status, code, msg)
			return
		}
		if appErr.Type() == workflows.ErrTypeStatusConflict {
			abortError(c, http.StatusConflict, a.notCode, appErr.Message())
			return
		}
		internalError(c, fmt.Errorf("%s update: %w", a.update, err))
		return
	}
	if workflowEnded(err) {
		status := o.Status
		if again, rerr := s.Store.GetOrder(c.Request.Context(), o.OrderNo); rerr == nil {
			status = again.Status
		}
		if slices.Contains(a.done, status) {
			s.respondOrder(c, http.StatusOK, o, nil)
			return
		}
		abortError(c, http.StatusConflict, a.notCode,
			fmt.Sprintf("order %s is %s: it has ended and can no longer be %s", o.OrderNo, status, a.verb))
		return
	}
	if temporalUnavailable(err) || errors.Is(err, errUpdatePending) {
		unavailable(c, fmt.Errorf("%s update of order %s: %w", a.update, o.OrderNo, err))
		return
	}
	internalError(c, fmt.Errorf("%s update of order %s: %w", a.update, o.OrderNo, err))
}

// respondOrder answers the order as the database has it, with the status
// the workflow reported when there is one (it is the newer of the two).
func (s *server) respondOrder(c *gin.Context, httpStatus int, o store.Order, view *workflows.OrderView) {
	if again, err := s.Store.GetOrder(c.Request.Context(), o.OrderNo); err == nil {
		o = again
	}
	out := orderFromRow(o)
	if view != nil && view.Status != "" && view.Status != status.Refused {
		out.Status = string(view.Status)
	}
	c.JSON(httpStatus, out)
}

// payOrder answers the five wx.requestPayment parameters of a PENDING order
// (the workflow creates the JSAPI prepay once and reuses it).
func (s *server) payOrder(c *gin.Context) {
	o, ok := s.userOrder(c)
	if !ok {
		return
	}
	var p workflows.PayParams
	if err := s.runUpdate(c.Request.Context(), o.OrderNo, workflows.UpdatePay, nil, &p, payWait); err != nil {
		s.actionFailed(c, actPay, o, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// cancelOrder closes a PENDING order, at WeChat first. It answers the order
// CLOSED — or PAID, when WeChat says it was paid meanwhile. Closing may take
// a few seconds (close, then query WeChat again); past cancelWait it answers
// 202 with the order as the database has it, and the workflow finishes.
func (s *server) cancelOrder(c *gin.Context) {
	o, ok := s.userOrder(c)
	if !ok {
		return
	}
	var view workflows.OrderView
	err := s.runUpdate(c.Request.Context(), o.OrderNo, workflows.UpdateCancel, nil, &view, cancelWait)
	if errors.Is(err, errUpdatePending) {
		s.Logger.Info("cancel still in progress", "request_id", c.GetString(ctxRequestID), "order_no", o.OrderNo, "error", err.Error())
		s.respondOrder(c, http.StatusAccepted, o, nil)
		return
	}
	if err != nil {
		s.actionFailed(c, actCancel, o, err)
		return
	}
	s.respondOrder(c, http.StatusOK, o, &view)
}

type refundRequest struct {
	Reason string `json:"reason"`
}

// refundOrder refunds a PAID order in full at the user's request (before it
// ships); the answer is the order REFUNDING, or later.
func (s *server) refundOrder(c *gin.Context) {
	var req refundRequest
	if !decodeOptionalJSON(c, &req) {
		return
	}
	reason, ok := checkReason(c, req.Reason)
	if !ok {
		return
	}
	o, ok := s.userOrder(c)
	if !ok {
		return
	}
	s.runAction(c, actRefund, o, workflows.RefundRequest{By: workflows.ByUser, Reason: reason})
}

// confirmOrder marks a SHIPPED order COMPLETED: the user got the goods.
func (s *server) confirmOrder(c *gin.Context) {
	var empty struct{}
	if !decodeOptionalJSON(c, &empty) {
		return
	}
	o, ok := s.userOrder(c)
	if !ok {
		return
	}
	s.runAction(c, actConfirm, o, nil)
}

// runAction sends a state-changing update whose answer is the order: 200
// when it finished, 202 when the workflow accepted it and goes on by itself.
func (s *server) runAction(c *gin.Context, a action, o store.Order, arg any) {
	var view workflows.OrderView
	err := s.runUpdate(c.Request.Context(), o.OrderNo, a.update, arg, &view, actionWait)
	if errors.Is(err, errUpdatePending) {
		s.respondOrder(c, http.StatusAccepted, o, nil)
		return
	}
	if err != nil {
		s.actionFailed(c, a, o, err)
		return
	}
	s.respondOrder(c, http.StatusOK, o, &view)
}

func checkReason(c *gin.Context, reason string) (string, bool) {
	reason = strings.TrimSpace(reason)
	if len([]rune(reason)) > maxReasonLen {
		badRequest(c, fmt.Sprintf("reason must be at most %d characters", maxReasonLen))
		return "", false
	}
	if hasControl(reason) {
		badRequest(c, "reason must not contain control characters")
		return "", false
	}
	return reason, true
}
