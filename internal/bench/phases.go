package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Expiry is the result of the expiry phase: orders left unpaid, and how
// late after its deadline each was CLOSED (the row's closed_at minus its
// pay_deadline, both as the API shows them).
type Expiry struct {
	Orders     int    `json:"orders"`
	PayTimeout string `json:"pay_timeout"`
	// CreateSeconds is how long placing them took.
	CreateSeconds float64 `json:"create_seconds"`
	// PendingAtFirstDeadline: orders placed (so pending) when the first
	// deadline passed.
	PendingAtFirstDeadline int            `json:"pending_at_first_deadline"`
	Closed                 int            `json:"closed"`
	NotClosed              int            `json:"not_closed"`
	Failures               map[string]int `json:"failures,omitempty"`
	Late                   Latency        `json:"late"`
}

// Burst is the result of the notify phase: payments of many orders at once,
// their notifies held until all are ready, then let go together.
type Burst struct {
	Notifies int            `json:"notifies"`
	Answered int            `json:"answered_2xx"`
	Failed   int            `json:"failed"`
	Failures map[string]int `json:"failures,omitempty"`
	Answer   Latency        `json:"answer"`
	// AllPaidSeconds: from the release until the API showed every one of
	// them PAID (read every 50 ms); NotPaid were not PAID a minute after.
	AllPaidSeconds float64 `json:"all_paid_seconds"`
	NotPaid        int     `json:"not_paid"`
}

// Reads is the result of the read phase: GET /v1/orders/:no at a fixed
// rate (open loop: latency counts from the moment the request was due, so
// a slow answer does not hide the requests queued behind it).
type Reads struct {
	Rate         float64        `json:"rate_per_second"`
	Seconds      float64        `json:"seconds"`
	Sent         int            `json:"sent"`
	OK           int            `json:"ok"`
	Errors       int            `json:"errors"`
	Failures     map[string]int `json:"failures,omitempty"`
	AchievedRate float64        `json:"achieved_rate_per_second"`
	Latency      Latency        `json:"latency"`
}

func (r *run) noopPhase(ctx context.Context) Throughput {
	d := noopDriver{tc: r.s.apiClient, acts: r.s.noop}
	var seq atomic.Int64
	return runLoop(ctx, r.o, []string{StepNoopCreate, StepNoopPay, StepNoopSignal, StepNoopDone},
		func(ctx context.Context, u, _ int) outcome {
			no := fmt.Sprintf("N%d%06d", r.runID, seq.Add(1))
			t, step, err := d.play(ctx, no, int64(u+1))
			if err != nil {
				return outcome{fail: step + ": " + temporalErrKind(err)}
			}
			return outcome{done: time.Now(), steps: map[string]time.Duration{
				StepNoopCreate: t.create, StepNoopPay: t.pay, StepNoopSignal: t.signal, StepNoopDone: t.done,
			}}
		})
}

func (r *run) sagaPhase(ctx context.Context) Throughput {
	return runLoop(ctx, r.o, []string{StepCreate, StepPay, StepNotifyAnswer, StepNotifyToPaid, StepTotal},
		func(ctx context.Context, u, _ int) outcome { return r.playSaga(ctx, r.users[u]) })
}

// burstPhase places and prepays o.Burst orders, then pays them all at once.
func (r *run) burstPhase(ctx context.Context) Burst {
	res := Burst{Notifies: r.o.Burst, Failures: map[string]int{}}
	type placed struct {
		u  *user
		no string
	}
	var (
		mu     sync.Mutex
		orders []placed
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	fail := func(kind string) {
		mu.Lock()
		res.Failures[kind]++
		mu.Unlock()
	}
	for w := range r.o.Users {
		u := r.users[w]
		wg.Go(func() {
			for next.Add(1) <= int64(r.o.Burst) {
				o, f := r.createOrder(ctx, r.s.apiURL, u.token, r.burstProduct)
				if f == "" {
					f = r.payOrder(ctx, u.token, o.OrderNo)
				}
				if f != "" {
					fail(f)
					continue
				}
				mu.Lock()
				orders = append(orders, placed{u, o.OrderNo})
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	gate := newBurstGate(len(orders))
	r.s.tap.setBurst(gate)
	defer r.s.tap.setBurst(nil)
	ids := make([]string, len(orders))
	sent := 0
	for i, p := range orders {
		id, f := r.payerPays(p.no)
		if f != "" {
			fail(f)
			continue
		}
		ids[i] = id
		sent++
	}
	gate.expect(sent)
	// Every notify is signed and waiting at the gate (or a minute passed).
	go func() {
		select {
		case <-gate.open:
		case <-time.After(time.Minute):
			gate.release()
		}
	}()
	var answers samples
	for _, id := range ids {
		if id == "" {
			continue
		}
		wg.Go(func() {
			a, f := r.awaitNotify(ctx, id)
			if f != "" {
				fail(f)
				return
			}
			answers.add(a.answered.Sub(a.sent))
		})
	}
	wg.Wait()
	<-gate.open
	// Then until every one of them shows PAID.
	var lastPaid, notPaid atomic.Int64
	for _, p := range orders {
		wg.Go(func() {
			deadline := time.Now().Add(time.Minute)
			for time.Now().Before(deadline) {
				a, err := r.s.call(ctx, r.s.apiURL, http.MethodGet, "/v1/orders/"+p.no, p.u.token, nil)
				var o orderJSON
				if err == nil && a.status == http.StatusOK && json.Unmarshal(a.body, &o) == nil && o.Status == "PAID" {
					at := time.Now().UnixNano()
					for {
						old := lastPaid.Load()
						if at <= old || lastPaid.CompareAndSwap(old, at) {
							break
						}
					}
					p.u.mu.Lock()
					p.u.orders = append(p.u.orders, p.no)
					p.u.mu.Unlock()
					return
				}
				if !sleep(ctx, 50*time.Millisecond) {
					return
				}
			}
			notPaid.Add(1)
		})
	}
	wg.Wait()
	res.NotPaid = int(notPaid.Load())
	res.Answer = answers.summary()
	res.Answered = res.Answer.Count
	res.Failed = res.Notifies - res.Answered
	if last := lastPaid.Load(); last > 0 {
		res.AllPaidSeconds = round3(time.Unix(0, last).Sub(r.burstReleased(gate)).Seconds())
	}
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	return res
}

// burstReleased is when the gate opened (recorded by its close).
func (r *run) burstReleased(g *burstGate) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.openedAt
}

// readPhase reads orders at o.ReadRate for o.ReadFor.
func (r *run) readPhase(ctx context.Context) Reads {
	res := Reads{Rate: r.o.ReadRate, Failures: map[string]int{}}
	type target struct{ token, no string }
	var pool []target
	for _, u := range r.users {
		u.mu.Lock()
		for _, no := range u.orders {
			pool = append(pool, target{u.token, no})
		}
		u.mu.Unlock()
	}
	if len(pool) == 0 {
		// Nothing was paid before (phases left out): place a few orders.
		for i := range max(1, min(20, r.o.Users)) {
			u := r.users[i%len(r.users)]
			if o, f := r.createOrder(ctx, r.s.apiURL, u.token, u.product); f == "" {
				pool = append(pool, target{u.token, o.OrderNo})
			}
		}
	}
	n := int(r.o.ReadRate * r.o.ReadFor.Seconds())
	if len(pool) == 0 || n == 0 {
		res.Failures["no orders to read"] = n
		res.Sent, res.Errors = n, n
		return res
	}
	rng := rand.New(rand.NewPCG(uint64(r.runID), 7))
	var (
		lat samples
		mu  sync.Mutex
		wg  sync.WaitGroup
	)
	interval := time.Duration(float64(time.Second) / r.o.ReadRate)
	begin := time.Now()
	for i := range n {
		due := begin.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 && !sleep(ctx, d) {
			break
		}
		t := pool[rng.IntN(len(pool))]
		res.Sent++
		wg.Go(func() {
			a, err := r.s.call(ctx, r.s.apiURL, http.MethodGet, "/v1/orders/"+t.no, t.token, nil)
			took := time.Since(due)
			if err == nil && a.status == http.StatusOK {
				lat.add(took)
				return
			}
			kind := "transport error"
			if err == nil {
				kind = "HTTP " + strconv.Itoa(a.status)
			}
			mu.Lock()
			res.Failures[kind]++
			mu.Unlock()
		})
	}
	elapsed := time.Since(begin)
	wg.Wait()
	res.Seconds = round3(elapsed.Seconds())
	res.Latency = lat.summary()
	res.OK = res.Latency.Count
	res.Errors = res.Sent - res.OK
	if res.Sent > 1 && elapsed > 0 {
		res.AchievedRate = round3(float64(res.Sent-1) / elapsed.Seconds())
	}
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	return res
}

// expiryPhase places o.Expiry orders with the expiry API's pay timeout,
// leaves them unpaid, and reads how late each was closed.
func (r *run) expiryPhase(ctx context.Context) Expiry {
	res := Expiry{Orders: r.o.Expiry, PayTimeout: r.o.ExpiryTimeout.String(), Failures: map[string]int{}}
	type placed struct {
		token    string
		no       string
		deadline time.Time
		created  time.Time
	}
	var (
		mu     sync.Mutex
		orders []placed
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	begin := time.Now()
	for w := range r.o.Users {
		u := r.users[w]
		wg.Go(func() {
			for i := next.Add(1); i <= int64(r.o.Expiry); i = next.Add(1) {
				if r.o.ExpiryRate > 0 {
					due := begin.Add(time.Duration(float64(i-1) / r.o.ExpiryRate * float64(time.Second)))
					if d := time.Until(due); d > 0 && !sleep(ctx, d) {
						return
					}
				}
				o, f := r.createOrder(ctx, r.s.expiryURL, u.token, u.product)
				mu.Lock()
				if f != "" {
					res.Failures[f]++
				} else {
					orders = append(orders, placed{u.token, o.OrderNo, o.PayDeadline, time.Now()})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.CreateSeconds = round3(time.Since(begin).Seconds())
	if len(orders) == 0 {
		res.NotClosed = res.Orders
		return res
	}
	sort.Slice(orders, func(i, j int) bool { return orders[i].deadline.Before(orders[j].deadline) })
	first, last := orders[0].deadline, orders[len(orders)-1].deadline
	for _, o := range orders {
		if o.created.Before(first) {
			res.PendingAtFirstDeadline++
		}
	}
	// Read nothing while they expire (reads would slow the closing down):
	// wait past the last deadline, then read each order until it is closed.
	if !sleep(ctx, time.Until(last)+time.Second) {
		res.NotClosed = res.Orders
		return res
	}
	var late samples
	give := time.Now().Add(2 * time.Minute)
	sem := make(chan struct{}, 16)
	for _, o := range orders {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for {
				a, err := r.s.call(ctx, r.s.apiURL, http.MethodGet, "/v1/orders/"+o.no, o.token, nil)
				var row orderJSON
				if err == nil && a.status == http.StatusOK && json.Unmarshal(a.body, &row) == nil && row.Status == "CLOSED" {
					late.add(row.ClosedAt.Sub(row.PayDeadline))
					return
				}
				if time.Now().After(give) || !sleep(ctx, time.Second) {
					mu.Lock()
					res.Failures["not closed 2m after the last deadline"]++
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	res.Late = late.summary()
	res.Closed = res.Late.Count
	res.NotClosed = res.Orders - res.Closed
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	return res
}
