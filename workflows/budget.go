package workflows

import (
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"
)

// The history budget. A workflow that can wait without bound — an order
// after payment, a stray payment whose refund WeChat keeps PROCESSING —
// grows its history with every round of waiting, and Temporal terminates a
// run at 51 200 events or 50 MB (it warns at 10 240 events or 10 MB). So
// such a workflow checks its history between two steps (keepHistoryBudget)
// and, once Temporal suggests it or the history reached the budget below,
// ends the run by continuing as new: the same workflow ID, its search
// attributes and memo (the SDK carries them), and its whole durable state
// (OrderState, StrayState) as the new run's input.
//
// A check happens only where nothing is under way: no activity or timer is
// pending (they die with the run), no update handler is running (its
// caller would get no answer), and the signals of the last workflow task
// are in the state (drainSignals).
const (
	// historyBudgetEvents, historyBudgetBytes: a run continues as new at
	// either, whatever Temporal suggests — the same as Temporal's default
	// suggestion (limit.historyCount/historySize.suggestContinueAsNew), so a
	// cluster that raised or turned off its suggestion keeps orders there.
	historyBudgetEvents = 4 * 1024
	historyBudgetBytes  = 4 << 20
	// historyWarnEvents, historyWarnBytes: a run that reaches a check past
	// either could not continue at the checks before (an update handler
	// that never finishes) or went thousands of events without one, and is
	// counted (MetricHistoryLarge) long before Temporal's own warning and
	// limit.
	historyWarnEvents = 8 * 1024
	historyWarnBytes  = 8 << 20
)

// Why a run continued as new (the reason label of MetricContinuedAsNew).
const (
	continueSuggested = "suggested" // Temporal's suggestion (GetContinueAsNewSuggested)
	continueEvents    = "events"    // historyBudgetEvents
	continueBytes     = "bytes"     // historyBudgetBytes
)

// continuer is a workflow that keeps a history budget: the order and the
// stray payment.
type continuer interface {
	// drainSignals moves into the state every signal delivered to the run
	// and not yet taken.
	drainSignals(ctx workflow.Context)
	// continuation is the error that ends the run and starts the next one
	// from the state as it is now.
	continuation(ctx workflow.Context) error
	log() log.Logger
}

// historyBudget is one run's watch over its history (runtime only: a new
// run starts a new watch).
type historyBudget struct {
	workflowType string
	warned       bool // MetricHistoryLarge counted for this run
	// late: this run began before ChangeHistoryBudget and took it at a
	// check made live (keepsHistoryBudgetFromNow).
	late bool
}

// keepHistoryBudget is the check a workflow makes between two steps of a
// wait that may last long: nil to go on in this run, or the
// continue-as-new error to return from the workflow function at once
// (isContinueAsNew) — the state, signals included, is in it.
func (b *historyBudget) keepHistoryBudget(ctx workflow.Context, w continuer) error {
	info := workflow.GetInfo(ctx)
	events, bytes := info.GetCurrentHistoryLength(), info.GetCurrentHistorySize()
	if !b.warned && (events >= historyWarnEvents || bytes >= historyWarnBytes) {
		b.warned = true
		w.log().Error("workflow history past the warning size: it has not continued as new", "events", events, "bytes", bytes)
		workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"workflow": b.workflowType}).Counter(MetricHistoryLarge).Inc(1)
	}
	var reason string
	switch {
	case info.GetContinueAsNewSuggested():
		reason = continueSuggested
	case events >= historyBudgetEvents:
		reason = continueEvents
	case bytes >= historyBudgetBytes:
		reason = continueBytes
	default:
		return nil
	}
	// Runs that began before this check replay without it, and take it
	// from their first check made live.
	if !b.late && !keepsHistoryBudget(ctx) {
		if b.late = keepsHistoryBudgetFromNow(ctx); !b.late {
			return nil
		}
	}
	// A signal of this workflow task may sit with a listening coroutine
	// that has not run yet; an update handler may have begun.
	letCoroutinesRun(ctx)
	if !workflow.AllHandlersFinished(ctx) {
		// An update waits for the step this check comes before (a refund,
		// ship or confirm request): it is answered first, and the run
		// continues at the next check.
		return nil
	}
	w.drainSignals(ctx)
	w.log().Info("continuing as new", "reason", reason, "events", events, "bytes", bytes)
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"workflow": b.workflowType, "reason": reason}).
		Counter(MetricContinuedAsNew).Inc(1)
	return w.continuation(ctx)
}

// letCoroutinesRun lets every other coroutine of the run take what this
// workflow task delivered before the caller goes on: a signal handed to a
// coroutine blocked in Receive is in no channel any more, only in that
// coroutine, until it runs. Coroutines run in the order they were made, so
// one made now runs after them all. (No command: replays as it ran.)
func letCoroutinesRun(ctx workflow.Context) {
	ran := false
	workflow.Go(ctx, func(workflow.Context) { ran = true })
	_ = workflow.Await(ctx, func() bool { return ran })
}

// drainChannel takes every value waiting in a signal channel.
func drainChannel[T any](ctx workflow.Context, name string, take func(T)) {
	ch := workflow.GetSignalChannel(ctx, name)
	for {
		var v T
		if !ch.ReceiveAsync(&v) {
			return
		}
		take(v)
	}
}

// isContinueAsNew reports whether err ends the run by continuing as new.
func isContinueAsNew(err error) bool { return workflow.IsContinueAsNewError(err) }
