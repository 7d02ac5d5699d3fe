package cluster

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	serverconfig "go.temporal.io/server/common/config"
	"gopkg.in/yaml.v3"

	"ordersaga/deploy"
	"ordersaga/internal/pgserver"
	"ordersaga/internal/pgserver/pgservertest"
	"ordersaga/workflows"
)

const repoRoot = "../.."

// composeService is what these tests read of a service of
// docker-compose.yml.
type composeService struct {
	Image       string            `yaml:"image"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
}

func readCompose(t *testing.T) map[string]composeService {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Services
}

// composeDefault resolves a compose value ${NAME:-default} to its default.
func composeDefault(v string) string {
	if m := regexp.MustCompile(`^\$\{[A-Z_]+:-(.*)\}$`).FindStringSubmatch(v); m != nil {
		return m[1]
	}
	return v
}

// historyEnv is the environment of a cluster's first history process, its
// PostgreSQL on port 5433 and every port known: the frontend's 1–5
// (gRPC, membership, pprof, metrics, HTTP), its own 11–14.
func historyEnv() map[string]string {
	tp := &Temporal{opts: TemporalOptions{HistoryShards: DefaultHistoryShards, LogLevel: DefaultLogLevel}}
	tp.Frontend = &Service{Name: "frontend", Role: RoleFrontend, IP: "127.0.0.1", GRPC: 1, Membership: 2, Pprof: 3, Metrics: 4, HTTP: 5}
	hist := &Service{Name: "history-1", Role: RoleHistory, IP: "127.0.0.1", GRPC: 11, Membership: 12, Pprof: 13, Metrics: 14}
	env := map[string]string{}
	for _, kv := range tp.serviceEnv(hist, 5433, "/x/dynamicconfig.yaml") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// The cluster's Temporal is configured as docker-compose.yml configures the
// temporalio/server image: every variable compose gives the temporal
// service, the cluster gives each service process — with the same value
// where the value is not this machine's (host, port, credentials, the
// path the dynamic config is mounted at) — and the dynamic config is the
// very file compose mounts. The setup and schema jobs agree too.
func TestTemporalIsConfiguredAsDockerComposeConfiguresTheImage(t *testing.T) {
	services := readCompose(t)
	tmp := services["temporal"]
	if tmp.Environment == nil {
		t.Fatal("docker-compose.yml has no temporal service with an environment")
	}
	env := historyEnv()
	machine := []string{"DB_PORT", "POSTGRES_SEEDS", "POSTGRES_USER", "POSTGRES_PWD", "BIND_ON_IP", "DYNAMIC_CONFIG_FILE_PATH"}
	for _, k := range slices.Sorted(maps.Keys(tmp.Environment)) {
		got, ok := env[k]
		switch {
		case !ok:
			t.Errorf("compose gives the temporal service %s=%q; the cluster's processes do not get %s", k, tmp.Environment[k], k)
		case !slices.Contains(machine, k) && got != composeDefault(tmp.Environment[k]):
			t.Errorf("%s: the cluster runs %q, compose %q", k, got, tmp.Environment[k])
		}
	}
	if env["HISTORY_GRPC_PORT"] != "11" || env["HISTORY_MEMBERSHIP_PORT"] != "12" || env["PPROF_PORT"] != "13" ||
		env["PROMETHEUS_ENDPOINT"] != "127.0.0.1:14" || env["FRONTEND_GRPC_PORT"] != "1" {
		t.Errorf("a history process's own ports are not in its environment: %v", env)
	}

	// The dynamic config: the file compose mounts at DYNAMIC_CONFIG_FILE_PATH.
	mounted := ""
	for _, v := range tmp.Volumes {
		if src, dst, ok := strings.Cut(strings.TrimSuffix(v, ":ro"), ":"); ok && dst == tmp.Environment["DYNAMIC_CONFIG_FILE_PATH"] {
			mounted = src
		}
	}
	onDisk, err := os.ReadFile(filepath.Join(repoRoot, mounted))
	if mounted == "" || err != nil || string(onDisk) != string(deploy.TemporalDynamicConfig) {
		t.Errorf("compose mounts %q as the dynamic config (%v); the cluster runs deploy/temporal/dynamicconfig.yaml", mounted, err)
	}

	// The namespace and its search attributes, as the setup job registers them.
	setup := services["temporal-setup"].Environment
	if r := composeDefault(setup["NAMESPACE_RETENTION"]); r != DefaultRetention.String() && r != strings.TrimSuffix(DefaultRetention.String(), "0m0s") {
		t.Errorf("compose's namespace retention %s, the cluster's %v", r, DefaultRetention)
	}
	if ns := composeDefault(setup["TEMPORAL_NAMESPACE"]); ns != DefaultNamespace {
		t.Errorf("compose's namespace %q, the cluster's %q", ns, DefaultNamespace)
	}
	attrs := map[string]enumspb.IndexedValueType{}
	for _, pair := range strings.Fields(setup["SEARCH_ATTRIBUTES"]) {
		name, typ, _ := strings.Cut(pair, "=")
		attrs[name] = enumspb.IndexedValueType(enumspb.IndexedValueType_value["INDEXED_VALUE_TYPE_"+strings.ToUpper(typ)])
	}
	if !maps.Equal(attrs, workflows.SearchAttributes()) {
		t.Errorf("compose registers %v, the cluster %v", attrs, workflows.SearchAttributes())
	}

	// The schema job: the same databases, the same steps.
	schema := services["temporal-schema"].Environment
	if schema["DBNAME"] != temporalDB || schema["VISIBILITY_DBNAME"] != visibilityDB {
		t.Errorf("compose's schema job sets up %s and %s; the cluster %s and %s", schema["DBNAME"], schema["VISIBILITY_DBNAME"], temporalDB, visibilityDB)
	}
	script, err := os.ReadFile(filepath.Join(repoRoot, "deploy/temporal/schema.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"setup-schema -v 0.0", "update-schema -d", "postgresql/v12", "temporal/versioned", "visibility/versioned"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("deploy/temporal/schema.sh no longer runs %q, as the cluster does", want)
		}
	}
}

// renderServerConfig is the configuration the official server builds from
// env when it starts without a config file — as the temporalio/server
// image's entrypoint (`temporal-server start`) and the cluster's processes
// start it: its embedded template (common/config/config_template_embedded.yaml
// of the pinned module). unset are emptied first, which the template reads
// as unset.
func renderServerConfig(t *testing.T, env map[string]string, unset []string) *serverconfig.Config {
	t.Helper()
	for _, k := range unset {
		t.Setenv(k, "")
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	c, err := serverconfig.Load(serverconfig.WithEmbedded())
	if err != nil {
		t.Fatalf("the server's template refuses the environment %v: %v", env, err)
	}
	return c
}

// The server configuration a cluster's process renders is the one compose's
// environment renders in the image, but for this machine's addresses: both
// stores on postgres12 in the same databases, the same shard count, log
// level and dynamic config — and, on this machine, both stores (the
// visibility store too) on the cluster's own PostgreSQL port, each process
// on its own ports.
func TestServerRendersTheClusterConfigAsItRendersCompose(t *testing.T) {
	tmp := readCompose(t)["temporal"]
	compose := map[string]string{}
	for k, v := range tmp.Environment {
		compose[k] = composeDefault(v)
	}
	// What the image's entrypoint adds when BIND_ON_IP is 0.0.0.0: the
	// container's address.
	compose["TEMPORAL_BROADCAST_ADDRESS"] = "172.18.0.4"
	ours := historyEnv()
	var both []string // every variable either sets, emptied for the other
	for k := range compose {
		both = append(both, k)
	}
	for k := range ours {
		both = append(both, k)
	}

	type shape struct {
		Default, Visibility     serverconfig.SQL
		Shards                  int32
		LogLevel, DynamicConfig string
		DefaultName, VisName    string
	}
	shapeOf := func(c *serverconfig.Config) shape {
		var s shape
		s.DefaultName, s.VisName = c.Persistence.DefaultStore, c.Persistence.VisibilityStore
		for name, dst := range map[string]*serverconfig.SQL{s.DefaultName: &s.Default, s.VisName: &s.Visibility} {
			if ds, ok := c.Persistence.DataStores[name]; ok && ds.SQL != nil {
				*dst = *ds.SQL
			} else {
				t.Errorf("store %q is not an SQL store: %+v", name, ds)
			}
		}
		s.Shards, s.LogLevel = c.Persistence.NumHistoryShards, c.Log.Level
		if c.DynamicConfigClient != nil {
			s.DynamicConfig = c.DynamicConfigClient.Filepath
		}
		return s
	}
	fromCompose := shapeOf(renderServerConfig(t, compose, both))
	c := renderServerConfig(t, ours, both)
	fromCluster := shapeOf(c)

	for name, s := range map[string]shape{"compose": fromCompose, "cluster": fromCluster} {
		if s.Default.PluginName != "postgres12" || s.Visibility.PluginName != "postgres12" {
			t.Errorf("%s: stores on %q and %q; want postgres12 for both", name, s.Default.PluginName, s.Visibility.PluginName)
		}
	}
	if fromCompose.Default.ConnectAddr != "postgres:5432" || fromCompose.Visibility.ConnectAddr != "postgres:5432" {
		t.Errorf("compose: stores at %s and %s; want postgres:5432", fromCompose.Default.ConnectAddr, fromCompose.Visibility.ConnectAddr)
	}
	if fromCluster.Default.ConnectAddr != "127.0.0.1:5433" || fromCluster.Visibility.ConnectAddr != "127.0.0.1:5433" {
		t.Errorf("cluster: stores at %s and %s; want both at its PostgreSQL, 127.0.0.1:5433", fromCluster.Default.ConnectAddr, fromCluster.Visibility.ConnectAddr)
	}
	if fromCompose.DynamicConfig != tmp.Environment["DYNAMIC_CONFIG_FILE_PATH"] || fromCluster.DynamicConfig != "/x/dynamicconfig.yaml" {
		t.Errorf("dynamic config read from %q (compose) and %q (cluster)", fromCompose.DynamicConfig, fromCluster.DynamicConfig)
	}
	// Beyond this machine's addresses, credentials and mount path, the same.
	for _, s := range []*shape{&fromCompose, &fromCluster} {
		for _, sql := range []*serverconfig.SQL{&s.Default, &s.Visibility} {
			sql.ConnectAddr, sql.User, sql.Password = "", "", ""
		}
		s.DynamicConfig = ""
	}
	if !reflect.DeepEqual(fromCompose, fromCluster) {
		t.Errorf("the server renders\n  from compose %+v\n  from the cluster %+v", fromCompose, fromCluster)
	}

	// Each process on its own ports, known to the others.
	h, fe := c.Services[RoleHistory].RPC, c.Services[RoleFrontend].RPC
	if h.GRPCPort != 11 || h.MembershipPort != 12 || h.BindOnIP != "127.0.0.1" || fe.GRPCPort != 1 || fe.MembershipPort != 2 || fe.HTTPPort != 5 {
		t.Errorf("services' RPC: history %+v, frontend %+v", h, fe)
	}
	if c.Global.PProf.Port != 13 || c.Global.Metrics == nil || c.Global.Metrics.Prometheus == nil ||
		c.Global.Metrics.Prometheus.ListenAddress != "127.0.0.1:14" || c.Global.Membership.BroadcastAddress != "127.0.0.1" {
		t.Errorf("pprof %+v, metrics %+v, membership %+v", c.Global.PProf, c.Global.Metrics, c.Global.Membership)
	}
}

func startPG(t *testing.T, dir string) *pgserver.Server {
	t.Helper()
	pg, err := pgserver.Start(context.Background(), pgserver.Options{Dir: filepath.Join(dir, "pg"), MaxConnections: 300})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	return pg
}

// A frontend port that is taken stops the start before anything runs, and
// the error names it.
func TestTakenFrontendPortIsNamed(t *testing.T) {
	pgservertest.Need(t)
	dir := pgservertest.Dir(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = StartTemporal(context.Background(), TemporalOptions{
		Tools: Tools{Server: "/nonexistent/temporal-server", SQLTool: "/nonexistent/temporal-sql-tool"},
		PG:    startPG(t, dir), Dir: filepath.Join(dir, "temporal"), Logs: filepath.Join(dir, "logs"), FrontendPort: port,
	})
	if err == nil || !strings.Contains(err.Error(), "Temporal frontend port "+strconv.Itoa(port)+" on 127.0.0.1 is taken") {
		t.Fatalf("start with the frontend port taken: %v", err)
	}
}

// A Temporal service that does not come up is named, with its log and the
// log's last lines; everything started is stopped again.
func TestServiceThatDoesNotComeUpIsNamedWithItsLog(t *testing.T) {
	pgservertest.Need(t)
	dir := pgservertest.Dir(t)
	tools, err := FindTools(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	// The real server, except that matching refuses to start.
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = matching ] && { echo 'matching: refusing to start (test)'; exit 3; }; done\nexec " + tools.Server + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "temporal-server"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(tools.SQLTool, filepath.Join(bin, "temporal-sql-tool")); err != nil {
		t.Fatal(err)
	}
	wrapped, err := FindTools(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	logs := filepath.Join(dir, "logs")
	tp, err := StartTemporal(ctx, TemporalOptions{
		Tools: wrapped, PG: startPG(t, dir), Dir: filepath.Join(dir, "temporal"), Logs: logs,
	})
	if err == nil {
		_ = tp.Stop()
		t.Fatal("the cluster started without matching")
	}
	log := filepath.Join(logs, "temporal-matching.log")
	for _, want := range []string{"Temporal matching exited while starting", "log: " + log, "refusing to start (test)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// The balancer spreads requests over the replicas in turn, passes a body
// on, and sends a request a replica does not take to the next one.
func TestBalancerSpreadsAndSkipsAReplicaThatIsDown(t *testing.T) {
	replica := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b := make([]byte, 64)
			n, _ := r.Body.Read(b)
			w.Write([]byte(name + ":" + r.URL.Path + ":" + string(b[:n])))
		}))
	}
	a, b, down := replica("a"), replica("b"), replica("down")
	defer a.Close()
	defer b.Close()
	down.Close() // refuses connections from now on
	bal, err := NewBalancer([]string{a.URL, down.URL, b.URL})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(bal)
	defer front.Close()
	seen := map[string]int{}
	for i := range 30 {
		resp, err := http.Post(front.URL+"/v1/x", "application/json", strings.NewReader(`{"n":`+strconv.Itoa(i)+`}`))
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 128)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		name, rest, _ := strings.Cut(string(body[:n]), ":")
		if resp.StatusCode != http.StatusOK || rest != `/v1/x:{"n":`+strconv.Itoa(i)+`}` {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body[:n])
		}
		seen[name]++
	}
	if seen["a"] == 0 || seen["b"] == 0 || seen["down"] != 0 || seen["a"]+seen["b"] != 30 {
		t.Errorf("answered by %v; want both live replicas, never the one that is down", seen)
	}
	if served := bal.Served(); served[0] != seen["a"] || served[1] != 0 || served[2] != seen["b"] {
		t.Errorf("Served() %v, answers %v", served, seen)
	}
}

// Binaries given by directory must be there and be the pinned version:
// the error says which and what to build.
func TestTemporalBinariesOfAnotherVersionAreRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := FindTools(context.Background(), dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "temporal-server")) ||
		!strings.Contains(err.Error(), "go build -o") {
		t.Fatalf("an empty directory: %v; want the missing temporal-server named, and how to build it", err)
	}
	for name, out := range map[string]string{"temporal-server": "temporal version 1.30.4", "temporal-sql-tool": "temporal-sql-tool version 1.30.4"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho '"+out+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, err := FindTools(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "1.30.4") || !strings.Contains(err.Error(), PinnedServerVersion()) {
		t.Fatalf("binaries of 1.30.4: %v; want both versions named", err)
	}
}
