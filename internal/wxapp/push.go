package wxapp

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Message push (消息推送) in security mode, JSON format: WeChat POSTs
// ?signature&timestamp&nonce&encrypt_type=aes&msg_signature with the body
// {"ToUserName","Encrypt"}; msg_signature is hex(SHA-1) of token,
// timestamp, nonce and Encrypt, sorted and joined; Encrypt is AES-256-CBC
// (key = base64(EncodingAESKey + "="), IV = key[:16]) of 16 random bytes ‖
// 4-byte big-endian length ‖ message ‖ appid, PKCS#7-padded to 32 bytes.
// The console's URL check is a GET ?signature&timestamp&nonce&echostr,
// answered with echostr when signature = hex(SHA-1) of token, timestamp
// and nonce, sorted and joined.

// Reasons a push is refused.
var (
	// ErrPushSignature: signature or msg_signature does not verify (a
	// forgery, or another Token).
	ErrPushSignature = errors.New("wxapp: message push signature does not verify")
	// ErrPushStale: the signed timestamp is further than PushWindow from now.
	ErrPushStale = errors.New("wxapp: message push timestamp is stale")
	// ErrPushForeignApp: the message decrypted is for another mini-program.
	ErrPushForeignApp = errors.New("wxapp: message push is for another appid")
	// ErrPushBody: the body is not JSON with Encrypt, or Encrypt does not
	// decrypt to a message (another EncodingAESKey, or corrupted).
	ErrPushBody = errors.New("wxapp: message push body is malformed or does not decrypt")
)

// PushWindow is how far a push's signed timestamp may be from now: WeChat
// retries within seconds, so a copy older than this is a replay.
const PushWindow = 5 * time.Minute

// Push verifies and decrypts the message pushes of one mini-program.
type Push struct {
	token string
	key   []byte
	appID string
	now   func() time.Time
}

// CheckPushToken reports what is wrong with a message push Token ("" when
// nothing): WeChat's console takes 3 to 32 letters and digits.
func CheckPushToken(token string) string {
	if len(token) < 3 || len(token) > 32 {
		return fmt.Sprintf("must be 3 to 32 letters or digits, got %d characters", len(token))
	}
	for _, r := range token {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "must be letters and digits only"
		}
	}
	return ""
}

// CheckAESKey reports what is wrong with an EncodingAESKey ("" when
// nothing): 43 characters of base64, which decode (with "=" added) to the
// 32-byte AES key.
func CheckAESKey(encodingAESKey string) string {
	if _, err := aesKey(encodingAESKey); err != nil {
		return err.Error()
	}
	return ""
}

func aesKey(encodingAESKey string) ([]byte, error) {
	if len(encodingAESKey) != 43 {
		return nil, fmt.Errorf("must be 43 characters of base64, got %d", len(encodingAESKey))
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, errors.New("is not 43 characters of base64 decoding to 32 bytes")
	}
	return key, nil
}

// NewPush returns the verifier of the pushes to appID configured with
// token and encodingAESKey; now is the clock of the stale check (nil =
// time.Now).
func NewPush(token, encodingAESKey, appID string, now func() time.Time) (*Push, error) {
	if problem := CheckPushToken(token); problem != "" {
		return nil, fmt.Errorf("wxapp: push token %s", problem)
	}
	key, err := aesKey(encodingAESKey)
	if err != nil {
		return nil, fmt.Errorf("wxapp: push EncodingAESKey %w", err)
	}
	if appID == "" {
		return nil, errors.New("wxapp: push: no appid to check messages against")
	}
	if now == nil {
		now = time.Now
	}
	return &Push{token: token, key: key, appID: appID, now: now}, nil
}

// PushSignature is hex(SHA-1) of parts sorted and joined: the signature of
// the URL check (token, timestamp, nonce) and of a message (with Encrypt).
func PushSignature(parts ...string) string {
	s := append([]string(nil), parts...)
	sort.Strings(s)
	sum := sha1.Sum([]byte(strings.Join(s, "")))
	return hex.EncodeToString(sum[:])
}

func (p *Push) checkTimestamp(ts string) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not a number", ErrPushSignature, ts)
	}
	if d := p.now().Sub(time.Unix(sec, 0)); d > PushWindow || d < -PushWindow {
		return fmt.Errorf("%w: %s away from now", ErrPushStale, d.Round(time.Second))
	}
	return nil
}

func sameSignature(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), []byte(want)) == 1
}

// CheckURL answers the console's URL check: the echostr to send back when
// the signature verifies.
func (p *Push) CheckURL(q url.Values) (string, error) {
	ts, nonce := q.Get("timestamp"), q.Get("nonce")
	if !sameSignature(q.Get("signature"), PushSignature(p.token, ts, nonce)) {
		return "", ErrPushSignature
	}
	if err := p.checkTimestamp(ts); err != nil {
		return "", err
	}
	return q.Get("echostr"), nil
}

// PushMessage is a verified, decrypted push.
type PushMessage struct {
	// Plain is the message as WeChat sent it (JSON).
	Plain []byte
	// ReplayKey identifies the delivery by what its signature covers
	// (timestamp, nonce, Encrypt): a copy of it has the same key.
	ReplayKey [32]byte
}

// Open verifies a POSTed push (query q, body) and decrypts it: its
// msg_signature, its timestamp (within PushWindow), and the appid at the
// end of the plaintext.
func (p *Push) Open(q url.Values, body []byte) (PushMessage, error) {
	var env struct {
		ToUserName string `json:"ToUserName"`
		Encrypt    string `json:"Encrypt"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Encrypt == "" {
		return PushMessage{}, fmt.Errorf("%w: not a JSON object with Encrypt", ErrPushBody)
	}
	ts, nonce := q.Get("timestamp"), q.Get("nonce")
	if !sameSignature(q.Get("msg_signature"), PushSignature(p.token, ts, nonce, env.Encrypt)) {
		return PushMessage{}, ErrPushSignature
	}
	if err := p.checkTimestamp(ts); err != nil {
		return PushMessage{}, err
	}
	msg, appID, err := p.decrypt(env.Encrypt)
	if err != nil {
		return PushMessage{}, err
	}
	if subtle.ConstantTimeCompare([]byte(appID), []byte(p.appID)) != 1 {
		return PushMessage{}, fmt.Errorf("%w: %q", ErrPushForeignApp, appID)
	}
	return PushMessage{Plain: msg, ReplayKey: sha256.Sum256([]byte(ts + "\x00" + nonce + "\x00" + env.Encrypt))}, nil
}

// decrypt opens Encrypt into the message and the appid it ends with.
func (p *Push) decrypt(encrypted string) (msg []byte, appID string, err error) {
	raw, err := base64.StdEncoding.DecodeString(encrypted)
	if err != nil || len(raw) == 0 || len(raw)%aes.BlockSize != 0 {
		return nil, "", fmt.Errorf("%w: Encrypt is not whole AES blocks of base64", ErrPushBody)
	}
	block, err := aes.NewCipher(p.key)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrPushBody, err)
	}
	plain := make([]byte, len(raw))
	cipher.NewCBCDecrypter(block, p.key[:aes.BlockSize]).CryptBlocks(plain, raw)
	// PKCS#7 with WeChat's 32-byte block: 1 to 32 bytes of padding.
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > 32 || pad > len(plain) || !bytes.Equal(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, "", fmt.Errorf("%w: bad padding (another EncodingAESKey?)", ErrPushBody)
	}
	plain = plain[:len(plain)-pad]
	if len(plain) < 20 {
		return nil, "", fmt.Errorf("%w: too short", ErrPushBody)
	}
	n := int(binary.BigEndian.Uint32(plain[16:20]))
	if n < 0 || 20+n > len(plain) {
		return nil, "", fmt.Errorf("%w: message length %d does not fit", ErrPushBody, n)
	}
	return plain[20 : 20+n], string(plain[20+n:]), nil
}

// Push events of shipping management.
const (
	// EventOrderSettlement: the buyer confirmed receipt (or WeChat did,
	// after its deadline) and the money settles to the merchant.
	EventOrderSettlement = "trade_manage_order_settlement"
	// EventRemindShipping: paid and not reported shipped for a while.
	EventRemindShipping = "trade_manage_remind_shipping"
	// EventRemindAccessAPI: WeChat asks the shop to use the shipping API.
	EventRemindAccessAPI = "trade_manage_remind_access_api"
)

// Event is a decrypted push message (the fields the shop reads).
type Event struct {
	ToUserName      string `json:"ToUserName"`
	FromUserName    string `json:"FromUserName"`
	CreateTime      int64  `json:"CreateTime"`
	MsgType         string `json:"MsgType"`
	Event           string `json:"Event"`
	TransactionID   string `json:"transaction_id"`
	MerchantID      string `json:"merchant_id"`
	MerchantTradeNo string `json:"merchant_trade_no"`
	// Settlement: how receipt was confirmed (1 by the buyer, 2 by WeChat
	// after its deadline) and when; when the money settled.
	ConfirmReceiveMethod int    `json:"confirm_receive_method"`
	ConfirmReceiveTime   int64  `json:"confirm_receive_time"`
	SettlementTime       int64  `json:"settlement_time"`
	Msg                  string `json:"msg"`
}
