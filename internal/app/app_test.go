package app_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"

	"ordersaga/internal/app"
	"ordersaga/internal/config"
	"ordersaga/internal/paysim"
	"ordersaga/internal/store/storetest"
)

// TestAPIDoesNotServeTheDemoPage: the handler `ordersaga api` serves
// (RunAPI serves NewAPIHandler's handler as it is) has no /demo: the demo
// page and its proxy to the simulator's control API exist only in `ordersaga
// dev`, which wraps the API in internal/demo. A production API that played
// the payer through a simulator would be a hole, so this is checked on the
// real handler, configured from the environment as in production.
func TestAPIDoesNotServeTheDemoPage(t *testing.T) {
	dir := t.TempDir()
	keys, err := paysim.EnsureDevKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"HTTP_ADDR": "127.0.0.1:0",
		// Only checked for its form here: the store below is the embedded
		// one, so the test needs no database server.
		"DATABASE_URL":        "postgres://ordersaga@127.0.0.1:1/ordersaga?sslmode=disable",
		"TEMPORAL_ADDRESS":    "127.0.0.1:1", // never dialled: the client is lazy
		"WECHAT_APPID":        "wx0000000000test01",
		"WECHAT_APP_SECRET":   "test-app-secret",
		"WECHAT_API_BASE_URL": "http://127.0.0.1:1",
		"WECHATPAY_MCHID":     "1900000109",
		"JWT_SECRET":          strings.Repeat("j", 32),
		"ADMIN_TOKEN":         "admin-token-for-tests",
	}
	for k, v := range keys.Env("http://127.0.0.1:1", "http://127.0.0.1:1/v1/wechatpay/notify") {
		env[k] = v
	}
	cfg, err := config.Load(config.ModeAPI, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	st := storetest.NewSQLite(t)
	tc, err := client.NewLazyClient(client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	reg, _ := app.NewMetrics()
	h, err := app.NewAPIHandler(cfg, st, tc, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("NewAPIHandler: %v", err)
	}

	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	// The handler is the working API (so a 404 below is not a broken handler).
	if code, body := get("/v1/products"); code != http.StatusOK {
		t.Fatalf("GET /v1/products: %d %s", code, body)
	}
	for _, path := range []string{"/demo/", "/demo", "/demo/index.html", "/demo/config.json", "/demo/sim/settings", "/demo/sim/transactions/x"} {
		if code, body := get(path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 (the demo page is dev only): %.200s", path, code, body)
		}
	}
}

// RunRole starts only the production roles, and one whose configuration is
// incomplete not at all: the error says which.
func TestRunRoleRefusesAnUnknownRoleAndAMissingConfiguration(t *testing.T) {
	empty := func(string) string { return "" }
	tests := []struct {
		mode config.Mode
		want string
	}{
		{config.ModeDev, "unknown role"},
		{"nonsense", "unknown role"},
		{config.ModeAPI, "configuration:"},
		{config.ModeWorker, "configuration:"},
		{config.ModeMigrate, "configuration:"},
	}
	for _, tt := range tests {
		err := app.RunRole(t.Context(), tt.mode, empty)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("RunRole(%q) = %v, want an error saying %q", tt.mode, err, tt.want)
		}
		if unknown := errors.Is(err, app.ErrUnknownRole); unknown != (tt.want == "unknown role") {
			t.Errorf("RunRole(%q): errors.Is(ErrUnknownRole) = %v", tt.mode, unknown)
		}
	}
}
