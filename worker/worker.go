// Package worker builds the Temporal worker that runs the order workflows,
// the daily reconciliation and their activities on one task queue. Any number of replicas may run.
package worker

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"ordersaga/activities"
	"ordersaga/workflows"
)

// New returns a worker (not started) with every workflow and activity of the
// order process registered under its stable name.
func New(c client.Client, taskQueue string, acts *activities.Activities, opts sdkworker.Options) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, opts)
	Register(w, acts)
	return w
}

// Register puts the order workflows and activities on a registry (a worker, or
// the SDK's test environment and replayer).
func Register(r sdkworker.Registry, acts *activities.Activities) {
	RegisterWorkflows(r)
	RegisterActivities(r, acts)
}

// RegisterWorkflows registers the workflows only (for replay tests).
func RegisterWorkflows(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.OrderWorkflow, workflow.RegisterOptions{Name: workflows.OrderWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.StrayPaymentWorkflow, workflow.RegisterOptions{Name: workflows.StrayPaymentWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.ReconcileWorkflow, workflow.RegisterOptions{Name: workflows.ReconcileWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.ReconcileDailyWorkflow, workflow.RegisterOptions{Name: workflows.ReconcileDailyWorkflowName})
}

// RegisterActivities registers every activity under the name the workflows
// call it by (also on the SDK's TestActivityEnvironment).
func RegisterActivities(r sdkworker.ActivityRegistry, acts *activities.Activities) {
	for _, a := range Activities(acts) {
		r.RegisterActivityWithOptions(a.Fn, activity.RegisterOptions{Name: a.Name})
	}
}

// NamedActivity is an activity function and the name it is registered under.
type NamedActivity struct {
	Name string
	Fn   any
}

// Activities lists the activities of the order process with their names.
func Activities(acts *activities.Activities) []NamedActivity {
	return []NamedActivity{
		{workflows.ActivityCreateOrder, acts.CreateOrder},
		{workflows.ActivityCheckStock, acts.CheckStock},
		{workflows.ActivityRequestPayment, acts.RequestPayment},
		{workflows.ActivityQueryPayment, acts.QueryPayment},
		{workflows.ActivityClosePayment, acts.ClosePayment},
		{workflows.ActivityMarkPaid, acts.MarkPaid},
		{workflows.ActivityDeductStock, acts.DeductStock},
		{workflows.ActivityCloseOrder, acts.CloseOrder},
		{workflows.ActivitySetOrderStatus, acts.SetOrderStatus},
		{workflows.ActivityFlagOrder, acts.FlagOrder},
		{workflows.ActivityRequestRefund, acts.RequestRefund},
		{workflows.ActivityQueryRefund, acts.QueryRefund},
		{workflows.ActivitySettleRefund, acts.SettleRefund},
		{workflows.ActivitySaveAfterSale, acts.SaveAfterSale},
		{workflows.ActivityExamineStrayPayment, acts.ExamineStrayPayment},
		{workflows.ActivityUploadShipping, acts.UploadShippingInfo},
		{workflows.ActivityQueryWechatShipping, acts.QueryWechatShipping},
		{workflows.ActivityRemindReceipt, acts.RemindReceiptConfirmation},
		{workflows.ActivityStartReconcileRun, acts.StartReconcileRun},
		{workflows.ActivityReconcileBill, acts.ReconcileBill},
		{workflows.ActivityFailReconcileRun, acts.FailReconcileRun},
	}
}
