package paysim

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Message push (消息推送) of the mini-program, security mode, JSON: the
// events of shipping management are encrypted with the shop's
// EncodingAESKey, signed with its Token and POSTed to its push URL, as
// WeChat does. (Written apart from the shop's side, internal/wxapp, so that
// a misreading of the protocol in one does not pass unseen in the other.)

// PushFaults act on message pushes.
type PushFaults struct {
	Drop      int `json:"drop,omitempty"`      // the next N pushes are never sent
	Duplicate int `json:"duplicate,omitempty"` // the next N are sent once more after their success
}

// Push states (PushView.State): as NotifyView's, plus no_url (no push URL
// was configured: recorded, not sent).
const PushNoURL = "no_url"

type pushRec struct {
	id, event string
	createdAt time.Time
	query     url.Values
	body      []byte
	state     string
	attempts  []Attempt
	duplicate bool
}

// PushView is one message push and its delivery attempts.
type PushView struct {
	ID        string    `json:"id"`
	Event     string    `json:"event"`
	CreatedAt time.Time `json:"created_at"`
	State     string    `json:"state"`
	Attempts  []Attempt `json:"attempts"`
}

func (p *pushRec) view() PushView {
	return PushView{ID: p.id, Event: p.event, CreatedAt: p.createdAt, State: p.state, Attempts: append([]Attempt{}, p.attempts...)}
}

// SealPush makes a message push as WeChat sends it: the query
// (signature, timestamp, nonce, encrypt_type=aes, msg_signature) and the
// body {"ToUserName","Encrypt"} of message, encrypted for appID with
// encodingAESKey and signed with token at time now. Tests forge pushes with
// it (another key, another appid, an old timestamp).
func SealPush(token, encodingAESKey, appID, toUserName string, message []byte, now time.Time) (url.Values, []byte, error) {
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, nil, errors.New("paysim: EncodingAESKey must be 43 characters of base64 (32 bytes)")
	}
	// 16 random bytes ‖ length ‖ message ‖ appid, PKCS#7 to 32-byte blocks.
	var plain bytes.Buffer
	random := make([]byte, 16)
	_, _ = rand.Read(random)
	plain.Write(random)
	_ = binary.Write(&plain, binary.BigEndian, uint32(len(message)))
	plain.Write(message)
	plain.WriteString(appID)
	pad := 32 - plain.Len()%32
	plain.Write(bytes.Repeat([]byte{byte(pad)}, pad))
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	sealed := make([]byte, plain.Len())
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(sealed, plain.Bytes())
	encrypted := base64.StdEncoding.EncodeToString(sealed)

	ts, nonce := strconv.FormatInt(now.Unix(), 10), randDigits(10)
	q := url.Values{}
	q.Set("signature", sha1Sorted(token, ts, nonce))
	q.Set("timestamp", ts)
	q.Set("nonce", nonce)
	q.Set("encrypt_type", "aes")
	q.Set("msg_signature", sha1Sorted(token, ts, nonce, encrypted))
	body, err := json.Marshal(map[string]string{"ToUserName": toUserName, "Encrypt": encrypted})
	return q, body, err
}

func sha1Sorted(parts ...string) string {
	s := append([]string(nil), parts...)
	sort.Strings(s)
	sum := sha1.Sum([]byte(strings.Join(s, "")))
	return hex.EncodeToString(sum[:])
}

// originalID is the mini-program's original id (gh_…), the ToUserName of
// its pushes.
func (s *Sim) originalID() string {
	sum := sha1.Sum([]byte(s.opts.AppID))
	return "gh_" + hex.EncodeToString(sum[:6])
}

// pushEventLocked sends a shipping-management event of t to the push URL:
// sealed as WeChat does, retried pushRetries times, pushRetryWait ×
// NotifyScale apart, until answered 200 "success" (or empty).
func (s *Sim) pushEventLocked(t *txn, fields map[string]any) {
	now := s.now()
	msg := map[string]any{
		"ToUserName": s.originalID(), "FromUserName": t.openID, "CreateTime": now.Unix(), "MsgType": "event",
	}
	for k, v := range fields {
		msg[k] = v
	}
	event, _ := fields["Event"].(string)
	p := &pushRec{id: newUUID(), event: event, createdAt: now, state: NotifyPending}
	t.ship.pushes = append(t.ship.pushes, p)
	if s.wxa.pushURL == "" {
		p.state = PushNoURL
		t.event(now, "%s push not sent: no push URL", event)
		return
	}
	plain, err := json.Marshal(msg)
	if err == nil {
		p.query, p.body, err = SealPush(s.opts.PushToken, s.opts.PushAESKey, s.opts.AppID, s.originalID(), plain, now)
	}
	if err != nil {
		p.state = NotifyGaveUp
		t.event(now, "%s push cannot be sealed: %v", event, err)
		s.log.Error("paysim: cannot seal push", "event", event, "err", err)
		return
	}
	f := &s.wxa.pushFaults
	if f.Drop > 0 {
		f.Drop--
		p.state = NotifyDropped
		t.event(now, "%s push dropped (fault)", event)
		return
	}
	if f.Duplicate > 0 {
		f.Duplicate--
		p.duplicate = true
	}
	target := s.wxa.pushURL + "?" + p.query.Encode()
	s.goLocked(func() { s.deliverPush(p, target) })
}

func (s *Sim) deliverPush(p *pushRec, target string) {
	for i := 0; ; i++ {
		ok := s.pushAttempt(p, target, false)
		if ok {
			s.setPushState(p, NotifyDelivered)
			if p.duplicate {
				s.pushAttempt(p, target, true)
			}
			return
		}
		if i >= pushRetries {
			s.setPushState(p, NotifyGaveUp)
			s.log.Warn("paysim: push gave up", "id", p.id, "event", p.event)
			return
		}
		s.mu.Lock()
		wait := time.Duration(float64(pushRetryWait) * s.notifyScale)
		s.mu.Unlock()
		if !s.sleep(wait) {
			s.setPushState(p, NotifyStopped)
			return
		}
	}
}

func (s *Sim) setPushState(p *pushRec, state string) {
	s.mu.Lock()
	p.state = state
	s.mu.Unlock()
}

// pushAttempt POSTs the push once: true when answered 200 with "success"
// or an empty body, as WeChat requires.
func (s *Sim) pushAttempt(p *pushRec, target string, duplicate bool) bool {
	status, body, errText, tm := s.postPush(target, p.body)
	a := Attempt{At: tm.start, Status: status, Error: errText, DurationMS: tm.elapsed.Milliseconds(), Duplicate: duplicate}
	ok := status == 200 && (body == "" || body == "success")
	if status == 200 && !ok {
		a.Error = fmt.Sprintf("answered %q, not \"success\"", body)
	}
	s.mu.Lock()
	p.attempts = append(p.attempts, a)
	s.mu.Unlock()
	s.log.Info("paysim: push attempt", "id", p.id, "event", p.event, "status", status, "err", a.Error, "duplicate", duplicate)
	return ok
}

// postPush POSTs a push; it returns the status, the answer's body (trimmed)
// and the transport error.
func (s *Sim) postPush(target string, body []byte) (int, string, string, timing) {
	start, realStart := s.now(), time.Now()
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, "", err.Error(), timing{start, 0}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Mozilla/4.0 (WeChat message push; paysim)")
	resp, err := s.notifyClient.Do(req)
	if err != nil {
		return 0, "", err.Error(), timing{start, time.Since(realStart)}
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, strings.TrimSpace(string(answer)), "", timing{start, time.Since(realStart)}
}
