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

// maxReasonLen is the API's limit on a refund reason, in characters. WeChat
// takes at most 80 bytes (wxpay.MaxRefundReasonBytes, 26 Chinese
// characters): the refund row keeps the whole reason, WeChat gets it cut.
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
	// from are the statuses the action moves an order out of: a repeat the
	// workflow refused as already requested, of an order the row still
	// shows in one of them, is answered 202 (under way), otherwise 200.
	from []status.Order
}

var (
	actPay    = action{workflows.UpdatePay, "paid", CodeOrderNotPayable, nil, nil}
	actCancel = action{workflows.UpdateCancel, "cancelled", CodeOrderNotCancellable,
		[]status.Order{status.Closed}, []status.Order{status.Pending}}
	actRefund = action{workflows.UpdateRequestRefund, "refunded", CodeOrderNotRefundable,
		[]status.Order{status.Refunded}, []status.Order{status.Paid, status.Shipped}}
	actShip    = action{workflows.UpdateShip, "shipped", CodeOrderNotShippable, nil, nil}
	actConfirm = action{workflows.UpdateConfirm, "confirmed", CodeOrderNotConfirmable, []status.Order{status.Completed}, nil}
)

// actionFailed answers an update that did not succeed.
func (s *server) actionFailed(c *gin.Context, a action, o store.Order, err error) {
	if isRefusal(err, workflows.ErrTypeAlreadyRequested) {
		// Asked again for what the order is doing or did: nothing was
		// written; the answer is the order as it is.
		status := http.StatusOK
		if again, rerr := s.Store.GetOrder(c.Request.Context(), o.OrderNo); rerr == nil && slices.Contains(a.from, again.Status) {
			status = http.StatusAccepted
		}
		var view *workflows.OrderView
		if a.update == workflows.UpdateRequestRefund {
			// A refund repeated under its key: the refund it made may be
			// queued in the workflow and not asked of WeChat yet (no row).
			if v, err := s.queryState(c.Request.Context(), o.OrderNo); err == nil {
				view = &v
			}
		}
		s.respondOrder(c, status, o, view)
		return
	}
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
	if s.temporalLimitRefused(c, a.update, o.OrderNo, err) {
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
		out.RefundedFen = max(out.RefundedFen, view.RefundedFen)
	}
	if err := s.addRefunds(c.Request.Context(), &out, o, view); err != nil {
		internalError(c, err)
		return
	}
	c.JSON(httpStatus, out)
}

// payOrder answers the five wx.requestPayment parameters of a PENDING order
// (the workflow creates the JSAPI prepay once and reuses it). Once the order
// holds a prepay, the pay update is refused before history (the order has
// what is asked) and the parameters are read with the pay_params query, so
// however often a client taps "pay", nothing is written to the workflow's
// history: a flood of pays cannot use up Temporal's limit on the updates of
// one workflow, which the order's ship and refund need later.
//
// (Of the other ways: a fixed update id per order would have the server
// answer every repeat with the first outcome, for good — a refusal for
// stock that has come back, a prepay that has aged; and the row holds only
// the prepay_id, not the signed parameters. The validator and the query
// answer from the order as it is now.)
func (s *server) payOrder(c *gin.Context) {
	o, ok := s.userOrder(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	var (
		p   workflows.PayParams
		err error
	)
	for range 3 {
		if err = s.runUpdate(ctx, o.OrderNo, workflows.UpdatePay, nil, &p, payWait); !isRefusal(err, workflows.ErrTypeAlreadyRequested) {
			break
		}
		var qerr error
		if p, qerr = s.heldPayParams(ctx, o.OrderNo); qerr == nil {
			c.JSON(http.StatusOK, p)
			return
		}
		// The order moved on between the two (paid, closing, the prepay
		// aged): the update again says how.
		err = fmt.Errorf("%w (then the %s query: %v)", err, workflows.QueryPayParams, qerr)
	}
	if err != nil {
		if isRefusal(err, workflows.ErrTypeAlreadyRequested) {
			unavailable(c, fmt.Errorf("pay of order %s: %w", o.OrderNo, err))
			return
		}
		s.actionFailed(c, actPay, o, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// heldPayParams reads the parameters of the prepay the order holds
// (workflows.QueryPayParams): a query writes nothing to history.
func (s *server) heldPayParams(ctx context.Context, orderNo string) (workflows.PayParams, error) {
	return queryOrder[workflows.PayParams](ctx, s.Temporal, orderNo, workflows.QueryPayParams, actionWait)
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

// refundOrder refunds a PAID order at the user's request (before it
// ships): in full, or the items asked (refunds.go). The answer is the order
// with its refunds: REFUNDING or later for a whole refund, PAID with the
// new refund QUEUED for some items.
func (s *server) refundOrder(c *gin.Context) {
	req, ok := refundArgs(c, workflows.ByUser)
	if !ok {
		return
	}
	o, ok := s.userOrder(c)
	if !ok {
		return
	}
	s.runAction(c, actRefund, o, req)
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
