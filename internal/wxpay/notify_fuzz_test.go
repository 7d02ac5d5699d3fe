package wxpay_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"

	"ordersaga/internal/wxpay"
)

// How FuzzNotifyParse builds a callback from its inputs (mode % fzModes).
const (
	fzUnsigned     = iota // body as given, Wechatpay-Signature as given: never verified
	fzSignedRaw           // body as given, validly signed with the WeChat Pay (simulator) key
	fzSignedSealed        // an envelope around plain, sealed with the APIv3 key, validly signed
	fzWrongKey            // that envelope signed with a key that is not WeChat Pay's
	fzProbe               // WeChat's WECHATPAY/SIGNTEST/ probe
	fzSealedNonce         // fzSignedSealed, the resource's nonce as given (sig) in the envelope
	fzModes
)

// FuzzNotifyParse feeds NotifyHandler.Parse hostile callbacks: unsigned
// bytes; mutated bodies validly signed with the simulator's key (so the
// fuzzer reaches past the signature check into envelope decoding); envelopes
// sealing a mutated plaintext (past decryption, into payload decoding);
// other keys, probes, stale clocks and foreign serials (serial "" is the
// configured key id: keys are made afresh per process). Parse must never
// panic; whatever is not a genuine notification must be refused with
// ErrBadSignature or ErrBadBody (401/400); and what it accepts must be
// exactly what WeChat's key signed and the APIv3 key sealed.
func FuzzNotifyParse(f *testing.F) {
	h, err := wxpay.NewNotifyHandler(wxpay.Config{
		APIv3Key: devKeys.APIv3Key, PublicKeyID: devKeys.PublicKeyID, PublicKey: devKeys.PublicKey,
	})
	if err != nil {
		f.Fatal(err)
	}
	payment := []byte(`{"appid":"wxd0000000000000dev","mchid":"1900000001","out_trade_no":"2026112311302512345678",` +
		`"transaction_id":"4200001234202611231234567890","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功",` +
		`"bank_type":"OTHERS","attach":"","success_time":"2026-11-23T11:30:40+08:00","payer":{"openid":"oUser1"},` +
		`"amount":{"total":30400,"payer_total":30400,"currency":"CNY","payer_currency":"CNY"}}`)
	refund := []byte(`{"mchid":"1900000001","out_trade_no":"2026112311302512345678","transaction_id":"4200001234202611231234567890",` +
		`"out_refund_no":"2026112311302512345678-R1","refund_id":"50000000382019052709732678859","refund_status":"SUCCESS",` +
		`"success_time":"2026-11-23T11:31:02+08:00","user_received_account":"支付用户零钱",` +
		`"amount":{"total":30400,"refund":30400,"payer_total":30400,"payer_refund":30400}}`)
	envelope := fzEnvelope("TRANSACTION.SUCCESS", "transaction", payment, fzNonce, fzNonce)
	for _, s := range []struct {
		mode  uint8
		body  []byte
		event string
		plain []byte
		skew  int64
		sig   string
	}{
		{fzSignedSealed, nil, "TRANSACTION.SUCCESS", payment, 0, ""},
		{fzSignedSealed, nil, "REFUND.SUCCESS", refund, 3, ""},
		{fzSignedSealed, nil, "REFUND.ABNORMAL", bytes.Replace(refund, []byte(`"SUCCESS"`), []byte(`"ABNORMAL"`), 1), -3, ""},
		{fzSignedSealed, nil, "TRANSACTION.SUCCESS", []byte(`{"trade_state":"SUCCESS","success_time":"yesterday"}`), 0, ""},
		{fzSignedSealed, nil, "REFUND.CLOSED", []byte(`{"out_refund_no":"R1"}`), 0, ""},
		{fzSignedSealed, nil, "TRANSACTION.SUCCESS", []byte(`[]`), 0, ""},
		{fzSignedSealed, nil, "MCHTRANSFER.BILL.FINISHED", []byte(`{"a":1}`), 0, ""},
		{fzSignedSealed, nil, "TRANSACTION.SUCCESS", payment, 400, ""},
		{fzSignedRaw, envelope, "", nil, 0, ""},
		{fzSignedRaw, []byte(`{"id":"1","resource":{"ciphertext":"AAAA","nonce":"0123456789ab"}}`), "", nil, 0, ""},
		{fzSignedRaw, []byte(`{"id":"1","resource":null}`), "", nil, 0, ""},
		{fzSignedRaw, []byte(`{"resource":{"algorithm":"AEAD_AES_256_GCM","ciphertext":"%%%","nonce":"n","associated_data":"transaction"}}`), "", nil, 0, ""},
		{fzSignedRaw, []byte(`not json`), "", nil, 0, ""},
		{fzUnsigned, envelope, "", nil, 0, "c2lnbmF0dXJl"},
		{fzUnsigned, envelope, "", nil, 0, ""},
		{fzWrongKey, nil, "TRANSACTION.SUCCESS", payment, 0, ""},
		{fzProbe, nil, "TRANSACTION.SUCCESS", payment, 0, "AAAA"},
		{fzSealedNonce, nil, "TRANSACTION.SUCCESS", payment, 0, fzNonce},
		{fzSealedNonce, nil, "REFUND.SUCCESS", refund, 0, "ba9876543210"},
	} {
		f.Add(s.mode, s.body, s.event, s.plain, s.skew, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "", s.sig)
	}

	f.Fuzz(func(t *testing.T, mode uint8, body []byte, event string, plain []byte, skew int64, nonce, serial, sig string) {
		mode %= fzModes
		if skew > 1e6 || skew < -1e6 {
			skew %= 1e6
		}
		// The keys are made afresh by each test process: "" stands for the
		// configured public key id, anything else is taken as it is.
		if serial == "" {
			serial = devKeys.PublicKeyID
		}
		now := time.Now()
		ts := strconv.FormatInt(now.Unix()+skew, 10)
		original := "transaction"
		if strings.HasPrefix(event, "REFUND.") {
			original = "refund"
		}
		key := devKeys.PlatformPrivateKey
		switch mode {
		case fzSignedSealed, fzWrongKey, fzProbe:
			body = fzEnvelope(event, original, plain, fzNonce, fzNonce)
		case fzSealedNonce:
			body = fzEnvelope(event, original, plain, fzNonce, sig)
		}
		switch mode {
		case fzSignedRaw, fzSignedSealed, fzSealedNonce:
			sig = fzSign(t, key, ts, nonce, body)
		case fzWrongKey:
			sig = fzSign(t, otherKey, ts, nonce, body)
		case fzProbe:
			sig = "WECHATPAY/SIGNTEST/" + sig
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/wechatpay/notify", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")
		req.Header.Set("Wechatpay-Timestamp", ts)
		req.Header.Set("Wechatpay-Nonce", nonce)
		req.Header.Set("Wechatpay-Serial", serial)
		req.Header.Set("Wechatpay-Signature", sig)

		n, err := h.Parse(context.Background(), req)

		if err != nil {
			if !errors.Is(err, wxpay.ErrBadSignature) && !errors.Is(err, wxpay.ErrBadBody) {
				t.Fatalf("mode %d: refused with %v: neither ErrBadSignature nor ErrBadBody", mode, err)
			}
			if st := wxpay.NotifyStatus(err); st != http.StatusUnauthorized && st != http.StatusBadRequest {
				t.Fatalf("mode %d: %v answers %d", mode, err, st)
			}
		}
		// What must be refused, whatever the body.
		stale := skew >= 301 || skew <= -301
		switch {
		case mode == fzUnsigned || mode == fzWrongKey:
			if err == nil {
				t.Fatalf("mode %d: accepted a callback WeChat's key did not sign", mode)
			}
		case mode == fzProbe:
			if !errors.Is(err, wxpay.ErrSignProbe) {
				t.Fatalf("a SIGNTEST probe was not refused as one: %v", err)
			}
		case serial != devKeys.PublicKeyID && err == nil:
			t.Fatalf("mode %d: accepted a callback with serial %q", mode, serial)
		case stale && err == nil:
			t.Fatalf("mode %d: accepted a callback %d s off the clock", mode, skew)
		}
		if mode == fzWrongKey && !errors.Is(err, wxpay.ErrBadSignature) {
			t.Fatalf("signed with another key: %v, want ErrBadSignature", err)
		}
		if err != nil {
			// A genuine, well-formed notification must not be refused.
			if mode == fzSignedSealed && serial == devKeys.PublicKeyID && fzCleanHeaders(nonce) &&
				skew <= 290 && skew >= -290 && fzWellFormed(event, plain) {
				t.Fatalf("a genuine %s notification was refused: %v\nplaintext %q", event, err, plain)
			}
			return
		}
		fzCheckAccepted(t, n, body)
	})
}

// fzCheckAccepted: an accepted notification is the envelope WeChat's key
// signed, its resource opens with the APIv3 key, and what Parse reports is
// what the resource holds.
func fzCheckAccepted(t *testing.T, n wxpay.Notification, body []byte) {
	var env struct {
		ID        string `json:"id"`
		EventType string `json:"event_type"`
		Resource  *struct {
			Ciphertext     string `json:"ciphertext"`
			Nonce          string `json:"nonce"`
			AssociatedData string `json:"associated_data"`
		} `json:"resource"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Resource == nil {
		t.Fatalf("accepted a body that is no envelope (%v): %q", err, body)
	}
	plain, err := fzOpen(env.Resource.Ciphertext, env.Resource.Nonce, env.Resource.AssociatedData)
	if err != nil {
		t.Fatalf("accepted a resource the APIv3 key does not open: %v", err)
	}
	if n.ID != env.ID || n.EventType != env.EventType {
		t.Fatalf("reported id %q event %q, the envelope says %q %q", n.ID, n.EventType, env.ID, env.EventType)
	}
	switch {
	case strings.HasPrefix(n.EventType, "TRANSACTION."):
		var tx payments.Transaction
		if n.Transaction == nil || n.Refund != nil || json.Unmarshal(plain, &tx) != nil {
			t.Fatalf("transaction event: reported %+v / %+v for plaintext %q", n.Transaction, n.Refund, plain)
		}
		got := n.Transaction
		if got.TradeState == "" || got.TradeState != deref(tx.TradeState) || got.OutTradeNo != deref(tx.OutTradeNo) ||
			got.TransactionID != deref(tx.TransactionId) || (tx.Amount != nil && got.AmountTotalFen != derefInt(tx.Amount.Total)) {
			t.Fatalf("reported %+v for plaintext %q", got, plain)
		}
	case strings.HasPrefix(n.EventType, "REFUND."):
		var r struct {
			OutRefundNo  string `json:"out_refund_no"`
			RefundStatus string `json:"refund_status"`
			Amount       struct {
				Refund int64 `json:"refund"`
			} `json:"amount"`
		}
		if n.Refund == nil || n.Transaction != nil || json.Unmarshal(plain, &r) != nil {
			t.Fatalf("refund event: reported %+v / %+v for plaintext %q", n.Transaction, n.Refund, plain)
		}
		got := n.Refund
		if got.OutRefundNo == "" || got.RefundStatus == "" || got.OutRefundNo != r.OutRefundNo ||
			got.RefundStatus != r.RefundStatus || got.RefundFen != r.Amount.Refund {
			t.Fatalf("reported %+v for plaintext %q", got, plain)
		}
	default:
		if n.Transaction != nil || n.Refund != nil {
			t.Fatalf("event %q: reported a payload %+v / %+v", n.EventType, n.Transaction, n.Refund)
		}
	}
}

// fzWellFormed reports whether plain is a payload a correct handler takes
// for event: a JSON object of the event's shape with the fields the shop
// cannot do without.
func fzWellFormed(event string, plain []byte) bool {
	var obj map[string]any
	if json.Unmarshal(plain, &obj) != nil {
		return false
	}
	okTime := func(s *string) bool {
		if s == nil || *s == "" {
			return true
		}
		_, err := time.Parse(time.RFC3339, *s)
		return err == nil
	}
	switch {
	case strings.HasPrefix(event, "TRANSACTION."):
		var tx payments.Transaction
		return json.Unmarshal(plain, &tx) == nil && deref(tx.TradeState) != "" && okTime(tx.SuccessTime)
	case strings.HasPrefix(event, "REFUND."):
		var r struct {
			OutRefundNo  string `json:"out_refund_no"`
			RefundStatus string `json:"refund_status"`
			SuccessTime  string `json:"success_time"`
			Amount       struct {
				Total, Refund, PayerTotal, PayerRefund int64
			} `json:"amount"`
			MchID, OutTradeNo, TransactionID, RefundID, UserReceivedAccount string
		}
		return json.Unmarshal(plain, &r) == nil && r.OutRefundNo != "" && r.RefundStatus != "" && okTime(&r.SuccessTime)
	}
	return true
}

// fzCleanHeaders: header values an HTTP client sends as they are.
func fzCleanHeaders(values ...string) bool {
	for _, v := range values {
		if v == "" || strings.TrimSpace(v) != v {
			return false
		}
		for _, r := range v {
			if r > unicode.MaxASCII || !unicode.IsPrint(r) {
				return false
			}
		}
	}
	return true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(v *int64) int64 {
	if v == nil {
		return 0
	}
	return *v
}

// fzNonce is the resource nonce of the envelopes built here (12 bytes).
const fzNonce = "0123456789ab"

// fzEnvelope seals plain with the APIv3 key and sealNonce into a notify
// envelope, as WeChat Pay builds them, naming nonce as the resource's nonce
// (WeChat names sealNonce).
func fzEnvelope(event, original string, plain []byte, sealNonce, nonce string) []byte {
	block, err := aes.NewCipher([]byte(devKeys.APIv3Key))
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	sealed := gcm.Seal(nil, []byte(sealNonce), plain, []byte(original))
	body, err := json.Marshal(map[string]any{
		"id":            "EV-2018052215235614802",
		"create_time":   "2026-11-23T11:30:40+08:00",
		"resource_type": "encrypt-resource",
		"event_type":    event,
		"summary":       "支付成功",
		"resource": map[string]string{
			"original_type":   original,
			"algorithm":       "AEAD_AES_256_GCM",
			"ciphertext":      base64.StdEncoding.EncodeToString(sealed),
			"associated_data": original,
			"nonce":           nonce,
		},
	})
	if err != nil {
		panic(err)
	}
	return body
}

func fzOpen(ciphertext, nonce, associated string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(ciphertext)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher([]byte(devKeys.APIv3Key))
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(nonce))
	if err != nil {
		return nil, err
	}
	return gcm.Open(nil, []byte(nonce), raw, []byte(associated))
}

// fzSign signs a callback as WeChat Pay does: SHA256withRSA over
// "timestamp\nnonce\nbody\n".
func fzSign(t *testing.T, key *rsa.PrivateKey, ts, nonce string, body []byte) string {
	sum := sha256.Sum256([]byte(ts + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}
