package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	grpcstatus "google.golang.org/grpc/status"

	"ordersaga/internal/status"
	"ordersaga/workflows"
)

// The no-op order: the same Temporal steps as a paid order's, in the same
// order — update-with-start (create), an activity, the search attributes,
// the deadline timer; the pay update with two activities; the payment
// signal, an activity, the search attributes, the timer cancelled, an
// activity; then waiting, as a paid order waits for the shop — with
// activities that do nothing. Driven the way the API drives an order, it is
// what the Temporal server and SDK cost without our code: the ceiling the
// order workflow is measured against.
const noopWorkflowName = "BenchNoopOrder"

// Activity names of the no-op (the order's, prefixed).
const (
	noopCreate  = "Noop" + workflows.ActivityCreateOrder
	noopCheck   = "Noop" + workflows.ActivityCheckStock
	noopPrepay  = "Noop" + workflows.ActivityRequestPayment
	noopMark    = "Noop" + workflows.ActivityMarkPaid
	noopDeduct  = "Noop" + workflows.ActivityDeductStock
	noopVersion = "bench-noop-shape"
)

// noopShape is which steps run as local activities, as the order workflow
// runs them for a new order (or none: NoopRegular).
type noopShape struct {
	local map[string]bool // by the order's activity name
}

func shapeFor(kinds string) noopShape {
	s := noopShape{local: map[string]bool{}}
	if kinds == NoopSameKinds {
		for _, name := range workflows.LocalActivities() {
			s.local[name] = true
		}
	}

	return s
}

// exec runs one step as the order workflow would: a local activity or a
// regular one, with options of the same kind.
func (s noopShape) exec(ctx workflow.Context, order, name, summary string, arg, out any) error {
	if s.local[order] {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 10 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			},
			Summary: summary,
		})
		return workflow.ExecuteLocalActivity(lctx, name, arg).Get(ctx, out)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
		},
	})
	return workflow.ExecuteActivity(actx, name, arg).Get(ctx, out)
}

func (s noopShape) workflow(ctx workflow.Context, in workflows.OrderInput) error {
	// The order workflow asks which path a new order takes (a marker and a
	// search attribute): the same here.
	workflow.GetVersion(ctx, noopVersion, workflow.DefaultVersion, 1)
	var (
		placed      bool
		created     workflows.CreatedOrder
		orderStatus = status.Pending
		inbox       []workflows.PaymentNotice
	)
	deadline := workflow.Now(ctx).Add(in.PayTimeout)
	view := func() workflows.OrderView {
		return workflows.OrderView{OrderNo: in.OrderNo, UserID: in.UserID, Status: orderStatus, TotalFen: created.TotalFen,
			Items: created.Items, PayDeadline: deadline, CreatedAt: created.CreatedAt}
	}
	if err := workflow.SetUpdateHandler(ctx, workflows.UpdateCreate, func(ctx workflow.Context) (workflows.OrderView, error) {
		if err := workflow.Await(ctx, func() bool { return placed }); err != nil {
			return workflows.OrderView{}, err
		}
		return view(), nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, workflows.UpdatePay, func(ctx workflow.Context) (workflows.PayParams, error) {
		if err := s.exec(ctx, workflows.ActivityCheckStock, noopCheck, "Check that order "+in.OrderNo+"'s items are still in stock", in.OrderNo, nil); err != nil {
			return workflows.PayParams{}, err
		}
		var p workflows.PayParams
		err := s.exec(ctx, workflows.ActivityRequestPayment, noopPrepay, "Create the WeChat Pay prepay of order "+in.OrderNo,
			workflows.RequestPaymentInput{OrderNo: in.OrderNo, UserID: in.UserID, TotalFen: created.TotalFen, TimeExpire: deadline}, &p)
		return p, err
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error {
		if !placed || orderStatus != status.Pending {
			return temporal.NewApplicationError("not payable", workflows.ErrTypeNotPayable)
		}
		return nil
	}}); err != nil {
		return err
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		ch := workflow.GetSignalChannel(ctx, workflows.SignalPayment)
		for {
			var p workflows.PaymentNotice
			ch.Receive(ctx, &p)
			inbox = append(inbox, p)
		}
	})
	publish := func() {
		_ = workflow.UpsertTypedSearchAttributes(ctx,
			workflows.AttrOrderNo.ValueSet(in.OrderNo),
			workflows.AttrOrderStatus.ValueSet(string(orderStatus)),
			workflows.AttrOrderUserID.ValueSet(strconv.FormatInt(in.UserID, 10)),
			workflows.AttrOrderAmountFen.ValueSet(created.TotalFen))
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** · %d fen", orderStatus, created.TotalFen))
	}

	if err := s.exec(ctx, workflows.ActivityCreateOrder, noopCreate, "Price the items, check stock and store order "+in.OrderNo,
		workflows.CreateOrderInput{OrderNo: in.OrderNo, UserID: in.UserID, Items: in.Items, PayDeadline: deadline}, &created); err != nil {
		return err
	}
	publish()
	placed = true

	timerCtx, stopTimer := workflow.WithCancel(ctx)
	timer := workflow.NewTimerWithOptions(timerCtx, deadline.Sub(workflow.Now(ctx)), workflow.TimerOptions{Summary: "Payment deadline"})
	if err := workflow.Await(ctx, func() bool { return len(inbox) > 0 || timer.IsReady() }); err != nil {
		return err
	}
	if len(inbox) == 0 {
		stopTimer()
		return nil // expired: not a path the bench takes
	}
	p := inbox[0]
	var res workflows.OrderStatusResult
	if err := s.exec(ctx, workflows.ActivityMarkPaid, noopMark, "Record payment "+p.TransactionID+" and mark order "+in.OrderNo+" PAID",
		workflows.MarkPaidInput{OrderNo: in.OrderNo, Payment: p}, &res); err != nil {
		return err
	}
	orderStatus = status.Paid
	publish()
	stopTimer()
	if err := s.exec(ctx, workflows.ActivityDeductStock, noopDeduct, "Deduct the stock of order "+in.OrderNo, in.OrderNo, nil); err != nil {
		return err
	}
	// Paid: waits for the shop, as a paid order does.
	return workflow.Await(ctx, func() bool { return false })
}

// noopActivities do nothing but tell the driver that an order's last step
// ran (as the order's last step is what the API then shows).
type noopActivities struct {
	mu   sync.Mutex
	done map[string]chan time.Time // by order number
}

func newNoopActivities() *noopActivities {
	return &noopActivities{done: map[string]chan time.Time{}}
}

func (a *noopActivities) waiter(orderNo string) chan time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := a.done[orderNo]
	if !ok {
		ch = make(chan time.Time, 1)
		a.done[orderNo] = ch
	}
	return ch
}

func (a *noopActivities) forget(orderNo string) {
	a.mu.Lock()
	delete(a.done, orderNo)
	a.mu.Unlock()
}

func (a *noopActivities) Create(_ context.Context, in workflows.CreateOrderInput) (workflows.CreatedOrder, error) {
	out := workflows.CreatedOrder{OrderNo: in.OrderNo, PayDeadline: in.PayDeadline, CreatedAt: time.Now().UTC()}
	for _, it := range in.Items {
		out.Items = append(out.Items, workflows.PricedItem{ProductID: it.ProductID, Name: "Bench product", UnitPriceFen: 1280, Quantity: it.Quantity})
		out.TotalFen += 1280 * it.Quantity
	}
	return out, nil
}

func (a *noopActivities) Check(context.Context, string) error { return nil }

func (a *noopActivities) Prepay(_ context.Context, in workflows.RequestPaymentInput) (workflows.PayParams, error) {
	return workflows.PayParams{TimeStamp: strconv.FormatInt(time.Now().Unix(), 10), NonceStr: "noop", Package: "prepay_id=noop-" + in.OrderNo,
		SignType: "RSA", PaySign: "noop"}, nil
}

func (a *noopActivities) Mark(context.Context, workflows.MarkPaidInput) (workflows.OrderStatusResult, error) {
	return workflows.OrderStatusResult{Status: status.Paid}, nil
}

func (a *noopActivities) Deduct(_ context.Context, orderNo string) error {
	select {
	case a.waiter(orderNo) <- time.Now():
	default:
	}
	return nil
}

func newNoopWorker(tc client.Client, opts sdkworker.Options, acts *noopActivities, kinds string) sdkworker.Worker {
	w := sdkworker.New(tc, noopQueue, opts)
	shape := shapeFor(kinds)
	w.RegisterWorkflowWithOptions(shape.workflow, workflow.RegisterOptions{Name: noopWorkflowName})
	for name, fn := range map[string]any{
		noopCreate: acts.Create, noopCheck: acts.Check, noopPrepay: acts.Prepay, noopMark: acts.Mark, noopDeduct: acts.Deduct,
	} {
		w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	return w
}

// noopDriver plays one no-op order the way the API plays an order: the
// create update with the start, the pay update, the payment signal; then it
// waits for the last step to have run.
type noopDriver struct {
	tc   client.Client
	acts *noopActivities
}

type noopTimes struct {
	create, pay, signal, done time.Duration
}

func (d noopDriver) play(ctx context.Context, orderNo string, userID int64) (noopTimes, string, error) {
	var t noopTimes
	t0 := time.Now()
	in := workflows.OrderInput{
		OrderNo: orderNo, UserID: userID, Items: []workflows.Item{{ProductID: 1, Quantity: 1}},
		PayTimeout: sagaPayTimeout, AppID: benchAppID, MchID: benchMchID,
	}
	start := d.tc.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       "noop-" + orderNo,
		TaskQueue:                noopQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrOrderNo.ValueSet(orderNo),
			workflows.AttrOrderUserID.ValueSet(strconv.FormatInt(userID, 10)),
			workflows.AttrOrderStatus.ValueSet(string(status.Pending))),
		StaticSummary: "Order " + orderNo + " · ¥12.80 · 1 item",
		StaticDetails: "User " + strconv.FormatInt(userID, 10) + " ordered (priced by the workflow from the database):\n- Bench product × 1\n",
	}, noopWorkflowName, in)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	h, err := d.tc.UpdateWithStartWorkflow(cctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions:          client.UpdateWorkflowOptions{UpdateName: workflows.UpdateCreate, WaitForStage: client.WorkflowUpdateStageCompleted},
	})
	var view workflows.OrderView
	if err == nil {
		err = h.Get(cctx, &view)
	}
	if err != nil {
		return t, "create", err
	}
	t1 := time.Now()
	t.create = t1.Sub(t0)

	ph, err := d.tc.UpdateWorkflow(cctx, client.UpdateWorkflowOptions{
		WorkflowID: "noop-" + orderNo, UpdateName: workflows.UpdatePay, WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	var params workflows.PayParams
	if err == nil {
		err = ph.Get(cctx, &params)
	}
	if err != nil {
		return t, "pay", err
	}
	t2 := time.Now()
	t.pay = t2.Sub(t1)

	done := d.acts.waiter(orderNo)
	defer d.acts.forget(orderNo)
	now := time.Now()
	if err := d.tc.SignalWorkflow(cctx, "noop-"+orderNo, "", workflows.SignalPayment, workflows.PaymentNotice{
		OutTradeNo: orderNo, TransactionID: "4200" + orderNo, TradeState: workflows.TradeSuccess, AppID: benchAppID, MchID: benchMchID,
		AmountFen: view.TotalFen, PayerTotalFen: view.TotalFen, Currency: "CNY", PayerOpenID: "o-bench", SuccessTime: &now, Source: "notify",
	}); err != nil {
		return t, "signal", err
	}
	t3 := time.Now()
	t.signal = t3.Sub(t2)
	select {
	case at := <-done:
		t.done = max(at.Sub(t3), 0)
	case <-cctx.Done():
		return t, "done", errors.Join(errTimeout, cctx.Err())
	}
	return t, "", nil
}

// temporalErrKind names a Temporal client error briefly.
func temporalErrKind(err error) string {
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &appErr):
		return appErr.Type()
	case errors.Is(err, errTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	var st interface{ GRPCStatus() *grpcstatus.Status }
	if errors.As(err, &st) {
		return st.GRPCStatus().Code().String()
	}
	return "error"
}
