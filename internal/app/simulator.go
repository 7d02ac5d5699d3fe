package app

import (
	"ordersaga/internal/config"
	"ordersaga/internal/paysim"
)

// SimShop is a shop as the WeChat Pay simulator knows it: its mini-program
// (appid, and the secret jscode2session and stable_token check), its
// merchant id, and its message push settings (Token, EncodingAESKey).
type SimShop struct {
	AppID, AppSecret, MchID string
	PushToken, PushAESKey   string
}

// SimOptions are the options of a simulator that plays WeChat for the shop,
// with keys. Its pushes go nowhere until PushURL is set (EventsURL).
func (s SimShop) SimOptions(keys paysim.Keys) paysim.Options {
	opts := keys.SimOptions(s.AppID, s.MchID)
	opts.LoginSecret = s.AppSecret
	opts.PushToken, opts.PushAESKey = s.PushToken, s.PushAESKey
	return opts
}

// EventsURL is the API's message push route at apiURL: where the
// simulator pushes WeChat's shipping events.
func EventsURL(apiURL string) string { return apiURL + "/v1/wechat/events" }

// UseSimulator points cfg's WeChat settings at a simulator at simURL that
// plays WeChat for shop with keys, and its notifies at the API at apiURL:
// the shop's identity, both WeChat hosts, the merchant's and WeChat Pay's
// keys, the notify URL, the message push settings. A setting cfg already has — other than the real
// WeChat hosts, the defaults — is kept (in dev, the environment wins).
// `ordersaga dev`, the end-to-end tests and the benchmark stack all wire
// their simulator with it.
func UseSimulator(cfg *config.Config, shop SimShop, keys paysim.Keys, simURL, apiURL string) {
	set := func(v *string, def string) {
		if *v == "" || *v == config.DefaultWechatPayBaseURL || *v == "https://api.weixin.qq.com" {
			*v = def
		}
	}
	set(&cfg.WechatAppID, shop.AppID)
	set(&cfg.WechatAppSecret, shop.AppSecret)
	set(&cfg.WechatAPIBaseURL, simURL)
	set(&cfg.PayMchID, shop.MchID)
	set(&cfg.PayBaseURL, simURL)
	set(&cfg.PayNotifyURL, apiURL+"/v1/wechatpay/notify")
	set(&cfg.PayMchCertSerial, keys.MchCertSerial)
	set(&cfg.PayMchKeyFile, keys.MchPrivateKeyFile)
	set(&cfg.PayAPIv3Key, keys.APIv3Key)
	set(&cfg.PayPublicKeyID, keys.PublicKeyID)
	set(&cfg.PayPublicKeyFile, keys.PublicKeyFile)
	set(&cfg.PushToken, shop.PushToken)
	set(&cfg.PushAESKey, shop.PushAESKey)
}
