package paysim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The mini-program server API WeChat offers a shop after the payment: the
// stable access token, and order shipping management (小程序发货信息管理).
// Every call but stable_token carries ?access_token=; every answer is HTTP
// 200 with {"errcode","errmsg",…}.

// Endpoint names of the mini-program server API (endpoint faults).
const (
	EndpointStableToken          = "stable_token"           // POST /cgi-bin/stable_token
	EndpointIsTradeManaged       = "is_trade_managed"       // POST /wxa/sec/order/is_trade_managed
	EndpointUploadShippingInfo   = "upload_shipping_info"   // POST /wxa/sec/order/upload_shipping_info
	EndpointGetOrder             = "get_order"              // POST /wxa/sec/order/get_order
	EndpointNotifyConfirmReceive = "notify_confirm_receive" // POST /wxa/sec/order/notify_confirm_receive
	EndpointSetMsgJumpPath       = "set_msg_jump_path"      // POST /wxa/sec/order/set_msg_jump_path
)

// wxaEndpoints answer WeChat's errcode JSON (as jscode2session does): their
// faults may set errcode.
var wxaEndpoints = map[string]bool{
	EndpointStableToken: true, EndpointIsTradeManaged: true, EndpointUploadShippingInfo: true,
	EndpointGetOrder: true, EndpointNotifyConfirmReceive: true, EndpointSetMsgJumpPath: true,
}

// Errcodes the simulator answers (as WeChat documents them; see
// WECHAT-PLATFORM.md §2–§3).
const (
	errcodeBusy              = -1
	errcodeInvalidCredential = 40001
	errcodeInvalidGrantType  = 40002
	errcodeInvalidAppID      = 40013
	errcodeInvalidSecret     = 40125
	errcodeMissingToken      = 41001
	errcodeTokenExpired      = 42001
	errcodeForceQuota        = 45009
	errcodeDataFormat        = 47001
	ErrcodePaymentNotFound   = 10060001 // 支付单不存在 (also: too fresh, see Settings.FreshPaymentMS)
	errcodeAlreadyShipped    = 10060002 // 支付单已完成发货 (receipt confirmed: no more uploads)
	ErrcodeReshipUsed        = 10060003 // 支付单已使用重新发货机会
	errcodeNotShippable      = 10060004 // 支付单处于不可发货的状态 (refunded)
	errcodeLogisticsType     = 10060005 // 物流类型有误
	errcodeSplitNotExpress   = 10060006 // 非快递发货时不允许分拆发货
	errcodeSplitNeedsAll     = 10060007 // 分拆发货模式下必须填写 is_all_delivered
	errcodeNoItemDesc        = 10060008 // 商品描述不能为空
	errcodeItemDescTooLong   = 10060009 // 商品描述超长
	errcodeBadParam          = 10060014 // 参数有误
	errcodeReminded          = 10060022 // 已提醒过 (the simulator's code: one reminder per order)
	errcodeListTooLong       = 10060024 // 物流信息列表过长
	errcodeNoExpressCompany  = 10060025 // 物流公司编码有误
	errcodeNoTrackingNo      = 10060026 // 物流单号有误
)

// Shipping order states (get_order order_state).
const (
	ShipToShip    = 1
	ShipShipped   = 2
	ShipConfirmed = 3
	ShipSettled   = 4
	ShipRefunded  = 5
)

var shipStateDesc = map[int]string{
	0: "not paid", ShipToShip: "待发货", ShipShipped: "已发货", ShipConfirmed: "确认收货",
	ShipSettled: "交易完成", ShipRefunded: "已退款",
}

// Defaults of the mini-program side.
const (
	// DefaultTokenTTL is WeChat's access token lifetime (expires_in 7200).
	DefaultTokenTTL = 2 * time.Hour
	// tokenRenewal: stable_token hands out a new token once the current one
	// has this little left.
	tokenRenewal = 5 * time.Minute
	// forceRefreshPerDay: force_refresh calls WeChat takes a day.
	forceRefreshPerDay = 20
	// pushRetries: WeChat retries a message push this many times after a
	// failed first attempt, pushRetryWait (× NotifyScale) apart.
	pushRetries   = 3
	pushRetryWait = 5 * time.Second
)

// wxaState is the mini-program side of the simulator. Guarded by Sim.mu.
type wxaState struct {
	token        string
	tokenExpires time.Time
	// The token handed out before the current one stays valid until its
	// own expiry (another process may still use it).
	prevToken   string
	prevExpires time.Time
	// refusedToken: revoked with keep_serving — the API refuses it, yet
	// stable_token without force_refresh still hands it out.
	refusedToken  string
	tokensIssued  int
	forceDay      string
	forceToday    int
	forceTotal    int
	managed       bool
	freshPayment  time.Duration
	autoConfirm   time.Duration
	settleDelay   time.Duration
	jumpPath      string
	pushURL       string
	pushFaults    PushFaults
	remindedCount int
}

// shipRec is WeChat's shipping view of one paid transaction.
type shipRec struct {
	uploads       []ShippingUpload
	reminded      time.Time
	confirmedAt   time.Time
	confirmMethod int // 1 the buyer, 2 WeChat by itself
	settledAt     time.Time
	pushes        []*pushRec
}

// ShippingUpload is one shipment WeChat took (upload_shipping_info).
type ShippingUpload struct {
	At             time.Time      `json:"at"`
	LogisticsType  int            `json:"logistics_type"`
	DeliveryMode   int            `json:"delivery_mode"`
	IsAllDelivered *bool          `json:"is_all_delivered,omitempty"`
	ShippingList   []ShippingItem `json:"shipping_list"`
	UploadTime     string         `json:"upload_time"`
}

// ShippingItem is one package of a shipment, as uploaded.
type ShippingItem struct {
	TrackingNo     string           `json:"tracking_no,omitempty"`
	ExpressCompany string           `json:"express_company,omitempty"`
	ItemDesc       string           `json:"item_desc"`
	Contact        *ShippingContact `json:"contact,omitempty"`
}

// ShippingContact is a package's masked phone (SF Express).
type ShippingContact struct {
	ConsignorContact string `json:"consignor_contact,omitempty"`
	ReceiverContact  string `json:"receiver_contact,omitempty"`
}

func writeWxa(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func wxaError(code int, msg string) map[string]any {
	return map[string]any{"errcode": code, "errmsg": msg + ", rid: " + strings.ToLower(randHex(8))}
}

func wxaOK(fields map[string]any) map[string]any {
	out := map[string]any{"errcode": 0, "errmsg": "ok"}
	for k, v := range fields {
		out[k] = v
	}
	return out
}

type wxaHandler func(r *http.Request, body []byte) map[string]any

// wxaEndpoint wraps a mini-program server endpoint: endpoint faults (status,
// errcode, delay; after: do it, then answer the fault — the answer is lost),
// the access token (but for stable_token), and the JSON answer.
func (s *Sim) wxaEndpoint(name string, h wxaHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f := s.takeEndpointFault(name)
		if f != nil && f.DelayMS > 0 && !s.waitRequest(r.Context(), time.Duration(f.DelayMS)*time.Millisecond) {
			return
		}
		fail := func() {
			s.log.Info("paysim: injected fault", "endpoint", name, "status", f.Status, "errcode", f.ErrCode, "after", f.After)
			if f.Status != 0 {
				w.Header().Set("Content-Type", "application/json; charset=utf-8")
				w.WriteHeader(f.Status)
				writeWxa(w, wxaError(errcodeBusy, "system error (paysim injected HTTP "+strconv.Itoa(f.Status)+")"))
				return
			}
			writeWxa(w, wxaError(f.ErrCode, wxaErrMsg(f.ErrCode)))
		}
		if f != nil && (f.Status != 0 || f.ErrCode != 0) && !f.After {
			fail()
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			writeWxa(w, wxaError(errcodeDataFormat, "data format error: body too large or unreadable"))
			return
		}
		var answer map[string]any
		if name != EndpointStableToken {
			if code, msg := s.checkAccessToken(r.URL.Query().Get("access_token")); code != 0 {
				writeWxa(w, wxaError(code, msg))
				return
			}
		}
		answer = h(r, body)
		if f != nil && (f.Status != 0 || f.ErrCode != 0) && f.After {
			fail()
			return
		}
		writeWxa(w, answer)
	}
}

func wxaErrMsg(code int) string {
	switch code {
	case errcodeBusy:
		return "system error"
	case ErrcodePaymentNotFound:
		return "支付单不存在"
	case errcodeInvalidCredential:
		return "invalid credential, access_token is invalid or not latest"
	case errcodeTokenExpired:
		return "access_token expired"
	}
	return "error " + strconv.Itoa(code)
}

// checkAccessToken answers the errcode of a call's access token (0: valid).
func (s *Sim) checkAccessToken(tok string) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case tok == "":
		return errcodeMissingToken, "access_token missing"
	case tok == s.wxa.refusedToken:
		return errcodeInvalidCredential, wxaErrMsg(errcodeInvalidCredential)
	case tok == s.wxa.token:
		if !s.now().Before(s.wxa.tokenExpires) {
			return errcodeTokenExpired, wxaErrMsg(errcodeTokenExpired)
		}
	case tok == s.wxa.prevToken:
		if !s.now().Before(s.wxa.prevExpires) {
			return errcodeTokenExpired, wxaErrMsg(errcodeTokenExpired)
		}
	default:
		return errcodeInvalidCredential, wxaErrMsg(errcodeInvalidCredential)
	}
	return 0, ""
}

func decodeWxa(body []byte, v any) map[string]any {
	if err := json.Unmarshal(body, v); err != nil {
		return wxaError(errcodeDataFormat, "data format error: "+err.Error())
	}
	return nil
}

// handleStableToken is POST /cgi-bin/stable_token: the same token until it
// is within tokenRenewal of its expiry, then a new one (the old one lasts
// until its own expiry); force_refresh makes a new one at once (the old one
// is refused from then on), at most forceRefreshPerDay a day.
func (s *Sim) handleStableToken(_ *http.Request, body []byte) map[string]any {
	var in struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if e := decodeWxa(body, &in); e != nil {
		return e
	}
	switch {
	case in.GrantType != "client_credential":
		return wxaError(errcodeInvalidGrantType, "invalid grant_type")
	case in.AppID != s.opts.AppID:
		return wxaError(errcodeInvalidAppID, "invalid appid")
	case in.Secret != s.opts.LoginSecret:
		return wxaError(errcodeInvalidSecret, "invalid appsecret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	w := &s.wxa
	if in.ForceRefresh {
		day := now.In(chinaTime).Format(time.DateOnly)
		if day != w.forceDay {
			w.forceDay, w.forceToday = day, 0
		}
		if w.forceToday >= forceRefreshPerDay {
			return wxaError(errcodeForceQuota, "reach max api daily quota limit (force_refresh)")
		}
		w.forceToday++
		w.forceTotal++
		w.refusedToken = ""
		s.issueTokenLocked(now)
		w.prevToken = ""
	} else if w.token == "" || w.tokenExpires.Sub(now) <= tokenRenewal {
		w.prevToken, w.prevExpires = w.token, w.tokenExpires
		s.issueTokenLocked(now)
	}
	tok := w.token
	if w.refusedToken != "" {
		tok = w.refusedToken // revoked, yet still handed out (see RevokeToken)
	}
	return map[string]any{"access_token": tok, "expires_in": int64(w.tokenExpires.Sub(now) / time.Second)}
}

func (s *Sim) issueTokenLocked(now time.Time) {
	ttl := s.opts.TokenTTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	s.wxa.token = randString(32) + "_" + randString(48)
	s.wxa.tokenExpires = now.Add(ttl)
	s.wxa.tokensIssued++
}

// handleIsTradeManaged is POST /wxa/sec/order/is_trade_managed.
func (s *Sim) handleIsTradeManaged(_ *http.Request, body []byte) map[string]any {
	var in struct {
		AppID string `json:"appid"`
	}
	if e := decodeWxa(body, &in); e != nil {
		return e
	}
	if in.AppID != s.opts.AppID {
		return wxaError(errcodeInvalidAppID, "invalid appid")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return wxaOK(map[string]any{"is_trade_managed": s.wxa.managed})
}

// shipStateLocked is WeChat's order_state of a paid transaction.
func shipStateLocked(t *txn) int {
	var refunded int64
	for _, r := range t.refunds {
		if r.status == RefundSuccess {
			refunded += r.refund
		}
	}
	sh := t.ship
	switch {
	case t.transactionID == "":
		return 0
	case refunded >= t.total:
		return ShipRefunded
	case sh == nil || len(sh.uploads) == 0:
		return ShipToShip
	case !sh.settledAt.IsZero():
		return ShipSettled
	case !sh.confirmedAt.IsZero():
		return ShipConfirmed
	}
	return ShipShipped
}

// shipOrderLocked finds a paid transaction by transaction_id or by
// mchid + out_trade_no; nil and an error answer when WeChat would not.
func (s *Sim) shipOrderLocked(txID, mchID, outTradeNo string) (*txn, map[string]any) {
	var t *txn
	switch {
	case txID != "":
		t = s.byTxID[txID]
	case outTradeNo != "" && mchID == s.opts.MchID:
		t = s.txs[outTradeNo]
	case outTradeNo != "":
		return nil, wxaError(errcodeBadParam, "参数有误: mchid is not this merchant")
	default:
		return nil, wxaError(errcodeBadParam, "参数有误: name the payment by transaction_id or mchid + out_trade_no")
	}
	if t == nil || t.transactionID == "" {
		return nil, wxaError(ErrcodePaymentNotFound, "支付单不存在")
	}
	return t, nil
}

// handleUploadShippingInfo is POST /wxa/sec/order/upload_shipping_info:
// WeChat's rules on the shipment, and the one re-ship a payment has.
func (s *Sim) handleUploadShippingInfo(_ *http.Request, body []byte) map[string]any {
	var in struct {
		OrderKey struct {
			OrderNumberType int    `json:"order_number_type"`
			TransactionID   string `json:"transaction_id"`
			MchID           string `json:"mchid"`
			OutTradeNo      string `json:"out_trade_no"`
		} `json:"order_key"`
		LogisticsType  int            `json:"logistics_type"`
		DeliveryMode   int            `json:"delivery_mode"`
		IsAllDelivered *bool          `json:"is_all_delivered"`
		ShippingList   []ShippingItem `json:"shipping_list"`
		UploadTime     string         `json:"upload_time"`
		Payer          struct {
			OpenID string `json:"openid"`
		} `json:"payer"`
	}
	if e := decodeWxa(body, &in); e != nil {
		return e
	}
	k := in.OrderKey
	s.mu.Lock()
	defer s.mu.Unlock()
	var t *txn
	var refusal map[string]any
	switch k.OrderNumberType {
	case 1:
		t, refusal = s.shipOrderLocked("", k.MchID, k.OutTradeNo)
	case 2:
		if k.TransactionID == "" {
			return wxaError(errcodeBadParam, "参数有误: order_number_type 2 needs transaction_id")
		}
		t, refusal = s.shipOrderLocked(k.TransactionID, "", "")
	default:
		return wxaError(errcodeBadParam, "参数有误: order_number_type must be 1 or 2")
	}
	if refusal != nil {
		return refusal
	}
	now := s.now()
	if fresh := s.wxa.freshPayment; fresh > 0 && now.Sub(t.successTime) < fresh {
		// WeChat's shipping side sees a payment some time after it was made.
		t.event(now, "upload_shipping_info refused: the payment is too fresh (10060001)")
		return wxaError(ErrcodePaymentNotFound, "支付单不存在")
	}
	if in.Payer.OpenID != t.openID {
		return wxaError(errcodeBadParam, "参数有误: payer.openid is not the payer of this payment")
	}
	if problem := checkShipment(in.LogisticsType, in.DeliveryMode, in.IsAllDelivered, in.ShippingList); problem != nil {
		return problem
	}
	if _, err := time.Parse(time.RFC3339, in.UploadTime); err != nil {
		return wxaError(errcodeBadParam, "参数有误: upload_time must be RFC 3339")
	}
	switch st := shipStateLocked(t); st {
	case ShipRefunded:
		return wxaError(errcodeNotShippable, "支付单处于不可发货的状态 (refunded)")
	case ShipConfirmed, ShipSettled:
		return wxaError(errcodeAlreadyShipped, "支付单已完成发货 (receipt confirmed)")
	}
	if t.ship == nil {
		t.ship = &shipRec{}
	}
	if len(t.ship.uploads) >= 2 {
		t.event(now, "upload_shipping_info refused: the re-ship was used already (10060003)")
		return wxaError(ErrcodeReshipUsed, "支付单已使用重新发货机会")
	}
	t.ship.uploads = append(t.ship.uploads, ShippingUpload{
		At: now, LogisticsType: in.LogisticsType, DeliveryMode: in.DeliveryMode, IsAllDelivered: in.IsAllDelivered,
		ShippingList: in.ShippingList, UploadTime: in.UploadTime,
	})
	what := "shipped"
	if len(t.ship.uploads) == 2 {
		what = "re-shipped (the one change WeChat allows)"
	}
	t.event(now, "%s at WeChat: logistics_type %d, %d package(s)", what, in.LogisticsType, len(in.ShippingList))
	s.log.Info("paysim: shipping uploaded", "out_trade_no", t.outTradeNo, "uploads", len(t.ship.uploads))
	if d := s.wxa.autoConfirm; d > 0 && len(t.ship.uploads) == 1 {
		s.goLocked(func() {
			if !s.sleep(d) {
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if shipStateLocked(t) == ShipShipped {
				s.confirmReceiptLocked(t, 2, "WeChat confirmed receipt by itself")
			}
		})
	}
	return wxaOK(nil)
}

// checkShipment applies WeChat's rules on a shipment's fields.
func checkShipment(logistics, mode int, allDelivered *bool, list []ShippingItem) map[string]any {
	if logistics < 1 || logistics > 4 {
		return wxaError(errcodeLogisticsType, "物流类型有误: logistics_type must be 1 to 4")
	}
	switch mode {
	case 1:
		if len(list) > 1 {
			return wxaError(errcodeBadParam, "参数有误: unified delivery has one package")
		}
	case 2:
		if logistics != 1 {
			return wxaError(errcodeSplitNotExpress, "非快递发货时不允许分拆发货")
		}
		if allDelivered == nil {
			return wxaError(errcodeSplitNeedsAll, "分拆发货模式下必须填写 is_all_delivered")
		}
	default:
		return wxaError(errcodeBadParam, "参数有误: delivery_mode must be 1 or 2")
	}
	if len(list) == 0 {
		return wxaError(errcodeBadParam, "参数有误: shipping_list is empty")
	}
	if len(list) > 15 {
		return wxaError(errcodeListTooLong, "物流信息列表过长")
	}
	for i, it := range list {
		switch n := utf8.RuneCountInString(it.ItemDesc); {
		case strings.TrimSpace(it.ItemDesc) == "":
			return wxaError(errcodeNoItemDesc, fmt.Sprintf("商品描述不能为空 (shipping_list[%d])", i))
		case n > 120:
			return wxaError(errcodeItemDescTooLong, fmt.Sprintf("商品描述超长: %d 字 (shipping_list[%d])", n, i))
		}
		if logistics != 1 {
			continue
		}
		if it.ExpressCompany == "" {
			return wxaError(errcodeNoExpressCompany, fmt.Sprintf("物流公司编码有误 (shipping_list[%d])", i))
		}
		if it.TrackingNo == "" {
			return wxaError(errcodeNoTrackingNo, fmt.Sprintf("物流单号有误 (shipping_list[%d])", i))
		}
		if it.ExpressCompany == "SF" {
			if it.Contact == nil || (it.Contact.ReceiverContact == "" && it.Contact.ConsignorContact == "") {
				return wxaError(errcodeBadParam, fmt.Sprintf("参数有误: 顺丰快递必须填写联系方式 (shipping_list[%d].contact)", i))
			}
			for _, c := range []string{it.Contact.ReceiverContact, it.Contact.ConsignorContact} {
				if visibleDigits(c) > 4 {
					return wxaError(errcodeBadParam, fmt.Sprintf("参数有误: contact must be masked but the last 4 digits (shipping_list[%d])", i))
				}
			}
		}
	}
	return nil
}

func visibleDigits(s string) int {
	n := 0
	for _, r := range s {
		if r >= '0' && r <= '9' {
			n++
		}
	}
	return n
}

// shipOrderJSON is get_order's order.
func (s *Sim) shipOrderJSON(t *txn) map[string]any {
	st := shipStateLocked(t)
	o := map[string]any{
		"transaction_id": t.transactionID, "merchant_id": t.mchID, "merchant_trade_no": t.outTradeNo,
		"description": t.description, "paid_amount": t.total, "openid": t.openID,
		"trade_create_time": t.createdAt.Unix(), "pay_time": t.successTime.Unix(),
		"order_state": st, "in_complaint": false,
	}
	if sh := t.ship; sh != nil && len(sh.uploads) > 0 {
		last := sh.uploads[len(sh.uploads)-1]
		list := make([]map[string]any, 0, len(last.ShippingList))
		desc := ""
		for _, it := range last.ShippingList {
			list = append(list, map[string]any{"tracking_no": it.TrackingNo, "express_company": it.ExpressCompany, "upload_time": last.At.Unix()})
			if desc == "" {
				desc = it.ItemDesc
			}
		}
		o["shipping"] = map[string]any{
			"delivery_mode": last.DeliveryMode, "logistics_type": last.LogisticsType, "finish_shipping": true,
			"goods_desc": desc, "finish_shipping_count": len(sh.uploads), "shipping_list": list,
		}
	}
	return o
}

// handleGetOrder is POST /wxa/sec/order/get_order.
func (s *Sim) handleGetOrder(_ *http.Request, body []byte) map[string]any {
	var in struct {
		TransactionID   string `json:"transaction_id"`
		MerchantID      string `json:"merchant_id"`
		MerchantTradeNo string `json:"merchant_trade_no"`
	}
	if e := decodeWxa(body, &in); e != nil {
		return e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, refusal := s.shipOrderLocked(in.TransactionID, in.MerchantID, in.MerchantTradeNo)
	if refusal != nil {
		return refusal
	}
	for _, r := range t.refunds {
		s.settleDueLocked(r, s.now())
	}
	return wxaOK(map[string]any{"order": s.shipOrderJSON(t)})
}

// handleNotifyConfirmReceive is POST /wxa/sec/order/notify_confirm_receive:
// one reminder per shipped order.
func (s *Sim) handleNotifyConfirmReceive(_ *http.Request, body []byte) map[string]any {
	var in struct {
		TransactionID   string `json:"transaction_id"`
		MerchantID      string `json:"merchant_id"`
		MerchantTradeNo string `json:"merchant_trade_no"`
		ReceivedTime    int64  `json:"received_time"`
	}
	if e := decodeWxa(body, &in); e != nil {
		return e
	}
	if in.ReceivedTime <= 0 {
		return wxaError(errcodeBadParam, "参数有误: received_time is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, refusal := s.shipOrderLocked(in.TransactionID, in.MerchantID, in.MerchantTradeNo)
	if refusal != nil {
		return refusal
	}
	if st := shipStateLocked(t); st != ShipShipped {
		return wxaError(errcodeBadParam, fmt.Sprintf("参数有误: the order is %s, not shipped", shipStateDesc[st]))
	}
	if !t.ship.reminded.IsZero() {
		return wxaError(errcodeReminded, "已提醒过 (one reminder per order)")
	}
	t.ship.reminded = s.now()
	s.wxa.remindedCount++
	t.event(t.ship.reminded, "the buyer was reminded to confirm receipt")
	return wxaOK(nil)
}

// handleSetMsgJumpPath is POST /wxa/sec/order/set_msg_jump_path.
func (s *Sim) handleSetMsgJumpPath(_ *http.Request, body []byte) map[string]any {
	var in struct {
		Path string `json:"path"`
	}
	if e := decodeWxa(body, &in); e != nil {
		return e
	}
	if strings.TrimSpace(in.Path) == "" {
		return wxaError(errcodeBadParam, "参数有误: path is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wxa.jumpPath = in.Path
	return wxaOK(nil)
}

// confirmReceiptLocked records the buyer's (method 1) or WeChat's own
// (method 2) confirmation: receipt confirmed, then — after the settle delay
// — settled, and the settlement event is pushed.
func (s *Sim) confirmReceiptLocked(t *txn, method int, why string) {
	now := s.now()
	t.ship.confirmedAt, t.ship.confirmMethod = now, method
	t.event(now, "%s", why)
	s.log.Info("paysim: receipt confirmed", "out_trade_no", t.outTradeNo, "method", method)
	settle := func() {
		t.ship.settledAt = s.now()
		t.event(t.ship.settledAt, "settled: the money reaches the merchant")
		s.pushEventLocked(t, map[string]any{
			"Event": "trade_manage_order_settlement", "transaction_id": t.transactionID, "merchant_id": t.mchID,
			"sub_merchant_id": "", "merchant_trade_no": t.outTradeNo, "pay_time": t.successTime.Unix(),
			"shipped_time": t.ship.uploads[0].At.Unix(), "confirm_receive_method": method,
			"confirm_receive_time": t.ship.confirmedAt.Unix(), "settlement_time": t.ship.settledAt.Unix(),
		})
	}
	if d := s.wxa.settleDelay; d > 0 {
		s.goLocked(func() {
			if !s.sleep(d) {
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if shipStateLocked(t) == ShipConfirmed {
				settle()
			}
		})
		return
	}
	settle()
}

// ConfirmReceipt plays the buyer confirming receipt in WeChat (the
// weappOrderConfirm component); the settlement event follows.
func (s *Sim) ConfirmReceipt(outTradeNo string) (ShippingView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupLocked(outTradeNo)
	if err != nil {
		return ShippingView{}, err
	}
	if st := shipStateLocked(t); st != ShipShipped {
		return s.shippingViewLocked(t), fmt.Errorf("%w: order %s is %s at WeChat (order_state %d); only a shipped order's receipt can be confirmed",
			ErrConflict, outTradeNo, shipStateDesc[st], st)
	}
	s.confirmReceiptLocked(t, 1, "the buyer confirmed receipt in WeChat")
	return s.shippingViewLocked(t), nil
}

// RemindShipping pushes trade_manage_remind_shipping for a paid order not
// reported shipped, as WeChat does after a while.
func (s *Sim) RemindShipping(outTradeNo string) (ShippingView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupLocked(outTradeNo)
	if err != nil {
		return ShippingView{}, err
	}
	if st := shipStateLocked(t); st != ShipToShip {
		return s.shippingViewLocked(t), fmt.Errorf("%w: order %s is %s at WeChat; WeChat reminds of paid orders not shipped", ErrConflict, outTradeNo, shipStateDesc[st])
	}
	if t.ship == nil {
		t.ship = &shipRec{}
	}
	t.event(s.now(), "WeChat reminds the shop to ship")
	s.pushEventLocked(t, map[string]any{
		"Event": "trade_manage_remind_shipping", "transaction_id": t.transactionID, "merchant_id": t.mchID,
		"sub_merchant_id": "", "merchant_trade_no": t.outTradeNo, "pay_time": t.successTime.Unix(),
		"msg": "请尽快发货",
	})
	return s.shippingViewLocked(t), nil
}

// ShippingView is WeChat's shipping view of a transaction (GET
// /sim/shipping/{out_trade_no}).
type ShippingView struct {
	OutTradeNo    string `json:"out_trade_no"`
	TransactionID string `json:"transaction_id,omitempty"`
	// OrderState is get_order's order_state (0: not paid).
	OrderState     int    `json:"order_state"`
	OrderStateDesc string `json:"order_state_desc"`
	// ShippingList is the shipment WeChat holds (the last upload's).
	ShippingList []ShippingItem `json:"shipping_list"`
	// Uploads are the accepted uploads: 1, or 2 once the re-ship was used.
	Uploads              []ShippingUpload `json:"uploads"`
	RemindedAt           *time.Time       `json:"reminded_at,omitempty"`
	ConfirmedAt          *time.Time       `json:"confirmed_at,omitempty"`
	ConfirmReceiveMethod int              `json:"confirm_receive_method,omitempty"`
	SettledAt            *time.Time       `json:"settled_at,omitempty"`
	Pushes               []PushView       `json:"pushes"`
}

func (s *Sim) shippingViewLocked(t *txn) ShippingView {
	st := shipStateLocked(t)
	v := ShippingView{
		OutTradeNo: t.outTradeNo, TransactionID: t.transactionID, OrderState: st, OrderStateDesc: shipStateDesc[st],
		ShippingList: []ShippingItem{}, Uploads: []ShippingUpload{}, Pushes: []PushView{},
	}
	if sh := t.ship; sh != nil {
		v.Uploads = append(v.Uploads, sh.uploads...)
		if len(sh.uploads) > 0 {
			v.ShippingList = append(v.ShippingList, sh.uploads[len(sh.uploads)-1].ShippingList...)
		}
		v.RemindedAt, v.ConfirmedAt, v.SettledAt = timePtr(sh.reminded), timePtr(sh.confirmedAt), timePtr(sh.settledAt)
		v.ConfirmReceiveMethod = sh.confirmMethod
		for _, p := range sh.pushes {
			v.Pushes = append(v.Pushes, p.view())
		}
	}
	return v
}

// Shipping returns WeChat's shipping view of a transaction.
func (s *Sim) Shipping(outTradeNo string) (ShippingView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.txs[outTradeNo]
	if t == nil {
		return ShippingView{}, false
	}
	for _, r := range t.refunds {
		s.settleDueLocked(r, s.now())
	}
	return s.shippingViewLocked(t), true
}

// WxaView is the mini-program side as a whole (GET /sim/wxa).
type WxaView struct {
	AppID           string     `json:"appid"`
	TradeManaged    bool       `json:"is_trade_managed"`
	JumpPath        string     `json:"msg_jump_path,omitempty"`
	TokensIssued    int        `json:"tokens_issued"`
	ForceRefreshes  int        `json:"force_refreshes"`
	TokenExpiresAt  *time.Time `json:"token_expires_at,omitempty"`
	TokenRevoked    bool       `json:"token_revoked"`
	PushURL         string     `json:"push_url,omitempty"`
	RemindersTaken  int        `json:"confirm_reminders"`
	FreshPaymentMS  int64      `json:"fresh_payment_ms"`
	AutoConfirmMS   int64      `json:"receipt_auto_confirm_ms"`
	SettleDelayMS   int64      `json:"settle_delay_ms"`
	PushesDelivered int        `json:"pushes_delivered"`
}

// Wxa returns the mini-program side's view.
func (s *Sim) Wxa() WxaView {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.wxa
	v := WxaView{
		AppID: s.opts.AppID, TradeManaged: w.managed, JumpPath: w.jumpPath, TokensIssued: w.tokensIssued,
		ForceRefreshes: w.forceTotal, TokenExpiresAt: timePtr(w.tokenExpires), TokenRevoked: w.refusedToken != "",
		PushURL: w.pushURL, RemindersTaken: w.remindedCount, FreshPaymentMS: w.freshPayment.Milliseconds(),
		AutoConfirmMS: w.autoConfirm.Milliseconds(), SettleDelayMS: w.settleDelay.Milliseconds(),
	}
	for _, t := range s.txs {
		if t.ship == nil {
			continue
		}
		for _, p := range t.ship.pushes {
			if p.state == NotifyDelivered {
				v.PushesDelivered++
			}
		}
	}
	return v
}

// RevokeToken plays the access token being renewed elsewhere (another
// process's force_refresh): calls with the current token are refused
// (40001). With keepServing, stable_token without force_refresh goes on
// handing out the refused token, so only force_refresh gets a new one.
func (s *Sim) RevokeToken(keepServing bool) WxaView {
	s.mu.Lock()
	old := s.wxa.token
	if keepServing && old != "" {
		s.wxa.refusedToken = old
	}
	s.issueTokenLocked(s.now())
	s.wxa.prevToken = ""
	s.mu.Unlock()
	return s.Wxa()
}
