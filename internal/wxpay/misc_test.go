package wxpay_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"

	"ordersaga/internal/wxpay"
)

// bodyRewriter changes the request body after the SDK signed it.
type bodyRewriter struct {
	old, new string
	next     http.RoundTripper
}

func (b *bodyRewriter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		data, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		data = bytes.Replace(data, []byte(b.old), []byte(b.new), 1)
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(data))
		req.ContentLength = int64(len(data))
	}
	return b.next.RoundTrip(req)
}

func TestSimulatorRefusesBadRequestSignatures(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		client func(t *testing.T, e *env) *wxpay.Client
		setup  func(e *env)
	}{
		{
			name: "signed with another key",
			client: func(t *testing.T, e *env) *wxpay.Client {
				return e.clientWith(t, func(c *wxpay.Config) { c.MchPrivateKey = otherKey })
			},
		},
		{
			name: "body changed after signing",
			client: func(t *testing.T, e *env) *wxpay.Client {
				return e.clientWith(t, func(c *wxpay.Config) {
					c.Transport = &bodyRewriter{old: `"total":1000`, new: `"total":1`, next: http.DefaultTransport}
				})
			},
		},
		{
			name: "another certificate serial",
			client: func(t *testing.T, e *env) *wxpay.Client {
				return e.clientWith(t, func(c *wxpay.Config) { c.MchCertSerial = "0123456789ABCDEF0123456789ABCDEF01234567" })
			},
		},
		{
			name:  "timestamp 6 minutes away from WeChat's clock",
			setup: func(e *env) { e.clock.Advance(6 * time.Minute) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			c := e.client
			if tc.client != nil {
				c = tc.client(t, e)
			}
			no := newOrderNo()
			_, err := c.Prepay(ctx, wxpay.PrepayRequest{OutTradeNo: no, Description: "d", TotalFen: 1000, PayerOpenID: "o1"})
			wantErr(t, err, wxpay.KindPermanent, "SIGN_ERROR", http.StatusUnauthorized)
			if _, ok := e.sim.Transaction(no); ok {
				t.Error("the simulator created the order anyway")
			}
		})
	}
	t.Run("unsigned request", func(t *testing.T) {
		e := newEnv(t)
		resp, err := http.Post(e.simURL+"/v3/pay/transactions/jsapi", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "SIGN_ERROR") {
			t.Errorf("got %d %s, want 401 SIGN_ERROR", resp.StatusCode, body)
		}
	})
}

func TestClientUsesWrongPublicKeyID(t *testing.T) {
	e := newEnv(t)
	c := e.clientWith(t, func(cfg *wxpay.Config) { cfg.PublicKeyID = "PUB_KEY_ID_NOT_THE_SIMULATORS" })
	_, err := c.QueryOrder(context.Background(), newOrderNo())
	wantErr(t, err, wxpay.KindPermanent, "INVALID_REQUEST", http.StatusBadRequest)
}

func TestClassify(t *testing.T) {
	apiErr := func(status int, code string) error {
		return &core.APIError{StatusCode: status, Code: code, Header: http.Header{"Request-Id": {"x"}}}
	}
	tests := []struct {
		name string
		err  error
		want wxpay.ErrorKind
		code string
	}{
		{"nil", nil, wxpay.KindNone, ""},
		{"500", apiErr(500, "SYSTEM_ERROR"), wxpay.KindRetryable, "SYSTEM_ERROR"},
		{"502 without code", apiErr(502, ""), wxpay.KindRetryable, ""},
		{"429", apiErr(429, "FREQUENCY_LIMITED"), wxpay.KindRetryable, "FREQUENCY_LIMITED"},
		{"SYSTEM_ERROR on a 4xx", apiErr(400, "SYSTEM_ERROR"), wxpay.KindRetryable, "SYSTEM_ERROR"},
		{"FREQUENCY_LIMITED on a 403", apiErr(403, "FREQUENCY_LIMITED"), wxpay.KindRetryable, "FREQUENCY_LIMITED"},
		{"PARAM_ERROR", apiErr(400, "PARAM_ERROR"), wxpay.KindPermanent, "PARAM_ERROR"},
		{"SIGN_ERROR", apiErr(401, "SIGN_ERROR"), wxpay.KindPermanent, "SIGN_ERROR"},
		{"ORDER_NOT_EXIST", apiErr(404, "ORDER_NOT_EXIST"), wxpay.KindPermanent, "ORDER_NOT_EXIST"},
		{"NOT_ENOUGH", apiErr(403, "NOT_ENOUGH"), wxpay.KindPermanent, "NOT_ENOUGH"},
		{"wrapped APIError", fmt.Errorf("activity: %w", apiErr(503, "SYSTEM_ERROR")), wxpay.KindRetryable, "SYSTEM_ERROR"},
		{"deadline", context.DeadlineExceeded, wxpay.KindRetryable, ""},
		{"url error", &url.Error{Op: "Post", URL: "https://api.mch.weixin.qq.com", Err: io.ErrUnexpectedEOF}, wxpay.KindRetryable, ""},
		{"net error", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, wxpay.KindRetryable, ""},
		{"verification failed", &wxpay.Error{Op: "query", Kind: wxpay.KindUnknown, StatusCode: 200, Err: errors.New("verify")}, wxpay.KindUnknown, ""},
		{"anything else", errors.New("boom"), wxpay.KindPermanent, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := wxpay.Classify(tc.err); got != tc.want {
				t.Errorf("Classify = %v, want %v", got, tc.want)
			}
			if got := wxpay.Code(tc.err); got != tc.code {
				t.Errorf("Code = %q, want %q", got, tc.code)
			}
		})
	}
}

func TestErrorTextIsShort(t *testing.T) {
	e := newEnv(t)
	_, err := e.client.QueryOrder(context.Background(), newOrderNo())
	var we *wxpay.Error
	if !errors.As(err, &we) {
		t.Fatalf("err %T, want *wxpay.Error", err)
	}
	var ae *core.APIError
	if !errors.As(err, &ae) || ae.Code != "ORDER_NOT_EXIST" {
		t.Errorf("the SDK's *core.APIError is not reachable with errors.As")
	}
	if msg := err.Error(); strings.Contains(msg, "Header") || strings.Contains(msg, "Wechatpay-Signature") {
		t.Errorf("error text dumps headers: %q", msg)
	}
}

func TestNewClientDoesNoNetworkIO(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := wxpay.Config{
		AppID: "wx1", MchID: "1900000001", MchCertSerial: devKeys.MchCertSerial, MchPrivateKey: devKeys.MchPrivateKey,
		APIv3Key: devKeys.APIv3Key, PublicKeyID: devKeys.PublicKeyID, PublicKey: devKeys.PublicKey,
		NotifyURL: "https://shop.example.com/v1/wechatpay/notify", BaseURL: "http://" + addr,
	}
	c, err := wxpay.NewClient(cfg)
	if err != nil {
		t.Fatalf("construction failed: %v", err)
	}
	_, err = c.QueryOrder(context.Background(), "ORDER123456")
	wantErr(t, err, wxpay.KindRetryable, "", 0)
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, block *pem.Block) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pkcs1 := write("pkcs1.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(devKeys.MchPrivateKey)})
	cert := write("cert.pem", &pem.Block{Type: "CERTIFICATE", Bytes: []byte("not really")})

	t.Run("PKCS#1 private key is refused with advice", func(t *testing.T) {
		_, err := wxpay.LoadPrivateKeyFile(pkcs1)
		if err == nil || !strings.Contains(err.Error(), "PKCS#8") {
			t.Errorf("err %v, want a PKCS#8 hint", err)
		}
	})
	t.Run("a certificate is not a public key", func(t *testing.T) {
		_, err := wxpay.LoadPublicKeyFile(cert)
		if err == nil || !strings.Contains(err.Error(), "BEGIN PUBLIC KEY") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := wxpay.LoadPrivateKeyFile(filepath.Join(dir, "nope.pem")); err == nil {
			t.Error("no error")
		}
	})
	t.Run("generated dev keys load", func(t *testing.T) {
		if _, err := wxpay.LoadPrivateKeyFile(devKeys.MchPrivateKeyFile); err != nil {
			t.Error(err)
		}
		if _, err := wxpay.LoadPublicKeyFile(devKeys.PublicKeyFile); err != nil {
			t.Error(err)
		}
	})
	t.Run("ConfigFromEnv reads and validates", func(t *testing.T) {
		vars := map[string]string{
			wxpay.EnvAppID: "wx1", wxpay.EnvMchID: "1900000001", wxpay.EnvMchCertSerial: devKeys.MchCertSerial,
			wxpay.EnvMchPrivateKeyFile: devKeys.MchPrivateKeyFile, wxpay.EnvAPIv3Key: devKeys.APIv3Key,
			wxpay.EnvPublicKeyID: devKeys.PublicKeyID, wxpay.EnvPublicKeyFile: devKeys.PublicKeyFile,
			wxpay.EnvNotifyURL: "https://shop.example.com/v1/wechatpay/notify", wxpay.EnvBaseURL: "http://127.0.0.1:8091",
		}
		cfg, err := wxpay.ConfigFromEnv(func(k string) string { return vars[k] })
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MchPrivateKey == nil || cfg.PublicKey == nil || cfg.BaseURL != "http://127.0.0.1:8091" {
			t.Errorf("cfg %+v", cfg)
		}
		for name, bad := range map[string]string{
			wxpay.EnvAPIv3Key:          "short",
			wxpay.EnvNotifyURL:         "https://shop.example.com/notify?x=1",
			wxpay.EnvBaseURL:           "http://127.0.0.1:8091/prefix",
			wxpay.EnvMchPrivateKeyFile: pkcs1,
			wxpay.EnvMchID:             "",
		} {
			old := vars[name]
			vars[name] = bad
			_, err := wxpay.ConfigFromEnv(func(k string) string { return vars[k] })
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s=%q: err %v, want it named", name, bad, err)
			}
			vars[name] = old
		}
	})
}
