package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"ordersaga/internal/paysim"
)

// wireFaults injects the simulator's faults while the payers play: every
// moment one more, of a kind picked at random among those switched on.
type wireFaults struct {
	h   *harness
	rng *rand.Rand

	mu sync.Mutex
	// Windows during which every new notify is delayed / held for
	// reordering: the simulator's records are matched against them.
	delayWindows, reorderWindows []window
	delayUntil, reorderUntil     time.Time
	delayMS, holdMS              int
	// Endpoint faults set, per endpoint: each is set only once the previous
	// one is used up, so that used = set - left at the end is exact.
	endpoints map[string]*endpointFault
	asked     map[string]int // what was asked for, by kind
	flips     int            // close_on_paid switches
}

type window struct{ from, to time.Time }

type endpointFault struct {
	kind string
	used int // of faults replaced after they were used up
	last int // count of the one set last
}

var wechatEndpoints = []string{
	paysim.EndpointPrepay, paysim.EndpointQuery, paysim.EndpointClose, paysim.EndpointRefund, paysim.EndpointRefundQuery,
}

func newWireFaults(h *harness) *wireFaults {
	return &wireFaults{
		h:         h,
		rng:       rand.New(rand.NewPCG(uint64(h.opts.Seed), 1<<40)),
		endpoints: map[string]*endpointFault{},
		asked:     map[string]int{},
	}
}

func (w *wireFaults) kinds() []string {
	var out []string
	for _, k := range []string{FaultNotifyDrop, FaultNotifyDuplicate, FaultNotifyDelay, FaultNotifyReorder,
		FaultNotifyTamper, FaultWechat5xx, FaultWechatSlow, FaultWechatLostAnswer, FaultWechatRefundFailed,
		FaultShippingLostAnswer, FaultShippingNotVisible, FaultShippingBusy, FaultPushDrop} {
		if w.h.opts.faultOn(k) {
			out = append(out, k)
		}
	}
	return out
}

// run injects until ctx ends.
func (w *wireFaults) run(ctx context.Context) {
	kinds := w.kinds()
	// Every kind once first, in a random order, then at random.
	first := w.rng.Perm(len(kinds))
	for i := 0; ctx.Err() == nil; i++ {
		sleep(ctx, 300*time.Millisecond+time.Duration(w.rng.Int64N(int64(900*time.Millisecond))))
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		switch {
		case i < len(first):
			w.inject(kinds[first[i]])
		case len(kinds) > 0:
			w.inject(w.next(kinds))
		}
		// WeChat's answer to closing a paid order is unverified: the shop
		// must be right under both.
		if w.rng.IntN(15) == 0 {
			mode := paysim.CloseRefuse
			if w.h.sim.Settings().CloseOnPaid == paysim.CloseRefuse {
				mode = paysim.CloseOK204
			}
			_ = w.h.sim.SetCloseOnPaid(mode)
			w.flips++
		}
		w.applyNotify(nil)
		w.mu.Unlock()
	}
}

// next is the kind to inject after the first round: one not asked for yet,
// while there is one, else any. A kind's first turn can be skipped (its
// endpoint still holds an earlier fault not used up: with few shipments the
// upload endpoint stays busy for a while), and the run requires every kind
// to have happened, so a skipped kind must come round again, not at chance.
func (w *wireFaults) next(kinds []string) string {
	var never []string
	for _, k := range kinds {
		if w.asked[k] == 0 {
			never = append(never, k)
		}
	}
	if len(never) > 0 {
		return never[w.rng.IntN(len(never))]
	}
	return kinds[w.rng.IntN(len(kinds))]
}

func (w *wireFaults) inject(kind string) {
	now := time.Now()
	switch kind {
	case FaultNotifyDrop:
		n := 1 + w.rng.IntN(2)
		w.asked[kind] += n
		w.applyNotify(func(f *paysim.NotifyFaults) { f.Drop += n })
	case FaultNotifyDuplicate:
		n := 1 + w.rng.IntN(3)
		w.asked[kind] += n
		w.applyNotify(func(f *paysim.NotifyFaults) { f.Duplicate += n })
	case FaultNotifyTamper:
		kinds := []string{paysim.TamperFlipSignature, paysim.TamperStaleTimestamp, paysim.TamperWrongSerial,
			paysim.TamperWrongKey, paysim.TamperCorruptCiphertext}
		t := kinds[w.rng.IntN(len(kinds))]
		n := 1 + w.rng.IntN(2)
		w.applyNotify(func(f *paysim.NotifyFaults) {
			if f.TamperCount == 0 {
				f.Tamper, f.TamperCount = t, n
				w.asked[kind] += n
			}
		})
	case FaultNotifyDelay:
		if now.Before(w.delayUntil) {
			return
		}
		d := 1500*time.Millisecond + time.Duration(w.rng.Int64N(int64(3*time.Second)))
		w.delayUntil, w.delayMS = now.Add(d), 300+w.rng.IntN(2200)
		w.delayWindows = append(w.delayWindows, window{now, w.delayUntil})
		w.asked[kind]++
	case FaultNotifyReorder:
		if now.Before(w.reorderUntil) {
			return
		}
		d := 1500*time.Millisecond + time.Duration(w.rng.Int64N(int64(3*time.Second)))
		w.reorderUntil, w.holdMS = now.Add(d), 500+w.rng.IntN(2500)
		w.reorderWindows = append(w.reorderWindows, window{now, w.reorderUntil})
		w.asked[kind]++
	case FaultWechat5xx, FaultWechatSlow, FaultWechatLostAnswer,
		FaultShippingLostAnswer, FaultShippingNotVisible, FaultShippingBusy:
		w.injectEndpoint(kind)
	case FaultPushDrop:
		// One at a time: each is an order that must find out by asking.
		if p := w.h.sim.CurrentFaults().Push; p != nil && p.Drop > 0 {
			return
		}
		if _, err := w.h.sim.ApplyFaults(paysim.Faults{Push: &paysim.PushFaults{Drop: 1}}); err != nil {
			w.h.logf("inject %s: %v", kind, err)
			return
		}
		w.asked[kind]++
	case FaultWechatRefundFailed:
		// One refund at a time, and only once the previous one was taken:
		// each is a flagged order a person would have to handle.
		if r := w.h.sim.CurrentFaults().Refund; r != nil && r.Abnormal+r.Closed > 0 {
			return
		}
		f := paysim.RefundFaults{Abnormal: 1}
		if w.rng.IntN(2) == 0 {
			f = paysim.RefundFaults{Closed: 1}
		}
		if _, err := w.h.sim.ApplyFaults(paysim.Faults{Refund: &f}); err != nil {
			w.h.logf("inject %s: %v", kind, err)
			return
		}
		w.asked[kind]++
	}
}

func (w *wireFaults) injectEndpoint(kind string) {
	candidates := wechatEndpoints
	switch kind {
	case FaultWechatLostAnswer:
		// A lost answer matters where the request changes something.
		candidates = []string{paysim.EndpointPrepay, paysim.EndpointClose, paysim.EndpointRefund}
	case FaultShippingLostAnswer:
		candidates = []string{paysim.EndpointUploadShippingInfo}
	case FaultShippingNotVisible, FaultShippingBusy:
		candidates = []string{paysim.EndpointUploadShippingInfo, paysim.EndpointGetOrder}
	}
	// An endpoint whose previous fault is not used up yet is skipped.
	busy := w.h.sim.CurrentFaults().Endpoints
	name := ""
	for _, i := range w.rng.Perm(len(candidates)) {
		if _, ok := busy[candidates[i]]; !ok {
			name = candidates[i]
			break
		}
	}
	if name == "" {
		return
	}
	f := paysim.EndpointFault{Count: 1 + w.rng.IntN(3)}
	switch kind {
	case FaultWechat5xx:
		f.Status = []int{500, 502, 503, 504}[w.rng.IntN(4)]
	case FaultWechatLostAnswer:
		f.Status, f.After, f.Count = 500, true, 1
	case FaultWechatSlow:
		f.DelayMS = 500 + w.rng.IntN(3500)
		if w.rng.IntN(6) == 0 {
			f.DelayMS = 11_000 // longer than the client waits (10 s): the call times out
			f.Count = 1
		}
	case FaultShippingLostAnswer:
		f.ErrCode, f.After, f.Count = -1, true, 1
	case FaultShippingNotVisible:
		f.ErrCode = 10060001
	case FaultShippingBusy:
		f.ErrCode = -1
	}
	if _, err := w.h.sim.ApplyFaults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{name: &f}}); err != nil {
		w.h.logf("inject %s on %s: %v", kind, name, err)
		return
	}
	key := kind + "/" + name
	e := w.endpoints[key]
	if e == nil {
		e = &endpointFault{kind: kind}
		w.endpoints[key] = e
	}
	e.used += e.last // the one set before on this endpoint and kind was used up
	e.last = f.Count
	// A fault on this endpoint of another kind, set before, was used up too.
	for k, other := range w.endpoints {
		if k != key && other.last > 0 && endpointOf(k) == name {
			other.used += other.last
			other.last = 0
		}
	}
	w.asked[kind] += f.Count
}

func endpointOf(key string) string {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[i+1:]
		}
	}
	return key
}

// applyNotify sets the notify faults: what is left of the counted ones
// (changed by mod), and the delay and reorder of the current windows.
func (w *wireFaults) applyNotify(mod func(*paysim.NotifyFaults)) {
	cur := w.h.sim.CurrentFaults()
	var n paysim.NotifyFaults
	if cur.Notify != nil {
		n = *cur.Notify
	}
	now := time.Now()
	n.DelayMS, n.Reorder, n.ReorderHoldMS = 0, false, 0
	if now.Before(w.delayUntil) {
		n.DelayMS = w.delayMS
	}
	if now.Before(w.reorderUntil) {
		n.Reorder, n.ReorderHoldMS = true, w.holdMS
	}
	if mod != nil {
		mod(&n)
	}
	if n.Tamper == "" {
		n.TamperCount = 0
	}
	if _, err := w.h.sim.ApplyFaults(paysim.Faults{Notify: &n}); err != nil {
		w.h.logf("set notify faults: %v", err)
	}
}

// stop clears every fault and accounts for the endpoint faults left unused.
func (w *wireFaults) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	left := w.h.sim.CurrentFaults().Endpoints
	for key, e := range w.endpoints {
		if e.last == 0 {
			continue
		}
		if f, ok := left[endpointOf(key)]; ok && f.Count > 0 {
			e.used += e.last - f.Count
		} else {
			e.used += e.last
		}
		e.last = 0
	}
	now := time.Now()
	w.delayUntil, w.reorderUntil = now, now
	for _, ws := range [][]window{w.delayWindows, w.reorderWindows} {
		if len(ws) > 0 && ws[len(ws)-1].to.After(now) {
			ws[len(ws)-1].to = now
		}
	}
	w.h.sim.ClearFaults()
}

// injected counts the faults that happened, by kind, from the simulator's
// own records where it keeps them.
func (w *wireFaults) injected(txs []paysim.TransactionView, ships map[string]paysim.ShippingView) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	in := func(ws []window, t time.Time) bool {
		for _, x := range ws {
			if !t.Before(x.from) && t.Before(x.to) {
				return true
			}
		}
		return false
	}
	for _, tx := range txs {
		for _, n := range tx.Notifies {
			if n.State == paysim.NotifyDropped {
				out[FaultNotifyDrop]++
			}
			if in(w.delayWindows, n.CreatedAt) {
				out[FaultNotifyDelay]++
			}
			if in(w.reorderWindows, n.CreatedAt) {
				out[FaultNotifyReorder]++
			}
			for _, a := range n.Attempts {
				if a.Duplicate {
					out[FaultNotifyDuplicate]++
				}
				if a.Tamper != "" {
					out[FaultNotifyTamper]++
				}
			}
		}
		// The simulator settles a refund ABNORMAL or CLOSED only when told.
		for _, r := range tx.Refunds {
			if failedAtWechat(r.Status) {
				out[FaultWechatRefundFailed]++
			}
		}
	}
	for _, sh := range ships {
		for _, p := range sh.Pushes {
			if p.State == paysim.NotifyDropped {
				out[FaultPushDrop]++
			}
		}
	}
	for _, e := range w.endpoints {
		out[e.kind] += e.used
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}

// processFaults kills and restarts the stack's processes at points of the
// run's progress (orders played), so that they hit orders in every state.
type processFaults struct {
	h   *harness
	rng *rand.Rand
}

type processAction struct {
	at   float64 // fraction of the orders played to their end
	kind string
}

func (p *processFaults) plan() []processAction {
	o := p.h.opts
	var acts []processAction
	add := func(kind string, n int) {
		if !o.faultOn(kind) {
			return
		}
		for i := range n {
			// Spread evenly over 5%..90% of the run, with jitter.
			slot := 0.85 / float64(n)
			acts = append(acts, processAction{at: 0.05 + slot*float64(i) + slot*p.rng.Float64(), kind: kind})
		}
	}
	add(FaultWorkerKill, o.WorkerKills)
	add(FaultAPIRestart, o.APIRestarts)
	add(FaultPostgresRestart, o.PostgresRestarts)
	add(FaultHistoryKill, o.HistoryKills)
	add(FaultFrontendRestart, o.FrontendRestarts)
	add(FaultMatchingKill, o.MatchingKills)
	add(FaultTemporalPostgresRestart, o.TemporalPostgresRestarts)
	sort.Slice(acts, func(i, j int) bool { return acts[i].at < acts[j].at })
	return acts
}

func (p *processFaults) run(ctx context.Context, total int) {
	for _, a := range p.plan() {
		for float64(p.h.finished.Load()) < a.at*float64(total) {
			if ctx.Err() != nil {
				return
			}
			sleep(ctx, 100*time.Millisecond)
		}
		if ctx.Err() != nil {
			return
		}
		p.do(ctx, a.kind)
	}
}

func (p *processFaults) do(ctx context.Context, kind string) {
	h := p.h
	// A restart is counted only once the process was really stopped and is
	// back (ready again): a report that counted attempts would claim faults
	// the run never went through. One that did not happen is counted apart.
	switch kind {
	case FaultWorkerKill:
		w := h.workers[p.rng.IntN(len(h.workers))]
		down := 300*time.Millisecond + time.Duration(p.rng.Int64N(int64(2700*time.Millisecond)))
		if !w.kill(syscall.SIGKILL, 0) {
			h.restarts.fail(kind, w.name+" was not running: nothing to kill")
			h.logf("%s was not running: no kill", w.name)
			return
		}
		h.logf("%s killed (SIGKILL); starting it again in %v", w.name, down.Round(time.Millisecond))
		sleep(ctx, down)
		if err := w.start(); err != nil {
			h.restarts.fail(kind, fmt.Sprintf("start %s: %v", w.name, err))
			h.logf("start %s: %v", w.name, err)
			return
		}
		if err := w.waitReady(ctx, 2*time.Minute); err != nil {
			h.restarts.fail(kind, err.Error())
			h.logf("%v", err)
			return
		}
		h.restarts.add(kind)
	case FaultAPIRestart:
		sig, how := syscall.SIGTERM, "SIGTERM"
		if p.rng.IntN(2) == 0 {
			sig, how = syscall.SIGKILL, "SIGKILL"
		}
		api := h.apis[p.rng.IntN(len(h.apis))]
		if !api.kill(sig, 10*time.Second) {
			h.restarts.fail(kind, api.name+" was not running: nothing to stop")
			h.logf("%s was not running: no restart", api.name)
			return
		}
		down := 200*time.Millisecond + time.Duration(p.rng.Int64N(int64(1300*time.Millisecond)))
		h.logf("%s stopped (%s); starting it again in %v", api.name, how, down.Round(time.Millisecond))
		sleep(ctx, down)
		if err := api.start(); err != nil {
			h.restarts.fail(kind, "start "+api.name+": "+err.Error())
			h.logf("start %s: %v", api.name, err)
			return
		}
		if err := api.waitReady(ctx, 2*time.Minute); err != nil {
			h.restarts.fail(kind, err.Error())
			h.logf("%v", err)
			return
		}
		h.restarts.add(kind)
	case FaultPostgresRestart:
		if !h.pg.Running() {
			h.restarts.fail(kind, "postgres was not running: nothing to crash")
			h.logf("postgres was not running: no crash")
			return
		}
		down := time.Second + time.Duration(p.rng.Int64N(int64(2*time.Second)))
		h.logf("postgres crashed (immediate shutdown); starting it again in %v", down.Round(time.Millisecond))
		if err := h.pg.Restart(ctx, down); err != nil {
			h.restarts.fail(kind, "restart postgres: "+err.Error())
			h.logf("restart postgres: %v", err)
			return
		}
		h.restarts.add(kind)
		h.logf("postgres is back")
	default:
		p.doCluster(ctx, kind)
	}
}

// restartCounts counts the process faults done (the process went down and
// came back) and, apart, those that did not happen as planned.
type restartCounts struct {
	mu     sync.Mutex
	n      map[string]int
	failed map[string][]string // kind → what went wrong, one per failure
}

func (r *restartCounts) add(kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[kind]++
}

func (r *restartCounts) fail(kind, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed == nil {
		r.failed = map[string][]string{}
	}
	r.failed[kind] = append(r.failed[kind], why)
}

func (r *restartCounts) get() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.n {
		out[k] = v
	}
	return out
}

// failures lists the restarts that did not happen, as "kind: why".
func (r *restartCounts) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, k := range sortedKeys(r.failed) {
		for _, why := range r.failed[k] {
			out = append(out, k+": "+why)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func fen(v int64) string { return fmt.Sprintf("¥%d.%02d", v/100, v%100) }
