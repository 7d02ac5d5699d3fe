package chaos

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"

	"ordersaga/internal/cluster"
	"ordersaga/internal/paysim"
	"ordersaga/internal/pgserver"
	"ordersaga/internal/ports"
)

// Identities of the shop at the simulator during a run.
const (
	chaosAppID     = "wx00000000000chaos1"
	chaosAppSecret = "chaos-app-secret"
	chaosMchID     = "1900000777"
	chaosQueue     = "orders-chaos"
	// The message push settings of the run's mini-program console.
	chaosPushToken  = "chaosPushToken01"
	chaosPushAESKey = "chaosPushAesKeyForTheRunOnly0123456789abcde"
)

// chaosDatabase is the shop's database of a run.
const chaosDatabase = "ordersaga_chaos"

// harness is one run.
type harness struct {
	// partTurns counts the refunds_in_parts orders that were paid: their
	// endings take turns by it (playRefundParts), so that the first three
	// paid ones play all three, however many of the behaviour's jobs ended
	// unpaid (a small run on a loaded cluster pays few).
	partTurns atomic.Int64
	// partsToTheLast: an order of refunds_in_parts was refunded to its last
	// item and ended REFUNDED (playRefundParts).
	partsToTheLast atomic.Bool
	opts           Options
	start          time.Time
	dir            string

	pg      *pgserver.Server
	sim     *paysim.Sim
	simURL  string
	ts      temporalServer
	tc      client.Client
	db      *sql.DB
	apis    []*proc // one on the embedded server; two behind the balancer on a cluster
	workers []*proc
	apiURL  string // the API's public address (the balancer on a cluster)
	client  *http.Client

	// On a cluster: the Temporal services, their own PostgreSQL server and
	// the balancer in front of the API replicas.
	cluster  *cluster.Temporal
	tpg      *pgserver.Server
	balancer *cluster.Balancer

	adminToken string
	users      []payerUser
	common     []int64         // well-stocked products
	initial    map[int64]int64 // stock of every product at the start

	started, finished atomic.Int64 // orders
	mu                sync.Mutex
	orders            map[string]*orderRecord
	counters          map[string]int
	restarts          restartCounts
	logMu             sync.Mutex
	keep              atomic.Bool // keep the run directory (the run failed)
}

func (h *harness) logf(format string, args ...any) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.opts.Log, "[%6.1fs] %s\n", time.Since(h.start).Seconds(), fmt.Sprintf(format, args...))
}

func (h *harness) vlogf(format string, args ...any) {
	if h.opts.Verbose {
		h.logf(format, args...)
	}
}

func (h *harness) count(what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counters[what]++
}

// Run runs the chaos test described by opts and returns its report. The error
// is for a run that could not be carried out (setup failed, interrupted);
// invariant breaks are in the report (Report.OK).
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	h := &harness{opts: opts, start: time.Now(), orders: map[string]*orderRecord{}, counters: map[string]int{},
		initial: map[int64]int64{}}
	cleanup, err := h.setup(ctx)
	defer cleanup()
	if err != nil {
		h.keep.Store(parent.Err() == nil)
		return nil, err
	}
	r, err := h.run(ctx)
	// The logs and databases say what happened — unless the run was
	// interrupted (Ctrl-C): then nobody wants them.
	if (err != nil && parent.Err() == nil) || (r != nil && !r.OK()) {
		h.keep.Store(true)
	}
	if r != nil {
		// With the logs, for the post-mortem of a kept directory.
		if f, ferr := os.Create(filepath.Join(h.dir, "report.json")); ferr == nil {
			_ = r.WriteJSON(f)
			f.Close()
		}
	}
	if r != nil && !h.opts.Keep && r.OK() {
		r.Dir = ""
	}
	return r, err
}

// setup brings the stack up: PostgreSQL, the simulator, Temporal, migrate,
// the API and two workers. The returned cleanup stops whatever was started,
// also after a failure.
func (h *harness) setup(ctx context.Context) (func(), error) {
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	o := h.opts
	var err error
	h.dir = o.Dir
	if h.dir == "" {
		if h.dir, err = os.MkdirTemp("", "ordersaga-chaos-"); err != nil {
			return cleanup, err
		}
		undo = append(undo, func() {
			if o.Keep || h.keep.Load() {
				h.logf("run directory kept: %s", h.dir)
				return
			}
			_ = os.RemoveAll(h.dir)
		})
	} else if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return cleanup, err
	}
	// PostgreSQL runs as another user (as root): it must get through to its
	// own directory.
	if err := os.Chmod(h.dir, 0o711); err != nil {
		return cleanup, err
	}
	logDir := filepath.Join(h.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return cleanup, err
	}
	h.logf("run directory %s; seed %d; %d orders, %d payers at once; faults: %s",
		h.dir, o.Seed, o.Orders, o.Concurrency, strings.Join(o.Faults, ","))

	h.pg, err = pgserver.Start(ctx, pgserver.Options{Bin: o.PGBin, Dir: filepath.Join(h.dir, "pg")})
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, func() { _ = h.pg.Stop() })
	h.logf("postgres %s on 127.0.0.1:%d", h.pg.Bin(), h.pg.Port())
	if err := h.pg.CreateDatabase(ctx, chaosDatabase); err != nil {
		return cleanup, err
	}
	if h.db, err = sql.Open("pgx", h.pg.URL(chaosDatabase)); err != nil {
		return cleanup, err
	}
	undo = append(undo, func() { h.db.Close() })

	keys, err := paysim.EnsureDevKeys(filepath.Join(h.dir, "keys"))
	if err != nil {
		return cleanup, err
	}
	// The API replicas' addresses; the public one is the replica itself on
	// the embedded server, the balancer in front of them on a cluster.
	var apiAddrs []string
	for range h.apiReplicas() {
		port, err := ports.Free("127.0.0.1")
		if err != nil {
			return cleanup, err
		}
		apiAddrs = append(apiAddrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	var balancerLn net.Listener
	if len(apiAddrs) > 1 {
		if balancerLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return cleanup, err
		}
		undo = append(undo, func() { balancerLn.Close() })
		h.apiURL = "http://" + balancerLn.Addr().String()
	} else {
		h.apiURL = "http://" + apiAddrs[0]
	}
	simLog, err := os.Create(filepath.Join(logDir, "paysim.log"))
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, func() { simLog.Close() })
	simOpts := keys.SimOptions(chaosAppID, chaosMchID)
	simOpts.LoginSecret = chaosAppSecret
	simOpts.NotifyScale = o.NotifyScale
	simOpts.RefundDelay = o.RefundDelay
	// The same gap as the stack's: its refunds of one order come that far
	// apart, and FREQUENCY_LIMITED is still answered to one that does not.
	simOpts.RefundInterval = o.RefundInterval
	simOpts.BillsImmediate = true // the run's day is reconciled when it settles
	// Shipping management: the shipping events go to the API; WeChat
	// confirms receipt by itself ORDER_AUTO_CONFIRM after a shipment (the
	// orders nobody confirms end so), about when the order first asks.
	simOpts.PushURL = h.apiURL + "/v1/wechat/events"
	simOpts.PushToken, simOpts.PushAESKey = chaosPushToken, chaosPushAESKey
	simOpts.ReceiptAutoConfirm = o.AutoConfirm
	simOpts.Logger = slog.New(slog.NewTextHandler(simLog, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.sim = paysim.New(simOpts)
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return cleanup, err
	}
	h.simURL = "http://" + simLn.Addr().String()
	simSrv := &http.Server{Handler: h.sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = simSrv.Serve(simLn) }()
	undo = append(undo, func() {
		h.sim.Close() // stops notify retries first
		_ = simSrv.Close()
	})

	if err := h.startTemporal(ctx, logDir, &undo); err != nil {
		return cleanup, err
	}

	h.adminToken = "chaos-admin-token-" + strconv.FormatInt(o.Seed&0xffff, 16)
	settings := map[string]string{
		"DATABASE_URL":              h.pg.URL(chaosDatabase),
		"TEMPORAL_ADDRESS":          h.ts.FrontendAddress(),
		"TEMPORAL_NAMESPACE":        h.ts.Namespace(),
		"TEMPORAL_TASK_QUEUE":       chaosQueue,
		"WECHAT_APPID":              chaosAppID,
		"WECHAT_APP_SECRET":         chaosAppSecret,
		"WECHAT_API_BASE_URL":       h.simURL,
		"WECHATPAY_MCHID":           chaosMchID,
		"ORDER_PAY_TIMEOUT":         o.PayTimeout.String(),
		"ORDER_AUTO_CONFIRM":        o.AutoConfirm.String(),
		"WECHATPAY_REFUND_INTERVAL": o.RefundInterval.String(),
		"ORDER_AFTERSALE_WINDOW":    o.AfterSaleWindow.String(),
		// Every shipped order is reported to WeChat and completes on its word.
		"WECHAT_SHIPPING_MANAGED": "on",
		"WECHAT_PUSH_TOKEN":       chaosPushToken,
		"WECHAT_PUSH_AES_KEY":     chaosPushAESKey,
		"JWT_SECRET":              strings.Repeat("chaos-jwt-", 4),
		"ADMIN_TOKEN":             h.adminToken,
		"LOG_LEVEL":               "warn",
		"SHUTDOWN_TIMEOUT":        "5s",
		// Up to 40 payers log in from one address and each places dozens
		// of orders in a minute or two: the run puts the saga to the test,
		// not the API's rate limits (TestRateLimitsAnswer429WithRetryAfter does).
		"RATE_LIMIT_USER":  "0",
		"RATE_LIMIT_LOGIN": "0",
	}
	for k, v := range keys.Env(h.simURL, h.apiURL+"/v1/wechatpay/notify") {
		settings[k] = v
	}
	if err := runOnce(ctx, o.Spawn, RoleMigrate, settings, logDir); err != nil {
		return cleanup, err
	}

	with := func(addr string) map[string]string {
		m := make(map[string]string, len(settings)+1)
		for k, v := range settings {
			m[k] = v
		}
		m["HTTP_ADDR"] = addr
		return m
	}
	var procs []*proc
	for i, addr := range apiAddrs {
		name := "api"
		if len(apiAddrs) > 1 {
			name = fmt.Sprintf("api-%d", i+1)
		}
		a := &proc{name: name, role: RoleAPI, settings: with(addr),
			healthz: "http://" + addr + "/readyz", spawn: o.Spawn, logPath: filepath.Join(logDir, name+".log"), h: h}
		h.apis = append(h.apis, a)
		procs = append(procs, a)
	}
	for i := 1; i <= 2; i++ {
		port, err := ports.Free("127.0.0.1")
		if err != nil {
			return cleanup, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		w := &proc{name: "worker-" + strconv.Itoa(i), role: RoleWorker, settings: with(addr),
			healthz: "http://" + addr + "/readyz", spawn: o.Spawn, logPath: filepath.Join(logDir, fmt.Sprintf("worker-%d.log", i)), h: h}
		h.workers = append(h.workers, w)
		procs = append(procs, w)
	}
	undo = append(undo, func() {
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Go(p.shutdown)
		}
		wg.Wait()
	})
	for _, p := range procs {
		if err := p.start(); err != nil {
			return cleanup, err
		}
	}
	for _, p := range procs {
		if err := p.waitReady(ctx, 2*time.Minute); err != nil {
			return cleanup, err
		}
	}
	if balancerLn != nil {
		var replicas []string
		for _, addr := range apiAddrs {
			replicas = append(replicas, "http://"+addr)
		}
		if h.balancer, err = cluster.NewBalancer(replicas); err != nil {
			return cleanup, err
		}
		srv := &http.Server{Handler: h.balancer, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(balancerLn) }()
		undo = append(undo, func() { _ = srv.Close() })
	}
	h.client = &http.Client{
		Timeout:   40 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 4 * o.Concurrency, IdleConnTimeout: 30 * time.Second},
	}
	h.logf("stack up: api %s (%d replica(s)), 2 workers, simulator %s, temporal %s (%s)",
		h.apiURL, len(h.apis), h.simURL, h.ts.FrontendAddress(), o.Temporal)
	return cleanup, nil
}

// run seeds the shop, plays the orders with the faults on, waits for the
// stack to settle and checks it.
func (h *harness) run(ctx context.Context) (*Report, error) {
	o := h.opts
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0))
	jobs := plan(o.Orders, rng)
	if err := h.seed(ctx, jobs, rng); err != nil {
		return nil, err
	}

	h.logf("playing %d orders (%d jobs)", o.Orders, len(jobs))
	driveStart := time.Now()
	driveCtx, stopDrive := context.WithTimeout(ctx, o.MaxDrive)
	defer stopDrive()
	chaosCtx, stopChaos := context.WithCancel(driveCtx)
	wire := newWireFaults(h)
	procFaults := &processFaults{h: h, rng: rand.New(rand.NewPCG(uint64(o.Seed), 1<<41))}
	var chaosWG sync.WaitGroup
	chaosWG.Go(func() { wire.run(chaosCtx) })
	chaosWG.Go(func() { h.progress(chaosCtx) })
	// The process faults are planned at points of the orders played: all of
	// them happen before the drive ends (the last at 90%).
	procDone := make(chan struct{})
	go func() {
		defer close(procDone)
		procFaults.run(driveCtx, o.Orders)
	}()

	queue := make(chan job)
	var payers sync.WaitGroup
	for range o.Concurrency {
		payers.Go(func() {
			for j := range queue {
				h.play(driveCtx, j)
			}
		})
	}
	for _, j := range jobs {
		select {
		case queue <- j:
		case <-driveCtx.Done():
		}
		if driveCtx.Err() != nil {
			break
		}
	}
	close(queue)
	payers.Wait()
	<-procDone
	stopChaos()
	chaosWG.Wait()
	wire.stop()
	driveTook := time.Since(driveStart)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("chaos: interrupted while playing the orders: %w", context.Cause(ctx))
	}
	truncated := driveCtx.Err() != nil
	if truncated {
		h.logf("the drive hit its bound (%v): settling what was placed", o.MaxDrive)
	}
	h.logf("all payers done in %v; faults cleared; making sure every process is up", driveTook.Round(time.Second))
	if err := h.ensureUp(ctx); err != nil {
		return nil, err
	}

	settleStart := time.Now()
	settled, pending := h.settle(ctx)
	settleTook := time.Since(settleStart)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("chaos: interrupted while settling: %w", context.Cause(ctx))
	}
	if settled {
		h.logf("settled in %v; checking", settleTook.Round(100*time.Millisecond))
	} else {
		h.logf("not settled after %v (%s); checking anyway", o.SettleTimeout, pending)
	}
	r, err := h.check(ctx)
	if err != nil {
		return nil, err
	}
	txs := h.sim.Transactions()
	r.Faults = wire.injected(txs, h.shippingViews(txs))
	for k, v := range h.restarts.get() {
		r.Faults[k] = v
	}
	r.FaultsAsked = wire.asked
	r.CloseOnPaidFlips = wire.flips
	r.Restarts = Restarts{
		WorkerKills:      r.Faults[FaultWorkerKill],
		APIRestarts:      r.Faults[FaultAPIRestart],
		PostgresRestarts: r.Faults[FaultPostgresRestart],
		Failed:           h.restarts.failures(),
	}
	for _, p := range append(slices.Clone(h.apis), h.workers...) {
		r.Restarts.UnexpectedExits += p.unexpected()
	}
	h.reportCluster(r)
	r.Seed, r.OrdersAsked = o.Seed, o.Orders
	r.Concurrency, r.FaultKinds = o.Concurrency, o.Faults
	r.PayTimeout, r.NotifyScale = o.PayTimeout.String(), o.NotifyScale
	r.DriveSeconds = driveTook.Seconds()
	r.SettleSeconds = settleTook.Seconds()
	r.Settled = settled
	r.DriveTruncated = truncated
	if !settled {
		r.Pending = pending
	}
	r.TotalSeconds = time.Since(h.start).Seconds()
	r.Dir = h.dir
	h.mu.Lock()
	r.Counters = h.counters
	h.mu.Unlock()
	return r, nil
}

// seed creates the products and logs the payers in, through the API.
func (h *harness) seed(ctx context.Context, jobs []job, rng *rand.Rand) error {
	product := func(name string, price, stock int64) (int64, error) {
		a, err := h.callRetry(ctx, http.MethodPost, "/v1/admin/products", h.adminToken,
			map[string]any{"name": name, "price_fen": price, "stock": stock})
		if err != nil {
			return 0, err
		}
		var p struct {
			ID int64 `json:"id"`
		}
		if a.status != http.StatusCreated || json.Unmarshal(a.body, &p) != nil || p.ID == 0 {
			return 0, fmt.Errorf("chaos: create product: %d %s", a.status, a.body)
		}
		h.initial[p.ID] = stock
		return p.ID, nil
	}
	for i := range 6 {
		id, err := product(fmt.Sprintf("Chaos staple %d", i+1), 100+rng.Int64N(20000), 1_000_000)
		if err != nil {
			return err
		}
		h.common = append(h.common, id)
	}
	for i := range jobs {
		if jobs[i].behaviour != BehaviourScarce {
			continue
		}
		// Fewer in stock than the group orders: somebody is oversold.
		stock := 1 + rng.Int64N(int64(jobs[i].group-1))
		id, err := product(fmt.Sprintf("Chaos limited edition %d", i+1), 500+rng.Int64N(5000), stock)
		if err != nil {
			return err
		}
		jobs[i].scarce = id
	}
	for i := range min(40, max(8, h.opts.Concurrency)) {
		code := fmt.Sprintf("chaos-payer-%d-%d", h.opts.Seed&0xffffff, i)
		a, err := h.callRetry(ctx, http.MethodPost, "/v1/auth/login", "", map[string]string{"code": code})
		if err != nil {
			return err
		}
		var t struct {
			Token string `json:"token"`
		}
		if a.status != http.StatusOK || json.Unmarshal(a.body, &t) != nil || t.Token == "" {
			return fmt.Errorf("chaos: login: %d %s", a.status, a.body)
		}
		h.users = append(h.users, payerUser{code: code, token: t.Token})
	}
	h.logf("seeded %d products (%d scarce), %d payers logged in", len(h.initial), len(h.initial)-len(h.common), len(h.users))
	return nil
}

func (h *harness) progress(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.logf("orders: %d started, %d done; restarts so far: %v", h.started.Load(), h.finished.Load(), h.restarts.get())
		}
	}
}

// ensureUp starts any process of the stack that is down and waits for all
// of them to be ready.
func (h *harness) ensureUp(ctx context.Context) error {
	for _, p := range append(slices.Clone(h.apis), h.workers...) {
		if !p.running() {
			if err := p.start(); err != nil {
				return err
			}
		}
		if err := p.waitReady(ctx, 2*time.Minute); err != nil {
			return err
		}
	}
	return nil
}

// shippingViews is WeChat's shipping view of every paid transaction, by
// order number.
func (h *harness) shippingViews(txs []paysim.TransactionView) map[string]paysim.ShippingView {
	out := map[string]paysim.ShippingView{}
	for _, t := range txs {
		if t.TransactionID == "" {
			continue
		}
		if v, ok := h.sim.Shipping(t.OutTradeNo); ok {
			out[t.OutTradeNo] = v
		}
	}
	return out
}
