package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ordersaga/internal/metrics"
)

func TestSDKMetricsAreExportedWithOneLabelSetPerMetric(t *testing.T) {
	m := metrics.NewTemporal()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	h := m.Handler()

	// The SDK gives one metric different tag sets in different places.
	h.WithTags(map[string]string{"operation": "StartWorkflowExecution"}).Counter("temporal_request").Inc(2)
	h.WithTags(map[string]string{"operation": "PollWorkflowTaskQueue", "namespace": "default"}).Counter("temporal_request").Inc(1)
	h.WithTags(map[string]string{"operation": "StartWorkflowExecution"}).Counter("temporal_request").Inc(3)
	h.WithTags(map[string]string{"task_queue": "orders"}).Gauge("temporal_worker_task_slots_available").Update(7)
	lat := h.WithTags(map[string]string{"workflow_type": "OrderWorkflow"}).Timer("temporal_workflow_endtoend_latency")
	lat.Record(20 * time.Millisecond)
	lat.Record(2 * time.Second)
	lat.Record(5 * time.Minute) // beyond the last bucket: counted in +Inf only

	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType().String() {
			case "COUNTER":
				got[key] = m.GetCounter().GetValue()
			case "GAUGE":
				got[key] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		"temporal_request_total{namespace=,operation=StartWorkflowExecution}":       5,
		"temporal_request_total{namespace=default,operation=PollWorkflowTaskQueue}": 1,
		"temporal_worker_task_slots_available{task_queue=orders}":                   7,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	for _, f := range families {
		if f.GetName() != "temporal_workflow_endtoend_latency_seconds" {
			continue
		}
		hist := f.GetMetric()[0].GetHistogram()
		if hist.GetSampleCount() != 3 || hist.GetSampleSum() < 302 || hist.GetSampleSum() > 302.1 {
			t.Fatalf("histogram count %d sum %v", hist.GetSampleCount(), hist.GetSampleSum())
		}
		for _, b := range hist.GetBucket() {
			switch b.GetUpperBound() {
			case .025:
				if b.GetCumulativeCount() != 1 {
					t.Errorf("le=0.025: %d, want 1", b.GetCumulativeCount())
				}
			case 60:
				if b.GetCumulativeCount() != 2 {
					t.Errorf("le=60: %d, want 2", b.GetCumulativeCount())
				}
			}
		}
		return
	}
	t.Fatal("timer not exported as temporal_workflow_endtoend_latency_seconds")
}

// A declared counter is exported at 0 before anything counts, and a count
// with the same tags adds to that very series (no second one is born at 1).
func TestDeclaredCounterIsExportedAtZeroAndCountedInto(t *testing.T) {
	m := metrics.NewTemporal()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	tags := metrics.SDKWorkflowTags("default", "orders", "ReconcileWorkflow")
	tags["kind"] = "REFUND_NOT_IN_SHOP"
	m.DeclareCounter("ordersaga_reconciliation_drift", tags)

	series := func() map[string]float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range families {
			for _, mt := range f.GetMetric() {
				var labels []string
				for _, l := range mt.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = mt.GetCounter().GetValue()
			}
		}
		return out
	}
	const key = "ordersaga_reconciliation_drift_total{activity_type=none,client_name=temporal_go,kind=REFUND_NOT_IN_SHOP," +
		"namespace=default,task_queue=orders,worker_type=none,workflow_type=ReconcileWorkflow}"
	if got := series(); len(got) != 1 || got[key] != 0 {
		t.Fatalf("declared: %v, want only %s at 0", got, key)
	}
	m.Handler().WithTags(tags).Counter("ordersaga_reconciliation_drift").Inc(2)
	if got := series(); len(got) != 1 || got[key] != 2 {
		t.Fatalf("after a count of 2: %v, want only %s at 2", got, key)
	}
}
