package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/apiclient"
	"ordersaga/internal/app"
	"ordersaga/internal/cluster"
	"ordersaga/internal/config"
	"ordersaga/internal/devserver"
	"ordersaga/internal/paysim"
	"ordersaga/internal/pgserver"
	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// Identities of the shop at the simulator during a run.
const (
	benchAppID     = "wx00000000000bench1"
	benchAppSecret = "bench-app-secret"
	benchMchID     = "1900000888"
	benchQueue     = "orders-bench"
	noopQueue      = "noop-bench"
	adminToken     = "bench-admin-token-not-for-production"
	benchDatabase  = "ordersaga_bench"
	// sagaPayTimeout is the ORDER_PAY_TIMEOUT of the orders that are paid
	// (and of the no-op's deadline timer): far beyond any run, as in a shop.
	sagaPayTimeout = 15 * time.Minute
)

// stack is everything a run starts: the shop's database, the embedded
// Temporal server, the WeChat Pay simulator, the worker replicas, the API
// (and a second API for the orders left to expire, with their own pay
// timeout), all in this process, talking over loopback as in production.
type stack struct {
	opts Options
	dir  string
	log  *slog.Logger

	pg    *pgserver.Server
	dbURL string
	ts    temporalServer
	// On a cluster: its services, and the PostgreSQL server it keeps its
	// databases on (the shop's, unless the shop runs on SQLite).
	cluster    *cluster.Temporal
	temporalPG *pgserver.Server
	sim        *paysim.Sim
	tap        *notifyTap
	simURL     string
	cfg        config.Config
	workers    []sdkworker.Worker
	// noopWorkers run the no-op workflow, alike (app.WorkerOptions).
	noopWorkers []sdkworker.Worker
	noop        *noopActivities
	apiClient   client.Client // the API's connection (the no-op driver uses it too)
	apiURL      string
	expiryURL   string
	apiStore    *store.Store
	http        *http.Client

	undo []func()
}

func (s *stack) close() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
	s.undo = nil
}

// startStack brings the stack up; on error, what was started is stopped.
func startStack(ctx context.Context, o Options) (_ *stack, err error) {
	s := &stack{opts: o}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	s.dir = o.Dir
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "ordersaga-bench-"); err != nil {
			return nil, err
		}
		dir := s.dir
		s.undo = append(s.undo, func() {
			if !o.Keep {
				_ = os.RemoveAll(dir)
			}
		})
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	// PostgreSQL runs as another user (as root): it must get through.
	if err := os.Chmod(s.dir, 0o711); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(s.dir, "stack.log"))
	if err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { logFile.Close() })
	s.log = slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// The shop's database.
	switch o.DB {
	case DBPostgres:
		if s.pg, err = pgserver.Start(ctx, pgserver.Options{Bin: o.PGBin, Dir: filepath.Join(s.dir, "pg")}); err != nil {
			return nil, err
		}
		s.undo = append(s.undo, func() { _ = s.pg.Stop() })
		if err := s.pg.CreateDatabase(ctx, benchDatabase); err != nil {
			return nil, err
		}
		s.dbURL = s.pg.URL(benchDatabase)
	case DBSQLite:
		s.dbURL = "sqlite:" + filepath.Join(s.dir, "shop.db")
	}
	mig, err := store.Open(ctx, s.dbURL)
	if err != nil {
		return nil, err
	}
	err = mig.Migrate(ctx)
	mig.Close()
	if err != nil {
		return nil, fmt.Errorf("bench: migrate: %w", err)
	}

	// Listeners first: the API's address is the notify URL the worker gives
	// WeChat with each prepay.
	var lns [3]net.Listener
	for i := range lns {
		if lns[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		ln := lns[i]
		s.undo = append(s.undo, func() { _ = ln.Close() })
	}
	apiLn, expiryLn, simLn := lns[0], lns[1], lns[2]
	s.apiURL = "http://" + apiLn.Addr().String()
	s.expiryURL = "http://" + expiryLn.Addr().String()
	s.simURL = "http://" + simLn.Addr().String()

	// The WeChat Pay simulator; its notifies go through the tap, which
	// times each answer of the API.
	keys, err := paysim.EnsureDevKeys(filepath.Join(s.dir, "keys"))
	if err != nil {
		return nil, err
	}
	s.tap = newNotifyTap()
	shop := app.SimShop{AppID: benchAppID, AppSecret: benchAppSecret, MchID: benchMchID}
	simOpts := shop.SimOptions(keys)
	simOpts.NotifyClient = &http.Client{Timeout: 30 * time.Second, Transport: s.tap}
	simOpts.Logger = s.log.With("component", "paysim")
	s.sim = paysim.New(simOpts)
	simSrv := &http.Server{Handler: s.sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = simSrv.Serve(simLn) }()
	s.undo = append(s.undo, func() {
		s.sim.Close()
		_ = simSrv.Close()
	})

	// Temporal.
	if err := s.startTemporal(ctx, o); err != nil {
		return nil, err
	}

	s.cfg = config.Config{
		TemporalAddress:   s.ts.FrontendAddress(),
		TemporalNamespace: s.ts.Namespace(),
		TemporalTaskQueue: benchQueue,
		OrderPayTimeout:   sagaPayTimeout,
		OrderAutoConfirm:  7 * 24 * time.Hour,
		JWTSecret:         strings.Repeat("bench-jwt-", 4),
		AdminToken:        adminToken,
		LogLevel:          "warn",
		ShutdownTimeout:   5 * time.Second,
		HTTPClientTimeout: 10 * time.Second,
	}
	app.UseSimulator(&s.cfg, shop, keys, s.simURL, s.apiURL)

	dial := func() (client.Client, error) {
		_, m := app.NewMetrics()
		return s.ts.Dial(ctx, client.Options{
			Logger:         sdklog.NewStructuredLogger(s.log.With("component", "temporal-sdk")),
			MetricsHandler: m.Handler(),
		})
	}

	// Worker replicas, each as its own process would be: its own Temporal
	// connection and database pool. The no-op worker replicas run beside
	// them with the same options.
	s.noop = newNoopActivities()
	for i := range o.Workers {
		tc, err := dial()
		if err != nil {
			return nil, fmt.Errorf("bench: dial temporal: %w", err)
		}
		s.undo = append(s.undo, tc.Close)
		st, err := store.Open(ctx, s.dbURL)
		if err != nil {
			return nil, err
		}
		s.undo = append(s.undo, func() { st.Close() })
		reg := prometheus.NewRegistry()
		pay, err := app.NewWechatPay(s.cfg, app.WithCallMetrics(reg))
		if err != nil {
			return nil, err
		}
		wopts := workerOptions(o, s.cfg)
		w := app.NewWorkerWithOptions(s.cfg, tc, st, pay, nil, s.log.With("component", "worker", "replica", i+1), wopts)
		nw := newNoopWorker(tc, wopts, s.noop, noopKinds(o))
		for _, x := range []sdkworker.Worker{w, nw} {
			if err := x.Start(); err != nil {
				return nil, fmt.Errorf("bench: start worker: %w", err)
			}
			s.undo = append(s.undo, x.Stop)
		}
		s.workers = append(s.workers, w)
		s.noopWorkers = append(s.noopWorkers, nw)
	}

	// The API: one for the orders that are paid, one (same code, another
	// ORDER_PAY_TIMEOUT) for the orders left to expire.
	if s.apiClient, err = dial(); err != nil {
		return nil, fmt.Errorf("bench: dial temporal: %w", err)
	}
	s.undo = append(s.undo, s.apiClient.Close)
	if s.apiStore, err = store.Open(ctx, s.dbURL); err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { s.apiStore.Close() })
	for _, api := range []struct {
		ln         net.Listener
		payTimeout time.Duration
	}{{apiLn, sagaPayTimeout}, {expiryLn, o.ExpiryTimeout}} {
		cfg := s.cfg
		cfg.OrderPayTimeout = api.payTimeout
		h, err := app.NewAPIHandler(cfg, s.apiStore, s.apiClient, prometheus.NewRegistry(), s.log.With("component", "api"))
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		ln := api.ln
		go func() { _ = srv.Serve(ln) }()
		s.undo = append(s.undo, func() { _ = srv.Close() })
	}

	s.http = &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        4 * (o.Users + o.Burst + 64),
			MaxIdleConnsPerHost: 4 * (o.Users + 64),
			IdleConnTimeout:     time.Minute,
		},
	}
	s.undo = append(s.undo, s.http.CloseIdleConnections)
	return s, nil
}

// answer is an HTTP answer with its body read.
type answer struct {
	status int
	body   []byte
}

// call sends a JSON request to the API (base: s.apiURL or s.expiryURL).
func (s *stack) call(ctx context.Context, base, method, path, token string, body any) (answer, error) {
	status, b, err := apiclient.Do(ctx, s.http, method, base+path, token, body)
	return answer{status: status, body: b}, err
}

// login logs a user in through the API (jscode2session at the simulator).
func (s *stack) login(ctx context.Context, code string) (string, error) {
	a, err := s.call(ctx, s.apiURL, http.MethodPost, "/v1/auth/login", "", map[string]string{"code": code})
	if err != nil {
		return "", err
	}
	var t struct {
		Token string `json:"token"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &t) != nil || t.Token == "" {
		return "", fmt.Errorf("bench: login: %d %s", a.status, a.body)
	}
	return t.Token, nil
}

// product creates a product through the admin API.
func (s *stack) product(ctx context.Context, name string, price, stock int64) (int64, error) {
	a, err := s.call(ctx, s.apiURL, http.MethodPost, "/v1/admin/products", adminToken,
		map[string]any{"name": name, "price_fen": price, "stock": stock})
	if err != nil {
		return 0, err
	}
	var p struct {
		ID int64 `json:"id"`
	}
	if a.status != http.StatusCreated || json.Unmarshal(a.body, &p) != nil || p.ID == 0 {
		return 0, fmt.Errorf("bench: create product: %d %s", a.status, a.body)
	}
	return p.ID, nil
}

// notifyTap is the simulator's transport for its notifies: it times each
// answer of the API, by the notification's id (in the clear in the
// envelope), and can hold notifies back until a burst is complete.
type notifyTap struct {
	base http.RoundTripper

	mu      sync.Mutex
	answers map[string]chan notifyAnswer
	burst   *burstGate
}

// notifyAnswer is the API's answer to one notify attempt.
type notifyAnswer struct {
	sent, answered time.Time
	status         int
	err            error
}

func newNotifyTap() *notifyTap {
	return &notifyTap{
		base: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     time.Minute,
		},
		answers: map[string]chan notifyAnswer{},
	}
}

// expect returns the channel the answer to notification id arrives on.
func (t *notifyTap) expect(id string) chan notifyAnswer {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch, ok := t.answers[id]
	if !ok {
		ch = make(chan notifyAnswer, 4)
		t.answers[id] = ch
	}
	return ch
}

func (t *notifyTap) forget(id string) {
	t.mu.Lock()
	delete(t.answers, id)
	t.mu.Unlock()
}

func (t *notifyTap) RoundTrip(req *http.Request) (*http.Response, error) {
	var env struct {
		ID string `json:"id"`
	}
	if req.Body != nil && req.GetBody != nil {
		if rc, err := req.GetBody(); err == nil {
			_ = json.NewDecoder(rc).Decode(&env)
			rc.Close()
		}
	}
	t.mu.Lock()
	gate := t.burst
	t.mu.Unlock()
	if gate != nil {
		gate.wait(req.Context())
	}
	sent := time.Now()
	resp, err := t.base.RoundTrip(req)
	a := notifyAnswer{sent: sent, answered: time.Now(), err: err}
	if resp != nil {
		a.status = resp.StatusCode
	}
	if env.ID != "" {
		ch := t.expect(env.ID)
		select {
		case ch <- a:
		default:
		}
	}
	return resp, err
}

// burstGate holds the first n notifies until all n are there, then lets
// them go at once.
type burstGate struct {
	n        int
	mu       sync.Mutex
	arrived  int
	open     chan struct{}
	once     sync.Once
	openedAt time.Time
}

func newBurstGate(n int) *burstGate { return &burstGate{n: n, open: make(chan struct{})} }

func (g *burstGate) wait(ctx context.Context) {
	g.mu.Lock()
	g.arrived++
	full := g.arrived == g.n
	g.mu.Unlock()
	if full {
		g.release()
	}
	select {
	case <-g.open:
	case <-ctx.Done():
	}
}

// expect lowers the count the gate waits for (some notifies never came).
func (g *burstGate) expect(n int) {
	g.mu.Lock()
	g.n = n
	full := g.arrived >= n
	g.mu.Unlock()
	if full {
		g.release()
	}
}

// release opens the gate whoever came (a notify that never arrives must not
// hold the others for ever).
func (g *burstGate) release() {
	g.once.Do(func() {
		g.mu.Lock()
		g.openedAt = time.Now()
		g.mu.Unlock()
		close(g.open)
	})
}

func (t *notifyTap) setBurst(g *burstGate) {
	t.mu.Lock()
	t.burst = g
	t.mu.Unlock()
}

var errTimeout = errors.New("timed out")

// workerOptions are app.WorkerOptions less the tunings reverted: the SDK's
// fixed pollers, and new orders on the path they took before local
// activities (GetVersion answers DefaultVersion for ChangeLocalDB).
func workerOptions(o Options, cfg config.Config) sdkworker.Options {
	w := app.WorkerOptions(cfg)
	if o.reverted(TuningPollers) {
		w.WorkflowTaskPollerBehavior, w.ActivityTaskPollerBehavior = nil, nil
	}
	if o.reverted(TuningLocalActivities) {
		w.PreferredVersionProvider = func(in sdkworker.PreferredVersionProviderInput) *sdkworker.VersionPreference {
			if in.ChangeID == workflows.ChangeLocalDB {
				return &sdkworker.VersionPreference{Version: workflow.DefaultVersion}
			}
			return nil
		}
	}
	return w
}

// serverReverts are the reverted tunings of the embedded server.
func serverReverts(o Options) []string {
	var out []string
	for _, t := range o.Revert {
		if slices.Contains(devserver.Tunings, t) {
			out = append(out, t)
		}
	}
	return out
}

// noopKinds is the no-op's activity kinds for a run: those of the orders
// it runs beside.
func noopKinds(o Options) string {
	if o.reverted(TuningLocalActivities) {
		return NoopRegular
	}
	return o.NoopActivities
}
