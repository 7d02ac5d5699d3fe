package paysim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Notification event types.
const (
	EventTransactionSuccess = "TRANSACTION.SUCCESS"
	EventRefundSuccess      = "REFUND.SUCCESS"
	EventRefundAbnormal     = "REFUND.ABNORMAL"
	EventRefundClosed       = "REFUND.CLOSED"
)

// Notification states (NotifyView.State).
const (
	NotifyPending   = "pending"
	NotifyHeld      = "held"
	NotifyDelivered = "delivered"
	NotifyDropped   = "dropped"
	NotifyGaveUp    = "gave_up"
	NotifyStopped   = "stopped"
)

const signTestPrefix = "WECHATPAY/SIGNTEST/"

type envResource struct {
	OriginalType   string `json:"original_type"`
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
}

type envelope struct {
	ID           string      `json:"id"`
	CreateTime   string      `json:"create_time"`
	ResourceType string      `json:"resource_type"`
	EventType    string      `json:"event_type"`
	Summary      string      `json:"summary"`
	Resource     envResource `json:"resource"`
}

type notification struct {
	id, eventType, url, outRefundNo string
	createdAt                       time.Time
	env                             envelope
	body                            []byte
	state                           string
	attempts                        []Attempt
	duplicate                       bool
	delay                           time.Duration
	hold                            time.Duration
	release                         chan struct{} // reorder: closed when the newer one went first
	follower                        *notification // reorder: the held one to release after our first attempt
}

func (n *notification) view() NotifyView {
	return NotifyView{
		ID:          n.id,
		EventType:   n.eventType,
		OutRefundNo: n.outRefundNo,
		URL:         n.url,
		CreatedAt:   n.createdAt,
		State:       n.state,
		Attempts:    append([]Attempt{}, n.attempts...),
	}
}

// buildEnvelope encrypts payload with the APIv3 key into a notify envelope.
func (s *Sim) buildEnvelope(now time.Time, eventType, summary, originalType string, payload any) (envelope, []byte, error) {
	plain, err := json.Marshal(payload)
	if err != nil {
		return envelope{}, nil, err
	}
	nonce := randString(12)
	ct, err := encryptResource(s.opts.APIv3Key, plain, originalType, nonce)
	if err != nil {
		return envelope{}, nil, err
	}
	env := envelope{
		ID:           newUUID(),
		CreateTime:   fmtTime(now),
		ResourceType: "encrypt-resource",
		EventType:    eventType,
		Summary:      summary,
		Resource: envResource{
			OriginalType:   originalType,
			Algorithm:      "AEAD_AES_256_GCM",
			Ciphertext:     ct,
			AssociatedData: originalType,
			Nonce:          nonce,
		},
	}
	body, err := json.Marshal(env)
	return env, body, err
}

// enqueueNotifyLocked creates a notification and starts delivering it,
// applying the notify faults. s.mu must be held.
func (s *Sim) enqueueNotifyLocked(t *txn, outRefundNo, eventType, summary, originalType, url string, payload any) {
	now := s.now()
	env, body, err := s.buildEnvelope(now, eventType, summary, originalType, payload)
	if err != nil {
		s.log.Error("paysim: cannot build notification", "event_type", eventType, "err", err)
		t.event(now, "cannot build %s notification: %v", eventType, err)
		return
	}
	n := &notification{
		id: env.ID, eventType: eventType, url: url, outRefundNo: outRefundNo,
		createdAt: now, env: env, body: body, state: NotifyPending,
	}
	t.notifies = append(t.notifies, n)
	nf := &s.faults.notify
	if nf.Drop > 0 {
		nf.Drop--
		n.state = NotifyDropped
		t.event(now, "%s notification %s dropped (fault)", eventType, n.id)
		return
	}
	if nf.Duplicate > 0 {
		nf.Duplicate--
		n.duplicate = true
	}
	n.delay = time.Duration(nf.DelayMS) * time.Millisecond
	if nf.Reorder {
		if h := s.held; h != nil {
			s.held = nil
			n.follower = h
		} else {
			hold := nf.ReorderHoldMS
			if hold == 0 {
				hold = defaultReorderHoldMS
			}
			n.state = NotifyHeld
			n.release = make(chan struct{})
			n.hold = time.Duration(hold) * time.Millisecond
			s.held = n
		}
	}
	s.goLocked(func() { s.deliver(n) })
}

// releaseHeldLocked lets a held notification go now (reorder switched off).
func (s *Sim) releaseHeldLocked() {
	h := s.held
	s.held = nil
	close(h.release)
	h.release = nil
}

func (s *Sim) setState(n *notification, state string) {
	s.mu.Lock()
	n.state = state
	s.mu.Unlock()
}

// deliver runs one notification: the first attempt, then retries on
// RetrySchedule (scaled) until a 2xx, then gives up.
func (s *Sim) deliver(n *notification) {
	s.mu.Lock()
	release, hold := n.release, n.hold
	s.mu.Unlock()
	if release != nil {
		t := time.NewTimer(hold)
		select {
		case <-release:
		case <-t.C:
			s.mu.Lock()
			if s.held == n {
				s.held = nil
			}
			s.mu.Unlock()
		case <-s.ctx.Done():
			t.Stop()
			s.setState(n, NotifyStopped)
			return
		}
		t.Stop()
	}
	s.mu.Lock()
	if n.state == NotifyHeld {
		n.state = NotifyPending
	}
	s.mu.Unlock()
	releaseFollower := func() {
		s.mu.Lock()
		f := n.follower
		n.follower = nil
		if f != nil && f.release != nil {
			close(f.release)
			f.release = nil
		}
		s.mu.Unlock()
	}
	defer releaseFollower()
	if !s.sleep(n.delay) {
		s.setState(n, NotifyStopped)
		return
	}
	for i := 0; ; i++ {
		ok := s.attempt(n, false)
		releaseFollower()
		if ok {
			s.setState(n, NotifyDelivered)
			if n.duplicate {
				s.attempt(n, true)
			}
			return
		}
		if i >= len(RetrySchedule) {
			s.setState(n, NotifyGaveUp)
			s.log.Warn("paysim: notify gave up", "id", n.id, "event_type", n.eventType)
			return
		}
		s.mu.Lock()
		wait := time.Duration(float64(RetrySchedule[i]) * s.notifyScale)
		s.mu.Unlock()
		if !s.sleep(wait) {
			s.setState(n, NotifyStopped)
			return
		}
	}
}

// attempt POSTs the notification once; true on a 2xx answer.
func (s *Sim) attempt(n *notification, duplicate bool) bool {
	s.mu.Lock()
	tamper := s.takeTamperLocked()
	s.mu.Unlock()

	body := n.body
	if tamper == TamperCorruptCiphertext {
		body = corruptCiphertext(n.env)
	}
	ts := s.now().Unix()
	if tamper == TamperStaleTimestamp {
		ts -= 6 * 60
	}
	serial := s.opts.PublicKeyID
	if tamper == TamperWrongSerial {
		serial = "PUB_KEY_ID_9999999999999999999999999999999"
	}
	key := s.opts.PlatformPrivateKey
	if tamper == TamperWrongKey {
		key = s.otherKey()
	}
	nonce := randString(32)
	tsText := strconv.FormatInt(ts, 10)
	sig, err := signSHA256(key, tsText+"\n"+nonce+"\n"+string(body)+"\n")
	if err != nil {
		s.recordAttempt(n, Attempt{At: s.now(), Error: "sign: " + err.Error(), Tamper: tamper, Duplicate: duplicate})
		return false
	}
	if tamper == TamperFlipSignature {
		sig = flipSignature(sig)
	}
	status, errText, dur := s.post(s.ctx, n.url, body, map[string]string{
		"Wechatpay-Timestamp": tsText,
		"Wechatpay-Nonce":     nonce,
		"Wechatpay-Serial":    serial,
		"Wechatpay-Signature": sig,
	})
	s.recordAttempt(n, Attempt{At: dur.start, Status: status, Error: errText, DurationMS: dur.elapsed.Milliseconds(), Tamper: tamper, Duplicate: duplicate})
	s.log.Info("paysim: notify attempt", "id", n.id, "event_type", n.eventType, "status", status, "err", errText, "tamper", tamper, "duplicate", duplicate)
	return status >= 200 && status <= 299
}

func (s *Sim) recordAttempt(n *notification, a Attempt) {
	s.mu.Lock()
	n.attempts = append(n.attempts, a)
	s.mu.Unlock()
}

type timing struct {
	start   time.Time
	elapsed time.Duration
}

func (s *Sim) post(ctx context.Context, url string, body []byte, headers map[string]string) (int, string, timing) {
	start := s.now()
	realStart := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error(), timing{start, 0}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("User-Agent", "Mozilla/4.0 (WeChatPay paysim)")
	req.Header.Set("Wechatpay-Signature-Type", authScheme)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := s.notifyClient.Do(req)
	if err != nil {
		return 0, err.Error(), timing{start, time.Since(realStart)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, "", timing{start, time.Since(realStart)}
}

// corruptCiphertext re-encodes the envelope with one ciphertext byte flipped:
// still valid base64 and validly signed, but AES-GCM authentication fails.
func corruptCiphertext(env envelope) []byte {
	raw, err := base64.StdEncoding.DecodeString(env.Resource.Ciphertext)
	if err == nil && len(raw) > 0 {
		raw[0] ^= 0xff
		env.Resource.Ciphertext = base64.StdEncoding.EncodeToString(raw)
	} else {
		env.Resource.Ciphertext = "AAAA"
	}
	b, _ := json.Marshal(env)
	return b
}

func (s *Sim) otherKey() *rsa.PrivateKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wrongKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		s.wrongKey = k
	}
	return s.wrongKey
}

// ProbeResult is the outcome of a WECHATPAY/SIGNTEST/ probe.
type ProbeResult struct {
	At      time.Time `json:"at"`
	URL     string    `json:"url"`
	Status  int       `json:"status"`
	Error   string    `json:"error,omitempty"`
	Refused bool      `json:"refused"` // the merchant answered non-2xx, as it must
}

// SendSignTest sends WeChat's signature probe to url: a well-formed
// TRANSACTION.SUCCESS callback whose Wechatpay-Signature starts with
// "WECHATPAY/SIGNTEST/". A merchant that verifies signatures refuses it.
func (s *Sim) SendSignTest(ctx context.Context, url string) (ProbeResult, error) {
	if !validNotifyURL(url) {
		return ProbeResult{}, fmt.Errorf("%w: url must be an absolute http(s) URL without query", ErrInvalid)
	}
	now := s.now()
	fake := txJSON{
		AppID: s.opts.AppID, MchID: s.opts.MchID, OutTradeNo: "SIGNTEST" + randDigits(12),
		TransactionID: newTransactionID(now), TradeType: "JSAPI", TradeState: StateSuccess,
		TradeStateDesc: "支付成功", BankType: "OTHERS", SuccessTime: fmtTime(now),
		Payer: txPayerJSON{OpenID: "oSIGNTEST000000000000000000"},
	}
	one := int64(1)
	fake.Amount = txAmountJSON{Total: 1, PayerTotal: &one, Currency: "CNY", PayerCurrency: "CNY"}
	_, body, err := s.buildEnvelope(now, EventTransactionSuccess, "支付成功", "transaction", fake)
	if err != nil {
		return ProbeResult{}, err
	}
	junk := make([]byte, 180)
	_, _ = rand.Read(junk)
	status, errText, tm := s.post(ctx, url, body, map[string]string{
		"Wechatpay-Timestamp": strconv.FormatInt(now.Unix(), 10),
		"Wechatpay-Nonce":     randString(32),
		"Wechatpay-Serial":    s.opts.PublicKeyID,
		"Wechatpay-Signature": signTestPrefix + base64.StdEncoding.EncodeToString(junk),
	})
	res := ProbeResult{At: tm.start, URL: url, Status: status, Error: errText, Refused: status != 0 && (status < 200 || status > 299)}
	s.mu.Lock()
	s.probes = append(s.probes, res)
	s.mu.Unlock()
	return res, nil
}

// Probes lists the SIGNTEST probes sent so far.
func (s *Sim) Probes() []ProbeResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ProbeResult{}, s.probes...)
}
