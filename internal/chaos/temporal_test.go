package chaos_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"ordersaga/internal/chaos"
)

// Temporal's own faults exist on a cluster only: "all" takes them there,
// and asking for one on the embedded server is refused with what it needs.
func TestTemporalFaultKindsNeedACluster(t *testing.T) {
	all, err := chaos.ParseFaultsFor("all", chaos.TemporalCluster)
	if err != nil || len(all) != len(chaos.AllFaults)+len(chaos.ClusterFaults) {
		t.Fatalf("all on a cluster: %v %v", all, err)
	}
	some, err := chaos.ParseFaultsFor("all,-history_kill", chaos.TemporalCluster)
	if err != nil || slices.Contains(some, chaos.FaultHistoryKill) || !slices.Contains(some, chaos.FaultMatchingKill) {
		t.Fatalf("all but history_kill: %v %v", some, err)
	}
	if emb, err := chaos.ParseFaults("all"); err != nil || slices.Contains(emb, chaos.FaultFrontendRestart) {
		t.Fatalf("all on the embedded server: %v %v", emb, err)
	}
	if _, err := chaos.ParseFaults("history_kill"); err == nil || !strings.Contains(err.Error(), "-temporal cluster") {
		t.Fatalf("history_kill on the embedded server: %v", err)
	}
	_, err = chaos.Run(context.Background(), chaos.Options{Faults: []string{chaos.FaultTemporalPostgresRestart}})
	if err == nil || !strings.Contains(err.Error(), "needs -temporal cluster") {
		t.Fatalf("Run with a cluster fault on the embedded server: %v", err)
	}
	if _, err := chaos.Run(context.Background(), chaos.Options{Temporal: "kubernetes"}); err == nil || !strings.Contains(err.Error(), `"kubernetes"`) {
		t.Fatalf("Run on an unknown Temporal: %v", err)
	}
}
