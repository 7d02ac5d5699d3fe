package wxpay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
)

// Errors of NotifyHandler.Parse. Answer 401 when errors.Is(err,
// ErrBadSignature) (this covers ErrStaleTimestamp, ErrWrongSerial and
// ErrSignProbe) and 400 when errors.Is(err, ErrBadBody). In both cases change
// nothing. The messages never contain the request.
var (
	ErrBadSignature   = errors.New("wxpay notify: signature not verified")
	ErrStaleTimestamp = fmt.Errorf("%w: Wechatpay-Timestamp is more than 5 minutes away", ErrBadSignature)
	ErrWrongSerial    = fmt.Errorf("%w: Wechatpay-Serial is not the configured public key id", ErrBadSignature)
	ErrSignProbe      = fmt.Errorf("%w: WECHATPAY/SIGNTEST probe", ErrBadSignature)
	// ErrNotCanonical: a header is not written as WeChat writes it (a
	// timestamp with a sign or leading zeros, a signature in non-canonical
	// base64, white space around either). The SDK would verify such a
	// spelling of a genuine callback; refusing it leaves one spelling per
	// callback, so a replay guard cannot be walked around by respelling.
	ErrNotCanonical = fmt.Errorf("%w: header not in canonical form", ErrBadSignature)
	ErrBadBody      = errors.New("wxpay notify: body malformed or not decryptable")
)

// Event types WeChat Pay sends.
const (
	EventTransactionSuccess = "TRANSACTION.SUCCESS"
	EventRefundSuccess      = "REFUND.SUCCESS"
	EventRefundAbnormal     = "REFUND.ABNORMAL"
	EventRefundClosed       = "REFUND.CLOSED"
)

const (
	signTestPrefix  = "WECHATPAY/SIGNTEST/"
	rsaSignType     = "WECHATPAY2-SHA256-RSA2048"
	maxNotifyBody   = 1 << 20
	notifyClockSkew = 5 * time.Minute
)

// Notification is a verified and decrypted WeChat Pay callback. Exactly one of
// Transaction and Refund is set for the known event types; for other event
// types neither is (acknowledge and log them).
type Notification struct {
	ID           string
	EventType    string // TRANSACTION.SUCCESS, REFUND.SUCCESS, REFUND.ABNORMAL, REFUND.CLOSED, ...
	ResourceType string
	Summary      string
	CreateTime   time.Time
	Transaction  *Transaction
	Refund       *RefundNotice
	// ReplayKey identifies what the signature covers and was verified
	// against: the timestamp as a number, the nonce and the signature's
	// bytes. A copy of this callback, however its headers are spelt, has
	// the same key; WeChat signs each delivery attempt afresh, so a genuine
	// retry has another.
	ReplayKey [32]byte
}

// RefundNotice is the payload of a REFUND.* notification.
type RefundNotice struct {
	MchID               string
	OutTradeNo          string
	TransactionID       string
	OutRefundNo         string
	RefundID            string
	RefundStatus        string // SUCCESS, CLOSED, ABNORMAL
	RefundFen           int64
	TotalFen            int64
	PayerRefundFen      int64
	PayerTotalFen       int64
	UserReceivedAccount string
	SuccessTime         *time.Time
}

// refundPayload is the decrypted REFUND.* resource. Its status field is
// refund_status (refunddomestic.Refund calls it status and would stay empty).
type refundPayload struct {
	MchID               string `json:"mchid"`
	OutTradeNo          string `json:"out_trade_no"`
	TransactionID       string `json:"transaction_id"`
	OutRefundNo         string `json:"out_refund_no"`
	RefundID            string `json:"refund_id"`
	RefundStatus        string `json:"refund_status"`
	SuccessTime         string `json:"success_time"`
	UserReceivedAccount string `json:"user_received_account"`
	Amount              struct {
		Total       int64 `json:"total"`
		Refund      int64 `json:"refund"`
		PayerTotal  int64 `json:"payer_total"`
		PayerRefund int64 `json:"payer_refund"`
	} `json:"amount"`
}

// NotifyHandler verifies and decrypts WeChat Pay callbacks with the SDK's
// notify handler in public-key mode. It is safe for concurrent use.
type NotifyHandler struct {
	sdk         *notify.Handler
	validator   *validators.WechatPayNotifyValidator
	publicKeyID string
	now         func() time.Time
}

// NewNotifyHandler needs cfg.APIv3Key, cfg.PublicKeyID and cfg.PublicKey.
func NewNotifyHandler(cfg Config) (*NotifyHandler, error) {
	switch {
	case len(cfg.APIv3Key) != 32:
		return nil, fmt.Errorf("wxpay: %s must be exactly 32 bytes, got %d", EnvAPIv3Key, len(cfg.APIv3Key))
	case cfg.PublicKeyID == "":
		return nil, fmt.Errorf("wxpay: %s is not set", EnvPublicKeyID)
	case cfg.PublicKey == nil:
		return nil, fmt.Errorf("wxpay: %s: WeChat Pay public key not loaded", EnvPublicKeyFile)
	}
	verifier := verifiers.NewSHA256WithRSAPubkeyVerifier(cfg.PublicKeyID, *cfg.PublicKey)
	h, err := notify.NewRSANotifyHandler(cfg.APIv3Key, verifier)
	if err != nil {
		return nil, fmt.Errorf("wxpay: notify handler: %w", err)
	}
	return &NotifyHandler{
		sdk:         h,
		validator:   validators.NewWechatPayNotifyValidator(verifier),
		publicKeyID: cfg.PublicKeyID,
		now:         time.Now,
	}, nil
}

// NotifyStatus is the HTTP status to answer WeChat for a Parse error: 401 for
// signature, timestamp, serial and probe problems, 400 for bodies that cannot
// be decrypted or decoded, 500 otherwise (WeChat retries).
func NotifyStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrBadSignature):
		return http.StatusUnauthorized
	case errors.Is(err, ErrBadBody):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

// Parse verifies r (signature, serial, timestamp) and decrypts its resource.
// It consumes r.Body (and leaves a re-readable copy in its place).
func (h *NotifyHandler) Parse(ctx context.Context, r *http.Request) (Notification, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxNotifyBody+1))
	_ = r.Body.Close()
	if err != nil {
		return Notification{}, fmt.Errorf("%w: reading body failed: %w", ErrBadBody, err)
	}
	if len(body) > maxNotifyBody {
		return Notification{}, fmt.Errorf("%w: body larger than %d bytes", ErrBadBody, maxNotifyBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	signed, err := h.checkHeaders(r.Header)
	if err != nil {
		return Notification{}, err
	}
	// The SDK's own validator: verifies the SHA256withRSA signature over
	// "timestamp\nnonce\nbody\n" with the WeChat Pay public key.
	if err := h.validator.Validate(ctx, r); err != nil {
		return Notification{}, fmt.Errorf("%w: signature does not match", ErrBadSignature)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	// The SDK dereferences the resource without checking it is there, and
	// its AES-GCM panics on a nonce of the wrong size: a signed envelope of
	// either kind would panic inside it.
	var shape struct {
		Resource *struct {
			Ciphertext string `json:"ciphertext"`
			Nonce      string `json:"nonce"`
		} `json:"resource"`
	}
	if err := json.Unmarshal(body, &shape); err != nil {
		return Notification{}, fmt.Errorf("%w: envelope is not a JSON object", ErrBadBody)
	}
	if shape.Resource == nil || shape.Resource.Ciphertext == "" || shape.Resource.Nonce == "" {
		return Notification{}, fmt.Errorf("%w: envelope has no encrypted resource", ErrBadBody)
	}
	// AES-GCM nonces are 12 bytes; the SDK's decryption panics on any other
	// length.
	if len(shape.Resource.Nonce) != 12 {
		return Notification{}, fmt.Errorf("%w: resource nonce is %d bytes, want 12", ErrBadBody, len(shape.Resource.Nonce))
	}

	var plain json.RawMessage
	env, err := h.sdk.ParseNotifyRequest(ctx, r, &plain)
	if err != nil {
		// Never include err's text: it dumps the whole request.
		if env == nil {
			return Notification{}, fmt.Errorf("%w: envelope is not valid JSON or names another algorithm", ErrBadBody)
		}
		return Notification{}, fmt.Errorf("%w: resource cannot be decrypted with the APIv3 key or is not JSON", ErrBadBody)
	}
	n := Notification{
		ID:           env.ID,
		EventType:    env.EventType,
		ResourceType: env.ResourceType,
		Summary:      env.Summary,
		ReplayKey:    signed.replayKey(),
	}
	if env.CreateTime != nil {
		n.CreateTime = *env.CreateTime
	}
	switch {
	case strings.HasPrefix(env.EventType, "TRANSACTION."):
		var tx payments.Transaction
		if err := json.Unmarshal(plain, &tx); err != nil {
			return Notification{}, fmt.Errorf("%w: transaction payload: %v", ErrBadBody, err)
		}
		t, err := transactionFrom(&tx)
		if err != nil {
			return Notification{}, fmt.Errorf("%w: transaction payload: %v", ErrBadBody, err)
		}
		n.Transaction = &t
	case strings.HasPrefix(env.EventType, "REFUND."):
		var p refundPayload
		if err := json.Unmarshal(plain, &p); err != nil {
			return Notification{}, fmt.Errorf("%w: refund payload: %v", ErrBadBody, err)
		}
		if p.OutRefundNo == "" || p.RefundStatus == "" {
			return Notification{}, fmt.Errorf("%w: refund payload without out_refund_no or refund_status", ErrBadBody)
		}
		rn := &RefundNotice{
			MchID:               p.MchID,
			OutTradeNo:          p.OutTradeNo,
			TransactionID:       p.TransactionID,
			OutRefundNo:         p.OutRefundNo,
			RefundID:            p.RefundID,
			RefundStatus:        p.RefundStatus,
			RefundFen:           p.Amount.Refund,
			TotalFen:            p.Amount.Total,
			PayerRefundFen:      p.Amount.PayerRefund,
			PayerTotalFen:       p.Amount.PayerTotal,
			UserReceivedAccount: p.UserReceivedAccount,
		}
		if p.SuccessTime != "" {
			t, err := time.Parse(time.RFC3339, p.SuccessTime)
			if err != nil {
				return Notification{}, fmt.Errorf("%w: refund payload: bad success_time", ErrBadBody)
			}
			rn.SuccessTime = &t
		}
		n.Refund = rn
	}
	return n, nil
}

// signedHeaders are the parts of a callback's headers the signature covers
// (timestamp, nonce) or is (signature), as verified.
type signedHeaders struct {
	timestamp int64
	nonce     string
	signature []byte
}

// replayKey hashes the signed parts, each length-prefixed so that no two
// different triples hash the same text.
func (s signedHeaders) replayKey() [32]byte {
	ts := strconv.FormatInt(s.timestamp, 10)
	return sha256.Sum256([]byte(strconv.Itoa(len(ts)) + ":" + ts + "|" + strconv.Itoa(len(s.nonce)) + ":" + s.nonce + "|" +
		strconv.Itoa(len(s.signature)) + ":" + string(s.signature)))
}

func (h *NotifyHandler) checkHeaders(hdr http.Header) (signedHeaders, error) {
	// Read as sent: the SDK trims them before it verifies, so white space
	// around a value would be another spelling of the same signed callback.
	sig := hdr.Get("Wechatpay-Signature")
	serial := strings.TrimSpace(hdr.Get("Wechatpay-Serial"))
	ts := hdr.Get("Wechatpay-Timestamp")
	nonce := hdr.Get("Wechatpay-Nonce")
	switch {
	case strings.TrimSpace(sig) == "":
		return signedHeaders{}, fmt.Errorf("%w: no Wechatpay-Signature", ErrBadSignature)
	case strings.HasPrefix(strings.TrimSpace(sig), signTestPrefix):
		return signedHeaders{}, ErrSignProbe
	case serial == "":
		return signedHeaders{}, fmt.Errorf("%w: no Wechatpay-Serial", ErrBadSignature)
	case strings.TrimSpace(ts) == "":
		return signedHeaders{}, fmt.Errorf("%w: no Wechatpay-Timestamp", ErrBadSignature)
	case strings.TrimSpace(nonce) == "":
		return signedHeaders{}, fmt.Errorf("%w: no Wechatpay-Nonce", ErrBadSignature)
	}
	if st := hdr.Get("Wechatpay-Signature-Type"); st != "" && st != rsaSignType {
		return signedHeaders{}, fmt.Errorf("%w: unsupported Wechatpay-Signature-Type", ErrBadSignature)
	}
	if serial != h.publicKeyID {
		return signedHeaders{}, ErrWrongSerial
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil {
		return signedHeaders{}, fmt.Errorf("%w: Wechatpay-Timestamp is not a number", ErrBadSignature)
	}
	// Digits only, no sign, no leading zero: the one way WeChat writes it
	// (strconv.ParseInt takes "+1796585041" and "01796585041" too).
	if strconv.FormatInt(sec, 10) != ts {
		return signedHeaders{}, fmt.Errorf("%w: Wechatpay-Timestamp is not written as plain digits", ErrNotCanonical)
	}
	if d := h.now().Sub(time.Unix(sec, 0)); d >= notifyClockSkew || d <= -notifyClockSkew {
		return signedHeaders{}, ErrStaleTimestamp
	}
	// Standard base64 with padding and zero pad bits, nothing else: the SDK's
	// decoder also takes other pad bits (a 256-byte signature then has 16
	// spellings) and skips line breaks.
	raw, err := base64.StdEncoding.Strict().DecodeString(sig)
	if err != nil || base64.StdEncoding.EncodeToString(raw) != sig {
		return signedHeaders{}, fmt.Errorf("%w: Wechatpay-Signature is not canonical base64", ErrNotCanonical)
	}
	if strings.TrimSpace(nonce) != nonce {
		return signedHeaders{}, fmt.Errorf("%w: white space around Wechatpay-Nonce", ErrNotCanonical)
	}
	return signedHeaders{timestamp: sec, nonce: nonce, signature: raw}, nil
}
