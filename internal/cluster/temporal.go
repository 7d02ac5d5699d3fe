package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/api/adminservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"ordersaga/deploy"
	"ordersaga/internal/devserver"
	"ordersaga/internal/pgserver"
	"ordersaga/internal/ports"
	"ordersaga/internal/supervise"
)

// Defaults of a cluster: docker-compose.yml's where it says (the test of
// this package holds them to it).
const (
	DefaultHistoryShards = 4      // NUM_HISTORY_SHARDS
	DefaultLogLevel      = "warn" // LOG_LEVEL of the temporal service
	DefaultRetention     = 720 * time.Hour
	DefaultHistoryHosts  = 2
	DefaultNamespace     = "default"
)

// The Temporal services, as `temporal-server start --service` names them.
const (
	RoleFrontend = "frontend"
	RoleHistory  = "history"
	RoleMatching = "matching"
	RoleWorker   = "worker"
)

// healthNames are the gRPC health services of the roles that serve one
// (the worker service serves no gRPC: it is seen in the membership ring).
var healthNames = map[string]string{
	RoleFrontend: "temporal.api.workflowservice.v1.WorkflowService",
	RoleHistory:  "temporal.api.workflowservice.v1.HistoryService", // SERVING once its shards are acquired
	RoleMatching: "temporal.api.workflowservice.v1.MatchingService",
}

// TemporalOptions configure the Temporal services of a cluster.
type TemporalOptions struct {
	Tools Tools
	// PG holds Temporal's databases (temporal, temporal_visibility: created
	// and brought to the server's schema by the schema tool).
	PG *pgserver.Server
	// Dir receives each service's environment and the dynamic config; Logs
	// the services' and the schema tool's logs.
	Dir, Logs string
	// FrontendPort is the gRPC port clients dial (0 or -1 = any free port).
	FrontendPort int
	// UIPort serves the Web UI in front of the frontend (0 = none; -1 = any
	// free port).
	UIPort        int
	HistoryHosts  int // history processes (default 2)
	HistoryShards int // NUM_HISTORY_SHARDS of a new database (default 4)
	Namespace     string
	Retention     time.Duration
	// SearchAttributes are registered through the operator API (missing
	// ones added to an existing namespace).
	SearchAttributes map[string]enumspb.IndexedValueType
	LogLevel         string
	// StartTimeout bounds the wait for each service to come up (default 3m).
	StartTimeout time.Duration
	// Logf receives progress lines (nil = none).
	Logf func(format string, args ...any)
}

// Service is one Temporal server process.
type Service struct {
	Name string // frontend, history-1, history-2, matching, worker
	Role string
	IP   string
	// Its ports: gRPC, membership (ringpop), pprof, Prometheus metrics, and
	// the frontend's HTTP API.
	GRPC, Membership, Pprof, Metrics, HTTP int
	EnvPath                                string // the environment it is started with
	proc                                   *supervise.Process
}

// Address is the service's gRPC host:port, its identity in the membership
// ring.
func (s *Service) Address() string { return net.JoinHostPort(s.IP, strconv.Itoa(s.GRPC)) }

// LogPath is the service's log.
func (s *Service) LogPath() string { return s.proc.LogPath }

// Start starts the service unless it is running.
func (s *Service) Start() error { return s.proc.Start() }

// Kill sends sig and waits for the exit (SIGKILL after grace); false when
// it was not running.
func (s *Service) Kill(sig syscall.Signal, grace time.Duration) bool { return s.proc.Kill(sig, grace) }

// Running reports whether the process is up.
func (s *Service) Running() bool { return s.proc.Running() }

// PID is the current process id.
func (s *Service) PID() int { return s.proc.PID() }

// Unexpected counts its exits nobody asked for (each restarted).
func (s *Service) Unexpected() int { return s.proc.Unexpected() }

// Temporal is the running Temporal services of a cluster.
type Temporal struct {
	opts     TemporalOptions
	Frontend *Service
	History  []*Service
	Matching *Service
	Worker   *Service
	Schema   []string // what the schema tool did, per database
	ui       *devserver.UI
	conn     *grpc.ClientConn // to the frontend: admin, operator, health
}

// Services lists every service, frontend first.
func (t *Temporal) Services() []*Service {
	return slices.Concat([]*Service{t.Frontend}, t.History, []*Service{t.Matching, t.Worker})
}

// Service finds a service by name (nil when there is none).
func (t *Temporal) Service(name string) *Service {
	for _, s := range t.Services() {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// FrontendAddress is the host:port for client.Dial.
func (t *Temporal) FrontendAddress() string { return t.Frontend.Address() }

// Namespace is the namespace registered at start.
func (t *Temporal) Namespace() string { return t.opts.Namespace }

// HistoryShards is the number of history shards of the database (fixed
// when it was created).
func (t *Temporal) HistoryShards(ctx context.Context) (int32, error) {
	d, err := t.describe(ctx)
	if err != nil {
		return 0, err
	}
	return d.GetHistoryShardCount(), nil
}

// UIURL is the Web UI's address ("" when it is not served).
func (t *Temporal) UIURL() string {
	if t.ui == nil {
		return ""
	}
	return t.ui.URL()
}

// Dial returns a client of the cluster's namespace (no compression unless
// opts say otherwise: the cluster is on this machine).
func (t *Temporal) Dial(ctx context.Context, opts client.Options) (client.Client, error) {
	opts.HostPort = t.FrontendAddress()
	if opts.Namespace == "" {
		opts.Namespace = t.opts.Namespace
	}
	if opts.ConnectionOptions.GrpcCompression == nil {
		opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	return client.DialContext(ctx, opts)
}

func (t *Temporal) logf(format string, args ...any) {
	if t.opts.Logf != nil {
		t.opts.Logf(format, args...)
	}
}

// StartTemporal sets up Temporal's schemas, starts the services as separate
// processes (they find each other through the database), waits until each
// has come up and every ring of the membership is complete, registers the
// namespace and the search attributes through the API, and serves the Web
// UI when asked. A service that does not come up is named with its log; a
// port that is taken is named. On error, whatever was started is stopped.
func StartTemporal(ctx context.Context, o TemporalOptions) (_ *Temporal, err error) {
	if o.PG == nil || o.Dir == "" || o.Logs == "" || o.Tools.Server == "" {
		return nil, errors.New("cluster: TemporalOptions needs PG, Dir, Logs and Tools")
	}
	if o.HistoryHosts <= 0 {
		o.HistoryHosts = DefaultHistoryHosts
	}
	if o.HistoryShards <= 0 {
		o.HistoryShards = DefaultHistoryShards
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.LogLevel == "" {
		o.LogLevel = DefaultLogLevel
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 3 * time.Minute
	}
	for _, d := range []string{o.Dir, o.Logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	t := &Temporal{opts: o}
	defer func() {
		if err != nil {
			_ = t.Stop()
		}
	}()

	// Ports first: a taken public one stops the start before anything runs.
	const ip = "127.0.0.1"
	fe, err := ports.Claim(ip, portOrAny(o.FrontendPort), "Temporal frontend")
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	uiPort := 0
	if o.UIPort != 0 {
		if uiPort, err = ports.Claim(ip, o.UIPort, "Temporal Web UI"); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	taken := map[int]bool{fe: true, uiPort: true, o.PG.Port(): true}
	free := func() (int, error) {
		for {
			p, err := ports.Free(ip)
			if err != nil || !taken[p] {
				taken[p] = true
				return p, err
			}
		}
	}
	newService := func(name, role string, grpcPort int) (*Service, error) {
		s := &Service{Name: name, Role: role, IP: ip, GRPC: grpcPort}
		for _, p := range []*int{&s.GRPC, &s.Membership, &s.Pprof, &s.Metrics} {
			if *p == 0 {
				if *p, err = free(); err != nil {
					return nil, err
				}
			}
		}
		if role == RoleFrontend {
			if s.HTTP, err = free(); err != nil {
				return nil, err
			}
		}
		return s, nil
	}
	if t.Frontend, err = newService("frontend", RoleFrontend, fe); err != nil {
		return nil, err
	}
	for i := range o.HistoryHosts {
		h, err := newService(fmt.Sprintf("history-%d", i+1), RoleHistory, 0)
		if err != nil {
			return nil, err
		}
		t.History = append(t.History, h)
	}
	if t.Matching, err = newService("matching", RoleMatching, 0); err != nil {
		return nil, err
	}
	if t.Worker, err = newService("worker", RoleWorker, 0); err != nil {
		return nil, err
	}

	began := time.Now()
	reports, err := setupSchema(ctx, o.Tools.SQLTool, o.PG, o.Dir, filepath.Join(o.Logs, "temporal-schema.log"))
	if err != nil {
		return nil, err
	}
	for _, r := range reports {
		t.Schema = append(t.Schema, r.String())
	}
	t.logf("Temporal schemas (temporal-sql-tool) in %.1fs: %s", time.Since(began).Seconds(), strings.Join(t.Schema, "; "))

	if err := forgetMembers(ctx, o.PG); err != nil {
		return nil, err
	}
	dynamic := filepath.Join(o.Dir, "dynamicconfig.yaml")
	if err := os.WriteFile(dynamic, deploy.TemporalDynamicConfig, 0o644); err != nil {
		return nil, err
	}
	for _, s := range t.Services() {
		env := t.serviceEnv(s, o.PG.Port(), dynamic)
		s.EnvPath = filepath.Join(o.Dir, s.Name+".env")
		if err := os.WriteFile(s.EnvPath, []byte(strings.Join(env, "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
		s.proc = &supervise.Process{
			Name:    "temporal " + s.Name,
			LogPath: filepath.Join(o.Logs, "temporal-"+s.Name+".log"),
			Command: func() (*exec.Cmd, error) {
				// No --config-file: the server renders its own embedded
				// config template (common/config/config_template_embedded.yaml
				// of the module; the temporalio/server image's entrypoint
				// runs `temporal-server start` the same way) from the
				// environment, as in docker-compose.yml.
				cmd := exec.Command(o.Tools.Server, "--allow-no-auth", "start", "--service", s.Role)
				cmd.Env = append(cleanEnv(), env...)
				return cmd, nil
			},
			// As an orchestrator would (compose: restart: unless-stopped).
			Restart:      true,
			RestartDelay: time.Second,
			OnExit: func(err error) {
				t.logf("temporal %s exited by itself (%v); starting it again (log: %s)", s.Name, err, filepath.Join(o.Logs, "temporal-"+s.Name+".log"))
			},
		}
	}

	began = time.Now()
	if t.conn, err = grpc.NewClient(t.FrontendAddress(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return nil, err
	}
	// The frontend first: the first process of a new database writes the
	// cluster's metadata, and two doing it at once fail all but one (which
	// exit, to be restarted — noise at best). Then the others, together.
	if err := t.Frontend.Start(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := t.WaitUp(ctx, t.Frontend, o.StartTimeout); err != nil {
		return nil, err
	}
	rest := t.Services()[1:]
	for _, s := range rest {
		if err := s.Start(); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(rest))
	for i, s := range rest {
		wg.Go(func() { errs[i] = t.WaitUp(ctx, s, o.StartTimeout) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := t.WaitRings(ctx, o.StartTimeout); err != nil {
		return nil, err
	}
	t.logf("Temporal services up in %.1fs: %s", time.Since(began).Seconds(), t.describeServices())

	if n, err := t.HistoryShards(ctx); err == nil && n != int32(o.HistoryShards) {
		// Fixed when the database was created; the server keeps it.
		t.logf("the Temporal database keeps the %d history shards it was created with (asked: %d)", n, o.HistoryShards)
	}
	if err := t.ensureNamespace(ctx); err != nil {
		return nil, err
	}
	if uiPort != 0 {
		if t.ui, err = devserver.StartUI(ctx, devserver.UIOptions{
			IP: ip, Port: uiPort, FrontendAddress: t.FrontendAddress(), DefaultNamespace: o.Namespace,
			Logger: slog.New(slog.DiscardHandler),
		}); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	return t, nil
}

// forgetMembers removes the services of a previous run from the membership
// table. This cluster owns the database and none of its services runs yet,
// so they are all gone; left in (after a crash they look alive for a
// while), they are the seeds the new services' ringpop tries to join for
// up to maxJoinDuration (30 s) before starting alone.
func forgetMembers(ctx context.Context, pg *pgserver.Server) error {
	db, err := sql.Open("pgx", pg.URL(temporalDB))
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `DELETE FROM cluster_membership`); err != nil {
		return fmt.Errorf("cluster: clear the previous run's membership: %w", err)
	}
	return nil
}

func portOrAny(p int) int {
	if p == 0 {
		return -1
	}
	return p
}

func (t *Temporal) describeServices() string {
	var parts []string
	for _, s := range t.Services() {
		parts = append(parts, fmt.Sprintf("%s %s (pid %d)", s.Name, s.Address(), s.PID()))
	}
	return strings.Join(parts, ", ")
}

// serviceEnv is the environment a service renders the server's config
// template from: docker-compose.yml's settings of the temporal service
// (the databases, shards, log level, dynamic config), with this machine's
// addresses, and ports of the service's own — two history processes on one
// host need their own gRPC and membership ports, and every process its own
// pprof and metrics port.
func (t *Temporal) serviceEnv(s *Service, pgPortN int, dynamicConfig string) []string {
	o := t.opts
	pgPort := strconv.Itoa(pgPortN)
	env := map[string]string{
		"DB":                         "postgres12",
		"DB_PORT":                    pgPort,
		"VISIBILITY_DB_PORT":         pgPort, // 1.32's template falls back to DB_PORT; the module's config/docker.yaml does not
		"POSTGRES_SEEDS":             "127.0.0.1",
		"POSTGRES_USER":              "postgres",
		"POSTGRES_PWD":               "",
		"DBNAME":                     temporalDB,
		"VISIBILITY_DBNAME":          visibilityDB,
		"NUM_HISTORY_SHARDS":         strconv.Itoa(o.HistoryShards),
		"BIND_ON_IP":                 s.IP,
		"TEMPORAL_BROADCAST_ADDRESS": s.IP,
		"LOG_LEVEL":                  o.LogLevel,
		"DYNAMIC_CONFIG_FILE_PATH":   dynamicConfig,
		"PPROF_PORT":                 strconv.Itoa(s.Pprof),
		"PROMETHEUS_ENDPOINT":        net.JoinHostPort(s.IP, strconv.Itoa(s.Metrics)),
		// Every process knows the frontend (the others reach it through
		// the membership, but the template puts its port in the cluster
		// metadata of all).
		"FRONTEND_GRPC_PORT":       strconv.Itoa(t.Frontend.GRPC),
		"FRONTEND_HTTP_PORT":       strconv.Itoa(t.Frontend.HTTP),
		"FRONTEND_MEMBERSHIP_PORT": strconv.Itoa(t.Frontend.Membership),
	}
	prefix := map[string]string{RoleHistory: "HISTORY", RoleMatching: "MATCHING", RoleWorker: "WORKER"}[s.Role]
	if prefix != "" {
		env[prefix+"_GRPC_PORT"] = strconv.Itoa(s.GRPC)
		env[prefix+"_MEMBERSHIP_PORT"] = strconv.Itoa(s.Membership)
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// WaitUp waits until service s serves: its gRPC health check answers
// SERVING (a history process: once it holds its shards), or, for the worker
// service, which serves none, once it is in the membership ring. A service
// that exits meanwhile, or does not come up within, is named with its log.
func (t *Temporal) WaitUp(ctx context.Context, s *Service, within time.Duration) error {
	deadline := time.Now().Add(within)
	exitedBefore := s.Unexpected()
	var last error
	var conn *grpc.ClientConn
	if _, ok := healthNames[s.Role]; ok {
		var err error
		if conn, err = grpc.NewClient(s.Address(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return err
		}
		defer conn.Close()
	}
	for {
		if s.Unexpected() > exitedBefore {
			return fmt.Errorf("cluster: Temporal %s exited while starting (log: %s):\n%s", s.Name, s.LogPath(), tail(s.LogPath(), 12))
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if conn != nil {
			var resp *healthpb.HealthCheckResponse
			resp, last = healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{Service: healthNames[s.Role]})
			if last == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				last = fmt.Errorf("health %s", resp.GetStatus())
				// A history process turns SERVING once it holds its shards
				// — and never when the ring gives it none (4 shards over
				// 2 processes: one in eight starts). It is up all the same
				// once it is in the ring and every shard is held.
				if s.Role == RoleHistory && t.allShardsHeld(cctx, s) {
					last = nil
				}
			}
		} else {
			var members map[string][]string
			if members, last = t.Membership(cctx); last == nil && !slices.Contains(members[s.Role], s.Address()) {
				last = fmt.Errorf("not in the %s ring %v", s.Role, members[s.Role])
			}
		}
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: Temporal %s did not come up within %v (%v; log: %s):\n%s",
				s.Name, within, last, s.LogPath(), tail(s.LogPath(), 12))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitRings waits until the frontend's view of the membership holds every
// running service: proof that they found each other through the database.
func (t *Temporal) WaitRings(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		members, err := t.Membership(ctx)
		missing := []string{}
		for _, s := range t.Services() {
			if err == nil && s.Running() && !slices.Contains(members[s.Role], s.Address()) {
				missing = append(missing, s.Name)
			}
		}
		if err == nil && len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("cluster: the frontend does not describe the cluster: %w", err)
			}
			return fmt.Errorf("cluster: the membership lacks %v after %v (rings: %v)", missing, within, members)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (t *Temporal) describe(ctx context.Context) (*adminservice.DescribeClusterResponse, error) {
	return adminservice.NewAdminServiceClient(t.conn).DescribeCluster(ctx, &adminservice.DescribeClusterRequest{})
}

// Membership is the frontend's view of the rings: role → member addresses.
func (t *Temporal) Membership(ctx context.Context) (map[string][]string, error) {
	d, err := t.describe(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, ring := range d.GetMembershipInfo().GetRings() {
		for _, m := range ring.GetMembers() {
			out[ring.GetRole()] = append(out[ring.GetRole()], m.GetIdentity())
		}
	}
	return out, nil
}

// allShardsHeld reports whether s is in the history ring and the ring's
// members hold every shard between them.
func (t *Temporal) allShardsHeld(ctx context.Context, s *Service) bool {
	d, err := t.describe(ctx)
	if err != nil {
		return false
	}
	members, err := t.Membership(ctx)
	if err != nil || !slices.Contains(members[RoleHistory], s.Address()) {
		return false
	}
	owners, err := t.ShardOwners(ctx)
	if err != nil {
		return false
	}
	sum := 0
	for _, n := range owners {
		sum += n
	}
	return sum == int(d.GetHistoryShardCount())
}

// ShardOwners asks each history process in the ring which shards it owns:
// address → shard count.
func (t *Temporal) ShardOwners(ctx context.Context) (map[string]int, error) {
	members, err := t.Membership(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	admin := adminservice.NewAdminServiceClient(t.conn)
	for _, addr := range members[RoleHistory] {
		resp, err := admin.DescribeHistoryHost(ctx, &adminservice.DescribeHistoryHostRequest{HostAddress: addr})
		if err != nil {
			return nil, fmt.Errorf("describe history host %s: %w", addr, err)
		}
		out[addr] = int(resp.GetShardsNumber())
	}
	return out, nil
}

// ensureNamespace registers the namespace unless it exists and adds the
// search attributes it lacks, through the frontend's API as the
// temporal-setup job of docker-compose.yml does, then waits until the
// frontend lists them.
func (t *Temporal) ensureNamespace(ctx context.Context) error {
	o := t.opts
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := t.Dial(ctx, client.Options{Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return fmt.Errorf("cluster: dial %s: %w", t.FrontendAddress(), err)
	}
	defer c.Close()
	_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: o.Namespace})
	var nf *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &nf):
		if _, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        o.Namespace,
			WorkflowExecutionRetentionPeriod: durationpb.New(o.Retention),
		}); err != nil {
			var exists *serviceerror.NamespaceAlreadyExists
			if !errors.As(err, &exists) {
				return fmt.Errorf("cluster: register namespace %s: %w", o.Namespace, err)
			}
		}
		t.logf("namespace %s registered (retention %v)", o.Namespace, o.Retention)
	case err != nil:
		return fmt.Errorf("cluster: describe namespace %s: %w", o.Namespace, err)
	}
	// A new namespace reaches the other services' caches a moment later:
	// until then adding attributes fails with NotFound, and is retried.
	added := false
	for {
		have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: o.Namespace})
		missing := map[string]enumspb.IndexedValueType{}
		if err == nil {
			for name, typ := range o.SearchAttributes {
				if got, ok := have.GetCustomAttributes()[name]; !ok {
					missing[name] = typ
				} else if got != typ {
					return fmt.Errorf("cluster: search attribute %s is %v in namespace %s, want %v", name, got, o.Namespace, typ)
				}
			}
			if len(missing) == 0 {
				break
			}
			_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
				Namespace: o.Namespace, SearchAttributes: missing,
			})
			if err == nil {
				added = true
				t.logf("search attributes added: %v", slices.Sorted(maps.Keys(missing)))
				continue
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: register search attributes %v in %s: %w", slices.Sorted(maps.Keys(missing)), o.Namespace, err)
		case <-time.After(time.Second):
		}
	}
	if added {
		// The history and matching processes read a namespace's search
		// attributes from their namespace cache, which refreshes every 2 s
		// (system.namespaceCacheRefreshInterval): let it, before the first
		// workflow upserts them.
		time.Sleep(3 * time.Second)
	}
	return nil
}

// Stop stops the UI and the services (SIGTERM, SIGKILL after 10 s), all at
// once: nothing they hold is lost, it is in the database.
func (t *Temporal) Stop() error {
	if t.ui != nil {
		t.ui.Stop()
	}
	if t.conn != nil {
		t.conn.Close()
	}
	var wg sync.WaitGroup
	for _, s := range t.Services() {
		if s != nil && s.proc != nil {
			wg.Go(func() { s.proc.Shutdown(10 * time.Second) })
		}
	}
	wg.Wait()
	return nil
}

func tail(path string, n int) string { return supervise.Tail(path, n) }
