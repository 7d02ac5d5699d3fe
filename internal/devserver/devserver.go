// Package devserver runs a complete Temporal server — frontend, history,
// matching and worker services — inside this process, persisted in a SQLite
// file, with the Temporal Web UI served next to it. It exists so that
// `ordersaga dev` and the end-to-end tests need nothing installed.
//
// It is not for production: production talks to a Temporal cluster through
// TEMPORAL_ADDRESS.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	tlog "go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
)

const clusterName = "active"

// Options configure the embedded server. Zero values are usable defaults.
type Options struct {
	// Dir holds the SQLite database (temporal.db). Created if missing; reusing
	// it keeps every workflow across restarts.
	Dir string
	// Namespace is created at first start (default "default").
	Namespace string
	// IP to bind the frontend and the UI to (default 127.0.0.1).
	IP string
	// FrontendPort is the gRPC port clients dial (default 7233; -1 = any free port).
	FrontendPort int
	// UIPort serves the Temporal Web UI (default 8233; 0 = no UI; -1 = any free port).
	UIPort int
	// SearchAttributes are registered at namespace creation and added to an
	// existing database that lacks them.
	SearchAttributes map[string]enumspb.IndexedValueType
	// Logger receives the server's warnings and errors (default: discarded).
	Logger *slog.Logger
}

// Server is a running embedded Temporal server.
type Server struct {
	opts         Options
	temporal     temporal.Server
	ui           *uiserver.Server
	frontendAddr string
	uiURL        string
}

// Start brings the server up and returns once the frontend answers and the
// search attributes are in place. A taken port fails fast with a message that
// names it.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.FrontendPort == 0 {
		opts.FrontendPort = 7233
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		return nil, errors.New("devserver: Options.Dir is required")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("devserver: create %s: %w", opts.Dir, err)
	}

	srv, opts, err := startServer(opts)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:         opts,
		temporal:     srv,
		frontendAddr: net.JoinHostPort(opts.IP, strconv.Itoa(opts.FrontendPort)),
	}
	if err := s.ensureSearchAttributes(ctx); err != nil {
		_ = srv.Stop()
		return nil, err
	}
	if opts.UIPort != 0 {
		if err := s.startUI(ctx); err != nil {
			_ = srv.Stop()
			return nil, err
		}
	}
	return s, nil
}

// startServer claims the ports, prepares the database and starts the
// server. The internal ports (and the frontend's, when any will do) are
// picked here and bound by the server a moment later; another process can
// take one in between (parallel test binaries do), so a bind failure on a
// port picked here is retried with new ones.
func startServer(opts Options) (temporal.Server, Options, error) {
	for attempt := 1; ; attempt++ {
		srv, err := tryStartServer(opts)
		if err == nil {
			return srv.srv, srv.opts, nil
		}
		if attempt >= 5 || !srv.retryable || !strings.Contains(err.Error(), "address already in use") {
			return nil, opts, err
		}
		opts.Logger.Warn("a port picked for the embedded Temporal server was taken meanwhile; retrying", "attempt", attempt, "error", err)
	}
}

type started struct {
	srv       temporal.Server
	opts      Options // with the ports picked
	retryable bool    // the failure came after the ports were picked
}

func tryStartServer(opts Options) (started, error) {
	var err error
	if opts.FrontendPort, err = claimPort(opts.IP, opts.FrontendPort, "Temporal frontend"); err != nil {
		return started{}, err
	}
	if opts.UIPort != 0 {
		if opts.UIPort, err = claimPort(opts.IP, opts.UIPort, "Temporal Web UI"); err != nil {
			return started{}, err
		}
	}

	cfg, err := serverConfig(opts)
	if err != nil {
		return started{}, err
	}
	sqlCfg := cfg.Persistence.DataStores[sqliteplugin.PluginName].SQL
	if _, err := os.Stat(sqlCfg.DatabaseName); errors.Is(err, os.ErrNotExist) {
		if err := sqliteschema.SetupSchema(sqlCfg); err != nil {
			return started{}, fmt.Errorf("devserver: create schema in %s: %w", sqlCfg.DatabaseName, err)
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, opts.Namespace, false, opts.SearchAttributes)
	if err != nil {
		return started{}, fmt.Errorf("devserver: namespace %q: %w", opts.Namespace, err)
	}
	// A no-op when the namespace exists already (a restart on the same Dir).
	if err := sqliteschema.CreateNamespaces(sqlCfg, ns); err != nil {
		return started{}, fmt.Errorf("devserver: create namespace %q: %w", opts.Namespace, err)
	}

	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(tlog.NewZapLogger(tlog.BuildZapLogger(tlog.Config{Level: "error", Stdout: false}))),
		temporal.WithDynamicConfigClient(dynamicConfig()),
	)
	if err != nil {
		return started{}, fmt.Errorf("devserver: build server: %w", err)
	}
	if err := srv.Start(); err != nil {
		_ = srv.Stop()
		return started{retryable: true}, fmt.Errorf("devserver: start server: %w", err)
	}
	return started{srv: srv, opts: opts}, nil
}

// FrontendAddress is the host:port for client.Dial.
func (s *Server) FrontendAddress() string { return s.frontendAddr }

// Namespace is the namespace created at start.
func (s *Server) Namespace() string { return s.opts.Namespace }

// UIURL is the Web UI's address, or "" when it is not served.
func (s *Server) UIURL() string { return s.uiURL }

// Stop shuts the UI and the server down. Workflows stay in the database.
func (s *Server) Stop() error {
	if s.ui != nil {
		s.ui.Stop()
	}
	return s.temporal.Stop()
}

// Dial returns a client of the server's namespace.
func (s *Server) Dial(ctx context.Context, opts client.Options) (client.Client, error) {
	opts.HostPort = s.frontendAddr
	if opts.Namespace == "" {
		opts.Namespace = s.opts.Namespace
	}
	return client.DialContext(ctx, opts)
}

// ensureSearchAttributes adds the attributes a database created before they
// were introduced lacks. New databases got them at namespace creation.
func (s *Server) ensureSearchAttributes(ctx context.Context) error {
	if len(s.opts.SearchAttributes) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := s.Dial(ctx, client.Options{Logger: sdklog.NewStructuredLogger(s.opts.Logger)})
	if err != nil {
		return fmt.Errorf("devserver: dial %s: %w", s.frontendAddr, err)
	}
	defer c.Close()
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: s.opts.Namespace})
	if err != nil {
		return fmt.Errorf("devserver: list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range s.opts.SearchAttributes {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        s.opts.Namespace,
		SearchAttributes: missing,
	}); err != nil {
		return fmt.Errorf("devserver: add search attributes %v: %w", keys(missing), err)
	}
	s.opts.Logger.Info("added missing search attributes", "attributes", keys(missing))
	return nil
}

func (s *Server) startUI(ctx context.Context) error {
	ui := uiserver.NewServer(uioptions.WithConfigProvider(&uiConfig{cfg: &uiconfig.Config{
		Host:                s.opts.IP,
		Port:                s.opts.UIPort,
		TemporalGRPCAddress: s.frontendAddr,
		EnableUI:            true,
		DefaultNamespace:    s.opts.Namespace,
		HideLogs:            true,
		DisableNewsFetch:    true, // the machine may have no internet
		// Plain http on localhost: a Secure cookie would never be sent back.
		CORS: uiconfig.CORS{CookieInsecure: true},
	}}))
	s.ui = ui
	s.uiURL = fmt.Sprintf("http://%s", net.JoinHostPort(s.opts.IP, strconv.Itoa(s.opts.UIPort)))
	go func() {
		if err := ui.Start(); err != nil {
			s.opts.Logger.Error("temporal web ui stopped", "err", err)
		}
	}()
	// Wait until it answers so the URL we print works.
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.uiURL+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("devserver: web ui on %s did not come up: %w", s.uiURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type uiConfig struct{ cfg *uiconfig.Config }

func (u *uiConfig) GetConfig() (*uiconfig.Config, error) { return u.cfg, nil }

func serverConfig(opts Options) (*config.Config, error) {
	sqlCfg := &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: filepath.Join(opts.Dir, "temporal.db"),
		ConnectAttributes: map[string]string{
			"mode": "rwc",
			// WAL: readers (visibility queries, the Web UI) never block the writer,
			// and a commit appends to the log instead of rewriting pages.
			"journal_mode": "wal",
			// NORMAL with WAL fsyncs at checkpoints, not at every commit: a crash
			// of this process loses nothing, a power cut may lose the last
			// moments. Right for a dev server; the largest single speed-up.
			"synchronous": "normal",
			// Wait instead of failing with SQLITE_BUSY when the UI reads while a
			// shard writes.
			"busy_timeout": "10000",
		},
		// One connection: SQLite has a single writer anyway, and one connection
		// means the server's own goroutines never meet "database is locked".
		MaxConns:     1,
		MaxIdleConns: 1,
	}
	ports := make([]int, 0, 8)
	for range 7 {
		p, err := freePort(opts.IP)
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	svc := func(grpc, membership int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: grpc, MembershipPort: membership, BindOnIP: opts.IP}}
	}
	return &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: opts.IP},
		},
		Persistence: config.Persistence{
			DefaultStore:    sqliteplugin.PluginName,
			VisibilityStore: sqliteplugin.PluginName,
			// History shards are the unit of concurrency of the history
			// service. SQLite serialises writes, so beyond a few shards the
			// extra ones only add timers and queue pollers. The number is fixed
			// when the database is created and can never change for it.
			NumHistoryShards: 4,
			DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        clusterName,
			CurrentClusterName:       clusterName,
			ClusterInformation: map[string]cluster.ClusterInformation{clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             net.JoinHostPort(opts.IP, strconv.Itoa(opts.FrontendPort)),
			}},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			"frontend": svc(opts.FrontendPort, ports[0]),
			"history":  svc(ports[1], ports[2]),
			"matching": svc(ports[3], ports[4]),
			"worker":   svc(ports[5], ports[6]),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		PublicClient: config.PublicClient{HostPort: net.JoinHostPort(opts.IP, strconv.Itoa(opts.FrontendPort))},
	}, nil
}

// dynamicConfig holds the server settings that differ from Temporal's defaults.
func dynamicConfig() dynamicconfig.StaticClient {
	v := func(x any) []dynamicconfig.ConstrainedValue { return []dynamicconfig.ConstrainedValue{{Value: x}} }
	return dynamicconfig.StaticClient{
		// Search attributes added at start (ensureSearchAttributes) must be
		// usable at once, not after the cache's refresh interval.
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): v(true),
		// The defaults protect a shared database from one noisy service; here
		// the whole server is one process on one file, and the limit would
		// only throttle bursts of orders (benchmarks, the chaos test).
		dynamicconfig.FrontendPersistenceMaxQPS.Key(): v(10000),
		dynamicconfig.HistoryPersistenceMaxQPS.Key():  v(20000),
		dynamicconfig.MatchingPersistenceMaxQPS.Key(): v(20000),
		// Each task queue partition is polled separately; one process with a
		// handful of pollers gets its tasks faster from a single partition.
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  v(1),
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): v(1),
	}
}

// claimPort checks that port (or, for -1, any port) is free on ip. The check
// and the server's own bind are not atomic, but it turns the common case — a
// second `ordersaga dev`, or another Temporal on 7233 — into a clear message.
func claimPort(ip string, port int, what string) (int, error) {
	if port < 0 {
		return freePort(ip)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return 0, fmt.Errorf("devserver: %s port %d on %s is taken (is another ordersaga dev or Temporal running?): %w", what, port, ip, err)
	}
	_ = l.Close()
	return port, nil
}

// freePort picks a free port below Linux's ephemeral range (32768–60999),
// where the kernel does not hand ports to outgoing connections, so the port
// is far less likely to be taken before the server binds it.
func freePort(ip string) (int, error) {
	for range 50 {
		p := 20000 + rand.IntN(12000)
		if l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p))); err == nil {
			_ = l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("devserver: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func keys(m map[string]enumspb.IndexedValueType) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
