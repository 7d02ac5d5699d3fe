// Package metrics exposes the Temporal SDK's metrics — and the counters the
// workflows emit through workflow.GetMetricsHandler — in Prometheus format,
// next to the process's own collectors on /metrics.
package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// TimerBuckets are the histogram buckets (seconds) of the SDK's timers:
// from a fast poll answer to a slow activity.
var TimerBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Temporal collects what the SDK reports through client.MetricsHandler.
// The SDK gives one metric name different tag sets in different places, and
// Prometheus wants one label set per metric: each metric is exported with
// the union of the labels it has been seen with, missing ones empty.
type Temporal struct {
	mu       sync.Mutex
	families map[string]*family // by exported name
}

type kind int

const (
	counterKind kind = iota
	gaugeKind
	timerKind
)

type family struct {
	name   string
	kind   kind
	labels map[string]bool
	series map[string]*series // by canonical label set
}

type series struct {
	tags    map[string]string
	value   float64  // counter, gauge
	buckets []uint64 // timer: counts per TimerBuckets bound (cumulated at export)
	count   uint64   // timer
	sum     float64  // timer, seconds
}

// NewTemporal returns an empty collector; register it and pass Handler()
// to client.Options.MetricsHandler.
func NewTemporal() *Temporal {
	return &Temporal{families: map[string]*family{}}
}

// Handler is the client.MetricsHandler that records into t.
func (t *Temporal) Handler() client.MetricsHandler { return handler{t: t} }

type handler struct {
	t    *Temporal
	tags map[string]string
}

func (h handler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	maps.Copy(merged, h.tags)
	for k, v := range tags {
		merged[sanitize(k)] = v
	}
	return handler{t: h.t, tags: merged}
}

func (h handler) Counter(name string) client.MetricsCounter {
	name = exportName(name, counterKind)
	return counterFunc(func(d int64) {
		h.t.record(name, counterKind, h.tags, func(s *series) { s.value += float64(d) })
	})
}

func (h handler) Gauge(name string) client.MetricsGauge {
	name = exportName(name, gaugeKind)
	return gaugeFunc(func(v float64) {
		h.t.record(name, gaugeKind, h.tags, func(s *series) { s.value = v })
	})
}

func (h handler) Timer(name string) client.MetricsTimer {
	name = exportName(name, timerKind)
	return timerFunc(func(d time.Duration) {
		sec := d.Seconds()
		h.t.record(name, timerKind, h.tags, func(s *series) {
			if s.buckets == nil {
				s.buckets = make([]uint64, len(TimerBuckets))
			}
			if i, _ := slices.BinarySearch(TimerBuckets, sec); i < len(TimerBuckets) {
				s.buckets[i]++
			}
			s.count++
			s.sum += sec
		})
	})
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }

func (t *Temporal) record(name string, k kind, tags map[string]string, apply func(*series)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.families[name]
	if f == nil {
		f = &family{name: name, kind: k, labels: map[string]bool{}, series: map[string]*series{}}
		t.families[name] = f
	}
	if f.kind != k {
		return // one name, two kinds: keep the first
	}
	key := canonical(tags)
	s := f.series[key]
	if s == nil {
		s = &series{tags: maps.Clone(tags)}
		f.series[key] = s
		for l := range tags {
			f.labels[l] = true
		}
	}
	apply(s)
}

// DeclareCounter makes a counter series exist at 0 before anything counts
// in it. Prometheus's increase() and rate() see no increase in a series
// whose first sample is already 1, so an alert on increase(x[1d]) > 0 would
// miss the first count of each label set after every process start; a
// series declared at 0 makes that first count an increase like any other.
// tags must be the full label set the counter is later counted with (for
// what the SDK counts about a workflow, SDKWorkflowTags).
func (t *Temporal) DeclareCounter(name string, tags map[string]string) {
	t.Handler().WithTags(tags).Counter(name).Inc(0)
}

// SDKWorkflowTags are the labels the Temporal Go SDK (v1.50) gives what is
// counted about a workflow type on a worker of a task queue — its own
// temporal_workflow_* counters and what the workflow emits through
// workflow.GetMetricsHandler: the client's root tags, the worker's task
// queue and the workflow type. The SDK keeps them in an internal package;
// api's TestReconciliationCountersExistAtZeroFromTheWorkerStart checks a
// series declared with them is the one the workflow then counts in.
func SDKWorkflowTags(namespace, taskQueue, workflowType string) map[string]string {
	return map[string]string{
		"namespace":     namespace,
		"client_name":   "temporal_go",
		"worker_type":   "none",
		"activity_type": "none",
		"task_queue":    taskQueue,
		"workflow_type": workflowType,
	}
}

// Describe sends nothing: the metrics are known only once the SDK emits
// them, so t is an unchecked collector.
func (t *Temporal) Describe(chan<- *prometheus.Desc) {}

// Collect exports every series with its family's full label set.
func (t *Temporal) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range t.families {
		labels := slices.Sorted(maps.Keys(f.labels))
		desc := prometheus.NewDesc(f.name, f.name+" (reported through the Temporal SDK metrics handler).", labels, nil)
		for _, s := range f.series {
			values := make([]string, len(labels))
			for i, l := range labels {
				values[i] = s.tags[l]
			}
			var m prometheus.Metric
			var err error
			switch f.kind {
			case counterKind:
				m, err = prometheus.NewConstMetric(desc, prometheus.CounterValue, s.value, values...)
			case gaugeKind:
				m, err = prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.value, values...)
			case timerKind:
				cum := make(map[float64]uint64, len(TimerBuckets))
				var acc uint64
				for i, b := range TimerBuckets {
					if s.buckets != nil {
						acc += s.buckets[i]
					}
					cum[b] = acc
				}
				m, err = prometheus.NewConstHistogram(desc, s.count, s.sum, cum, values...)
			}
			if err == nil {
				ch <- m
			}
		}
	}
}

// exportName makes an SDK metric name a Prometheus one: counters end in
// _total and timers in _seconds, as Prometheus conventions (and Temporal's
// dashboards) expect.
func exportName(name string, k kind) string {
	name = sanitize(name)
	switch {
	case k == counterKind && !strings.HasSuffix(name, "_total"):
		return name + "_total"
	case k == timerKind && !strings.HasSuffix(name, "_seconds"):
		return name + "_seconds"
	}
	return name
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == ':' {
			return r
		}
		return '_'
	}, s)
}

func canonical(tags map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(tags[k])
		b.WriteByte(0)
	}
	return b.String()
}

// Sum adds up the counter or gauge series of an exported metric (e.g.
// "ordersaga_order_transitions_total") whose labels include match.
func (t *Temporal) Sum(name string, match map[string]string) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.families[name]
	if f == nil {
		return 0
	}
	var total float64
	for _, s := range f.series {
		ok := true
		for k, v := range match {
			if s.tags[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += s.value
		}
	}
	return total
}
