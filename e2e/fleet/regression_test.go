package fleet_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/e2e/fleet"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// slowDown makes the cluster's target 3x slower (10 ms to 30 ms) once its l7 phase is measured,
// so its kpr measurement is a real regression.
func slowDown(t *testing.T, f *fleet.Fleet, id string, c *fleet.Cluster) <-chan error {
	return onEvent(t, f, id, c.Name+"'s l7 measured", reportOf(c.Name, ebbflowv1.Phase_PHASE_L7, "l7 MEASURED"), func() error {
		return c.SetDelay(context.Background(), 30*time.Millisecond)
	})
}

// Scenario 2: c3's target gets slower after l7, so its kpr is judged a regression; the
// controller rolls that cluster back by itself (Helm history shows the rollback, kube-proxy is
// back), the others complete, and status shows the measured delta and the reason.
func TestRegressionRollsBackOneCluster(t *testing.T) {
	f := startFleet(t, threeClusters())
	c3 := f.Cluster("c3")
	before := ciliumConfig(t, c3)
	createRollout(t, f, fleet.Rollout{ID: "regress", Canary: 1, WaveSize: 2, WaveFailures: 1})
	slowed := slowDown(t, f, "regress", c3)
	w := watch(t, f, f.Controllers[2].URL, "regress")
	waitWatch(t, w, 0) // one failure is within the wave's budget
	if err := <-slowed; err != nil {
		t.Fatal(err)
	}

	r := waitEnd(t, f, "regress")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
		t.Fatalf("rollout %s: %s", r.GetState(), r.GetMessage())
	}
	states := clusterStates(r)
	bad := states["c3"]
	if bad.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK || bad.GetPhase() != ebbflowv1.Phase_PHASE_KPR ||
		!strings.Contains(bad.GetReason(), "regression in kpr") {
		t.Fatalf("c3: %s at %s: %q", bad.GetState(), bad.GetPhase(), bad.GetReason())
	}
	var kpr *ebbflowv1.PhaseResult
	for _, res := range bad.GetResults() {
		if res.GetPhase() == ebbflowv1.Phase_PHASE_KPR {
			kpr = res
		}
	}
	if kpr.GetVerdict() != ebbflowv1.Verdict_VERDICT_REGRESSION || kpr.GetP50DeltaPercent() < 100 {
		t.Fatalf("c3 kpr: verdict %s, p50 %+.1f%%, want a regression of about +200%%", kpr.GetVerdict(), kpr.GetP50DeltaPercent())
	}
	for _, name := range []string{"c1", "c2"} {
		if cs := states[name]; cs.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SUCCEEDED {
			t.Errorf("%s: %s: %s", name, cs.GetState(), cs.GetReason())
		}
		checkTuned(t, f.Cluster(name))
	}

	// On c3 itself: Helm rolled back to the pre-rollout revision, cilium-config is what it was,
	// and kube-proxy runs on every node again.
	hs := helmHistory(t, c3)
	last := hs[len(hs)-1]
	if want := fmt.Sprintf("Rollback to %d", bad.GetPreRolloutHelmRevision()); last.Info.Description != want || last.Info.Status != "deployed" {
		t.Errorf("c3: helm history %s, want the last revision %q and deployed", describeHistory(hs), want)
	}
	if after := ciliumConfig(t, c3); !maps.Equal(before, after) {
		t.Errorf("c3: cilium-config after the rollback %v, want the pre-rollout %v", after, before)
	}
	waitKubeProxy(t, c3, false, 2)

	// fleetctl shows the measured delta and the reason.
	st := mustFleetctl(t, f, 0, "rollout", "status", "regress")
	row := lineWith(st.Stdout, "c3", "rolled_back")
	if !strings.Contains(row, "regression") || !strings.Contains(row, fmt.Sprintf("%+.1f%%", kpr.GetP50DeltaPercent())) {
		t.Errorf("status row for c3 lacks the state, delta or reason:\n%s", st.Stdout)
	}
}

// Scenario 3: with rollbackWave, the canary wave (c1, c2) fails when c2 regresses: both clusters
// return to their pre-rollout revision and the next wave (c3) never starts.
func TestWholeWaveRollback(t *testing.T) {
	f := startFleet(t, threeClusters())
	before := map[string]map[string]string{}
	for _, c := range f.Clusters {
		before[c.Name] = ciliumConfig(t, c)
	}
	createRollout(t, f, fleet.Rollout{ID: "wave", Policy: "FAILURE_POLICY_ROLLBACK_WAVE", Canary: 2, WaveSize: 1})
	slowed := slowDown(t, f, "wave", f.Cluster("c2"))
	w := watch(t, f, f.Controllers[0].URL, "wave")
	waitWatch(t, w, 10)
	if err := <-slowed; err != nil {
		t.Fatal(err)
	}

	r := waitEnd(t, f, "wave")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK && r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_FAILED {
		t.Fatalf("rollout %s: %s", r.GetState(), r.GetMessage())
	}
	if ws := r.GetWaves()[0].GetState(); ws != ebbflowv1.WaveState_WAVE_STATE_ROLLED_BACK {
		t.Errorf("canary wave %s, want rolled back", ws)
	}
	states := clusterStates(r)
	for _, name := range []string{"c1", "c2"} {
		c := f.Cluster(name)
		if cs := states[name]; cs.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK {
			t.Errorf("%s: %s: %s", name, cs.GetState(), cs.GetReason())
		}
		hs := helmHistory(t, c)
		if last := hs[len(hs)-1]; last.Info.Description != fmt.Sprintf("Rollback to %d", states[name].GetPreRolloutHelmRevision()) || last.Info.Status != "deployed" {
			t.Errorf("%s: helm history %s, want a rollback to the pre-rollout revision last", name, describeHistory(hs))
		}
		if after := ciliumConfig(t, c); !maps.Equal(before[name], after) {
			t.Errorf("%s: cilium-config after the rollback %v, want the pre-rollout %v", name, after, before[name])
		}
		waitKubeProxy(t, c, false, 2)
	}
	// The next wave never started: no assignment for c3, and its release is untouched.
	if cs := states["c3"]; cs.GetAssignmentId() != "" || len(cs.GetResults()) != 0 {
		t.Errorf("c3 took part: %s, assignment %q, %d results", cs.GetState(), cs.GetAssignmentId(), len(cs.GetResults()))
	}
	evs, err := f.History(context.Background(), "wave")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.GetCluster() == "c3" && e.GetKind() == "assign" {
			t.Errorf("c3 was assigned: %s", e.GetMessage())
		}
	}
	if hs := helmHistory(t, f.Cluster("c3")); len(hs) != 1 {
		t.Errorf("c3: helm history %s, want the install alone", describeHistory(hs))
	}
}

// lineWith is the first line of s that contains every one of subs.
func lineWith(s string, subs ...string) string {
next:
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if !strings.Contains(l, sub) {
				continue next
			}
		}
		return l
	}
	return ""
}
