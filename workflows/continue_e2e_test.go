package workflows_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// suggestAt is the history length at which the embedded Temporal of this
// test suggests continuing as new: an order continues a few steps after it
// ships.
const suggestAt = 80

// On the real server (the embedded Temporal, PostgreSQL, the simulator, the
// API over HTTP), an order that continues as new is the same order to
// everyone who looks: the API (which asks the latest run), the state
// query, the search attributes operators filter on, the memo the API keeps
// of its creation, and the Web UI's summary line — which Temporal does not
// carry to a continued run, so the run's details line carries it.
func TestContinuedOrderIsTheSameOrderOnTheRealServer(t *testing.T) {
	env, ctx := continuingStack(t)
	ps := env.Seed(store.Product{Name: "Long wait mug", PriceFen: 3900, Stock: 5})
	uid, token := env.UserToken("o-continued")
	admin := env.Config.AdminToken

	// Created with an Idempotency-Key: the API keeps its request in the memo.
	resp := env.DoWith(http.MethodPost, "/v1/orders", token, map[string]any{"items": []map[string]int64{{"product_id": ps[0].ID, "quantity": 1}}},
		func(r *http.Request) { r.Header.Set("Idempotency-Key", "continued-order-1") })
	if resp.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	var created struct {
		OrderNo string `json:"order_no"`
	}
	resp.JSON(t, &created)
	no, id := created.OrderNo, workflows.WorkflowID(created.OrderNo)
	if r := env.Do(http.MethodPost, "/v1/orders/"+no+"/pay", token, nil); r.Status != http.StatusOK {
		t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	tx, err := env.Sim.Pay(no)
	if err != nil {
		t.Fatal(err)
	}
	waitRow(t, env, no, status.Paid)
	if r := env.Do(http.MethodPost, "/v1/admin/orders/"+no+"/ship", admin, map[string]any{"tracking_no": "SF80"}); r.Status != http.StatusOK {
		t.Fatalf("ship: %d %s", r.Status, r.Body)
	}
	first, err := env.Temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	firstRun := first.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	before := adminState(t, env, no)

	// WeChat repeats the payment's notify until the history is long enough
	// for Temporal to suggest continuing; each repeat wakes the order.
	repeat := workflows.PaymentNotice{OutTradeNo: no, TransactionID: tx.TransactionID, TradeState: workflows.TradeSuccess,
		AppID: tx.AppID, MchID: tx.MchID, AmountFen: tx.TotalFen, PayerTotalFen: tx.TotalFen, Currency: "CNY", Source: "notify"}
	var latest *workflowservice.DescribeWorkflowExecutionResponse
	notifyUntil(t, ctx, env, repeat, "the order's workflow continued as new", func(d *workflowservice.DescribeWorkflowExecutionResponse) bool {
		latest = d
		return continuedFrom(firstRun)(d)
	})
	old, err := env.Temporal.DescribeWorkflowExecution(ctx, id, firstRun)
	if err != nil {
		t.Fatal(err)
	}
	if st := old.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
		t.Fatalf("the first run is %s, want CONTINUED_AS_NEW", st)
	}
	firstEvents := old.GetWorkflowExecutionInfo().GetHistoryLength()
	t.Logf("the first run continued as new at %d events (Temporal suggests it from %d)", firstEvents, suggestAt)
	if firstEvents < suggestAt || firstEvents > suggestAt+20 {
		t.Errorf("the first run ended at %d events; want it to continue soon after %d", firstEvents, suggestAt)
	}

	// Search attributes and memo, as the first run had them.
	info := latest.GetWorkflowExecutionInfo()
	attrs := info.GetSearchAttributes()
	for name, want := range map[string]string{
		workflows.AttrOrderNo.GetName(): no, workflows.AttrOrderStatus.GetName(): string(status.Shipped),
		workflows.AttrOrderUserID.GetName(): strconv.FormatInt(uid, 10),
	} {
		if got := payloadString(t, attrs.GetIndexedFields()[name]); got != want {
			t.Errorf("search attribute %s of the continued run = %q, want %q", name, got, want)
		}
	}
	var amount int64
	if p := attrs.GetIndexedFields()[workflows.AttrOrderAmountFen.GetName()]; p == nil || converter.GetDefaultDataConverter().FromPayload(p, &amount) != nil || amount != 3900 {
		t.Errorf("OrderAmountFen of the continued run = %d, want 3900", amount)
	}
	if len(first.GetWorkflowExecutionInfo().GetMemo().GetFields()) == 0 {
		t.Fatal("the first run has no memo to carry")
	}
	for k, v := range first.GetWorkflowExecutionInfo().GetMemo().GetFields() {
		if got := info.GetMemo().GetFields()[k]; got == nil || string(got.GetData()) != string(v.GetData()) {
			t.Errorf("memo %s of the continued run = %v, want %s", k, got, v.GetData())
		}
	}
	// The summary: the first run's static one, the continued run's details.
	summary := payloadString(t, first.GetExecutionConfig().GetUserMetadata().GetSummary())
	if !strings.HasPrefix(summary, "Order "+no+" · ¥39.00 · 1 item") {
		t.Fatalf("the first run's summary is %q", summary)
	}
	t.Logf("static summary of the continued run: %q (Temporal does not carry it)", payloadString(t, latest.GetExecutionConfig().GetUserMetadata().GetSummary()))
	md := metadata(t, env, id)
	if !strings.HasPrefix(md.GetCurrentDetails(), summary+" · run 2") {
		t.Errorf("the continued run's details begin %q; want the order's summary %q and its run", firstLine(md.GetCurrentDetails()), summary)
	}

	// The state query (through the admin API, which asks the latest run).
	after := adminState(t, env, no)
	if after.Status != status.Shipped || !slices.Equal(after.Transitions, before.Transitions) || after.TransactionID != before.TransactionID {
		t.Errorf("state after the switch %+v\nbefore %+v", after, before)
	}

	// The continued run goes on: the user confirms through the API.
	if r := env.Do(http.MethodPost, "/v1/orders/"+no+"/confirm", token, nil); r.Status != http.StatusOK {
		t.Fatalf("confirm: %d %s", r.Status, r.Body)
	}
	var final workflows.OrderView
	if err := env.Temporal.GetWorkflow(ctx, id, "").Get(ctx, &final); err != nil {
		t.Fatal(err)
	}
	if final.Status != status.Completed || waitRow(t, env, no, status.Completed).Status != status.Completed {
		t.Fatalf("final %s", final.Status)
	}
	if got := []status.Order{status.Paid, status.Shipped, status.Completed}; !slices.Equal(statusesOf(final), got) {
		t.Errorf("transitions %v, want %v", statusesOf(final), got)
	}
	// Visibility lists two runs of one workflow ID: the continued one, and
	// the one that ended the order.
	var runs []enumspb.WorkflowExecutionStatus
	testenv.Eventually(t, 30*time.Second, "visibility lists both runs", func() (bool, string) {
		list, err := env.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: `WorkflowId="` + id + `"`})
		if err != nil {
			return false, err.Error()
		}
		runs = runs[:0]
		for _, e := range list.GetExecutions() {
			runs = append(runs, e.GetStatus())
		}
		return len(runs) == 2 && slices.Contains(runs, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED), ""
	})
	if !slices.Contains(runs, enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW) {
		t.Errorf("runs listed %v", runs)
	}
}

// continuingStack is the stack on an embedded Temporal of its own that
// suggests continuing as new from suggestAt events, and a context for the
// test's calls.
func continuingStack(t *testing.T) (*testenv.Env, context.Context) {
	t.Helper()
	ts, err := testenv.TemporalWithLimits(testenv.Limits{SuggestContinueAsNew: suggestAt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Stop() }) // after the stack's own cleanups
	env := testenv.New(t, ts, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return env, ctx
}

// notifyUntil sends WeChat's notify of an order's payment again and again
// until done says so of the order's workflow (its latest run).
func notifyUntil(t *testing.T, ctx context.Context, env *testenv.Env, repeat workflows.PaymentNotice, what string,
	done func(*workflowservice.DescribeWorkflowExecutionResponse) bool) {
	t.Helper()
	id := workflows.WorkflowID(repeat.OutTradeNo)
	testenv.Eventually(t, time.Minute, what, func() (bool, string) {
		if err := env.Temporal.SignalWorkflow(ctx, id, "", workflows.SignalPayment, repeat); err != nil {
			return false, err.Error()
		}
		d, err := env.Temporal.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return false, err.Error()
		}
		return done(d), fmt.Sprintf("run %s, %d events", d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), d.GetWorkflowExecutionInfo().GetHistoryLength())
	})
}

// runOf is the run ID of a workflow's latest run.
func runOf(t *testing.T, ctx context.Context, env *testenv.Env, id string) string {
	t.Helper()
	d, err := env.Temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

// continuedFrom reports whether the workflow's latest run is not run.
func continuedFrom(run string) func(*workflowservice.DescribeWorkflowExecutionResponse) bool {
	return func(d *workflowservice.DescribeWorkflowExecutionResponse) bool {
		return d.GetWorkflowExecutionInfo().GetExecution().GetRunId() != run
	}
}

func waitRow(t *testing.T, env *testenv.Env, no string, want status.Order) store.Order {
	t.Helper()
	var o store.Order
	testenv.Eventually(t, time.Minute, "order "+no+" "+string(want), func() (bool, string) {
		var err error
		o, err = env.Store.GetOrder(context.Background(), no)
		if err != nil {
			return false, err.Error()
		}
		return o.Status == want, string(o.Status)
	})
	return o
}

func adminState(t *testing.T, env *testenv.Env, no string) workflows.OrderView {
	t.Helper()
	r := env.Do(http.MethodGet, "/v1/admin/orders/"+no, env.Config.AdminToken, nil)
	var d struct {
		State      *workflows.OrderView `json:"state"`
		StateError string               `json:"state_error"`
	}
	r.JSON(t, &d)
	if r.Status != http.StatusOK || d.State == nil {
		t.Fatalf("admin order %s: %d %s", no, r.Status, r.Body)
	}
	return *d.State
}

func metadata(t *testing.T, env *testenv.Env, id string) *sdkpb.WorkflowMetadata {
	t.Helper()
	v, err := env.Temporal.QueryWorkflow(context.Background(), id, "", "__temporal_workflow_metadata")
	if err != nil {
		t.Fatal(err)
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		t.Fatal(err)
	}
	return &md
}

func payloadString(t *testing.T, p *commonpb.Payload) string {
	t.Helper()
	var s string
	if p != nil {
		if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
			t.Fatalf("payload %s: %v", p.GetData(), err)
		}
	}
	return s
}

func statusesOf(v workflows.OrderView) []status.Order {
	var out []status.Order
	for _, tr := range v.Transitions {
		out = append(out, tr.To)
	}
	return out
}

func firstLine(s string) string { before, _, _ := strings.Cut(s, "\n"); return before }
