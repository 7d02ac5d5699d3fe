package workflows

import (
	"go.temporal.io/sdk/workflow"
)

// StrayPaymentWorkflow returns a payment that no order keeps: money WeChat
// took for an order that had already closed, or a payment that did not match
// its order. One per WeChat transaction (StrayPaymentWorkflowID).
func StrayPaymentWorkflow(ctx workflow.Context, in StrayPaymentInput) (StrayPaymentView, error) {
	return StrayPaymentView{Payment: in.Payment, Reason: in.Reason, Status: "EXAMINING"}, nil
}
