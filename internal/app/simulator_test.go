package app_test

import (
	"testing"

	"ordersaga/internal/app"
	"ordersaga/internal/config"
	"ordersaga/internal/paysim"
)

// UseSimulator fills every WeChat setting from the simulator and its keys,
// keeps one already given (dev: the environment wins), and replaces the
// real WeChat hosts, which are only the defaults; the result is a config
// the WeChat Pay client accepts.
func TestUseSimulatorWiresEveryWeChatSettingAndKeepsGivenOnes(t *testing.T) {
	keys, err := paysim.EnsureDevKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	shop := app.SimShop{AppID: "wx-sim-shop", AppSecret: "sim-secret", MchID: "1900000999"}
	const simURL, apiURL = "http://127.0.0.1:1", "http://127.0.0.1:2"

	cfg := config.Config{
		WechatAppID:      "wx-from-env",
		WechatAPIBaseURL: "https://api.weixin.qq.com",
		PayBaseURL:       config.DefaultWechatPayBaseURL,
	}
	app.UseSimulator(&cfg, shop, keys, simURL, apiURL)
	want := map[string][2]string{
		"WECHAT_APPID":                   {cfg.WechatAppID, "wx-from-env"},
		"WECHAT_APP_SECRET":              {cfg.WechatAppSecret, shop.AppSecret},
		"WECHAT_API_BASE_URL":            {cfg.WechatAPIBaseURL, simURL},
		"WECHATPAY_MCHID":                {cfg.PayMchID, shop.MchID},
		"WECHATPAY_BASE_URL":             {cfg.PayBaseURL, simURL},
		"WECHATPAY_NOTIFY_URL":           {cfg.PayNotifyURL, apiURL + "/v1/wechatpay/notify"},
		"WECHATPAY_MCH_CERT_SERIAL":      {cfg.PayMchCertSerial, keys.MchCertSerial},
		"WECHATPAY_MCH_PRIVATE_KEY_FILE": {cfg.PayMchKeyFile, keys.MchPrivateKeyFile},
		"WECHATPAY_APIV3_KEY":            {cfg.PayAPIv3Key, keys.APIv3Key},
		"WECHATPAY_PUBLIC_KEY_ID":        {cfg.PayPublicKeyID, keys.PublicKeyID},
		"WECHATPAY_PUBLIC_KEY_FILE":      {cfg.PayPublicKeyFile, keys.PublicKeyFile},
	}
	for name, gw := range want {
		if gw[0] != gw[1] {
			t.Errorf("%s = %q, want %q", name, gw[0], gw[1])
		}
	}
	if _, err := app.NewWechatPay(cfg); err != nil {
		t.Errorf("the WeChat Pay client refuses the wired config: %v", err)
	}
}
