package fleet_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/e2e/fleet"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Scenario 1: three clusters, a canary wave of one and a wave of two, all four phases. Every
// cluster ends with the profile's config in cilium-config and kube-proxy parked, and
// `fleetctl rollout status --watch` exits 0.
func TestHappyPath(t *testing.T) {
	f := startFleet(t, threeClusters())
	createRollout(t, f, fleet.Rollout{ID: "happy", Canary: 1, WaveSize: 2})
	w := watch(t, f, f.Controllers[1].URL, "happy")
	out := waitWatch(t, w, 0)

	r := waitEnd(t, f, "happy")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
		t.Fatalf("rollout %s: %s", r.GetState(), r.GetMessage())
	}
	if n := len(r.GetWaves()); n != 2 || len(r.GetWaves()[0].GetClusters()) != 1 || r.GetWaves()[0].GetClusters()[0].GetCluster() != "c1" {
		t.Fatalf("waves: want [c1] then [c2 c3], got %v", r.GetWaves())
	}
	states := clusterStates(r)
	for _, c := range f.Clusters {
		cs := states[c.Name]
		if cs.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SUCCEEDED || cs.GetPhase() != ebbflowv1.Phase_PHASE_XDP {
			t.Errorf("%s: %s at %s: %s", c.Name, cs.GetState(), cs.GetPhase(), cs.GetReason())
		}
		var phases []ebbflowv1.Phase
		for _, res := range cs.GetResults() {
			phases = append(phases, res.GetPhase())
			if !res.GetVerified() || (res.GetPhase() != ebbflowv1.Phase_PHASE_BASELINE && res.GetVerdict() != ebbflowv1.Verdict_VERDICT_PASS) {
				t.Errorf("%s %s: verified %v verdict %s: %s", c.Name, res.GetPhase(), res.GetVerified(), res.GetVerdict(), res.GetReason())
			}
		}
		if want := []ebbflowv1.Phase{ebbflowv1.Phase_PHASE_BASELINE, ebbflowv1.Phase_PHASE_L7, ebbflowv1.Phase_PHASE_KPR, ebbflowv1.Phase_PHASE_XDP}; !slices.Equal(phases, want) {
			t.Errorf("%s: phase results %v, want %v", c.Name, phases, want)
		}
		checkTuned(t, c)
		// The install, then one revision per phase that changes values (baseline changes nothing).
		hs := helmHistory(t, c)
		if len(hs) != 4 || hs[len(hs)-1].Info.Status != "deployed" {
			t.Errorf("%s: helm history %s, want 4 revisions, the last deployed", c.Name, describeHistory(hs))
		}
		if !strings.Contains(out.Stdout, c.Name) {
			t.Errorf("the watch never showed %s", c.Name)
		}
	}
	if got := lastFrame(out.Stdout); !strings.Contains(got, "SUCCEEDED") {
		t.Errorf("the watch's last frame does not say SUCCEEDED:\n%s", got)
	}
}
