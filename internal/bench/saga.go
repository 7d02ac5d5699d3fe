package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"ordersaga/internal/paysim"
)

// Steps of a paid order, as the mini-program and WeChat see them.
const (
	StepCreate       = "create"         // POST /v1/orders (201)
	StepPay          = "pay"            // POST /v1/orders/:no/pay (the prepay's five fields)
	StepNotifyAnswer = "notify_answer"  // the API's answer to WeChat's payment notify (204)
	StepNotifyToPaid = "notify_to_paid" // from that answer until the API shows the order PAID and its stock deducted
	StepTotal        = "total"          // from the create request until then
)

// Steps of the no-op order (driven through the Temporal client).
const (
	StepNoopCreate = "create"         // update-with-start, the create update completed
	StepNoopPay    = "pay"            // the pay update completed
	StepNoopSignal = "signal"         // the payment signal accepted
	StepNoopDone   = "signal_to_done" // from then until the last activity ran
)

// user is a simulated mini-program user: logged in, buying one product of
// its own (so that it sees its own stock deducted).
type user struct {
	token   string
	product int64
	mu      sync.Mutex
	stock   int64    // the stock of product it expects
	orders  []string // orders it has (for the reads)
}

const userStock = 1_000_000_000

type orderJSON struct {
	OrderNo     string    `json:"order_no"`
	Status      string    `json:"status"`
	PayDeadline time.Time `json:"pay_deadline"`
	ClosedAt    time.Time `json:"closed_at"`
}

// createOrder places one order of one item of product through api.
func (r *run) createOrder(ctx context.Context, base, token string, product int64) (orderJSON, string) {
	a, err := r.s.call(ctx, base, http.MethodPost, "/v1/orders", token,
		map[string]any{"items": []map[string]any{{"product_id": product, "quantity": 1}}})
	if err != nil {
		return orderJSON{}, "create: " + errKind(err)
	}
	var o orderJSON
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &o) != nil || o.OrderNo == "" {
		return orderJSON{}, fmt.Sprintf("create: HTTP %d", a.status)
	}
	return o, ""
}

// payOrder asks for the prepay (the five wx.requestPayment fields).
func (r *run) payOrder(ctx context.Context, token, orderNo string) string {
	a, err := r.s.call(ctx, r.s.apiURL, http.MethodPost, "/v1/orders/"+orderNo+"/pay", token, nil)
	if err != nil {
		return "pay: " + errKind(err)
	}
	var p struct {
		Package string `json:"package"`
		PaySign string `json:"paySign"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &p) != nil || p.Package == "" || p.PaySign == "" {
		return fmt.Sprintf("pay: HTTP %d", a.status)
	}
	return ""
}

// payerPays plays the payer at the simulator and returns the id of the
// payment notify it sends.
func (r *run) payerPays(orderNo string) (string, string) {
	tx, err := r.s.sim.Pay(orderNo)
	if err != nil {
		return "", "payer: " + err.Error()
	}
	if len(tx.Notifies) == 0 {
		return "", "payer: no notify queued"
	}
	return tx.Notifies[len(tx.Notifies)-1].ID, ""
}

// awaitNotify waits for the API's answer to a notify.
func (r *run) awaitNotify(ctx context.Context, id string) (notifyAnswer, string) {
	defer r.s.tap.forget(id)
	select {
	case a := <-r.s.tap.expect(id):
		switch {
		case a.err != nil:
			return a, "notify: " + errKind(a.err)
		case a.status/100 != 2:
			return a, fmt.Sprintf("notify: HTTP %d", a.status)
		}
		return a, ""
	case <-time.After(30 * time.Second):
		return notifyAnswer{}, "notify: no delivery in 30s"
	case <-ctx.Done():
		return notifyAnswer{}, "notify: interrupted"
	}
}

// awaitPaid reads the order (GET /v1/orders/:no) until it is PAID, then the
// products until u's stock shows the deduction, every Poll.
func (r *run) awaitPaid(ctx context.Context, u *user, orderNo string, want int64) (time.Time, string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, err := r.s.call(ctx, r.s.apiURL, http.MethodGet, "/v1/orders/"+orderNo, u.token, nil)
		if err != nil {
			return time.Time{}, "paid: " + errKind(err)
		}
		var o orderJSON
		if a.status != http.StatusOK || json.Unmarshal(a.body, &o) != nil {
			return time.Time{}, fmt.Sprintf("paid: HTTP %d", a.status)
		}
		if o.Status == "PAID" {
			break
		}
		if o.Status != "PENDING" {
			return time.Time{}, "paid: order is " + o.Status
		}
		if time.Now().After(deadline) {
			return time.Time{}, "paid: still PENDING after 30s"
		}
		if !sleep(ctx, r.o.Poll) {
			return time.Time{}, "paid: interrupted"
		}
	}
	for {
		a, err := r.s.call(ctx, r.s.apiURL, http.MethodGet, "/v1/products", "", nil)
		if err != nil {
			return time.Time{}, "stock: " + errKind(err)
		}
		var ps struct {
			Products []struct {
				ID    int64 `json:"id"`
				Stock int64 `json:"stock"`
			} `json:"products"`
		}
		if a.status != http.StatusOK || json.Unmarshal(a.body, &ps) != nil {
			return time.Time{}, fmt.Sprintf("stock: HTTP %d", a.status)
		}
		for _, p := range ps.Products {
			if p.ID == u.product && p.Stock <= want {
				return time.Now(), ""
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, "stock: not deducted after 30s"
		}
		if !sleep(ctx, r.o.Poll) {
			return time.Time{}, "stock: interrupted"
		}
	}
}

// playSaga is one paid order of user u, end to end through the API.
func (r *run) playSaga(ctx context.Context, u *user) outcome {
	out := outcome{steps: map[string]time.Duration{}}
	t0 := time.Now()
	o, fail := r.createOrder(ctx, r.s.apiURL, u.token, u.product)
	if fail != "" {
		out.fail = fail
		return out
	}
	t1 := time.Now()
	if out.fail = r.payOrder(ctx, u.token, o.OrderNo); out.fail != "" {
		return out
	}
	t2 := time.Now()
	id, fail := r.payerPays(o.OrderNo)
	if fail != "" {
		out.fail = fail
		return out
	}
	ans, fail := r.awaitNotify(ctx, id)
	if fail != "" {
		out.fail = fail
		return out
	}
	u.mu.Lock()
	u.stock--
	want := u.stock
	u.mu.Unlock()
	paidAt, fail := r.awaitPaid(ctx, u, o.OrderNo, want)
	if fail != "" {
		out.fail = fail
		return out
	}
	u.mu.Lock()
	u.orders = append(u.orders, o.OrderNo)
	u.mu.Unlock()
	out.done = paidAt
	out.steps[StepCreate] = t1.Sub(t0)
	out.steps[StepPay] = t2.Sub(t1)
	out.steps[StepNotifyAnswer] = ans.answered.Sub(ans.sent)
	out.steps[StepNotifyToPaid] = paidAt.Sub(ans.answered)
	out.steps[StepTotal] = paidAt.Sub(t0)
	return out
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errKind names a transport error briefly (the failure table groups by it).
func errKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, paysim.ErrConflict):
		return "conflict"
	}
	return "transport error"
}
