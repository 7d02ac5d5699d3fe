package workflows_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/worker"
	"ordersaga/workflows"
)

// An order whose history was already past the budget when the workers took
// workflows.ChangeHistoryBudget — a refund stalled for days, a shipped
// order WeChat kept notifying — is exactly what the change is for. Its
// first replay on a new worker goes through checks past the budget that
// the old worker never made (GetVersion answers DefaultVersion there, and
// keeps that answer for the rest of the run); the run must still continue
// as new at its first check made live, and its history must replay.
func TestOrderPastItsBudgetBeforeTheChangeContinuesOnANewWorker(t *testing.T) {
	env, ctx := continuingStack(t)
	// The workers of before the change: they never look at the history.
	env.StopWorker()
	env.StartWorkerWith(func(o *sdkworker.Options) { o.Interceptors = append(o.Interceptors, &beforeTheBudget{}) })

	o := shippedOrder(t, env)
	no, id := o.no, workflows.WorkflowID(o.no)
	firstRun := runOf(t, ctx, env, id)

	// WeChat repeats the payment's notify: the old workers' run grows well
	// past the point where Temporal suggests continuing, and goes on.
	const pastBudget = suggestAt + 40
	var length int64
	notifyUntil(t, ctx, env, o.repeat, "the old workers' run past the suggestion", func(d *workflowservice.DescribeWorkflowExecutionResponse) bool {
		if continuedFrom(firstRun)(d) {
			t.Fatalf("the old workers continued the order as new")
		}
		length = d.GetWorkflowExecutionInfo().GetHistoryLength()
		return length >= pastBudget && d.GetPendingWorkflowTask() == nil
	})
	t.Logf("the old workers left the run at %d events (Temporal suggests continuing from %d)", length, suggestAt)

	// The new workers take over: they replay the whole history first.
	env.StopWorker()
	env.StartWorker()
	notifyUntil(t, ctx, env, o.repeat, "the order's run continued as new on the new workers", continuedFrom(firstRun))
	old, err := env.Temporal.DescribeWorkflowExecution(ctx, id, firstRun)
	if err != nil {
		t.Fatal(err)
	}
	if st := old.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
		t.Fatalf("the first run is %s, want CONTINUED_AS_NEW", st)
	}
	t.Logf("the first run continued as new at %d events", old.GetWorkflowExecutionInfo().GetHistoryLength())

	// The whole first run — the old workers' tasks, the new workers' — replays.
	replayer := sdkworker.NewWorkflowReplayer()
	worker.RegisterWorkflows(replayer)
	h := env.Temporal.GetWorkflowHistory(ctx, id, firstRun, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var markers []string
	hist := historyOf(t, h)
	for _, ev := range hist.GetEvents() {
		if m := ev.GetMarkerRecordedEventAttributes(); m.GetMarkerName() == "Version" {
			var change string
			if err := converter.GetDefaultDataConverter().FromPayloads(m.GetDetails()["change-id"], &change); err != nil {
				t.Fatal(err)
			}
			markers = append(markers, change)
		}
	}
	t.Logf("version markers of the first run: %v", markers)
	if !slices.ContainsFunc(markers, func(c string) bool { return strings.HasPrefix(c, workflows.ChangeHistoryBudget) }) {
		t.Errorf("version markers %v: none for %s", markers, workflows.ChangeHistoryBudget)
	}
	if err := replayer.ReplayWorkflowHistory(nil, hist); err != nil {
		t.Fatalf("the first run does not replay: %v", err)
	}

	// The order goes on in the new run: the user confirms.
	if got := adminState(t, env, no); got.Status != status.Shipped {
		t.Fatalf("state after the switch: %+v", got)
	}
	if r := env.Do(http.MethodPost, "/v1/orders/"+no+"/confirm", o.token, nil); r.Status != http.StatusOK {
		t.Fatalf("confirm: %d %s", r.Status, r.Body)
	}
	var final workflows.OrderView
	if err := env.Temporal.GetWorkflow(ctx, id, "").Get(ctx, &final); err != nil {
		t.Fatal(err)
	}
	if got := []status.Order{status.Paid, status.Shipped, status.Completed}; !slices.Equal(statusesOf(final), got) {
		t.Errorf("transitions %v, want %v", statusesOf(final), got)
	}
	waitRow(t, env, no, status.Completed)
}

// placedOrder is an order placed, paid and shipped through the API, and
// WeChat's notify of its payment, to repeat.
type placedOrder struct {
	no, token string
	repeat    workflows.PaymentNotice
}

func shippedOrder(t *testing.T, env *testenv.Env) placedOrder {
	t.Helper()
	ps := env.Seed(store.Product{Name: "Long wait mug", PriceFen: 3900, Stock: 5})
	_, token := env.UserToken("o-" + t.Name())
	resp := env.Do(http.MethodPost, "/v1/orders", token, map[string]any{"items": []map[string]int64{{"product_id": ps[0].ID, "quantity": 1}}})
	if resp.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	var created struct {
		OrderNo string `json:"order_no"`
	}
	resp.JSON(t, &created)
	no := created.OrderNo
	if r := env.Do(http.MethodPost, "/v1/orders/"+no+"/pay", token, nil); r.Status != http.StatusOK {
		t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	tx, err := env.Sim.Pay(no)
	if err != nil {
		t.Fatal(err)
	}
	waitRow(t, env, no, status.Paid)
	if r := env.Do(http.MethodPost, "/v1/admin/orders/"+no+"/ship", env.Config.AdminToken, map[string]any{"tracking_no": "SF-" + no}); r.Status != http.StatusOK {
		t.Fatalf("ship: %d %s", r.Status, r.Body)
	}
	return placedOrder{no: no, token: token, repeat: workflows.PaymentNotice{OutTradeNo: no, TransactionID: tx.TransactionID,
		TradeState: workflows.TradeSuccess, AppID: tx.AppID, MchID: tx.MchID, AmountFen: tx.TotalFen, PayerTotalFen: tx.TotalFen,
		Currency: "CNY", Source: "notify"}}
}

// beforeTheBudget makes a worker run orders as the workers of before
// workflows.ChangeHistoryBudget did: the workflow sees no history length,
// size or suggestion, so it never reaches its budget and asks nothing.
type beforeTheBudget struct {
	interceptor.WorkerInterceptorBase
}

func (*beforeTheBudget) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &blindInbound{interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

type blindInbound struct {
	interceptor.WorkflowInboundInterceptorBase
}

func (i *blindInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&blindOutbound{interceptor.WorkflowOutboundInterceptorBase{Next: outbound}})
}

type blindOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
}

// GetInfo is the run's info without what the SDK keeps unexported: the
// history's length and size and Temporal's suggestion read as zero.
func (o *blindOutbound) GetInfo(ctx workflow.Context) *workflow.Info {
	i := o.Next.GetInfo(ctx)
	return &workflow.Info{WorkflowExecution: i.WorkflowExecution, WorkflowType: i.WorkflowType, TaskQueueName: i.TaskQueueName,
		Namespace: i.Namespace, Attempt: i.Attempt, WorkflowStartTime: i.WorkflowStartTime}
}

// historyOf reads a whole history.
func historyOf(t *testing.T, it client.HistoryEventIterator) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}
