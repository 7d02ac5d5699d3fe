package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"ordersaga/internal/app"
	"ordersaga/internal/paysim"
	"ordersaga/internal/pgserver"
	"ordersaga/internal/ports"
	"ordersaga/internal/store"
	"ordersaga/internal/supervise"
	"ordersaga/workflows"
)

// Identities of the shop at the simulator in a local cluster.
const (
	clusterAppID     = "wx000000000cluster1"
	clusterAppSecret = "cluster-app-secret"
	clusterMchID     = "1900000555"
	shopDatabase     = "ordersaga" // as docker-compose.yml names it
)

// StackOptions configure `ordersaga cluster`. Zero values take the defaults
// of DefaultStackOptions where one is given.
type StackOptions struct {
	// Dir keeps the databases, keys, the services' environments and logs:
	// a second start on it reuses (and upgrades) what is there.
	Dir string
	// TemporalBin holds temporal-server and temporal-sql-tool ("" = built
	// by the go command from go.mod's tool directive).
	TemporalBin string
	PGBin       string // directory of initdb and postgres ("" = look for them)
	PGPort      int    // 0 = any free port

	// Public ports. The API's is the balancer in front of the replicas.
	APIPort, FrontendPort, UIPort, PaySimPort int

	APIs, Workers int // replicas of `ordersaga api` and `ordersaga worker`
	HistoryHosts  int // temporal-server processes of the history service
	HistoryShards int // of a new Temporal database (fixed afterwards)

	Spawn Spawn // how to start api, worker, migrate (required)
	// Logf receives progress lines (nil = none).
	Logf func(format string, args ...any)
}

// DefaultStackOptions are `ordersaga cluster` without flags: docker-compose's
// ports, two replicas of each.
func DefaultStackOptions() StackOptions {
	return StackOptions{
		Dir:           filepath.Join(".data", "cluster"),
		APIPort:       8080,
		FrontendPort:  7233,
		UIPort:        8233,
		PaySimPort:    8091,
		APIs:          2,
		Workers:       2,
		HistoryHosts:  DefaultHistoryHosts,
		HistoryShards: DefaultHistoryShards,
	}
}

// Stack is a running local cluster.
type Stack struct {
	opts     StackOptions
	PG       *pgserver.Server
	Temporal *Temporal
	Sim      *paysim.Sim
	// Shop processes.
	APIs, Workers []*ShopProcess
	Balancer      *Balancer
	// Addresses.
	APIURL, SimURL string
	AdminToken     string
	Settings       map[string]string // the api and worker settings but HTTP_ADDR

	undo []func()
}

// ShopProcess is a replica of `ordersaga api` or `ordersaga worker`.
type ShopProcess struct {
	Name    string
	Role    string
	Addr    string // its HTTP_ADDR
	Healthz string
	proc    *supervise.Process
}

// LogPath is the process's log.
func (p *ShopProcess) LogPath() string { return p.proc.LogPath }

// PID is its current process id.
func (p *ShopProcess) PID() int { return p.proc.PID() }

func (s *Stack) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// StartStack brings the local cluster up: PostgreSQL, the Temporal services
// and the Web UI, the simulator, migrate, the worker and API replicas behind
// the balancer. A port that is taken, or a process that does not come up,
// is named (with its log); whatever was started is then stopped again.
func StartStack(ctx context.Context, o StackOptions) (_ *Stack, err error) {
	d := DefaultStackOptions()
	if o.Dir == "" {
		o.Dir = d.Dir
	}
	if o.APIs <= 0 {
		o.APIs = d.APIs
	}
	if o.Workers <= 0 {
		o.Workers = d.Workers
	}
	if o.HistoryHosts <= 0 {
		o.HistoryHosts = d.HistoryHosts
	}
	if o.Spawn == nil {
		return nil, errors.New("cluster: StackOptions.Spawn is required (how to start api, worker and migrate)")
	}
	s := &Stack{opts: o, AdminToken: app.DevAdminToken}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	began := time.Now()
	// Every public port before anything is made or started: a taken one is
	// named.
	const ip = "127.0.0.1"
	apiLn, err := listen(ip, o.APIPort, "API (balancer)", "-api-port")
	if err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { apiLn.Close() })
	simLn, err := listen(ip, o.PaySimPort, "WeChat Pay simulator", "-paysim-port")
	if err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { simLn.Close() })
	if o.FrontendPort, err = ports.Claim(ip, portOrAny(o.FrontendPort), "Temporal frontend"); err != nil {
		return nil, fmt.Errorf("cluster: %w (-temporal-port moves it)", err)
	}
	if o.UIPort != 0 {
		if o.UIPort, err = ports.Claim(ip, o.UIPort, "Temporal Web UI"); err != nil {
			return nil, fmt.Errorf("cluster: %w (-ui-port moves it)", err)
		}
	}
	// PostgreSQL binds its own port later, after the Temporal binaries are
	// found (minutes on a cold build cache): a taken one is named now.
	if o.PGPort > 0 {
		if _, err := ports.Claim(ip, o.PGPort, "PostgreSQL"); err != nil {
			return nil, fmt.Errorf("cluster: %w (-pg-port moves it)", err)
		}
	}
	s.APIURL, s.SimURL = "http://"+apiLn.Addr().String(), "http://"+simLn.Addr().String()

	// Only now the directory: a refused start leaves nothing behind.
	logs := filepath.Join(o.Dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	// PostgreSQL runs as another user when this is root: it must get
	// through to its own directory.
	if err := os.Chmod(o.Dir, 0o711); err != nil {
		return nil, err
	}

	t0 := time.Now()
	tools, err := FindTools(ctx, o.TemporalBin)
	if err != nil {
		return nil, err
	}
	s.logf("Temporal server and schema tool %s ready in %.1fs: %s, %s", PinnedServerVersion(), time.Since(t0).Seconds(), tools.Server, tools.SQLTool)

	if s.PG, err = pgserver.Start(ctx, pgserver.Options{
		Bin: o.PGBin, Dir: filepath.Join(o.Dir, "pg"), Port: o.PGPort, Durable: true,
		// Five Temporal processes (30 connections each at most) and the
		// shop's replicas (20 each).
		MaxConnections: 400,
	}); err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { _ = s.PG.Stop() })
	s.logf("PostgreSQL %s on 127.0.0.1:%d (data %s)", s.PG.Bin(), s.PG.Port(), filepath.Join(o.Dir, "pg"))
	if err := s.PG.CreateDatabase(ctx, shopDatabase); err != nil {
		return nil, err
	}

	if s.Temporal, err = StartTemporal(ctx, TemporalOptions{
		Tools: tools, PG: s.PG, Dir: filepath.Join(o.Dir, "temporal"), Logs: logs,
		FrontendPort: o.FrontendPort, UIPort: o.UIPort,
		HistoryHosts: o.HistoryHosts, HistoryShards: o.HistoryShards,
		SearchAttributes: workflows.SearchAttributes(),
		Logf:             s.logf,
	}); err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { _ = s.Temporal.Stop() })

	// The simulator, in this process.
	keys, err := paysim.EnsureDevKeys(filepath.Join(o.Dir, "keys"))
	if err != nil {
		return nil, err
	}
	simLog, err := os.OpenFile(filepath.Join(logs, "paysim.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { simLog.Close() })
	// WeChat's shipping management as compose's demo plays it: the
	// simulator pushes its sealed shipping events to the balancer, as WeChat
	// to a deployment's public address.
	pushToken, pushKey, err := app.PersistentPushSettings(filepath.Join(o.Dir, "keys"))
	if err != nil {
		return nil, err
	}
	simOpts := app.SimShop{AppID: clusterAppID, AppSecret: clusterAppSecret, MchID: clusterMchID,
		PushToken: pushToken, PushAESKey: pushKey}.SimOptions(keys)
	simOpts.PushURL = app.EventsURL(s.APIURL)
	simOpts.Logger = slog.New(slog.NewTextHandler(simLog, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s.Sim = paysim.New(simOpts)
	simSrv := &http.Server{Handler: s.Sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = simSrv.Serve(simLn) }()
	s.undo = append(s.undo, func() {
		s.Sim.Close() // stops notify retries first
		_ = simSrv.Close()
	})

	// The shop's settings: the variables of the README, nothing else.
	jwt, err := app.PersistentSecret(filepath.Join(o.Dir, "keys", "jwt_secret"))
	if err != nil {
		return nil, err
	}
	s.Settings = map[string]string{
		"DATABASE_URL":        s.PG.URL(shopDatabase),
		"TEMPORAL_ADDRESS":    s.Temporal.FrontendAddress(),
		"TEMPORAL_NAMESPACE":  s.Temporal.Namespace(),
		"WECHAT_APPID":        clusterAppID,
		"WECHAT_APP_SECRET":   clusterAppSecret,
		"WECHAT_API_BASE_URL": s.SimURL,
		"WECHATPAY_MCHID":     clusterMchID,
		"JWT_SECRET":          jwt,
		"ADMIN_TOKEN":         s.AdminToken,
		// As deploy/demo.env: shipped orders are reported to the simulator
		// (the worker's access token is WECHAT_APP_SECRET's) and complete on
		// its settlement event, which the api replicas open with these.
		"WECHAT_SHIPPING_MANAGED": "on",
		"WECHAT_PUSH_TOKEN":       pushToken,
		"WECHAT_PUSH_AES_KEY":     pushKey,
	}
	// WeChat posts its notifies to the balancer, as to a production
	// deployment's public address.
	for k, v := range keys.Env(s.SimURL, s.APIURL+"/v1/wechatpay/notify") {
		s.Settings[k] = v
	}
	// What a shell may tune, as for `ordersaga dev`.
	for _, k := range []string{"ORDER_PAY_TIMEOUT", "ORDER_AUTO_CONFIRM", "LOG_LEVEL", "SHUTDOWN_TIMEOUT", "TEMPORAL_TASK_QUEUE", "WECHAT_SHIPPING_MANAGED"} {
		if v := os.Getenv(k); v != "" {
			s.Settings[k] = v
		}
	}
	t0 = time.Now()
	if err := o.Spawn.RunOnce(ctx, RoleMigrate, s.Settings, logs); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	st, err := store.Open(ctx, s.PG.URL(shopDatabase))
	if err != nil {
		return nil, err
	}
	err = st.SeedProducts(ctx, app.DemoProducts())
	st.Close()
	if err != nil {
		return nil, fmt.Errorf("cluster: seed demo products: %w", err)
	}
	s.logf("migrated and seeded in %.1fs", time.Since(t0).Seconds())

	t0 = time.Now()
	var replicas []string
	for i := range o.Workers {
		p, err := s.shopProcess(fmt.Sprintf("worker-%d", i+1), RoleShopWorker, logs)
		if err != nil {
			return nil, err
		}
		s.Workers = append(s.Workers, p)
	}
	for i := range o.APIs {
		p, err := s.shopProcess(fmt.Sprintf("api-%d", i+1), RoleAPI, logs)
		if err != nil {
			return nil, err
		}
		s.APIs = append(s.APIs, p)
		replicas = append(replicas, "http://"+p.Addr)
	}
	s.undo = append(s.undo, func() {
		var wg sync.WaitGroup
		for _, p := range append(append([]*ShopProcess{}, s.APIs...), s.Workers...) {
			wg.Go(func() { p.proc.Shutdown(30 * time.Second) })
		}
		wg.Wait()
	})
	for _, p := range append(append([]*ShopProcess{}, s.Workers...), s.APIs...) {
		if err := p.proc.Start(); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	for _, p := range append(append([]*ShopProcess{}, s.Workers...), s.APIs...) {
		if err := supervise.WaitHTTP(ctx, p.Name, p.Healthz, p.LogPath(), 2*time.Minute); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	if s.Balancer, err = NewBalancer(replicas); err != nil {
		return nil, err
	}
	apiSrv := &http.Server{Handler: s.Balancer, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = apiSrv.Serve(apiLn) }()
	s.undo = append(s.undo, func() { _ = apiSrv.Close() })
	s.logf("%d api and %d worker replicas ready in %.1fs; the whole cluster in %.1fs",
		o.APIs, o.Workers, time.Since(t0).Seconds(), time.Since(began).Seconds())
	return s, nil
}

// listen binds a public port (0 = any free one); a taken one is named,
// with the flag that moves it.
func listen(ip string, port int, what, flag string) (net.Listener, error) {
	if port <= 0 {
		port = 0
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("cluster: %s port %d on %s is taken (%s moves it): %w", what, port, ip, flag, err)
	}
	return l, nil
}

// shopProcess prepares a replica on a free port, supervised as compose's
// `restart: unless-stopped` would.
func (s *Stack) shopProcess(name, role, logs string) (*ShopProcess, error) {
	port, err := ports.Free("127.0.0.1")
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	settings := map[string]string{"HTTP_ADDR": addr}
	for k, v := range s.Settings {
		settings[k] = v
	}
	p := &ShopProcess{Name: name, Role: role, Addr: addr, Healthz: "http://" + addr + "/readyz"}
	p.proc = &supervise.Process{
		Name:         name,
		LogPath:      filepath.Join(logs, name+".log"),
		Command:      func() (*exec.Cmd, error) { return s.opts.Spawn.Command(role, settings) },
		Restart:      true,
		RestartDelay: time.Second,
		OnExit: func(err error) {
			s.logf("%s exited by itself (%v); starting it again (log: %s)", name, err, filepath.Join(logs, name+".log"))
		},
	}
	return p, nil
}

// Stop stops everything the stack started, in reverse order.
func (s *Stack) Stop() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
	s.undo = nil
}

// PrintBanner writes the addresses and what to try.
func (s *Stack) PrintBanner(w io.Writer) {
	t := s.Temporal
	var procs []string
	for _, sv := range t.Services() {
		procs = append(procs, fmt.Sprintf("    temporal %-10s %s  pid %-7d log %s", sv.Name, sv.Address(), sv.PID(), sv.LogPath()))
	}
	for _, p := range append(append([]*ShopProcess{}, s.APIs...), s.Workers...) {
		procs = append(procs, fmt.Sprintf("    %-19s %s  pid %-7d log %s", p.Name, p.Addr, p.PID(), p.LogPath()))
	}
	ui := t.UIURL()
	if ui == "" {
		ui = "(not served)"
	}
	fmt.Fprintf(w, `
ordersaga cluster is running (Ctrl-C stops everything; data stays in %s)

  API (balancer)   %s   (in front of %d api replicas)
  Temporal Web UI  %s/namespaces/%s/workflows  (filter: OrderNo="<order_no>")
  Temporal gRPC    %s
  PostgreSQL       %s
  WeChat Pay sim   %s  (and shipping management: it pushes its events to the balancer)
  Admin token      %s

  processes:
%s

The README's walk-through runs as written against it (bash):
  API=%[2]s SIM=%[8]s ADMIN=%[9]s
`, s.opts.Dir, s.APIURL, len(s.APIs), ui, t.Namespace(), t.FrontendAddress(), s.PG.URL(shopDatabase), s.SimURL, s.AdminToken,
		strings.Join(procs, "\n"))
}
