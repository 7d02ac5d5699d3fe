package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"golang.org/x/sync/errgroup"

	"ordersaga/internal/config"
	"ordersaga/internal/demo"
	"ordersaga/internal/devserver"
	"ordersaga/internal/paysim"
	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// DevOptions are the knobs of `ordersaga dev`; every port can be moved.
type DevOptions struct {
	DataDir      string // .data
	APIAddr      string // 127.0.0.1:8080 unless HTTP_ADDR says otherwise
	TemporalPort int    // 7233
	UIPort       int    // 8233
	PaySimPort   int    // 8091
	Out          io.Writer
}

// DemoProducts are put in an empty catalogue so there is something to buy.
func DemoProducts() []store.Product {
	return []store.Product{
		{Name: "Yunnan coffee beans 500g", PriceFen: 8800, Stock: 100},
		{Name: "Longjing green tea 250g", PriceFen: 12800, Stock: 50},
		{Name: "Ceramic pour-over dripper", PriceFen: 5900, Stock: 20},
		{Name: "Limited edition mug", PriceFen: 3900, Stock: 3},
	}
}

// RunDev runs the whole stack in this process — Temporal server and Web UI,
// database, worker, API — until ctx is cancelled, then stops it in reverse.
func RunDev(ctx context.Context, cfg config.Config, opts DevOptions, log *slog.Logger) error {
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir %s: %w", opts.DataDir, err)
	}
	defer TuneGC()()
	// Fail on a taken port before the slow parts start.
	apiLn, err := net.Listen("tcp", opts.APIAddr)
	if err != nil {
		return fmt.Errorf("API port %s is taken (set HTTP_ADDR or -api-addr to move it): %w", opts.APIAddr, err)
	}
	defer apiLn.Close()

	simLn, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.PaySimPort)))
	if err != nil {
		return fmt.Errorf("WeChat Pay simulator port %d is taken (use -paysim-port to move it): %w", opts.PaySimPort, err)
	}
	defer simLn.Close()
	simURL := "http://" + simLn.Addr().String()

	keys, err := paysim.EnsureDevKeys(filepath.Join(opts.DataDir, "keys"))
	if err != nil {
		return err
	}
	if err := fillDevDefaults(&cfg, opts.DataDir, keys, simURL, "http://"+apiLn.Addr().String()); err != nil {
		return err
	}
	simOpts := SimShop{AppID: cfg.WechatAppID, AppSecret: cfg.WechatAppSecret, MchID: cfg.PayMchID,
		PushToken: cfg.PushToken, PushAESKey: cfg.PushAESKey}.SimOptions(keys)
	simOpts.PushURL = EventsURL("http://" + apiLn.Addr().String())
	simOpts.Logger = log.With("component", "paysim")
	// `ordersaga reconcile -date <today>` works at once in dev.
	simOpts.BillsImmediate = true
	// WeChat's minute between two refunds of a payment, as the orders keep it.
	simOpts.RefundInterval = cfg.RefundInterval
	sim := paysim.New(simOpts)
	defer sim.Close()

	log.Info("starting embedded Temporal server", "dir", filepath.Join(opts.DataDir, "temporal"))
	ts, err := devserver.Start(ctx, devserver.Options{
		Dir:              filepath.Join(opts.DataDir, "temporal"),
		Namespace:        cfg.TemporalNamespace,
		FrontendPort:     opts.TemporalPort,
		UIPort:           opts.UIPort,
		SearchAttributes: workflows.SearchAttributes(),
		Logger:           log.With("component", "temporal-server"),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := ts.Stop(); err != nil {
			log.Warn("temporal server stop", "error", err)
		}
	}()
	cfg.TemporalAddress = ts.FrontendAddress()

	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		dbURL = "sqlite:" + filepath.Join(opts.DataDir, "shop.db")
	}
	st, err := openStore(ctx, dbURL, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.SeedProducts(ctx, DemoProducts()); err != nil {
		return fmt.Errorf("seed demo products: %w", err)
	}

	// One process, one /metrics: the API's, the worker's WeChat calls, the
	// Temporal SDK's and the workflows' own counters. (Dial connects without
	// gRPC compression: the server is in this process.)
	reg, sdkMetrics := NewMetrics()
	DeclareWorkerMetrics(sdkMetrics, cfg.TemporalNamespace, cfg.TemporalTaskQueue)
	tc, err := ts.Dial(ctx, client.Options{
		Namespace:      cfg.TemporalNamespace,
		Logger:         sdklog.NewStructuredLogger(log.With("component", "temporal-sdk")),
		MetricsHandler: sdkMetrics.Handler(),
	})
	if err != nil {
		return fmt.Errorf("dial embedded temporal: %w", err)
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
	defer w.Stop()
	ship.Start(ctx, cfg, log)
	go keepReconcileSchedule(ctx, tc, cfg.TemporalTaskQueue, log)

	apiHandler, err := NewAPIHandler(cfg, st, tc, reg, log)
	if err != nil {
		return err
	}
	// The demo page (and its proxy to the simulator's control API) exists in
	// dev only; `ordersaga api` serves the bare API handler.
	handler, err := demo.NewHandler(apiHandler, simURL, ts.UIURL(), cfg.TemporalNamespace, demo.WithAdminToken(cfg.AdminToken))
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveListener(gctx, apiLn, handler, cfg.ShutdownTimeout, log) })
	g.Go(func() error { return serveListener(gctx, simLn, sim.Handler(), cfg.ShutdownTimeout, log) })
	printDevBanner(opts.Out, cfg, opts, ts.UIURL(), "http://"+apiLn.Addr().String(), simURL)
	if err := g.Wait(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("shutting down")
	return nil
}

// Dev identities of the shop at the simulator.
const (
	devAppID     = "wx0000000000dev001"
	devAppSecret = "dev-app-secret"
	devMchID     = "1900000109"
)

// fillDevDefaults gives dev the settings production must be given: the
// simulator's address and keys (generated once under the data dir, so
// tokens and keys survive a restart) and local secrets. A variable set in the
// environment wins.
func fillDevDefaults(cfg *config.Config, dataDir string, keys paysim.Keys, simURL, apiURL string) error {
	pushToken, pushKey, err := PersistentPushSettings(filepath.Join(dataDir, "keys"))
	if err != nil {
		return err
	}
	UseSimulator(cfg, SimShop{AppID: devAppID, AppSecret: devAppSecret, MchID: devMchID,
		PushToken: pushToken, PushAESKey: pushKey}, keys, simURL, apiURL)
	// Dev plays a shop under WeChat's shipping management, as most are:
	// shipped orders are reported to the simulator and complete when the
	// buyer confirms there (WECHAT_SHIPPING_MANAGED=off says otherwise).
	if cfg.ShippingManaged == config.ShippingAuto || cfg.ShippingManaged == "" {
		cfg.ShippingManaged = config.ShippingOn
	}
	if cfg.JWTSecret == "" {
		s, err := PersistentSecret(filepath.Join(dataDir, "keys", "jwt_secret"))
		if err != nil {
			return err
		}
		cfg.JWTSecret = s
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = DevAdminToken
	}
	return nil
}

// DevAdminToken is the ADMIN_TOKEN of the stacks that run on one machine
// (`ordersaga dev`, `ordersaga cluster`): the README's walk-through uses it.
const DevAdminToken = "dev-admin-token-not-for-production"

// PersistentPushSettings returns the message push Token (32 characters)
// and EncodingAESKey (43) of a simulated mini-program console, kept in
// keysDir: secrets of the console, made once, so that a restart of a local
// stack (`ordersaga dev`, `ordersaga cluster`) takes the simulator's
// retried events.
func PersistentPushSettings(keysDir string) (token, aesKey string, err error) {
	t, err := PersistentSecret(filepath.Join(keysDir, "push_token"))
	if err != nil {
		return "", "", err
	}
	k, err := PersistentSecret(filepath.Join(keysDir, "push_aes_key"))
	if err != nil {
		return "", "", err
	}
	// 64 hex digits: letters and digits for the Token, base64 digits for
	// the key.
	return t[:32], k[:43], nil
}

// PersistentSecret returns the 32-byte hex secret kept in path, generating
// it on first use, so that tokens signed with it survive a restart.
func PersistentSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	s := hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

func printDevBanner(out io.Writer, cfg config.Config, opts DevOptions, uiURL, apiURL, simURL string) {
	fmt.Fprintf(out, `
ordersaga dev is running (Ctrl-C stops everything; data stays in %s)

  API              %s
  Demo page        %[2]s/demo/  (the mini-program in a browser: log in, order, pay, refund)
  Temporal Web UI  %s/namespaces/%s/workflows
  Temporal gRPC    %s
  Admin token      %s
  WeChat Pay sim   %s  (stands in for WeChat Pay, jscode2session and shipping management)

Try it (a mini-program journey with curl; README.md explains each step):

  API=%[2]s SIM=%[7]s
  TOKEN=$(curl -s -XPOST $API/v1/auth/login -d '{"code":"my-phone"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  curl -s $API/v1/products
  ORDER=$(curl -s -XPOST $API/v1/orders -H "Authorization: Bearer $TOKEN" -d '{"items":[{"product_id":1,"quantity":2}]}' | grep -o '"order_no":"[^"]*"' | cut -d'"' -f4)
  curl -s -XPOST $API/v1/orders/$ORDER/pay -H "Authorization: Bearer $TOKEN"
  curl -s -XPOST $SIM/sim/transactions/$ORDER/pay >/dev/null   # the payer pays; WeChat's notify follows
  curl -s "$API/v1/orders/$ORDER?sync=1" -H "Authorization: Bearer $TOKEN"

Ship it as the shop, see WeChat's view, confirm receipt as the buyer in WeChat (→ COMPLETED):

  curl -s -XPOST $API/v1/admin/orders/$ORDER/ship -H "Authorization: Bearer %[6]s" -d '{"logistics_type":"express","packages":[{"express_company":"SF","tracking_no":"SF1400000000001"}]}'
  curl -s $SIM/sim/shipping/$ORDER            # order_state 2: WeChat has the shipment
  curl -s -XPOST $SIM/sim/shipping/$ORDER/confirm-receipt >/dev/null
  curl -s $API/v1/orders/$ORDER -H "Authorization: Bearer $TOKEN"   # COMPLETED, on WeChat's settlement event

Then open the Web UI (%[3]s) and filter: OrderNo="<order_no>" or OrderStatus="PAID"
Unpaid orders close after ORDER_PAY_TIMEOUT (%[8]s).

Reconcile today's orders with WeChat Pay's bill (served at once in dev; a bill date is a
day of Beijing time, which may not be your date):
  go run . reconcile -date $(TZ=Asia/Shanghai date +%%F) -api %[2]s -token %[6]s
`, opts.DataDir, apiURL, uiURL, cfg.TemporalNamespace, cfg.TemporalAddress, cfg.AdminToken, simURL, cfg.OrderPayTimeout)
}

// embeddedGCPercent is the garbage collector's target when the Temporal
// server runs in this process (dev, bench): it allocates for every request
// and every workflow task, and at Go's default (100) the collector took ~10 %
// of the CPU under load. At 200 the heap may grow to three times the live
// data instead of two — a few hundred MB more at most for a dev stack — and
// `ordersaga bench` measured 6 % more no-op orders per second.
const embeddedGCPercent = 200

// TuneGC sets the collector's target for a process running the embedded
// server, unless GOGC says otherwise, and returns what restores it.
func TuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(embeddedGCPercent)
	return func() { debug.SetGCPercent(old) }
}
