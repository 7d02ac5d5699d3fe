package workflows_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"ordersaga/worker"
	"ordersaga/workflows"
)

// historiesDir holds one recorded history per path of an order's life,
// written by TestRecordHistories (record_test.go, build tag "record") from
// runs on the real stack.
const historiesDir = "testdata/histories"

// recordedVersions are the versions of the order workflow whose histories
// must exist: "" for orders started before any versioned change, then the
// workflow.GetVersion change of each since (newest last). Orders of every
// one may still be running somewhere, so every one must replay.
var recordedVersions = []string{
	"",
	"local-db",        // workflows.ChangeLocalDB: the busy path's database steps as local activities
	"history-budget",  // workflows.ChangeHistoryBudget: long waits continue as new, refund polling slows
	"wechat-shipping", // workflows.ChangeWechatShipping: shipments reported to WeChat, completion on its word
	"partial-refunds", // workflows.ChangePartialRefunds: refunds of some items, each its own step
}

// historyFile is the file of a path's history recorded at a version.
func historyFile(path, version string) string {
	if version == "" {
		return path + ".json"
	}
	return path + "." + version + ".json"
}

// recordedPaths are the histories that must exist: every path the order
// saga takes, at every recorded version since the one it was first recorded
// at (a path recorded later was not recorded at the versions before it).
// Record again after a deliberate, versioned change (README, "Changing the
// workflow safely").
var recordedPaths = []struct{ name, since string }{
	{"refused-out-of-stock", ""},
	{"closed-never-prepaid", ""},
	{"closed-after-prepay", ""},
	{"cancelled-by-user", ""},
	{"paid-shipped-confirmed", ""},
	{"paid-refunded-by-user", ""},
	{"shipped-refunded-by-admin", ""},
	{"oversold-refunded", ""},
	{"notify-lost-found-by-sync", ""},
	{"notify-lost-found-at-deadline", ""},
	{"paid-a-moment-before-close", ""},
	{"refund-abnormal", ""},
	{"payment-mismatch-closed", ""},
	{"payment-mismatch-stray-refund", ""},
	{"shipped-auto-confirmed", "local-db"},
	{"refund-settled-by-query", "local-db"},
	{"refund-refused-by-wechat", "local-db"},
	{"cancelled-from-temporal", "local-db"},
	{"paid-after-close-stray-refund", "local-db"},
	// A shipped order whose run continued as new (Temporal suggested it),
	// and the run that began from the state it handed on and completed.
	{"shipped-continued-first-run", "history-budget"},
	{"shipped-continued", "history-budget"},
	// An order the workers of before history-budget ran past its budget,
	// continued as new by the first check a worker with it made live.
	{"upgraded-continued-first-run", "history-budget"},
	{"shipped-confirmed-in-wechat", "wechat-shipping"},
	{"shipped-completed-asking-wechat", "wechat-shipping"},
	{"shipping-upload-answer-lost", "wechat-shipping"},
	{"shipping-refused-then-refunded", "wechat-shipping"},
	{"reminded-to-ship-then-confirmed", "wechat-shipping"},
	// A shipment WeChat has, a run continued as new while the buyer had not
	// confirmed, and the run that completed on WeChat's settlement event.
	{"shipped-in-wechat-continued-first-run", "wechat-shipping"},
	{"shipped-in-wechat-continued", "wechat-shipping"},
	// Refunds of some items: two parts (REFUNDED), and one part before the
	// order ships and completes.
	{"part-refunds-then-refunded", "partial-refunds"},
	{"part-refund-then-completed", "partial-refunds"},
	// After-sales (inside the order's workflow; no version of their own:
	// see workflows/aftersale.go): a return received and refunded, and a
	// refund-only after-sale rejected then another approved.
	{"after-sale-return-refunded", "partial-refunds"},
	{"after-sale-rejected-then-refund-only", "partial-refunds"},
}

// (The USERPAYING grace is not recorded: the simulator, like WeChat, closes
// a trade still USERPAYING at its time_expire, which is the order's
// deadline, so the real stack never shows it; the workflow test
// TestPayerStillEnteringThePasswordGetsAGraceThenTheOrderCloses covers it.
// Nor is CLOSE_UNCONFIRMED: its eight close rounds take ~15 minutes.)

// recordedHistory reads the history of a path recorded at a version.
func recordedHistory(t *testing.T, path, version string) (string, *historypb.History) {
	t.Helper()
	f := filepath.Join(historiesDir, historyFile(path, version))
	data, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	h, err := client.HistoryFromJSON(data, client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	return f, h
}

// pathsAt are the paths recorded at version v.
func pathsAt(v string) []string {
	at := slices.Index(recordedVersions, v)
	var out []string
	for _, p := range recordedPaths {
		if slices.Index(recordedVersions, p.since) <= at {
			out = append(out, p.name)
		}
	}
	return out
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
		have = append(have, filepath.Base(f))
	}
	for _, v := range recordedVersions {
		for _, p := range pathsAt(v) {
			if !slices.Contains(have, historyFile(p, v)) {
				t.Errorf("no recorded history for path %q at version %q (record with: go test -tags record ./workflows -run TestRecordHistories)", p, v)
			}
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

// Orders started before workflows.ChangeLocalDB ran every step as a regular activity;
// orders started since run the steps workflows.LocalActivities names as
// local activities (a marker in history), and only those.
func TestRecordedHistoriesRunEachStepAsItsVersionDoes(t *testing.T) {
	local := workflows.LocalActivities()
	for _, v := range recordedVersions {
		for _, p := range pathsAt(v) {
			f, h := recordedHistory(t, p, v)
			evs := h.GetEvents()
			started := evs[0].GetWorkflowExecutionStartedEventAttributes()
			if started.GetWorkflowType().GetName() != workflows.OrderWorkflowName || started.GetContinuedExecutionRunId() != "" {
				continue // a continued run was placed by its first run
			}
			var markers []string
			for _, ev := range evs {
				if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && v != "" && slices.Contains(local, a.GetActivityType().GetName()) {
					t.Errorf("%s: %s ran as a regular activity", f, a.GetActivityType().GetName())
				}
				if m := ev.GetMarkerRecordedEventAttributes(); m != nil && m.GetMarkerName() == "LocalActivity" {
					var d struct{ ActivityType string }
					if err := converter.GetDefaultDataConverter().FromPayloads(m.GetDetails()["data"], &d); err != nil {
						t.Fatalf("%s: marker: %v", f, err)
					}
					markers = append(markers, d.ActivityType)
				}
			}
			switch {
			case v == "" && len(markers) > 0:
				t.Errorf("%s: local activities %v in a history of before %s", f, markers, workflows.ChangeLocalDB)
			case v != "" && !slices.Contains(markers, workflows.ActivityCreateOrder):
				t.Errorf("%s: CreateOrder did not run locally (local activities: %v)", f, markers)
			}
			for _, m := range markers {
				if !slices.Contains(local, m) {
					t.Errorf("%s: %s ran as a local activity", f, m)
				}
			}
		}
	}
}

// Every activity, local activity and timer in every recorded history
// carries a summary a person can read in the Web UI, and an order's
// workflow its static summary ("Order <no> · ¥39.00 · 1 item").
func TestEveryRecordedStepHasASummary(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	for _, v := range recordedVersions {
		for _, p := range pathsAt(v) {
			f, h := recordedHistory(t, p, v)
			summary := func(ev interface{ GetUserMetadata() *sdkpb.UserMetadata }) string {
				var s string
				if pl := ev.GetUserMetadata().GetSummary(); pl != nil {
					_ = dc.FromPayload(pl, &s)
				}
				return s
			}
			for _, ev := range h.GetEvents() {
				var what string
				switch {
				case ev.GetWorkflowExecutionStartedEventAttributes() != nil:
					// (Temporal starts a continued run without one: its
					// details line carries it, TestContinuedOrderIsTheSameOrderOnTheRealServer.)
					a := ev.GetWorkflowExecutionStartedEventAttributes()
					if a.GetWorkflowType().GetName() == workflows.OrderWorkflowName && a.GetContinuedExecutionRunId() == "" &&
						!strings.HasPrefix(summary(ev), "Order ") {
						t.Errorf("%s: the order's static summary is %q", f, summary(ev))
					}
					continue
				case ev.GetActivityTaskScheduledEventAttributes() != nil:
					what = "activity " + ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
				case ev.GetTimerStartedEventAttributes() != nil:
					what = "timer " + ev.GetTimerStartedEventAttributes().GetTimerId()
				case ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity":
					what = "local activity"
				default:
					continue
				}
				if strings.TrimSpace(summary(ev)) == "" {
					t.Errorf("%s: event %d (%s) has no summary", f, ev.GetEventId(), what)
				}
			}
		}
	}
}
