package fleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/e2e/fleet"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

var allPhases = []ebbflowv1.Phase{ebbflowv1.Phase_PHASE_BASELINE, ebbflowv1.Phase_PHASE_L7, ebbflowv1.Phase_PHASE_KPR, ebbflowv1.Phase_PHASE_XDP}

// checkAppliedOnce fails the test unless every cluster got exactly one assignment and one
// APPLIED report per phase, and its release has exactly one revision per changing phase.
func checkAppliedOnce(t *testing.T, f *fleet.Fleet, id string) {
	t.Helper()
	evs, err := f.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Clusters {
		for _, p := range allPhases {
			if n := countEvents(evs, "assign", c.Name, p, "apply phase"); n != 1 {
				t.Errorf("%s %s: %d assignments, want 1", c.Name, p, n)
			}
			if n := countEvents(evs, "report", c.Name, p, " APPLIED"); n > 1 {
				t.Errorf("%s %s: %d APPLIED reports, want at most 1", c.Name, p, n)
			}
		}
		hs := helmHistory(t, c)
		if len(hs) != 4 {
			t.Errorf("%s: helm history %s, want the install and one revision each for l7, kpr and xdp", c.Name, describeHistory(hs))
		}
		seen := map[string]bool{}
		for _, h := range hs[1:] {
			if seen[h.Info.Description] {
				t.Errorf("%s: revision %d repeats %q", c.Name, h.Version, h.Info.Description)
			}
			seen[h.Info.Description] = true
		}
	}
}

// Scenario 4: the controller leader is killed while wave 2 is in its kpr phase; the rollout
// goes on under the new leader, and no phase is applied twice.
func TestLeaderLossMidWave(t *testing.T) {
	f := startFleet(t, threeClusters())
	createRollout(t, f, fleet.Rollout{ID: "failover", Canary: 1, WaveSize: 2})
	leader, err := f.Leader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var survivor *fleet.Controller
	for _, c := range f.Controllers {
		if c != leader {
			survivor = c
		}
	}
	w := watch(t, f, survivor.URL, "failover")
	if _, err := f.WaitEvent(context.Background(), "failover", 10*time.Minute, "c2's kpr started", reportOf("c2", ebbflowv1.Phase_PHASE_KPR, "kpr STARTED")); err != nil {
		t.Fatal(err)
	}
	if now, err := f.Leader(context.Background()); err != nil || now != leader {
		t.Fatalf("the leader changed before the kill: %v, %v", now, err)
	}
	t.Logf("killing the leader %s in the middle of wave 2", leader.ID)
	leader.Proc.Kill()
	next, err := f.Leader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if next == leader {
		t.Fatal("the killed node is still the leader")
	}
	t.Logf("new leader %s", next.ID)
	waitWatch(t, w, 0)

	r := waitEnd(t, f, "failover")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
		t.Fatalf("rollout %s: %s", r.GetState(), r.GetMessage())
	}
	for _, c := range f.Clusters {
		checkTuned(t, c)
	}
	checkAppliedOnce(t, f, "failover")
}

// Scenario 5: the canary's agent is killed in the middle of its kpr phase, after the Helm
// upgrade; the restarted agent resumes the step and the cluster converges.
func TestAgentCrashMidKPR(t *testing.T) {
	f := startFleet(t, threeClusters())
	c1 := f.Cluster("c1")
	createRollout(t, f, fleet.Rollout{ID: "crash", Canary: 1, WaveSize: 2})
	w := watch(t, f, f.Controllers[0].URL, "crash")
	if _, err := f.WaitEvent(context.Background(), "crash", 10*time.Minute, "c1's kpr started", reportOf("c1", ebbflowv1.Phase_PHASE_KPR, "kpr STARTED")); err != nil {
		t.Fatal(err)
	}
	// Kill it once the kpr revision exists, before the phase is measured.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		hs := helmHistory(t, c1)
		if strings.Contains(hs[len(hs)-1].Info.Description, "kpr phase") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c1: no kpr revision: %s", describeHistory(hs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	c1.KillAgent()
	evs, err := f.History(context.Background(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	if countEvents(evs, "report", "c1", ebbflowv1.Phase_PHASE_KPR, "kpr MEASURED") != 0 {
		t.Fatal("c1's kpr was measured before the kill; the crash did not land mid-phase")
	}
	t.Log("killed c1's agent in the middle of kpr; restarting it")
	if err := c1.StartAgent(); err != nil {
		t.Fatal(err)
	}
	waitWatch(t, w, 0)

	r := waitEnd(t, f, "crash")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
		t.Fatalf("rollout %s: %s", r.GetState(), r.GetMessage())
	}
	for _, c := range f.Clusters {
		checkTuned(t, c)
	}
	checkAppliedOnce(t, f, "crash")
}
