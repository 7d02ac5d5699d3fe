package workflows

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

// What engineers see of an order in the Web UI: search attributes to find
// it, the details line saying what it waits for, and the transitions in the
// state query.

// addFlag records that the order needs a person, once per flag, and counts
// it: operators alert on MetricOrdersFlagged.
func (o *order) addFlag(ctx workflow.Context, flag string) {
	if slices.Contains(o.Flags, flag) {
		return
	}
	o.Flags = append(o.Flags, flag)
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"flag": flag}).Counter(MetricOrdersFlagged).Inc(1)
}

// publish upserts the search attributes, so that the Web UI can filter by
// OrderStatus="PAID" and friends, and refreshes the details line.
func (o *order) publish(ctx workflow.Context) {
	updates := []temporal.SearchAttributeUpdate{
		AttrOrderNo.ValueSet(o.Input.OrderNo),
		AttrOrderStatus.ValueSet(string(o.Status)),
		AttrOrderUserID.ValueSet(strconv.FormatInt(o.Input.UserID, 10)),
	}
	if o.Status != status.Refused {
		updates = append(updates, AttrOrderAmountFen.ValueSet(o.Created.TotalFen))
	}
	if o.inParts() && o.Status != status.Refused {
		// Only orders since ChangePartialRefunds: the histories of before
		// replay their upserts as they were.
		updates = append(updates, AttrOrderRefundedFen.ValueSet(o.refundedFen()))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		o.logger.Warn("upsert search attributes", "error", err)
	}
	o.showDetails(ctx)
}

// setWaiting says, in the Web UI's details line and the state query, what
// the order is doing or waiting for now.
func (o *order) setWaiting(ctx workflow.Context, what string) {
	o.Waiting = what
	o.showDetails(ctx)
}

func (o *order) showDetails(ctx workflow.Context) {
	details := fmt.Sprintf("**%s** · %s", o.Status, yuan(o.Created.TotalFen))
	if fen := o.refundedFen(); fen > 0 && o.inParts() {
		details = fmt.Sprintf("**%s** · %s of %s refunded", o.Status, yuan(fen), yuan(o.Created.TotalFen))
	}
	if o.TransactionID != "" {
		details += " · WeChat transaction " + o.TransactionID
	}
	if w := o.wechatDetails(); w != "" {
		details += " · " + w
	}
	if a := o.afterSaleDetails(); a != "" {
		details += " · " + a
	}
	if len(o.Flags) > 0 {
		details += " · ⚠ needs a person: " + fmt.Sprint(o.Flags)
	}
	if o.Waiting != "" {
		details += "\n\n" + o.Waiting
	}
	if o.Runs > 0 {
		// Temporal starts a continued run without the static summary the
		// API gave the first: the details line carries it.
		details = fmt.Sprintf("%s · run %d (continued as new: the history budget)\n\n%s", o.summary(), o.Runs+1, details)
	}
	workflow.SetCurrentDetails(ctx, details)
}

// summary is the order's one line, as the API's static summary of its
// first run reads: "Order 2026112300012 · ¥39.00 · 1 item".
func (o *order) summary() string {
	var units int64
	for _, it := range o.Created.Items {
		units += it.Quantity
	}
	noun := "items"
	if units == 1 {
		noun = "item"
	}
	return fmt.Sprintf("Order %s · %s · %d %s", o.Input.OrderNo, yuan(o.Created.TotalFen), units, noun)
}

// flag marks the order for a person: on the row (FlagOrder), in the state
// query and in the details line, and in the worker's error log.
func (o *order) flag(ctx workflow.Context, flag, reason string) error {
	o.logger.Error("order needs a person", "flag", flag, "reason", reason)
	actx := workflow.WithActivityOptions(ctx, dbActivity(fmt.Sprintf("Flag order %s for a person: %s", o.Input.OrderNo, flag)))
	if err := workflow.ExecuteActivity(actx, ActivityFlagOrder, FlagOrderInput{
		OrderNo: o.Input.OrderNo, Flag: flag, Reason: reason,
	}).Get(ctx, nil); err != nil {
		return fmt.Errorf("flag order %s: %w", o.Input.OrderNo, err)
	}
	o.addFlag(ctx, flag)
	o.showDetails(ctx)
	return nil
}

func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s¥%d.%02d", sign, fen/100, fen%100)
}

func clock(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// human renders a duration as a person would say it: "7 days", "36h0m0s".
func human(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d > 0 && d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}
