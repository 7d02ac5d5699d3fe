package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ordersaga/internal/config"
	"ordersaga/internal/wxapp"
)

// Shipping is the worker's side of WeChat's order shipping management: the
// mini-program server API client (one access token per process) and
// whether WeChat manages the shop's shipping (WECHAT_SHIPPING_MANAGED).
type Shipping struct {
	Client  *wxapp.Client
	Managed *wxapp.Managed
}

// NewShipping builds it from the configuration (no network until a call).
// With reg, every call is counted by name and outcome
// (ordersaga_wechat_api_calls_total) and timed.
func NewShipping(cfg config.Config, log *slog.Logger, reg prometheus.Registerer) *Shipping {
	opts := wxapp.Options{
		BaseURL: cfg.WechatAPIBaseURL, AppID: cfg.WechatAppID, Secret: cfg.WechatAppSecret,
		HTTPClient: &http.Client{Timeout: cfg.HTTPClientTimeout}, Logger: log.With("component", "wxapp"),
	}
	if reg != nil {
		calls := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordersaga_wechat_api_calls_total",
			Help: "Mini-program server API calls (stable_token, is_trade_managed, upload_shipping_info, get_order, notify_confirm_receive, set_msg_jump_path) by outcome (ok, retryable, refused).",
		}, []string{"op", "outcome"})
		took := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ordersaga_wechat_api_call_duration_seconds",
			Help:    "Mini-program server API call latency by name.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op"})
		for _, c := range []prometheus.Collector{calls, took} {
			var already prometheus.AlreadyRegisteredError
			if err := reg.Register(c); err != nil && !errors.As(err, &already) {
				panic(err) // two collectors of one name: a programming error
			}
		}
		opts.OnCall = func(op string, err error, d time.Duration) {
			outcome := "ok"
			switch {
			case err == nil:
			case wxapp.Retryable(err):
				outcome = "retryable"
			default:
				outcome = "refused"
			}
			calls.WithLabelValues(op, outcome).Inc()
			took.WithLabelValues(op).Observe(d.Seconds())
		}
	}
	c := wxapp.New(opts)
	mode := cfg.ShippingManaged
	if mode == "" {
		mode = config.ShippingAuto
	}
	if cfg.WechatAppSecret == "" {
		mode = config.ShippingOff // nothing to ask WeChat with (config.Load allows it only with off)
	}
	return &Shipping{Client: c, Managed: wxapp.NewManaged(mode, c)}
}

// Start does what a worker tells WeChat once: under auto it asks whether
// WeChat manages the shop's shipping (and logs the answer; a failure is
// asked again by the first order that needs it), and it sets the page
// WeChat's shipping messages open (WECHAT_SHIPPING_MSG_JUMP_PATH). In the
// background: a worker does not wait for WeChat to start.
func (s *Shipping) Start(ctx context.Context, cfg config.Config, log *slog.Logger) {
	if s == nil || s.Managed.Mode() == config.ShippingOff {
		log.Info("WeChat shipping management: off (shipped orders complete by themselves)")
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		managed, err := s.Managed.Get(ctx)
		if err != nil {
			log.Warn("WeChat shipping management: could not ask WeChat yet; the first shipped order asks again", "mode", s.Managed.Mode(), "error", err.Error())
			return
		}
		log.Info("WeChat shipping management", "mode", s.Managed.Mode(), "managed", managed)
		if p := cfg.ShippingMsgJumpPath; p != "" && managed {
			if err := s.Client.SetMsgJumpPath(ctx, p); err != nil {
				log.Warn("WeChat shipping management: set_msg_jump_path failed", "path", p, "error", err.Error())
			} else {
				log.Info("WeChat shipping management: message page set", "path", p)
			}
		}
	}()
}
