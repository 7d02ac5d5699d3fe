package wxlogin_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxlogin"
)

const (
	appID  = "wx_login_test_app"
	secret = "s3cr3t-app-secret"
)

func newSim(t *testing.T, strict bool) (*paysim.Sim, string) {
	t.Helper()
	sim := paysim.New(paysim.Options{AppID: appID, LoginSecret: secret, LoginStrictCodes: strict})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() { sim.Close(); srv.Close() })
	return sim, srv.URL
}

func TestCode2SessionMapsErrorCodes(t *testing.T) {
	_, base := newSim(t, false)
	c := wxlogin.New(base, appID, secret, nil)
	tests := []struct {
		code      string
		want      error
		wantCode  int
		retryable bool
	}{
		{"errcode:-1", wxlogin.ErrBusy, -1, true},
		{"errcode:40029", wxlogin.ErrInvalidCode, 40029, false},
		{"errcode:45011", wxlogin.ErrRateLimited, 45011, false},
		{"errcode:40226", wxlogin.ErrHighRisk, 40226, false},
		{"errcode:40163", nil, 40163, false}, // not one of the four: generic *Error
	}
	typed := []error{wxlogin.ErrBusy, wxlogin.ErrInvalidCode, wxlogin.ErrRateLimited, wxlogin.ErrHighRisk}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			_, err := c.Code2Session(context.Background(), tc.code)
			var e *wxlogin.Error
			if !errors.As(err, &e) || e.Code != tc.wantCode || e.Msg == "" {
				t.Fatalf("err %v, want *wxlogin.Error with code %d and a message", err, tc.wantCode)
			}
			for _, target := range typed {
				if got, want := errors.Is(err, target), target == tc.want; got != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", target, got, want)
				}
			}
			if got := wxlogin.Retryable(err); got != tc.retryable {
				t.Errorf("Retryable = %v, want %v", got, tc.retryable)
			}
		})
	}
}

func TestCode2Session(t *testing.T) {
	ctx := context.Background()
	t.Run("any code maps to a stable openid", func(t *testing.T) {
		_, base := newSim(t, false)
		c := wxlogin.New(base, appID, secret, nil)
		s1, err := c.Code2Session(ctx, "code-alice")
		if err != nil {
			t.Fatal(err)
		}
		s2, err := c.Code2Session(ctx, "code-alice")
		if err != nil {
			t.Fatal(err)
		}
		if s1.OpenID == "" || s1.OpenID != s2.OpenID || s1.OpenID != paysim.OpenIDFor(appID, "code-alice") || s1.SessionKey == "" {
			t.Errorf("sessions %+v %+v", s1, s2)
		}
		other, err := c.Code2Session(ctx, "code-bob")
		if err != nil || other.OpenID == s1.OpenID {
			t.Errorf("another code gave %+v (%v)", other, err)
		}
	})
	t.Run("strict: a code works once", func(t *testing.T) {
		_, base := newSim(t, true)
		c := wxlogin.New(base, appID, secret, nil)
		if _, err := c.Code2Session(ctx, "once"); err != nil {
			t.Fatal(err)
		}
		_, err := c.Code2Session(ctx, "once")
		var e *wxlogin.Error
		if !errors.As(err, &e) || e.Code != 40163 {
			t.Errorf("second use: %v, want errcode 40163", err)
		}
	})
	t.Run("wrong secret is a generic error", func(t *testing.T) {
		_, base := newSim(t, false)
		_, err := wxlogin.New(base, appID, "wrong", nil).Code2Session(ctx, "c")
		var e *wxlogin.Error
		if !errors.As(err, &e) || e.Code != 40125 || wxlogin.Retryable(err) {
			t.Errorf("err %v, want errcode 40125, not retryable", err)
		}
	})
	t.Run("injected fault maps too, once", func(t *testing.T) {
		sim, base := newSim(t, false)
		if _, err := sim.ApplyFaults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{
			paysim.EndpointLogin: {ErrCode: 45011, Count: 1},
		}}); err != nil {
			t.Fatal(err)
		}
		c := wxlogin.New(base, appID, secret, nil)
		if _, err := c.Code2Session(ctx, "c"); !errors.Is(err, wxlogin.ErrRateLimited) {
			t.Errorf("err %v, want ErrRateLimited", err)
		}
		if _, err := c.Code2Session(ctx, "c"); err != nil {
			t.Errorf("after the fault: %v", err)
		}
	})
	t.Run("HTTP 502 is retryable", func(t *testing.T) {
		sim, base := newSim(t, false)
		if _, err := sim.ApplyFaults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{
			paysim.EndpointLogin: {Status: 502},
		}}); err != nil {
			t.Fatal(err)
		}
		_, err := wxlogin.New(base, appID, secret, nil).Code2Session(ctx, "c")
		var te *wxlogin.TransportError
		if !errors.As(err, &te) || te.Status != 502 || !wxlogin.Retryable(err) {
			t.Errorf("err %v, want a retryable TransportError 502", err)
		}
	})
	t.Run("network failure is retryable and does not leak the secret", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = wxlogin.New("http://"+addr, appID, secret, &http.Client{Timeout: 2 * time.Second}).Code2Session(ctx, "the-code")
		if err == nil || !wxlogin.Retryable(err) {
			t.Fatalf("err %v, want retryable", err)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "the-code") {
			t.Errorf("error text leaks the query: %q", err)
		}
	})
	t.Run("empty code is refused without a call", func(t *testing.T) {
		_, err := wxlogin.New("http://127.0.0.1:1", appID, secret, nil).Code2Session(ctx, "  ")
		if !errors.Is(err, wxlogin.ErrInvalidCode) {
			t.Errorf("err %v, want ErrInvalidCode", err)
		}
	})
	t.Run("answer without openid is an error", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"session_key":"k"}`))
		}))
		defer srv.Close()
		if _, err := wxlogin.New(srv.URL, appID, secret, nil).Code2Session(ctx, "c"); err == nil {
			t.Error("no error")
		}
	})
}
