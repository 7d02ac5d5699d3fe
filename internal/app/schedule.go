package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"ordersaga/workflows"
)

// The daily reconciliation's Temporal Schedule is made by the worker, when
// it starts (not by `ordersaga migrate`): the worker is what runs the
// schedule's workflow, so it knows the task queue and the workflow's name
// of the version being deployed, it is connected to Temporal already
// (migrate is about the database and does not need Temporal), and `ordersaga
// dev`, which runs the worker, gets the schedule the same way. Every
// replica does it: creating is idempotent (the ID is the key) and an
// existing schedule is brought to this version's spec and action, its
// paused state and note left as an operator set them.

// reconcileCatchup: a run missed while Temporal was down is still taken
// within a day (yesterday's bill stays downloadable for three months, but
// two missed days must not run at once after a long outage).
const reconcileCatchup = 24 * time.Hour

// reconcileCron is the schedule's time of day as a cron expression.
var reconcileCron = fmt.Sprintf("%d %d * * *", workflows.ReconcileAtMinute, workflows.ReconcileAtHour)

// scheduleRetry paces the retries when Temporal does not answer at start.
const scheduleRetry = time.Minute

func reconcileSchedule(taskQueue string) client.ScheduleOptions {
	return client.ScheduleOptions{
		ID: workflows.ReconcileScheduleID,
		Spec: client.ScheduleSpec{
			CronExpressions: []string{reconcileCron},
			TimeZoneName:    workflows.ReconcileScheduleZone,
		},
		Action: &client.ScheduleWorkflowAction{
			ID:            workflows.ReconcileScheduleID,
			Workflow:      workflows.ReconcileDailyWorkflowName,
			TaskQueue:     taskQueue,
			StaticSummary: "Reconcile yesterday's WeChat Pay trade bill (Beijing time)",
			StaticDetails: workflows.ReconcileDetailsText,
		},
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: reconcileCatchup,
		Note:          "made by the ordersaga worker: reconciles yesterday at 10:30 Beijing time",
	}
}

// EnsureReconcileSchedule creates the schedule, or updates an existing one
// whose spec, action or policies differ from this version's.
func EnsureReconcileSchedule(ctx context.Context, tc client.Client, taskQueue string, log *slog.Logger) error {
	want := reconcileSchedule(taskQueue)
	sc := tc.ScheduleClient()
	_, err := sc.Create(ctx, want)
	if err == nil {
		log.Info("reconciliation schedule created", "schedule_id", want.ID, "cron", reconcileCron, "time_zone", workflows.ReconcileScheduleZone)
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("create schedule %s: %w", want.ID, err)
	}
	updated := false
	err = sc.GetHandle(ctx, want.ID).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			have := in.Description.Schedule
			if scheduleMatches(have, want) {
				return nil, temporal.ErrSkipScheduleUpdate
			}
			updated = true
			have.Spec = &want.Spec
			have.Action = want.Action
			have.Policy = &client.SchedulePolicies{Overlap: want.Overlap, CatchupWindow: want.CatchupWindow}
			return &client.ScheduleUpdate{Schedule: &have}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("update schedule %s: %w", want.ID, err)
	}
	if updated {
		log.Info("reconciliation schedule updated to this version", "schedule_id", want.ID)
	}
	return nil
}

// scheduleMatches compares what Temporal describes with what is wanted.
// Temporal keeps a cron expression as a calendar: its hour and minute, and
// the time zone, are compared.
func scheduleMatches(have client.Schedule, want client.ScheduleOptions) bool {
	wantAction := want.Action.(*client.ScheduleWorkflowAction)
	a, ok := have.Action.(*client.ScheduleWorkflowAction)
	if !ok || a.Workflow != wantAction.Workflow || a.TaskQueue != wantAction.TaskQueue || a.ID != wantAction.ID {
		return false
	}
	if have.Policy == nil || have.Policy.Overlap != want.Overlap || have.Policy.CatchupWindow != want.CatchupWindow {
		return false
	}
	s := have.Spec
	if s == nil || s.TimeZoneName != want.Spec.TimeZoneName || len(s.Calendars) != 1 || len(s.Intervals) != 0 || len(s.CronExpressions) != 0 {
		return false
	}
	c := s.Calendars[0]
	return oneValue(c.Hour, workflows.ReconcileAtHour) && oneValue(c.Minute, workflows.ReconcileAtMinute) &&
		(len(c.Second) == 0 || oneValue(c.Second, 0))
}

func oneValue(rs []client.ScheduleRange, v int) bool {
	return len(rs) == 1 && rs[0].Start == v && (rs[0].End == 0 || rs[0].End == v)
}

// keepReconcileSchedule makes the schedule, retrying while Temporal does not
// answer, until it succeeds or ctx ends: a worker whose Temporal is slow to
// come up still starts taking orders meanwhile.
func keepReconcileSchedule(ctx context.Context, tc client.Client, taskQueue string, log *slog.Logger) {
	for {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := EnsureReconcileSchedule(actx, tc, taskQueue, log)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Error("reconciliation schedule not made yet; retrying", "schedule_id", workflows.ReconcileScheduleID, "error", err, "retry_in", scheduleRetry)
		select {
		case <-ctx.Done():
			return
		case <-time.After(scheduleRetry):
		}
	}
}
