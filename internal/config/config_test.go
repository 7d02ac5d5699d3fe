package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/ratelimit"
)

// validProduction is a complete production environment; tests remove or break one
// variable at a time.
func validProduction(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "apiclient_key.pem")
	pub := filepath.Join(dir, "pub_key.pem")
	for _, f := range []string{key, pub} {
		if err := os.WriteFile(f, []byte("-----BEGIN PRIVATE KEY-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return map[string]string{
		"DATABASE_URL":                   "postgres://ordersaga:secret@db:5432/ordersaga?sslmode=disable",
		"TEMPORAL_ADDRESS":               "temporal:7233",
		"WECHAT_APPID":                   "wx1234567890abcdef",
		"WECHAT_APP_SECRET":              "appsecret",
		"WECHATPAY_MCHID":                "1900000001",
		"WECHATPAY_MCH_CERT_SERIAL":      "3775B6A45ACD588826D15E583A95F5DD00000000",
		"WECHATPAY_MCH_PRIVATE_KEY_FILE": key,
		"WECHATPAY_APIV3_KEY":            "0123456789abcdef0123456789abcdef",
		"WECHATPAY_PUBLIC_KEY_ID":        "PUB_KEY_ID_0000000000000000000000000000000001",
		"WECHATPAY_PUBLIC_KEY_FILE":      pub,
		"WECHATPAY_NOTIFY_URL":           "https://shop.example.com/v1/wechatpay/notify",
		"JWT_SECRET":                     strings.Repeat("s", 32),
		"ADMIN_TOKEN":                    "admin-token-0123456789",
	}
}

func TestCompleteProductionConfigLoadsWithDefaults(t *testing.T) {
	env := validProduction(t)
	for _, mode := range []Mode{ModeAPI, ModeWorker, ModeMigrate} {
		c, err := Load(mode, func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%s: unexpected error: %v", mode, err)
		}
		if c.TemporalNamespace != "default" || c.TemporalTaskQueue != "orders" {
			t.Errorf("%s: namespace/queue defaults = %q/%q", mode, c.TemporalNamespace, c.TemporalTaskQueue)
		}
		if c.OrderPayTimeout != 15*time.Minute {
			t.Errorf("%s: ORDER_PAY_TIMEOUT default = %v, want 15m", mode, c.OrderPayTimeout)
		}
		if c.PayBaseURL != DefaultWechatPayBaseURL {
			t.Errorf("%s: WECHATPAY_BASE_URL default = %q", mode, c.PayBaseURL)
		}
	}
}

func TestMissingProductionVariableIsNamed(t *testing.T) {
	for _, v := range Vars() {
		for _, mode := range v.Required {
			t.Run(string(mode)+"/"+v.Name, func(t *testing.T) {
				env := validProduction(t)
				delete(env, v.Name)
				_, err := Load(mode, func(k string) string { return env[k] })
				if err == nil {
					t.Fatalf("Load(%s) without %s succeeded", mode, v.Name)
				}
				if !strings.Contains(err.Error(), v.Name) {
					t.Fatalf("error does not name %s: %v", v.Name, err)
				}
			})
		}
	}
}

func TestMalformedVariableIsNamed(t *testing.T) {
	tests := []struct {
		name, value string
	}{
		{"DATABASE_URL", "mysql://root@db/shop"},
		{"TEMPORAL_ADDRESS", "temporal"},
		{"HTTP_ADDR", "8080"},
		{"WECHATPAY_APIV3_KEY", "too-short"},
		{"WECHATPAY_BASE_URL", "ftp://example.com"},
		{"WECHATPAY_NOTIFY_URL", "not a url"},
		{"WECHATPAY_NOTIFY_URL", "http://shop.example.com/v1/wechatpay/notify"},
		{"WECHATPAY_NOTIFY_URL", "http://10.0.0.5:8080/v1/wechatpay/notify"},
		{"WECHATPAY_NOTIFY_ALLOW_HTTP", "yes please"},
		{"RATE_LIMIT_USER", "fast"},
		{"RATE_LIMIT_USER", "60"},
		{"RATE_LIMIT_USER", "-5/1m"},
		{"RATE_LIMIT_USER", "60/0s"},
		{"RATE_LIMIT_LOGIN", "30/a minute"},
		{"HTTP_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal"},
		{"ORDER_PAY_TIMEOUT", "fifteen minutes"},
		{"ORDER_PAY_TIMEOUT", "-1m"},
		{"JWT_SECRET", "short"},
		{"ADMIN_TOKEN", "admin"},
		{"WECHATPAY_PUBLIC_KEY_FILE", "/nonexistent/pub_key.pem"},
		{"LOG_LEVEL", "verbose"},
		{"WECHAT_SHIPPING_MANAGED", "maybe"},
		{"WECHAT_PUSH_TOKEN", "ab"},
		{"WECHAT_PUSH_TOKEN", "has-dashes"},
		{"WECHAT_PUSH_AES_KEY", "too-short"},
		{"WECHAT_SHIPPING_MSG_JUMP_PATH", "/pages/orders/detail"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			env := validProduction(t)
			env[tt.name] = tt.value
			for _, mode := range []Mode{ModeAPI, ModeWorker} {
				_, err := Load(mode, func(k string) string { return env[k] })
				if err == nil || !strings.Contains(err.Error(), tt.name) {
					t.Fatalf("%s: want an error naming %s, got %v", mode, tt.name, err)
				}
			}
		})
	}
}

func TestDevModeNeedsNothing(t *testing.T) {
	c, err := Load(ModeDev, func(string) string { return "" })
	if err != nil {
		t.Fatalf("dev with an empty environment: %v", err)
	}
	if c.DatabaseURL != "" || c.TemporalAddress != "" {
		t.Fatalf("dev should leave DATABASE_URL and TEMPORAL_ADDRESS empty (embedded), got %q %q", c.DatabaseURL, c.TemporalAddress)
	}
	if c.HTTPAddr != ":8080" {
		t.Fatalf("HTTP_ADDR default = %q", c.HTTPAddr)
	}
}

func TestEveryErrorIsReportedAtOnce(t *testing.T) {
	_, err := Load(ModeWorker, func(string) string { return "" })
	if err == nil {
		t.Fatal("empty worker environment accepted")
	}
	for _, name := range []string{"DATABASE_URL", "TEMPORAL_ADDRESS", "WECHATPAY_MCHID", "WECHATPAY_MCH_PRIVATE_KEY_FILE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error misses %s:\n%v", name, err)
		}
	}
}

func TestNotifyURLIsHTTPSUnlessLoopbackOrTheSimulator(t *testing.T) {
	tests := []struct {
		url, allowHTTP string
		ok             bool
	}{
		{"https://shop.example.com/v1/wechatpay/notify", "", true},
		{"http://127.0.0.1:8080/v1/wechatpay/notify", "", true},
		{"http://[::1]:8080/v1/wechatpay/notify", "", true},
		{"http://localhost:8080/v1/wechatpay/notify", "", true},
		{"http://api:8080/v1/wechatpay/notify", "true", true}, // the demo: paysim on the compose network
		{"http://api:8080/v1/wechatpay/notify", "", false},
		{"http://api:8080/v1/wechatpay/notify", "false", false},
		{"http://127.0.0.1.example.com/notify", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.url+" allow="+tt.allowHTTP, func(t *testing.T) {
			env := validProduction(t)
			env["WECHATPAY_NOTIFY_URL"], env["WECHATPAY_NOTIFY_ALLOW_HTTP"] = tt.url, tt.allowHTTP
			for _, mode := range []Mode{ModeAPI, ModeWorker} {
				_, err := Load(mode, func(k string) string { return env[k] })
				if (err == nil) != tt.ok {
					t.Fatalf("%s: err %v, want accepted %v", mode, err, tt.ok)
				}
			}
		})
	}
}

func TestRatesAndTrustedProxiesAreRead(t *testing.T) {
	env := validProduction(t)
	c, err := Load(ModeAPI, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimitUser != (ratelimit.Rate{Requests: 60, Per: time.Minute}) || c.RateLimitLogin != (ratelimit.Rate{Requests: 30, Per: time.Minute}) || len(c.TrustedProxies) != 0 {
		t.Fatalf("defaults: user %v, login %v, proxies %v", c.RateLimitUser, c.RateLimitLogin, c.TrustedProxies)
	}
	env["RATE_LIMIT_USER"], env["RATE_LIMIT_LOGIN"], env["HTTP_TRUSTED_PROXIES"] = "5/10s", "off", " 10.0.0.0/8, 192.168.1.7 "
	if c, err = Load(ModeAPI, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.RateLimitUser != (ratelimit.Rate{Requests: 5, Per: 10 * time.Second}) || c.RateLimitLogin.Limited() || !slices.Equal(c.TrustedProxies, []string{"10.0.0.0/8", "192.168.1.7"}) {
		t.Fatalf("read: user %v, login %v, proxies %q", c.RateLimitUser, c.RateLimitLogin, c.TrustedProxies)
	}
}

// The message push settings go together; the API needs them when shipping
// management is on (settlement events arrive there), and a worker that
// calls no mini-program API needs no AppSecret.
func TestShippingManagementSettings(t *testing.T) {
	const token, key = "pushToken01", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	tests := []struct {
		name    string
		mode    Mode
		set     map[string]string
		unset   []string
		wantErr string // "" = loads
	}{
		{"api, auto, no push: the endpoint is off", ModeAPI, nil, nil, ""},
		{"api, on, no push", ModeAPI, map[string]string{"WECHAT_SHIPPING_MANAGED": "on"}, nil, "WECHAT_PUSH_TOKEN"},
		{"api, on, with push", ModeAPI, map[string]string{"WECHAT_SHIPPING_MANAGED": "on", "WECHAT_PUSH_TOKEN": token, "WECHAT_PUSH_AES_KEY": key}, nil, ""},
		{"api, token without key", ModeAPI, map[string]string{"WECHAT_PUSH_TOKEN": token}, nil, "WECHAT_PUSH_AES_KEY"},
		{"api, key without token", ModeAPI, map[string]string{"WECHAT_PUSH_AES_KEY": key}, nil, "WECHAT_PUSH_TOKEN"},
		{"worker, on, no push: the API receives events", ModeWorker, map[string]string{"WECHAT_SHIPPING_MANAGED": "ON"}, nil, ""},
		{"worker, auto, no AppSecret", ModeWorker, nil, []string{"WECHAT_APP_SECRET"}, "WECHAT_APP_SECRET"},
		{"worker, off, no AppSecret", ModeWorker, map[string]string{"WECHAT_SHIPPING_MANAGED": "off"}, []string{"WECHAT_APP_SECRET"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := validProduction(t)
			for k, v := range tc.set {
				env[k] = v
			}
			for _, k := range tc.unset {
				delete(env, k)
			}
			c, err := Load(tc.mode, func(k string) string { return env[k] })
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("want an error naming %s, got %v", tc.wantErr, err)
			case err == nil && c.PushEnabled() != (env["WECHAT_PUSH_TOKEN"] != ""):
				t.Errorf("PushEnabled = %v", c.PushEnabled())
			}
		})
	}
}
