package chaos

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/workflows"
)

// settle waits until nothing is left to happen by itself: every notify
// delivered or given up, every refund settled at WeChat, every order ended or
// PAID (waiting for the shop), no workflow running but those of PAID orders,
// and those idle. It must hold twice in a row, a second apart.
func (h *harness) settle(ctx context.Context) (bool, string) {
	deadline := time.Now().Add(h.opts.SettleTimeout)
	stable := false
	lastLog := time.Now()
	for {
		pending, err := h.pendingWork(ctx)
		if err != nil {
			pending = err.Error()
		}
		if pending == "" {
			if stable {
				return true, ""
			}
			stable = true
		} else {
			stable = false
		}
		if time.Now().After(deadline) {
			return false, pending
		}
		if ctx.Err() != nil {
			return false, "interrupted"
		}
		if pending != "" && time.Since(lastLog) > 10*time.Second {
			h.logf("settling: %s", pending)
			lastLog = time.Now()
		}
		sleep(ctx, time.Second)
	}
}

// pendingWork says what is still going on ("" when nothing).
func (h *harness) pendingWork(ctx context.Context) (string, error) {
	var pending []string
	notifies, refunds := 0, 0
	txs := h.sim.Transactions()
	for _, sh := range h.shippingViews(txs) {
		for _, p := range sh.Pushes {
			if p.State == paysim.NotifyPending {
				notifies++
			}
		}
	}
	for _, tx := range txs {
		for _, n := range tx.Notifies {
			if n.State == paysim.NotifyPending || n.State == paysim.NotifyHeld {
				notifies++
			}
		}
		for _, r := range tx.Refunds {
			if r.Status == paysim.RefundProcessing {
				refunds++
			}
		}
	}
	if notifies > 0 {
		pending = append(pending, fmt.Sprintf("%d notifies and pushes being delivered", notifies))
	}
	if refunds > 0 {
		pending = append(pending, fmt.Sprintf("%d refunds processing at WeChat", refunds))
	}

	rows, err := h.db.QueryContext(ctx, `SELECT status, count(*) FROM orders GROUP BY status`)
	if err != nil {
		return "", fmt.Errorf("database: %w", err)
	}
	byStatus := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return "", err
		}
		byStatus[s] = n
	}
	rows.Close()
	for _, s := range []string{"PENDING", "REFUNDING", "SHIPPED"} {
		if byStatus[s] > 0 {
			pending = append(pending, fmt.Sprintf("%d orders %s", byStatus[s], s))
		}
	}
	if len(pending) > 0 {
		return strings.Join(pending, ", "), nil
	}

	running, err := h.tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
		Namespace: h.ts.Namespace(), Query: `ExecutionStatus="Running"`,
	})
	if err != nil {
		return "", fmt.Errorf("temporal: %w", err)
	}
	if int(running.GetCount()) != byStatus["PAID"] {
		return fmt.Sprintf("%d workflows running, %d orders PAID", running.GetCount(), byStatus["PAID"]), nil
	}
	paid, err := h.db.QueryContext(ctx, `SELECT order_no FROM orders WHERE status = 'PAID'`)
	if err != nil {
		return "", err
	}
	var nos []string
	for paid.Next() {
		var no string
		if err := paid.Scan(&no); err != nil {
			paid.Close()
			return "", err
		}
		nos = append(nos, no)
	}
	paid.Close()
	busy := 0
	for _, no := range nos {
		d, err := h.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
		if err != nil {
			return "", fmt.Errorf("describe %s: %w", workflows.WorkflowID(no), err)
		}
		if len(d.GetPendingActivities()) > 0 || len(d.GetPendingChildren()) > 0 || d.GetPendingWorkflowTask() != nil {
			busy++
		}
	}
	if busy > 0 {
		return fmt.Sprintf("%d PAID orders' workflows still busy", busy), nil
	}
	// A refund of some items leaves its order PAID while it is queued or
	// with WeChat, and its workflow waits on a timer (its notify may have
	// been dropped: the next query settles it), which looks idle above.
	refunding := 0
	for _, no := range nos {
		v, err := h.tc.QueryWorkflow(ctx, workflows.WorkflowID(no), "", workflows.QueryState)
		if err != nil {
			return "", fmt.Errorf("query %s: %w", workflows.WorkflowID(no), err)
		}
		var view workflows.OrderView
		if err := v.Get(&view); err != nil {
			return "", fmt.Errorf("query %s: %w", workflows.WorkflowID(no), err)
		}
		for _, r := range view.Refunds {
			if !status.Refund(r.Status).Final() {
				refunding++
				break
			}
		}
	}
	if refunding > 0 {
		return fmt.Sprintf("%d PAID orders with a refund of some items not settled yet", refunding), nil
	}
	return "", nil
}
