package workflows_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// A signal Temporal accepts while the workflow task that continues as new
// is running — after the run took its signals into the state — is not
// lost: Temporal refuses to close the run while an event it has not
// delivered waits (the task fails, UnhandledCommand), and the next task,
// which delivers it, hands it on. Here it is a second payment, which the
// next run returns through a stray payment workflow.
func TestSignalAcceptedWhileTheRunContinuesGoesToTheNextRun(t *testing.T) {
	env, ctx := continuingStack(t)
	hold := &holdContinue{entered: make(chan struct{}), release: make(chan struct{})}
	env.StopWorker()
	env.StartWorkerWith(func(o *sdkworker.Options) {
		o.Interceptors = append(o.Interceptors, hold)
		o.DeadlockDetectionTimeout = time.Minute // the held task waits for the test
	})

	o := shippedOrder(t, env)
	no, id := o.no, workflows.WorkflowID(o.no)
	firstRun := runOf(t, ctx, env, id)
	held := false
	testenv.Eventually(t, time.Minute, "the run continuing as new", func() (bool, string) {
		select {
		case <-hold.entered:
			held = true
			return true, ""
		default:
		}
		if err := env.Temporal.SignalWorkflow(ctx, id, "", workflows.SignalPayment, o.repeat); err != nil {
			return false, err.Error()
		}
		return false, "not yet"
	})
	if !held {
		t.Fatal("no continue-as-new")
	}
	// The run has taken its signals and is about to continue as new.
	second := o.repeat
	second.TransactionID = "tx-window-" + no
	if err := env.Temporal.SignalWorkflow(ctx, id, "", workflows.SignalPayment, second); err != nil {
		t.Fatal(err)
	}
	close(hold.release)

	stray := workflows.StrayPaymentWorkflowID(second.TransactionID)
	testenv.Eventually(t, time.Minute, "the second payment handed to its workflow", func() (bool, string) {
		_, err := env.Temporal.DescribeWorkflowExecution(ctx, stray, "")
		return err == nil, "no workflow " + stray
	})
	latest, err := env.Temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	if latest.GetWorkflowExecutionInfo().GetExecution().GetRunId() == firstRun {
		t.Fatal("the order did not continue as new")
	}
	// The window was real: the first run's continue-as-new was refused once.
	refused := false
	for _, ev := range historyOf(t, env.Temporal.GetWorkflowHistory(ctx, id, firstRun, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)).GetEvents() {
		if a := ev.GetWorkflowTaskFailedEventAttributes(); a != nil && a.GetCause() == enumspb.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND {
			refused = true
		}
	}
	if !refused {
		t.Error("the first run has no workflow task failed for an unhandled command: the signal did not come in the window")
	}
	st := adminState(t, env, no)
	if st.Status != status.Shipped || !slices.ContainsFunc(st.Refunds, func(r workflows.RefundView) bool {
		return r.OutRefundNo == workflows.StrayRefundNo(second.TransactionID)
	}) {
		t.Errorf("state of the continued run: %s, refunds %+v; want SHIPPED, returning %s", st.Status, st.Refunds, second.TransactionID)
	}
	if r := env.Do(http.MethodPost, "/v1/orders/"+no+"/confirm", o.token, nil); r.Status != http.StatusOK {
		t.Fatalf("confirm: %d %s", r.Status, r.Body)
	}
	waitRow(t, env, no, status.Completed)
}

// holdContinue holds the first workflow task that continues an order as
// new, live, until the test releases it.
type holdContinue struct {
	interceptor.WorkerInterceptorBase
	entered, release chan struct{}
	once             sync.Once
}

func (h *holdContinue) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &holdInbound{interceptor.WorkflowInboundInterceptorBase{Next: next}, h}
}

type holdInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	h *holdContinue
}

func (i *holdInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&holdOutbound{interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, i.h})
}

type holdOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	h *holdContinue
}

func (o *holdOutbound) NewContinueAsNewError(ctx workflow.Context, wfn any, args ...any) error {
	if !workflow.IsReplaying(ctx) {
		o.h.once.Do(func() {
			close(o.h.entered)
			<-o.h.release
		})
	}
	return o.Next.NewContinueAsNewError(ctx, wfn, args...)
}
