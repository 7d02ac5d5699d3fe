// Package wxlogin exchanges a mini-program login code for the user's openid
// (jscode2session) on WeChat's mini-program API host (WECHAT_API_BASE_URL).
//
// WeChat answers HTTP 200 with either {openid, session_key, unionid?} or
// {errcode, errmsg}. The documented codes map to typed errors:
//
//	-1    ErrBusy        system busy: retry shortly
//	40029 ErrInvalidCode the code is invalid (or was already used)
//	45011 ErrRateLimited too many logins for this user: ask them to wait
//	40226 ErrHighRisk    WeChat blocked a high-risk user: refuse the login
//
// Other codes are a generic *Error. Use errors.Is(err, wxlogin.ErrInvalidCode)
// or errors.As(err, &*wxlogin.Error) to read code and message. The session key
// must never reach the client; error texts never contain the secret or code.
package wxlogin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultBaseURL is WeChat's mini-program API host.
const DefaultBaseURL = "https://api.weixin.qq.com"

// Error is an errcode answer of jscode2session.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("wxlogin: jscode2session errcode %d: %s", e.Code, e.Msg)
}

// Is matches any *Error with the same Code, so errors.Is(err, ErrInvalidCode)
// holds whatever message WeChat sent.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// The documented jscode2session errors.
var (
	ErrBusy        = &Error{Code: -1, Msg: "system busy, retry"}
	ErrInvalidCode = &Error{Code: 40029, Msg: "invalid code"}
	ErrRateLimited = &Error{Code: 45011, Msg: "API minute-quota reached: too frequent"}
	ErrHighRisk    = &Error{Code: 40226, Msg: "high risk user, login blocked"}
)

// Session is a successful exchange. SessionKey is a secret: never send it to
// the client.
type Session struct {
	OpenID     string
	UnionID    string
	SessionKey string
}

// Client calls jscode2session. Safe for concurrent use.
type Client struct {
	baseURL string
	appID   string
	secret  string
	http    *http.Client
}

// New returns a client. baseURL "" means DefaultBaseURL; httpClient nil means
// a client with a 10 s timeout.
func New(baseURL, appID, secret string, httpClient *http.Client) *Client {
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), appID: appID, secret: secret, http: httpClient}
}

type sessionAnswer struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	UnionID    string `json:"unionid"`
	ErrCode    int    `json:"errcode"`
	ErrMsg     string `json:"errmsg"`
}

// Code2Session exchanges code for the user's openid.
func (c *Client) Code2Session(ctx context.Context, code string) (Session, error) {
	code = strings.TrimSpace(code)
	if code == "" {
		return Session{}, &Error{Code: ErrInvalidCode.Code, Msg: "empty code (not sent to WeChat)"}
	}
	q := url.Values{}
	q.Set("appid", c.appID)
	q.Set("secret", c.secret)
	q.Set("js_code", code)
	q.Set("grant_type", "authorization_code")
	endpoint := c.baseURL + "/sns/jscode2session"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return Session{}, fmt.Errorf("wxlogin: build request for %s: %v", endpoint, redact(err))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// A *url.Error would print the URL with the secret: keep only the cause.
		return Session{}, &TransportError{Endpoint: endpoint, Err: redact(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Session{}, &TransportError{Endpoint: endpoint, Err: redact(err)}
	}
	if resp.StatusCode != http.StatusOK {
		return Session{}, &TransportError{Endpoint: endpoint, Status: resp.StatusCode, Err: fmt.Errorf("HTTP %d", resp.StatusCode)}
	}
	var a sessionAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return Session{}, fmt.Errorf("wxlogin: jscode2session answer is not JSON: %v", err)
	}
	if a.ErrCode != 0 {
		return Session{}, &Error{Code: a.ErrCode, Msg: a.ErrMsg}
	}
	if a.OpenID == "" {
		return Session{}, errors.New("wxlogin: jscode2session answer has no openid")
	}
	return Session{OpenID: a.OpenID, UnionID: a.UnionID, SessionKey: a.SessionKey}, nil
}

// TransportError is a failure to get an answer (network, timeout, non-200).
type TransportError struct {
	Endpoint string // without query
	Status   int    // HTTP status, 0 when there was no answer
	Err      error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("wxlogin: GET %s: %v", e.Endpoint, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// Retryable reports whether trying again later may succeed: ErrBusy, network
// errors, timeouts and 5xx/429 answers.
func Retryable(err error) bool {
	if errors.Is(err, ErrBusy) {
		return true
	}
	var te *TransportError
	if errors.As(err, &te) {
		return te.Status == 0 || te.Status >= 500 || te.Status == http.StatusTooManyRequests
	}
	return false
}

func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
