package paysim_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"ordersaga/internal/paysim"
)

// rawV3 is the official SDK's signing client aimed at the simulator, for
// requests the project's wxpay.Client would never send (it cuts and checks
// every field first).
func rawV3(t *testing.T, m *merchant) *core.Client {
	t.Helper()
	u, err := url.Parse(m.simURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(paysim.DefaultMchID, keys.MchCertSerial, keys.MchPrivateKey, keys.PublicKeyID, keys.PublicKey),
		option.WithHTTPClient(&http.Client{Timeout: 10 * time.Second, Transport: toHost{u}}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// toHost sends a request for api.mch.weixin.qq.com to the simulator (the
// signature covers the path, not the host).
type toHost struct{ u *url.URL }

func (h toHost) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = h.u.Scheme, h.u.Host, h.u.Host
	return http.DefaultTransport.RoundTrip(r)
}

const wechatPayHost = "https://api.mch.weixin.qq.com"

func chinese(n int) string { return strings.Repeat("茶", n) } // 3 bytes each

// WeChat counts its text limits in UTF-8 bytes and checks the merchant's
// order and refund numbers: so does the simulator, so a client that counts
// characters fails its tests. Nothing refused leaves a trace.
func TestSimulatorRefusesFieldsOverWechatsByteLimits(t *testing.T) {
	// Two refunds of one payment in a row: not the minute rule's test.
	m := newMerchant(t, func(o *paysim.Options) { o.RefundInterval = -1 })
	c := rawV3(t, m)
	ctx := context.Background()

	prepay := func(no, description, attach string) map[string]any {
		return map[string]any{
			"appid": paysim.DefaultAppID, "mchid": paysim.DefaultMchID, "description": description, "attach": attach,
			"out_trade_no": no, "notify_url": "https://shop.example.com/notify",
			"amount": map[string]any{"total": 100, "currency": "CNY"}, "payer": map[string]any{"openid": "oPayer"},
		}
	}
	tests := []struct {
		name    string
		no      string
		desc    string
		attach  string
		refused string // the field the refusal names; "" = accepted
	}{
		{"description of 42 Chinese characters (126 bytes)", orderNo(), chinese(42), "", ""},
		{"description of 43 Chinese characters (129 bytes)", orderNo(), chinese(43), "", "description"},
		{"description of 127 ASCII bytes", orderNo(), strings.Repeat("a", 127), "", ""},
		{"description of 128 ASCII bytes", orderNo(), strings.Repeat("a", 128), "", "description"},
		{"attach of 128 bytes", orderNo(), "tea", strings.Repeat("a", 125) + "茶", ""},
		{"attach of 43 Chinese characters (129 bytes)", orderNo(), "tea", chinese(43), "attach"},
		{"out_trade_no with |", "P2026|0001", "tea", "", "out_trade_no"},
		{"out_trade_no with @", "P2026@0001", "tea", "", "out_trade_no"},
		{"out_trade_no of 5", "P2026", "tea", "", "out_trade_no"},
		{"out_trade_no of 33", "P" + strings.Repeat("0", 32), "tea", "", "out_trade_no"},
		{"out_trade_no of 32 with _-*", "P_-*" + strings.Repeat("0", 28), "tea", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Post(ctx, wechatPayHost+"/v3/pay/transactions/jsapi", prepay(tt.no, tt.desc, tt.attach))
			_, known := m.sim.Transaction(tt.no)
			if tt.refused == "" {
				if err != nil || !known {
					t.Fatalf("refused: %v (known %v)", err, known)
				}
				return
			}
			expectParamError(t, err, tt.refused)
			if known {
				t.Fatalf("the refused prepay left transaction %s behind", tt.no)
			}
		})
	}

	no := orderNo()
	m.prepay(t, no, 100)
	if _, err := m.sim.Pay(no); err != nil {
		t.Fatal(err)
	}
	refund := func(outRefundNo, reason string) map[string]any {
		return map[string]any{
			"out_trade_no": no, "out_refund_no": outRefundNo, "reason": reason,
			"amount": map[string]any{"refund": 1, "total": 100, "currency": "CNY"},
		}
	}
	refunds := []struct {
		name        string
		outRefundNo string
		reason      string
		refused     string
	}{
		{"reason of 27 Chinese characters (81 bytes)", no + "-R1", chinese(27), "reason"},
		{"out_refund_no of 65", strings.Repeat("R", 65), "short", "out_refund_no"},
		{"out_refund_no with |", no + "|R1", "short", "out_refund_no"},
		{"reason of 26 Chinese characters (78 bytes)", no + "-R2", chinese(26), ""},
		{"out_refund_no of 64 with _-*", "S_-*" + strings.Repeat("1", 60), "", ""},
	}
	for _, tt := range refunds {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := m.sim.Transaction(no)
			_, err := c.Post(ctx, wechatPayHost+"/v3/refund/domestic/refunds", refund(tt.outRefundNo, tt.reason))
			after, _ := m.sim.Transaction(no)
			if tt.refused == "" {
				if err != nil || len(after.Refunds) != len(before.Refunds)+1 {
					t.Fatalf("refused: %v (%d refunds, were %d)", err, len(after.Refunds), len(before.Refunds))
				}
				return
			}
			expectParamError(t, err, tt.refused)
			if len(after.Refunds) != len(before.Refunds) {
				t.Fatalf("the refused refund was recorded: %+v", after.Refunds)
			}
		})
	}
}

func expectParamError(t *testing.T, err error, field string) {
	t.Helper()
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("got %v, want WeChat's PARAM_ERROR", err)
	}
	if apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "PARAM_ERROR" || !strings.Contains(apiErr.Message, field) {
		t.Fatalf("got %d %s %q, want 400 PARAM_ERROR naming %s", apiErr.StatusCode, apiErr.Code, apiErr.Message, field)
	}
	if field != "out_trade_no" && field != "out_refund_no" && !strings.Contains(apiErr.Message, "字节数") {
		t.Fatalf("message %q does not count bytes as WeChat does", apiErr.Message)
	}
}
