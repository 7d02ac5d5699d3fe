// Package bench measures the order saga on one machine: paid orders per
// second end to end through the API and the latency of each step, against
// the ceiling of the Temporal server and SDK themselves — a no-op workflow of
// the same shape, in the same run, on the same server — plus how late
// unpaid orders close, how fast the payment notify is answered under a
// burst, and how fast an order is read.
//
// `ordersaga bench` runs it from the command line (RunCommand); its test
// runs a tiny one. It starts its own stack — the embedded Temporal server,
// the WeChat Pay simulator, the worker replicas and the API, in this
// process, and PostgreSQL of its own or the embedded SQLite database —
// and removes it afterwards.
package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"ordersaga/internal/app"
)

// phaseGap separates the phases: the last steps of one phase's orders
// (stock, search attributes, visibility) are not measured as the next
// phase's latency.
const phaseGap = 2 * time.Second

type run struct {
	o            Options
	s            *stack
	runID        int64
	users        []*user
	burstProduct int64
	start        time.Time
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Log, "[%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// Run starts the stack, runs the phases and returns the report. The error
// is for a run that could not be carried out; failed orders are counted in
// the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	r := &run{o: o, start: time.Now(), runID: time.Now().Unix() % 100000}
	if !o.reverted(TuningGC) {
		// The process runs the embedded server, as `ordersaga dev` does.
		defer app.TuneGC()()
	}
	r.logf("starting the stack (%s Temporal, %s database, %d worker replica(s))", o.Temporal, o.DB, o.Workers)
	s, err := startStack(ctx, o)
	if err != nil {
		return nil, err
	}
	defer s.close()
	r.s = s
	r.logf("stack up in %.1fs: API %s, Temporal %s, simulator %s", time.Since(r.start).Seconds(), s.apiURL, s.ts.FrontendAddress(), s.simURL)
	if err := r.setup(ctx); err != nil {
		return nil, err
	}

	rep := &Report{Machine: machineInfo(), Settings: r.settings(ctx), Started: r.start.UTC(), CPU: map[string]map[string]float64{}}
	profiled := func(phase string, f func()) error {
		stop, err := r.profile(phase)
		if err != nil {
			return err
		}
		began := time.Now()
		groups := r.s.cpuGroups()
		cpu := cpuSeconds(groups)
		r.logf("phase %s", phase)
		f()
		took := time.Since(began)
		rep.CPU[phase] = cpuDuring(cpu, cpuSeconds(groups), took)
		r.logf("phase %s done in %.1fs", phase, took.Seconds())
		return stop()
	}
	phases := []struct {
		name string
		run  func()
	}{
		{PhaseNoop, func() { t := r.noopPhase(ctx); rep.Noop = &t }},
		{PhaseSaga, func() { t := r.sagaPhase(ctx); rep.Saga = &t }},
		{PhaseNotify, func() { b := r.burstPhase(ctx); rep.Notify = &b }},
		{PhaseRead, func() { x := r.readPhase(ctx); rep.Reads = &x }},
		{PhaseExpiry, func() { e := r.expiryPhase(ctx); rep.Expiry = &e }},
		{PhaseReconcile, func() { x := r.reconcilePhase(ctx); rep.Reconcile = &x }},
	}
	ran := false
	for _, p := range phases {
		if !o.runs(p.name) {
			continue
		}
		if ran && !sleep(ctx, phaseGap) {
			return nil, fmt.Errorf("bench: interrupted before phase %s: %w", p.name, ctx.Err())
		}
		ran = true
		if err := profiled(p.name, p.run); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("bench: interrupted during phase %s: %w", p.name, ctx.Err())
		}
	}
	if rep.Saga != nil && rep.Noop != nil && rep.Noop.PerSecond > 0 {
		rep.Ratio = round3(rep.Saga.PerSecond / rep.Noop.PerSecond)
	}
	rep.TotalSeconds = round3(time.Since(r.start).Seconds())
	if o.Keep {
		rep.Dir = s.dir
	}
	return rep, nil
}

// setup logs the users in and gives each a product of its own.
func (r *run) setup(ctx context.Context) error {
	r.users = make([]*user, r.o.Users)
	errs := make([]error, r.o.Users)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range r.o.Users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tok, err := r.s.login(ctx, fmt.Sprintf("bench-user-%d-%d", r.runID, i))
			if err != nil {
				errs[i] = err
				return
			}
			id, err := r.s.product(ctx, fmt.Sprintf("Bench product of user %d", i+1), 1280, userStock)
			if err != nil {
				errs[i] = err
				return
			}
			r.users[i] = &user{token: tok, product: id, stock: userStock}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	var err error
	r.burstProduct, err = r.s.product(ctx, "Bench burst product", 990, userStock)
	return err
}

// profile starts the phase's profiles (when asked) and returns what stops
// and writes them.
func (r *run) profile(phase string) (func() error, error) {
	if r.o.ProfileDir == "" {
		return func() error { return nil }, nil
	}
	if err := os.MkdirAll(r.o.ProfileDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(r.o.ProfileDir, phase+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	if r.o.Contention {
		runtime.SetBlockProfileRate(int(10 * time.Microsecond))
		runtime.SetMutexProfileFraction(10)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return err
		}
		if !r.o.Contention {
			return nil
		}
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
		for _, kind := range []string{"block", "mutex"} {
			pf, err := os.Create(filepath.Join(r.o.ProfileDir, phase+"."+kind+".pprof"))
			if err != nil {
				return err
			}
			err = pprof.Lookup(kind).WriteTo(pf, 0)
			if cerr := pf.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
		return nil
	}, nil
}
