package app

import (
	"fmt"

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

// NewWechatPay builds the WeChat Pay client (no network at construction), so
// a worker with a bad key stops at start-up rather than at the first payment.
func NewWechatPay(cfg config.Config) (*wxpay.Client, error) {
	wc, err := wechatPayConfig(cfg)
	if err != nil {
		return nil, err
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
