package wxpay_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxpay"
)

func TestNotifyHandlerAcceptsSimulatorCallbacks(t *testing.T) {
	ctx := context.Background()
	t.Run("payment", func(t *testing.T) {
		e := newEnv(t)
		no := newOrderNo()
		e.prepayAndPay(t, no, 2500)
		waitPaymentNotified(t, e, no)
		var n wxpay.Notification
		for _, r := range e.rec.all() {
			if r.err == nil && r.n.Transaction != nil {
				n = r.n
			}
		}
		v := e.view(t, no)
		tx := n.Transaction
		if n.EventType != wxpay.EventTransactionSuccess || n.ID == "" || n.CreateTime.IsZero() || n.ResourceType != "encrypt-resource" {
			t.Errorf("envelope %+v", n)
		}
		if tx.OutTradeNo != no || tx.TransactionID != v.TransactionID || tx.TradeState != "SUCCESS" ||
			tx.AmountTotalFen != 2500 || tx.PayerTotalFen != 2500 || tx.PayerOpenID != "oUser1" ||
			tx.AppID != e.cfg.AppID || tx.MchID != e.cfg.MchID || tx.SuccessTime == nil {
			t.Errorf("transaction %+v", tx)
		}
		waitDelivered(t, e, no)
		if got := e.view(t, no).Notifies; len(got) != 1 || got[0].State != paysim.NotifyDelivered || len(got[0].Attempts) != 1 {
			t.Errorf("simulator notifies %+v", got)
		}
	})
	t.Run("refund", func(t *testing.T) {
		e := newEnv(t)
		no := newOrderNo()
		e.prepayAndPay(t, no, 2500)
		r, err := e.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: "R" + no, RefundFen: 700, TotalFen: 2500})
		if err != nil {
			t.Fatal(err)
		}
		n := waitRefundNotice(t, e, "R"+no)
		rn := n.Refund
		if n.EventType != wxpay.EventRefundSuccess || rn.RefundStatus != "SUCCESS" || rn.RefundID != r.RefundID ||
			rn.RefundFen != 700 || rn.TotalFen != 2500 || rn.PayerRefundFen != 700 || rn.OutTradeNo != no ||
			rn.TransactionID == "" || rn.MchID != e.cfg.MchID || rn.SuccessTime == nil {
			t.Errorf("refund notice %+v", rn)
		}
	})
}

// Each spoiled delivery is refused with the right error and status; the
// simulator then retries with a genuine one, which is accepted.
func TestNotifyHandlerRefusesSpoiledCallbacks(t *testing.T) {
	tests := []struct {
		tamper     string
		wantErr    error
		wantStatus int
	}{
		{paysim.TamperFlipSignature, wxpay.ErrBadSignature, http.StatusUnauthorized},
		{paysim.TamperStaleTimestamp, wxpay.ErrStaleTimestamp, http.StatusUnauthorized},
		{paysim.TamperWrongSerial, wxpay.ErrWrongSerial, http.StatusUnauthorized},
		{paysim.TamperWrongKey, wxpay.ErrBadSignature, http.StatusUnauthorized},
		{paysim.TamperCorruptCiphertext, wxpay.ErrBadBody, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.tamper, func(t *testing.T) {
			e := newEnv(t)
			e.setFaults(t, paysim.Faults{Notify: &paysim.NotifyFaults{Tamper: tc.tamper, TamperCount: 1}})
			no := newOrderNo()
			e.prepayAndPay(t, no, 100)
			waitPaymentNotified(t, e, no)
			got := e.rec.all()
			if len(got) != 2 {
				t.Fatalf("%d callbacks, want the spoiled one then the genuine retry", len(got))
			}
			if !errors.Is(got[0].err, tc.wantErr) {
				t.Errorf("spoiled callback: err %v, want %v", got[0].err, tc.wantErr)
			}
			if got[0].status != tc.wantStatus || wxpay.NotifyStatus(got[0].err) != tc.wantStatus {
				t.Errorf("spoiled callback answered %d, want %d", got[0].status, tc.wantStatus)
			}
			if got[0].n.Transaction != nil {
				t.Error("a spoiled callback yielded a transaction")
			}
			if msg := got[0].err.Error(); strings.Contains(msg, "Wechatpay-Signature:") || strings.Contains(msg, "ciphertext\"") || len(msg) > 200 {
				t.Errorf("error text leaks the request: %q", msg)
			}
			if got[1].err != nil || got[1].n.Transaction == nil {
				t.Errorf("genuine retry: %v", got[1].err)
			}
			waitDelivered(t, e, no)
			at := e.view(t, no).Notifies[0].Attempts
			if len(at) != 2 || at[0].Tamper != tc.tamper || at[0].Status != tc.wantStatus || at[1].Tamper != "" {
				t.Errorf("simulator attempts %+v", at)
			}
		})
	}
}

func TestNotifyHandlerRefusesSignTestProbe(t *testing.T) {
	e := newEnv(t)
	res, err := e.sim.SendSignTest(context.Background(), e.cfg.NotifyURL)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Refused || res.Status != http.StatusUnauthorized {
		t.Errorf("probe result %+v, want refused with 401", res)
	}
	got := e.rec.all()
	if len(got) != 1 || !errors.Is(got[0].err, wxpay.ErrSignProbe) || !errors.Is(got[0].err, wxpay.ErrBadSignature) {
		t.Fatalf("callbacks %+v, want one refused as ErrSignProbe", got)
	}
}

func TestNotifyHandlerRefusesMalformedRequests(t *testing.T) {
	h, err := wxpay.NewNotifyHandler(wxpay.Config{APIv3Key: devKeys.APIv3Key, PublicKeyID: devKeys.PublicKeyID, PublicKey: devKeys.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	tests := []struct {
		name    string
		headers map[string]string
		body    string
		wantErr error
	}{
		{"no signature headers", nil, `{}`, wxpay.ErrBadSignature},
		{"unsupported signature type", map[string]string{
			"Wechatpay-Signature": "c2ln", "Wechatpay-Serial": devKeys.PublicKeyID, "Wechatpay-Nonce": "n",
			"Wechatpay-Timestamp": itoa(now), "Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3",
		}, `{}`, wxpay.ErrBadSignature},
		{"signature that is not ours", map[string]string{
			"Wechatpay-Signature": "c2lnbmF0dXJl", "Wechatpay-Serial": devKeys.PublicKeyID, "Wechatpay-Nonce": "n",
			"Wechatpay-Timestamp": itoa(now),
		}, `{}`, wxpay.ErrBadSignature},
		{"timestamp from the future", map[string]string{
			"Wechatpay-Signature": "c2ln", "Wechatpay-Serial": devKeys.PublicKeyID, "Wechatpay-Nonce": "n",
			"Wechatpay-Timestamp": itoa(now + 600),
		}, `{}`, wxpay.ErrStaleTimestamp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/notify", bytes.NewBufferString(tc.body))
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			_, err := h.Parse(context.Background(), r)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// waitDelivered waits until the simulator has recorded the 2xx of the
// transaction's first notification (the merchant sees it a moment before).
func waitDelivered(t *testing.T, e *env, no string) {
	t.Helper()
	waitFor(t, 10*time.Second, "the simulator to record the delivery", func() bool {
		v := e.view(t, no)
		return len(v.Notifies) > 0 && v.Notifies[0].State == paysim.NotifyDelivered
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Envelopes signed with WeChat's key (so they pass the signature check) but
// not what a notification must be are refused as bad bodies, never a panic.
func TestNotifyHandlerRefusesSignedEnvelopesWithoutAResource(t *testing.T) {
	h, err := wxpay.NewNotifyHandler(wxpay.Config{APIv3Key: devKeys.APIv3Key, PublicKeyID: devKeys.PublicKeyID, PublicKey: devKeys.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"id":"n1","event_type":"TRANSACTION.SUCCESS","resource_type":"encrypt-resource"}`,
		`{"id":"n2","event_type":"TRANSACTION.SUCCESS","resource":null}`,
		`{"id":"n3","event_type":"TRANSACTION.SUCCESS","resource":{"algorithm":"AEAD_AES_256_GCM"}}`,
		`[1,2,3]`,
	} {
		t.Run(body, func(t *testing.T) {
			ts, nonce := itoa(time.Now().Unix()), "nonce-"+body[:5]
			sum := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + body + "\n"))
			sig, err := rsa.SignPKCS1v15(rand.Reader, devKeys.PlatformPrivateKey, crypto.SHA256, sum[:])
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodPost, "/notify", bytes.NewBufferString(body))
			r.Header.Set("Wechatpay-Signature", base64.StdEncoding.EncodeToString(sig))
			r.Header.Set("Wechatpay-Serial", devKeys.PublicKeyID)
			r.Header.Set("Wechatpay-Timestamp", ts)
			r.Header.Set("Wechatpay-Nonce", nonce)
			if _, err := h.Parse(context.Background(), r); !errors.Is(err, wxpay.ErrBadBody) {
				t.Fatalf("err %v, want ErrBadBody", err)
			}
		})
	}
}

// A notify answered 500 twice is delivered on the third attempt at the
// scaled schedule (15 s, 15 s) and never again after the 2xx.
func TestNotifyRetrySchedule(t *testing.T) {
	const scale = 0.004 // 15 s → 60 ms, 30 s → 120 ms
	e := newEnv(t, func(o *paysim.Options, _ *wxpay.Config) { o.NotifyScale = scale })
	e.rec.answerNext(500, 500)
	no := newOrderNo()
	e.prepayAndPay(t, no, 100)
	waitFor(t, 20*time.Second, "delivery", func() bool {
		v := e.view(t, no)
		return len(v.Notifies) == 1 && v.Notifies[0].State == paysim.NotifyDelivered
	})
	at := e.view(t, no).Notifies[0].Attempts
	if len(at) != 3 || at[0].Status != 500 || at[1].Status != 500 || at[2].Status != http.StatusNoContent {
		t.Fatalf("attempts %+v, want 500, 500, 204", at)
	}
	step := time.Duration(float64(15*time.Second) * scale)
	for i, gap := range []time.Duration{at[1].At.Sub(at[0].At), at[2].At.Sub(at[1].At)} {
		if gap < step || gap > step+10*time.Second {
			t.Errorf("gap %d = %v, want at least %v (and not absurdly more)", i+1, gap, step)
		}
	}
	// The next retry would have come 120 ms later; wait well past it.
	time.Sleep(8 * time.Duration(float64(30*time.Second)*scale))
	if v := e.view(t, no); len(v.Notifies[0].Attempts) != 3 {
		t.Errorf("%d attempts after the 2xx, want 3", len(v.Notifies[0].Attempts))
	}
	if got := e.rec.all(); len(got) != 3 || got[2].err != nil {
		t.Errorf("merchant saw %d callbacks (last err %v), want 3", len(got), got[len(got)-1].err)
	}
}

// Answered 500 forever, WeChat tries 16 times on the whole schedule and gives
// up; each wait is at least its scaled step.
func TestNotifyGivesUpAfterTheSchedule(t *testing.T) {
	const scale = 0.00001 // the whole 24 h schedule takes about 0.9 s
	e := newEnv(t, func(o *paysim.Options, _ *wxpay.Config) { o.NotifyScale = scale })
	statuses := make([]int, 40)
	for i := range statuses {
		statuses[i] = 500
	}
	e.rec.answerNext(statuses...)
	no := newOrderNo()
	e.prepayAndPay(t, no, 100)
	waitFor(t, 60*time.Second, "giving up", func() bool {
		v := e.view(t, no)
		return len(v.Notifies) == 1 && v.Notifies[0].State == paysim.NotifyGaveUp
	})
	at := e.view(t, no).Notifies[0].Attempts
	if len(at) != len(paysim.RetrySchedule)+1 {
		t.Fatalf("%d attempts, want %d", len(at), len(paysim.RetrySchedule)+1)
	}
	for i, step := range paysim.RetrySchedule {
		want := time.Duration(float64(step) * scale)
		if gap := at[i+1].At.Sub(at[i].At); gap < want {
			t.Errorf("gap before attempt %d = %v, want at least %v", i+2, gap, want)
		}
	}
}

// The SDK verifies a genuine callback whatever the spelling of its headers:
// a timestamp with a sign or leading zeros, a signature whose base64 has
// other pad bits or a line break, white space around either. Each spelling
// could pass a replay guard keyed on the headers' text, so Parse accepts only
// WeChat's own spelling, and reports a ReplayKey that depends on what was
// signed, not on how it was written.
func TestNotifyParseTakesOnlyTheCanonicalSpellingOfASignedCallback(t *testing.T) {
	h, err := wxpay.NewNotifyHandler(wxpay.Config{APIv3Key: devKeys.APIv3Key, PublicKeyID: devKeys.PublicKeyID, PublicKey: devKeys.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	body := fzEnvelope("TRANSACTION.SUCCESS", "transaction", []byte(`{"out_trade_no":"2026112311302512345678",`+
		`"transaction_id":"4200001234202611231234567890","trade_state":"SUCCESS","amount":{"total":100}}`), fzNonce, fzNonce)
	ts := itoa(time.Now().Unix())
	var nonce, sig string
	for i := 0; !strings.ContainsAny(sig, "+/"); i++ { // so that the URL-safe spelling differs
		nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM" + itoa(int64(1000+i))
		sig = fzSign(t, devKeys.PlatformPrivateKey, ts, nonce, body)
	}
	request := func(ts, nonce, sig string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/notify", bytes.NewReader(body))
		r.Header.Set("Wechatpay-Serial", devKeys.PublicKeyID)
		r.Header.Set("Wechatpay-Timestamp", ts)
		r.Header.Set("Wechatpay-Nonce", nonce)
		r.Header.Set("Wechatpay-Signature", sig)
		return r
	}
	genuine, err := h.Parse(context.Background(), request(ts, nonce, sig))
	if err != nil {
		t.Fatalf("the genuine callback: %v", err)
	}
	if again, err := h.Parse(context.Background(), request(ts, nonce, sig)); err != nil || again.ReplayKey != genuine.ReplayKey {
		t.Fatalf("the same callback again: %v, key equal %v", err, again.ReplayKey == genuine.ReplayKey)
	}

	// A 256-byte signature ends in "x==": x carries 2 bits of the last byte
	// and 4 pad bits, which the SDK's decoder does not check.
	otherPadBits := sig[:len(sig)-3] + string(base64Alphabet[strings.IndexByte(base64Alphabet, sig[len(sig)-3])^1]) + "=="
	if !strings.HasSuffix(sig, "==") || otherPadBits == sig {
		t.Fatalf("signature %q is not the 256-byte one this test expects", sig)
	}
	tests := []struct {
		name      string
		ts, nonce string
		sig       string
		sdkTakes  bool // the SDK alone verifies this spelling
	}{
		{"timestamp with a plus sign", "+" + ts, nonce, sig, true},
		{"timestamp with a leading zero", "0" + ts, nonce, sig, true},
		{"timestamp with two leading zeros", "00" + ts, nonce, sig, true},
		{"timestamp after a space", " " + ts, nonce, sig, true},
		{"timestamp before a tab", ts + "\t", nonce, sig, true},
		{"signature with other pad bits", ts, nonce, otherPadBits, true},
		{"signature with a line break", ts, nonce, sig[:100] + "\n" + sig[100:], true},
		{"signature after a space", ts, nonce, " " + sig, true},
		{"signature without padding", ts, nonce, strings.TrimRight(sig, "="), false},
		{"signature in the URL-safe alphabet", ts, nonce, strings.NewReplacer("+", "-", "/", "_").Replace(sig), false},
		{"nonce before a space", ts, nonce + " ", sig, true},
	}
	sdk := validators.NewWechatPayNotifyValidator(verifiers.NewSHA256WithRSAPubkeyVerifier(devKeys.PublicKeyID, *devKeys.PublicKey))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := sdk.Validate(context.Background(), request(tt.ts, tt.nonce, tt.sig)); (err == nil) != tt.sdkTakes {
				t.Fatalf("the SDK's validator: %v; this test expects it to take the spelling: %v", err, tt.sdkTakes)
			}
			n, err := h.Parse(context.Background(), request(tt.ts, tt.nonce, tt.sig))
			if err == nil {
				t.Fatalf("accepted (replay key equal to the genuine one's: %v)", n.ReplayKey == genuine.ReplayKey)
			}
			if !errors.Is(err, wxpay.ErrBadSignature) || wxpay.NotifyStatus(err) != http.StatusUnauthorized {
				t.Fatalf("err %v (status %d), want ErrBadSignature (401)", err, wxpay.NotifyStatus(err))
			}
		})
	}
}

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
