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
