package paysim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const maxRequestBody = 1 << 20

// reply is an API v3 answer before signing.
type reply struct {
	status int
	body   []byte // empty for 204
}

func jsonReply(status int, v any) reply {
	b, err := json.Marshal(v)
	if err != nil {
		return errReply(http.StatusInternalServerError, "SYSTEM_ERROR", "paysim: "+err.Error())
	}
	return reply{status: status, body: b}
}

func errReply(status int, code, message string) reply {
	return jsonReply(status, map[string]string{"code": code, "message": message})
}

type apiHandler func(r *http.Request, body []byte) reply

// v3 wraps an API v3 endpoint: endpoint faults, request signature
// verification, and a signed answer.
func (s *Sim) v3(name string, h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f := s.takeEndpointFault(name)
		if f != nil && f.DelayMS > 0 {
			if !s.waitRequest(r.Context(), time.Duration(f.DelayMS)*time.Millisecond) {
				return
			}
		}
		if f != nil && f.Status != 0 && !f.After {
			s.log.Info("paysim: injected fault", "endpoint", name, "status", f.Status)
			s.writeReply(w, f.reply(), false)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			s.writeReply(w, errReply(http.StatusBadRequest, "PARAM_ERROR", "body too large or unreadable"), false)
			return
		}
		rep, ok := s.verifyRequest(r, body)
		if ok {
			rep = h(r, body)
		}
		if f != nil && f.Status != 0 && f.After {
			s.log.Info("paysim: injected fault after processing", "endpoint", name, "status", f.Status, "real_status", rep.status)
			s.writeReply(w, f.reply(), false)
			return
		}
		s.writeReply(w, rep, f != nil && f.BadSignature)
	}
}

// waitRequest sleeps d unless the client goes away or the simulator closes.
func (s *Sim) waitRequest(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.ctx.Done():
		return false
	}
}

// verifyRequest checks the merchant's Authorization header: scheme, mchid,
// certificate serial, timestamp (±5 min) and SHA256withRSA signature over
// "METHOD\nURI\nTIMESTAMP\nNONCE\nBODY\n".
func (s *Sim) verifyRequest(r *http.Request, body []byte) (reply, bool) {
	a, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return errReply(http.StatusUnauthorized, "SIGN_ERROR", "签名错误: "+err.Error()), false
	}
	if a.mchID != s.opts.MchID {
		return errReply(http.StatusUnauthorized, "SIGN_ERROR", "签名错误: mchid in Authorization is not this merchant"), false
	}
	if a.serial != s.opts.MerchantCertSerial {
		return errReply(http.StatusUnauthorized, "SIGN_ERROR", "签名错误: serial_no is not the merchant certificate's serial"), false
	}
	ts, err := strconv.ParseInt(a.timestamp, 10, 64)
	if err != nil {
		return errReply(http.StatusUnauthorized, "SIGN_ERROR", "签名错误: timestamp is not a number"), false
	}
	if d := s.now().Sub(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errReply(http.StatusUnauthorized, "SIGN_ERROR", "签名错误: timestamp is more than 5 minutes away"), false
	}
	msg := r.Method + "\n" + r.RequestURI + "\n" + a.timestamp + "\n" + a.nonce + "\n" + string(body) + "\n"
	if s.opts.MerchantPublicKey == nil || verifySHA256(s.opts.MerchantPublicKey, msg, a.signature) != nil {
		s.log.Info("paysim: refused request signature", "method", r.Method, "uri", r.URL.Path)
		return errReply(http.StatusUnauthorized, "SIGN_ERROR", "签名错误: signature does not verify with the merchant key"), false
	}
	if ws := r.Header.Get("Wechatpay-Serial"); ws != "" && ws != s.opts.PublicKeyID {
		return errReply(http.StatusBadRequest, "INVALID_REQUEST", "Wechatpay-Serial is not a known WeChat Pay public key id"), false
	}
	return reply{}, true
}

// writeReply signs and writes an answer (every status, including 204:
// WeChat Pay public-key mode). corrupt flips a signature byte (fault).
func (s *Sim) writeReply(w http.ResponseWriter, rep reply, corrupt bool) {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	nonce := randString(32)
	sig, err := signSHA256(s.opts.PlatformPrivateKey, ts+"\n"+nonce+"\n"+string(rep.body)+"\n")
	if err != nil {
		http.Error(w, `{"code":"SYSTEM_ERROR","message":"paysim cannot sign"}`, http.StatusInternalServerError)
		return
	}
	if corrupt {
		sig = flipSignature(sig)
	}
	h := w.Header()
	h.Set("Request-Id", randHex(32))
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Serial", s.opts.PublicKeyID)
	h.Set("Wechatpay-Signature", sig)
	h.Set("Wechatpay-Signature-Type", authScheme)
	if len(rep.body) > 0 {
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(rep.body)))
	}
	w.WriteHeader(rep.status)
	if len(rep.body) > 0 {
		_, _ = w.Write(rep.body)
	}
}

// ---- JSAPI prepay ----

type prepayBody struct {
	AppID       string `json:"appid"`
	MchID       string `json:"mchid"`
	Description string `json:"description"`
	OutTradeNo  string `json:"out_trade_no"`
	TimeExpire  string `json:"time_expire"`
	Attach      string `json:"attach"`
	NotifyURL   string `json:"notify_url"`
	Amount      *struct {
		Total    *int64 `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
	Payer *struct {
		OpenID string `json:"openid"`
	} `json:"payer"`
}

// WeChat Pay's limits on text fields, in UTF-8 bytes: its validator counts
// bytes, not characters, so a Chinese character is 3 of them.
const (
	maxDescriptionBytes  = 127
	maxAttachBytes       = 128
	maxRefundReasonBytes = 80
)

// byteLimitReply is WeChat's PARAM_ERROR for a text field longer than its
// limit, naming the field and counting bytes as WeChat does.
func byteLimitReply(field string, value string, limit int) (reply, bool) {
	if len(value) <= limit {
		return reply{}, true
	}
	return errReply(http.StatusBadRequest, "PARAM_ERROR", fmt.Sprintf(
		"输入源“/body/%s”映射到值字段“%s”字符串规则校验失败，字节数 %d，大于最大值 %d", field, field, len(value), limit)), false
}

// merchantNoChars are the characters of out_trade_no and out_refund_no.
func merchantNoChars(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-' || r == '*') {
			return false
		}
	}
	return true
}

// validOutTradeNo: 6–32 of [0-9A-Za-z_-*].
func validOutTradeNo(s string) bool {
	return len(s) >= 6 && len(s) <= 32 && merchantNoChars(s)
}

// validOutRefundNo: 1–64 of the same characters.
func validOutRefundNo(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && merchantNoChars(s)
}

func validNotifyURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.RawQuery == ""
}

func (s *Sim) handlePrepay(r *http.Request, body []byte) reply {
	var in prepayBody
	if err := json.Unmarshal(body, &in); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "输入源“/body”映射到值字段失败: "+err.Error())
	}
	switch {
	case in.AppID == "":
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "缺少参数 appid")
	case in.MchID != s.opts.MchID:
		return errReply(http.StatusBadRequest, "MCH_NOT_EXISTS", "商户号不存在或与签名商户号不一致")
	case in.AppID != s.opts.AppID:
		return errReply(http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
	case !validOutTradeNo(in.OutTradeNo):
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "out_trade_no 须为6-32位数字、大小写字母或_-*")
	case strings.TrimSpace(in.Description) == "":
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "缺少参数 description")
	}
	for _, f := range []struct {
		name, value string
		limit       int
	}{{"description", in.Description, maxDescriptionBytes}, {"attach", in.Attach, maxAttachBytes}} {
		if rep, ok := byteLimitReply(f.name, f.value, f.limit); !ok {
			return rep
		}
	}
	switch {
	case !validNotifyURL(in.NotifyURL):
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "notify_url 须为不带参数的绝对URL")
	case in.Amount == nil || in.Amount.Total == nil || *in.Amount.Total <= 0:
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "amount.total 须大于0")
	case in.Amount.Currency != "" && in.Amount.Currency != "CNY":
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "amount.currency 仅支持CNY")
	case in.Payer == nil || strings.TrimSpace(in.Payer.OpenID) == "":
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "JSAPI下单须传payer.openid")
	}
	now := s.now()
	var expire time.Time
	if in.TimeExpire != "" {
		t, err := time.Parse(time.RFC3339, in.TimeExpire)
		if err != nil || strings.Contains(in.TimeExpire, ".") {
			return errReply(http.StatusBadRequest, "PARAM_ERROR", "time_expire 格式须为yyyy-MM-DDTHH:mm:ss+TIMEZONE")
		}
		if !t.After(now) {
			return errReply(http.StatusBadRequest, "PARAM_ERROR", "time_expire 早于当前时间")
		}
		expire = t
	}
	total := *in.Amount.Total

	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.txs[in.OutTradeNo]; t != nil {
		s.expireLocked(t, now)
		switch t.state {
		case StateClosed:
			t.event(now, "prepay refused: order closed")
			return errReply(http.StatusBadRequest, "ORDER_CLOSED", "订单已关闭")
		case StateSuccess, StateRefund:
			t.event(now, "prepay refused: order paid")
			return errReply(http.StatusForbidden, CodeOrderPaid, "该订单已支付")
		}
		if t.appID != in.AppID || t.total != total || t.openID != in.Payer.OpenID || t.description != in.Description {
			t.event(now, "prepay refused: same out_trade_no, different parameters")
			return errReply(http.StatusForbidden, "OUT_TRADE_NO_USED", "商户订单号重复")
		}
		t.event(now, "prepay repeated: same prepay_id")
		return jsonReply(http.StatusOK, map[string]string{"prepay_id": t.prepayID})
	}
	t := &txn{
		appID:       in.AppID,
		mchID:       in.MchID,
		outTradeNo:  in.OutTradeNo,
		description: in.Description,
		attach:      in.Attach,
		notifyURL:   in.NotifyURL,
		openID:      in.Payer.OpenID,
		total:       total,
		timeExpire:  expire,
		prepayID:    newPrepayID(now),
		state:       StateNotPay,
		stateDesc:   "订单未支付",
		createdAt:   now,
	}
	if expire.IsZero() {
		t.event(now, "prepay %s, %d fen, no time_expire", t.prepayID, total)
	} else {
		t.event(now, "prepay %s, %d fen, time_expire %s", t.prepayID, total, fmtTime(expire))
	}
	s.txs[t.outTradeNo] = t
	s.log.Info("paysim: prepay", "out_trade_no", t.outTradeNo, "total_fen", total, "prepay_id", t.prepayID)
	return jsonReply(http.StatusOK, map[string]string{"prepay_id": t.prepayID})
}

// ---- query ----

type txAmountJSON struct {
	Total         int64  `json:"total"`
	PayerTotal    *int64 `json:"payer_total,omitempty"`
	Currency      string `json:"currency"`
	PayerCurrency string `json:"payer_currency"`
}

type txPayerJSON struct {
	OpenID string `json:"openid"`
}

type txJSON struct {
	AppID          string       `json:"appid"`
	MchID          string       `json:"mchid"`
	OutTradeNo     string       `json:"out_trade_no"`
	TransactionID  string       `json:"transaction_id,omitempty"`
	TradeType      string       `json:"trade_type,omitempty"`
	TradeState     string       `json:"trade_state"`
	TradeStateDesc string       `json:"trade_state_desc"`
	BankType       string       `json:"bank_type,omitempty"`
	Attach         string       `json:"attach"`
	SuccessTime    string       `json:"success_time,omitempty"`
	Payer          txPayerJSON  `json:"payer"`
	Amount         txAmountJSON `json:"amount"`
}

func (s *Sim) transactionJSON(t *txn) txJSON {
	j := txJSON{
		AppID:          t.appID,
		MchID:          t.mchID,
		OutTradeNo:     t.outTradeNo,
		TradeState:     t.state,
		TradeStateDesc: t.stateDesc,
		Attach:         t.attach,
		Payer:          txPayerJSON{OpenID: t.openID},
		Amount:         txAmountJSON{Total: t.total, Currency: "CNY", PayerCurrency: "CNY"},
	}
	if t.transactionID != "" {
		paid := t.total
		j.TransactionID = t.transactionID
		j.TradeType = "JSAPI"
		j.BankType = "OTHERS"
		j.SuccessTime = fmtTime(t.successTime)
		j.Amount.PayerTotal = &paid
	}
	return j
}

func (s *Sim) checkMchIDQuery(r *http.Request) (reply, bool) {
	switch m := r.URL.Query().Get("mchid"); {
	case m == "":
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "缺少参数 mchid"), false
	case m != s.opts.MchID:
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "mchid 与签名商户号不一致"), false
	}
	return reply{}, true
}

func (s *Sim) handleQueryByOutTradeNo(r *http.Request, _ []byte) reply {
	if rep, ok := s.checkMchIDQuery(r); !ok {
		return rep
	}
	no := r.PathValue("out_trade_no")
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.txs[no]
	if t == nil {
		return errReply(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
	}
	s.expireLocked(t, s.now())
	return jsonReply(http.StatusOK, s.transactionJSON(t))
}

func (s *Sim) handleQueryByID(r *http.Request, _ []byte) reply {
	if rep, ok := s.checkMchIDQuery(r); !ok {
		return rep
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.byTxID[r.PathValue("transaction_id")]
	if t == nil {
		return errReply(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
	}
	return jsonReply(http.StatusOK, s.transactionJSON(t))
}

// ---- close ----

func (s *Sim) handleClose(r *http.Request, body []byte) reply {
	var in struct {
		MchID string `json:"mchid"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "body 不是合法的JSON")
	}
	if in.MchID != s.opts.MchID {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "mchid 与签名商户号不一致")
	}
	no := r.PathValue("out_trade_no")
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.txs[no]
	if t == nil {
		// Reported behaviour: closing an unknown order answers 204.
		return reply{status: http.StatusNoContent}
	}
	s.expireLocked(t, now)
	if t.payOnClose {
		s.payLocked(t, now.Add(-time.Second), "a moment before close")
	}
	switch t.state {
	case StateSuccess, StateRefund:
		if s.closeOnPaid == CloseOK204 {
			t.event(now, "close of a paid order answered 204 (order stays %s)", t.state)
			return reply{status: http.StatusNoContent}
		}
		t.event(now, "close of a paid order refused: %s", CodeOrderPaid)
		return errReply(http.StatusBadRequest, CodeOrderPaid, "订单已支付")
	case StateClosed:
		t.event(now, "close repeated (already closed)")
		return reply{status: http.StatusNoContent}
	default:
		t.state, t.stateDesc = StateClosed, "订单已关闭"
		t.closedAt = now
		t.event(now, "closed by the merchant")
		s.log.Info("paysim: closed", "out_trade_no", no)
		return reply{status: http.StatusNoContent}
	}
}

// ---- refunds ----

type refundBody struct {
	SubMchID      string `json:"sub_mchid"`
	TransactionID string `json:"transaction_id"`
	OutTradeNo    string `json:"out_trade_no"`
	OutRefundNo   string `json:"out_refund_no"`
	Reason        string `json:"reason"`
	NotifyURL     string `json:"notify_url"`
	Amount        *struct {
		Refund   *int64 `json:"refund"`
		Total    *int64 `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
	GoodsDetail []RefundGoods `json:"goods_detail"`
}

type refundAmountJSON struct {
	Total            int64  `json:"total"`
	Refund           int64  `json:"refund"`
	From             []any  `json:"from"`
	PayerTotal       int64  `json:"payer_total"`
	PayerRefund      int64  `json:"payer_refund"`
	SettlementRefund int64  `json:"settlement_refund"`
	SettlementTotal  int64  `json:"settlement_total"`
	DiscountRefund   int64  `json:"discount_refund"`
	Currency         string `json:"currency"`
}

type refundJSON struct {
	RefundID            string           `json:"refund_id"`
	OutRefundNo         string           `json:"out_refund_no"`
	TransactionID       string           `json:"transaction_id"`
	OutTradeNo          string           `json:"out_trade_no"`
	Channel             string           `json:"channel"`
	UserReceivedAccount string           `json:"user_received_account"`
	SuccessTime         string           `json:"success_time,omitempty"`
	CreateTime          string           `json:"create_time"`
	Status              string           `json:"status"`
	FundsAccount        string           `json:"funds_account"`
	Amount              refundAmountJSON `json:"amount"`
	PromotionDetail     []any            `json:"promotion_detail"`
}

func (s *Sim) refundJSON(r *refundRec) refundJSON {
	j := refundJSON{
		RefundID:            r.refundID,
		OutRefundNo:         r.outRefundNo,
		TransactionID:       r.tx.transactionID,
		OutTradeNo:          r.tx.outTradeNo,
		Channel:             "ORIGINAL",
		UserReceivedAccount: "支付用户零钱",
		CreateTime:          fmtTime(r.createTime),
		Status:              r.status,
		FundsAccount:        "AVAILABLE",
		Amount: refundAmountJSON{
			Total: r.total, Refund: r.refund, From: []any{},
			PayerTotal: r.total, PayerRefund: r.refund,
			SettlementRefund: r.refund, SettlementTotal: r.total,
			Currency: "CNY",
		},
		PromotionDetail: []any{},
	}
	if !r.successTime.IsZero() {
		j.SuccessTime = fmtTime(r.successTime)
	}
	return j
}

type refundNotifyJSON struct {
	MchID               string `json:"mchid"`
	OutTradeNo          string `json:"out_trade_no"`
	TransactionID       string `json:"transaction_id"`
	OutRefundNo         string `json:"out_refund_no"`
	RefundID            string `json:"refund_id"`
	RefundStatus        string `json:"refund_status"`
	SuccessTime         string `json:"success_time,omitempty"`
	UserReceivedAccount string `json:"user_received_account"`
	Amount              struct {
		Total       int64 `json:"total"`
		Refund      int64 `json:"refund"`
		PayerTotal  int64 `json:"payer_total"`
		PayerRefund int64 `json:"payer_refund"`
	} `json:"amount"`
}

func (s *Sim) refundNotifyJSON(r *refundRec) refundNotifyJSON {
	j := refundNotifyJSON{
		MchID:               r.tx.mchID,
		OutTradeNo:          r.tx.outTradeNo,
		TransactionID:       r.tx.transactionID,
		OutRefundNo:         r.outRefundNo,
		RefundID:            r.refundID,
		RefundStatus:        r.status,
		UserReceivedAccount: "支付用户零钱",
	}
	if !r.successTime.IsZero() {
		j.SuccessTime = fmtTime(r.successTime)
	}
	j.Amount.Total, j.Amount.Refund = r.total, r.refund
	j.Amount.PayerTotal, j.Amount.PayerRefund = r.total, r.refund
	return j
}

func (s *Sim) handleRefundCreate(_ *http.Request, body []byte) reply {
	var in refundBody
	if err := json.Unmarshal(body, &in); err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "输入源“/body”映射到值字段失败: "+err.Error())
	}
	switch {
	case !validOutRefundNo(in.OutRefundNo):
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "out_refund_no 须为1-64位数字、大小写字母或_-*")
	case in.TransactionID == "" && in.OutTradeNo == "":
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "transaction_id 和 out_trade_no 须至少传一个")
	case in.Amount == nil || in.Amount.Refund == nil || in.Amount.Total == nil:
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "缺少参数 amount.refund 或 amount.total")
	case *in.Amount.Refund <= 0 || *in.Amount.Total <= 0:
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "退款金额和原订单金额须大于0")
	case in.Amount.Currency != "CNY":
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "amount.currency 须为CNY")
	case in.NotifyURL != "" && !validNotifyURL(in.NotifyURL):
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "notify_url 须为不带参数的绝对URL")
	}
	if rep, ok := byteLimitReply("reason", in.Reason, maxRefundReasonBytes); !ok {
		return rep
	}
	if rep, ok := goodsDetailReply(in.GoodsDetail, *in.Amount.Refund); !ok {
		return rep
	}
	refund, total := *in.Amount.Refund, *in.Amount.Total
	now := s.now()

	s.mu.Lock()
	defer s.mu.Unlock()
	var t *txn
	if in.TransactionID != "" {
		t = s.byTxID[in.TransactionID]
		if t != nil && in.OutTradeNo != "" && t.outTradeNo != in.OutTradeNo {
			return errReply(http.StatusBadRequest, "PARAM_ERROR", "transaction_id 与 out_trade_no 不匹配")
		}
	} else {
		t = s.txs[in.OutTradeNo]
	}
	if t == nil {
		return errReply(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "订单不存在")
	}
	s.expireLocked(t, now)
	if r := s.refunds[in.OutRefundNo]; r != nil {
		if r.tx != t || r.refund != refund || r.total != total || !slices.Equal(r.goods, in.GoodsDetail) {
			return errReply(http.StatusBadRequest, "INVALID_REQUEST", "退款单号已存在，但请求参数与原请求不一致")
		}
		s.settleDueLocked(r, now)
		t.event(now, "refund %s repeated: same refund", r.outRefundNo)
		return jsonReply(http.StatusOK, s.refundJSON(r))
	}
	switch t.state {
	case StateSuccess, StateRefund:
	case StateClosed:
		return errReply(http.StatusBadRequest, "INVALID_REQUEST", "订单已关闭，不能退款")
	default:
		return errReply(http.StatusBadRequest, "INVALID_REQUEST", "订单未支付，不能退款")
	}
	if total != t.total {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", fmt.Sprintf("amount.total %d 与原订单金额 %d 不一致", total, t.total))
	}
	if left := refundableLocked(t); refund > left {
		t.event(now, "refund %s of %d fen refused: only %d fen refundable", in.OutRefundNo, refund, left)
		return errReply(http.StatusBadRequest, "INVALID_REQUEST", fmt.Sprintf("申请退款金额超过订单可退金额(可退 %d 分)", left))
	}
	if len(t.refunds) >= MaxRefunds {
		t.event(now, "refund %s refused: the transaction has %d refunds already", in.OutRefundNo, len(t.refunds))
		return errReply(http.StatusBadRequest, "INVALID_REQUEST", fmt.Sprintf("订单退款次数已达上限(%d次)", MaxRefunds))
	}
	// WeChat's minute between two refunds of one transaction, in real
	// time; the same out_refund_no asked again (above) is never limited.
	if real := time.Now(); s.refundInterval > 0 && !t.lastRefundAt.IsZero() && real.Sub(t.lastRefundAt) < s.refundInterval {
		t.event(now, "refund %s refused: FREQUENCY_LIMITED (%s after the last refund)", in.OutRefundNo, real.Sub(t.lastRefundAt).Round(time.Millisecond))
		return errReply(http.StatusTooManyRequests, "FREQUENCY_LIMITED", "频率限制，同一笔订单的退款申请请间隔1分钟")
	}
	t.lastRefundAt = time.Now()
	r := &refundRec{
		tx:          t,
		outRefundNo: in.OutRefundNo,
		refundID:    newRefundID(now),
		reason:      in.Reason,
		notifyURL:   in.NotifyURL,
		refund:      refund,
		total:       total,
		status:      RefundProcessing,
		createTime:  now,
		forceStatus: s.takeRefundFault(),
		goods:       slices.Clone(in.GoodsDetail),
	}
	what := fmt.Sprintf("refund %s of %d fen accepted (PROCESSING)", r.outRefundNo, refund)
	for _, g := range r.goods {
		what += fmt.Sprintf("; goods %s ×%d at %d fen", g.MerchantGoodsID, g.RefundQuantity, g.UnitPrice)
	}
	s.acceptRefundLocked(r, now, what)
	return jsonReply(http.StatusOK, s.refundJSON(r))
}

// goodsDetailReply checks a refund's goods_detail as WeChat does: each line
// names the merchant's goods, a unit price, a quantity and its refund
// amount (at most unit price × quantity), and the amounts add up to
// amount.refund. No goods_detail is fine.
func goodsDetailReply(goods []RefundGoods, refund int64) (reply, bool) {
	if len(goods) == 0 {
		return reply{}, true
	}
	var sum int64
	for i, g := range goods {
		switch {
		case g.MerchantGoodsID == "" || len(g.MerchantGoodsID) > 32:
			return errReply(http.StatusBadRequest, "PARAM_ERROR", fmt.Sprintf("goods_detail[%d].merchant_goods_id 须为1-32个字符", i)), false
		case g.UnitPrice < 0 || g.RefundQuantity <= 0 || g.RefundAmount <= 0:
			return errReply(http.StatusBadRequest, "PARAM_ERROR", fmt.Sprintf("goods_detail[%d] 单价、退款金额或退货数量不合法", i)), false
		case g.RefundAmount > g.UnitPrice*g.RefundQuantity:
			return errReply(http.StatusBadRequest, "PARAM_ERROR", fmt.Sprintf("goods_detail[%d].refund_amount %d 超过 unit_price×refund_quantity", i, g.RefundAmount)), false
		}
		sum += g.RefundAmount
	}
	if sum != refund {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", fmt.Sprintf("goods_detail 退款金额之和 %d 与 amount.refund %d 不一致", sum, refund)), false
	}
	return reply{}, true
}

func (s *Sim) handleRefundQuery(r *http.Request, _ []byte) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.refunds[r.PathValue("out_refund_no")]
	if rec == nil {
		return errReply(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "退款单不存在")
	}
	s.settleDueLocked(rec, s.now())
	return jsonReply(http.StatusOK, s.refundJSON(rec))
}
