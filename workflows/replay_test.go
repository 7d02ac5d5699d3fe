package workflows_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"ordersaga/worker"
	"ordersaga/workflows"
)

// historiesDir holds one recorded history per path of an order's life,
// written by TestRecordHistories (record_test.go, build tag "record") from
// runs on the real stack.
const historiesDir = "testdata/histories"

// recordedPaths are the histories that must exist: every path the order
// saga takes. Record again after a deliberate, versioned change (README,
// "Changing the workflow safely").
var recordedPaths = []string{
	"refused-out-of-stock",
	"closed-never-prepaid",
	"closed-after-prepay",
	"cancelled-by-user",
	"paid-shipped-confirmed",
	"paid-refunded-by-user",
	"shipped-refunded-by-admin",
	"oversold-refunded",
	"notify-lost-found-by-sync",
	"notify-lost-found-at-deadline",
	"paid-a-moment-before-close",
	"refund-abnormal",
	"payment-mismatch-closed",
	"payment-mismatch-stray-refund",
}

// Every recorded history replays against today's workflow code: a change
// that would make running orders take another step than the one their
// history recorded (non-determinism) fails here, in CI, instead of in a
// worker that is running thousands of orders.
func TestRecordedHistoriesReplay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, f := range files {
		have = append(have, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	for _, p := range recordedPaths {
		if !slices.Contains(have, p) {
			t.Errorf("no recorded history for path %q (record with: go test -tags record ./workflows -run TestRecordHistories)", p)
		}
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			replayer := sdkworker.NewWorkflowReplayer()
			worker.RegisterWorkflows(replayer)
			if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}

// The replay test can fail: a workflow that takes other steps than the
// recorded ones is refused.
func TestReplayRefusesAWorkflowThatTakesOtherSteps(t *testing.T) {
	f := filepath.Join(historiesDir, "paid-shipped-confirmed.json")
	if _, err := os.Stat(f); err != nil {
		t.Fatalf("no history to replay: %v", err)
	}
	replayer := sdkworker.NewWorkflowReplayer()
	// An "OrderWorkflow" that closes the order at once, skipping payment.
	replayer.RegisterWorkflowWithOptions(func(ctx workflow.Context, in workflows.OrderInput) (workflows.OrderView, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
		err := workflow.ExecuteActivity(ctx, workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: in.OrderNo}).Get(ctx, nil)
		return workflows.OrderView{}, err
	}, workflow.RegisterOptions{Name: workflows.OrderWorkflowName})
	replayer.RegisterWorkflowWithOptions(workflows.StrayPaymentWorkflow, workflow.RegisterOptions{Name: workflows.StrayPaymentWorkflowName})
	if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, f); err == nil {
		t.Fatal("a workflow that skips the recorded steps replayed without error")
	}
}
