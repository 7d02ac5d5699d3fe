package devserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

var (
	keyOrderNo     = temporal.NewSearchAttributeKeyKeyword("OrderNo")
	keyOrderStatus = temporal.NewSearchAttributeKeyKeyword("OrderStatus")
	keyAmount      = temporal.NewSearchAttributeKeyInt64("OrderAmountFen")
	keyOrderUserID = temporal.NewSearchAttributeKeyKeyword("OrderUserID")
)

func orderAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		"OrderNo":        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"OrderStatus":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"OrderUserID":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"OrderAmountFen": enumspb.INDEXED_VALUE_TYPE_INT,
	}
}

// waitForDone is a workflow that parks until it is signalled, like an order
// waiting for its payment.
func waitForDone(ctx workflow.Context) (string, error) {
	var v string
	workflow.GetSignalChannel(ctx, "done").Receive(ctx, &v)
	return v, nil
}

func start(t *testing.T, dir string, attrs map[string]enumspb.IndexedValueType) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Dir: dir, FrontendPort: -1, UIPort: -1, SearchAttributes: attrs})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return s
}

func TestServerKeepsWorkflowsAndSearchAttributesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// First start: a database created before OrderUserID existed.
	first := orderAttributes()
	delete(first, "OrderUserID")
	s := start(t, dir, first)
	c, err := s.Dial(ctx, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "order-T1",
		TaskQueue: "devserver-test",
		TypedSearchAttributes: temporal.NewSearchAttributes(
			keyOrderNo.ValueSet("T1"), keyOrderStatus.ValueSet("PENDING"), keyAmount.ValueSet(1999)),
		StaticSummary: "order T1",
	}, waitForDone)
	if err != nil {
		t.Fatalf("start workflow: %v", err)
	}
	waitVisible(t, ctx, c, `OrderStatus="PENDING" AND OrderAmountFen=1999`, run.GetID())
	c.Close()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// Second start on the same directory, now with all four attributes.
	s = start(t, dir, orderAttributes())
	defer s.Stop()
	c, err = s.Dial(ctx, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: s.Namespace()})
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range orderAttributes() {
		if got := sa.GetCustomAttributes()[name]; got != typ {
			t.Errorf("search attribute %s = %v, want %v", name, got, typ)
		}
	}

	desc, err := c.DescribeWorkflowExecution(ctx, "order-T1", "")
	if err != nil {
		t.Fatalf("workflow lost across restart: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("workflow status after restart = %v, want RUNNING", st)
	}
	waitVisible(t, ctx, c, `OrderNo="T1"`, "order-T1")

	// The attribute added at this start is usable at once.
	run2, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "order-T2",
		TaskQueue: "devserver-test",
		TypedSearchAttributes: temporal.NewSearchAttributes(
			keyOrderNo.ValueSet("T2"), keyOrderUserID.ValueSet("42")),
	}, waitForDone)
	if err != nil {
		t.Fatalf("start a workflow with the added attribute: %v", err)
	}
	waitVisible(t, ctx, c, `OrderUserID="42"`, run2.GetID())

	// The restarted server still runs it to completion.
	w := worker.New(c, "devserver-test", worker.Options{})
	w.RegisterWorkflow(waitForDone)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := c.SignalWorkflow(ctx, "order-T1", "", "done", "paid"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := c.GetWorkflow(ctx, "order-T1", "").Get(ctx, &got); err != nil || got != "paid" {
		t.Fatalf("workflow result = %q, %v; want paid", got, err)
	}
}

// Dev data made before the tuning — 4 history shards, the workflow lists in
// temporal.db — keeps working as it is: the stored shard count wins over the
// one asked for (it is fixed when a database is created), and the lists stay
// where they are. A new directory gets visibility.db.
func TestDatabaseMadeBeforeTheTuningKeepsItsShardsAndLists(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	old, err := Start(ctx, Options{Dir: dir, FrontendPort: -1, SearchAttributes: orderAttributes(), Revert: RevertAll, HistoryShards: 4})
	if err != nil {
		t.Fatal(err)
	}
	c, err := old.Dial(ctx, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "order-OLD", TaskQueue: "devserver-test",
		TypedSearchAttributes: temporal.NewSearchAttributes(keyOrderNo.ValueSet("OLD")),
	}, waitForDone); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, ctx, c, `OrderNo="OLD"`, "order-OLD")
	c.Close()
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, visibilityFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the layout before the tuning made %s: %v", visibilityFile, err)
	}

	s, err := Start(ctx, Options{Dir: dir, FrontendPort: -1, SearchAttributes: orderAttributes(), HistoryShards: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	st, err := s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.HistoryShards != 4 || st.VisibilityDB != "temporal.db" {
		t.Fatalf("settings of the old database: %d shards, lists in %s; want 4, temporal.db", st.HistoryShards, st.VisibilityDB)
	}
	c, err = s.Dial(ctx, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitVisible(t, ctx, c, `OrderNo="OLD"`, "order-OLD")
	w := worker.New(c, "devserver-test", worker.Options{})
	w.RegisterWorkflow(waitForDone)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := c.SignalWorkflow(ctx, "order-OLD", "", "done", "paid"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := c.GetWorkflow(ctx, "order-OLD", "").Get(ctx, &got); err != nil || got != "paid" {
		t.Fatalf("workflow of the old database = %q, %v; want paid", got, err)
	}
	waitVisible(t, ctx, c, `OrderNo="OLD" AND ExecutionStatus="Completed"`, "order-OLD")

	fresh := start(t, t.TempDir(), orderAttributes())
	defer fresh.Stop()
	if st, err := fresh.Settings(ctx); err != nil || st.HistoryShards != DefaultHistoryShards || st.VisibilityDB != visibilityFile {
		t.Fatalf("settings of a new database: %+v, %v; want %d shards, lists in %s", st, err, DefaultHistoryShards, visibilityFile)
	}
}

func TestTakenPortFailsWithClearMessage(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"frontend", Options{Dir: t.TempDir(), FrontendPort: port, UIPort: 0}, "Temporal frontend port"},
		{"web ui", Options{Dir: t.TempDir(), FrontendPort: -1, UIPort: port}, "Temporal Web UI port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Start(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), fmt.Sprint(port)) {
				t.Fatalf("err = %v; want it to name %q and port %d", err, tt.want, port)
			}
		})
	}
}

func waitVisible(t *testing.T, ctx context.Context, c client.Client, query, id string) {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		var invalid *serviceerror.InvalidArgument
		if errors.As(err, &invalid) {
			t.Fatalf("query %q refused: %v", query, err)
		}
		if err == nil {
			for _, e := range resp.GetExecutions() {
				if e.GetExecution().GetWorkflowId() == id {
					return
				}
			}
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("workflow %s never listed for %q (last error %v)", id, query, last)
}
