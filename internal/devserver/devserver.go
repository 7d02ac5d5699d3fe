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
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"

	"ordersaga/internal/ports"
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
	// HistoryShards is the number of history shards of a new database (0 =
	// DefaultHistoryShards). The number is fixed when a database is created:
	// an existing one keeps its own, whatever is asked (Settings says which).
	HistoryShards int
	// Revert leaves out tunings (Tunings), so that benchmarks can measure
	// what each brings; RevertAll is the server as it was before them.
	Revert []string
	// DynamicConfig overrides server settings, e.g. tests lower Temporal's
	// per-workflow limits (history.maxTotalUpdates) to reach them.
	DynamicConfig map[dynamicconfig.Key]any
}

// Tunings of the embedded server that Options.Revert can leave out, each
// measured by `ordersaga bench -revert` (docs/BENCHMARKS.md).
const (
	// TuningSearchAttributeCache: the search attributes are cached, not
	// re-read from the database on every use (newDynamicConfig).
	TuningSearchAttributeCache = "sa-cache"
	// TuningVisibilityDB: a new database lists its workflows in a file of
	// its own (visibilityFile).
	TuningVisibilityDB = "visibility-db"
	// TuningCompression: Dial does not compress (the server is local).
	TuningCompression = "compression"
)

// Tunings lists the tunings Options.Revert takes.
var Tunings = []string{TuningSearchAttributeCache, TuningVisibilityDB, TuningCompression}

// RevertAll reverts every tuning.
var RevertAll = Tunings

func (o Options) reverted(tuning string) bool { return slices.Contains(o.Revert, tuning) }

// DefaultHistoryShards is the number of history shards of a new database.
const DefaultHistoryShards = 4

// Server is a running embedded Temporal server.
type Server struct {
	opts         Options
	temporal     temporal.Server
	quiet        *atomic.Bool // the server's logger quietens its start-up and shutdown noise
	dc           *dynamicConfigClient
	ui           *UI
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
	askedShards := opts.HistoryShards
	if opts.HistoryShards <= 0 {
		opts.HistoryShards = DefaultHistoryShards
	}
	if opts.Dir == "" {
		return nil, errors.New("devserver: Options.Dir is required")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("devserver: create %s: %w", opts.Dir, err)
	}
	for _, t := range opts.Revert {
		if !slices.Contains(Tunings, t) {
			return nil, fmt.Errorf("devserver: unknown tuning %q (known: %s)", t, strings.Join(Tunings, ", "))
		}
	}

	dc := newDynamicConfig(opts)
	// Until Start returns, the services' complaints about each other
	// ("Frontend is not healthy yet") are start-up noise.
	quiet := &atomic.Bool{}
	quiet.Store(true)
	srv, opts, err := startServer(opts, dc, serverLogger{log: opts.Logger, quiet: quiet})
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:         opts,
		temporal:     srv,
		quiet:        quiet,
		dc:           dc,
		frontendAddr: net.JoinHostPort(opts.IP, strconv.Itoa(opts.FrontendPort)),
	}
	if err := s.ensureSearchAttributes(ctx); err != nil {
		_ = srv.Stop()
		return nil, err
	}
	if n := askedShards; n > 0 {
		// The count is fixed when a database is created; the server uses
		// the stored one whatever it is given (and logs the difference).
		if st, err := s.Settings(ctx); err == nil && st.HistoryShards != int32(n) {
			opts.Logger.Warn("the Temporal database keeps the number of history shards it was created with",
				"dir", opts.Dir, "history_shards", st.HistoryShards, "asked", n)
		}
	}
	if opts.UIPort != 0 {
		if err := s.startUI(ctx); err != nil {
			_ = srv.Stop()
			return nil, err
		}
	}
	quiet.Store(false)
	return s, nil
}

// startServer claims the ports, prepares the database and starts the
// server. The internal ports (and the frontend's, when any will do) are
// picked here and bound by the server a moment later; another process can
// take one in between (parallel test binaries do), so a bind failure on a
// port picked here is retried with new ones.
func startServer(opts Options, dc *dynamicConfigClient, logger serverLogger) (temporal.Server, Options, error) {
	for attempt := 1; ; attempt++ {
		srv, err := tryStartServer(opts, dc, logger)
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

func tryStartServer(opts Options, dc *dynamicConfigClient, logger serverLogger) (started, error) {
	var err error
	if opts.FrontendPort, err = claimPort(opts.IP, opts.FrontendPort, "Temporal frontend"); err != nil {
		return started{}, err
	}
	if opts.UIPort != 0 {
		if opts.UIPort, err = claimPort(opts.IP, opts.UIPort, "Temporal Web UI"); err != nil {
			return started{}, err
		}
	}

	lay := dbLayout(opts)
	cfg, err := serverConfig(opts, lay)
	if err != nil {
		return started{}, err
	}
	if _, err := os.Stat(lay.main); errors.Is(err, os.ErrNotExist) {
		if lay.visibility != lay.main {
			// A new database: visibility first (a start that died after it
			// finds temporal.db missing and begins again).
			for _, suffix := range []string{"", "-wal", "-shm"} {
				_ = os.Remove(lay.visibility + suffix)
			}
			if err := sqliteschema.SetupSchema(sqliteConfig(lay.visibility)); err != nil {
				return started{}, fmt.Errorf("devserver: create schema in %s: %w", lay.visibility, err)
			}
		}
		if err := sqliteschema.SetupSchema(sqliteConfig(lay.main)); err != nil {
			return started{}, fmt.Errorf("devserver: create schema in %s: %w", lay.main, err)
		}
	} else if err := forgetMembers(lay.main); err != nil {
		return started{}, err
	}
	sqlCfg := cfg.Persistence.DataStores[sqliteplugin.PluginName].SQL
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
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dc),
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
	s.quiet.Store(true)
	if s.ui != nil {
		s.ui.Stop()
	}
	return s.temporal.Stop()
}

// Settings are what a running server was started with, for reports.
type Settings struct {
	// HistoryShards is the database's (fixed when it was created).
	HistoryShards int32 `json:"history_shards"`
	// SQLite are the connection attributes and pool of temporal.db.
	SQLite      map[string]string `json:"sqlite"`
	SQLiteConns int               `json:"sqlite_max_conns"`
	// VisibilityDB is the file the workflow lists live in.
	VisibilityDB string `json:"visibility_db"`
	// Reverted are the tunings left out (Options.Revert).
	Reverted []string `json:"reverted,omitempty"`
	// DynamicConfig are the settings that differ from Temporal's defaults.
	DynamicConfig map[string]string `json:"dynamic_config"`
}

// Settings reports the server's settings; the shard count is asked of the
// server itself.
func (s *Server) Settings(ctx context.Context) (Settings, error) {
	lay := dbLayout(s.opts)
	sqlCfg := sqliteConfig(lay.main)
	out := Settings{
		SQLite:        maps.Clone(sqlCfg.ConnectAttributes),
		SQLiteConns:   sqlCfg.MaxConns,
		VisibilityDB:  filepath.Base(lay.visibility),
		Reverted:      s.opts.Revert,
		DynamicConfig: map[string]string{},
	}
	for k, v := range s.dc.static {
		out.DynamicConfig[k.String()] = fmt.Sprint(dynamicconfig.StaticClient{k: v}.GetValue(k)[0].Value)
	}
	out.DynamicConfig[dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key().String()] = fmt.Sprint(s.dc.refreshSearchAttributes.Load())
	c, err := s.Dial(ctx, client.Options{Logger: sdklog.NewStructuredLogger(s.opts.Logger)})
	if err != nil {
		return out, err
	}
	defer c.Close()
	info, err := c.WorkflowService().GetClusterInfo(ctx, &workflowservice.GetClusterInfoRequest{})
	if err != nil {
		return out, err
	}
	out.HistoryShards = info.GetHistoryShardCount()
	return out, nil
}

// Dial returns a client of the server's namespace. Unless opts say
// otherwise, it does not compress: the server is on this machine, where
// gzip costs CPU at both ends (4–5 % of the process under load, measured by
// `ordersaga bench`) and saves nothing.
func (s *Server) Dial(ctx context.Context, opts client.Options) (client.Client, error) {
	opts.HostPort = s.frontendAddr
	if opts.Namespace == "" {
		opts.Namespace = s.opts.Namespace
	}
	if opts.ConnectionOptions.GrpcCompression == nil && !s.opts.reverted(TuningCompression) {
		opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	return client.DialContext(ctx, opts)
}

// forgetMembers removes the previous run's services from the membership
// table of an existing database. This process owns the directory, so they
// are all gone; left in, they are the seeds the new run's ringpop tries to
// join for up to Membership.MaxJoinDuration (30 s) before it starts alone.
func forgetMembers(path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout%3D10000")
	if err != nil {
		return fmt.Errorf("devserver: open %s: %w", path, err)
	}
	defer db.Close()
	if _, err := db.Exec("DELETE FROM cluster_membership"); err != nil {
		return fmt.Errorf("devserver: clear the previous run's membership in %s: %w", path, err)
	}
	return nil
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
	// The services cache the attributes for a minute; until this process
	// ends, they re-read them on every use instead, so the ones added now
	// are usable at once everywhere. Only the one start after an upgrade
	// that brought attributes pays that read; every other start does not.
	s.dc.refreshSearchAttributes.Store(true)
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
	ui, err := StartUI(ctx, UIOptions{
		IP:               s.opts.IP,
		Port:             s.opts.UIPort,
		FrontendAddress:  s.frontendAddr,
		DefaultNamespace: s.opts.Namespace,
		Logger:           s.opts.Logger,
	})
	if err != nil {
		return err
	}
	s.ui, s.uiURL = ui, ui.URL()
	return nil
}

// UIOptions configure a Temporal Web UI served by this process.
type UIOptions struct {
	IP               string // to bind to
	Port             int    // free: the caller claims it
	FrontendAddress  string // the Temporal frontend host:port it talks to
	DefaultNamespace string
	Logger           *slog.Logger // its errors (nil = discarded)
}

// UI is a running Temporal Web UI (github.com/temporalio/ui-server, the
// server of the temporalio/ui image, in this process).
type UI struct {
	srv *uiserver.Server
	url string
}

// URL is the UI's address.
func (u *UI) URL() string { return u.url }

// Stop stops the UI.
func (u *UI) Stop() { u.srv.Stop() }

// StartUI serves the Web UI in front of a Temporal frontend and returns once
// it answers.
func StartUI(ctx context.Context, o UIOptions) (*UI, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	srv := uiserver.NewServer(uioptions.WithConfigProvider(&uiConfig{cfg: &uiconfig.Config{
		Host:                o.IP,
		Port:                o.Port,
		TemporalGRPCAddress: o.FrontendAddress,
		EnableUI:            true,
		DefaultNamespace:    o.DefaultNamespace,
		HideLogs:            true,
		DisableNewsFetch:    true, // the machine may have no internet
		// Plain http on localhost: a Secure cookie would never be sent back.
		CORS: uiconfig.CORS{CookieInsecure: true},
	}}))
	u := &UI{srv: srv, url: fmt.Sprintf("http://%s", net.JoinHostPort(o.IP, strconv.Itoa(o.Port)))}
	go func() {
		if err := srv.Start(); err != nil {
			o.Logger.Error("temporal web ui stopped", "err", err)
		}
	}()
	// Wait until it answers so the URL printed works.
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.url+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return u, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			srv.Stop()
			return nil, fmt.Errorf("web ui on %s did not come up: %w", u.url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type uiConfig struct{ cfg *uiconfig.Config }

func (u *uiConfig) GetConfig() (*uiconfig.Config, error) { return u.cfg, nil }

// layout is where a server's data lives.
type layout struct {
	// main is temporal.db: executions, history, task queues, metadata.
	main string
	// visibility is what the Web UI lists and queries: visibility.db for a
	// database created since the visibility got a file of its own, main for
	// one created before (it keeps working as it was).
	visibility string
}

// visibilityFile is the visibility database of a new data directory. Its
// own file is its own SQLite writer: the visibility writes (one per start,
// search-attribute upsert and close, each touching a dozen indexes) then run
// beside the executions' instead of queueing for temporal.db's single
// writer — measured by `ordersaga bench`: +8 % no-op orders per second.
const visibilityFile = "visibility.db"

func dbLayout(opts Options) layout {
	main := filepath.Join(opts.Dir, "temporal.db")
	vis := filepath.Join(opts.Dir, visibilityFile)
	_, errMain := os.Stat(main)
	_, errVis := os.Stat(vis)
	switch {
	case opts.reverted(TuningVisibilityDB) && errors.Is(errMain, os.ErrNotExist):
		return layout{main: main, visibility: main}
	case errors.Is(errMain, os.ErrNotExist) || errVis == nil:
		return layout{main: main, visibility: vis}
	default:
		// Created before visibility.db existed: its workflows are listed in
		// temporal.db.
		return layout{main: main, visibility: main}
	}
}

// sqliteConfig is the connection of the server to one SQLite file.
func sqliteConfig(path string) *config.SQL {
	return &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: path,
		ConnectAttributes: map[string]string{
			"mode": "rwc",
			// WAL: readers (visibility queries, the Web UI) never block the writer,
			// and a commit appends to the log instead of rewriting pages.
			"journal_mode": "wal",
			// NORMAL with WAL fsyncs at checkpoints, not at every commit: a crash
			// of this process loses nothing, a power cut may lose the last
			// moments. Right for a dev server; the largest single speed-up.
			"synchronous": "normal",
			// Wait instead of failing with SQLITE_BUSY when another process
			// (a backup, the sqlite3 shell) holds the file for a moment.
			"busy_timeout": "10000",
			// (mmap_size and a larger cache_size were measured too: no
			// change — the database is in the OS page cache either way.)
		},
		// One connection per file. SQLite has a single writer anyway, and the
		// server's transactions begin DEFERRED (the plugin cannot ask for
		// IMMEDIATE): with more connections, a transaction that read first
		// and then writes fails at once with "database is locked" whenever
		// another one committed meanwhile — measured with 4: 400 such errors
		// and a third of the throughput.
		MaxConns:     1,
		MaxIdleConns: 1,
	}
}

func serverConfig(opts Options, lay layout) (*config.Config, error) {
	sqlCfg := sqliteConfig(lay.main)
	stores := map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}}
	visStore := sqliteplugin.PluginName
	if lay.visibility != lay.main {
		visStore = "sqlite-visibility"
		stores[visStore] = config.DataStore{SQL: sqliteConfig(lay.visibility)}
	}
	picked := make([]int, 0, 8)
	for range 7 {
		p, err := ports.Free(opts.IP)
		if err != nil {
			return nil, err
		}
		picked = append(picked, p)
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
			VisibilityStore: visStore,
			// History shards are the unit of concurrency of the history
			// service. SQLite serialises writes, so beyond a few shards the
			// extra ones only add timers and queue pollers. The number is fixed
			// when the database is created and can never change for it.
			NumHistoryShards: int32(opts.HistoryShards),
			DataStores:       stores,
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
			"frontend": svc(opts.FrontendPort, picked[0]),
			"history":  svc(picked[1], picked[2]),
			"matching": svc(picked[3], picked[4]),
			"worker":   svc(picked[5], picked[6]),
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

// dynamicConfigClient holds the server settings that differ from
// Temporal's defaults, and the one switched while the server runs.
type dynamicConfigClient struct {
	static dynamicconfig.StaticClient
	// refreshSearchAttributes makes every use of the search attributes
	// re-read them from the database (ensureSearchAttributes).
	refreshSearchAttributes atomic.Bool
}

func (c *dynamicConfigClient) GetValue(key dynamicconfig.Key) []dynamicconfig.ConstrainedValue {
	if key == dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key() && c.refreshSearchAttributes.Load() {
		return []dynamicconfig.ConstrainedValue{{Value: true}}
	}
	return c.static.GetValue(key)
}

func newDynamicConfig(opts Options) *dynamicConfigClient {
	c := &dynamicConfigClient{static: staticDynamicConfig()}
	for k, v := range opts.DynamicConfig {
		c.static[k] = []dynamicconfig.ConstrainedValue{{Value: v}}
	}
	// Before tuning, every use of the search attributes re-read them from
	// temporal.db, always (so that the ones ensureSearchAttributes adds work
	// at once): a read of the database, under a global lock, for every
	// start and every upsert — the first place the mutex profile pointed
	// to. Now only a start that adds attributes switches it on.
	c.refreshSearchAttributes.Store(opts.reverted(TuningSearchAttributeCache))
	return c
}

// staticDynamicConfig holds the fixed settings that differ from Temporal's defaults.
func staticDynamicConfig() dynamicconfig.StaticClient {
	v := func(x any) []dynamicconfig.ConstrainedValue { return []dynamicconfig.ConstrainedValue{{Value: x}} }
	return dynamicconfig.StaticClient{
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

// claimPort is ports.Claim with a hint at the usual culprit.
func claimPort(ip string, port int, what string) (int, error) {
	p, err := ports.Claim(ip, port, what)
	if err != nil {
		return 0, fmt.Errorf("devserver: %w (is another ordersaga dev or Temporal running?)", err)
	}
	return p, nil
}

func keys(m map[string]enumspb.IndexedValueType) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
