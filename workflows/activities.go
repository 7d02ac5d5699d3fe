package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// How the workflows run their activities: the options of each kind (the
// database, WeChat Pay the order can wait for, a call a person waits on),
// and which database steps a new order runs as local activities.

// dbActivity is the options of an activity that writes the database: short
// attempts, retried with backoff for as long as it takes (the database may be
// restarting), except for the business errors that no retry can fix.
func dbActivity(summary string) workflow.ActivityOptions {
	return retried(summary, 10*time.Second, 500*time.Millisecond, 30*time.Second)
}

// wechatActivity is the options of a WeChat Pay call the order can wait for:
// network errors, timeouts and 5xx are retried with backoff and the same
// out_trade_no / out_refund_no until WeChat answers. An attempt is bounded a
// little above the client's own 10 s timeout.
func wechatActivity(summary string) workflow.ActivityOptions {
	return retried(summary, 15*time.Second, time.Second, time.Minute)
}

// userWaitsActivity is a WeChat Pay or database call a person is waiting
// for (pay, sync): a few quick retries, then the update answers "try again".
func userWaitsActivity(summary string) workflow.ActivityOptions {
	opts := retried(summary, 10*time.Second, 300*time.Millisecond, 2*time.Second)
	opts.ScheduleToCloseTimeout = 15 * time.Second
	return opts
}

// retried is the options of an activity whose attempts last at most
// attempt, retried after first, doubling up to most, for every error but
// the business errors that no retry can fix.
func retried(summary string, attempt, first, most time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: attempt,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        first,
			BackoffCoefficient:     2,
			MaximumInterval:        most,
			NonRetryableErrorTypes: businessErrorTypes,
		},
	}
}

// localDBActivities are the steps an order started since ChangeLocalDB runs
// as local activities — in the worker, inside the workflow task that asks
// for them, recorded as a marker — instead of regular ones (scheduled by
// the server, dispatched through matching, started and completed in
// history, then another workflow task to go on). Each is a short,
// idempotent write to (or read of) our own database whose retry needs
// nothing of its own: the same call again, after a backoff, until the
// database answers — which the SDK does locally (backoffs beyond the
// workflow task timeout become a timer), and a worker that dies mid-call
// has its workflow task retried elsewhere, which runs the step again.
//
//   - CreateOrder: the insert the create update waits for; local, the order
//     is placed and the update answered in the first workflow task.
//   - CheckStock: a read, while the user waits on pay; local, the prepay is
//     scheduled in the same workflow task.
//   - MarkPaid, DeductStock: the two writes after the payment notify; local,
//     both run in the workflow task the signal starts.
//   - CloseOrder: the write at the deadline; local, an expiring order takes
//     one workflow task.
//
// The WeChat Pay calls stay regular activities: they take seconds when
// WeChat is slow (a local activity holds its workflow task that long), and
// their longer retries (up to a minute apart, a day for a refund) are best
// kept by the server and shown, attempt by attempt, in the Web UI. So do
// the database steps of rarer paths (ship, confirm, refund, flag), where
// seeing a pending step in the Web UI is worth more than a round trip.
var localDBActivities = []string{
	ActivityCreateOrder, ActivityCheckStock, ActivityMarkPaid, ActivityDeductStock, ActivityCloseOrder,
}

// LocalActivities lists the activities a new order runs as local
// activities; the others are regular activities. Benchmarks give their
// no-op workflow the same shape.
func LocalActivities() []string { return slices.Clone(localDBActivities) }

// runDB runs one of the localDBActivities: locally for an order started
// since ChangeLocalDB, as a regular activity for one started before (its
// recorded history must replay). The options are the regular activity's,
// as they apply to a local one.
func (o *order) runDB(ctx workflow.Context, opts workflow.ActivityOptions, name string, arg, out any) error {
	if !o.localDB {
		return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), name, arg).Get(ctx, out)
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    opts.StartToCloseTimeout,
		ScheduleToCloseTimeout: opts.ScheduleToCloseTimeout,
		RetryPolicy:            opts.RetryPolicy,
		Summary:                opts.Summary,
	})
	return workflow.ExecuteLocalActivity(lctx, name, arg).Get(ctx, out)
}
