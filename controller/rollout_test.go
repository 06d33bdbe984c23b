package controller_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

func applyBareMetal(t testing.TB, c clients) {
	t.Helper()
	b, err := os.ReadFile("../deploy/profiles/bare-metal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name, spec, err := profile.DecodeYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.profiles.CreateProfile(context.Background(), connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: name, Spec: spec})); err != nil {
		t.Fatal(err)
	}
}

func fleetSpec(policy ebbflowv1.FailurePolicy, maxFailures int32) *ebbflowv1.RolloutSpec {
	gates := &ebbflowv1.WaveGates{MaxFailures: &ebbflowv1.WaveGates_MaxFailuresCount{MaxFailuresCount: maxFailures}, SoakTime: durationpb.New(50 * time.Millisecond)}
	return &ebbflowv1.RolloutSpec{
		Profile: "bare-metal", ClusterSelector: "env=prod", SortLabel: "order", FailurePolicy: policy,
		Waves: &ebbflowv1.RolloutSpec_Automatic{Automatic: &ebbflowv1.AutomaticWaves{
			CanaryCount: 2, Size: &ebbflowv1.AutomaticWaves_WaveSize{WaveSize: 9}, CanaryGates: gates, Gates: gates,
		}},
		PhaseTimeout: durationpb.New(time.Minute),
	}
}

// watchToEnd follows the rollout over the streaming API until it ends.
func watchToEnd(t *testing.T, c clients, id string) *ebbflowv1.Rollout {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last *ebbflowv1.Rollout
	for ctx.Err() == nil {
		stream, err := c.rollouts.WatchRollout(ctx, connect.NewRequest(&ebbflowv1.WatchRolloutRequest{Id: id}))
		if err != nil {
			t.Fatal(err)
		}
		for stream.Receive() {
			last = stream.Msg().GetRollout()
		}
		stream.Close()
		switch last.GetState() {
		case ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED, ebbflowv1.RolloutState_ROLLOUT_STATE_FAILED,
			ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED, ebbflowv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK:
			return last
		}
	}
	t.Fatalf("rollout %s did not end: %v", id, last.GetState())
	return nil
}

func clusterState(r *ebbflowv1.Rollout) map[string]*ebbflowv1.RolloutCluster {
	out := map[string]*ebbflowv1.RolloutCluster{}
	for _, w := range r.GetWaves() {
		for _, c := range w.GetClusters() {
			out[c.GetCluster()] = c
		}
	}
	return out
}

func fastEngine(c *controller.Config) { c.EngineInterval = 20 * time.Millisecond }

// Twenty clusters, three waves; one cluster of wave 2 regresses after kpr and is rolled back by
// itself while the rest complete.
func TestRolloutTwentyClustersOneRegression(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{Config: fastEngine})
	c := newClients(n.URL)
	applyBareMetal(t, c)
	agents := controllertest.StartFleet(t, []string{n.URL}, 20, map[string]ebbflowv1.Phase{"c-05": ebbflowv1.Phase_PHASE_KPR}, nil)
	res, err := c.rollouts.CreateRollout(context.Background(), connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "tune-20", Spec: fleetSpec(0, 1)}))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(res.Msg.GetRollout().GetWaves()); got != 3 {
		t.Fatalf("waves %d", got)
	}
	// The engine's first step is in the creating write: the canaries are assigned already.
	created := res.Msg.GetRollout()
	if created.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_RUNNING {
		t.Fatalf("CreateRollout returned a rollout in %s, want RUNNING", created.GetState())
	}
	for _, rc := range created.GetWaves()[0].GetClusters() {
		if rc.GetAction() != ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY || rc.GetPhase() != ebbflowv1.Phase_PHASE_BASELINE {
			t.Fatalf("canary %s in the created rollout: %s %s, want APPLY BASELINE", rc.GetCluster(), rc.GetAction(), rc.GetPhase())
		}
	}
	// A second rollout over the same clusters is refused, naming the holder.
	_, err = c.rollouts.CreateRollout(context.Background(), connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "tune-20b", Spec: fleetSpec(0, 1)}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "tune-20") {
		t.Fatalf("second rollout: %v", err)
	}
	r := watchToEnd(t, c, "tune-20")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
		t.Fatalf("rollout ended %v: %s", r.GetState(), r.GetMessage())
	}
	for name, cs := range clusterState(r) {
		if name == "c-05" {
			if cs.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK || !strings.Contains(cs.GetReason(), "regressed") {
				t.Errorf("c-05: %v %q", cs.GetState(), cs.GetReason())
			}
			continue
		}
		if cs.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SUCCEEDED {
			t.Errorf("%s: %v %q", name, cs.GetState(), cs.GetReason())
		}
	}
	for name, a := range agents {
		for phase, k := range a.Applied() {
			if k != 1 {
				t.Errorf("%s got %d APPLY assignments for %s", name, k, phase)
			}
		}
	}
	hist, err := c.rollouts.GetRolloutHistory(context.Background(), connect.NewRequest(&ebbflowv1.GetRolloutHistoryRequest{Id: "tune-20"}))
	if err != nil {
		t.Fatal(err)
	}
	var rolledBack bool
	for _, e := range hist.Msg.GetEvents() {
		if e.GetCluster() == "c-05" && strings.Contains(e.GetKind(), "rollback") {
			rolledBack = true
		}
	}
	if !rolledBack {
		t.Errorf("history has no rollback of c-05 among %d events", len(hist.Msg.GetEvents()))
	}
}

// With rollbackWave, the failing wave's clusters all return to their pre-rollout revision and
// the waves after it never start.
func TestRolloutWholeWaveRollback(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{Config: fastEngine})
	c := newClients(n.URL)
	applyBareMetal(t, c)
	controllertest.StartFleet(t, []string{n.URL}, 20, map[string]ebbflowv1.Phase{"c-05": ebbflowv1.Phase_PHASE_KPR}, nil)
	if _, err := c.rollouts.CreateRollout(context.Background(), connect.NewRequest(&ebbflowv1.CreateRolloutRequest{
		Id: "wave-back", Spec: fleetSpec(ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_WAVE, 0),
	})); err != nil {
		t.Fatal(err)
	}
	r := watchToEnd(t, c, "wave-back")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK {
		t.Fatalf("rollout ended %v: %s", r.GetState(), r.GetMessage())
	}
	for _, cs := range r.GetWaves()[1].GetClusters() {
		if cs.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK {
			t.Errorf("wave 1 %s: %v", cs.GetCluster(), cs.GetState())
		}
	}
	for _, cs := range r.GetWaves()[2].GetClusters() {
		if cs.GetAssignmentId() != "" {
			t.Errorf("wave 2 %s was started: %v", cs.GetCluster(), cs.GetState())
		}
	}
}

// Killing the leader between two waves and again in the middle of a wave: each new leader
// continues the rollout from what was committed, and no phase is applied twice (each agent sees
// exactly one APPLY per phase).
func TestRolloutSurvivesLeaderLoss(t *testing.T) {
	nodes := controllertest.StartCluster(t, 3)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.URL)
	}
	ctx := context.Background()
	// Every call goes to the current leader's peers, whichever node that is.
	anyNode := func() clients {
		for _, n := range nodes {
			if !n.Store.IsLeader() {
				if st := n.Store.Status(); st.State != "Shutdown" {
					return newClients(n.URL)
				}
			}
		}
		return newClients(urls[0])
	}
	applyBareMetal(t, anyNode())
	holdCanary, holdWave1 := make(chan struct{}), make(chan struct{})
	reached := make(chan string, 16)
	agents := controllertest.StartFleet(t, urls, 6, nil, func(a *controllertest.Agent) {
		a.HoldAt, a.Hold, a.Reached = ebbflowv1.Phase_PHASE_KPR, holdWave1, reached
		if a.Name == "c-00" || a.Name == "c-01" {
			a.Hold = holdCanary
		}
	})
	spec := fleetSpec(0, 0)
	auto := spec.GetAutomatic()
	auto.Size = &ebbflowv1.AutomaticWaves_WaveSize{WaveSize: 4}
	auto.Gates = &ebbflowv1.WaveGates{RequireApproval: true}
	if _, err := anyNode().rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "failover", Spec: spec})); err != nil {
		t.Fatal(err)
	}
	// Wave 0 (2 canaries) holds at kpr: release them, then the rollout waits for approval of wave 1.
	for range 2 {
		<-reached
	}
	close(holdCanary)
	state := func() ebbflowv1.RolloutState {
		res, err := anyNode().rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: "failover"}))
		if err != nil {
			return ebbflowv1.RolloutState_ROLLOUT_STATE_UNSPECIFIED
		}
		return res.Msg.GetRollout().GetState()
	}
	controllertest.Eventually(t, time.Minute, "approval gate before wave 1", func() bool {
		return state() == ebbflowv1.RolloutState_ROLLOUT_STATE_WAITING_FOR_APPROVAL
	})

	// Between waves: kill the leader, approve through the survivors.
	first := controllertest.Leader(t, nodes)
	first.Stop()
	// An approval answered UNKNOWN (leadership moved again while it committed) may have taken
	// effect: the wave's approved flag, not the answer, says when to stop.
	controllertest.Eventually(t, 30*time.Second, "approval via the new leader", func() bool {
		_, err := anyNode().rollouts.ApproveRollout(ctx, connect.NewRequest(&ebbflowv1.ApproveRolloutRequest{Id: "failover", Wave: 1}))
		if err == nil {
			return true
		}
		res, gerr := anyNode().rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: "failover", OmitMeasurements: true}))
		return gerr == nil && res.Msg.GetRollout().GetWaves()[1].GetApproved()
	})
	restarted := first.Restart(t)
	for i, n := range nodes {
		if n == first {
			nodes[i] = restarted
		}
	}
	// Mid-wave: every wave-1 agent is in its kpr phase; kill the leader, then let them report.
	for range 4 {
		<-reached
	}
	controllertest.Leader(t, nodes).Stop()
	close(holdWave1)
	r := watchToEnd(t, anyNode(), "failover")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
		t.Fatalf("rollout ended %v: %s", r.GetState(), r.GetMessage())
	}
	for name, a := range agents {
		applied := a.Applied()
		phases := map[string]bool{}
		for key := range applied {
			phases[strings.Fields(key)[0]] = true
		}
		if len(phases) != 4 {
			t.Errorf("%s applied phases %v", name, applied)
		}
		for phase, k := range applied {
			if k != 1 {
				t.Errorf("%s got %d APPLY assignments for %s", name, k, phase)
			}
		}
	}
}

// Repeating a control is a no-op, as with kubectl: a second pause (or resume) succeeds, returns
// the rollout as it is and writes nothing (the generation does not move).
func TestRepeatedControlsAreNoOps(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{Config: fastEngine})
	c := newClients(n.URL)
	applyBareMetal(t, c)
	ctx := context.Background()
	// A cluster without an agent (nor an inventory, so no phase to run): its wave is done at
	// once and soaks; an hour's soak keeps the rollout running through the controls (with the
	// usual 50 ms it could succeed between the two resumes).
	if _, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "c1", Labels: map[string]string{"env": "prod"}})); err != nil {
		t.Fatal(err)
	}
	spec := fleetSpec(ebbflowv1.FailurePolicy_FAILURE_POLICY_HALT_ONLY, 0)
	spec.GetAutomatic().GetCanaryGates().SoakTime = durationpb.New(time.Hour)
	if _, err := c.rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "r1", Spec: spec, AllowEmpty: true})); err != nil {
		t.Fatal(err)
	}
	pause := func() *ebbflowv1.Rollout {
		t.Helper()
		res, err := c.rollouts.PauseRollout(ctx, connect.NewRequest(&ebbflowv1.PauseRolloutRequest{Id: "r1", Reason: "look"}))
		if err != nil {
			t.Fatalf("pause: %v", err)
		}
		return res.Msg.GetRollout()
	}
	first, second := pause(), pause()
	if second.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_PAUSED || second.GetGeneration() != first.GetGeneration() {
		t.Fatalf("second pause: %v generation %d, first %d", second.GetState(), second.GetGeneration(), first.GetGeneration())
	}
	for range 2 {
		res, err := c.rollouts.ResumeRollout(ctx, connect.NewRequest(&ebbflowv1.ResumeRolloutRequest{Id: "r1"}))
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		if st := res.Msg.GetRollout().GetState(); st == ebbflowv1.RolloutState_ROLLOUT_STATE_PAUSED {
			t.Fatalf("resume: still %v", st)
		}
	}
}
