package paysim

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultAppID       = "wxd0000000000000dev"
	DefaultMchID       = "1900000001"
	DefaultLoginSecret = "dev-app-secret"
	DefaultRefundDelay = 2 * time.Second
	// DefaultRefundInterval is WeChat's least time between two refunds of
	// one transaction (a second within it: FREQUENCY_LIMITED).
	DefaultRefundInterval = time.Minute
	// MaxRefunds is how many refunds one transaction may have.
	MaxRefunds           = 50
	DefaultNotifyTimeout = 5 * time.Second
)

// Close-on-paid behaviours (WeChat's real answer is not documented).
const (
	// CloseRefuse answers closing a paid order with 400 ORDERPAID.
	CloseRefuse = "refuse"
	// CloseOK204 answers 204 and leaves the order paid.
	CloseOK204 = "ok204"
)

// CodeOrderPaid is the error code of a refused close (and of a prepay for a
// paid order).
const CodeOrderPaid = "ORDERPAID"

// Trade states (trade_state) and refund statuses.
const (
	StateNotPay     = "NOTPAY"
	StateSuccess    = "SUCCESS"
	StateClosed     = "CLOSED"
	StateRefund     = "REFUND"
	StateUserPaying = "USERPAYING"
	StatePayError   = "PAYERROR"

	RefundProcessing = "PROCESSING"
	RefundSuccess    = "SUCCESS"
	RefundAbnormal   = "ABNORMAL"
	RefundClosed     = "CLOSED"
)

// RetrySchedule is WeChat's notify retry schedule: the waits before the 2nd,
// 3rd, ... 16th attempt. After the last one WeChat gives up.
var RetrySchedule = []time.Duration{
	15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute,
	10 * time.Minute, 20 * time.Minute, 30 * time.Minute, 30 * time.Minute,
	30 * time.Minute, 60 * time.Minute, 3 * time.Hour, 3 * time.Hour,
	3 * time.Hour, 6 * time.Hour, 6 * time.Hour,
}

// Options configure a simulator.
type Options struct {
	AppID, MchID string // the only appid / mchid it serves

	// To verify the merchant's request signatures.
	MerchantPublicKey  *rsa.PublicKey
	MerchantCertSerial string

	// Its own signing key (WeChat Pay public-key mode): responses and
	// notifications are signed with it and carry PublicKeyID as
	// Wechatpay-Serial.
	PlatformPrivateKey *rsa.PrivateKey
	PublicKeyID        string

	APIv3Key string // 32 bytes: notification resources are encrypted with it

	// NotifyScale multiplies RetrySchedule (1 = WeChat's real schedule; tests
	// use e.g. 0.001). 0 means 1.
	NotifyScale float64
	// NotifyTimeout bounds one notify attempt (WeChat: 5 s). 0 = 5 s.
	NotifyTimeout time.Duration
	// NotifyClient sends notifications; nil = a plain client with NotifyTimeout.
	NotifyClient *http.Client

	// RefundDelay: a refund goes PROCESSING → SUCCESS (or the status it was
	// told) after this. 0 = DefaultRefundDelay; negative = only when settled
	// through the control API.
	RefundDelay time.Duration
	// RefundInterval: a refund of a transaction less than this after its
	// last one is answered 429 FREQUENCY_LIMITED (real time, as WeChat's
	// minute). 0 = DefaultRefundInterval; negative = no limit. A test
	// stack sets it to its WECHATPAY_REFUND_INTERVAL.
	RefundInterval time.Duration

	// CloseOnPaid: CloseRefuse (default) or CloseOK204.
	CloseOnPaid string

	// Clock gives the time for time_expire, success/create times and the
	// signing timestamps. Waiting (retry schedule, refund delay) uses real
	// time. nil = time.Now.
	Clock func() time.Time

	Logger *slog.Logger // nil = discard

	// jscode2session: appid and secret must match; any code maps to a stable
	// openid. LoginStrictCodes makes a code usable once (errcode 40163 after).
	LoginSecret      string
	LoginStrictCodes bool

	// BillsImmediate makes a day's trade bill available at once, today's
	// included (made again at each request), instead of from 10:00 the
	// next day: dev and tests cannot wait until tomorrow.
	BillsImmediate bool

	// The mini-program server API (wxa.go): TokenTTL is the access
	// token's lifetime (0 = DefaultTokenTTL). NotTradeManaged makes
	// is_trade_managed answer false (WeChat holds the money of managed
	// mini-programs until receipt is confirmed; the default is managed).
	TokenTTL        time.Duration
	NotTradeManaged bool
	// FreshPayment: an upload_shipping_info within this long of the
	// payment is answered 10060001 (WeChat's shipping side sees payments a
	// moment late); 0 = never.
	FreshPayment time.Duration
	// ReceiptAutoConfirm: WeChat confirms receipt by itself this long after
	// the first shipping upload (really ~10 days for express); 0 = never.
	ReceiptAutoConfirm time.Duration
	// SettleDelay: a confirmed receipt settles (and its event is pushed)
	// after this; 0 = at once.
	SettleDelay time.Duration

	// Message push (push.go): where the shipping events go, with the
	// shop's Token and EncodingAESKey (43 characters). No URL: events are
	// recorded, not sent.
	PushURL, PushToken, PushAESKey string
}

// Errors of the control methods.
var (
	ErrNotFound = errors.New("paysim: not found")
	ErrConflict = errors.New("paysim: conflict")
	ErrInvalid  = errors.New("paysim: invalid argument")
)

// Sim is an in-memory WeChat Pay API v3 (and jscode2session) simulator.
type Sim struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	notifyClient *http.Client

	mu          sync.Mutex
	closed      bool
	txs         map[string]*txn // by out_trade_no
	byTxID      map[string]*txn // by transaction_id
	refunds     map[string]*refundRec
	usedCodes   map[string]bool
	faults      faultState
	closeOnPaid string
	refundDelay time.Duration
	// refundInterval: Options.RefundInterval (negative: none).
	refundInterval time.Duration
	notifyScale    float64
	held           *notification // reorder: waiting for the next notification
	probes         []ProbeResult
	wrongKey       *rsa.PrivateKey
	bills          billBook
	wxa            wxaState
}

type txn struct {
	appID, mchID, outTradeNo, description, attach, notifyURL, openID string
	total                                                            int64
	timeExpire                                                       time.Time
	prepayID, transactionID                                          string
	state, stateDesc                                                 string
	createdAt, successTime, closedAt                                 time.Time
	payOnClose                                                       bool
	refunds                                                          []*refundRec
	lastRefundAt                                                     time.Time // real time: the refund interval
	notifies                                                         []*notification
	events                                                           []Event
	ship                                                             *shipRec // shipping management, once paid
}

type refundRec struct {
	tx                                *txn
	outRefundNo, refundID, reason     string
	notifyURL                         string
	refund, total                     int64
	status                            string
	createTime, successTime, settleAt time.Time
	forceStatus                       string
	quiet                             bool // made in the merchant platform: no notify
	goods                             []RefundGoods
}

// RefundGoods is one line of a refund's goods_detail, as the merchant sent it.
type RefundGoods struct {
	MerchantGoodsID string `json:"merchant_goods_id"`
	GoodsName       string `json:"goods_name,omitempty"`
	UnitPrice       int64  `json:"unit_price"`
	RefundAmount    int64  `json:"refund_amount"`
	RefundQuantity  int64  `json:"refund_quantity"`
}

// Event is one thing that happened to a transaction.
type Event struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// New returns a simulator. Call Close to stop its notify and refund goroutines.
func New(opts Options) *Sim {
	if opts.AppID == "" {
		opts.AppID = DefaultAppID
	}
	if opts.MchID == "" {
		opts.MchID = DefaultMchID
	}
	if opts.NotifyScale <= 0 {
		opts.NotifyScale = 1
	}
	if opts.NotifyTimeout <= 0 {
		opts.NotifyTimeout = DefaultNotifyTimeout
	}
	if opts.RefundDelay == 0 {
		opts.RefundDelay = DefaultRefundDelay
	}
	if opts.RefundInterval == 0 {
		opts.RefundInterval = DefaultRefundInterval
	}
	if opts.CloseOnPaid == "" {
		opts.CloseOnPaid = CloseRefuse
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nc := opts.NotifyClient
	if nc == nil {
		nc = &http.Client{Timeout: opts.NotifyTimeout}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Sim{
		opts:           opts,
		log:            log,
		now:            opts.Clock,
		ctx:            ctx,
		cancel:         cancel,
		notifyClient:   nc,
		txs:            map[string]*txn{},
		byTxID:         map[string]*txn{},
		refunds:        map[string]*refundRec{},
		usedCodes:      map[string]bool{},
		faults:         newFaultState(),
		closeOnPaid:    opts.CloseOnPaid,
		refundDelay:    opts.RefundDelay,
		refundInterval: opts.RefundInterval,
		notifyScale:    opts.NotifyScale,
		bills:          newBillBook(opts.BillsImmediate),
		wxa: wxaState{
			managed: !opts.NotTradeManaged, freshPayment: opts.FreshPayment, autoConfirm: opts.ReceiptAutoConfirm,
			settleDelay: opts.SettleDelay, pushURL: opts.PushURL,
		},
	}
}

// Close stops all notify deliveries and refund timers and waits for them.
func (s *Sim) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// goLocked starts a background task; s.mu must be held.
func (s *Sim) goLocked(f func()) {
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// sleep waits d of real time; false when the simulator is closing.
func (s *Sim) sleep(d time.Duration) bool {
	if d <= 0 {
		return s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (t *txn) event(at time.Time, format string, args ...any) {
	t.events = append(t.events, Event{At: at, What: fmt.Sprintf(format, args...)})
}

// expireLocked closes an unpaid transaction whose time_expire has passed.
func (s *Sim) expireLocked(t *txn, now time.Time) {
	if t.timeExpire.IsZero() || now.Before(t.timeExpire) {
		return
	}
	switch t.state {
	case StateNotPay, StatePayError, StateUserPaying:
		t.state, t.stateDesc = StateClosed, "订单已关闭(已过期)"
		t.closedAt = t.timeExpire
		t.event(now, "expired at time_expire %s", fmtTime(t.timeExpire))
	}
}

// settleDueLocked settles a refund whose delay has passed on the simulator's
// clock (the real-time timer does the same when it fires).
func (s *Sim) settleDueLocked(r *refundRec, now time.Time) {
	if r.status == RefundProcessing && s.refundDelay >= 0 && !r.settleAt.IsZero() && !now.Before(r.settleAt) {
		s.settleRefundLocked(r, "", now)
	}
}

// payLocked makes the payer pay t in full and queues the payment notify.
func (s *Sim) payLocked(t *txn, now time.Time, why string) {
	t.state, t.stateDesc = StateSuccess, "支付成功"
	t.transactionID = newTransactionID(now)
	t.successTime = now
	t.payOnClose = false
	s.byTxID[t.transactionID] = t
	t.event(now, "paid (%s), transaction_id %s", why, t.transactionID)
	s.log.Info("paysim: paid", "out_trade_no", t.outTradeNo, "transaction_id", t.transactionID, "total_fen", t.total)
	s.enqueueNotifyLocked(t, "", EventTransactionSuccess, "支付成功", "transaction", t.notifyURL, s.transactionJSON(t))
}

// refundableLocked is what can still be refunded: the total minus refunds
// that are not CLOSED.
func refundableLocked(t *txn) int64 {
	left := t.total
	for _, r := range t.refunds {
		if r.status != RefundClosed {
			left -= r.refund
		}
	}
	return left
}

// settleRefundLocked moves a PROCESSING refund to its final status (status ""
// = what it was told at creation, else SUCCESS) and queues the notify.
func (s *Sim) settleRefundLocked(r *refundRec, status string, now time.Time) {
	if r.status != RefundProcessing {
		return
	}
	if status == "" {
		status = r.forceStatus
	}
	if status == "" {
		status = RefundSuccess
	}
	r.status = status
	event, summary := EventRefundSuccess, "退款成功"
	switch status {
	case RefundSuccess:
		r.successTime = now
	case RefundAbnormal:
		event, summary = EventRefundAbnormal, "退款异常"
	case RefundClosed:
		event, summary = EventRefundClosed, "退款关闭"
	}
	r.tx.event(now, "refund %s settled %s", r.outRefundNo, status)
	s.log.Info("paysim: refund settled", "out_refund_no", r.outRefundNo, "status", status)
	if r.quiet {
		return
	}
	url := r.notifyURL
	if url == "" {
		url = r.tx.notifyURL
	}
	s.enqueueNotifyLocked(r.tx, r.outRefundNo, event, summary, "refund", url, s.refundNotifyJSON(r))
}

// acceptRefundLocked records a new PROCESSING refund of its transaction and
// schedules its settlement after the refund delay (none when negative: the
// control API settles it).
func (s *Sim) acceptRefundLocked(r *refundRec, now time.Time, what string) {
	t := r.tx
	t.refunds = append(t.refunds, r)
	s.refunds[r.outRefundNo] = r
	t.state, t.stateDesc = StateRefund, "转入退款"
	t.event(now, "%s", what)
	s.log.Info("paysim: refund accepted", "out_refund_no", r.outRefundNo, "refund_fen", r.refund, "quiet", r.quiet)
	if delay := s.refundDelay; delay >= 0 {
		r.settleAt = now.Add(delay)
		s.goLocked(func() {
			if !s.sleep(delay) {
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.settleRefundLocked(r, "", s.now())
		})
	}
}

// ---- views ----

// TransactionView is the simulator's view of a transaction (GET
// /sim/transactions/{out_trade_no}).
type TransactionView struct {
	OutTradeNo     string       `json:"out_trade_no"`
	TransactionID  string       `json:"transaction_id,omitempty"`
	PrepayID       string       `json:"prepay_id"`
	AppID          string       `json:"appid"`
	MchID          string       `json:"mchid"`
	Description    string       `json:"description"`
	Attach         string       `json:"attach,omitempty"`
	NotifyURL      string       `json:"notify_url"`
	PayerOpenID    string       `json:"payer_openid"`
	TradeState     string       `json:"trade_state"`
	TradeStateDesc string       `json:"trade_state_desc"`
	TotalFen       int64        `json:"total_fen"`
	RefundedFen    int64        `json:"refunded_fen"`   // SUCCESS refunds
	RefundableFen  int64        `json:"refundable_fen"` // total minus refunds not CLOSED (when paid)
	TimeExpire     *time.Time   `json:"time_expire,omitempty"`
	CreatedAt      time.Time    `json:"created_at"`
	SuccessTime    *time.Time   `json:"success_time,omitempty"`
	ClosedAt       *time.Time   `json:"closed_at,omitempty"`
	PayOnClose     bool         `json:"pay_on_close,omitempty"`
	Refunds        []RefundView `json:"refunds"`
	Notifies       []NotifyView `json:"notifies"`
	Events         []Event      `json:"events"`
}

// RefundView is the simulator's view of a refund.
type RefundView struct {
	OutRefundNo   string     `json:"out_refund_no"`
	RefundID      string     `json:"refund_id"`
	OutTradeNo    string     `json:"out_trade_no"`
	TransactionID string     `json:"transaction_id"`
	Status        string     `json:"status"`
	RefundFen     int64      `json:"refund_fen"`
	TotalFen      int64      `json:"total_fen"`
	Reason        string     `json:"reason,omitempty"`
	NotifyURL     string     `json:"notify_url,omitempty"`
	CreateTime    time.Time  `json:"create_time"`
	SuccessTime   *time.Time `json:"success_time,omitempty"`
	SettleAt      *time.Time `json:"settle_at,omitempty"`
	WillSettleAs  string     `json:"will_settle_as,omitempty"`
	// Goods are the refund's goods_detail (none when it gave none).
	Goods []RefundGoods `json:"goods,omitempty"`
}

// NotifyView is one notification and its delivery attempts.
type NotifyView struct {
	ID          string    `json:"id"`
	EventType   string    `json:"event_type"`
	OutRefundNo string    `json:"out_refund_no,omitempty"`
	URL         string    `json:"url"`
	CreatedAt   time.Time `json:"created_at"`
	// State: pending (attempting or waiting to retry), held (reorder),
	// delivered (a 2xx came back), dropped (fault: never sent), gave_up (all
	// 16 attempts failed), stopped (simulator closed).
	State    string    `json:"state"`
	Attempts []Attempt `json:"attempts"`
}

// Attempt is one POST of a notification.
type Attempt struct {
	At         time.Time `json:"at"`
	Status     int       `json:"status"`          // 0 when no answer
	Error      string    `json:"error,omitempty"` // transport error
	DurationMS int64     `json:"duration_ms"`
	Tamper     string    `json:"tamper,omitempty"`
	Duplicate  bool      `json:"duplicate,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Sim) viewLocked(t *txn) TransactionView {
	v := TransactionView{
		OutTradeNo:     t.outTradeNo,
		TransactionID:  t.transactionID,
		PrepayID:       t.prepayID,
		AppID:          t.appID,
		MchID:          t.mchID,
		Description:    t.description,
		Attach:         t.attach,
		NotifyURL:      t.notifyURL,
		PayerOpenID:    t.openID,
		TradeState:     t.state,
		TradeStateDesc: t.stateDesc,
		TotalFen:       t.total,
		TimeExpire:     timePtr(t.timeExpire),
		CreatedAt:      t.createdAt,
		SuccessTime:    timePtr(t.successTime),
		ClosedAt:       timePtr(t.closedAt),
		PayOnClose:     t.payOnClose,
		Refunds:        []RefundView{},
		Notifies:       []NotifyView{},
		Events:         append([]Event(nil), t.events...),
	}
	if t.state == StateSuccess || t.state == StateRefund {
		v.RefundableFen = refundableLocked(t)
	}
	for _, r := range t.refunds {
		if r.status == RefundSuccess {
			v.RefundedFen += r.refund
		}
		v.Refunds = append(v.Refunds, s.refundViewLocked(r))
	}
	for _, n := range t.notifies {
		v.Notifies = append(v.Notifies, n.view())
	}
	return v
}

func (s *Sim) refundViewLocked(r *refundRec) RefundView {
	v := RefundView{
		OutRefundNo:   r.outRefundNo,
		RefundID:      r.refundID,
		OutTradeNo:    r.tx.outTradeNo,
		TransactionID: r.tx.transactionID,
		Status:        r.status,
		RefundFen:     r.refund,
		TotalFen:      r.total,
		Reason:        r.reason,
		NotifyURL:     r.notifyURL,
		CreateTime:    r.createTime,
		SuccessTime:   timePtr(r.successTime),
		Goods:         slices.Clone(r.goods),
	}
	if r.status == RefundProcessing {
		if s.refundDelay >= 0 {
			v.SettleAt = timePtr(r.settleAt)
		}
		v.WillSettleAs = r.forceStatus
		if v.WillSettleAs == "" {
			v.WillSettleAs = RefundSuccess
		}
	}
	return v
}

// Transaction returns the simulator's view of a transaction.
func (s *Sim) Transaction(outTradeNo string) (TransactionView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.txs[outTradeNo]
	if t == nil {
		return TransactionView{}, false
	}
	now := s.now()
	s.expireLocked(t, now)
	for _, r := range t.refunds {
		s.settleDueLocked(r, now)
	}
	return s.viewLocked(t), true
}

// Transactions returns every transaction, oldest first.
func (s *Sim) Transactions() []TransactionView {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]TransactionView, 0, len(s.txs))
	for _, t := range s.txs {
		s.expireLocked(t, now)
		for _, r := range t.refunds {
			s.settleDueLocked(r, now)
		}
		out = append(out, s.viewLocked(t))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].OutTradeNo < out[j].OutTradeNo
	})
	return out
}

// Refund returns the simulator's view of a refund.
func (s *Sim) Refund(outRefundNo string) (RefundView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.refunds[outRefundNo]
	if r == nil {
		return RefundView{}, false
	}
	s.settleDueLocked(r, s.now())
	return s.refundViewLocked(r), true
}

// ---- payer and control actions ----

func (s *Sim) lookupLocked(outTradeNo string) (*txn, error) {
	t := s.txs[outTradeNo]
	if t == nil {
		return nil, fmt.Errorf("%w: no transaction %q", ErrNotFound, outTradeNo)
	}
	s.expireLocked(t, s.now())
	return t, nil
}

// Pay plays the payer paying in full now; the payment notify follows.
func (s *Sim) Pay(outTradeNo string) (TransactionView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupLocked(outTradeNo)
	if err != nil {
		return TransactionView{}, err
	}
	switch t.state {
	case StateNotPay, StatePayError, StateUserPaying:
		s.payLocked(t, s.now(), "payer")
		return s.viewLocked(t), nil
	case StateClosed:
		t.event(s.now(), "payer tried to pay a closed order: refused")
		return s.viewLocked(t), fmt.Errorf("%w: order %s is closed", ErrConflict, outTradeNo)
	default:
		return s.viewLocked(t), fmt.Errorf("%w: order %s is already paid (%s)", ErrConflict, outTradeNo, t.state)
	}
}

// PayOnClose arms the race "paid a moment before close": the next close
// request for this order finds it paid (success_time one second earlier, the
// notify queued) and answers with the close-on-paid behaviour.
func (s *Sim) PayOnClose(outTradeNo string) (TransactionView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupLocked(outTradeNo)
	if err != nil {
		return TransactionView{}, err
	}
	switch t.state {
	case StateNotPay, StatePayError, StateUserPaying:
		t.payOnClose = true
		t.event(s.now(), "armed: the payer pays just before the next close")
		return s.viewLocked(t), nil
	default:
		return s.viewLocked(t), fmt.Errorf("%w: order %s is %s", ErrConflict, outTradeNo, t.state)
	}
}

// FailPayment plays a payment that failed at the bank: trade_state PAYERROR.
// The order stays open: the payer may pay later.
func (s *Sim) FailPayment(outTradeNo string) (TransactionView, error) {
	return s.payerState(outTradeNo, StatePayError, "支付失败，请重新下单支付", "payer's payment failed")
}

// StartPaying plays a payer in the middle of paying: trade_state USERPAYING.
func (s *Sim) StartPaying(outTradeNo string) (TransactionView, error) {
	return s.payerState(outTradeNo, StateUserPaying, "用户支付中", "payer is paying")
}

// Abandon plays a payer who closes the payment sheet: nothing changes at
// WeChat (the order stays NOTPAY until closed or expired); only recorded.
func (s *Sim) Abandon(outTradeNo string) (TransactionView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupLocked(outTradeNo)
	if err != nil {
		return TransactionView{}, err
	}
	if t.state != StateNotPay && t.state != StatePayError && t.state != StateUserPaying {
		return s.viewLocked(t), fmt.Errorf("%w: order %s is %s", ErrConflict, outTradeNo, t.state)
	}
	if t.state == StateUserPaying {
		t.state, t.stateDesc = StateNotPay, "未支付"
	}
	t.event(s.now(), "payer abandoned the payment")
	return s.viewLocked(t), nil
}

func (s *Sim) payerState(outTradeNo, state, desc, what string) (TransactionView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.lookupLocked(outTradeNo)
	if err != nil {
		return TransactionView{}, err
	}
	switch t.state {
	case StateNotPay, StatePayError, StateUserPaying:
		t.state, t.stateDesc = state, desc
		t.event(s.now(), "%s", what)
		return s.viewLocked(t), nil
	default:
		return s.viewLocked(t), fmt.Errorf("%w: order %s is %s", ErrConflict, outTradeNo, t.state)
	}
}

// SettleRefund settles a PROCESSING refund now with status SUCCESS, ABNORMAL
// or CLOSED ("" = what it was told at creation, else SUCCESS).
func (s *Sim) SettleRefund(outRefundNo, status string) (RefundView, error) {
	switch status {
	case "", RefundSuccess, RefundAbnormal, RefundClosed:
	default:
		return RefundView{}, fmt.Errorf("%w: status must be SUCCESS, ABNORMAL or CLOSED", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.refunds[outRefundNo]
	if r == nil {
		return RefundView{}, fmt.Errorf("%w: no refund %q", ErrNotFound, outRefundNo)
	}
	if r.status != RefundProcessing {
		return s.refundViewLocked(r), fmt.Errorf("%w: refund %s is already %s", ErrConflict, outRefundNo, r.status)
	}
	s.settleRefundLocked(r, status, s.now())
	return s.refundViewLocked(r), nil
}

// Settings are the run-time switches of the simulator.
type Settings struct {
	CloseOnPaid   string `json:"close_on_paid"`             // refuse | ok204
	RefundDelayMS *int64 `json:"refund_delay_ms,omitempty"` // negative: only settled by the control API
	// RefundIntervalMS is Options.RefundInterval (negative: no limit).
	RefundIntervalMS *int64   `json:"refund_interval_ms,omitempty"`
	NotifyScale      *float64 `json:"notify_scale,omitempty"`
	// BillsImmediate: every day's trade bill, today's included, is
	// available at once (Options.BillsImmediate).
	BillsImmediate *bool `json:"bills_immediate,omitempty"`
	// Shipping management (Options of the same names).
	TradeManaged         *bool   `json:"trade_managed,omitempty"`
	FreshPaymentMS       *int64  `json:"fresh_payment_ms,omitempty"`
	ReceiptAutoConfirmMS *int64  `json:"receipt_auto_confirm_ms,omitempty"`
	SettleDelayMS        *int64  `json:"settle_delay_ms,omitempty"`
	PushURL              *string `json:"push_url,omitempty"`
}

// Settings returns the current settings.
func (s *Sim) Settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settingsLocked()
}

func (s *Sim) settingsLocked() Settings {
	d := s.refundDelay.Milliseconds()
	if s.refundDelay < 0 {
		d = -1
	}
	scale := s.notifyScale
	interval := s.refundInterval.Milliseconds()
	if s.refundInterval < 0 {
		interval = -1
	}
	immediate := s.bills.immediate
	managed := s.wxa.managed
	fresh, auto, settle := s.wxa.freshPayment.Milliseconds(), s.wxa.autoConfirm.Milliseconds(), s.wxa.settleDelay.Milliseconds()
	push := s.wxa.pushURL
	return Settings{CloseOnPaid: s.closeOnPaid, RefundDelayMS: &d, RefundIntervalMS: &interval, NotifyScale: &scale, BillsImmediate: &immediate,
		TradeManaged: &managed, FreshPaymentMS: &fresh, ReceiptAutoConfirmMS: &auto, SettleDelayMS: &settle, PushURL: &push}
}

// UpdateSettings changes the fields that are set.
func (s *Sim) UpdateSettings(in Settings) (Settings, error) {
	switch in.CloseOnPaid {
	case "", CloseRefuse, CloseOK204:
	default:
		return Settings{}, fmt.Errorf("%w: close_on_paid must be %q or %q", ErrInvalid, CloseRefuse, CloseOK204)
	}
	if in.NotifyScale != nil && *in.NotifyScale <= 0 {
		return Settings{}, fmt.Errorf("%w: notify_scale must be > 0", ErrInvalid)
	}
	for name, v := range map[string]*int64{"fresh_payment_ms": in.FreshPaymentMS, "receipt_auto_confirm_ms": in.ReceiptAutoConfirmMS, "settle_delay_ms": in.SettleDelayMS} {
		if v != nil && *v < 0 {
			return Settings{}, fmt.Errorf("%w: %s must not be negative", ErrInvalid, name)
		}
	}
	if in.PushURL != nil && *in.PushURL != "" && !validNotifyURL(*in.PushURL) {
		return Settings{}, fmt.Errorf("%w: push_url must be an absolute http(s) URL without query", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.CloseOnPaid != "" {
		s.closeOnPaid = in.CloseOnPaid
	}
	if in.RefundDelayMS != nil {
		if *in.RefundDelayMS < 0 {
			s.refundDelay = -1
		} else {
			s.refundDelay = time.Duration(*in.RefundDelayMS) * time.Millisecond
		}
	}
	if in.RefundIntervalMS != nil {
		if *in.RefundIntervalMS < 0 {
			s.refundInterval = -1
		} else {
			s.refundInterval = time.Duration(*in.RefundIntervalMS) * time.Millisecond
		}
	}
	if in.NotifyScale != nil {
		s.notifyScale = *in.NotifyScale
	}
	if in.BillsImmediate != nil {
		s.bills.immediate = *in.BillsImmediate
	}
	if in.TradeManaged != nil {
		s.wxa.managed = *in.TradeManaged
	}
	ms := func(v *int64, d *time.Duration) {
		if v != nil {
			*d = time.Duration(*v) * time.Millisecond
		}
	}
	ms(in.FreshPaymentMS, &s.wxa.freshPayment)
	ms(in.ReceiptAutoConfirmMS, &s.wxa.autoConfirm)
	ms(in.SettleDelayMS, &s.wxa.settleDelay)
	if in.PushURL != nil {
		s.wxa.pushURL = *in.PushURL
	}
	return s.settingsLocked(), nil
}

// SetCloseOnPaid chooses how closing a paid order is answered.
func (s *Sim) SetCloseOnPaid(mode string) error {
	_, err := s.UpdateSettings(Settings{CloseOnPaid: mode})
	return err
}
