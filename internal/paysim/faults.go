package paysim

import (
	"fmt"
	"net/http"
	"sort"
)

// Endpoint names used by endpoint faults.
const (
	EndpointPrepay      = "prepay"         // POST /v3/pay/transactions/jsapi
	EndpointQuery       = "query"          // GET  /v3/pay/transactions/out-trade-no/{no} and /id/{id}
	EndpointClose       = "close"          // POST /v3/pay/transactions/out-trade-no/{no}/close
	EndpointRefund      = "refund"         // POST /v3/refund/domestic/refunds
	EndpointRefundQuery = "refund_query"   // GET  /v3/refund/domestic/refunds/{no}
	EndpointLogin       = "jscode2session" // GET  /sns/jscode2session
)

var endpointNames = map[string]bool{
	EndpointPrepay: true, EndpointQuery: true, EndpointClose: true,
	EndpointRefund: true, EndpointRefundQuery: true, EndpointLogin: true,
	EndpointTradeBill: true, EndpointBillDownload: true,
	EndpointStableToken: true, EndpointIsTradeManaged: true, EndpointUploadShippingInfo: true,
	EndpointGetOrder: true, EndpointNotifyConfirmReceive: true, EndpointSetMsgJumpPath: true,
}

// errcodeEndpoint reports whether an endpoint answers WeChat's errcode JSON
// (jscode2session and the mini-program server API), not WeChat Pay's.
func errcodeEndpoint(name string) bool { return name == EndpointLogin || wxaEndpoints[name] }

// Notify tamper kinds: what a tampered delivery attempt gets wrong.
const (
	TamperFlipSignature     = "flip_signature"     // one byte of the signature flipped
	TamperStaleTimestamp    = "stale_timestamp"    // validly signed, timestamp 6 minutes old
	TamperWrongSerial       = "wrong_serial"       // Wechatpay-Serial is another key id
	TamperWrongKey          = "wrong_key"          // signed with a key that is not the platform key
	TamperCorruptCiphertext = "corrupt_ciphertext" // validly signed, ciphertext does not decrypt
)

var tamperKinds = map[string]bool{
	TamperFlipSignature: true, TamperStaleTimestamp: true, TamperWrongSerial: true,
	TamperWrongKey: true, TamperCorruptCiphertext: true,
}

// Faults is the body of POST /sim/faults and the answer of GET /sim/faults.
// Posting merges: a section that is present replaces that section (an
// endpoint set to null is cleared); DELETE /sim/faults clears everything.
type Faults struct {
	Notify    *NotifyFaults             `json:"notify,omitempty"`
	Endpoints map[string]*EndpointFault `json:"endpoints,omitempty"`
	Refund    *RefundFaults             `json:"refund,omitempty"`
	Bill      *BillFaults               `json:"bill,omitempty"`
	// Push acts on the message pushes of shipping management.
	Push *PushFaults `json:"push,omitempty"`
}

// NotifyFaults act on notifications (payment and refund).
type NotifyFaults struct {
	Drop      int `json:"drop,omitempty"`      // the next N notifications are never sent
	Duplicate int `json:"duplicate,omitempty"` // the next N are sent once more right after their 2xx
	DelayMS   int `json:"delay_ms,omitempty"`  // every first attempt waits this long (until cleared)
	// Reorder holds each notification until the next one exists, then sends
	// the newer first and the held one right after its first attempt; a held
	// notification is released after ReorderHoldMS (default 3000) anyway.
	Reorder       bool `json:"reorder,omitempty"`
	ReorderHoldMS int  `json:"reorder_hold_ms,omitempty"`
	// Tamper spoils the next TamperCount delivery attempts (default 1) in the
	// given way; later retries are genuine.
	Tamper      string `json:"tamper,omitempty"`
	TamperCount int    `json:"tamper_count,omitempty"`
}

// EndpointFault acts on the next Count calls of one endpoint (Count 0 means
// 1; -1 means until cleared).
type EndpointFault struct {
	Status  int    `json:"status,omitempty"`  // answer this HTTP status (400..599) instead
	Code    string `json:"code,omitempty"`    // error code (default SYSTEM_ERROR for 5xx, FREQUENCY_LIMITED for 429, INVALID_REQUEST otherwise)
	Message string `json:"message,omitempty"` // error message
	// After: process the request normally, then answer Status anyway (the
	// answer is "lost": WeChat did it, the merchant does not know).
	After        bool `json:"after,omitempty"`
	DelayMS      int  `json:"delay_ms,omitempty"`      // answer this much later (slow endpoint)
	BadSignature bool `json:"bad_signature,omitempty"` // WeChat Pay only: answer normally but with a corrupted signature
	// ErrCode: jscode2session and the mini-program server API only: answer
	// this errcode (-1 busy, 10060001 payment not found, …); with After, do
	// the call first (the answer is lost).
	ErrCode int `json:"errcode,omitempty"`
	Count   int `json:"count"`
}

// RefundFaults decide how the next refunds settle.
type RefundFaults struct {
	Abnormal int `json:"abnormal,omitempty"` // the next N refunds settle ABNORMAL
	Closed   int `json:"closed,omitempty"`   // then the next N settle CLOSED
}

type faultState struct {
	notify    NotifyFaults
	endpoints map[string]*EndpointFault
	refund    RefundFaults
}

func newFaultState() faultState {
	return faultState{endpoints: map[string]*EndpointFault{}}
}

const defaultReorderHoldMS = 3000

func (f Faults) validate() error {
	if n := f.Notify; n != nil {
		if n.Drop < 0 || n.Duplicate < 0 || n.DelayMS < 0 || n.ReorderHoldMS < 0 || n.TamperCount < 0 {
			return fmt.Errorf("%w: notify counts and delays must not be negative", ErrInvalid)
		}
		if n.Tamper != "" && !tamperKinds[n.Tamper] {
			return fmt.Errorf("%w: unknown notify tamper %q (want one of %v)", ErrInvalid, n.Tamper, sortedKeys(tamperKinds))
		}
	}
	for name, e := range f.Endpoints {
		if !endpointNames[name] {
			return fmt.Errorf("%w: unknown endpoint %q (want one of %v)", ErrInvalid, name, sortedKeys(endpointNames))
		}
		if e == nil {
			continue
		}
		if e.Status != 0 && (e.Status < 400 || e.Status > 599) {
			return fmt.Errorf("%w: endpoint %s: status must be 400..599", ErrInvalid, name)
		}
		if e.Count < -1 || e.DelayMS < 0 {
			return fmt.Errorf("%w: endpoint %s: count must be >= -1 and delay_ms >= 0", ErrInvalid, name)
		}
		if e.ErrCode != 0 && !errcodeEndpoint(name) {
			return fmt.Errorf("%w: endpoint %s: errcode is for jscode2session and the mini-program server API only", ErrInvalid, name)
		}
		if e.BadSignature && errcodeEndpoint(name) {
			return fmt.Errorf("%w: endpoint %s: bad_signature is for WeChat Pay's signed answers only", ErrInvalid, name)
		}
		if e.Status == 0 && e.DelayMS == 0 && !e.BadSignature && e.ErrCode == 0 {
			return fmt.Errorf("%w: endpoint %s: set status, delay_ms, bad_signature or errcode", ErrInvalid, name)
		}
	}
	if p := f.Push; p != nil && (p.Drop < 0 || p.Duplicate < 0) {
		return fmt.Errorf("%w: push counts must not be negative", ErrInvalid)
	}
	if r := f.Refund; r != nil && (r.Abnormal < 0 || r.Closed < 0) {
		return fmt.Errorf("%w: refund counts must not be negative", ErrInvalid)
	}
	if b := f.Bill; b != nil {
		if b.Corrupt != "" && !billCorruptions[b.Corrupt] {
			return fmt.Errorf("%w: unknown bill corruption %q (want one of %v)", ErrInvalid, b.Corrupt, sortedKeys(billCorruptions))
		}
		if b.Count < -1 {
			return fmt.Errorf("%w: bill count must be >= -1", ErrInvalid)
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ApplyFaults merges f into the current faults (see Faults).
func (s *Sim) ApplyFaults(f Faults) (Faults, error) {
	if err := f.validate(); err != nil {
		return Faults{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Notify != nil {
		n := *f.Notify
		if n.Tamper != "" && n.TamperCount == 0 {
			n.TamperCount = 1
		}
		if n.Tamper == "" {
			n.TamperCount = 0
		}
		s.faults.notify = n
		if !n.Reorder && s.held != nil {
			s.releaseHeldLocked()
		}
	}
	for name, e := range f.Endpoints {
		if e == nil {
			delete(s.faults.endpoints, name)
			continue
		}
		c := *e
		if c.Count == 0 {
			c.Count = 1
		}
		s.faults.endpoints[name] = &c
	}
	if f.Refund != nil {
		s.faults.refund = *f.Refund
	}
	if f.Push != nil {
		s.wxa.pushFaults = *f.Push
	}
	if f.Bill != nil {
		b := *f.Bill
		if b.Corrupt == "" {
			b.Count = 0
		} else if b.Count == 0 {
			b.Count = 1
		}
		s.bills.faults = b
	}
	s.log.Info("paysim: faults set", "faults", fmt.Sprintf("%+v", s.faultsLocked()))
	return s.faultsLocked(), nil
}

// ClearFaults removes every fault.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = newFaultState()
	s.bills.faults = BillFaults{}
	s.wxa.pushFaults = PushFaults{}
	if s.held != nil {
		s.releaseHeldLocked()
	}
}

// CurrentFaults returns what is left of the faults.
func (s *Sim) CurrentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faultsLocked()
}

func (s *Sim) faultsLocked() Faults {
	n := s.faults.notify
	r := s.faults.refund
	b := s.bills.faults
	p := s.wxa.pushFaults
	out := Faults{Notify: &n, Refund: &r, Bill: &b, Push: &p, Endpoints: map[string]*EndpointFault{}}
	for k, v := range s.faults.endpoints {
		c := *v
		out.Endpoints[k] = &c
	}
	return out
}

// takeEndpointFault consumes one use of the fault set for an endpoint.
func (s *Sim) takeEndpointFault(name string) *EndpointFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults.endpoints[name]
	if f == nil {
		return nil
	}
	c := *f
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			delete(s.faults.endpoints, name)
		}
	}
	return &c
}

func (f *EndpointFault) reply() reply {
	code := f.Code
	if code == "" {
		switch {
		case f.Status == http.StatusTooManyRequests:
			code = "FREQUENCY_LIMITED"
		case f.Status >= 500:
			code = "SYSTEM_ERROR"
		default:
			code = "INVALID_REQUEST"
		}
	}
	msg := f.Message
	if msg == "" {
		msg = "paysim: injected fault"
	}
	return errReply(f.Status, code, msg)
}

// takeTamperLocked consumes one tampered attempt, if any.
func (s *Sim) takeTamperLocked() string {
	n := &s.faults.notify
	if n.Tamper == "" || n.TamperCount <= 0 {
		return ""
	}
	kind := n.Tamper
	n.TamperCount--
	if n.TamperCount == 0 {
		n.Tamper = ""
	}
	return kind
}

// takeRefundFault decides how a new refund will settle ("" = SUCCESS).
// s.mu must be held.
func (s *Sim) takeRefundFault() string {
	r := &s.faults.refund
	switch {
	case r.Abnormal > 0:
		r.Abnormal--
		return RefundAbnormal
	case r.Closed > 0:
		r.Closed--
		return RefundClosed
	}
	return ""
}
