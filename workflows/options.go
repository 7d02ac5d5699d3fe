package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Timing of the order process. A duration can be tuned without
// workflow.GetVersion (replay does not compare a timer's length); a count
// (userPayingRounds, closeAttempts) decides how many steps run, so changing
// one is a change of logic and needs GetVersion.
const (
	// SyncInterval: the sync update asks WeChat at most this often per order,
	// however fast the mini-program polls.
	SyncInterval = 3 * time.Second
	// prepayReuse: a prepay_id lives 2 hours at WeChat; reuse it well within that.
	prepayReuse = 110 * time.Minute
	// userPayingGrace: how long a payer entering the password is given, at
	// most userPayingRounds times, before the order is closed anyway.
	userPayingGrace  = 30 * time.Second
	userPayingRounds = 4
	// closeAttempts: close-and-query rounds at WeChat before the order is
	// closed here all the same and flagged (CLOSE_UNCONFIRMED): a payment
	// that lands later is returned by a StrayPaymentWorkflow.
	closeAttempts    = 8
	closeRetryFirst  = 10 * time.Second
	closeRetryMax    = 5 * time.Minute
	refundPollFirst  = 10 * time.Second
	refundPollMax    = 30 * time.Minute
	refundRequestFor = 24 * time.Hour
	// refundStallAfter: a refund still PROCESSING at WeChat this long after
	// it was accepted flags the order REFUND_STALLED (the waiting goes on).
	refundStallAfter = 3 * 24 * time.Hour
)

// ChangeRefundStall is the change (workflow.GetVersion) after which a
// refund WeChat leaves PROCESSING for refundStallAfter is flagged.
const ChangeRefundStall = "refund-stall-flag"

// The error types no retry can fix: an activity failing with one of them is
// not retried, whatever its own error says.
var businessErrorTypes = []string{
	ErrTypeOutOfStock, ErrTypeUnknownProduct, ErrTypeInvalidOrder, ErrTypeStatusConflict,
	ErrTypeNotPayable, ErrTypeWechatRefused,
}

// dbActivity is the options of an activity that writes the database: short
// attempts, retried with backoff for as long as it takes (the database may be
// restarting), except for the business errors that no retry can fix.
func dbActivity(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: businessErrorTypes,
		},
	}
}

// wechatActivity is the options of a WeChat Pay call the order can wait for:
// network errors, timeouts and 5xx are retried with backoff and the same
// out_trade_no / out_refund_no until WeChat answers. An attempt is bounded a
// little above the client's own 10 s timeout.
func wechatActivity(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: businessErrorTypes,
		},
	}
}

// userWaitsActivity is a WeChat Pay or database call a person is waiting
// for (pay, sync): a few quick retries, then the update answers "try again".
func userWaitsActivity(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 15 * time.Second,
		Summary:                summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        300 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        2 * time.Second,
			NonRetryableErrorTypes: businessErrorTypes,
		},
	}
}

// errorType is the ApplicationError type in err's chain ("" when none).
func errorType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}

// errorMessage is the message of the ApplicationError in err's chain, or
// err's text.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}

// refusal is the error an update returns to the API for a business reason.
func refusal(errType, format string, args ...any) error {
	return temporal.NewApplicationError(fmt.Sprintf(format, args...), errType)
}

// ChangeLocalDB is the change (workflow.GetVersion) after which an order
// runs the database steps of its busy path as local activities: orders
// started before it keep regular activities until they end. (A worker's
// PreferredVersionProvider can still choose the old path for new orders:
// `ordersaga bench -baseline` does, to measure it.)
const ChangeLocalDB = "local-db-activities"

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
