package workflows

import (
	"errors"
	"fmt"
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
)

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
