package cluster_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"ordersaga/internal/apiclient"
	"ordersaga/internal/chaos"
	"ordersaga/internal/chaos/chaostest"
	"ordersaga/internal/cluster"
	"ordersaga/internal/paysim"
	"ordersaga/internal/pgserver/pgservertest"
	"ordersaga/internal/testenv"
)

// The cluster starts this test binary again as api, worker and migrate:
// with chaos.RoleEnv set it runs as that process, configured from the
// environment exactly as `ordersaga api` is.
func TestMain(m *testing.M) {
	if role := os.Getenv(chaos.RoleEnv); role != "" {
		os.Exit(chaos.RunRole(role))
	}
	os.Exit(m.Run())
}

// `ordersaga cluster` on free ports: the README's walk-through, run as
// written by bash and curl through the balancer, gets what its comments
// promise on the official server's separate processes — the two API
// replicas both answering, the history shards held by the two history
// processes that found each other through the database. Stopped, every
// process it started is gone; started again on the same directory, it
// reuses the schema (never drops it) and the order is still there.
func TestClusterServesTheREADMEWalkthroughAndKeepsItsData(t *testing.T) {
	pgservertest.Need(t)
	dir := pgservertest.Dir(t)
	log := chaostest.Log(t)
	opts := cluster.StackOptions{
		Dir: dir, APIPort: -1, FrontendPort: -1, UIPort: -1, PaySimPort: -1,
		Spawn: testenv.SpawnSelf(t, chaos.RoleEnv), Logf: log.Logf,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	began := time.Now()
	s, err := cluster.StartStack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			s.Stop()
		}
	}()
	t.Logf("cluster up in %.1fs", time.Since(began).Seconds())
	var banner bytes.Buffer
	s.PrintBanner(&banner)
	t.Log(banner.String())

	members, err := s.Temporal.Membership(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(members[cluster.RoleHistory]) != 2 || len(members[cluster.RoleMatching]) != 1 ||
		len(members[cluster.RoleWorker]) != 1 || len(members[cluster.RoleFrontend]) != 1 {
		t.Errorf("membership %v; want 1 frontend, 2 history, 1 matching, 1 worker", members)
	}
	owners, err := s.Temporal.ShardOwners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, n := range owners {
		held += n
	}
	if held != cluster.DefaultHistoryShards {
		t.Errorf("shards held %v; want all %d", owners, cluster.DefaultHistoryShards)
	}

	out, no := testenv.Walkthrough(t, "../../README.md", map[string]string{
		"API": s.APIURL, "SIM": s.SimURL, "ADMIN": s.AdminToken,
	})
	testenv.WalkthroughPromises(t, out, no)
	shipsAndCompletesThroughTheBalancer(ctx, t, s)
	if served := s.Balancer.Served(); len(served) != 2 || served[0] == 0 || served[1] == 0 {
		t.Errorf("requests answered per api replica %v; want both", served)
	}

	pids := []int{s.PG.PID()}
	for _, sv := range s.Temporal.Services() {
		pids = append(pids, sv.PID())
	}
	for _, p := range append(slices.Clone(s.APIs), s.Workers...) {
		pids = append(pids, p.PID())
	}
	s.Stop()
	stopped = true
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			t.Errorf("process %d (%s) still runs after Stop", pid, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}

	again, err := cluster.StartStack(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Stop()
	for _, line := range again.Temporal.Schema {
		if !strings.Contains(line, "reused") {
			t.Errorf("second start on the same directory: %q; want the schema reused", line)
		}
	}
	db, err := sql.Open("pgx", again.PG.URL("ordersaga"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var status string
	if err := db.QueryRowContext(ctx, `SELECT status FROM orders WHERE order_no = $1`, no).Scan(&status); err != nil {
		t.Fatalf("order %s after the restart: %v", no, err)
	}
	if status != "REFUNDING" && status != "REFUNDED" {
		t.Errorf("order %s is %s after the restart; want it refunded", no, status)
	}
	if d, err := again.Temporal.Dial(ctx, client.Options{Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))}); err != nil {
		t.Error(err)
	} else {
		if _, err := d.DescribeWorkflowExecution(ctx, "order-"+no, ""); err != nil {
			t.Errorf("the order's workflow after the restart: %v", err)
		}
		d.Close()
	}
}

// shipsAndCompletesThroughTheBalancer plays WeChat's shipping management
// on the cluster as compose's demo configures it: a paid order shipped
// through the admin API reaches the simulator from a worker (its access
// token from WECHAT_APP_SECRET), and the buyer's confirmation in WeChat
// comes back as a sealed push to the balancer, which one API replica
// opens (WECHAT_PUSH_TOKEN, WECHAT_PUSH_AES_KEY) and hands to the order:
// COMPLETED.
func shipsAndCompletesThroughTheBalancer(ctx context.Context, t *testing.T, s *cluster.Stack) {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second}
	call := func(method, path, token string, body any, want int) map[string]any {
		t.Helper()
		code, b, err := apiclient.Do(ctx, hc, method, s.APIURL+path, token, body)
		if err != nil || code != want {
			t.Fatalf("%s %s: %d %s %v; want %d", method, path, code, b, err, want)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
		return v
	}
	token, _ := call("POST", "/v1/auth/login", "", map[string]string{"code": "cluster-shipper"}, http.StatusOK)["token"].(string)
	products, _ := call("GET", "/v1/products", "", nil, http.StatusOK)["products"].([]any)
	if len(products) == 0 {
		t.Fatal("no products on the cluster")
	}
	product := products[0].(map[string]any)["id"]
	no, _ := call("POST", "/v1/orders", token, map[string]any{
		"items": []map[string]any{{"product_id": product, "quantity": 1}},
		"shipping_address": map[string]string{"receiver_name": "张三", "phone": "13800000000", "province": "广东省",
			"city": "广州市", "district": "天河区", "detail": "体育西路 1 号"},
	}, http.StatusCreated)["order_no"].(string)
	call("POST", "/v1/orders/"+no+"/pay", token, nil, http.StatusOK)
	if _, err := s.Sim.Pay(no); err != nil {
		t.Fatalf("the payer pays %s: %v", no, err)
	}
	orderStatus := func() string {
		v, _ := call("GET", "/v1/orders/"+no, token, nil, http.StatusOK)["status"].(string)
		return v
	}
	testenv.Eventually(t, time.Minute, "order "+no+" PAID", func() (bool, string) { st := orderStatus(); return st == "PAID", st })
	call("POST", "/v1/admin/orders/"+no+"/ship", s.AdminToken, map[string]any{
		"logistics_type": "express", "packages": []map[string]string{{"express_company": "YTO", "tracking_no": "YT4000000001"}},
	}, http.StatusOK)
	testenv.Eventually(t, time.Minute, "WeChat has the shipment of "+no, func() (bool, string) {
		v, _ := s.Sim.Shipping(no)
		return v.OrderState == paysim.ShipShipped && len(v.ShippingList) == 1, fmt.Sprintf("%+v", v)
	})
	if _, err := s.Sim.ConfirmReceipt(no); err != nil {
		t.Fatalf("the buyer confirms %s in WeChat: %v", no, err)
	}
	testenv.Eventually(t, time.Minute, "order "+no+" COMPLETED on WeChat's event", func() (bool, string) {
		st := orderStatus()
		return st == "COMPLETED", st
	})
	if v, _ := s.Sim.Shipping(no); len(v.Pushes) == 0 || v.Pushes[len(v.Pushes)-1].State != paysim.NotifyDelivered {
		t.Errorf("the settlement push: %+v", v.Pushes)
	}
}

// TestChaosOnCluster is the CI-sized chaos run on the cluster: orders
// through both API replicas and two workers on the official server's
// processes, every fault kind on — Temporal's own included: a history
// process killed until its shards have moved, the frontend restarted,
// matching killed until the membership dropped it, Temporal's PostgreSQL
// crashed — then every invariant. CHAOS_ORDERS and CHAOS_SEED override its
// size and seed (a failure prints the seed).
func TestChaosOnCluster(t *testing.T) {
	pgservertest.Need(t)
	orders, seed := chaostest.Size(t, 150)
	want := chaos.Restarts{WorkerKills: 2, APIRestarts: 1, PostgresRestarts: 1,
		HistoryKills: 1, FrontendRestarts: 1, MatchingKills: 1, TemporalPostgresRestarts: 1}
	r, err := chaos.Run(context.Background(), chaos.Options{
		Temporal:                 chaos.TemporalCluster,
		Orders:                   orders,
		Concurrency:              30,
		Seed:                     seed,
		PayTimeout:               6 * time.Second,
		AutoConfirm:              3 * time.Second,
		WorkerKills:              want.WorkerKills,
		APIRestarts:              want.APIRestarts,
		PostgresRestarts:         want.PostgresRestarts,
		HistoryKills:             want.HistoryKills,
		FrontendRestarts:         want.FrontendRestarts,
		MatchingKills:            want.MatchingKills,
		TemporalPostgresRestarts: want.TemporalPostgresRestarts,
		MaxDrive:                 4 * time.Minute,
		SettleTimeout:            3 * time.Minute,
		Timeout:                  8 * time.Minute,
		Spawn:                    testenv.SpawnSelf(t, chaos.RoleEnv),
		Log:                      chaostest.Log(t),
	})
	if err != nil {
		t.Fatalf("chaos run: %v", err)
	}
	chaostest.Check(t, r, chaos.FaultKinds(chaos.TemporalCluster), want)
	// Both API replicas took the payers' and WeChat's requests.
	if len(r.APIRequests) != 2 {
		t.Errorf("api requests %v; want both replicas", r.APIRequests)
	}
	for name, n := range r.APIRequests {
		if n == 0 {
			t.Errorf("api replica %s answered nothing: %v", name, r.APIRequests)
		}
	}
}

// A port that is taken stops the cluster before anything is made or
// started — before the Temporal binaries are even looked for (the tools
// here do not exist) — naming the port and the flag that moves it.
func TestTakenPortIsNamedWithItsFlag(t *testing.T) {
	for _, c := range []struct {
		flag, what string
		set        func(o *cluster.StackOptions, port int)
	}{
		{"-api-port", "API (balancer)", func(o *cluster.StackOptions, p int) { o.APIPort = p }},
		{"-paysim-port", "WeChat Pay simulator", func(o *cluster.StackOptions, p int) { o.PaySimPort = p }},
		{"-temporal-port", "Temporal frontend", func(o *cluster.StackOptions, p int) { o.FrontendPort = p }},
		{"-ui-port", "Temporal Web UI", func(o *cluster.StackOptions, p int) { o.UIPort = p }},
		{"-pg-port", "PostgreSQL", func(o *cluster.StackOptions, p int) { o.PGPort = p }},
	} {
		t.Run(c.flag, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			port := l.Addr().(*net.TCPAddr).Port
			dir := filepath.Join(t.TempDir(), "cluster")
			o := cluster.StackOptions{
				Dir: dir, APIPort: -1, FrontendPort: -1, UIPort: -1, PaySimPort: -1,
				TemporalBin: filepath.Join(t.TempDir(), "no-binaries-here"),
				Spawn:       testenv.SpawnSelf(t, chaos.RoleEnv),
			}
			c.set(&o, port)
			_, err = cluster.StartStack(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), c.what+" port "+strconv.Itoa(port)+" on 127.0.0.1 is taken") ||
				!strings.Contains(err.Error(), "("+c.flag+" moves it)") {
				t.Fatalf("start with the %s port taken: %v; want it named with %s", c.what, err, c.flag)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the data directory was made before the port was found taken (%v)", err)
			}
		})
	}
}

// A port flag past 65535 is refused as such, by its flag, before anything
// is made — not reported as a port that is taken.
func TestPortFlagOutOfRangeIsRefused(t *testing.T) {
	for _, flag := range []string{"-api-port", "-temporal-port", "-ui-port", "-paysim-port", "-pg-port"} {
		t.Run(flag, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cluster")
			var stdout, stderr bytes.Buffer
			err := cluster.RunCommand(context.Background(), []string{"-data", dir, flag, "70000"}, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), flag+" must be a port number, at most 65535 (got 70000)") {
				t.Fatalf("%s 70000: %v; want it refused by name", flag, err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the data directory was made (%v)", err)
			}
		})
	}
}

// The help names -temporal-bin's argument (a directory), not a fragment of
// its description.
func TestHelpNamesTheTemporalBinArgument(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := cluster.RunCommand(context.Background(), []string{"-h"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "-temporal-bin dir\n") {
		t.Errorf("help:\n%s\nwant the line \"-temporal-bin dir\"", stderr.String())
	}
}
