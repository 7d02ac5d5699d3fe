package app

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ordersaga/internal/config"
	"ordersaga/internal/wxpay"
)

// wechatPayConfig turns the process configuration into the SDK wiring's,
// loading both key files; errors name the variable at fault.
func wechatPayConfig(cfg config.Config) (wxpay.Config, error) {
	wc := wxpay.Config{
		AppID:         cfg.WechatAppID,
		MchID:         cfg.PayMchID,
		MchCertSerial: cfg.PayMchCertSerial,
		APIv3Key:      cfg.PayAPIv3Key,
		PublicKeyID:   cfg.PayPublicKeyID,
		NotifyURL:     cfg.PayNotifyURL,
		Timeout:       cfg.HTTPClientTimeout,
	}
	if cfg.PayBaseURL != config.DefaultWechatPayBaseURL {
		wc.BaseURL = cfg.PayBaseURL
	}
	if err := wxpay.LoadConfigKeys(&wc, cfg.PayMchKeyFile, cfg.PayPublicKeyFile); err != nil {
		return wxpay.Config{}, err
	}
	if err := wc.Validate(); err != nil {
		return wxpay.Config{}, err
	}
	return wc, nil
}

// PayOption adjusts the WeChat Pay client NewWechatPay builds.
type PayOption func(*wxpay.Config)

// WithCallMetrics counts every WeChat Pay call by operation and outcome
// (ordersaga_wechatpay_calls_total) and times it
// (ordersaga_wechatpay_call_duration_seconds), in reg.
func WithCallMetrics(reg prometheus.Registerer) PayOption {
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ordersaga_wechatpay_calls_total",
		Help: "WeChat Pay API calls by operation (prepay, query, query_by_id, close, refund, refund_query, tradebill, bill_download) and outcome (ok, retryable, permanent, unknown).",
	}, []string{"op", "outcome"})
	took := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ordersaga_wechatpay_call_duration_seconds",
		Help:    "WeChat Pay API call latency by operation.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"op"})
	reg.MustRegister(calls, took)
	return func(c *wxpay.Config) {
		c.OnCall = func(op string, kind wxpay.ErrorKind, d time.Duration) {
			outcome := kind.String()
			if kind == wxpay.KindNone {
				outcome = "ok"
			}
			calls.WithLabelValues(op, outcome).Inc()
			took.WithLabelValues(op).Observe(d.Seconds())
		}
	}
}

// NewWechatPay builds the WeChat Pay client (no network at construction), so
// a worker with a bad key stops at start-up rather than at the first payment.
func NewWechatPay(cfg config.Config, opts ...PayOption) (*wxpay.Client, error) {
	wc, err := wechatPayConfig(cfg)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(&wc)
	}
	c, err := wxpay.NewClient(wc)
	if err != nil {
		return nil, fmt.Errorf("wechat pay client: %w", err)
	}
	return c, nil
}

// NewNotifyHandler builds the WeChat Pay callback verifier of the API: it
// needs only the APIv3 key and the WeChat Pay public key (the API never signs
// requests, so it does not hold the merchant private key).
func NewNotifyHandler(cfg config.Config) (*wxpay.NotifyHandler, error) {
	pub, err := wxpay.LoadPublicKeyFile(cfg.PayPublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", wxpay.EnvPublicKeyFile, err)
	}
	h, err := wxpay.NewNotifyHandler(wxpay.Config{
		APIv3Key:    cfg.PayAPIv3Key,
		PublicKeyID: cfg.PayPublicKeyID,
		PublicKey:   pub,
	})
	if err != nil {
		return nil, fmt.Errorf("wechat pay notify handler: %w", err)
	}
	return h, nil
}
