package workflows

import (
	"fmt"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The daily reconciliation: WeChat Pay's trade bill of a day against the
// shop's payments and refunds of that day. The bill is downloaded, read
// and compared inside one activity (ReconcileBill), which streams it into
// the database; only counts pass through the workflow, whatever the size
// of the day (Temporal's payload and history limits).

// Names of the reconciliation's workflows, activities and schedule.
const (
	ReconcileWorkflowName      = "ReconcileWorkflow"
	ReconcileDailyWorkflowName = "ReconcileDailyWorkflow"

	ActivityStartReconcileRun = "StartReconcileRun"
	ActivityReconcileBill     = "ReconcileBill"
	ActivityFailReconcileRun  = "FailReconcileRun"

	// ReconcileScheduleID is the Temporal Schedule that reconciles
	// yesterday every morning (ReconcileDailyWorkflow).
	ReconcileScheduleID = "reconcile-daily"
	// The schedule runs at ReconcileAtHour:ReconcileAtMinute in
	// ReconcileScheduleZone: half an hour after WeChat says the bill of the
	// day before is ready.
	ReconcileAtHour       = 10
	ReconcileAtMinute     = 30
	ReconcileScheduleZone = "Asia/Shanghai"

	// MetricReconciliationDrift counts unexplained drift found by completed
	// reconciliations, labelled kind (ordersaga_reconciliation_drift_total).
	MetricReconciliationDrift = "ordersaga_reconciliation_drift"

	// ErrTypeBadBill: the bill download was not the bill WeChat described
	// (SHA-1, gzip) or not a well-formed bill (a row, the summary). The
	// activity is retried (a new download); after the last attempt the run
	// fails with this reason.
	ErrTypeBadBill = "BAD_BILL"
	// ErrTypeReconcileFailed is the workflow's failure: the run ended
	// without a report (the reason is in its message and in the run's row).
	ErrTypeReconcileFailed = "RECONCILE_FAILED"
)

// Timing of the reconciliation. Durations only: changing one needs no
// workflow.GetVersion.
const (
	// billWaitFirst, billWaitMax: how long to wait before asking again for
	// a bill WeChat is still making (STATEMENT_CREATING), doubling; WeChat
	// says to ask every half hour.
	billWaitFirst = 5 * time.Minute
	billWaitMax   = 30 * time.Minute
	// billWaitFor: after this long the run gives up on a bill still being
	// made and fails (a person looks; the next run tries again). Less than
	// the schedule's day: the daily run must end before the next one is
	// due, which the overlap policy (skip) would otherwise drop. It decides
	// whether the run waits again or fails, so a change goes behind
	// GetVersion (ChangeBillWait): runs started before keep billWaitForV0.
	billWaitFor   = 23 * time.Hour
	billWaitForV0 = 24 * time.Hour
	// reconcileAttempts bounds the attempts at one bill (a bad download,
	// WeChat or the database failing): each downloads it again.
	reconcileAttempts = 6
)

// ReconcileWorkflowID is the ID of the reconciliation of one bill date: a
// date is reconciled once at a time, and a new run replaces its report.
func ReconcileWorkflowID(billDate string) string { return "reconcile-" + billDate }

// ReconcileSummaryText is the Web UI's summary of a date's reconciliation.
func ReconcileSummaryText(billDate string) string {
	return "Reconcile WeChat Pay's trade bill of " + billDate + " with the shop's payments and refunds"
}

// ReconcileDetailsText is its static details.
const ReconcileDetailsText = "Downloads the day's bill (bill_type ALL, GZIP), checks its SHA-1 and summary, " +
	"compares every payment and refund with the shop's (Beijing day), and stores the report: " +
	"GET /v1/admin/reconciliations/<date> or `ordersaga reconcile -date <date>`."

// ReconcileInput starts a reconciliation. An empty BillDate is the day
// before the workflow was scheduled (or started), in Beijing time.
type ReconcileInput struct {
	BillDate string `json:"bill_date"`
}

// StartReconcileInput records a run of a workflow run.
type StartReconcileInput struct {
	BillDate      string `json:"bill_date"`
	WorkflowID    string `json:"workflow_id"`
	WorkflowRunID string `json:"workflow_run_id"`
}

// ReconcileRunRef names a run's row.
type ReconcileRunRef struct {
	RunID int64 `json:"run_id"`
}

// ReconcileBillInput is one attempt at a run's bill.
type ReconcileBillInput struct {
	RunID    int64  `json:"run_id"`
	BillDate string `json:"bill_date"`
}

// FailReconcileInput ends a run without a report.
type FailReconcileInput struct {
	RunID  int64  `json:"run_id"`
	Reason string `json:"reason"`
}

// ReconcileSummary is what a run found: counts only (the drift rows are in
// the database).
type ReconcileSummary struct {
	RunID    int64  `json:"run_id"`
	BillDate string `json:"bill_date"`
	// NotReady: WeChat is still making the bill (STATEMENT_CREATING);
	// nothing was compared.
	NotReady bool `json:"not_ready,omitempty"`
	// NoStatement: WeChat has no bill for the day (no trade).
	NoStatement      bool   `json:"no_statement,omitempty"`
	BillSHA1         string `json:"bill_sha1,omitempty"`
	BillRows         int64  `json:"bill_rows"`
	WechatPayments   int64  `json:"wechat_payments"`
	WechatPaymentFen int64  `json:"wechat_payment_fen"`
	WechatRefunds    int64  `json:"wechat_refunds"`
	WechatRefundFen  int64  `json:"wechat_refund_fen"`
	// FeeMilliFen: WeChat's fees of the day (net of fees returned with
	// refunds), in thousandths of a fen.
	FeeMilliFen     int64 `json:"fee_milli_fen"`
	ShopPayments    int64 `json:"shop_payments"`
	ShopPaymentFen  int64 `json:"shop_payment_fen"`
	ShopRefunds     int64 `json:"shop_refunds"`
	ShopRefundFen   int64 `json:"shop_refund_fen"`
	MatchedPayments int64 `json:"matched_payments"`
	MatchedRefunds  int64 `json:"matched_refunds"`
	// Drift counts the unexplained differences, DriftByKind by kind;
	// ExplainedByKind the expected items listed apart (stray payments,
	// items in another day's bill).
	Drift           int64            `json:"drift"`
	Explained       int64            `json:"explained"`
	DriftByKind     map[string]int64 `json:"drift_by_kind,omitempty"`
	ExplainedByKind map[string]int64 `json:"explained_by_kind,omitempty"`
}

// Text is the summary for people (the Web UI's details line, logs).
func (s ReconcileSummary) Text() string {
	if s.NotReady {
		return fmt.Sprintf("bill of %s not ready yet (STATEMENT_CREATING)", s.BillDate)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**: ", s.BillDate)
	if s.Drift == 0 {
		b.WriteString("no drift")
	} else {
		fmt.Fprintf(&b, "⚠ %d drift (%s)", s.Drift, KindCounts(s.DriftByKind))
	}
	if s.Explained > 0 {
		fmt.Fprintf(&b, " · %d listed apart (%s)", s.Explained, KindCounts(s.ExplainedByKind))
	}
	bill := fmt.Sprintf("%d rows", s.BillRows)
	if s.NoStatement {
		bill = "no bill (no trade that day)"
	}
	fmt.Fprintf(&b, "\n\nWeChat: %s — %d payments %s, %d refunds %s, fees ¥%s · shop: %d payments %s, %d refunds %s · matched %d payments, %d refunds",
		bill, s.WechatPayments, yuan(s.WechatPaymentFen), s.WechatRefunds, yuan(s.WechatRefundFen), milliFenYuan(s.FeeMilliFen),
		s.ShopPayments, yuan(s.ShopPaymentFen), s.ShopRefunds, yuan(s.ShopRefundFen), s.MatchedPayments, s.MatchedRefunds)
	return b.String()
}

// KindCounts writes counts by kind for people: "A 1, B 2", in kind order.
func KindCounts(m map[string]int64) string {
	kinds := make([]string, 0, len(m))
	for k := range m {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// milliFenYuan writes thousandths of a fen as yuan to five decimals.
func milliFenYuan(mf int64) string {
	sign := ""
	if mf < 0 {
		sign, mf = "-", -mf
	}
	return fmt.Sprintf("%s%d.%05d", sign, mf/100_000, mf%100_000)
}

// chinaTime is Beijing time, the clock of WeChat's bills.
var chinaTime = time.FixedZone("CST", 8*3600)

// BillDateBefore is the bill date of the day before t in Beijing time: what
// a run at t reconciles when it is given no date.
func BillDateBefore(t time.Time) string {
	return t.In(chinaTime).AddDate(0, 0, -1).Format("2006-01-02")
}

// ValidBillDate reports whether s is a real date written yyyy-MM-dd.
func ValidBillDate(s string) bool {
	d, err := time.Parse("2006-01-02", s)
	return err == nil && d.Format("2006-01-02") == s
}

// scheduledStartTime is the schedule's time of a scheduled workflow (the
// TemporalScheduledStartTime search attribute the scheduler sets), so that a
// run taken late — caught up after an outage — still reconciles the day it
// was meant for; otherwise the workflow's start.
func scheduledStartTime(ctx workflow.Context) time.Time {
	key := temporal.NewSearchAttributeKeyTime("TemporalScheduledStartTime")
	if t, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(key); ok && !t.IsZero() {
		return t
	}
	return workflow.GetInfo(ctx).WorkflowStartTime
}

func reconcileActivity(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		// A large day takes minutes; the heartbeat says it is alive.
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        2 * time.Minute,
			MaximumAttempts:        reconcileAttempts,
			NonRetryableErrorTypes: businessErrorTypes,
		},
	}
}

// ReconcileWorkflow reconciles one bill date (ID ReconcileWorkflowID):
//
//	record the run
//	ask WeChat for the bill; while it is being made, wait and ask again
//	download, check and compare it (one activity, retried with a new
//	  download when the file is bad)
//	the run becomes the date's report — or fails, with the reason, and the
//	  previous report stays
func ReconcileWorkflow(ctx workflow.Context, in ReconcileInput) (ReconcileSummary, error) {
	info := workflow.GetInfo(ctx)
	date := in.BillDate
	if date == "" {
		date = BillDateBefore(scheduledStartTime(ctx))
	}
	if !ValidBillDate(date) {
		return ReconcileSummary{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("bill date %q is not yyyy-MM-dd", in.BillDate), ErrTypeInvalidOrder, nil)
	}
	logger := log.With(workflow.GetLogger(ctx), "bill_date", date, "workflow_id", info.WorkflowExecution.ID)
	show := func(what string) { workflow.SetCurrentDetails(ctx, what) }
	show(fmt.Sprintf("**%s**: recording the run", date))

	var ref ReconcileRunRef
	actx := workflow.WithActivityOptions(ctx, dbActivity("Record the reconciliation run of "+date))
	if err := workflow.ExecuteActivity(actx, ActivityStartReconcileRun, StartReconcileInput{
		BillDate: date, WorkflowID: info.WorkflowExecution.ID, WorkflowRunID: info.WorkflowExecution.RunID,
	}).Get(ctx, &ref); err != nil {
		return ReconcileSummary{}, fmt.Errorf("record the run of %s: %w", date, err)
	}
	// Whatever happens next (a failure, a cancellation), the run must not
	// stay RUNNING: fail marks it, on a context nobody can cancel.
	fail := func(reason string, cause error) (ReconcileSummary, error) {
		logger.Error("reconciliation failed", "reason", reason)
		show(fmt.Sprintf("**%s**: ✗ failed — %s", date, reason))
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		dctx = workflow.WithActivityOptions(dctx, dbActivity("Mark the reconciliation run of "+date+" failed"))
		if err := workflow.ExecuteActivity(dctx, ActivityFailReconcileRun, FailReconcileInput{RunID: ref.RunID, Reason: reason}).Get(dctx, nil); err != nil {
			logger.Error("could not mark the run failed", "error", err)
		}
		return ReconcileSummary{RunID: ref.RunID, BillDate: date},
			temporal.NewNonRetryableApplicationError("reconciliation of "+date+" failed: "+reason, ErrTypeReconcileFailed, cause)
	}

	waitFor := billWaitLimit(ctx)
	deadline := workflow.Now(ctx).Add(waitFor)
	wait := billWaitFirst
	for attempt := 1; ; attempt++ {
		show(fmt.Sprintf("**%s**: downloading and comparing the bill", date))
		var sum ReconcileSummary
		actx := workflow.WithActivityOptions(ctx, reconcileActivity(
			fmt.Sprintf("Download WeChat Pay's trade bill of %s, check it and compare it with the shop", date)))
		err := workflow.ExecuteActivity(actx, ActivityReconcileBill, ReconcileBillInput{RunID: ref.RunID, BillDate: date}).Get(ctx, &sum)
		if err != nil {
			if temporal.IsCanceledError(err) {
				return fail("cancelled", err)
			}
			return fail(errorMessage(err), err)
		}
		if !sum.NotReady {
			for kind, n := range sum.DriftByKind {
				// Counted once per completed run (the SDK does not emit
				// metrics on replay): operators alert on any increase.
				workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": kind}).Counter(MetricReconciliationDrift).Inc(n)
			}
			if sum.Drift > 0 {
				logger.Warn("reconciliation found drift", "drift", sum.Drift, "by_kind", sum.DriftByKind)
			} else {
				logger.Info("reconciliation found no drift", "explained", sum.Explained)
			}
			show(sum.Text())
			return sum, nil
		}
		now := workflow.Now(ctx)
		if !now.Before(deadline) {
			return fail(fmt.Sprintf("WeChat was still making the bill after %v (STATEMENT_CREATING, %d requests)", waitFor, attempt), nil)
		}
		d := min(wait, deadline.Sub(now))
		show(fmt.Sprintf("**%s**: WeChat is still making the bill (STATEMENT_CREATING); asking again in %v", date, d))
		timer := workflow.NewTimerWithOptions(ctx, d, workflow.TimerOptions{Summary: "Wait for WeChat to make the bill of " + date})
		if err := timer.Get(ctx, nil); err != nil {
			return fail("cancelled while waiting for the bill", err)
		}
		wait = min(wait*2, billWaitMax)
	}
}

// ReconcileDailyWorkflow is what the schedule ReconcileScheduleID starts
// each morning: it reconciles the day before its scheduled time as the
// child ReconcileWorkflowID(date), so that a date's reconciliation has one
// ID whoever starts it (the schedule, or a person through the API). When
// that date is being reconciled already, it leaves it be.
func ReconcileDailyWorkflow(ctx workflow.Context) (ReconcileSummary, error) {
	date := BillDateBefore(scheduledStartTime(ctx))
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("Reconciling **%s** (workflow %s)", date, ReconcileWorkflowID(date)))
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            ReconcileWorkflowID(date),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// The reconciliation runs to its end even if this run is
		// terminated (e.g. the schedule deleted meanwhile).
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:     ReconcileSummaryText(date),
		StaticDetails:     ReconcileDetailsText,
	})
	var sum ReconcileSummary
	err := workflow.ExecuteChildWorkflow(cctx, ReconcileWorkflowName, ReconcileInput{BillDate: date}).Get(ctx, &sum)
	if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** was being reconciled already (%s): left to that run", date, ReconcileWorkflowID(date)))
		return ReconcileSummary{BillDate: date}, nil
	}
	if err != nil {
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s**: ✗ %v", date, err))
		return ReconcileSummary{BillDate: date}, fmt.Errorf("reconcile %s: %w", date, err)
	}
	workflow.SetCurrentDetails(ctx, sum.Text())
	return sum, nil
}
