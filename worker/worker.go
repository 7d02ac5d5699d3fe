// Package worker builds the Temporal worker that runs the order workflows and
// their activities on one task queue. Any number of replicas may run.
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
	r.RegisterActivityWithOptions(acts.CreateOrder, activity.RegisterOptions{Name: workflows.ActivityCreateOrder})
	r.RegisterActivityWithOptions(acts.CloseOrder, activity.RegisterOptions{Name: workflows.ActivityCloseOrder})
}

// RegisterWorkflows registers the workflows only (for replay tests).
func RegisterWorkflows(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.OrderWorkflow, workflow.RegisterOptions{Name: workflows.OrderWorkflowName})
}
