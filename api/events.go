package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"ordersaga/internal/wxapp"
	"ordersaga/workflows"
)

// WeChat's message push (消息推送) of the mini-program, security mode:
// GET /v1/wechat/events is the console's URL check, POST the events. A
// verified, decrypted shipping-management event becomes a signal to the
// order's workflow, as the Pay notify's payments do: the buyer confirmed
// receipt (trade_manage_order_settlement) and WeChat's reminder to ship
// (trade_manage_remind_shipping). Forged, stale, foreign-appid and
// replayed pushes are refused (401) and change nothing; other events are
// acknowledged and logged. WeChat wants "success" within 5 s and retries
// otherwise: the answer is "success" once Temporal took the signal (or
// there was nothing to signal), 500 when it did not.

// wechatEventsCheck answers the console's URL check with echostr.
func (s *server) wechatEventsCheck(c *gin.Context) {
	if !s.pushConfigured(c) {
		return
	}
	echo, err := s.Push.CheckURL(c.Request.URL.Query())
	if err != nil {
		s.eventRefused(c, "", "refused_signature", http.StatusUnauthorized, "signature not verified", err)
		return
	}
	s.countEvent("url_check", "accepted")
	c.String(http.StatusOK, "%s", echo)
}

func (s *server) pushConfigured(c *gin.Context) bool {
	if s.Push == nil {
		s.countEvent("", "refused_unconfigured")
		abortError(c, http.StatusNotFound, CodeNotFound, "message push is not configured on this server (WECHAT_PUSH_TOKEN, WECHAT_PUSH_AES_KEY)")
		return false
	}
	return true
}

// wechatEvents takes one push.
func (s *server) wechatEvents(c *gin.Context) {
	if !s.pushConfigured(c) {
		return
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		s.eventRefused(c, "", "refused_body", http.StatusBadRequest, "body could not be read", err)
		return
	}
	msg, err := s.Push.Open(c.Request.URL.Query(), body)
	switch {
	case errors.Is(err, wxapp.ErrPushSignature):
		s.eventRefused(c, "", "refused_signature", http.StatusUnauthorized, "msg_signature not verified", err)
		return
	case errors.Is(err, wxapp.ErrPushStale):
		// Old or ahead: either way not a push WeChat is sending now.
		s.eventRefused(c, "", "refused_stale", http.StatusUnauthorized,
			fmt.Sprintf("timestamp not within %s of the server's clock", wxapp.PushWindow), err)
		return
	case errors.Is(err, wxapp.ErrPushForeignApp):
		s.eventRefused(c, "", "refused_appid", http.StatusUnauthorized, "not this mini-program's message", err)
		return
	case err != nil:
		s.eventRefused(c, "", "refused_body", http.StatusBadRequest, "body malformed or not decryptable", err)
		return
	}
	// A verified push seen before is a replay: keyed on what its signature
	// covers. A push that failed here (5xx) is forgotten, so WeChat's
	// retry of it gets through.
	if !s.pushReplays.first(msg.ReplayKey) {
		s.eventRefused(c, "", "refused_replay", http.StatusUnauthorized, "message replayed", errors.New("replayed push (same timestamp, nonce and Encrypt)"))
		return
	}
	var ev wxapp.Event
	if err := json.Unmarshal(msg.Plain, &ev); err != nil {
		s.eventRefused(c, "", "refused_body", http.StatusBadRequest, "message is not JSON", err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), notifyTemporalBudget)
	defer cancel()
	switch ev.Event {
	case wxapp.EventOrderSettlement, wxapp.EventRemindShipping:
		if !s.shippingEvent(ctx, c, ev) {
			s.pushReplays.forget(msg.ReplayKey)
		}
	default:
		s.Logger.Info("wechat event ignored", "request_id", c.GetString(ctxRequestID), "msg_type", ev.MsgType, "event", ev.Event)
		s.eventOK(c, "message:"+ev.MsgType+":"+ev.Event, "ignored") // counted as "other"
	}
}

// shippingEvent signals a shipping-management event to its order's
// workflow; false when it could not be taken now (answered 500).
func (s *server) shippingEvent(ctx context.Context, c *gin.Context, ev wxapp.Event) bool {
	no := ev.MerchantTradeNo
	log := s.Logger.With("request_id", c.GetString(ctxRequestID), "event", ev.Event, "order_no", no,
		"workflow_id", workflows.WorkflowID(no), "transaction_id", ev.TransactionID)
	switch {
	case ev.TransactionID == "" || !validOrderNo(no):
		log.Warn("wechat event for no order of this shop: acknowledged")
		s.eventOK(c, ev.Event, "unknown_order")
		return true
	case s.MchID != "" && ev.MerchantID != "" && ev.MerchantID != s.MchID:
		// Another merchant bound to the same mini-program: not our payment.
		log.Warn("wechat event of another merchant: acknowledged", "merchant_id", ev.MerchantID)
		s.eventOK(c, ev.Event, "other_merchant")
		return true
	}
	signal := workflows.WechatEvent{Event: ev.Event, TransactionID: ev.TransactionID, ConfirmReceiveMethod: ev.ConfirmReceiveMethod,
		ConfirmReceiveTime: unixTime(ev.ConfirmReceiveTime), SettlementTime: unixTime(ev.SettlementTime)}
	err := s.Temporal.SignalWorkflow(ctx, workflows.WorkflowID(no), "", workflows.SignalWechatEvent, signal)
	switch {
	case err == nil:
		log.Info("wechat event signalled to the order")
		s.eventOK(c, ev.Event, "accepted")
		return true
	case workflowEnded(err):
		// The order ended (completed by an earlier copy, by WeChat asked, or
		// refunded) or was never this shop's: nothing waits for it.
		log.Info("wechat event for an ended or unknown order: acknowledged")
		s.eventOK(c, ev.Event, "ended")
		return true
	}
	outcome := "failed_temporal"
	if limit := temporalLimit(err); limit != "" {
		outcome = "failed_limit"
		s.countTemporalLimit(c, workflows.SignalWechatEvent, limit, no, err)
	}
	s.countEvent(ev.Event, outcome)
	_ = c.Error(fmt.Errorf("signal %s to order %s: %w", ev.Event, no, err))
	abortError(c, http.StatusInternalServerError, CodeUnavailable, "temporarily unavailable; retry later")
	return false
}

func unixTime(sec int64) *time.Time {
	if sec <= 0 {
		return nil
	}
	t := time.Unix(sec, 0).UTC()
	return &t
}

// eventOK answers WeChat's "success".
func (s *server) eventOK(c *gin.Context, event, outcome string) {
	s.countEvent(event, outcome)
	c.String(http.StatusOK, "success")
}

// eventRefused answers a push that will never be taken (4xx); the cause is
// logged, never the body.
func (s *server) eventRefused(c *gin.Context, event, outcome string, status int, message string, cause error) {
	s.countEvent(event, outcome)
	s.Logger.Warn("wechat event refused", "request_id", c.GetString(ctxRequestID), "reason", outcome,
		"status", status, "error", cause.Error(), "remote_addr", c.ClientIP())
	code := CodeUnauthenticated
	if status == http.StatusBadRequest {
		code = CodeInvalidArgument
	}
	abortError(c, status, code, message)
}

func (s *server) countEvent(event, outcome string) {
	switch event {
	case wxapp.EventOrderSettlement, wxapp.EventRemindShipping, "url_check":
	case "":
		event = "unverified"
	default:
		event = "other" // bounded label values whatever WeChat adds
	}
	s.events.WithLabelValues(event, outcome).Inc()
}
