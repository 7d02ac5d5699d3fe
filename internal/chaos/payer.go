package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"ordersaga/internal/apiclient"
	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
)

// Payer behaviours: what the person behind one order does.
const (
	BehaviourPayNow      = "pays_at_once"        // pay, the payer pays at once
	BehaviourPayLate     = "pays_late"           // pays well into the payment window
	BehaviourPayAfter    = "pays_after_deadline" // tries to pay after the deadline: WeChat refuses
	BehaviourNeverPays   = "never_pays"          // places (sometimes asks to pay) and walks away
	BehaviourCancel      = "cancels"             // cancels before paying (sometimes twice)
	BehaviourPayAsCancel = "pays_as_it_cancels"  // pays a moment before the cancel's close reaches WeChat
	BehaviourRefund      = "asks_refund"         // pays, then asks for a refund (sometimes twice)
	BehaviourDoubleTap   = "double_taps"         // taps pay three times, pays twice, syncs twice
	BehaviourSync        = "polls_sync"          // pays and polls ?sync=1 until it shows PAID
	BehaviourShipConfirm = "shipped_confirmed"   // pays; the shop ships; the buyer confirms receipt in WeChat, then in the mini-program
	BehaviourShipAuto    = "shipped_autoconfirm" // pays; the shop ships; WeChat confirms receipt by itself
	BehaviourAdminRefund = "shipped_then_refund" // pays; the shop ships, then refunds it
	BehaviourScarce      = "scarce_stock"        // one of a group paying at once for fewer items than they ordered
	// BehaviourRefundParts: a paid order of several lines refunded one
	// line (or one unit) at a time, by the user or the shop; some are then
	// shipped (and the shop may refund one more after that), some refunded
	// to the last item (REFUNDED).
	BehaviourRefundParts = "refunds_in_parts"
	// BehaviourConcurrentRefunds: more one-unit refund requests of a paid
	// order fired at once than it has units: some must be refused
	// (REFUND_EXCEEDS_ORDER), and what was accepted is what WeChat returns.
	BehaviourConcurrentRefunds = "concurrent_refunds"
	behaviourUnknownAnswer     = "answer_lost" // an order placed whose creation answer never arrived (API restart)
)

var behaviourWeights = []struct {
	name   string
	weight int
}{
	{BehaviourPayNow, 18}, {BehaviourPayLate, 8}, {BehaviourPayAfter, 5}, {BehaviourNeverPays, 6},
	{BehaviourCancel, 8}, {BehaviourPayAsCancel, 4}, {BehaviourRefund, 8}, {BehaviourDoubleTap, 8},
	{BehaviourSync, 8}, {BehaviourShipConfirm, 5}, {BehaviourShipAuto, 4}, {BehaviourAdminRefund, 3},
	{BehaviourRefundParts, 7}, {BehaviourConcurrentRefunds, 5},
	// After-sales (issue 18, POST /v1/orders/:no/after-sales) get a
	// behaviour here once their API exists: see playAfterSale.
}

// job is one unit of payer work: a single order, or a group of orders
// competing for one scarce product.
type job struct {
	index     int
	behaviour string
	group     int   // orders in a scarce group (0 for a single order)
	scarce    int64 // the scarce product's id
}

// orderRecord is what the payers did to one order and what they were told.
type orderRecord struct {
	No        string
	Behaviour string
	User      int
	TotalFen  int64
	Deadline  time.Time

	mu           sync.Mutex
	SimPaid      bool     // the simulator took the payer's money
	SimRefused   bool     // the simulator refused the payer (the order was closed)
	ArmedOnClose bool     // the payer pays as the close reaches WeChat
	Packages     []string // the package of every successful pay answer
	CancelledTo  string   // the status a 200 cancel answered
	RefundAsked  bool     // a refund request was taken (200/202)
	Shipped      bool     // the shop's ship was taken
	// ReceiptConfirmed: the buyer confirmed receipt in WeChat (simulator).
	ReceiptConfirmed bool
	// Lines are the order's goods as the create answer gave them.
	Lines []lineAnswer
	// Parts are the refund requests of some items sent for the order
	// (refunds_in_parts, concurrent_refunds) and what became of each.
	Parts []partAsk
}

func (o *orderRecord) set(f func(o *orderRecord)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o)
}

type payerUser struct {
	code  string
	token string
}

type item struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

// lineAnswer is one line of an order answer.
type lineAnswer struct {
	ProductID    int64 `json:"product_id"`
	UnitPriceFen int64 `json:"unit_price_fen"`
	Quantity     int64 `json:"quantity"`
}

type orderAnswer struct {
	Items        []lineAnswer `json:"items"`
	OrderNo      string       `json:"order_no"`
	Status       string       `json:"status"`
	TotalFen     int64        `json:"total_fen"`
	PayDeadline  time.Time    `json:"pay_deadline"`
	WechatSynced *bool        `json:"wechat_synced"`
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type answer struct {
	status int
	body   []byte
}

func (a answer) code() string {
	var e apiError
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code
}

// call sends one request to the API.
func (h *harness) call(ctx context.Context, method, path, token string, body any) (answer, error) {
	status, b, err := apiclient.Do(ctx, h.client, method, h.apiURL+path, token, body)
	return answer{status: status, body: b}, err
}

// callRetry is call as a mini-program does it: a connection refused (the API
// restarting) or a 5xx is tried again, with backoff, for up to a minute.
func (h *harness) callRetry(ctx context.Context, method, path, token string, body any) (answer, error) {
	deadline := time.Now().Add(time.Minute)
	wait := 200 * time.Millisecond
	for {
		a, err := h.call(ctx, method, path, token, body)
		if err == nil && a.status < 500 {
			return a, nil
		}
		if ctx.Err() != nil {
			return a, ctx.Err()
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%s %s: %d %s", method, path, a.status, bytes.TrimSpace(a.body))
			}
			return a, err
		}
		sleep(ctx, wait)
		wait = min(wait*2, 2*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// plan turns the number of orders into jobs: single orders of a random
// behaviour, and now and then a group competing for a scarce product.
func plan(orders int, rng *rand.Rand) []job {
	total := 0
	for _, w := range behaviourWeights {
		total += w.weight
	}
	var jobs []job
	for n := 0; n < orders; {
		// At least one group in a run of 20 or more, then now and then.
		if left := orders - n; left >= 4 && ((n == 0 && orders >= 20) || rng.Float64() < 0.035) {
			k := min(4+rng.IntN(5), left)
			jobs = append(jobs, job{index: len(jobs), behaviour: BehaviourScarce, group: k})
			n += k
			continue
		}
		x := rng.IntN(total)
		for _, w := range behaviourWeights {
			if x < w.weight {
				jobs = append(jobs, job{index: len(jobs), behaviour: w.name})
				break
			}
			x -= w.weight
		}
		n++
	}
	return jobs
}

// play runs one job.
func (h *harness) play(ctx context.Context, j job) {
	rng := rand.New(rand.NewPCG(uint64(h.opts.Seed), uint64(j.index)+1))
	if j.behaviour == BehaviourScarce {
		h.playScarce(ctx, j, rng)
		return
	}
	h.started.Add(1)
	defer h.finished.Add(1)
	u := rng.IntN(len(h.users))
	var address map[string]any
	switch j.behaviour {
	case BehaviourShipConfirm, BehaviourShipAuto, BehaviourAdminRefund:
		if rng.IntN(3) > 0 { // the others give the free text of older clients, or nothing
			address = map[string]any{"receiver_name": "买家", "phone": fmt.Sprintf("13%09d", rng.IntN(1e9)),
				"province": "上海市", "city": "上海市", "district": "浦东新区", "detail": fmt.Sprintf("世纪大道%d号", 1+rng.IntN(999))}
		}
	}
	items := h.commonItems(rng)
	switch j.behaviour {
	case BehaviourRefundParts:
		items = h.commonLines(rng, 2+rng.IntN(2)) // several lines to refund one by one
	case BehaviourConcurrentRefunds:
		items = h.commonLines(rng, 1+rng.IntN(2))
	}
	o := h.place(ctx, j.behaviour, u, items, address)
	if o == nil {
		return
	}
	switch j.behaviour {
	case BehaviourRefundParts:
		h.playRefundParts(ctx, o, rng)
	case BehaviourConcurrentRefunds:
		h.playConcurrentRefunds(ctx, o, rng)
	case BehaviourPayNow:
		h.think(ctx, rng, 0, 800*time.Millisecond)
		if h.pay(ctx, o, 1) {
			h.payerPays(o)
			if rng.IntN(3) == 0 {
				h.pollSync(ctx, o, rng)
			}
		}
	case BehaviourPayLate:
		if h.pay(ctx, o, 1) {
			frac := 0.3 + 0.4*rng.Float64()
			sleep(ctx, time.Until(o.Deadline.Add(-time.Duration(float64(h.opts.PayTimeout)*(1-frac)))))
			h.payerPays(o)
		}
	case BehaviourPayAfter:
		h.pay(ctx, o, 1)
		sleep(ctx, time.Until(o.Deadline.Add(1500*time.Millisecond)))
		h.payerPays(o)
	case BehaviourNeverPays:
		if rng.IntN(2) == 0 {
			h.pay(ctx, o, 1)
		}
	case BehaviourCancel:
		if rng.IntN(5) < 3 {
			h.pay(ctx, o, 1)
		}
		h.think(ctx, rng, 0, h.opts.PayTimeout/3)
		h.cancel(ctx, o, 1+rng.IntN(2))
	case BehaviourPayAsCancel:
		if h.pay(ctx, o, 1) {
			if _, err := h.sim.PayOnClose(o.No); err == nil {
				o.set(func(o *orderRecord) { o.ArmedOnClose = true })
			}
			h.think(ctx, rng, 0, time.Second)
			h.cancel(ctx, o, 1)
		}
	case BehaviourRefund:
		if h.payAndWait(ctx, o, rng) {
			h.think(ctx, rng, 0, time.Second)
			h.refund(ctx, o, "user", 1+rng.IntN(2))
		}
	case BehaviourDoubleTap:
		if h.pay(ctx, o, 3) {
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() { h.payerPays(o) })
			}
			wg.Wait()
			for range 2 {
				wg.Go(func() { h.syncOnce(ctx, o) })
			}
			wg.Wait()
		}
	case BehaviourSync:
		if h.pay(ctx, o, 1) {
			h.payerPays(o)
			h.pollSync(ctx, o, rng)
		}
	case BehaviourShipConfirm, BehaviourShipAuto, BehaviourAdminRefund:
		if !h.payAndWait(ctx, o, rng) {
			return
		}
		h.think(ctx, rng, 0, time.Second)
		if !h.ship(ctx, o, rng, address != nil) || !h.waitStatus(ctx, o, "SHIPPED", "COMPLETED") {
			return
		}
		switch j.behaviour {
		case BehaviourShipConfirm:
			h.think(ctx, rng, 0, h.opts.AutoConfirm/2)
			// The buyer confirms receipt in WeChat's component, then the
			// mini-program tells the shop (which asks WeChat).
			h.confirmReceiptInWechat(ctx, o)
			h.confirm(ctx, o)
		case BehaviourAdminRefund:
			h.think(ctx, rng, 0, h.opts.AutoConfirm/3)
			h.refund(ctx, o, "admin", 1)
		}
	}
}

// playScarce places a group of orders for one product with fewer items in
// stock than the group orders, has every member ask to pay (stock is checked
// then, not taken), and then has them all pay at once: the first ones get
// the items, the others are refunded automatically.
func (h *harness) playScarce(ctx context.Context, j job, rng *rand.Rand) {
	h.started.Add(int64(j.group))
	defer h.finished.Add(int64(j.group))
	members := make([]*orderRecord, j.group)
	var wg sync.WaitGroup
	for i := range j.group {
		u := rng.IntN(len(h.users))
		items := []item{{ProductID: j.scarce, Quantity: 1}}
		if rng.IntN(3) == 0 {
			items = append(items, h.commonItems(rng)[0])
		}
		wg.Go(func() {
			o := h.place(ctx, BehaviourScarce, u, items, nil)
			if o != nil && h.pay(ctx, o, 1) {
				members[i] = o
			}
		})
	}
	wg.Wait()
	for _, o := range members {
		if o != nil {
			wg.Go(func() { h.payerPays(o) })
		}
	}
	wg.Wait()
}

func (h *harness) think(ctx context.Context, rng *rand.Rand, lo, hi time.Duration) {
	if hi <= lo {
		return
	}
	sleep(ctx, lo+time.Duration(rng.Int64N(int64(hi-lo))))
}

// commonItems picks one to three lines of the well-stocked products.
func (h *harness) commonItems(rng *rand.Rand) []item { return h.commonLines(rng, 1+rng.IntN(3)) }

// commonLines picks n lines of the well-stocked products, one to three of each.
func (h *harness) commonLines(rng *rand.Rand, n int) []item {
	perm := rng.Perm(len(h.common))
	items := make([]item, 0, n)
	for _, i := range perm[:n] {
		items = append(items, item{ProductID: h.common[i], Quantity: 1 + rng.Int64N(3)})
	}
	return items
}

// place creates an order over the API, to a structured address when one is
// given; nil when it was refused (out of stock) or never answered.
func (h *harness) place(ctx context.Context, behaviour string, u int, items []item, address map[string]any) *orderRecord {
	body := map[string]any{"items": items}
	if address != nil {
		body["shipping_address"] = address
	}
	a, err := h.callRetry(ctx, http.MethodPost, "/v1/orders", h.users[u].token, body)
	if err != nil {
		h.count("create_failed")
		h.vlogf("create order: %v", err)
		return nil
	}
	if a.status != http.StatusCreated {
		h.count("create_refused_" + strings.ToLower(a.code()))
		if a.code() != "OUT_OF_STOCK" {
			h.logf("create order: unexpected answer %d %s", a.status, a.body)
		}
		return nil
	}
	var v orderAnswer
	if err := json.Unmarshal(a.body, &v); err != nil || v.OrderNo == "" {
		h.logf("create order: unreadable answer %s", a.body)
		return nil
	}
	o := &orderRecord{No: v.OrderNo, Behaviour: behaviour, User: u, TotalFen: v.TotalFen, Deadline: v.PayDeadline, Lines: v.Items}
	h.mu.Lock()
	h.orders[o.No] = o
	h.mu.Unlock()
	return o
}

// pay asks for the wx.requestPayment parameters, taps times at once; true
// when at least one answer carried them.
func (h *harness) pay(ctx context.Context, o *orderRecord, taps int) bool {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := false
	for range taps {
		wg.Go(func() {
			a, err := h.callRetry(ctx, http.MethodPost, "/v1/orders/"+o.No+"/pay", h.users[o.User].token, nil)
			if err != nil {
				h.count("pay_gave_up")
				h.vlogf("pay %s: %v", o.No, err)
				return
			}
			if a.status != http.StatusOK {
				h.count(fmt.Sprintf("pay_refused_%d_%s", a.status, strings.ToLower(a.code())))
				h.vlogf("pay %s: %d %s", o.No, a.status, a.body)
				return
			}
			var p struct {
				Package string `json:"package"`
			}
			if json.Unmarshal(a.body, &p) == nil && p.Package != "" {
				o.set(func(o *orderRecord) { o.Packages = append(o.Packages, p.Package) })
				mu.Lock()
				ok = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok
}

// payerPays plays the payer confirming the payment on the phone.
func (h *harness) payerPays(o *orderRecord) {
	_, err := h.sim.Pay(o.No)
	switch {
	case err == nil:
		o.set(func(o *orderRecord) { o.SimPaid = true })
	case errors.Is(err, paysim.ErrConflict):
		if v, ok := h.sim.Transaction(o.No); ok && v.TradeState == paysim.StateClosed {
			o.set(func(o *orderRecord) { o.SimRefused = true })
			h.count("payer_refused_closed")
		}
	case errors.Is(err, paysim.ErrNotFound):
		h.count("payer_found_no_prepay")
	}
}

func (h *harness) payAndWait(ctx context.Context, o *orderRecord, rng *rand.Rand) bool {
	if !h.pay(ctx, o, 1) {
		return false
	}
	h.payerPays(o)
	if rng.IntN(4) == 0 {
		h.pollSync(ctx, o, rng)
	}
	return h.waitStatus(ctx, o, "PAID")
}

// getOrder reads the order as its user sees it.
func (h *harness) getOrder(ctx context.Context, o *orderRecord, sync bool) (orderAnswer, bool) {
	path := "/v1/orders/" + o.No
	if sync {
		path += "?sync=1"
	}
	a, err := h.callRetry(ctx, http.MethodGet, path, h.users[o.User].token, nil)
	if err != nil || a.status != http.StatusOK {
		return orderAnswer{}, false
	}
	var v orderAnswer
	if json.Unmarshal(a.body, &v) != nil {
		return orderAnswer{}, false
	}
	return v, true
}

// waitStatus polls the order until it shows one of want, or has ended in
// another status (a payer whose order closed before the money came waits for
// nothing more); the bound only stops a payer who waits for something that
// will not come (the checks find out why).
func (h *harness) waitStatus(ctx context.Context, o *orderRecord, want ...string) bool {
	deadline := time.Now().Add(h.waitBound())
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if v, ok := h.getOrder(ctx, o, false); ok && slices.Contains(want, v.Status) {
			return true
		} else if ok && status.Order(v.Status).Terminal() {
			h.vlogf("order %s: ended %s while its payer waited for %v", o.No, v.Status, want)
			return false
		}
		sleep(ctx, 400*time.Millisecond)
	}
	h.vlogf("order %s: still not %v after %v", o.No, want, h.waitBound())
	return false
}

func (h *harness) waitBound() time.Duration { return max(90*time.Second, 6*h.opts.PayTimeout) }

// pollSync polls GET ?sync=1 as the mini-program does after wx.requestPayment,
// until the order shows paid (or the payer gives up).
func (h *harness) pollSync(ctx context.Context, o *orderRecord, rng *rand.Rand) {
	for range 20 {
		if v, ok := h.getOrder(ctx, o, true); ok && v.Status != "PENDING" {
			return
		}
		h.think(ctx, rng, 700*time.Millisecond, 1500*time.Millisecond)
	}
}

func (h *harness) syncOnce(ctx context.Context, o *orderRecord) { h.getOrder(ctx, o, true) }

// cancel taps cancel taps times at once.
func (h *harness) cancel(ctx context.Context, o *orderRecord, taps int) {
	var wg sync.WaitGroup
	for range taps {
		wg.Go(func() {
			a, err := h.callRetry(ctx, http.MethodPost, "/v1/orders/"+o.No+"/cancel", h.users[o.User].token, nil)
			if err != nil {
				return
			}
			var v orderAnswer
			if a.status == http.StatusOK && json.Unmarshal(a.body, &v) == nil {
				o.set(func(o *orderRecord) {
					if o.CancelledTo == "" || v.Status == "CLOSED" {
						o.CancelledTo = v.Status
					}
				})
			}
		})
	}
	wg.Wait()
}

// refund asks for a full refund, as the user (before shipping) or the shop.
func (h *harness) refund(ctx context.Context, o *orderRecord, by string, taps int) {
	path, token := "/v1/orders/"+o.No+"/refund", h.users[o.User].token
	if by == "admin" {
		path, token = "/v1/admin/orders/"+o.No+"/refund", h.adminToken
	}
	var wg sync.WaitGroup
	for range taps {
		wg.Go(func() {
			a, err := h.callRetry(ctx, http.MethodPost, path, token, map[string]string{"reason": "chaos: " + by + " asked"})
			if err != nil {
				return
			}
			var v orderAnswer
			if (a.status == http.StatusOK || a.status == http.StatusAccepted) && json.Unmarshal(a.body, &v) == nil {
				o.set(func(o *orderRecord) { o.RefundAsked = true })
			} else {
				h.vlogf("refund %s by %s: %d %s", o.No, by, a.status, a.body)
			}
		})
	}
	wg.Wait()
}

// ship ships the order as the shop does: by one of WeChat's logistics
// types, SF Express only to an address with a phone.
func (h *harness) ship(ctx context.Context, o *orderRecord, rng *rand.Rand, hasPhone bool) bool {
	tail := o.No[len(o.No)-8:]
	pkg := func(company string) map[string]string {
		return map[string]string{"express_company": company, "tracking_no": company + tail}
	}
	body := map[string]any{"logistics_type": "express", "packages": []any{pkg("YTO")}}
	switch rng.IntN(6) {
	case 0:
		if hasPhone {
			body["packages"] = []any{pkg("SF")}
		}
	case 1:
		body["packages"] = []any{pkg("YTO"), pkg("ZTO")} // split delivery
	case 2:
		body = map[string]any{"logistics_type": "same_city"}
	case 3:
		body = map[string]any{"logistics_type": []string{"virtual", "pickup"}[rng.IntN(2)], "item_desc": "chaos order " + tail}
	}
	deadline := time.Now().Add(h.waitBound())
	for {
		a, err := h.callRetry(ctx, http.MethodPost, "/v1/admin/orders/"+o.No+"/ship", h.adminToken, body)
		if err == nil && (a.status == http.StatusOK || a.status == http.StatusAccepted) {
			o.set(func(o *orderRecord) { o.Shipped = true })
			return true
		}
		// The row says PAID as soon as the payment is recorded; the
		// workflow, which decides the ship, says so once its next task has
		// run — later still when the worker that recorded it was killed.
		// Until then it refuses (409, "order … is PENDING"), rightly: the
		// shop tries again, as a person at the admin page would, rather
		// than leave a shipping order PAID.
		if err == nil && a.status == http.StatusConflict && a.code() == "ORDER_NOT_SHIPPABLE" && time.Now().Before(deadline) {
			if v, ok := h.getOrder(ctx, o, false); ok && v.Status == string(status.Paid) {
				h.count("ship_refused_before_the_workflow_saw_paid")
				sleep(ctx, 300*time.Millisecond)
				continue
			}
		}
		h.vlogf("ship %s: %v %d %s", o.No, err, a.status, a.body)
		return false
	}
}

// confirmReceiptInWechat plays the buyer confirming receipt in WeChat,
// once WeChat has the shipment (the workflow reports it just after
// SHIPPED, through whatever faults are on).
func (h *harness) confirmReceiptInWechat(ctx context.Context, o *orderRecord) {
	deadline := time.Now().Add(h.waitBound())
	for time.Now().Before(deadline) && ctx.Err() == nil {
		v, ok := h.sim.Shipping(o.No)
		switch {
		case !ok:
			return
		case v.OrderState == paysim.ShipShipped:
			if _, err := h.sim.ConfirmReceipt(o.No); err == nil {
				o.set(func(o *orderRecord) { o.ReceiptConfirmed = true })
			}
			return
		case v.OrderState > paysim.ShipShipped:
			return // WeChat confirmed it by itself, or it was refunded
		}
		sleep(ctx, 200*time.Millisecond)
	}
	h.vlogf("order %s: WeChat never had its shipment", o.No)
}

func (h *harness) confirm(ctx context.Context, o *orderRecord) {
	a, err := h.callRetry(ctx, http.MethodPost, "/v1/orders/"+o.No+"/confirm", h.users[o.User].token, nil)
	if err == nil && a.status != http.StatusOK && a.status != http.StatusAccepted {
		h.vlogf("confirm %s: %d %s", o.No, a.status, a.body)
	}
}
