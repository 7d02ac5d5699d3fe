package wxpay

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"
)

// chinaTime is Asia/Shanghai without needing tzdata (China has no DST).
var chinaTime = time.FixedZone("CST", 8*3600)

// Client calls WeChat Pay API v3 through the official SDK in public-key mode.
// It is safe for concurrent use.
type Client struct {
	cfg     Config
	core    *core.Client
	jsapi   jsapi.JsapiApiService
	refunds refunddomestic.RefundsApiService
}

// NewClient builds the SDK client from cfg. It does no network I/O.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	httpClient, err := newHTTPClient(cfg)
	if err != nil {
		return nil, err
	}
	c, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(cfg.MchID, cfg.MchCertSerial, cfg.MchPrivateKey, cfg.PublicKeyID, cfg.PublicKey),
		option.WithHTTPClient(httpClient),
	)
	if err != nil {
		return nil, fmt.Errorf("wxpay: build SDK client: %w", err)
	}
	return &Client{
		cfg:     cfg,
		core:    c,
		jsapi:   jsapi.JsapiApiService{Client: c},
		refunds: refunddomestic.RefundsApiService{Client: c},
	}, nil
}

// Config returns the configuration the client was built with.
func (c *Client) Config() Config { return c.cfg }

func newHTTPClient(cfg Config) (*http.Client, error) {
	base := cfg.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.TLSHandshakeTimeout = 5 * time.Second
		t.ResponseHeaderTimeout = cfg.Timeout
		t.MaxIdleConnsPerHost = 16
		t.IdleConnTimeout = 90 * time.Second
		base = t
	}
	rt := base
	if cfg.BaseURL != "" {
		u, err := parseBaseURL(cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("wxpay: %s: %w", EnvBaseURL, err)
		}
		rt = &hostRewriter{scheme: u.Scheme, host: u.Host, next: base}
	}
	return &http.Client{Transport: rt, Timeout: cfg.Timeout}, nil
}

// hostRewriter sends every request to another scheme and host, keeping the
// path and query (which are what the request signature covers).
type hostRewriter struct {
	scheme, host string
	next         http.RoundTripper
}

func (h *hostRewriter) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	u := *req.URL
	u.Scheme, u.Host = h.scheme, h.host
	r.URL = &u
	r.Host = h.host
	return h.next.RoundTrip(r)
}

// PrepayRequest is a JSAPI (mini-program) order.
type PrepayRequest struct {
	OutTradeNo  string    // the order number, 6–32 chars of [0-9A-Za-z_*-]
	Description string    // shown to the payer; cut to MaxDescriptionBytes (bytes, not characters)
	TotalFen    int64     // amount in fen, > 0
	PayerOpenID string    // the payer's openid under the mini-program's appid
	TimeExpire  time.Time // zero = no expiry; sent in Asia/Shanghai, whole seconds
	Attach      string    // optional, at most MaxAttachBytes, returned in query and notify
	NotifyURL   string    // optional; defaults to Config.NotifyURL
}

// PayParams are the arguments of wx.requestPayment. Only the five WeChat
// fields are serialised; the prepay id stays on the server.
type PayParams struct {
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
	PrepayID  string `json:"-"`
}

// Prepay creates (or, for the same out_trade_no and parameters, re-obtains)
// the JSAPI prepay and returns the signed wx.requestPayment parameters.
func (c *Client) Prepay(ctx context.Context, req PrepayRequest) (_ PayParams, err error) {
	const op = "prepay"
	defer c.observe(op, time.Now(), &err)
	if err := validOutTradeNo(req.OutTradeNo); err != nil {
		return PayParams{}, permanent(op, err)
	}
	switch {
	case req.TotalFen <= 0:
		return PayParams{}, permanent(op, fmt.Errorf("total must be > 0 fen, got %d", req.TotalFen))
	case strings.TrimSpace(req.PayerOpenID) == "":
		return PayParams{}, permanent(op, errors.New("payer openid is required"))
	case strings.TrimSpace(req.Description) == "":
		return PayParams{}, permanent(op, errors.New("description is required"))
	case len(req.Attach) > MaxAttachBytes:
		// Not cut: attach is data WeChat hands back verbatim, and a cut copy
		// would come back as something the caller never sent.
		return PayParams{}, permanent(op, fmt.Errorf("attach must be at most %d bytes, got %d", MaxAttachBytes, len(req.Attach)))
	}
	notifyURL := req.NotifyURL
	if notifyURL == "" {
		notifyURL = c.cfg.NotifyURL
	}
	pr := jsapi.PrepayRequest{
		Appid:       core.String(c.cfg.AppID),
		Mchid:       core.String(c.cfg.MchID),
		Description: core.String(CutBytes(req.Description, MaxDescriptionBytes)),
		OutTradeNo:  core.String(req.OutTradeNo),
		NotifyUrl:   core.String(notifyURL),
		Amount:      &jsapi.Amount{Total: core.Int64(req.TotalFen), Currency: core.String("CNY")},
		Payer:       &jsapi.Payer{Openid: core.String(req.PayerOpenID)},
	}
	if !req.TimeExpire.IsZero() {
		// WeChat wants yyyy-MM-DDTHH:mm:ss+08:00: no fractional seconds.
		t := req.TimeExpire.In(chinaTime).Truncate(time.Second)
		pr.TimeExpire = &t
	}
	if req.Attach != "" {
		pr.Attach = core.String(req.Attach)
	}
	resp, result, err := c.jsapi.PrepayWithRequestPayment(ctx, pr)
	if err != nil {
		return PayParams{}, c.wrap(op, result, err)
	}
	if resp.PrepayId == nil || *resp.PrepayId == "" {
		return PayParams{}, &Error{Op: op, Kind: KindUnknown, StatusCode: statusOf(result), Err: errors.New("answer has no prepay_id")}
	}
	return PayParams{
		TimeStamp: deref(resp.TimeStamp),
		NonceStr:  deref(resp.NonceStr),
		Package:   deref(resp.Package),
		SignType:  deref(resp.SignType),
		PaySign:   deref(resp.PaySign),
		PrepayID:  *resp.PrepayId,
	}, nil
}

// VerifyPaySign checks a wx.requestPayment paySign with the merchant public
// key: SHA256withRSA over "appId\ntimeStamp\nnonceStr\npackage\n".
func VerifyPaySign(appID string, p PayParams, merchantPublicKey *rsa.PublicKey) error {
	if p.SignType != "RSA" {
		return fmt.Errorf("signType is %q, want RSA", p.SignType)
	}
	sig, err := base64.StdEncoding.DecodeString(p.PaySign)
	if err != nil {
		return fmt.Errorf("paySign is not base64: %w", err)
	}
	msg := appID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n"
	sum := sha256.Sum256([]byte(msg))
	return rsa.VerifyPKCS1v15(merchantPublicKey, crypto.SHA256, sum[:], sig)
}

// Transaction is WeChat's view of a payment.
type Transaction struct {
	OutTradeNo     string
	TransactionID  string // set once paid
	TradeState     string // SUCCESS, REFUND, NOTPAY, CLOSED, USERPAYING, PAYERROR, REVOKED
	TradeStateDesc string
	TradeType      string
	BankType       string
	AmountTotalFen int64 // the order total
	PayerTotalFen  int64 // what the payer paid (0 unless paid)
	Currency       string
	PayerOpenID    string
	AppID          string
	MchID          string
	Attach         string
	SuccessTime    *time.Time
}

// QueryOrder asks WeChat for the state of an order by out_trade_no.
func (c *Client) QueryOrder(ctx context.Context, outTradeNo string) (_ Transaction, err error) {
	const op = "query"
	defer c.observe(op, time.Now(), &err)
	if err := validOutTradeNo(outTradeNo); err != nil {
		return Transaction{}, permanent(op, err)
	}
	tx, result, err := c.jsapi.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{
		OutTradeNo: core.String(outTradeNo),
		Mchid:      core.String(c.cfg.MchID),
	})
	return c.transactionAnswer(op, tx, result, err)
}

// transactionAnswer is a transaction query's outcome: its failure wrapped,
// or the transaction read from the answer.
func (c *Client) transactionAnswer(op string, tx *payments.Transaction, result *core.APIResult, err error) (Transaction, error) {
	if err != nil {
		return Transaction{}, c.wrap(op, result, err)
	}
	out, err := transactionFrom(tx)
	if err != nil {
		return Transaction{}, &Error{Op: op, Kind: KindUnknown, StatusCode: statusOf(result), Err: err}
	}
	return out, nil
}

func transactionFrom(tx *payments.Transaction) (Transaction, error) {
	if tx == nil {
		return Transaction{}, errors.New("empty transaction")
	}
	out := Transaction{
		OutTradeNo:     deref(tx.OutTradeNo),
		TransactionID:  deref(tx.TransactionId),
		TradeState:     deref(tx.TradeState),
		TradeStateDesc: deref(tx.TradeStateDesc),
		TradeType:      deref(tx.TradeType),
		BankType:       deref(tx.BankType),
		AppID:          deref(tx.Appid),
		MchID:          deref(tx.Mchid),
		Attach:         deref(tx.Attach),
	}
	if tx.Amount != nil {
		out.AmountTotalFen = derefInt(tx.Amount.Total)
		out.PayerTotalFen = derefInt(tx.Amount.PayerTotal)
		out.Currency = deref(tx.Amount.Currency)
	}
	if tx.Payer != nil {
		out.PayerOpenID = deref(tx.Payer.Openid)
	}
	if s := deref(tx.SuccessTime); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return Transaction{}, fmt.Errorf("bad success_time %q", s)
		}
		out.SuccessTime = &t
	}
	if out.TradeState == "" {
		return Transaction{}, errors.New("answer has no trade_state")
	}
	return out, nil
}

// CloseOrder closes an unpaid order. WeChat's answer for an order that was
// paid meanwhile is not settled (an error, or 204 with the order still paid):
// always query after closing and decide from trade_state.
func (c *Client) CloseOrder(ctx context.Context, outTradeNo string) (err error) {
	const op = "close"
	defer c.observe(op, time.Now(), &err)
	if err := validOutTradeNo(outTradeNo); err != nil {
		return permanent(op, err)
	}
	result, err := c.jsapi.CloseOrder(ctx, jsapi.CloseOrderRequest{
		OutTradeNo: core.String(outTradeNo),
		Mchid:      core.String(c.cfg.MchID),
	})
	if err != nil {
		return c.wrap(op, result, err)
	}
	return nil
}

// RefundRequest asks for a refund of a paid order. Use a deterministic
// OutRefundNo: repeating the call with it never refunds twice.
type RefundRequest struct {
	OutTradeNo    string // one of OutTradeNo / TransactionID is required
	TransactionID string
	OutRefundNo   string // 1..64 chars
	Reason        string // optional, shown to the payer; cut to MaxRefundReasonBytes
	RefundFen     int64
	TotalFen      int64  // the order total
	NotifyURL     string // optional; defaults to Config.NotifyURL
	// Goods say which goods a part refund returns (goods_detail); their
	// refund amounts add up to RefundFen. None: not said.
	Goods []RefundGoods
}

// RefundGoods is one line of a refund's goods_detail.
type RefundGoods struct {
	MerchantGoodsID string // the shop's product id
	Name            string // optional
	UnitPriceFen    int64
	RefundFen       int64 // refund_amount: this line's part of the refund
	Quantity        int64 // refund_quantity
}

// RefundResult is WeChat's view of a refund.
type RefundResult struct {
	OutRefundNo         string
	RefundID            string
	OutTradeNo          string
	TransactionID       string
	Status              string // PROCESSING, SUCCESS, CLOSED, ABNORMAL
	Channel             string
	UserReceivedAccount string
	RefundFen           int64
	TotalFen            int64
	PayerRefundFen      int64
	CreateTime          *time.Time
	SuccessTime         *time.Time
}

// CreateRefund submits a refund. Success means accepted (usually
// PROCESSING); the outcome arrives by notify or QueryRefund.
func (c *Client) CreateRefund(ctx context.Context, req RefundRequest) (_ RefundResult, err error) {
	const op = "refund"
	defer c.observe(op, time.Now(), &err)
	switch {
	case req.OutTradeNo == "" && req.TransactionID == "":
		return RefundResult{}, permanent(op, errors.New("out_trade_no or transaction_id is required"))
	case validOutRefundNo(req.OutRefundNo) != nil:
		return RefundResult{}, permanent(op, validOutRefundNo(req.OutRefundNo))
	case req.RefundFen <= 0 || req.TotalFen <= 0 || req.RefundFen > req.TotalFen:
		return RefundResult{}, permanent(op, fmt.Errorf("need 0 < refund (%d) <= total (%d) fen", req.RefundFen, req.TotalFen))
	}
	notifyURL := req.NotifyURL
	if notifyURL == "" {
		notifyURL = c.cfg.NotifyURL
	}
	cr := refunddomestic.CreateRequest{
		OutRefundNo: core.String(req.OutRefundNo),
		NotifyUrl:   core.String(notifyURL),
		Amount: &refunddomestic.AmountReq{
			Refund:   core.Int64(req.RefundFen),
			Total:    core.Int64(req.TotalFen),
			Currency: core.String("CNY"),
		},
	}
	if req.OutTradeNo != "" {
		cr.OutTradeNo = core.String(req.OutTradeNo)
	}
	if req.TransactionID != "" {
		cr.TransactionId = core.String(req.TransactionID)
	}
	if req.Reason != "" {
		cr.Reason = core.String(CutBytes(req.Reason, MaxRefundReasonBytes))
	}
	if len(req.Goods) > 0 {
		var sum int64
		for _, g := range req.Goods {
			if g.MerchantGoodsID == "" || g.Quantity <= 0 || g.UnitPriceFen < 0 || g.RefundFen < 0 {
				return RefundResult{}, permanent(op, fmt.Errorf("goods_detail line %+v", g))
			}
			sum += g.RefundFen
			d := refunddomestic.GoodsDetail{
				MerchantGoodsId: core.String(g.MerchantGoodsID),
				UnitPrice:       core.Int64(g.UnitPriceFen),
				RefundAmount:    core.Int64(g.RefundFen),
				RefundQuantity:  core.Int64(g.Quantity),
			}
			if g.Name != "" {
				d.GoodsName = core.String(g.Name)
			}
			cr.GoodsDetail = append(cr.GoodsDetail, d)
		}
		if sum != req.RefundFen {
			return RefundResult{}, permanent(op, fmt.Errorf("goods_detail adds up to %d fen, the refund is %d", sum, req.RefundFen))
		}
	}
	r, result, err := c.refunds.Create(ctx, cr)
	if err != nil {
		return RefundResult{}, c.wrap(op, result, err)
	}
	out, err := refundFrom(r)
	if err != nil {
		return RefundResult{}, &Error{Op: op, Kind: KindUnknown, StatusCode: statusOf(result), Err: err}
	}
	return out, nil
}

// QueryRefund asks WeChat for the state of a refund.
func (c *Client) QueryRefund(ctx context.Context, outRefundNo string) (_ RefundResult, err error) {
	const op = "refund_query"
	defer c.observe(op, time.Now(), &err)
	if err := validOutRefundNo(outRefundNo); err != nil {
		return RefundResult{}, permanent(op, err)
	}
	r, result, err := c.refunds.QueryByOutRefundNo(ctx, refunddomestic.QueryByOutRefundNoRequest{
		OutRefundNo: core.String(outRefundNo),
	})
	if err != nil {
		return RefundResult{}, c.wrap(op, result, err)
	}
	out, err := refundFrom(r)
	if err != nil {
		return RefundResult{}, &Error{Op: op, Kind: KindUnknown, StatusCode: statusOf(result), Err: err}
	}
	return out, nil
}

func refundFrom(r *refunddomestic.Refund) (RefundResult, error) {
	if r == nil {
		return RefundResult{}, errors.New("empty refund")
	}
	out := RefundResult{
		OutRefundNo:         deref(r.OutRefundNo),
		RefundID:            deref(r.RefundId),
		OutTradeNo:          deref(r.OutTradeNo),
		TransactionID:       deref(r.TransactionId),
		UserReceivedAccount: deref(r.UserReceivedAccount),
		CreateTime:          r.CreateTime,
		SuccessTime:         r.SuccessTime,
	}
	if r.Status != nil {
		out.Status = string(*r.Status)
	}
	if r.Channel != nil {
		out.Channel = string(*r.Channel)
	}
	if r.Amount != nil {
		out.RefundFen = derefInt(r.Amount.Refund)
		out.TotalFen = derefInt(r.Amount.Total)
		out.PayerRefundFen = derefInt(r.Amount.PayerRefund)
	}
	if out.Status == "" || out.OutRefundNo == "" {
		return RefundResult{}, errors.New("answer has no status or out_refund_no")
	}
	return out, nil
}

// observe reports one call to Config.OnCall (metrics).
func (c *Client) observe(op string, start time.Time, err *error) {
	if c.cfg.OnCall != nil {
		c.cfg.OnCall(op, Classify(*err), time.Since(start))
	}
}

// wrap turns an SDK failure into *Error with its kind decided.
func (c *Client) wrap(op string, result *core.APIResult, err error) error {
	e := &Error{Op: op, Err: err}
	var resp *http.Response
	if result != nil {
		resp = result.Response
	}
	if resp != nil {
		e.StatusCode = resp.StatusCode
		e.RequestID = resp.Header.Get("Request-Id")
	}
	var apiErr *core.APIError
	switch {
	case errors.As(err, &apiErr):
		e.StatusCode, e.Code, e.Message = apiErr.StatusCode, apiErr.Code, apiErr.Message
		e.Kind = classifyAPIError(apiErr)
	case resp != nil && resp.StatusCode >= 200 && resp.StatusCode <= 299:
		// 2xx, then the signature check (or reading the body) failed.
		e.Kind = KindUnknown
	case resp != nil && (resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests):
		e.Kind = KindRetryable
	case resp != nil:
		e.Kind = KindPermanent
	case isTransportError(err):
		e.Kind = KindRetryable
	default:
		e.Kind = KindPermanent
	}
	return e
}

func permanent(op string, err error) error {
	return &Error{Op: op, Kind: KindPermanent, Err: err}
}

func statusOf(result *core.APIResult) int {
	if result == nil || result.Response == nil {
		return 0
	}
	return result.Response.StatusCode
}

// validOutTradeNo: WeChat takes 6–32 of [0-9A-Za-z_-*] (WECHAT-PLATFORM.md §1).
func validOutTradeNo(s string) error {
	if len(s) < 6 || len(s) > 32 {
		return fmt.Errorf("out_trade_no must be 6..32 chars, got %q", s)
	}
	if !merchantNoChars(s) {
		return fmt.Errorf("out_trade_no %q has a character outside [0-9A-Za-z_*-]", s)
	}
	return nil
}

// validOutRefundNo: 1–64 of the same characters.
func validOutRefundNo(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("out_refund_no must be 1..64 chars, got %q", s)
	}
	if !merchantNoChars(s) {
		return fmt.Errorf("out_refund_no %q has a character outside [0-9A-Za-z_*-]", s)
	}
	return nil
}

func merchantNoChars(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-' || r == '*') {
			return false
		}
	}
	return true
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefInt(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
