package chaos

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"ordersaga/internal/paysim"
	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// Loading what the checks read — the settled stack's database, the
// simulator's transactions, Temporal's workflows and visibility listings,
// the admin API's list of flagged orders — into the checker's plain
// fields, which the invariants in check.go read (a test fills them by
// hand instead).

// check takes the settled stack's state — database, simulator, Temporal —
// and checks every invariant.
func (h *harness) check(ctx context.Context) (*Report, error) {
	c := newChecker()
	c.h = h
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	if err := c.describeWorkflows(ctx); err != nil {
		return nil, err
	}
	if err := c.loadStrays(ctx); err != nil {
		return nil, err
	}
	if err := c.loadFlagged(ctx); err != nil {
		return nil, err
	}
	c.summarise()
	c.money()
	c.agreement()
	c.stockCheck()
	c.shippingCheck()
	c.orderWorkflows()
	if err := c.visibility(ctx); err != nil {
		return nil, err
	}
	c.strayChecks()
	c.promises()
	c.reconcile(ctx)
	c.attachHistories(ctx, 5)
	return c.r, nil
}

func (c *checker) load(ctx context.Context) error {
	db := c.h.db
	c.now = time.Now()
	query := func(q string, scan func(*sql.Rows) error) error {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return fmt.Errorf("chaos: %s: %w", q, err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	c.rows = map[string]*orderRow{}
	if err := query(`SELECT order_no, status, total_fen, transaction_id, flag, shipped_at IS NOT NULL, pay_deadline, refunded_fen FROM orders`, func(r *sql.Rows) error {
		o := &orderRow{items: map[int64]int64{}}
		if err := r.Scan(&o.no, &o.status, &o.total, &o.txID, &o.flag, &o.shipped, &o.deadline, &o.refundedFen); err != nil {
			return err
		}
		c.rows[o.no] = o
		return nil
	}); err != nil {
		return err
	}
	if err := query(`SELECT order_no, product_id, quantity FROM order_items`, func(r *sql.Rows) error {
		var no string
		var p, q int64
		if err := r.Scan(&no, &p, &q); err != nil {
			return err
		}
		if o := c.rows[no]; o != nil {
			o.items[p] += q
		}
		return nil
	}); err != nil {
		return err
	}
	c.stock = map[int64]int64{}
	if err := query(`SELECT id, stock FROM products`, func(r *sql.Rows) error {
		var id, s int64
		if err := r.Scan(&id, &s); err != nil {
			return err
		}
		c.stock[id] = s
		return nil
	}); err != nil {
		return err
	}
	// In commit order: a deduction that inserted its ledger row first may
	// have waited for the product's row lock and committed after a later one.
	// PostgreSQL records commit times (track_commit_timestamp) and a
	// transaction waiting for a row lock commits after the one holding it.
	if err := query(`SELECT id, order_no, product_id, kind, quantity, pg_xact_commit_timestamp(xmin), refund_no
		FROM stock_ledger ORDER BY pg_xact_commit_timestamp(xmin) NULLS LAST, id`, func(r *sql.Rows) error {
		var l ledgerRow
		if err := r.Scan(&l.id, &l.order, &l.product, &l.kind, &l.qty, &l.committed, &l.refundNo); err != nil {
			return err
		}
		c.ledger = append(c.ledger, l)
		return nil
	}); err != nil {
		return err
	}
	c.payments = map[string]paymentRow{}
	if err := query(`SELECT transaction_id, order_no, amount_fen FROM payments`, func(r *sql.Rows) error {
		var p paymentRow
		if err := r.Scan(&p.txID, &p.order, &p.amount); err != nil {
			return err
		}
		c.payments[p.txID] = p
		return nil
	}); err != nil {
		return err
	}
	c.refunds = map[string]refundRow{}
	if err := query(`SELECT out_refund_no, order_no, transaction_id, refund_fen, status, items FROM refunds`, func(r *sql.Rows) error {
		var x refundRow
		var items string
		if err := r.Scan(&x.outRefundNo, &x.order, &x.txID, &x.amount, &x.status, &items); err != nil {
			return err
		}
		if items != "" {
			var lines []store.RefundItem
			if err := json.Unmarshal([]byte(items), &lines); err != nil {
				return fmt.Errorf("refund %s items: %w", x.outRefundNo, err)
			}
			x.items = map[int64]int64{}
			for _, it := range lines {
				x.items[it.ProductID] += it.Quantity
			}
		}
		c.refunds[x.outRefundNo] = x
		return nil
	}); err != nil {
		return err
	}
	c.sim = map[string]paysim.TransactionView{}
	txs := c.h.sim.Transactions()
	for _, t := range txs {
		c.sim[t.OutTradeNo] = t
	}
	c.shipping = c.h.shippingViews(txs)
	c.initial = c.h.initial
	c.h.mu.Lock()
	for _, o := range c.h.orders {
		c.records = append(c.records, o)
	}
	c.h.mu.Unlock()
	slices.SortFunc(c.records, func(a, b *orderRecord) int { return strings.Compare(a.No, b.No) })
	return nil
}

// describeWorkflows asks Temporal for the workflow of every order row.
func (c *checker) describeWorkflows(ctx context.Context) error {
	c.wf = map[string]workflowFact{}
	for _, no := range sortedKeys(c.rows) {
		d, err := c.h.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("chaos: describe %s: %w", workflows.WorkflowID(no), err)
			}
			c.wf[no] = workflowFact{missing: err.Error()}
			continue
		}
		info := d.GetWorkflowExecutionInfo()
		c.wf[no] = workflowFact{
			status:      info.GetStatus(),
			orderStatus: keyword(info.GetSearchAttributes(), workflows.AttrOrderStatus.GetName()),
			pending:     len(d.GetPendingActivities()),
			taskPending: d.GetPendingWorkflowTask() != nil,
		}
	}
	return nil
}

// loadStrays reads every stray-payment workflow: the result of those that
// completed, the status of the others.
func (c *checker) loadStrays(ctx context.Context) error {
	var ids []string
	c.strayOpen = map[string]enumspb.WorkflowExecutionStatus{}
	if err := c.list(ctx, `WorkflowType="`+workflows.StrayPaymentWorkflowName+`"`, func(id string, status enumspb.WorkflowExecutionStatus, _ *commonpb.SearchAttributes) {
		if status == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
			return // an earlier run of a chain: its latest run is listed too, and stands for it
		}
		if status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			c.strayOpen[id] = status
			return
		}
		ids = append(ids, id)
	}); err != nil {
		return err
	}
	c.strayViews = map[string]workflows.StrayPaymentView{}
	for _, id := range ids {
		var v workflows.StrayPaymentView
		if err := c.h.tc.GetWorkflow(ctx, id, "").Get(ctx, &v); err != nil {
			c.fail(CheckStuck, "", "%s: %v", id, err)
			continue
		}
		c.strayViews[id] = v
	}
	return nil
}

// loadFlagged reads the admin API's list of flagged orders: the list a
// person works from.
func (c *checker) loadFlagged(ctx context.Context) error {
	a, err := c.h.callRetry(ctx, http.MethodGet, "/v1/admin/orders/flagged?limit=100", c.h.adminToken, nil)
	if err != nil {
		return fmt.Errorf("chaos: list flagged orders: %w", err)
	}
	var list struct {
		Orders []struct {
			OrderNo string `json:"order_no"`
		} `json:"orders"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &list) != nil {
		return fmt.Errorf("chaos: list flagged orders: %d %s", a.status, a.body)
	}
	c.flagged = map[string]bool{}
	for _, o := range list.Orders {
		c.flagged[o.OrderNo] = true
	}
	return nil
}

func (c *checker) behaviourOf(no string) string {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	if o := c.h.orders[no]; o != nil {
		return o.Behaviour
	}
	return behaviourUnknownAnswer
}

func (c *checker) summarise() {
	r := c.r
	r.Orders = len(c.rows)
	c.h.mu.Lock()
	r.Placed = len(c.h.orders)
	for k, v := range c.h.counters {
		if strings.HasPrefix(k, "create_refused_out_of_stock") {
			r.RefusedAtCreation += v
		}
	}
	c.h.mu.Unlock()
	for no, o := range c.rows {
		b := c.behaviourOf(no)
		if b == behaviourUnknownAnswer {
			r.AnswerLost++
		}
		if r.ByBehaviour[b] == nil {
			r.ByBehaviour[b] = map[string]int{}
		}
		r.ByBehaviour[b][o.status]++
		r.ByStatus[o.status]++
	}
}

// visibility: the order workflows as listed (what operators filter on) have
// the rows' statuses; workflows without a row are orders refused at
// creation. Visibility catches up asynchronously: it gets a few seconds
// before a difference is a break.
func (c *checker) visibility(ctx context.Context) error {
	var breaks []Break
	for attempt := 0; attempt < 6; attempt++ {
		var listed []listedWorkflow
		err := c.list(ctx, `WorkflowType="`+workflows.OrderWorkflowName+`"`, func(id string, status enumspb.WorkflowExecutionStatus, sa *commonpb.SearchAttributes) {
			listed = append(listed, listedWorkflow{id: id, status: status, orderStatus: keyword(sa, workflows.AttrOrderStatus.GetName())})
		})
		if err != nil {
			return err
		}
		breaks, c.r.RefusedByWorkflow = c.visibilityBreaks(listed)
		if len(breaks) == 0 {
			break
		}
		sleep(ctx, 5*time.Second)
	}
	c.r.Breaks = append(c.r.Breaks, breaks...)
	return nil
}

func (c *checker) list(ctx context.Context, query string, each func(string, enumspb.WorkflowExecutionStatus, *commonpb.SearchAttributes)) error {
	var token []byte
	for {
		resp, err := c.h.tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: c.h.ts.Namespace(), Query: query, PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return fmt.Errorf("chaos: list workflows %s: %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			each(e.GetExecution().GetWorkflowId(), e.GetStatus(), e.GetSearchAttributes())
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return nil
		}
	}
}

func keyword(sa *commonpb.SearchAttributes, name string) string {
	p := sa.GetIndexedFields()[name]
	if p == nil {
		return ""
	}
	var s string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &s); err != nil {
		var ss []string
		if converter.GetDefaultDataConverter().FromPayload(p, &ss) == nil && len(ss) == 1 {
			return ss[0]
		}
		return "?" + err.Error()
	}
	return s
}

// attachHistories adds an excerpt of the workflow history to the first
// breaks of up to n orders: what happened to the order, step by step.
func (c *checker) attachHistories(ctx context.Context, n int) {
	seen := map[string]bool{}
	for i := range c.r.Breaks {
		b := &c.r.Breaks[i]
		if b.Order == "" || seen[b.Order] {
			continue
		}
		if len(seen) == n {
			return
		}
		seen[b.Order] = true
		b.History = historyExcerpt(ctx, c.h.tc, workflows.WorkflowID(b.Order))
	}
}

// historyExcerpt reads a workflow's history as one line per event: the time
// since the start, the event, and what it was about (activity, signal,
// update, timer, failure).
func historyExcerpt(ctx context.Context, tc client.Client, workflowID string) []string {
	it := tc.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []string
	var start time.Time
	scheduled := map[int64]string{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return append(out, "history: "+err.Error())
		}
		at := e.GetEventTime().AsTime()
		if start.IsZero() {
			start = at
		}
		what := ""
		switch a := e.GetAttributes().(type) {
		case *historypb.HistoryEvent_ActivityTaskScheduledEventAttributes:
			what = a.ActivityTaskScheduledEventAttributes.GetActivityType().GetName()
			scheduled[e.GetEventId()] = what
		case *historypb.HistoryEvent_ActivityTaskStartedEventAttributes:
			x := a.ActivityTaskStartedEventAttributes
			what = fmt.Sprintf("%s attempt %d", scheduled[x.GetScheduledEventId()], x.GetAttempt())
			if f := x.GetLastFailure(); f != nil {
				what += ", last failure: " + f.GetMessage()
			}
		case *historypb.HistoryEvent_ActivityTaskCompletedEventAttributes:
			what = scheduled[a.ActivityTaskCompletedEventAttributes.GetScheduledEventId()]
		case *historypb.HistoryEvent_ActivityTaskFailedEventAttributes:
			x := a.ActivityTaskFailedEventAttributes
			what = scheduled[x.GetScheduledEventId()] + ": " + x.GetFailure().GetMessage()
		case *historypb.HistoryEvent_ActivityTaskTimedOutEventAttributes:
			x := a.ActivityTaskTimedOutEventAttributes
			what = scheduled[x.GetScheduledEventId()] + ": " + x.GetFailure().GetMessage()
		case *historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes:
			what = a.WorkflowExecutionSignaledEventAttributes.GetSignalName() + " " + payloadText(a.WorkflowExecutionSignaledEventAttributes.GetInput())
		case *historypb.HistoryEvent_WorkflowExecutionUpdateAcceptedEventAttributes:
			what = a.WorkflowExecutionUpdateAcceptedEventAttributes.GetAcceptedRequest().GetInput().GetName()
		case *historypb.HistoryEvent_WorkflowExecutionUpdateCompletedEventAttributes:
			x := a.WorkflowExecutionUpdateCompletedEventAttributes.GetOutcome()
			if f := x.GetFailure(); f != nil {
				what = "refused: " + f.GetMessage()
			}
		case *historypb.HistoryEvent_TimerStartedEventAttributes:
			what = a.TimerStartedEventAttributes.GetStartToFireTimeout().AsDuration().String()
		case *historypb.HistoryEvent_UpsertWorkflowSearchAttributesEventAttributes:
			what = "OrderStatus=" + keyword(a.UpsertWorkflowSearchAttributesEventAttributes.GetSearchAttributes(), workflows.AttrOrderStatus.GetName())
		case *historypb.HistoryEvent_WorkflowTaskFailedEventAttributes:
			what = a.WorkflowTaskFailedEventAttributes.GetFailure().GetMessage()
		case *historypb.HistoryEvent_WorkflowExecutionCompletedEventAttributes:
			what = payloadText(a.WorkflowExecutionCompletedEventAttributes.GetResult())
		case *historypb.HistoryEvent_StartChildWorkflowExecutionInitiatedEventAttributes:
			what = a.StartChildWorkflowExecutionInitiatedEventAttributes.GetWorkflowId()
		}
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			continue // the noise between the steps
		}
		line := fmt.Sprintf("%7.2fs %3d %s", at.Sub(start).Seconds(), e.GetEventId(), e.GetEventType())
		if what != "" {
			line += "  " + what
		}
		out = append(out, line)
	}
	return out
}

// payloadText is a short text of payloads (JSON), for history excerpts.
func payloadText(p *commonpb.Payloads) string {
	var parts []string
	for _, x := range p.GetPayloads() {
		s := string(x.GetData())
		if len(s) > 300 {
			s = s[:300] + "…"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}
