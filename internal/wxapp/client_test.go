package wxapp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxapp"
)

const (
	appID  = "wx_wxapp_test_app"
	secret = "s3cr3t-wxapp-app-secret"
	mchID  = "1900000555"
)

// clock is a settable clock shared by the simulator and the client.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	sim   *paysim.Sim
	url   string
	clock *clock
	logs  *syncBuffer
	// calls counts the client's calls by name (OnCall).
	mu    sync.Mutex
	calls map[string]int
}

func newFixture(t *testing.T, mod func(*paysim.Options)) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{now: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}, calls: map[string]int{}}
	opts := paysim.Options{AppID: appID, MchID: mchID, LoginSecret: secret, Clock: f.clock.Now}
	if mod != nil {
		mod(&opts)
	}
	f.sim = paysim.New(opts)
	srv := httptest.NewServer(f.sim.Handler())
	t.Cleanup(func() { f.sim.Close(); srv.Close() })
	f.url = srv.URL
	return f
}

func (f *fixture) client(now func() time.Time) *wxapp.Client {
	if now == nil {
		now = f.clock.Now
	}
	return wxapp.New(wxapp.Options{
		BaseURL: f.url, AppID: appID, Secret: secret, Now: now,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnCall: func(op string, _ error, _ time.Duration) {
			f.mu.Lock()
			f.calls[op]++
			f.mu.Unlock()
		},
	})
}

func (f *fixture) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// paid is a paid transaction at the simulator (no prepay needed).
func (f *fixture) paid(t *testing.T, no string) paysim.TransactionView {
	t.Helper()
	v, err := f.sim.ExternalPayment(paysim.ExternalPaymentInput{OutTradeNo: no, TotalFen: 3900})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// token asks the simulator for the token over HTTP, as another process of
// the shop would (stable_token without force_refresh).
func (f *fixture) token(t *testing.T) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"grant_type": "client_credential", "appid": appID, "secret": secret})
	resp, err := http.Post(f.url+"/cgi-bin/stable_token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || a.AccessToken == "" {
		t.Fatalf("stable_token: %v %+v", err, a)
	}
	return a.AccessToken
}

func TestOneAccessTokenServesEveryCallOfAProcess(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(nil)
	ctx := context.Background()
	for range 5 {
		if _, err := c.IsTradeManaged(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count("stable_token"); n != 1 {
		t.Errorf("stable_token asked %d times for 5 calls, want 1", n)
	}
	// A second process gets the same token from WeChat: no shared cache needed.
	other := f.client(nil)
	if _, err := other.IsTradeManaged(ctx); err != nil {
		t.Fatal(err)
	}
	if w := f.sim.Wxa(); w.TokensIssued != 1 || w.ForceRefreshes != 0 {
		t.Errorf("WeChat issued %d tokens (%d forced) to two processes, want 1 and 0", w.TokensIssued, w.ForceRefreshes)
	}
}

func TestAccessTokenIsRenewedBeforeItExpires(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(nil)
	ctx := context.Background()
	if _, err := c.IsTradeManaged(ctx); err != nil {
		t.Fatal(err)
	}
	first := f.token(t)
	// Four minutes before expiry the token is renewed before it is used:
	// no call is ever refused for an expired token.
	f.clock.Advance(paysim.DefaultTokenTTL - 4*time.Minute)
	if _, err := c.IsTradeManaged(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.count("stable_token"); n != 2 {
		t.Errorf("stable_token asked %d times, want 2 (renewed once)", n)
	}
	if second := f.token(t); second == first {
		t.Error("the token near its expiry was not replaced")
	}
	// And then it is kept again.
	for range 3 {
		if _, err := c.IsTradeManaged(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count("stable_token"); n != 2 {
		t.Errorf("stable_token asked %d times after the renewal, want 2", n)
	}
}

func TestRefusedTokenIsRenewedOnceAndTheCallSentAgain(t *testing.T) {
	tests := []struct {
		name string
		// refuse makes WeChat refuse the client's token.
		refuse         func(f *fixture)
		wantForce      int
		wantTokenCalls int
	}{
		{"renewed elsewhere (40001): the plain stable_token has the new one", func(f *fixture) { f.sim.RevokeToken(false) }, 0, 2},
		{"refused yet still handed out: force_refresh, once", func(f *fixture) { f.sim.RevokeToken(true) }, 1, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			c := f.client(nil)
			ctx := context.Background()
			if _, err := c.IsTradeManaged(ctx); err != nil {
				t.Fatal(err)
			}
			tc.refuse(f)
			if _, err := c.IsTradeManaged(ctx); err != nil {
				t.Fatalf("the call after the token was refused: %v", err)
			}
			if w := f.sim.Wxa(); w.ForceRefreshes != tc.wantForce {
				t.Errorf("force_refresh used %d times, want %d", w.ForceRefreshes, tc.wantForce)
			}
			if n := f.count("stable_token"); n != tc.wantTokenCalls {
				t.Errorf("stable_token asked %d times, want %d", n, tc.wantTokenCalls)
			}
			if n := f.count("is_trade_managed"); n != 2 {
				t.Errorf("is_trade_managed counted %d times, want 2 (each call once, its retry inside)", n)
			}
		})
	}
}

// force_refresh is rate-limited by WeChat: a second refusal within the
// hour fails the call instead of spending another one — and never loops.
func TestForceRefreshIsNotSpentTwiceInARow(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(nil)
	ctx := context.Background()
	if _, err := c.IsTradeManaged(ctx); err != nil {
		t.Fatal(err)
	}
	f.sim.RevokeToken(true)
	if _, err := c.IsTradeManaged(ctx); err != nil {
		t.Fatal(err)
	}
	f.sim.RevokeToken(true)
	_, err := c.IsTradeManaged(ctx)
	if !wxapp.HasCode(err, wxapp.CodeInvalidCredential) {
		t.Fatalf("second refusal within the hour: %v, want errcode 40001", err)
	}
	if w := f.sim.Wxa(); w.ForceRefreshes != 1 {
		t.Errorf("force_refresh used %d times, want 1", w.ForceRefreshes)
	}
	if wxapp.Retryable(err) {
		t.Error("a refused token is not retryable as it is")
	}
	// Two hours on, it may be used again.
	f.clock.Advance(2*time.Hour + time.Minute)
	if _, err := c.IsTradeManaged(ctx); err != nil {
		t.Fatalf("after two hours: %v", err)
	}
}

// WeChat expired the token while this process still thought it good (its
// clock behind WeChat's): 42001, renewed, sent again.
func TestExpiredTokenIsRenewed(t *testing.T) {
	f := newFixture(t, nil)
	behind := &clock{now: f.clock.Now()}
	c := f.client(behind.Now)
	ctx := context.Background()
	if _, err := c.IsTradeManaged(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(paysim.DefaultTokenTTL + time.Minute)
	if _, err := c.IsTradeManaged(ctx); err != nil {
		t.Fatalf("after WeChat expired the token: %v", err)
	}
	if n := f.count("stable_token"); n != 2 {
		t.Errorf("stable_token asked %d times, want 2", n)
	}
}

func TestErrorsSayWhetherToRetry(t *testing.T) {
	tests := []struct {
		name      string
		fault     paysim.EndpointFault
		wantCode  int
		retryable bool
	}{
		{"busy", paysim.EndpointFault{ErrCode: -1}, wxapp.CodeBusy, true},
		{"payment not visible yet", paysim.EndpointFault{ErrCode: 10060001}, wxapp.CodePaymentNotFound, false},
		{"shipping busy", paysim.EndpointFault{ErrCode: 10060012}, wxapp.CodeShippingBusy, true},
		{"HTTP 502", paysim.EndpointFault{Status: 502}, 0, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			c := f.client(nil)
			tx := f.paid(t, fmt.Sprintf("WXAERR%02d", i))
			if _, err := f.sim.ApplyFaults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{paysim.EndpointGetOrder: &tc.fault}}); err != nil {
				t.Fatal(err)
			}
			_, err := c.GetOrder(context.Background(), wxapp.OrderRef{TransactionID: tx.TransactionID})
			if err == nil {
				t.Fatal("no error")
			}
			if tc.wantCode != 0 && !wxapp.HasCode(err, tc.wantCode) {
				t.Errorf("err %v, want errcode %d", err, tc.wantCode)
			}
			var te *wxapp.TransportError
			if tc.wantCode == 0 && !errors.As(err, &te) {
				t.Errorf("err %v (%T), want a *TransportError", err, err)
			}
			if got := wxapp.Retryable(err); got != tc.retryable {
				t.Errorf("Retryable = %v, want %v", got, tc.retryable)
			}
			// The fault was one call: the next one answers.
			if _, err := c.GetOrder(context.Background(), wxapp.OrderRef{TransactionID: tx.TransactionID}); err != nil {
				t.Errorf("after the fault: %v", err)
			}
		})
	}
}

// Neither the AppSecret nor a token reaches a log line or an error text,
// whatever goes wrong: a refused token, an unreachable host, an errcode.
func TestSecretAndTokensNeverInLogsOrErrors(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(nil)
	ctx := context.Background()
	var errs []error
	if _, err := c.IsTradeManaged(ctx); err != nil {
		t.Fatal(err)
	}
	tokens := []string{f.token(t)}
	f.sim.RevokeToken(true) // refused: renewed with force_refresh
	if _, err := c.IsTradeManaged(ctx); err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, f.token(t))
	f.sim.RevokeToken(true) // refused again: the call fails
	_, err := c.IsTradeManaged(ctx)
	errs = append(errs, err)
	tokens = append(tokens, f.token(t))
	if _, err := f.sim.ApplyFaults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{paysim.EndpointGetOrder: {Status: 500}}}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(3 * time.Hour)
	_, err = c.GetOrder(ctx, wxapp.OrderRef{TransactionID: "4200000000000000000000000001"})
	errs = append(errs, err)
	// A wrong secret, and a host that does not answer (the URL with the
	// token would be in a *url.Error).
	bad := wxapp.New(wxapp.Options{BaseURL: f.url, AppID: appID, Secret: secret + "-wrong", Now: f.clock.Now})
	_, err = bad.IsTradeManaged(ctx)
	errs = append(errs, err)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	gone := wxapp.New(wxapp.Options{BaseURL: dead.URL, AppID: appID, Secret: secret, Now: f.clock.Now})
	_, err = gone.IsTradeManaged(ctx)
	errs = append(errs, err)

	logs := f.logs.String()
	if !strings.Contains(logs, "access token") {
		t.Fatalf("the client logged nothing about its token: %q", logs)
	}
	for i, err := range errs {
		if err == nil {
			t.Fatalf("error %d: nil, want a failure", i)
		}
		for _, s := range append([]string{secret}, tokens...) {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error %q carries a secret", err)
			}
		}
	}
	for _, s := range append([]string{secret}, tokens...) {
		if strings.Contains(logs, s) {
			t.Errorf("the logs carry a secret:\n%s", logs)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
