package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/testenv"
)

// Login goes through jscode2session at the simulator over HTTP, so the
// errcodes below are WeChat's answers, not stubs.
func TestLoginExchangesTheCodeForATokenAndMapsWeChatErrors(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"invalid code", map[string]string{"code": "errcode:40029"}, http.StatusUnauthorized, "INVALID_LOGIN_CODE"},
		{"high-risk user", map[string]string{"code": "errcode:40226"}, http.StatusForbidden, "LOGIN_BLOCKED"},
		{"WeChat busy", map[string]string{"code": "errcode:-1"}, http.StatusServiceUnavailable, "UNAVAILABLE"},
		{"rate limited", map[string]string{"code": "errcode:45011"}, http.StatusServiceUnavailable, "UNAVAILABLE"},
		{"the shop's AppSecret is refused", map[string]string{"code": "errcode:40125"}, http.StatusInternalServerError, "INTERNAL"},
		{"no code", map[string]string{"code": "  "}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"malformed JSON", `{"code":`, http.StatusBadRequest, "INVALID_ARGUMENT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.Do(http.MethodPost, "/v1/auth/login", "", tt.body)
			if resp.Status != tt.status || resp.ErrorCode() != tt.code {
				t.Fatalf("got %d %s; want %d %s", resp.Status, resp.Body, tt.status, tt.code)
			}
		})
	}

	var first, again struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	resp := env.Do(http.MethodPost, "/v1/auth/login", "", map[string]string{"code": "code-from-wx-login"})
	if resp.Status != http.StatusOK {
		t.Fatalf("login: %d %s", resp.Status, resp.Body)
	}
	resp.JSON(t, &first)
	if strings.Contains(string(resp.Body), "session_key") {
		t.Fatalf("session_key sent to the client: %s", resp.Body)
	}
	if d := time.Until(first.ExpiresAt); d < 6*24*time.Hour || d > 8*24*time.Hour {
		t.Fatalf("expires_at %v from now, want ~7 days", d)
	}
	// The token works on the order endpoints.
	if r := env.Do(http.MethodGet, "/v1/orders", first.Token, nil); r.Status != http.StatusOK {
		t.Fatalf("token refused: %d %s", r.Status, r.Body)
	}
	// The same WeChat user (same code → same openid at the simulator) is one user row.
	env.Do(http.MethodPost, "/v1/auth/login", "", map[string]string{"code": "code-from-wx-login"}).JSON(t, &again)
	var n int64
	if err := env.Store.DB().WithContext(context.Background()).Table("users").Count(&n).Error; err != nil || n != 1 {
		t.Fatalf("users after two logins of one person: %d (%v)", n, err)
	}

	// Each call to jscode2session is counted by its outcome; the requests
	// refused before it (no code, malformed JSON) are not.
	want := strings.Join([]string{
		`ordersaga_wechat_login_calls_total{outcome="blocked"} 1`,
		`ordersaga_wechat_login_calls_total{outcome="busy"} 1`,
		`ordersaga_wechat_login_calls_total{outcome="error"} 1`,
		`ordersaga_wechat_login_calls_total{outcome="invalid_code"} 1`,
		`ordersaga_wechat_login_calls_total{outcome="ok"} 2`,
		`ordersaga_wechat_login_calls_total{outcome="rate_limited"} 1`,
	}, "\n")
	if got := grepLines(metricsText(t, env), "ordersaga_wechat_login_calls_total{"); got != want {
		t.Errorf("/metrics login calls:\n%s\nwant\n%s", got, want)
	}
}
