package fleet_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/e2e/fleet"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Scenario 6: c2 has a node on a 5.4 kernel, too old for eBPF host routing (5.10) and for
// XDP on ena (5.6). The plan holds its kpr and xdp with the node and the reason, the rollout
// runs only baseline and l7 there while the others take all four phases, and status shows why.
func TestPreflightHoldsOldKernel(t *testing.T) {
	clusters := threeClusters()
	clusters[1].Kernels = []string{"6.1.112-124.190.amzn2023.x86_64", "5.4.0-150-generic"}
	f := startFleet(t, clusters)
	spec := fleet.Rollout{ID: "preflight", Canary: 1, WaveSize: 2}
	path := f.Dir + "/preflight.yaml"
	writeFile(t, path, spec.YAML())

	plan := mustFleetctl(t, f, 0, "rollout", "plan", "-f", path).Stdout
	t.Logf("plan:\n%s", plan)
	row := lineWith(plan, " c2 ")
	if !strings.Contains(row, "baseline,l7 ") || !strings.Contains(row, "kpr,xdp") || !strings.Contains(row, "c2-n2") || !strings.Contains(row, "5.4.0-150-generic") {
		t.Errorf("plan row for c2 should run baseline,l7, hold kpr,xdp and name c2-n2 and its kernel: %q", row)
	}
	if row := lineWith(plan, " c1 "); !strings.Contains(row, "baseline,l7,kpr,xdp") {
		t.Errorf("plan row for c1 should run all four phases: %q", row)
	}

	mustFleetctl(t, f, 0, "rollout", "create", "-f", path)
	waitWatch(t, watch(t, f, f.Controllers[0].URL, "preflight"), 0)
	r := waitEnd(t, f, "preflight")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
		t.Fatalf("rollout %s: %s", r.GetState(), r.GetMessage())
	}
	c2 := clusterStates(r)["c2"]
	if !slices.Equal(c2.GetHeldPhases(), []ebbflowv1.Phase{ebbflowv1.Phase_PHASE_KPR, ebbflowv1.Phase_PHASE_XDP}) || !strings.Contains(c2.GetHeldReason(), "c2-n2") {
		t.Errorf("c2: held %v: %q", c2.GetHeldPhases(), c2.GetHeldReason())
	}
	if c2.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SUCCEEDED || c2.GetPhase() != ebbflowv1.Phase_PHASE_L7 {
		t.Errorf("c2: %s at %s, want succeeded after l7", c2.GetState(), c2.GetPhase())
	}
	// On the cluster: l7 is on, kpr is not, and kube-proxy still runs on both nodes.
	cfg := ciliumConfig(t, f.Cluster("c2"))
	if cfg["enable-l7-proxy"] != "true" || cfg["kube-proxy-replacement"] == "true" || cfg["bpf-lb-acceleration"] == "native" {
		t.Errorf("c2: cilium-config %v, want l7 only", cfg)
	}
	waitKubeProxy(t, f.Cluster("c2"), false, 2)
	for _, name := range []string{"c1", "c3"} {
		checkTuned(t, f.Cluster(name))
	}

	st := mustFleetctl(t, f, 0, "rollout", "status", "preflight").Stdout
	if row := lineWith(st, " c2 "); !strings.Contains(row, "held kpr,xdp by preflight") || !strings.Contains(row, "c2-n2") {
		t.Errorf("status row for c2 should show the held phases and the node:\n%s", st)
	}
}
