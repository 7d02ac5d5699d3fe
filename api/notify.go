package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/wxpay"
	"ordersaga/workflows"
)

// notifyAnswer is WeChat Pay's error shape: a non-2xx answer with it makes
// WeChat retry (15 s, 15 s, 30 s, 3 min, … for about a day).
type notifyAnswer struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// notifyTemporalBudget bounds what a callback may spend on Temporal: WeChat
// waits 5 s for an answer, and the verification comes first.
const notifyTemporalBudget = 3500 * time.Millisecond

// wechatpayNotify turns a verified WeChat Pay callback into a signal to the
// workflow the event belongs to. It answers 204 only once Temporal accepted
// the signal (or there is nothing to signal); 4xx for callbacks it refuses
// (nothing changes); 500 when Temporal did not take it, so WeChat retries.
// Neither the body nor the SDK's error text is ever logged: they carry the
// payer's data.
func (s *server) wechatpayNotify(c *gin.Context) {
	if s.Notify == nil {
		s.notifyFail(c, "", "failed_unconfigured", http.StatusInternalServerError, "notify verification is not configured", errors.New("api: Deps.Notify is nil"))
		return
	}
	n, err := s.Notify.Parse(c.Request.Context(), c.Request)
	if err != nil {
		status := wxpay.NotifyStatus(err)
		switch {
		case errors.Is(err, wxpay.ErrBadSignature):
			s.notifyRefuse(c, "", "refused_signature", status, "signature not verified", err)
		case errors.Is(err, wxpay.ErrBadBody):
			s.notifyRefuse(c, "", "refused_body", status, "body malformed or not decryptable", err)
		default:
			s.notifyFail(c, "", "failed_parse", status, "could not read the notification", err)
		}
		return
	}
	// A verified request seen before is a replay: WeChat signs every delivery
	// attempt afresh (new timestamp and nonce), so only a copy has the same
	// signed timestamp, nonce and signature bytes (Parse accepts one spelling
	// of them, so a respelt copy is refused or has the same key). The
	// envelope id would not do: WeChat keeps it across the retries of one
	// notification, and a retry after our 5xx must get through.
	if !s.replays.first(n.ReplayKey) {
		s.notifyRefuse(c, n.EventType, "refused_replay", http.StatusUnauthorized, "notification replayed", errors.New("replayed notification (same timestamp, nonce and signature)"))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), notifyTemporalBudget)
	defer cancel()
	switch {
	case n.EventType == wxpay.EventTransactionSuccess && n.Transaction != nil:
		s.notifyPayment(ctx, c, n)
	case n.Refund != nil:
		s.notifyRefund(ctx, c, n)
	default:
		s.Logger.Info("wechatpay notify: event type ignored", "request_id", c.GetString(ctxRequestID),
			"notify_id", n.ID, "event_type", n.EventType, "resource_type", n.ResourceType)
		s.notifyOK(c, n.EventType, "ignored")
	}
}

func (s *server) notifyPayment(ctx context.Context, c *gin.Context, n wxpay.Notification) {
	tx := n.Transaction
	notice := workflows.PaymentNotice{
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
		Source:        "notify",
	}
	log := s.Logger.With("request_id", c.GetString(ctxRequestID), "notify_id", n.ID, "event_type", n.EventType,
		"out_trade_no", notice.OutTradeNo, "transaction_id", notice.TransactionID, "trade_state", notice.TradeState)
	if notice.TransactionID == "" {
		// Nothing to deduplicate or refund by: WeChat never sends this.
		s.notifyRefuse(c, n.EventType, "refused_body", http.StatusBadRequest, "transaction without transaction_id", errors.New("payment notify without transaction_id"))
		return
	}
	if !validOrderNo(notice.OutTradeNo) {
		// Not a number this shop issues: acknowledge, or WeChat retries for a day.
		log.Warn("payment for unknown order")
		s.notifyOK(c, n.EventType, "unknown_order")
		return
	}
	err := s.Temporal.SignalWorkflow(ctx, workflows.WorkflowID(notice.OutTradeNo), "", workflows.SignalPayment, notice)
	if err == nil {
		log.Info("payment signalled to the order")
		s.notifyOK(c, n.EventType, "accepted")
		return
	}
	if !workflowEnded(err) {
		s.notifyTemporalFailed(c, n.EventType, workflows.SignalPayment, notice.OutTradeNo, fmt.Errorf("signal payment to order %s: %w", notice.OutTradeNo, err))
		return
	}
	// The order's workflow has ended (or never ran): money for an order that
	// no longer waits for it is returned by a workflow of its own.
	row, err := s.Store.GetOrder(ctx, notice.OutTradeNo)
	if errors.Is(err, store.ErrNotFound) {
		log.Warn("payment for unknown order")
		s.notifyOK(c, n.EventType, "unknown_order")
		return
	}
	if err != nil {
		s.notifyFail(c, n.EventType, "failed_database", http.StatusInternalServerError, "temporarily unavailable", err)
		return
	}
	reason := fmt.Sprintf("order %s has ended (%s)", row.OrderNo, row.Status)
	_, err = s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        workflows.StrayPaymentWorkflowID(notice.TransactionID),
		TaskQueue: s.TaskQueue,
		// Repeated notifies of one transaction start it once.
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes:    temporal.NewSearchAttributes(workflows.AttrOrderNo.ValueSet(row.OrderNo)),
		StaticSummary:            fmt.Sprintf("Stray payment %s · %s for order %s", notice.TransactionID, yuan(notice.PayerTotalFen), row.OrderNo),
		StaticDetails:            "WeChat reported this payment after its order had ended: " + reason + ". The money is examined and returned unless the order keeps it.",
	}, workflows.StrayPaymentWorkflowName, workflows.StrayPaymentInput{Payment: notice, Reason: reason})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		s.notifyTemporalFailed(c, n.EventType, workflows.StrayPaymentWorkflowName, row.OrderNo, fmt.Errorf("start stray payment workflow for %s: %w", notice.TransactionID, err))
		return
	}
	log.Warn("payment for an ended order: stray payment workflow started", "order_status", row.Status,
		"workflow_id", workflows.StrayPaymentWorkflowID(notice.TransactionID))
	s.notifyOK(c, n.EventType, "stray_started")
}

func (s *server) notifyRefund(ctx context.Context, c *gin.Context, n wxpay.Notification) {
	r := n.Refund
	notice := workflows.RefundNotice{
		OutRefundNo:   r.OutRefundNo,
		RefundID:      r.RefundID,
		OutTradeNo:    r.OutTradeNo,
		TransactionID: r.TransactionID,
		Status:        status.Refund(r.RefundStatus),
		RefundFen:     r.RefundFen,
		SuccessTime:   r.SuccessTime,
		Source:        "notify",
	}
	log := s.Logger.With("request_id", c.GetString(ctxRequestID), "notify_id", n.ID, "event_type", n.EventType,
		"out_trade_no", notice.OutTradeNo, "out_refund_no", notice.OutRefundNo, "refund_status", notice.Status)
	var workflowID string
	switch {
	case notice.TransactionID != "" && notice.OutRefundNo == workflows.StrayRefundNo(notice.TransactionID):
		workflowID = workflows.StrayPaymentWorkflowID(notice.TransactionID)
	case validOrderNo(notice.OutTradeNo):
		workflowID = workflows.WorkflowID(notice.OutTradeNo)
	default:
		log.Warn("refund for unknown order")
		s.notifyOK(c, n.EventType, "unknown_order")
		return
	}
	err := s.Temporal.SignalWorkflow(ctx, workflowID, "", workflows.SignalRefund, notice)
	switch {
	case err == nil:
		log.Info("refund result signalled", "workflow_id", workflowID)
		s.notifyOK(c, n.EventType, "accepted")
	case workflowEnded(err):
		// The workflow settled the refund by query already (or never asked
		// for it): nothing waits for this answer.
		log.Info("refund result for an ended workflow: acknowledged", "workflow_id", workflowID)
		s.notifyOK(c, n.EventType, "ended")
	default:
		s.notifyTemporalFailed(c, n.EventType, workflows.SignalRefund, notice.OutTradeNo, fmt.Errorf("signal refund to %s: %w", workflowID, err))
	}
}

func (s *server) notifyOK(c *gin.Context, event, outcome string) {
	s.countNotify(event, outcome)
	c.Status(http.StatusNoContent)
}

// notifyRefuse answers a callback that will never be accepted (4xx).
func (s *server) notifyRefuse(c *gin.Context, event, outcome string, status int, message string, cause error) {
	s.countNotify(event, outcome)
	s.Logger.Warn("wechatpay notify refused", "request_id", c.GetString(ctxRequestID), "reason", outcome,
		"status", status, "error", cause.Error(), "remote_addr", c.ClientIP())
	c.AbortWithStatusJSON(status, notifyAnswer{Code: "FAIL", Message: message})
}

// notifyFail answers a callback that could not be taken now (5xx): WeChat
// retries it.
func (s *server) notifyFail(c *gin.Context, event, outcome string, status int, message string, cause error) {
	s.countNotify(event, outcome)
	_ = c.Error(cause)
	c.AbortWithStatusJSON(status, notifyAnswer{Code: "FAIL", Message: message})
}

// notifyTemporalFailed answers a callback Temporal did not take with 500, so
// that WeChat retries (for about a day): a workflow that reached its limit
// on signals takes the retry once an operator raised it.
func (s *server) notifyTemporalFailed(c *gin.Context, event, op, orderNo string, err error) {
	outcome := "failed_temporal"
	if limit := temporalLimit(err); limit != "" {
		outcome = "failed_limit"
		s.countTemporalLimit(c, op, limit, orderNo, err)
	} else if !temporalUnavailable(err) {
		outcome = "failed_other"
	}
	s.notifyFail(c, event, outcome, http.StatusInternalServerError, "temporarily unavailable; retry later", err)
}

func (s *server) countNotify(event, outcome string) {
	switch event {
	case wxpay.EventTransactionSuccess, wxpay.EventRefundSuccess, wxpay.EventRefundAbnormal, wxpay.EventRefundClosed:
	case "":
		event = "unverified"
	default:
		event = "other" // bounded label values whatever WeChat adds
	}
	s.notifies.WithLabelValues(event, outcome).Inc()
}

// replayGuard remembers the verified callbacks of the last 10 minutes (twice
// the timestamp window Parse accepts) by what their signature covers. A
// copy of one is a replay; older copies fail Parse as stale. It is per
// process: behind several API replicas a replay may reach another one, where
// the workflow's deduplication by transaction_id keeps it harmless.
type replayGuard struct {
	mu    sync.Mutex
	now   func() time.Time
	seen  map[[32]byte]time.Time
	order [][32]byte // insertion order, for expiry
}

// At most replayCapacity callbacks are remembered (a few MB); past that the
// oldest are forgotten early.
const (
	replayWindow   = 10 * time.Minute
	replayCapacity = 100_000
)

func newReplayGuard(now func() time.Time) *replayGuard {
	return &replayGuard{now: now, seen: map[[32]byte]time.Time{}}
}

// first records the callback's wxpay.Notification.ReplayKey and reports
// whether it is the first of its kind.
func (g *replayGuard) first(key [32]byte) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for len(g.order) > 0 && (len(g.order) >= replayCapacity || now.Sub(g.seen[g.order[0]]) > replayWindow) {
		delete(g.seen, g.order[0])
		g.order = g.order[1:]
	}
	if _, dup := g.seen[key]; dup {
		return false
	}
	g.seen[key] = now
	g.order = append(g.order, key)
	return true
}

// forget drops a key recorded by first: the callback it stood for was not
// taken (answered 5xx), so WeChat's retry of the same bytes must pass.
func (g *replayGuard) forget(key [32]byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.seen, key) // its place in order expires with the others
}

func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s¥%d.%02d", sign, fen/100, fen%100)
}
