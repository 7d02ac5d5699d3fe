package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Every change of the workflows' logic that running workflows must replay
// as they ran (README, "Changing the workflow safely"), oldest first. Each
// change ID is asked with workflow.GetVersion in one place: the function
// beside it, which the workflow code calls where the branch is. A workflow
// that started before a change answers DefaultVersion there for the rest of
// its life and takes the old branch; one that started after takes the new.
// workflows/replay_test.go's recordedVersions names the changes whose
// histories are recorded.

// ChangeLocalDB (2026-12-01, commit 7f2a5bc): an order runs the database
// steps of its busy path (localDBActivities) as local activities; before
// it, every step was a regular activity. Asked once, when the order starts.
// (A worker's PreferredVersionProvider can still choose the old path for
// new orders: `ordersaga bench -baseline` does, to measure it.)
const ChangeLocalDB = "local-db-activities"

// runsDBLocally reports whether this order runs localDBActivities as local
// activities (ChangeLocalDB).
func runsDBLocally(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, ChangeLocalDB, workflow.DefaultVersion, 1) >= 1
}

// ChangeRefundStall (2026-12-01, commit 12d22a8): a refund WeChat leaves
// PROCESSING for refundStallAfter is reported once — the order flagged
// REFUND_STALLED, the stray payment counted — and the waiting goes on;
// before it, the waiting went on without a word. Asked when a refund
// first reaches refundStallAfter, so refunds that were already waiting
// then replay without the step.
const ChangeRefundStall = "refund-stall-flag"

// reportsStalledRefunds reports whether a refund that reached
// refundStallAfter is reported (ChangeRefundStall).
func reportsStalledRefunds(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, ChangeRefundStall, workflow.DefaultVersion, 1) >= 1
}

// ChangeBillWait (2026-12-07, review-17): a reconciliation gives up on a
// bill WeChat is still making after billWaitFor (23 h) instead of 24 h, so
// that the daily run ends before the schedule's next one is due (overlap
// policy skip would drop that day). Asked once, when the run starts
// waiting; runs that started before keep billWaitForV0.
const ChangeBillWait = "reconcile-bill-wait-23h"

// billWaitLimit is how long this reconciliation waits for a bill WeChat is
// still making (ChangeBillWait).
func billWaitLimit(ctx workflow.Context) time.Duration {
	if workflow.GetVersion(ctx, ChangeBillWait, workflow.DefaultVersion, 1) >= 1 {
		return billWaitFor
	}
	return billWaitForV0
}

// ChangeHistoryBudget (2026-12-07, issue 19): a workflow that waits long
// continues as new when Temporal suggests it or its history reaches the
// budget (keepHistoryBudget), and a refund WeChat keeps PROCESSING is asked
// about less often as it ages (refundPollCap: every 30 minutes for
// refundPollSlowAfter, then every 2 hours, then every 6 after
// refundPollSlowestAfter); before it, a run grew until Temporal cut it
// off, asking every 30 minutes. Asked where the two first differ — when a
// run first reaches its budget, or a refund first reaches
// refundPollSlowAfter — so recorded histories that never got there replay
// without a marker. A run that was already past either point when it was
// first replayed with the change got DefaultVersion there for good; it
// takes the budget at its first check made live instead
// (keepsHistoryBudgetFromNow), so the long waits already under way at the
// deploy continue as new too.
const ChangeHistoryBudget = "history-budget"

// keepsHistoryBudget reports whether this run keeps the history budget and
// slows its refund polling (ChangeHistoryBudget).
func keepsHistoryBudget(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, ChangeHistoryBudget, workflow.DefaultVersion, 1) >= 1
}

// ChangeWechatShipping (2026-12-07, issue 16): an order reports its
// shipment to WeChat's order shipping management once SHIPPED, and — when
// WeChat manages the shop's shipping — completes on WeChat's word (its
// settlement event, or WeChat asked at the auto-confirm time and after)
// instead of by itself; the user's confirmation is checked with WeChat.
// Asked once, when the order's first run starts: orders started before
// keep the old path to their end. A run continued as new (ChangeHistoryBudget)
// does not ask again — a new run has no marker, and would answer the new
// path — but takes the answer from its state (OrderState.WechatShipping
// set: the new path). (WeChat's events are taken by every order: no
// history recorded before this change holds one.)
const ChangeWechatShipping = "wechat-shipping"

// reportsShipping reports whether this order takes the shipping-management
// path (ChangeWechatShipping).
func reportsShipping(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, ChangeWechatShipping, workflow.DefaultVersion, 1) >= 1
}

// keepsHistoryBudgetFromNow reports whether a run that began before
// ChangeHistoryBudget takes it in this workflow task. GetVersion keeps its
// first answer for the rest of a run, and a run that was already past its
// budget — or had a refund waiting past refundPollSlowAfter — when a worker
// with the change first replayed it was asked at a check its old history
// never made: DefaultVersion, for good. Those are the stalled refunds and
// long histories the change is for. So such a run asks again at each check
// under a change ID of the workflow task it is in (ChangeHistoryBudget@<the
// task's history length>): a task replayed from before the change has no
// marker for it (DefaultVersion), the first task run live records one (1),
// and a replay of that task finds it. (The DefaultVersion answers of the
// replay make the run's TemporalChangeVersion list too long to upsert: the
// SDK skips it with a warning, which is harmless.)
func keepsHistoryBudgetFromNow(ctx workflow.Context) bool {
	change := fmt.Sprintf("%s@%d", ChangeHistoryBudget, workflow.GetInfo(ctx).GetCurrentHistoryLength())
	return workflow.GetVersion(ctx, change, workflow.DefaultVersion, 1) >= 1
}

// ChangePartialRefunds (2026-12-08, issue 18): an order refunds some of its
// items, each refund its own part (PartRefunds) asked of WeChat one after
// another, at least OrderInput.RefundInterval apart, and driven by the
// main loop as steps with deadlines in the state; the order stays in its
// status with refunded_fen until every item was refunded (REFUNDED). A
// request decided before no longer answers a later one. Asked once, in the
// order's first run, when it is paid (fulfil; see there why not at its
// start): orders paid before take the single full refund to their end. A
// continued run takes the answer from its state (OrderState.Parts set: the
// new path), as ChangeWechatShipping. After-sales (aftersale.go) and a
// completed order's after-sale window belong to the same change: only
// orders with Parts take them, and the two shipped together, so no run
// decided this change without them (its histories were recorded again).
const ChangePartialRefunds = "partial-refunds"

// refundsInParts reports whether this order refunds in parts
// (ChangePartialRefunds).
func refundsInParts(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, ChangePartialRefunds, workflow.DefaultVersion, 1) >= 1
}
