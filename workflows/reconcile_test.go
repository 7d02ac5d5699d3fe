package workflows

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/metrics"
)

// billDesk stands in for the reconciliation's activities: it answers the
// bill request as scripted (not made yet so many times, failing so many
// times) and records what the workflow asked.
type billDesk struct {
	mu       sync.Mutex
	notReady int     // answer NotReady this many times first
	failures []error // then fail with these, in order
	always   error   // then fail with this (nil: answer found)
	found    ReconcileSummary
	started  []StartReconcileInput
	attempts int
	failed   []FailReconcileInput
}

func (d *billDesk) start(_ context.Context, in StartReconcileInput) (ReconcileRunRef, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.started = append(d.started, in)
	return ReconcileRunRef{RunID: 42}, nil
}

func (d *billDesk) reconcile(_ context.Context, in ReconcileBillInput) (ReconcileSummary, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attempts++
	if d.notReady > 0 {
		d.notReady--
		return ReconcileSummary{RunID: in.RunID, BillDate: in.BillDate, NotReady: true}, nil
	}
	if len(d.failures) > 0 {
		err := d.failures[0]
		d.failures = d.failures[1:]
		return ReconcileSummary{}, err
	}
	if d.always != nil {
		return ReconcileSummary{}, d.always
	}
	s := d.found
	s.RunID, s.BillDate = in.RunID, in.BillDate
	return s, nil
}

func (d *billDesk) fail(_ context.Context, in FailReconcileInput) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failed = append(d.failed, in)
	return nil
}

func newReconcileEnv(t *testing.T, d *billDesk) (*testsuite.TestWorkflowEnvironment, *metrics.Temporal) {
	t.Helper()
	m := metrics.NewTemporal()
	var suite testsuite.WorkflowTestSuite
	suite.SetMetricsHandler(m.Handler())
	suite.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(ReconcileWorkflow, workflow.RegisterOptions{Name: ReconcileWorkflowName})
	env.RegisterWorkflowWithOptions(ReconcileDailyWorkflow, workflow.RegisterOptions{Name: ReconcileDailyWorkflowName})
	env.RegisterActivityWithOptions(d.start, activity.RegisterOptions{Name: ActivityStartReconcileRun})
	env.RegisterActivityWithOptions(d.reconcile, activity.RegisterOptions{Name: ActivityReconcileBill})
	env.RegisterActivityWithOptions(d.fail, activity.RegisterOptions{Name: ActivityFailReconcileRun})
	return env, m
}

func badBillError(msg string) error {
	return temporal.NewApplicationError(msg, ErrTypeBadBill)
}

func TestReconcileWaitsForTheBillWithBackoffThenReportsTheDrift(t *testing.T) {
	d := &billDesk{notReady: 5, found: ReconcileSummary{BillRows: 3, WechatPayments: 2, Drift: 1, Explained: 1,
		DriftByKind: map[string]int64{"REFUND_NOT_IN_SHOP": 1}, ExplainedByKind: map[string]int64{"STRAY_PAYMENT": 1}}}
	env, m := newReconcileEnv(t, d)
	var waits []time.Duration
	env.SetOnTimerScheduledListener(func(_ string, dur time.Duration) { waits = append(waits, dur) })
	env.ExecuteWorkflow(ReconcileWorkflowName, ReconcileInput{BillDate: "2026-12-05"})
	var sum ReconcileSummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if sum.Drift != 1 || sum.RunID != 42 || sum.BillDate != "2026-12-05" {
		t.Errorf("result %+v", sum)
	}
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute, 30 * time.Minute}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Errorf("wait %d is %v, want %v", i+1, waits[i], want[i])
		}
	}
	if d.attempts != 6 || len(d.failed) != 0 || len(d.started) != 1 || d.started[0].BillDate != "2026-12-05" {
		t.Errorf("attempts %d, failed %+v, started %+v", d.attempts, d.failed, d.started)
	}
	if n := m.Sum(MetricReconciliationDrift+"_total", map[string]string{"kind": "REFUND_NOT_IN_SHOP"}); n != 1 {
		t.Errorf("drift counted %v times, want 1", n)
	}
	if n := m.Sum(MetricReconciliationDrift+"_total", map[string]string{"kind": "STRAY_PAYMENT"}); n != 0 {
		t.Errorf("a stray payment counted as drift %v times", n)
	}
}

func TestReconcileGivesUpOnABillStillBeingMadeAfter23Hours(t *testing.T) {
	for _, c := range []struct {
		name    string
		version workflow.Version
		want    time.Duration
	}{
		{"started after " + ChangeBillWait, 1, billWaitFor},
		{"started before it: waits as it did", workflow.DefaultVersion, billWaitForV0},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &billDesk{notReady: 1_000_000}
			env, _ := newReconcileEnv(t, d)
			env.OnGetVersion(ChangeBillWait, workflow.DefaultVersion, 1).Return(c.version)
			start := env.Now()
			env.ExecuteWorkflow(ReconcileWorkflowName, ReconcileInput{BillDate: "2026-12-05"})
			err := env.GetWorkflowError()
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != ErrTypeReconcileFailed {
				t.Fatalf("err = %v; want %s", err, ErrTypeReconcileFailed)
			}
			if took := env.Now().Sub(start); took < c.want || took > c.want+billWaitMax {
				t.Errorf("gave up after %v, want %v", took, c.want)
			}
			if len(d.failed) != 1 || d.failed[0].RunID != 42 || !strings.Contains(d.failed[0].Reason, "STATEMENT_CREATING") ||
				!strings.Contains(d.failed[0].Reason, c.want.String()) {
				t.Errorf("failed %+v", d.failed)
			}
		})
	}
}

func TestReconcileRetriesABadBillAndFailsTheRunWithItsReason(t *testing.T) {
	t.Run("bad once, then good", func(t *testing.T) {
		d := &billDesk{failures: []error{badBillError("bill of 2026-12-05: the bill's SHA-1 is 1, WeChat's hash_value 2")}}
		env, _ := newReconcileEnv(t, d)
		env.ExecuteWorkflow(ReconcileWorkflowName, ReconcileInput{BillDate: "2026-12-05"})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if d.attempts != 2 || len(d.failed) != 0 {
			t.Errorf("attempts %d, failed %+v", d.attempts, d.failed)
		}
	})
	t.Run("bad every time", func(t *testing.T) {
		d := &billDesk{always: badBillError("bill of 2026-12-05: trade bill line 7: the summary does not add up")}
		env, _ := newReconcileEnv(t, d)
		env.ExecuteWorkflow(ReconcileWorkflowName, ReconcileInput{BillDate: "2026-12-05"})
		err := env.GetWorkflowError()
		if err == nil || !strings.Contains(err.Error(), "does not add up") {
			t.Fatalf("err = %v", err)
		}
		if d.attempts != reconcileAttempts {
			t.Errorf("%d attempts, want %d", d.attempts, reconcileAttempts)
		}
		if len(d.failed) != 1 || !strings.Contains(d.failed[0].Reason, "summary does not add up") {
			t.Errorf("failed %+v", d.failed)
		}
	})
	t.Run("WeChat refuses the request", func(t *testing.T) {
		d := &billDesk{always: (temporal.NewNonRetryableApplicationError("trade bill of 2026-12-05: WeChat Pay refused: HTTP 400 INVALID_REQUEST", ErrTypeWechatRefused, nil))}
		env, _ := newReconcileEnv(t, d)
		env.ExecuteWorkflow(ReconcileWorkflowName, ReconcileInput{BillDate: "2026-12-05"})
		if err := env.GetWorkflowError(); err == nil || d.attempts != 1 || len(d.failed) != 1 || !strings.Contains(d.failed[0].Reason, "INVALID_REQUEST") {
			t.Fatalf("err %v, attempts %d, failed %+v", err, d.attempts, d.failed)
		}
	})
}

func TestReconcileCancelledWhileWaitingMarksTheRunFailed(t *testing.T) {
	d := &billDesk{notReady: 1_000_000}
	env, _ := newReconcileEnv(t, d)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
	env.ExecuteWorkflow(ReconcileWorkflowName, ReconcileInput{BillDate: "2026-12-05"})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("a cancelled reconciliation succeeded")
	}
	if len(d.failed) != 1 || !strings.Contains(d.failed[0].Reason, "cancelled") {
		t.Errorf("failed %+v", d.failed)
	}
}

func TestReconcileRefusesADateThatIsNotOne(t *testing.T) {
	d := &billDesk{}
	env, _ := newReconcileEnv(t, d)
	env.ExecuteWorkflow(ReconcileWorkflowName, ReconcileInput{BillDate: "2026-02-30"})
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != ErrTypeInvalidOrder {
		t.Fatalf("err = %v", err)
	}
	if len(d.started) != 0 || d.attempts != 0 {
		t.Errorf("activities ran: %+v %d", d.started, d.attempts)
	}
}

// The schedule starts the daily run every 24 h with overlap policy skip: a
// run still waiting for a bill WeChat never finishes making must end before
// the next day's run is due, or that day is skipped and never reconciled.
func TestDailyRunWaitingForABillEndsBeforeTheNextDaysRun(t *testing.T) {
	d := &billDesk{notReady: 1_000_000}
	env, _ := newReconcileEnv(t, d)
	start := time.Date(2026, 12, 6, 2, 30, 0, 0, time.UTC) // 10:30 Beijing time, as scheduled
	env.SetStartTime(start)
	env.ExecuteWorkflow(ReconcileDailyWorkflowName)
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "STATEMENT_CREATING") {
		t.Fatalf("err = %v; want the child's failure on a bill still being made", err)
	}
	if next := start.Add(24 * time.Hour); !env.Now().Before(next) {
		t.Errorf("the daily run ended at %v, not before the next one is due at %v", env.Now().UTC(), next)
	}
}

// The daily run reconciles the day before, in Beijing time, as a child
// whose ID is the date's. (That a run taken late still reconciles the day
// of its scheduled time, from TemporalScheduledStartTime, needs the real
// scheduler: the end-to-end test backfills the schedule.)
func TestDailyReconciliationReconcilesTheDayBeforeAsTheDatesWorkflow(t *testing.T) {
	for _, tt := range []struct {
		name     string
		startAt  time.Time
		wantDate string
	}{
		{"10:30 Beijing time", time.Date(2026, 12, 6, 2, 30, 0, 0, time.UTC), "2026-12-05"},
		{"00:30 Beijing time, still the 5th in UTC", time.Date(2026, 12, 5, 16, 30, 0, 0, time.UTC), "2026-12-05"},
		{"23:59 Beijing time", time.Date(2026, 12, 6, 15, 59, 0, 0, time.UTC), "2026-12-05"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := &billDesk{}
			env, _ := newReconcileEnv(t, d)
			env.SetStartTime(tt.startAt)
			var childID string
			var childIn ReconcileInput
			env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
				childID = info.WorkflowExecution.ID
				_ = args.Get(&childIn)
			})
			env.ExecuteWorkflow(ReconcileDailyWorkflowName)
			var sum ReconcileSummary
			if err := env.GetWorkflowResult(&sum); err != nil {
				t.Fatal(err)
			}
			if childID != ReconcileWorkflowID(tt.wantDate) || childIn.BillDate != tt.wantDate || sum.BillDate != tt.wantDate ||
				len(d.started) != 1 || d.started[0].BillDate != tt.wantDate || d.started[0].WorkflowID != childID {
				t.Errorf("child %s %+v, result %+v, started %+v; want %s", childID, childIn, sum, d.started, tt.wantDate)
			}
		})
	}
}

func TestReconcileSummaryTextSaysTheCounts(t *testing.T) {
	s := ReconcileSummary{BillDate: "2026-12-05", BillRows: 12, WechatPayments: 8, WechatPaymentFen: 70400, WechatRefunds: 4,
		WechatRefundFen: 35200, FeeMilliFen: 422000, ShopPayments: 8, ShopPaymentFen: 70400, ShopRefunds: 3, ShopRefundFen: 26400,
		MatchedPayments: 8, MatchedRefunds: 3, Drift: 1, DriftByKind: map[string]int64{"REFUND_NOT_IN_SHOP": 1},
		Explained: 2, ExplainedByKind: map[string]int64{"STRAY_PAYMENT": 2}}
	text := s.Text()
	for _, want := range []string{"2026-12-05", "1 drift (REFUND_NOT_IN_SHOP 1)", "2 listed apart (STRAY_PAYMENT 2)", "12 rows",
		"8 payments ¥704.00", "4 refunds ¥352.00", "fees ¥4.22000", "3 refunds ¥264.00", "matched 8 payments, 3 refunds"} {
		if !strings.Contains(text, want) {
			t.Errorf("%q does not say %q", text, want)
		}
	}
	if !strings.Contains((ReconcileSummary{BillDate: "2026-12-05"}).Text(), "no drift") {
		t.Error("a day without drift does not say so")
	}
}
