// Package wxapp is the mini-program server API client: the stable access
// token every call carries, and the calls of WeChat's order shipping
// management (小程序发货信息管理: is_trade_managed, upload_shipping_info,
// get_order, notify_confirm_receive, set_msg_jump_path). It also verifies
// and decrypts the message pushes (消息推送) WeChat sends to the shop
// (push.go). The host is WECHAT_API_BASE_URL, as for jscode2session.
//
// # The access token
//
// Each process keeps one token from POST /cgi-bin/stable_token: WeChat
// answers every process the same token until it nears expiry, so api and
// worker replicas need no shared cache. A token is renewed renewBefore its
// expiry. A call answered 40001 (invalid credential) or 42001 (expired) gets
// a fresh token and is sent once more; the fresh token is asked for without
// force_refresh first (another process may have renewed it), and with
// force_refresh — which WeChat limits to a few a day — only when that
// answers the very token that was refused, at most once per
// forceRefreshEvery. A call is never sent more than twice.
//
// # Errors
//
// A WeChat answer with an errcode is an *Error (errors.Is matches by code);
// no answer, a non-200 answer or an unreadable one is a *TransportError.
// Retryable tells which are worth trying again. Error texts never carry the
// AppSecret or a token: the request URL (which holds the token) is never in
// them, nor logged.
package wxapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultBaseURL is WeChat's mini-program API host.
const DefaultBaseURL = "https://api.weixin.qq.com"

// WeChat's errcodes the client and its callers branch on.
const (
	CodeBusy              = -1    // system busy: retry
	CodeInvalidCredential = 40001 // the access token is invalid (renewed elsewhere, or revoked)
	CodeTokenExpired      = 42001 // the access token expired
	// CodeForceRefreshQuota: force_refresh asked too often (WeChat allows a
	// few a day).
	CodeForceRefreshQuota = 45009
	// Shipping management (upload_shipping_info, get_order, …).
	CodePaymentNotFound   = 10060001 // 支付单不存在: the payment is not visible yet (retry) or not the shop's
	CodeAlreadyShipped    = 10060002 // 支付单已完成发货: shipped, and the one re-ship used … or not wanted
	CodeReshipUsed        = 10060003 // 支付单已使用重新发货机会: the one re-ship was spent
	CodeNotShippable      = 10060004 // 支付单处于不可发货的状态 (refunded, in complaint)
	CodeShippingBusy      = 10060012 // 系统繁忙: retry
	CodeShippingSystemErr = 10060019 // 系统异常: retry
)

// Error is an errcode answer of a mini-program server API call.
type Error struct {
	Op   string // the call: stable_token, upload_shipping_info, …
	Code int
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("wxapp: %s errcode %d: %s", e.Op, e.Code, e.Msg)
}

// Is matches any *Error with the same Code: errors.Is(err,
// &wxapp.Error{Code: wxapp.CodePaymentNotFound}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// HasCode reports whether err is a WeChat answer with errcode code.
func HasCode(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// TransportError is a failure to get an answer: network, timeout, a non-200
// status, a body that is not WeChat's JSON.
type TransportError struct {
	Op     string
	Status int // HTTP status; 0 when there was no answer
	Err    error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("wxapp: %s: %v", e.Op, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Retryable reports whether trying the same call later may succeed: WeChat
// busy (-1, and shipping's busy and system-error codes), network errors,
// timeouts and 5xx/429 answers. (CodePaymentNotFound is retryable for a
// fresh payment only: the caller decides.)
func Retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case CodeBusy, CodeShippingBusy, CodeShippingSystemErr:
			return true
		}
		return false
	}
	var te *TransportError
	if errors.As(err, &te) {
		return te.Status == 0 || te.Status >= 500 || te.Status == http.StatusTooManyRequests
	}
	return false
}

// Options configure a Client.
type Options struct {
	BaseURL string // "" = DefaultBaseURL
	AppID   string
	Secret  string // the AppSecret; never logged
	// HTTPClient is nil for one with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock of token expiry; nil = time.Now.
	Now    func() time.Time
	Logger *slog.Logger // nil = discard
	// OnCall, when set, is told of every call: its name, the error (nil
	// when WeChat answered errcode 0) and how long it took — for metrics.
	OnCall func(op string, err error, took time.Duration)
}

// How the token is kept.
const (
	// renewBefore: a token this close to its expiry is renewed before use
	// (WeChat hands out a new one from then on).
	renewBefore = 5 * time.Minute
	// renewRetry: when WeChat still answers a token that close to its
	// expiry, it is asked again this much later at the soonest.
	renewRetry = 30 * time.Second
	// forceRefreshEvery: force_refresh is asked at most this often per
	// process (WeChat allows about 20 a day).
	forceRefreshEvery = 2 * time.Hour
	// maxAnswerBytes bounds an answer (real ones are a few KB).
	maxAnswerBytes = 1 << 20
)

// Client calls the mini-program server API. Safe for concurrent use.
type Client struct {
	opts Options
	base string
	http *http.Client
	log  *slog.Logger

	mu    sync.Mutex // guards the token
	token string
	// renewAt is when the token is to be renewed: renewBefore its expiry,
	// or — when WeChat answered a token that close to it already — a
	// little later, so that callers do not ask once per call.
	renewAt   time.Time
	lastForce time.Time
	// renewing serialises renewals: one stable_token call at a time.
	renewing sync.Mutex
}

// New returns a client; nothing is sent until the first call.
func New(opts Options) *Client {
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{opts: opts, base: strings.TrimRight(opts.BaseURL, "/"), http: hc, log: log}
}

// AppID is the mini-program the client acts for.
func (c *Client) AppID() string { return c.opts.AppID }

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	ErrCode     int    `json:"errcode"`
	ErrMsg      string `json:"errmsg"`
}

// accessToken returns a token valid for at least renewBefore more.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	tok, at := c.token, c.renewAt
	c.mu.Unlock()
	if tok != "" && c.opts.Now().Before(at) {
		return tok, nil
	}
	return c.renew(ctx, "")
}

// renew fetches a token. refused is the token WeChat just refused ("" when
// the cached one merely nears expiry): when stable_token answers that same
// token, it is asked again with force_refresh — at most once per
// forceRefreshEvery.
func (c *Client) renew(ctx context.Context, refused string) (string, error) {
	c.renewing.Lock()
	defer c.renewing.Unlock()
	// Another caller may have renewed it while this one waited.
	c.mu.Lock()
	tok, at := c.token, c.renewAt
	c.mu.Unlock()
	if tok != "" && tok != refused && c.opts.Now().Before(at) {
		return tok, nil
	}
	a, err := c.stableToken(ctx, false)
	if err != nil {
		return "", err
	}
	if refused != "" && a.AccessToken == refused {
		c.mu.Lock()
		allowed := c.lastForce.IsZero() || c.opts.Now().Sub(c.lastForce) >= forceRefreshEvery
		if allowed {
			c.lastForce = c.opts.Now()
		}
		c.mu.Unlock()
		if !allowed {
			return "", &Error{Op: "stable_token", Code: CodeInvalidCredential,
				Msg: fmt.Sprintf("WeChat refused the access token it still hands out, and force_refresh was used less than %s ago", forceRefreshEvery)}
		}
		c.log.Warn("wxapp: WeChat refused its current access token: asking for a new one with force_refresh")
		if a, err = c.stableToken(ctx, true); err != nil {
			return "", err
		}
	}
	now := c.opts.Now()
	left := time.Duration(a.ExpiresIn) * time.Second
	at = now.Add(left - renewBefore)
	if left <= renewBefore {
		at = now.Add(min(renewRetry, left/2))
	}
	c.mu.Lock()
	c.token, c.renewAt = a.AccessToken, at
	c.mu.Unlock()
	c.log.Info("wxapp: access token renewed", "expires_in_s", a.ExpiresIn)
	return a.AccessToken, nil
}

func (c *Client) stableToken(ctx context.Context, force bool) (tokenAnswer, error) {
	const op = "stable_token"
	body := map[string]any{
		"grant_type": "client_credential", "appid": c.opts.AppID, "secret": c.opts.Secret, "force_refresh": force,
	}
	var a tokenAnswer
	start := time.Now()
	err := c.post(ctx, op, "/cgi-bin/stable_token", "", body, &a)
	if err == nil && a.ErrCode != 0 {
		err = &Error{Op: op, Code: a.ErrCode, Msg: a.ErrMsg}
	}
	if err == nil && (a.AccessToken == "" || a.ExpiresIn <= 0) {
		err = &TransportError{Op: op, Status: http.StatusOK, Err: errors.New("answer has no access_token or expires_in")}
	}
	c.observe(op, err, start)
	return a, err
}

// call sends one API call with the access token and decodes the answer into
// out, which must embed Status (errcode, errmsg). A 40001/42001 answer gets
// a fresh token and one more try.
func (c *Client) call(ctx context.Context, op, path string, body any, out interface{ status() *Status }) error {
	start := time.Now()
	err := c.callOnce(ctx, op, path, body, out)
	c.observe(op, err, start)
	return err
}

func (c *Client) callOnce(ctx context.Context, op, path string, body any, out interface{ status() *Status }) error {
	tok, err := c.accessToken(ctx)
	if err != nil {
		return fmt.Errorf("wxapp: %s: access token: %w", op, err)
	}
	for try := 0; ; try++ {
		*out.status() = Status{}
		if err := c.post(ctx, op, path, tok, body, out); err != nil {
			return err
		}
		st := out.status()
		if st.ErrCode == 0 {
			return nil
		}
		if (st.ErrCode == CodeInvalidCredential || st.ErrCode == CodeTokenExpired) && try == 0 {
			c.log.Info("wxapp: access token refused: renewing it", "op", op, "errcode", st.ErrCode)
			if tok, err = c.renew(ctx, tok); err != nil {
				return fmt.Errorf("wxapp: %s: renew the refused access token: %w", op, err)
			}
			continue
		}
		return &Error{Op: op, Code: st.ErrCode, Msg: st.ErrMsg}
	}
}

// post sends body as JSON to path (with ?access_token= when token is set)
// and decodes a 200 answer into out.
func (c *Client) post(ctx context.Context, op, path, token string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("wxapp: %s: encode request: %w", op, err)
	}
	u := c.base + path
	if token != "" {
		u += "?access_token=" + url.QueryEscape(token)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(data))
	if err != nil {
		return &TransportError{Op: op, Err: errors.New("cannot build the request")}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// A *url.Error prints the URL, which holds the token: keep the cause only.
		return &TransportError{Op: op, Err: redact(err)}
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return &TransportError{Op: op, Status: resp.StatusCode, Err: redact(err)}
	}
	if resp.StatusCode != http.StatusOK {
		return &TransportError{Op: op, Status: resp.StatusCode, Err: fmt.Errorf("HTTP %d", resp.StatusCode)}
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return &TransportError{Op: op, Status: resp.StatusCode, Err: fmt.Errorf("answer is not WeChat's JSON: %v", err)}
	}
	return nil
}

func (c *Client) observe(op string, err error, start time.Time) {
	if c.opts.OnCall != nil {
		c.opts.OnCall(op, err, time.Since(start))
	}
}

// redact keeps the cause of a *url.Error, whose text holds the URL.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Status is the errcode and errmsg every answer carries.
type Status struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func (s *Status) status() *Status { return s }
