// Package api is the HTTP face of ordersaga: the mini-program API, the WeChat
// Pay notify endpoint, admin endpoints and health. It reads orders from the
// database but never changes an order's status: it starts, signals, updates and
// queries the order workflows, which own every change.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"

	"ordersaga/internal/auth"
	"ordersaga/internal/ratelimit"
	"ordersaga/internal/store"
	"ordersaga/internal/wxapp"
	"ordersaga/internal/wxpay"
)

// Deps are what the API needs; main builds them from the configuration.
type Deps struct {
	Store     *store.Store
	Temporal  client.Client
	TaskQueue string
	Tokens    *auth.Tokens
	// Login exchanges wx.login codes (jscode2session).
	Login SessionExchanger
	// AdminToken guards /v1/admin; empty disables the admin API.
	AdminToken string
	// PayTimeout is ORDER_PAY_TIMEOUT, handed to each new order's workflow.
	PayTimeout time.Duration
	// AutoConfirm is ORDER_AUTO_CONFIRM, handed to each new order's workflow.
	AutoConfirm time.Duration
	// RefundInterval is WECHATPAY_REFUND_INTERVAL, handed to each new
	// order's workflow.
	RefundInterval time.Duration
	// AfterSale are the ORDER_AFTERSALE_* timings, handed to each new
	// order's workflow (zero: the workflow's defaults).
	AfterSale AfterSaleTimings
	// AppID and MchID are the shop's mini-program and merchant (WECHAT_APPID,
	// WECHATPAY_MCHID): each order's workflow checks its payment against them.
	AppID, MchID string
	// Notify verifies and decrypts WeChat Pay callbacks.
	Notify *wxpay.NotifyHandler
	// Push verifies and decrypts the mini-program's message pushes
	// (/v1/wechat/events); nil: not configured, the route answers 404.
	Push   *wxapp.Push
	Logger *slog.Logger
	// Metrics is where the API registers its collectors; /metrics serves it.
	Metrics *prometheus.Registry
	// Now is the clock (order numbers, tokens); time.Now when nil.
	Now func() time.Time
	// UserRate bounds each user's mutating requests (RATE_LIMIT_USER),
	// LoginRate each client address's logins (RATE_LIMIT_LOGIN); the zero
	// Rate is no limit.
	UserRate, LoginRate ratelimit.Rate
	// TrustedProxies are the proxies whose X-Forwarded-For names the client
	// (HTTP_TRUSTED_PROXIES); none when empty.
	TrustedProxies []string
}

type server struct {
	Deps
	httpRequests *prometheus.CounterVec
	httpLatency  *prometheus.HistogramVec
	ordersPlaced *prometheus.CounterVec
	notifies     *prometheus.CounterVec
	events       *prometheus.CounterVec
	logins       *prometheus.CounterVec
	replays      *replayGuard
	pushReplays  *replayGuard
	adminDigest  [32]byte

	userLimiter, loginLimiter *ratelimit.Limiter
	rateLimited               *prometheus.CounterVec
	temporalLimits            *prometheus.CounterVec
	idempotentReplays         prometheus.Counter
}

// Context keys set by the middleware.
const (
	ctxRequestID = "request_id"
	ctxUserID    = "user_id"
)

// maxBodyBytes bounds every request body but the notify's: the largest
// legitimate one (an order of 50 lines) is a few KB.
const maxBodyBytes = 64 << 10

// maxNotifyBodyBytes bounds WeChat Pay callbacks, as wxpay.NotifyHandler.Parse
// does (real ones are a few KB).
const maxNotifyBodyBytes = 1 << 20

// Paths the middleware treats specially.
const (
	notifyPath = "/v1/wechatpay/notify"
)

// NewRouter returns the API's handler.
func NewRouter(d Deps) http.Handler {
	return newEngine(d)
}

// newEngine builds the gin engine; tests read its routes (Engine.Routes).
func newEngine(d Deps) *gin.Engine {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Metrics == nil {
		d.Metrics = prometheus.NewRegistry()
	}
	s := &server{
		Deps: d,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordersaga_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ordersaga_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		ordersPlaced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordersaga_orders_placed_total", Help: "Order creation requests by outcome.",
		}, []string{"outcome"}),
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordersaga_wechatpay_notifies_total",
			Help: "WeChat Pay callbacks by event type and outcome (accepted, stray_started, unknown_order, ended, ignored, refused_<reason>, failed_<reason>).",
		}, []string{"event", "outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordersaga_wechat_events_total",
			Help: "WeChat message pushes (/v1/wechat/events) by event (trade_manage_order_settlement, trade_manage_remind_shipping, url_check, other, unverified) and outcome (accepted, ended, unknown_order, other_merchant, ignored, refused_<reason>, failed_<reason>).",
		}, []string{"event", "outcome"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordersaga_wechat_login_calls_total",
			Help: "WeChat login exchanges (jscode2session) by outcome (ok, invalid_code, blocked, busy, rate_limited, error).",
		}, []string{"outcome"}),
		replays:      newReplayGuard(d.Now),
		pushReplays:  newReplayGuard(d.Now),
		adminDigest:  sha256.Sum256([]byte(d.AdminToken)),
		userLimiter:  ratelimit.New(d.UserRate, d.Now),
		loginLimiter: ratelimit.New(d.LoginRate, d.Now),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordersaga_http_rate_limited_total",
			Help: "Requests answered 429 RATE_LIMITED (RATE_LIMIT_USER, RATE_LIMIT_LOGIN), by route.",
		}, []string{"route"}),
		temporalLimits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordersaga_temporal_limit_refusals_total",
			Help: "Updates and signals Temporal refused for a limit, by operation and limit (total_updates, signals: for good until raised; others pass with time).",
		}, []string{"operation", "limit"}),
		idempotentReplays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ordersaga_orders_idempotent_replays_total",
			Help: "Order creations answered with the order an earlier request of the same Idempotency-Key made.",
		}),
	}
	for _, col := range []prometheus.Collector{s.httpRequests, s.httpLatency, s.ordersPlaced, s.notifies, s.events, s.logins,
		s.rateLimited, s.temporalLimits, s.idempotentReplays} {
		if err := d.Metrics.Register(col); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				panic(err) // a programming error: two collectors with one name
			}
		}
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	// gin believes X-Forwarded-For from anyone unless told otherwise: then
	// any client could name itself another address for every login.
	if err := r.SetTrustedProxies(d.TrustedProxies); err != nil {
		d.Logger.Error("HTTP_TRUSTED_PROXIES not taken: no proxy is trusted", "error", err.Error())
		_ = r.SetTrustedProxies(nil)
	}
	r.Use(s.requestID, s.accessLog, s.recover, s.limitBody)
	r.NoRoute(func(c *gin.Context) { abortError(c, http.StatusNotFound, CodeNotFound, "no such endpoint") })
	r.NoMethod(func(c *gin.Context) {
		abortError(c, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed on this endpoint")
	})

	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(d.Metrics, promhttp.HandlerOpts{})))

	v1 := r.Group("/v1")
	v1.GET("/products", s.listProducts)
	v1.POST("/auth/login", s.limitLogin(), s.login)
	// WeChat Pay calls this; it authenticates by signature, not by token.
	v1.POST("/wechatpay/notify", s.wechatpayNotify)
	// WeChat's message push (shipping events), by signature too.
	v1.GET("/wechat/events", s.wechatEventsCheck)
	v1.POST("/wechat/events", s.wechatEvents)

	user := v1.Group("", s.requireUser)
	limited := s.limitUser()
	user.POST("/orders", limited, s.createOrder)
	user.GET("/orders", s.listOrders)
	user.GET("/orders/:no", s.getOrder)
	user.POST("/orders/:no/pay", limited, s.payOrder)
	user.POST("/orders/:no/cancel", limited, s.cancelOrder)
	user.POST("/orders/:no/refund", limited, s.refundOrder)
	user.POST("/orders/:no/confirm", limited, s.confirmOrder)
	user.POST("/orders/:no/after-sales", limited, s.createAfterSale)
	user.POST("/after-sales/:id/return", limited, s.returnAfterSale)

	admin := v1.Group("/admin", s.requireAdmin)
	admin.POST("/products", s.adminCreateProduct)
	admin.PATCH("/products/:id", s.adminUpdateProduct)
	admin.GET("/orders/flagged", s.adminFlaggedOrders)
	admin.GET("/orders/:no", s.adminGetOrder)
	admin.POST("/orders/:no/ship", s.adminShipOrder)
	admin.POST("/orders/:no/refund", s.adminRefundOrder)
	admin.GET("/after-sales", s.adminListAfterSales)
	admin.POST("/after-sales/:id/approve", s.adminAfterSaleAction("approve"))
	admin.POST("/after-sales/:id/reject", s.adminAfterSaleAction("reject"))
	admin.POST("/after-sales/:id/receive", s.adminAfterSaleAction("receive"))
	admin.POST("/reconciliations", s.adminStartReconciliation)
	admin.GET("/reconciliations/:date", s.adminGetReconciliation)
	return r
}

func (s *server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if id == "" || len(id) > 64 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

func (s *server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	elapsed := time.Since(start)
	s.httpRequests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
	s.httpLatency.WithLabelValues(route, c.Request.Method).Observe(elapsed.Seconds())
	attrs := []any{
		"request_id", c.GetString(ctxRequestID), "method", c.Request.Method, "route", route,
		"status", status, "duration_ms", float64(elapsed.Microseconds()) / 1000,
	}
	if uid := c.GetInt64(ctxUserID); uid != 0 {
		attrs = append(attrs, "user_id", uid)
	}
	if no := c.Param("no"); no != "" {
		attrs = append(attrs, "order_no", no)
	}
	if len(c.Errors) > 0 {
		attrs = append(attrs, "error", c.Errors.Last().Error())
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	if route == "/healthz" || route == "/readyz" || route == "/metrics" {
		level = slog.LevelDebug
	}
	s.Logger.Log(c.Request.Context(), level, "http request", attrs...)
}

func (s *server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.Logger.Error("panic in handler", "request_id", c.GetString(ctxRequestID), "route", c.FullPath(), "panic", fmt.Sprint(r))
			if c.FullPath() == notifyPath {
				// WeChat's shape: it retries.
				c.AbortWithStatusJSON(http.StatusInternalServerError, notifyAnswer{Code: "FAIL", Message: "internal error"})
				return
			}
			abortError(c, http.StatusInternalServerError, CodeInternal, "internal error")
		}
	}()
	c.Next()
}

func (s *server) limitBody(c *gin.Context) {
	if c.FullPath() == notifyPath {
		s.limitNotifyBody(c)
		return
	}
	if c.Request.ContentLength > maxBodyBytes {
		abortError(c, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body is larger than 64 KiB")
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
	c.Next()
}

// limitNotifyBody gives WeChat's callbacks WeChat's error shape and Parse's
// limit. The body is read here, in full, because a chunked one has no
// Content-Length to refuse it by, and Parse reports a failed read as a bad
// body (400) without saying it was the limit; Parse reads the copy left in
// its place.
func (s *server) limitNotifyBody(c *gin.Context) {
	tooLarge := func() {
		s.countNotify("", "refused_too_large")
		c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, notifyAnswer{Code: "FAIL", Message: "body larger than 1 MiB"})
	}
	if c.Request.ContentLength > maxNotifyBodyBytes {
		tooLarge()
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxNotifyBodyBytes))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		tooLarge()
		return
	case err != nil:
		s.notifyRefuse(c, "", "refused_body", http.StatusBadRequest, "body could not be read", fmt.Errorf("read notify body: %w", err))
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	c.Next()
}

func (s *server) requireUser(c *gin.Context) {
	const prefix = "Bearer "
	h := c.GetHeader("Authorization")
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		abortError(c, http.StatusUnauthorized, CodeUnauthenticated, "missing bearer token; log in with POST /v1/auth/login")
		return
	}
	uid, err := s.Tokens.Verify(h[len(prefix):])
	if err != nil {
		abortError(c, http.StatusUnauthorized, CodeUnauthenticated, "invalid or expired token; log in again")
		return
	}
	c.Set(ctxUserID, uid)
	c.Next()
}

// requireAdmin lets through requests bearing ADMIN_TOKEN. The comparison is
// of SHA-256 digests in constant time, so neither timing nor length leaks how
// close a guess was.
func (s *server) requireAdmin(c *gin.Context) {
	if s.AdminToken == "" {
		abortError(c, http.StatusForbidden, CodePermissionDenied, "the admin API is disabled (ADMIN_TOKEN is not set)")
		return
	}
	const prefix = "Bearer "
	h := c.GetHeader("Authorization")
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		abortError(c, http.StatusUnauthorized, CodeUnauthenticated, "missing admin bearer token")
		return
	}
	got := sha256.Sum256([]byte(h[len(prefix):]))
	if subtle.ConstantTimeCompare(got[:], s.adminDigest[:]) != 1 {
		abortError(c, http.StatusUnauthorized, CodeUnauthenticated, "invalid admin token")
		return
	}
	c.Next()
}

func (s *server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 200 only when the database and Temporal both answer, so a
// load balancer stops sending orders to an instance that cannot take them.
func (s *server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	checks := gin.H{}
	ok := true
	// The causes go to the log, not to whoever asks: they name hosts.
	if err := s.Store.Ping(ctx); err != nil {
		checks["database"], ok = "unreachable", false
		s.Logger.Warn("readyz: database", "error", err.Error())
	} else {
		checks["database"] = "ok"
	}
	if _, err := s.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		checks["temporal"], ok = "unreachable", false
		s.Logger.Warn("readyz: temporal", "error", err.Error())
	} else {
		checks["temporal"] = "ok"
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, gin.H{"ready": ok, "checks": checks})
}

// AfterSaleTimings are the ORDER_AFTERSALE_* settings a new order takes
// (workflows.OrderInput; zero: the workflow's defaults).
type AfterSaleTimings struct {
	Window, AutoApprove, ReturnTimeout, ReceiveTimeout time.Duration
}
