package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// Reconciliation report pages.
const (
	driftPageSize    = 200
	maxDriftPageSize = 1000
	describeWait     = 3 * time.Second
	// billHistoryMonths: WeChat Pay keeps a day's bill for three months
	// (WECHAT-PLATFORM.md §5); an older date could only fail at WeChat.
	billHistoryMonths = 3
)

// reconciliationWorkflow is the state of a date's reconciliation workflow.
type reconciliationWorkflow struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Status     string `json:"status"` // RUNNING, COMPLETED, FAILED, …
}

// reconcileRequest is POST /v1/admin/reconciliations.
type reconcileRequest struct {
	BillDate *string `json:"bill_date"`
}

// billDateProblem says what is wrong with a bill date ("" when nothing):
// yyyy-MM-dd, a real day, not after today in Beijing time and not before
// the oldest bill WeChat keeps.
func (s *server) billDateProblem(date string) string {
	if !workflows.ValidBillDate(date) {
		return "bill_date must be a date written yyyy-MM-dd, e.g. 2026-12-05"
	}
	now := s.Now().In(shanghai)
	if date > now.Format("2006-01-02") {
		return "bill_date " + date + " is in the future (dates are Beijing time)"
	}
	oldest := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, shanghai).AddDate(0, -billHistoryMonths, 0).Format("2006-01-02")
	if date < oldest {
		return "bill_date " + date + " is more than three months ago: WeChat Pay keeps bills for three months (the oldest is " + oldest + ")"
	}
	return ""
}

// adminStartReconciliation starts the reconciliation of a bill date, or
// runs it again (its report is replaced when the new run completes). When
// the date is being reconciled already, it answers with that run.
func (s *server) adminStartReconciliation(c *gin.Context) {
	var req reconcileRequest
	if !decodeJSONStrict(c, &req) {
		return
	}
	if req.BillDate == nil {
		badRequest(c, "bill_date is required (yyyy-MM-dd, Beijing time)")
		return
	}
	date := *req.BillDate
	if problem := s.billDateProblem(date); problem != "" {
		badRequest(c, problem)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), describeWait)
	defer cancel()
	run, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        workflows.ReconcileWorkflowID(date),
		TaskQueue: s.TaskQueue,
		// One run of a date at a time: asking while it runs joins it.
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            workflows.ReconcileSummaryText(date),
		StaticDetails:            workflows.ReconcileDetailsText,
	}, workflows.ReconcileWorkflowName, workflows.ReconcileInput{BillDate: date})
	if err != nil {
		if temporalUnavailable(err) {
			unavailable(c, err)
			return
		}
		internalError(c, err)
		return
	}
	s.Logger.Info("reconciliation started", "request_id", c.GetString(ctxRequestID), "bill_date", date,
		"workflow_id", run.GetID(), "run_id", run.GetRunID())
	c.JSON(http.StatusAccepted, gin.H{
		"bill_date": date,
		"workflow":  reconciliationWorkflow{WorkflowID: run.GetID(), RunID: run.GetRunID(), Status: "RUNNING"},
	})
}

// adminGetReconciliation answers a date's report — its last complete run
// with its drift rows (a page: ?limit=, ?cursor=) — the latest run (which
// may be running, or have failed), and the workflow's state.
func (s *server) adminGetReconciliation(c *gin.Context) {
	date := c.Param("date")
	if !workflows.ValidBillDate(date) {
		badRequest(c, "the date must be written yyyy-MM-dd, e.g. 2026-12-05")
		return
	}
	limit := driftPageSize
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDriftPageSize {
			badRequest(c, "limit must be an integer between 1 and "+strconv.Itoa(maxDriftPageSize))
			return
		}
		limit = n
	}
	var after int64
	if v := c.Query("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			badRequest(c, "cursor is not one this API returned")
			return
		}
		after = n
	}
	ctx := c.Request.Context()
	report, latest, err := s.Store.ReconcileReport(ctx, date)
	if err != nil {
		internalError(c, err)
		return
	}
	wf := s.reconciliationWorkflow(ctx, date)
	if report == nil && latest == nil && wf == nil {
		notFound(c, "reconciliation of "+date)
		return
	}
	resp := gin.H{"bill_date": date, "report": nil, "latest_run": latest, "workflow": wf}
	if report != nil {
		counts, err := s.Store.DriftCounts(ctx, report.ID)
		if err != nil {
			internalError(c, err)
			return
		}
		drift, explained := map[string]int64{}, map[string]int64{}
		for kind, n := range counts {
			if store.ExplainedKind(kind) {
				explained[kind] = n
			} else {
				drift[kind] = n
			}
		}
		rows, err := s.Store.ListDrifts(ctx, report.ID, after, limit+1)
		if err != nil {
			internalError(c, err)
			return
		}
		if len(rows) > limit {
			rows = rows[:limit]
			resp["next_cursor"] = strconv.FormatInt(rows[len(rows)-1].ID, 10)
		}
		if rows == nil {
			rows = []store.ReconcileDrift{}
		}
		resp["report"] = gin.H{"run": report, "drift_by_kind": drift, "explained_by_kind": explained}
		resp["drifts"] = rows
	}
	c.JSON(http.StatusOK, resp)
}

// reconciliationWorkflow describes the date's workflow; nil when there is
// none, or Temporal did not answer (the report is in the database anyway).
func (s *server) reconciliationWorkflow(ctx context.Context, date string) *reconciliationWorkflow {
	ctx, cancel := context.WithTimeout(ctx, describeWait)
	defer cancel()
	d, err := s.Temporal.DescribeWorkflowExecution(ctx, workflows.ReconcileWorkflowID(date), "")
	if err != nil {
		if !workflowEnded(err) && !errors.Is(err, context.Canceled) {
			s.Logger.Warn("describe reconciliation workflow", "bill_date", date, "error", err)
		}
		return nil
	}
	info := d.GetWorkflowExecutionInfo()
	status := info.GetStatus().String()
	if v, ok := enumspb.WorkflowExecutionStatus_name[int32(info.GetStatus())]; ok {
		status = v[len("WORKFLOW_EXECUTION_STATUS_"):]
	}
	return &reconciliationWorkflow{WorkflowID: info.GetExecution().GetWorkflowId(), RunID: info.GetExecution().GetRunId(), Status: status}
}
