// Package app assembles the processes the ordersaga binary runs — api, worker,
// migrate, dev — from the configuration. main only parses the command line
// and calls in here.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"ordersaga/activities"
	"ordersaga/api"
	"ordersaga/internal/auth"
	"ordersaga/internal/config"
	"ordersaga/internal/metrics"
	"ordersaga/internal/store"
	"ordersaga/internal/wxapp"
	"ordersaga/internal/wxlogin"
	"ordersaga/internal/wxpay"
	"ordersaga/worker"
	"ordersaga/workflows"
)

// TokenTTL is how long a mini-program login lasts.
const TokenTTL = 7 * 24 * time.Hour

// NewLogger returns the process logger: JSON lines on stderr, one per event,
// ready for a log pipeline.
func NewLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// ErrUnknownRole: RunRole was asked for a mode that is not a production role.
var ErrUnknownRole = errors.New("unknown role: want api, worker or migrate")

// RunRole runs this process as one of the stack's production roles — api,
// worker or migrate — configured from getenv (the environment), until ctx
// is cancelled (migrate: until the migrations are applied). `ordersaga api`,
// `ordersaga worker`, `ordersaga migrate` and the chaos harness's processes
// all start here.
func RunRole(ctx context.Context, mode config.Mode, getenv func(string) string) error {
	run := map[config.Mode]func(context.Context, config.Config, *slog.Logger) error{
		config.ModeAPI: RunAPI, config.ModeWorker: RunWorker, config.ModeMigrate: RunMigrate,
	}[mode]
	if run == nil {
		return fmt.Errorf("%w (got %q)", ErrUnknownRole, mode)
	}
	cfg, err := config.Load(mode, getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	return run(ctx, cfg, NewLogger(cfg.LogLevel))
}

// RunMigrate applies the database migrations and returns.
func RunMigrate(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	st, err := openStore(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	log.Info("database migrated", "schema_version", v)
	return nil
}

// RunAPI serves the HTTP API until ctx is cancelled, then drains in-flight
// requests for up to SHUTDOWN_TIMEOUT.
func RunAPI(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer st.Close()
	reg, sdkMetrics := NewMetrics()
	tc, err := dialTemporal(ctx, cfg, log, sdkMetrics)
	if err != nil {
		return err
	}
	defer tc.Close()
	handler, err := NewAPIHandler(cfg, st, tc, reg, log)
	if err != nil {
		return err
	}
	return serveHTTP(ctx, cfg.HTTPAddr, handler, cfg.ShutdownTimeout, log)
}

// NewAPIHandler builds the API's handler from its parts.
func NewAPIHandler(cfg config.Config, st *store.Store, tc client.Client, reg *prometheus.Registry, log *slog.Logger) (http.Handler, error) {
	tokens, err := Tokens(cfg)
	if err != nil {
		return nil, err
	}
	notify, err := NewNotifyHandler(cfg)
	if err != nil {
		return nil, err
	}
	var push *wxapp.Push
	if cfg.PushEnabled() {
		if push, err = wxapp.NewPush(cfg.PushToken, cfg.PushAESKey, cfg.WechatAppID, nil); err != nil {
			return nil, fmt.Errorf("WECHAT_PUSH_TOKEN, WECHAT_PUSH_AES_KEY: %w", err)
		}
	} else {
		log.Info("WeChat message push is not configured: /v1/wechat/events answers 404; shipped orders under WeChat's shipping management complete when the worker asks WeChat (WECHAT_PUSH_TOKEN, WECHAT_PUSH_AES_KEY)")
	}
	registerProcessMetrics(reg)
	return api.NewRouter(api.Deps{
		Store:          st,
		Temporal:       tc,
		TaskQueue:      cfg.TemporalTaskQueue,
		Tokens:         tokens,
		Login:          wxlogin.New(cfg.WechatAPIBaseURL, cfg.WechatAppID, cfg.WechatAppSecret, &http.Client{Timeout: 5 * time.Second}),
		AdminToken:     cfg.AdminToken,
		PayTimeout:     cfg.OrderPayTimeout,
		AutoConfirm:    cfg.OrderAutoConfirm,
		RefundInterval: cfg.RefundInterval,
		AfterSale: api.AfterSaleTimings{Window: cfg.AfterSaleWindow, AutoApprove: cfg.AfterSaleAutoApprove,
			ReturnTimeout: cfg.AfterSaleReturnTimeout, ReceiveTimeout: cfg.AfterSaleReceiveTimeout},
		AppID:          cfg.WechatAppID,
		MchID:          cfg.PayMchID,
		Notify:         notify,
		Push:           push,
		Logger:         log,
		Metrics:        reg,
		UserRate:       cfg.RateLimitUser,
		LoginRate:      cfg.RateLimitLogin,
		TrustedProxies: cfg.TrustedProxies,
	}), nil
}

// Tokens is the login token signer of the configuration.
func Tokens(cfg config.Config) (*auth.Tokens, error) {
	t, err := auth.NewTokens(cfg.JWTSecret, TokenTTL, time.Now)
	if err != nil {
		return nil, fmt.Errorf("JWT_SECRET: %w", err)
	}
	return t, nil
}

// RunWorker runs the Temporal worker until ctx is cancelled. It also serves
// /healthz, /readyz and /metrics on HTTP_ADDR for the orchestrator.
func RunWorker(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer st.Close()
	reg, sdkMetrics := NewMetrics()
	DeclareWorkerMetrics(sdkMetrics, cfg.TemporalNamespace, cfg.TemporalTaskQueue)
	tc, err := dialTemporal(ctx, cfg, log, sdkMetrics)
	if err != nil {
		return err
	}
	defer tc.Close()

	pay, err := NewWechatPay(cfg, WithCallMetrics(reg))
	if err != nil {
		return err
	}
	ship := NewShipping(cfg, log, reg)
	w := NewWorker(cfg, tc, st, pay, ship, log)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop() // waits for running activities to finish or time out
	log.Info("worker started", "task_queue", cfg.TemporalTaskQueue, "namespace", cfg.TemporalNamespace)
	ship.Start(ctx, cfg, log)
	go keepReconcileSchedule(ctx, tc, cfg.TemporalTaskQueue, log)

	registerProcessMetrics(reg)
	return serveHTTP(ctx, cfg.HTTPAddr, healthHandler(st, tc, reg), cfg.ShutdownTimeout, log)
}

// NewWorker builds (does not start) the order worker. ship is WeChat's
// shipping management (nil: none, shipped orders complete by themselves).
func NewWorker(cfg config.Config, tc client.Client, st *store.Store, pay *wxpay.Client, ship *Shipping, log *slog.Logger) sdkworker.Worker {
	return NewWorkerWithOptions(cfg, tc, st, pay, ship, log, WorkerOptions(cfg))
}

// NewWorkerWithOptions is NewWorker with other worker options (benchmarks
// compare them).
func NewWorkerWithOptions(cfg config.Config, tc client.Client, st *store.Store, pay *wxpay.Client, ship *Shipping, log *slog.Logger, opts sdkworker.Options) sdkworker.Worker {
	acts := &activities.Activities{Store: st, Pay: pay, Logger: log, Now: time.Now}
	if ship != nil {
		acts.Wxapp, acts.Shipping = ship.Client, ship.Managed
	}
	return worker.New(tc, cfg.TemporalTaskQueue, acts, opts)
}

// WorkerOptions are the options of the order worker (also of the no-op
// worker `ordersaga bench` compares it with, so both run alike).
func WorkerOptions(cfg config.Config) sdkworker.Options {
	return sdkworker.Options{
		// On stop, give running activities this long to finish before their
		// context is cancelled; Temporal retries whatever did not finish.
		WorkerStopTimeout: cfg.ShutdownTimeout,
		// Pollers that scale with the work instead of the SDK's fixed two
		// per kind. With two workflow-task pollers, the SDK sends both to
		// the sticky queue whenever it has a backlog, so under load a new
		// order's first workflow task (which only the normal queue carries)
		// waited in matching: `ordersaga bench` measured 740 ms of the
		// 750 ms a no-op create took at the median, and 31 orders/s. The
		// autoscaling pollers keep the normal queue covered: create 125 ms
		// at the median, and with the other changes 2.4× the orders per
		// second (docs/BENCHMARKS.md). Sixteen fixed pollers did as well for
		// throughput, with a slower create.
		WorkflowTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
		ActivityTaskPollerBehavior: sdkworker.NewPollerBehaviorAutoscaling(sdkworker.PollerBehaviorAutoscalingOptions{}),
	}
}

func openStore(ctx context.Context, url string, log *slog.Logger) (*store.Store, error) {
	st, err := store.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return st, nil
}

// dialTemporal connects, retrying while the server starts (containers come
// up in any order), until ctx ends.
func dialTemporal(ctx context.Context, cfg config.Config, log *slog.Logger, m *metrics.Temporal) (client.Client, error) {
	backoff := 500 * time.Millisecond
	for {
		c, err := client.DialContext(ctx, client.Options{
			HostPort:       cfg.TemporalAddress,
			Namespace:      cfg.TemporalNamespace,
			Logger:         sdklog.NewStructuredLogger(log.With("component", "temporal-sdk")),
			MetricsHandler: m.Handler(),
		})
		if err == nil {
			return c, nil
		}
		log.Warn("temporal not reachable yet", "address", cfg.TemporalAddress, "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("TEMPORAL_ADDRESS %s: %w", cfg.TemporalAddress, err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// NewMetrics is a process's registry (served on /metrics) with the Temporal
// SDK's metrics in it — and, in the worker, the workflows' own counters,
// which the SDK reports through the same handler: dial Temporal with
// client.Options{MetricsHandler: m.Handler()}.
func NewMetrics() (*prometheus.Registry, *metrics.Temporal) {
	reg := prometheus.NewRegistry()
	m := metrics.NewTemporal()
	reg.MustRegister(m)
	return reg, m
}

// DeclareWorkerMetrics makes the counters the runbook's reconciliation
// and history alerts read (docs/OPERATIONS.md §5) exist at 0 from the
// worker's start: the drift by kind, the SDK's completed and failed
// ReconcileWorkflow runs, and the order's and stray payment's runs past
// the history warning size. Without it, the first drift of a kind, the
// first failure, the first completion and the first long history after
// each worker start are invisible to increase() (metrics.DeclareCounter
// says why): the first hand-made refund would not page, "no
// reconciliation" would fire the day after a deploy, and a run nearing
// Temporal's history limit would go unnoticed.
func DeclareWorkerMetrics(m *metrics.Temporal, namespace, taskQueue string) {
	for _, wf := range []string{workflows.OrderWorkflowName, workflows.StrayPaymentWorkflowName} {
		tags := metrics.SDKWorkflowTags(namespace, taskQueue, wf)
		tags["workflow"] = wf
		m.DeclareCounter(workflows.MetricHistoryLarge, tags)
	}
	tags := metrics.SDKWorkflowTags(namespace, taskQueue, workflows.ReconcileWorkflowName)
	for _, kind := range store.DriftKinds() {
		if store.ExplainedKind(kind) {
			continue // not counted: expected, listed apart
		}
		withKind := maps.Clone(tags)
		withKind["kind"] = kind
		m.DeclareCounter(workflows.MetricReconciliationDrift, withKind)
	}
	m.DeclareCounter("temporal_workflow_completed", tags)
	m.DeclareCounter("temporal_workflow_failed", tags)
}

func registerProcessMetrics(reg *prometheus.Registry) {
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		var already prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &already) {
			panic(err)
		}
	}
}

// serveHTTP serves until ctx is cancelled, then shuts down gracefully.
func serveHTTP(ctx context.Context, addr string, h http.Handler, grace time.Duration, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %s: %w", addr, err)
	}
	return serveListener(ctx, ln, h, grace, log)
}

func serveListener(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("http listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// The grace is over: cut the requests still running (their
		// contexts end, so they stop waiting on Temporal or the database)
		// rather than leave them to the process's exit.
		_ = srv.Close()
		return fmt.Errorf("http shutdown: requests still running after %s were cut off: %w", grace, err)
	}
	return nil
}

func healthHandler(st *store.Store, tc client.Client, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := st.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, `{"ready":false,"checks":{"database":%q}}`, err.Error())
			return
		}
		if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, `{"ready":false,"checks":{"temporal":%q}}`, err.Error())
			return
		}
		_, _ = w.Write([]byte(`{"ready":true}`))
	})
	mux.Handle("GET /metrics", promhttpHandler(reg))
	return mux
}
