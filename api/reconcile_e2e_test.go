package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"

	"ordersaga/internal/app"
	"ordersaga/internal/paysim"
	"ordersaga/internal/reconcile"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

var beijing = time.FixedZone("CST", 8*3600)

func billDate(t time.Time) string { return t.In(beijing).Format("2006-01-02") }

// billsAtOnce makes the simulator serve every day's bill now, today's too.
func billsAtOnce(t *testing.T, env *testenv.Env) {
	t.Helper()
	yes := true
	if _, err := env.Sim.UpdateSettings(paysim.Settings{BillsImmediate: &yes}); err != nil {
		t.Fatal(err)
	}
}

// reconcileClient is `ordersaga reconcile`'s client on this env's API.
func reconcileClient(env *testenv.Env) *reconcile.Client {
	return &reconcile.Client{BaseURL: env.URL, Token: env.Config.AdminToken}
}

// reconciled starts (or runs again) the reconciliation of date through the
// API and waits for its report, as `ordersaga reconcile -date` does.
func reconciled(t *testing.T, env *testenv.Env, date string) *reconcile.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := reconcileClient(env).Wait(ctx, date, true, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("reconcile %s: %v", date, err)
	}
	if r.Report == nil {
		t.Fatalf("reconcile %s: no report (latest run %+v, workflow %+v)", date, r.LatestRun, r.Workflow)
	}
	return r
}

// The "done when": after a few orders — paid, refunded, one refunded
// by hand at the merchant platform — the day's report lists exactly that
// refund as drift and matches everything else.
func TestReconciliationReportsExactlyTheRefundMadeByHand(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	billsAtOnce(t, env)
	ps := env.Seed(store.Product{Name: "Yunnan coffee beans 500g", PriceFen: 8800, Stock: 100},
		store.Product{Name: "Enamel mug", PriceFen: 3900, Stock: 100})
	_, token := env.UserToken("o-reconcile")
	kept, _ := placePaid(t, env, token, item{ps[0].ID, 2})
	refunded, _ := placePaid(t, env, token, item{ps[1].ID, 1})
	if resp := env.Do(http.MethodPost, "/v1/orders/"+refunded.OrderNo+"/refund", token, map[string]string{"reason": "changed my mind"}); resp.Status/100 != 2 {
		t.Fatalf("refund: %d %s", resp.Status, resp.Body)
	}
	waitStatus(t, env, refunded.OrderNo, status.Refunded)
	byHand, _ := placePaid(t, env, token, item{ps[0].ID, 1}, item{ps[1].ID, 1})
	handRefund, err := env.Sim.MerchantRefund(paysim.MerchantRefundInput{OutTradeNo: byHand.OrderNo, Reason: "goodwill, by hand"})
	if err != nil {
		t.Fatal(err)
	}
	place(t, env, token, item{ps[1].ID, 1}) // never paid: in no bill

	date := billDate(time.Now())
	r := reconciled(t, env, date)
	run := r.Report.Run
	if run.Drift != 1 || !maps.Equal(r.Report.DriftByKind, map[string]int64{store.DriftRefundNotInShop: 1}) || run.Explained != 0 {
		t.Fatalf("drift %d %v, explained %d:\n%+v", run.Drift, r.Report.DriftByKind, run.Explained, r.Drifts)
	}
	d := r.Drifts[0]
	if len(r.Drifts) != 1 || d.OutTradeNo != byHand.OrderNo || d.OutRefundNo != handRefund.OutRefundNo ||
		d.WechatFen == nil || *d.WechatFen != byHand.TotalFen || d.ShopFen != nil || d.OrderStatus != "PAID" {
		t.Fatalf("drift rows %+v", r.Drifts)
	}
	if run.WechatPayments != 3 || run.MatchedPayments != 3 || run.ShopPayments != 3 ||
		run.WechatRefunds != 2 || run.ShopRefunds != 1 || run.MatchedRefunds != 1 ||
		run.WechatPaymentFen != kept.TotalFen+refunded.TotalFen+byHand.TotalFen || run.ShopPaymentFen != run.WechatPaymentFen ||
		run.WechatRefundFen != refunded.TotalFen+byHand.TotalFen || run.ShopRefundFen != refunded.TotalFen {
		t.Errorf("run %+v", run)
	}
	if r.Workflow == nil || r.Workflow.WorkflowID != workflows.ReconcileWorkflowID(date) || r.Workflow.Status != "COMPLETED" {
		t.Errorf("workflow %+v", r.Workflow)
	}

	// What `ordersaga reconcile` prints, and the exit it asks for.
	var out bytes.Buffer
	reconcile.WriteText(&out, r)
	for _, want := range []string{"Reconciliation of " + date, "Drift:        1 (REFUND_NOT_IN_SHOP 1)", "Matched:      3 payments, 1 refunds",
		"DRIFT", "REFUND_NOT_IN_SHOP  ", handRefund.OutRefundNo, fmt.Sprintf("¥%d.%02d", byHand.TotalFen/100, byHand.TotalFen%100)} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report does not say %q:\n%s", want, out.String())
		}
	}
	// The command itself, on the stored report: it prints it and exits 1.
	out.Reset()
	var stderr bytes.Buffer
	err = reconcile.RunCommand(context.Background(), []string{"-date", date, "-api", env.URL, "-show"},
		func(k string) string { return map[string]string{"ADMIN_TOKEN": env.Config.AdminToken}[k] }, &out, &stderr)
	if !errors.Is(err, reconcile.ErrDrift) || !strings.Contains(out.String(), handRefund.OutRefundNo) {
		t.Errorf("ordersaga reconcile -show: %v\n%s%s", err, out.String(), stderr.String())
	}
	if err := reconcile.RunCommand(context.Background(), []string{"-date", date, "-api", env.URL}, func(string) string { return "" }, &out, &stderr); err == nil ||
		!strings.Contains(err.Error(), "ADMIN_TOKEN") {
		t.Errorf("without a token: %v", err)
	}
	if err := reconcile.RunCommand(context.Background(), []string{"-date", "5 Dec", "-token", "x"}, func(string) string { return "" }, &out, &stderr); err == nil {
		t.Error("a date that is not one was taken")
	}
	// The Web UI's details line says the counts; the metric counts the drift.
	md := workflowMetadata(t, env, workflows.ReconcileWorkflowID(date))
	if !strings.Contains(md.GetCurrentDetails(), "1 drift (REFUND_NOT_IN_SHOP 1)") {
		t.Errorf("current details %q", md.GetCurrentDetails())
	}
	counted := regexp.MustCompile(`(?m)^ordersaga_reconciliation_drift_total\{[^}]*kind="REFUND_NOT_IN_SHOP"[^}]*workflow_type="ReconcileWorkflow"[^}]*\} 1$`)
	if m := metricsText(t, env); !counted.MatchString(m) {
		t.Errorf("/metrics does not count the drift once:\n%s", grepLines(m, "ordersaga_reconciliation_drift_total"))
	}

	// Run again: the new run is the report, the old one superseded.
	again := reconciled(t, env, date)
	if again.Report.Run.ID == run.ID || again.Report.Run.Drift != 1 || again.LatestRun.ID != again.Report.Run.ID {
		t.Fatalf("rerun: report %+v latest %+v", again.Report.Run, again.LatestRun)
	}
	if old, err := env.Store.GetReconcileRun(context.Background(), run.ID); err != nil || old.Status != store.RunSuperseded {
		t.Errorf("first run after the rerun: %+v %v", old, err)
	}
}

// The runbook alerts on increase() of the drift counter and of the SDK's
// completed and failed ReconcileWorkflow runs. Prometheus sees no increase
// in a series whose first sample is already 1, so these series must exist
// at 0 from the worker's start — with the very labels the workflow then
// counts in — or the first drift of a kind (the first hand-made refund)
// after each worker start would never page.
func TestReconciliationCountersExistAtZeroFromTheWorkerStart(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	billsAtOnce(t, env)
	wfType := `workflow_type="` + workflows.ReconcileWorkflowName + `"`
	before := metricsText(t, env)
	var driftKinds []string
	for _, kind := range store.DriftKinds() {
		if !store.ExplainedKind(kind) {
			driftKinds = append(driftKinds, kind)
		}
	}
	declared := map[string]string{} // a series' labels before the run, by what it counts
	for _, what := range append(driftKinds, "completed", "failed") {
		name, match := "ordersaga_reconciliation_drift_total", `kind="`+what+`"`
		if what == "completed" || what == "failed" {
			name, match = "temporal_workflow_"+what+"_total", ""
		}
		got := seriesOf(before, name, wfType, match)
		if len(got) != 1 || got[0].value != "0" {
			t.Errorf("before any reconciliation, %s{%s} is %v; want one series at 0", name, match, got)
			continue
		}
		declared[what] = got[0].labels
	}

	ps := env.Seed(store.Product{Name: "Enamel mug", PriceFen: 3900, Stock: 10})
	_, token := env.UserToken("o-reconcile-metrics")
	o, _ := placePaid(t, env, token, item{ps[0].ID, 1})
	if _, err := env.Sim.MerchantRefund(paysim.MerchantRefundInput{OutTradeNo: o.OrderNo}); err != nil {
		t.Fatal(err)
	}
	if r := reconciled(t, env, billDate(time.Now())); r.Report.Run.Drift != 1 {
		t.Fatalf("drift %d %v, want the refund made by hand", r.Report.Run.Drift, r.Report.DriftByKind)
	}
	after := metricsText(t, env)
	for what, name := range map[string]string{store.DriftRefundNotInShop: "ordersaga_reconciliation_drift_total",
		"completed": "temporal_workflow_completed_total"} {
		match := `kind="` + what + `"`
		if what == "completed" {
			match = ""
		}
		got := seriesOf(after, name, wfType, match)
		if len(got) != 1 || got[0].value != "1" || got[0].labels != declared[what] {
			t.Errorf("after the run, %s{%s} is %v; want the series declared before (%s) at 1", name, match, got, declared[what])
		}
	}
}

type metricSeries struct{ labels, value string }

// seriesOf lists the series of a metric in /metrics text whose labels
// contain every one of match.
func seriesOf(text, name string, match ...string) []metricSeries {
	var out []metricSeries
	line := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\{([^}]*)\} (\S+)$`)
	for _, l := range strings.Split(text, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ok := true
		for _, s := range match {
			ok = ok && strings.Contains(m[1], s)
		}
		if ok {
			out = append(out, metricSeries{m[1], m[2]})
		}
	}
	return out
}

func workflowMetadata(t *testing.T, env *testenv.Env, workflowID string) *sdkpb.WorkflowMetadata {
	t.Helper()
	v, err := env.Temporal.QueryWorkflow(context.Background(), workflowID, "", "__temporal_workflow_metadata")
	if err != nil {
		t.Fatalf("metadata of %s: %v", workflowID, err)
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		t.Fatalf("metadata of %s: %v", workflowID, err)
	}
	return &md
}

func TestReconciliationEndpointsRefuseBadRequests(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	admin := env.Config.AdminToken
	tomorrow := billDate(time.Now().Add(24 * time.Hour))
	for _, c := range []struct {
		name   string
		body   any
		token  string
		status int
		code   string
	}{
		{"no bill_date", map[string]any{}, admin, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"not a date", map[string]any{"bill_date": "2026-13-01"}, admin, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"another format", map[string]any{"bill_date": "20261205"}, admin, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"a day to come", map[string]any{"bill_date": tomorrow}, admin, http.StatusBadRequest, "INVALID_ARGUMENT"},
		// WeChat keeps bills for three months: the run could only fail (and page).
		{"a day whose bill WeChat no longer keeps", map[string]any{"bill_date": billDate(time.Now().AddDate(0, -4, 0))}, admin,
			http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"an unknown field", map[string]any{"bill_date": "2026-12-01", "force": true}, admin, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"not JSON", "bill_date=2026-12-01", admin, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"no admin token", map[string]any{"bill_date": "2026-12-01"}, "", http.StatusUnauthorized, "UNAUTHENTICATED"},
	} {
		resp := env.Do(http.MethodPost, "/v1/admin/reconciliations", c.token, c.body)
		if resp.Status != c.status || resp.ErrorCode() != c.code {
			t.Errorf("POST %s: %d %s, want %d %s", c.name, resp.Status, resp.Body, c.status, c.code)
		}
	}
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/v1/admin/reconciliations/2026-12-32", http.StatusBadRequest},
		{"/v1/admin/reconciliations/yesterday", http.StatusBadRequest},
		{"/v1/admin/reconciliations/2020-01-01", http.StatusNotFound},
		{"/v1/admin/reconciliations/2020-01-01?limit=0", http.StatusBadRequest},
		{"/v1/admin/reconciliations/2020-01-01?cursor=x", http.StatusBadRequest},
	} {
		if resp := env.Do(http.MethodGet, c.path, admin, nil); resp.Status != c.status {
			t.Errorf("GET %s: %d %s, want %d", c.path, resp.Status, resp.Body, c.status)
		}
	}
	for _, date := range []string{"2026-12-01", billDate(time.Now().AddDate(0, -4, 0))} {
		if report, latest, err := env.Store.ReconcileReport(context.Background(), date); err != nil || report != nil || latest != nil {
			t.Errorf("a refused request left a run of %s: %+v %+v %v", date, report, latest, err)
		}
	}
}

// A bill that comes broken once is downloaded again, and only the good one
// becomes the report.
func TestReconciliationDownloadsABadBillAgain(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	billsAtOnce(t, env)
	ps := env.Seed(store.Product{Name: "Tea", PriceFen: 1280, Stock: 10})
	_, token := env.UserToken("o-badbill")
	placePaid(t, env, token, item{ps[0].ID, 1})
	if _, err := env.Sim.ApplyFaults(paysim.Faults{Bill: &paysim.BillFaults{Corrupt: paysim.BillBadSummary}}); err != nil {
		t.Fatal(err)
	}
	// `ordersaga reconcile` says why while the attempt waits to be made
	// again (seconds of backoff; it asks every 100 ms).
	var progress bytes.Buffer
	cl := reconcileClient(env)
	cl.Progress = &progress
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := cl.Wait(ctx, billDate(time.Now()), true, 100*time.Millisecond)
	if err != nil || r.Report == nil {
		t.Fatalf("reconcile: %v %+v", err, r)
	}
	if r.Report.Run.Drift != 0 || r.Report.Run.MatchedPayments != 1 || r.LatestRun.ID != r.Report.Run.ID || r.Report.Run.Error != "" {
		t.Fatalf("report %+v", r.Report.Run)
	}
	if !strings.Contains(progress.String(), "an attempt failed, retrying") || !strings.Contains(progress.String(), "does not add up") {
		t.Errorf("while retrying, the command said %q; want why the attempt failed", progress.String())
	}
	h := env.Temporal.GetWorkflowHistory(context.Background(), workflows.ReconcileWorkflowID(r.BillDate), "", false, 0)
	attempts := 0
	for h.HasNext() {
		e, err := h.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil && a.GetLastFailure() != nil &&
			strings.Contains(a.GetLastFailure().GetMessage(), "does not add up") {
			attempts = int(a.GetAttempt())
		}
	}
	if attempts != 2 {
		t.Errorf("the activity that read the bad bill ended at attempt %d, want 2", attempts)
	}
}

// The worker keeps the schedule reconcile-daily: made once, left alone when
// it is as wanted, brought back to this version (still paused, if an
// operator paused it) when not — and a run the schedule takes late
// reconciles the day of its scheduled time.
func TestReconcileScheduleIsMadeOnceAndReconcilesTheDayBeforeItsTime(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	billsAtOnce(t, env)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	sc := env.Temporal.ScheduleClient()
	h := sc.GetHandle(ctx, workflows.ReconcileScheduleID)
	t.Cleanup(func() { _ = h.Delete(context.Background()) })

	if err := app.EnsureReconcileSchedule(ctx, env.Temporal, "some-other-queue", log); err != nil {
		t.Fatal(err)
	}
	if err := h.Pause(ctx, client.SchedulePauseOptions{Note: "paused by an operator"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := app.EnsureReconcileSchedule(ctx, env.Temporal, env.TaskQueue, log); err != nil {
			t.Fatal(err)
		}
	}
	d, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || a.TaskQueue != env.TaskQueue || a.Workflow != workflows.ReconcileDailyWorkflowName {
		t.Fatalf("action %+v", d.Schedule.Action)
	}
	if !d.Schedule.State.Paused || d.Schedule.Spec.TimeZoneName != "Asia/Shanghai" ||
		d.Schedule.Policy.CatchupWindow != 24*time.Hour || d.Schedule.Policy.Overlap.String() != "Skip" {
		t.Errorf("schedule %+v %+v %+v", d.Schedule.State, d.Schedule.Spec, d.Schedule.Policy)
	}
	// Listed, as the Web UI's Schedules page lists it.
	it, err := sc.List(ctx, client.ScheduleListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		listed = listed || e.ID == workflows.ReconcileScheduleID
	}
	if !listed {
		t.Error("reconcile-daily is not listed")
	}

	// Taken late: the run of three days ago at 10:30 Beijing time, now.
	now := time.Now().In(beijing)
	at := time.Date(now.Year(), now.Month(), now.Day(), 10, 30, 0, 0, beijing).AddDate(0, 0, -3)
	want := billDate(at.AddDate(0, 0, -1))
	if err := h.Backfill(ctx, client.ScheduleBackfillOptions{Backfill: []client.ScheduleBackfill{
		{Start: at.Add(-time.Minute), End: at.Add(time.Minute)},
	}}); err != nil {
		t.Fatal(err)
	}
	var r *reconcile.Report
	testenv.Eventually(t, 2*time.Minute, "the backfilled run reconciles "+want, func() (bool, string) {
		got, err := reconcileClient(env).Get(ctx, want)
		if err != nil {
			return false, err.Error()
		}
		r = got
		return got.Report != nil, fmt.Sprintf("%+v", got.LatestRun)
	})
	if r.Report.Run.BillState != store.BillNone || r.Report.Run.WorkflowID != workflows.ReconcileWorkflowID(want) {
		t.Errorf("report of %s: %+v", want, r.Report.Run)
	}
}
