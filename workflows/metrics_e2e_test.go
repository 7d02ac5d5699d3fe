package workflows_test

import (
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"ordersaga/internal/metrics"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// The alert on a history past the warning size (OPERATIONS.md §5) reads
// increase(ordersaga_workflow_history_large_total[1h]), and a counter
// series that is born at 1 shows no increase: the first (and likely only)
// such run after a worker start would page nobody. So the worker shows the
// series of both workflows at 0 from its start — with the very labels a
// workflow's counter gets, which an order that continues as new shows.
func TestHistoryLargeCounterIsThereAtZeroFromTheWorkerStart(t *testing.T) {
	env, ctx := continuingStack(t)

	const large = workflows.MetricHistoryLarge + "_total"
	text := metricsOf(t, env)
	declared := map[string]map[string]string{}
	for _, wf := range []string{workflows.OrderWorkflowName, workflows.StrayPaymentWorkflowName} {
		got := seriesOf(text, large, map[string]string{"workflow": wf})
		if len(got) != 1 || got[0].value != "0" {
			t.Errorf("before any history grew, %s{workflow=%q} is %+v; want one series at 0", large, wf, got)
			continue
		}
		declared[wf] = got[0].labels
	}

	// What a workflow counts through its metrics handler carries the same
	// labels: an order that continues as new is counted with them.
	o := shippedOrder(t, env)
	notifyUntil(t, ctx, env, o.repeat, "the order continued as new", continuedFrom(runOf(t, ctx, env, workflows.WorkflowID(o.no))))
	continued := seriesOf(metricsOf(t, env), workflows.MetricContinuedAsNew+"_total", map[string]string{"workflow": workflows.OrderWorkflowName})
	if len(continued) != 1 || continued[0].value != "1" {
		t.Fatalf("%s of the order: %+v; want one series at 1", workflows.MetricContinuedAsNew, continued)
	}
	counted := maps.Clone(continued[0].labels)
	delete(counted, "reason")
	if !maps.Equal(counted, declared[workflows.OrderWorkflowName]) {
		t.Errorf("a workflow counts with labels %v; the declared %s has %v", counted, large, declared[workflows.OrderWorkflowName])
	}
	want := metrics.SDKWorkflowTags(env.Config.TemporalNamespace, env.TaskQueue, workflows.OrderWorkflowName)
	want["workflow"] = workflows.OrderWorkflowName
	if !maps.Equal(counted, want) {
		t.Errorf("a workflow counts with labels %v, want %v", counted, want)
	}
}

func metricsOf(t *testing.T, env *testenv.Env) string {
	t.Helper()
	r := env.Do(http.MethodGet, "/metrics", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.Status)
	}
	return string(r.Body)
}

type series struct {
	labels map[string]string
	value  string
}

// seriesOf lists the series of a metric in /metrics text that have every
// label of match.
func seriesOf(text, name string, match map[string]string) []series {
	line := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\{([^}]*)\} (\S+)$`)
	label := regexp.MustCompile(`(\w+)="([^"]*)"`)
	var out []series
	for _, l := range strings.Split(text, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		s := series{labels: map[string]string{}, value: m[2]}
		for _, kv := range label.FindAllStringSubmatch(m[1], -1) {
			s.labels[kv[1]] = kv[2]
		}
		ok := true
		for k, v := range match {
			ok = ok && s.labels[k] == v
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}
