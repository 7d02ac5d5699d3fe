// Package config reads the process configuration from the environment, once,
// and validates it for the mode the process runs in. The variable names are a
// contract with operators (see DESIGN.md "Configuration"): never rename them.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"ordersaga/internal/ratelimit"
	"ordersaga/internal/wxapp"
)

// Mode is what the process is started as; it decides which settings are required.
type Mode string

const (
	ModeDev     Mode = "dev"     // everything embedded; safe defaults for every setting
	ModeAPI     Mode = "api"     // HTTP API + WeChat Pay notify endpoint
	ModeWorker  Mode = "worker"  // Temporal worker: workflows and activities
	ModeMigrate Mode = "migrate" // database migrations only
)

// Config is every setting of the process. Zero values never reach the code in
// the api and worker modes: Load fills defaults and refuses missing settings.
type Config struct {
	Mode Mode

	HTTPAddr    string // HTTP_ADDR
	DatabaseURL string // DATABASE_URL; in dev, empty means the embedded database

	TemporalAddress   string // TEMPORAL_ADDRESS; in dev, empty means the embedded server
	TemporalNamespace string // TEMPORAL_NAMESPACE
	TemporalTaskQueue string // TEMPORAL_TASK_QUEUE

	WechatAppID      string // WECHAT_APPID
	WechatAppSecret  string // WECHAT_APP_SECRET
	WechatAPIBaseURL string // WECHAT_API_BASE_URL (jscode2session and the mini-program server API)

	// ShippingManaged is WECHAT_SHIPPING_MANAGED: whether the worker
	// reports shipments to WeChat and completes shipped orders on WeChat's
	// word (ShippingOn), not (ShippingOff), or as is_trade_managed says
	// (ShippingAuto).
	ShippingManaged string
	// ShippingMsgJumpPath (WECHAT_SHIPPING_MSG_JUMP_PATH) is the page
	// WeChat's shipping messages open; the worker sets it at start.
	ShippingMsgJumpPath string
	// PushToken and PushAESKey are WECHAT_PUSH_TOKEN and
	// WECHAT_PUSH_AES_KEY, the message push settings of the mini-program
	// console: with them the API serves /v1/wechat/events.
	PushToken  string
	PushAESKey string

	PayMchID         string // WECHATPAY_MCHID
	PayMchCertSerial string // WECHATPAY_MCH_CERT_SERIAL
	PayMchKeyFile    string // WECHATPAY_MCH_PRIVATE_KEY_FILE
	PayAPIv3Key      string // WECHATPAY_APIV3_KEY
	PayPublicKeyID   string // WECHATPAY_PUBLIC_KEY_ID
	PayPublicKeyFile string // WECHATPAY_PUBLIC_KEY_FILE
	PayNotifyURL     string // WECHATPAY_NOTIFY_URL
	// PayNotifyAllowHTTP is WECHATPAY_NOTIFY_ALLOW_HTTP: an http:// notify
	// URL on a host other than loopback, for the simulator only.
	PayNotifyAllowHTTP bool
	PayBaseURL         string // WECHATPAY_BASE_URL
	OrderPayTimeout    time.Duration
	JWTSecret          string // JWT_SECRET
	AdminToken         string // ADMIN_TOKEN
	LogLevel           string // LOG_LEVEL
	ShutdownTimeout    time.Duration
	OrderAutoConfirm   time.Duration
	// RefundInterval is WECHATPAY_REFUND_INTERVAL: the least time between
	// two refund requests of one payment (WeChat's minute), handed to each
	// new order's workflow.
	RefundInterval    time.Duration
	HTTPClientTimeout time.Duration
	// After-sales, handed to each new order's workflow:
	// ORDER_AFTERSALE_WINDOW (how long after completion an order takes
	// after-sales), ORDER_AFTERSALE_AUTO_APPROVE (a request the shop leaves
	// unanswered is approved), ORDER_AFTERSALE_RETURN_TIMEOUT (a return
	// the buyer never sends closes), ORDER_AFTERSALE_RECEIVE_TIMEOUT (a
	// parcel the shop never confirms is received).
	AfterSaleWindow         time.Duration
	AfterSaleAutoApprove    time.Duration
	AfterSaleReturnTimeout  time.Duration
	AfterSaleReceiveTimeout time.Duration

	// RateLimitUser (RATE_LIMIT_USER) bounds each user's mutating requests,
	// RateLimitLogin (RATE_LIMIT_LOGIN) each client address's logins; the
	// zero Rate is no limit.
	RateLimitUser  ratelimit.Rate
	RateLimitLogin ratelimit.Rate
	// TrustedProxies (HTTP_TRUSTED_PROXIES) are the addresses whose
	// X-Forwarded-For names the client; empty: the connection's peer is.
	TrustedProxies []string
}

// Var describes one environment variable: the README's configuration table and
// the docker-compose consistency test are both checked against this list.
type Var struct {
	Name     string
	Default  string // "" = no default
	Required []Mode // modes in which it must be set (after defaults)
	Help     string
}

// DefaultWechatPayBaseURL is WeChat Pay's API host; the SDK talks to it unless
// WECHATPAY_BASE_URL points elsewhere (the simulator).
const DefaultWechatPayBaseURL = "https://api.mch.weixin.qq.com"

var prod = []Mode{ModeAPI, ModeWorker}

// WECHAT_SHIPPING_MANAGED values.
const (
	ShippingAuto = "auto" // ask WeChat (is_trade_managed) once per process
	ShippingOn   = "on"   // report shipments; complete shipped orders on WeChat's word
	ShippingOff  = "off"  // neither: shipped orders complete by themselves (ORDER_AUTO_CONFIRM)
)

// Vars lists every variable the process reads, in the order of the README table.
func Vars() []Var {
	return []Var{
		{Name: "HTTP_ADDR", Default: ":8080", Help: "address the API listens on"},
		{Name: "HTTP_TRUSTED_PROXIES", Help: "comma-separated IPs or CIDRs of the proxies in front of the API whose X-Forwarded-For names the client; empty = the connecting address is the client"},
		{Name: "DATABASE_URL", Required: []Mode{ModeAPI, ModeWorker, ModeMigrate}, Help: "postgres://user:pass@host:5432/db?sslmode=disable; empty in dev = embedded database under .data/"},
		{Name: "TEMPORAL_ADDRESS", Required: prod, Help: "Temporal frontend host:port; empty in dev = embedded server"},
		{Name: "TEMPORAL_NAMESPACE", Default: "default", Help: "Temporal namespace"},
		{Name: "TEMPORAL_TASK_QUEUE", Default: "orders", Help: "task queue the order workflows run on"},
		{Name: "WECHAT_APPID", Required: prod, Help: "mini-program AppID (wx...)"},
		{Name: "WECHAT_APP_SECRET", Required: prod, Help: "mini-program AppSecret, for jscode2session (api) and the access token of the mini-program server API (worker; not needed with WECHAT_SHIPPING_MANAGED=off)"},
		{Name: "WECHAT_API_BASE_URL", Default: "https://api.weixin.qq.com", Help: "mini-program API host (jscode2session, access token, shipping management)"},
		{Name: "WECHAT_SHIPPING_MANAGED", Default: ShippingAuto, Help: "auto, on or off: report shipments to WeChat's order shipping management and complete shipped orders when WeChat says receipt was confirmed; auto asks WeChat (is_trade_managed) once per worker"},
		{Name: "WECHAT_SHIPPING_MSG_JUMP_PATH", Help: "mini-program page WeChat's shipping and receipt messages open (set_msg_jump_path at worker start); empty = leave it as it is"},
		{Name: "WECHAT_PUSH_TOKEN", Help: "message push Token of the mini-program console (3-32 letters and digits); with WECHAT_PUSH_AES_KEY the API serves /v1/wechat/events; required by api when WECHAT_SHIPPING_MANAGED=on"},
		{Name: "WECHAT_PUSH_AES_KEY", Help: "message push EncodingAESKey (43 characters, security mode); required by api when WECHAT_SHIPPING_MANAGED=on"},
		{Name: "WECHATPAY_MCHID", Required: prod, Help: "WeChat Pay merchant id"},
		{Name: "WECHATPAY_MCH_CERT_SERIAL", Required: []Mode{ModeWorker}, Help: "serial number of the merchant API certificate"},
		{Name: "WECHATPAY_MCH_PRIVATE_KEY_FILE", Required: []Mode{ModeWorker}, Help: "merchant API private key, PKCS#8 PEM (apiclient_key.pem)"},
		{Name: "WECHATPAY_APIV3_KEY", Required: prod, Help: "APIv3 key, exactly 32 bytes (decrypts notifies)"},
		{Name: "WECHATPAY_PUBLIC_KEY_ID", Required: prod, Help: "WeChat Pay public key id (PUB_KEY_ID_...)"},
		{Name: "WECHATPAY_PUBLIC_KEY_FILE", Required: prod, Help: "WeChat Pay public key, PKIX PEM (verifies answers and notifies)"},
		{Name: "WECHATPAY_NOTIFY_URL", Required: []Mode{ModeWorker}, Help: "public https URL of POST /v1/wechatpay/notify; http only on a loopback host or with WECHATPAY_NOTIFY_ALLOW_HTTP"},
		{Name: "WECHATPAY_NOTIFY_ALLOW_HTTP", Default: "false", Help: "true lets WECHATPAY_NOTIFY_URL be http:// on any host: for the simulator only (WeChat refuses http)"},
		{Name: "WECHATPAY_BASE_URL", Default: DefaultWechatPayBaseURL, Help: "WeChat Pay API host; point it at the simulator to test"},
		{Name: "WECHATPAY_REFUND_INTERVAL", Default: "1m", Help: "least time between two refund requests of one payment (WeChat answers FREQUENCY_LIMITED within a minute); an order's refunds of some items are asked this far apart"},
		{Name: "ORDER_PAY_TIMEOUT", Default: "15m", Help: "how long an order waits for payment before it is closed"},
		{Name: "ORDER_AUTO_CONFIRM", Default: "168h", Help: "how long after shipping an order completes by itself"},
		{Name: "ORDER_AFTERSALE_WINDOW", Default: "168h", Help: "how long after completion an order takes after-sales (its workflow stays open that long)"},
		{Name: "ORDER_AFTERSALE_AUTO_APPROVE", Default: "72h", Help: "an after-sale the shop leaves unanswered this long is approved by itself"},
		{Name: "ORDER_AFTERSALE_RETURN_TIMEOUT", Default: "168h", Help: "an approved return the buyer does not send back this long is closed"},
		{Name: "ORDER_AFTERSALE_RECEIVE_TIMEOUT", Default: "240h", Help: "a returned parcel the shop does not confirm this long is received by itself (and refunded)"},
		{Name: "JWT_SECRET", Required: []Mode{ModeAPI}, Help: "HMAC key for login tokens, at least 32 bytes"},
		{Name: "ADMIN_TOKEN", Required: []Mode{ModeAPI}, Help: "bearer token of the admin API, at least 16 characters"},
		{Name: "RATE_LIMIT_USER", Default: "60/1m", Help: "each user's create, pay, cancel, refund and confirm requests, N/DURATION (a burst of N, refilled over DURATION), per API replica; 0 = no limit"},
		{Name: "RATE_LIMIT_LOGIN", Default: "30/1m", Help: "logins per client address, N/DURATION, per API replica; 0 = no limit"},
		{Name: "LOG_LEVEL", Default: "info", Help: "debug, info, warn or error"},
		{Name: "SHUTDOWN_TIMEOUT", Default: "20s", Help: "how long a stopping process waits for in-flight work"},
	}
}

// Load reads the environment through getenv (os.Getenv in main, a map in tests)
// and validates it for mode. Every problem is reported, each naming its variable.
func Load(mode Mode, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	val := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, v := range Vars() {
			if v.Name == name {
				return v.Default
			}
		}
		return ""
	}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	dur := func(name string) time.Duration {
		s := val(name)
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			bad(name, "%q is not a positive duration such as 15m or 30s", s)
			return 0
		}
		return d
	}

	c := Config{
		Mode:                    mode,
		HTTPAddr:                val("HTTP_ADDR"),
		DatabaseURL:             val("DATABASE_URL"),
		TemporalAddress:         val("TEMPORAL_ADDRESS"),
		TemporalNamespace:       val("TEMPORAL_NAMESPACE"),
		TemporalTaskQueue:       val("TEMPORAL_TASK_QUEUE"),
		WechatAppID:             val("WECHAT_APPID"),
		WechatAppSecret:         val("WECHAT_APP_SECRET"),
		WechatAPIBaseURL:        val("WECHAT_API_BASE_URL"),
		ShippingManaged:         strings.ToLower(val("WECHAT_SHIPPING_MANAGED")),
		PushToken:               val("WECHAT_PUSH_TOKEN"),
		PushAESKey:              val("WECHAT_PUSH_AES_KEY"),
		ShippingMsgJumpPath:     val("WECHAT_SHIPPING_MSG_JUMP_PATH"),
		PayMchID:                val("WECHATPAY_MCHID"),
		PayMchCertSerial:        val("WECHATPAY_MCH_CERT_SERIAL"),
		PayMchKeyFile:           val("WECHATPAY_MCH_PRIVATE_KEY_FILE"),
		PayAPIv3Key:             val("WECHATPAY_APIV3_KEY"),
		PayPublicKeyID:          val("WECHATPAY_PUBLIC_KEY_ID"),
		PayPublicKeyFile:        val("WECHATPAY_PUBLIC_KEY_FILE"),
		PayNotifyURL:            val("WECHATPAY_NOTIFY_URL"),
		PayBaseURL:              val("WECHATPAY_BASE_URL"),
		JWTSecret:               val("JWT_SECRET"),
		AdminToken:              val("ADMIN_TOKEN"),
		LogLevel:                strings.ToLower(val("LOG_LEVEL")),
		OrderPayTimeout:         dur("ORDER_PAY_TIMEOUT"),
		OrderAutoConfirm:        dur("ORDER_AUTO_CONFIRM"),
		RefundInterval:          dur("WECHATPAY_REFUND_INTERVAL"),
		AfterSaleWindow:         dur("ORDER_AFTERSALE_WINDOW"),
		AfterSaleAutoApprove:    dur("ORDER_AFTERSALE_AUTO_APPROVE"),
		AfterSaleReturnTimeout:  dur("ORDER_AFTERSALE_RETURN_TIMEOUT"),
		AfterSaleReceiveTimeout: dur("ORDER_AFTERSALE_RECEIVE_TIMEOUT"),
		ShutdownTimeout:         dur("SHUTDOWN_TIMEOUT"),
		HTTPClientTimeout:       10 * time.Second,
	}
	c.PayNotifyAllowHTTP = boolean("WECHATPAY_NOTIFY_ALLOW_HTTP", val, bad)
	c.RateLimitUser = rate("RATE_LIMIT_USER", val, bad)
	c.RateLimitLogin = rate("RATE_LIMIT_LOGIN", val, bad)
	c.TrustedProxies = proxies("HTTP_TRUSTED_PROXIES", val, bad)

	for _, v := range Vars() {
		if v.Name == "WECHAT_APP_SECRET" && mode == ModeWorker && c.ShippingManaged == ShippingOff {
			continue // the worker calls no mini-program API then
		}
		if slices.Contains(v.Required, mode) && val(v.Name) == "" {
			bad(v.Name, "required in %s mode but not set (%s)", mode, v.Help)
		}
	}
	if mode == ModeMigrate {
		// migrate needs the database and nothing else.
		if c.DatabaseURL != "" {
			checkDatabaseURL(c.DatabaseURL, bad)
		}
		return c, errors.Join(errs...)
	}

	checkShipping(&c, mode, bad)
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("HTTP_ADDR", "%q is not host:port (for example :8080)", c.HTTPAddr)
	}
	if c.DatabaseURL != "" {
		checkDatabaseURL(c.DatabaseURL, bad)
	}
	if c.TemporalAddress != "" {
		if _, _, err := net.SplitHostPort(c.TemporalAddress); err != nil {
			bad("TEMPORAL_ADDRESS", "%q is not host:port (for example temporal:7233)", c.TemporalAddress)
		}
	}
	for name, u := range map[string]string{
		"WECHAT_API_BASE_URL":  c.WechatAPIBaseURL,
		"WECHATPAY_BASE_URL":   c.PayBaseURL,
		"WECHATPAY_NOTIFY_URL": c.PayNotifyURL,
	} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad(name, "%q is not an http(s) URL", u)
		}
	}
	if c.PayNotifyURL != "" && (mode == ModeAPI || mode == ModeWorker) {
		checkNotifyURL(c.PayNotifyURL, c.PayNotifyAllowHTTP, bad)
	}
	if c.PayAPIv3Key != "" && len(c.PayAPIv3Key) != 32 {
		bad("WECHATPAY_APIV3_KEY", "must be exactly 32 bytes, got %d", len(c.PayAPIv3Key))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		bad("JWT_SECRET", "must be at least 32 bytes, got %d", len(c.JWTSecret))
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("ADMIN_TOKEN", "must be at least 16 characters, got %d", len(c.AdminToken))
	}
	for name, path := range map[string]string{
		"WECHATPAY_MCH_PRIVATE_KEY_FILE": c.PayMchKeyFile,
		"WECHATPAY_PUBLIC_KEY_FILE":      c.PayPublicKeyFile,
	} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			bad(name, "cannot read %q: %v", path, errors.Unwrap(err))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return c, errors.Join(errs...)
}

// checkShipping validates shipping management and its message push: the
// push settings go together, well formed, and the API needs them when
// shipping management is on (WeChat's settlement events arrive there).
func checkShipping(c *Config, mode Mode, bad func(string, string, ...any)) {
	switch c.ShippingManaged {
	case ShippingAuto, ShippingOn, ShippingOff:
	default:
		bad("WECHAT_SHIPPING_MANAGED", "%q is not one of auto, on, off", c.ShippingManaged)
	}
	if c.PushToken != "" {
		if problem := wxapp.CheckPushToken(c.PushToken); problem != "" {
			bad("WECHAT_PUSH_TOKEN", "%s", problem)
		}
	}
	if c.PushAESKey != "" {
		if problem := wxapp.CheckAESKey(c.PushAESKey); problem != "" {
			bad("WECHAT_PUSH_AES_KEY", "%s", problem)
		}
	}
	switch {
	case c.PushToken != "" && c.PushAESKey == "":
		bad("WECHAT_PUSH_AES_KEY", "required with WECHAT_PUSH_TOKEN (the console gives both)")
	case c.PushAESKey != "" && c.PushToken == "":
		bad("WECHAT_PUSH_TOKEN", "required with WECHAT_PUSH_AES_KEY (the console gives both)")
	case mode == ModeAPI && c.ShippingManaged == ShippingOn && c.PushToken == "" && c.PushAESKey == "":
		bad("WECHAT_PUSH_TOKEN", "required in api mode when WECHAT_SHIPPING_MANAGED=on: WeChat's settlement events arrive at /v1/wechat/events (and WECHAT_PUSH_AES_KEY with it)")
	}
	if p := c.ShippingMsgJumpPath; p != "" && (strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\n")) {
		bad("WECHAT_SHIPPING_MSG_JUMP_PATH", "%q is not a mini-program page path such as pages/orders/detail", p)
	}
}

// PushEnabled reports whether the API serves WeChat's message push.
func (c Config) PushEnabled() bool { return c.PushToken != "" && c.PushAESKey != "" }

func checkDatabaseURL(s string, bad func(string, string, ...any)) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		bad("DATABASE_URL", "must be a postgres:// URL with a host, e.g. postgres://ordersaga:secret@db:5432/ordersaga?sslmode=disable")
	}
}

// checkNotifyURL: WeChat Pay posts its callbacks only to https URLs. http is
// taken on a loopback host (nothing but this machine can reach it, so only a
// simulator on it calls) or when WECHATPAY_NOTIFY_ALLOW_HTTP says the
// callbacks come from the simulator over a private network.
func checkNotifyURL(s string, allowHTTP bool, bad func(string, string, ...any)) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || allowHTTP {
		return // the scheme check above reports what is not http(s)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return
	}
	bad("WECHATPAY_NOTIFY_URL", "%q is http: WeChat Pay calls https URLs only (http is taken on a loopback host, or with WECHATPAY_NOTIFY_ALLOW_HTTP=true for the simulator)", s)
}

func boolean(name string, val func(string) string, bad func(string, string, ...any)) bool {
	v, err := strconv.ParseBool(val(name))
	if err != nil {
		bad(name, "%q is not true or false", val(name))
	}
	return v
}

func rate(name string, val func(string) string, bad func(string, string, ...any)) ratelimit.Rate {
	r, err := ratelimit.Parse(val(name))
	if err != nil {
		bad(name, "%v", err)
	}
	return r
}

// proxies reads a comma-separated list of IPs and CIDRs.
func proxies(name string, val func(string) string, bad func(string, string, ...any)) []string {
	var out []string
	for _, p := range strings.Split(val(name), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			bad(name, "%q is not an IP address or CIDR (10.0.0.0/8)", p)
			continue
		}
		out = append(out, p)
	}
	return out
}

// Environ is the environment of a process of the stack that a harness starts
// (`ordersaga chaos`, `ordersaga cluster`): base (the harness's own) without
// any variable of Vars() and without drop, then extra, then settings — every
// one of them a variable of Vars(), so that the process is configured
// exactly as production configures it.
func Environ(base, extra []string, settings map[string]string, drop ...string) ([]string, error) {
	known := map[string]bool{}
	for _, v := range Vars() {
		known[v.Name] = true
	}
	var env []string
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if known[name] || slices.Contains(drop, name) {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, extra...)
	names := make([]string, 0, len(settings))
	for k := range settings {
		if !known[k] {
			return nil, fmt.Errorf("%s is not a configuration variable (config.Vars)", k)
		}
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		env = append(env, k+"="+settings[k])
	}
	return env, nil
}
