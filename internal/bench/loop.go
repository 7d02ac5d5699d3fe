package bench

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Throughput is the result of a throughput phase (the order saga or the
// no-op): users play orders one after another, as fast as they are
// answered, for a duration (after a warm-up) or a count.
type Throughput struct {
	Users int `json:"users"`
	// Started = Completed + Failed; Measured of the Completed ended inside
	// the window (all of them in count mode).
	Started   int `json:"started"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Measured  int `json:"measured"`
	// Failures by step and cause.
	Failures      map[string]int `json:"failures,omitempty"`
	WindowSeconds float64        `json:"window_seconds"`
	// PerSecond is Measured / WindowSeconds.
	PerSecond float64 `json:"per_second"`
	// Steps are the latencies of the measured orders, by step.
	Steps map[string]Latency `json:"steps"`
	// StepOrder lists the steps in the order an order takes them.
	StepOrder []string `json:"step_order"`
}

// outcome is one order played.
type outcome struct {
	steps map[string]time.Duration
	done  time.Time
	fail  string // "" = completed; else "<step>: <cause>"
}

// runLoop runs users closed loops of play until the window closes (or, in
// count mode, until o.Orders orders were started), and summarises them.
func runLoop(ctx context.Context, o Options, stepOrder []string, play func(ctx context.Context, user, seq int) outcome) Throughput {
	var (
		begin       = time.Now()
		windowStart = begin.Add(o.Warmup)
		windowEnd   = windowStart.Add(o.Duration)
		countMode   = o.Orders > 0
		toStart     atomic.Int64
		seq         atomic.Int64
		mu          sync.Mutex
		res         = Throughput{Users: o.Users, Failures: map[string]int{}, Steps: map[string]Latency{}, StepOrder: stepOrder}
		perStep     = map[string][]time.Duration{}
		lastDone    time.Time
	)
	if countMode {
		windowStart = begin
		toStart.Store(int64(o.Orders))
	}
	more := func() bool {
		if ctx.Err() != nil {
			return false
		}
		if countMode {
			return toStart.Add(-1) >= 0
		}
		return time.Now().Before(windowEnd)
	}
	var wg sync.WaitGroup
	for u := range o.Users {
		wg.Go(func() {
			for more() {
				out := play(ctx, u, int(seq.Add(1)))
				mu.Lock()
				res.Started++
				if out.fail != "" {
					res.Failed++
					res.Failures[out.fail]++
					mu.Unlock()
					continue
				}
				res.Completed++
				if countMode || (!out.done.Before(windowStart) && !out.done.After(windowEnd)) {
					res.Measured++
					for k, d := range out.steps {
						perStep[k] = append(perStep[k], d)
					}
					if out.done.After(lastDone) {
						lastDone = out.done
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	window := windowEnd.Sub(windowStart)
	if countMode {
		window = lastDone.Sub(windowStart)
	}
	res.WindowSeconds = round3(window.Seconds())
	if window > 0 {
		res.PerSecond = round3(float64(res.Measured) / window.Seconds())
	}
	for k, ds := range perStep {
		res.Steps[k] = summarize(ds)
	}
	if len(res.Failures) == 0 {
		res.Failures = nil
	}
	return res
}

// failureKinds lists failures most frequent first (for the table).
func failureKinds(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if m[out[i]] != m[out[j]] {
			return m[out[i]] > m[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}
