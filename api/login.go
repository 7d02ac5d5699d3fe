package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"ordersaga/internal/wxlogin"
)

// SessionExchanger turns a wx.login code into the user's openid
// (jscode2session); *wxlogin.Client is the real one.
type SessionExchanger interface {
	Code2Session(ctx context.Context, code string) (wxlogin.Session, error)
}

// Codes of the login endpoint.
const (
	CodeInvalidLoginCode = "INVALID_LOGIN_CODE"
	CodeLoginBlocked     = "LOGIN_BLOCKED"
)

// Outcomes of a jscode2session call, the label of
// ordersaga_wechat_login_calls_total: a rise of busy or error means WeChat (or
// the way to it) fails the shop's logins, of rate_limited that the AppID's
// quota is spent, of invalid_code a client bug or someone replaying codes.
const (
	loginOK          = "ok"
	loginInvalidCode = "invalid_code"
	loginBlocked     = "blocked"
	loginBusy        = "busy" // WeChat busy, unreachable, timed out or 5xx: retryable
	loginRateLimited = "rate_limited"
	loginError       = "error"
)

// loginOutcome classifies the answer of Code2Session.
func loginOutcome(err error) string {
	switch {
	case err == nil:
		return loginOK
	case errors.Is(err, wxlogin.ErrInvalidCode):
		return loginInvalidCode
	case errors.Is(err, wxlogin.ErrHighRisk):
		return loginBlocked
	case errors.Is(err, wxlogin.ErrRateLimited):
		return loginRateLimited
	case wxlogin.Retryable(err):
		return loginBusy
	}
	return loginError
}

type loginRequest struct {
	Code string `json:"code"`
}

type loginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// login exchanges the mini-program's wx.login code for a token of ours. The
// session_key WeChat returns stays here: it is never sent to the client.
func (s *server) login(c *gin.Context) {
	var req loginRequest
	if !decodeJSON(c, &req) {
		return
	}
	req.Code = strings.TrimSpace(req.Code)
	if req.Code == "" || len(req.Code) > 128 {
		badRequest(c, "code is required: the code from wx.login()")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	sess, err := s.Login.Code2Session(ctx, req.Code)
	outcome := loginOutcome(err)
	s.logins.WithLabelValues(outcome).Inc()
	switch outcome {
	case loginInvalidCode:
		abortError(c, http.StatusUnauthorized, CodeInvalidLoginCode, "the login code is invalid or already used; call wx.login() again")
		return
	case loginBlocked:
		abortError(c, http.StatusForbidden, CodeLoginBlocked, "WeChat blocked this login as high-risk")
		return
	case loginBusy, loginRateLimited:
		unavailable(c, fmt.Errorf("jscode2session: %w", err))
		return
	case loginError:
		internalError(c, fmt.Errorf("jscode2session: %w", err))
		return
	}
	u, err := s.Store.UpsertUserByOpenID(c.Request.Context(), sess.OpenID)
	if err != nil {
		internalError(c, err)
		return
	}
	c.Set(ctxUserID, u.ID)
	tok, exp, err := s.Tokens.Issue(u.ID)
	if err != nil {
		internalError(c, err)
		return
	}
	c.JSON(http.StatusOK, loginResponse{Token: tok, ExpiresAt: exp.UTC()})
}
