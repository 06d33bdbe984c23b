package rollout

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

const (
	stStarted   = ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED
	stApplied   = ebbflowv1.PhaseStatus_PHASE_STATUS_APPLIED
	stVerified  = ebbflowv1.PhaseStatus_PHASE_STATUS_VERIFIED
	stMeasured  = ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED
	stFailed    = ebbflowv1.PhaseStatus_PHASE_STATUS_FAILED
	stRolled    = ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK
	stPreflight = ebbflowv1.PhaseStatus_PHASE_STATUS_PREFLIGHT_FAILED
)

// latency draws n latency samples around scale milliseconds (normal, 10% spread).
func latency(seed uint64, n int, scale float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 42))
	out := make([]float64, n)
	for i := range out {
		out[i] = max(scale*(1+0.1*rng.NormFloat64()), 0.01)
	}
	return out
}

func httpMeasurement(samples []float64) []*ebbflowv1.Measurement {
	return []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://echo", SamplesMs: samples}}
}

// fleetCluster is a registered cluster whose inventory passes every phase.
func fleetCluster(name string) *ebbflowv1.Cluster {
	return withInventory(cluster(name, "env", "prod"), true, nodes(2, "6.8.0-45-generic", "ena")...)
}

// h drives one rollout with a fixed clock and a scripted agent.
type h struct {
	t      *testing.T
	r      *ebbflowv1.Rollout
	now    time.Time
	world  map[string]*ebbflowv1.Cluster
	events []*ebbflowv1.RolloutEvent
	seed   uint64
}

// wave builds an explicit wave listing clusters.
func wave(g *ebbflowv1.WaveGates, clusters ...string) *ebbflowv1.WaveSpec {
	return &ebbflowv1.WaveSpec{Clusters: clusters, Gates: g}
}

// start creates a rollout of phases baseline and kpr over the waves (clusters c1.. registered).
func start(t *testing.T, edit func(s *ebbflowv1.RolloutSpec), waves ...*ebbflowv1.WaveSpec) *h {
	t.Helper()
	return startWith(t, eksProfile(t), fleetCluster, edit, waves...)
}

// startWith is start with a profile and the registered cluster of each name.
func startWith(t *testing.T, prof *ebbflowv1.Profile, register func(name string) *ebbflowv1.Cluster, edit func(s *ebbflowv1.RolloutSpec), waves ...*ebbflowv1.WaveSpec) *h {
	t.Helper()
	spec := explicitSpec(waves...)
	spec.Profile = prof.GetName()
	spec.Phases = []ebbflowv1.Phase{baseline, kpr}
	if edit != nil {
		edit(spec)
	}
	x := &h{t: t, now: t0, world: map[string]*ebbflowv1.Cluster{}}
	var fleet []*ebbflowv1.Cluster
	for _, w := range waves {
		for _, c := range w.GetClusters() {
			fc := register(c)
			fleet = append(fleet, fc)
			x.world[c] = fc
		}
	}
	r, ev, err := New("r1", mustSpec(t, spec), prof, fleet, "alice", t0)
	if err != nil {
		t.Fatal(err)
	}
	x.r, x.events = r, ev
	return x
}

func (x *h) advance(d time.Duration) { x.now = x.now.Add(d) }

// step runs Step and checks that it did not touch its input.
func (x *h) step() bool {
	x.t.Helper()
	before := proto.Clone(x.r)
	next, ev, changed := Step(x.r, World{Now: x.now, Clusters: x.world})
	if !proto.Equal(before, x.r) {
		x.t.Fatal("Step mutated its input")
	}
	if !changed && (next != x.r || len(ev) > 0) {
		x.t.Fatal("unchanged Step returned a new rollout or events")
	}
	x.r = next
	x.events = append(x.events, ev...)
	return changed
}

func (x *h) c(name string) *ebbflowv1.RolloutCluster {
	x.t.Helper()
	_, c := findCluster(x.r, name)
	if c == nil {
		x.t.Fatalf("no cluster %s", name)
	}
	return c
}

func (x *h) ref(name string) *ebbflowv1.ReportRef {
	c := x.c(name)
	return &ebbflowv1.ReportRef{Cluster: name, AssignmentId: c.GetAssignmentId(), ProfileRevision: x.r.GetProfileRevision(), Phase: c.GetPhase()}
}

func (x *h) ingest(rep Report) (bool, string) {
	x.t.Helper()
	if rep.ReportTime.IsZero() {
		rep.ReportTime = x.now.Add(-30 * time.Second) // the agent's clock runs behind
	}
	before := proto.Clone(x.r)
	next, ev, ok, why := Ingest(x.r, rep, x.now)
	if !proto.Equal(before, x.r) {
		x.t.Fatal("Ingest mutated its input")
	}
	if !ok && next != x.r {
		x.t.Fatal("refused report changed the rollout")
	}
	x.r = next
	x.events = append(x.events, ev...)
	return ok, why
}

func (x *h) report(name string, st ebbflowv1.PhaseStatus, ms ...*ebbflowv1.Measurement) {
	x.t.Helper()
	if ok, why := x.ingest(Report{Ref: x.ref(name), Status: st, HelmBefore: 7, HelmAfter: 8, Measurements: ms}); !ok {
		x.t.Fatalf("%s %s refused: %s", name, st, why)
	}
}

// phase runs the cluster's current phase to MEASURED with samples around scale ms.
func (x *h) phase(name string, n int, scale float64) {
	x.t.Helper()
	x.seed++
	x.report(name, stStarted)
	x.report(name, stApplied)
	x.report(name, stVerified)
	x.report(name, stMeasured, httpMeasurement(latency(x.seed, n, scale))...)
}

func (x *h) wantCluster(name string, st ebbflowv1.ClusterRolloutState, act ebbflowv1.AssignmentAction) {
	x.t.Helper()
	c := x.c(name)
	if c.GetState() != st || c.GetAction() != act {
		x.t.Fatalf("%s: %s %s (%s); want %s %s", name, c.GetState(), c.GetAction(), c.GetReason(), st, act)
	}
}

func (x *h) wantRollout(st ebbflowv1.RolloutState, waves ...ebbflowv1.WaveState) {
	x.t.Helper()
	if x.r.GetState() != st {
		x.t.Fatalf("rollout %s (%s); want %s", x.r.GetState(), x.r.GetMessage(), st)
	}
	for i, w := range waves {
		if got := x.r.GetWaves()[i].GetState(); got != w {
			x.t.Fatalf("wave %d %s; want %s", i, got, w)
		}
	}
}

func (x *h) hasEvent(kind, cluster, msgHas string) bool {
	for _, e := range x.events {
		if e.GetKind() == kind && (cluster == "" || e.GetCluster() == cluster) && strings.Contains(e.GetMessage(), msgHas) {
			return true
		}
	}
	return false
}

func (x *h) wantEvent(kind, cluster, msgHas string) {
	x.t.Helper()
	if !x.hasEvent(kind, cluster, msgHas) {
		var all []string
		for _, e := range x.events {
			all = append(all, e.GetKind()+"/"+e.GetCluster()+": "+e.GetMessage())
		}
		x.t.Fatalf("no %s event for %q containing %q in\n%s", kind, cluster, msgHas, strings.Join(all, "\n"))
	}
}

// pass runs a cluster through baseline and kpr, both passing.
func (x *h) pass(name string) {
	x.t.Helper()
	x.phase(name, 200, 1.0)
	x.phase(name, 200, 1.0)
}

func wgates(f func(g *ebbflowv1.WaveGates)) *ebbflowv1.WaveGates {
	g := &ebbflowv1.WaveGates{}
	if f != nil {
		f(g)
	}
	return g
}

func maxFail(n int32) *ebbflowv1.WaveGates {
	return wgates(func(g *ebbflowv1.WaveGates) {
		g.MaxFailures = &ebbflowv1.WaveGates_MaxFailuresCount{MaxFailuresCount: n}
	})
}

func policy(p ebbflowv1.FailurePolicy) func(*ebbflowv1.RolloutSpec) {
	return func(s *ebbflowv1.RolloutSpec) { s.FailurePolicy = p }
}

var (
	cPendingS     = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_PENDING
	cApplyingS    = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_APPLYING
	cMeasuringS   = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_MEASURING
	cWaitingS     = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_WAITING_FOR_APPROVAL
	cSucceededS   = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SUCCEEDED
	cFailedS      = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_FAILED
	cRollingBackS = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLING_BACK
	cRolledBackS  = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK
	cSkippedS     = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SKIPPED
	cUnknownS     = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_UNKNOWN
)

func TestNew(t *testing.T) {
	prof := eksProfile(t)
	fleet := []*ebbflowv1.Cluster{
		fleetCluster("a"),
		withInventory(cluster("old", "env", "prod"), true, nodes(2, "5.15.0-1051-aws", "ena")...),
		cluster("silent", "env", "prod"),
		cordoned(fleetCluster("cord"), "maintenance"),
	}
	spec := automaticSpec(1, waveSize(10))
	spec.Profile = prof.GetName()
	r, ev, err := New("r1", mustSpec(t, spec), prof, fleet, "alice", t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.GetState() != rPending || r.GetProfileRevision() != 3 || r.GetCreatedBy() != "alice" || !r.GetCreateTime().AsTime().Equal(t0) {
		t.Fatalf("rollout %v", r)
	}
	if len(ev) != 1 || ev[0].GetKind() != "create" || ev[0].GetActor() != "alice" {
		t.Fatalf("events %v", ev)
	}
	if len(r.GetSkipped()) != 1 || r.GetSkipped()[0].GetCluster() != "cord" {
		t.Fatalf("skipped %v", r.GetSkipped())
	}
	_, old := findCluster(r, "old")
	if !slices.Equal(old.GetPhases(), []ebbflowv1.Phase{baseline, l7}) || !slices.Equal(old.GetHeldPhases(), []ebbflowv1.Phase{kpr, xdp}) ||
		!strings.Contains(old.GetHeldReason(), "5.18") || old.GetState() != cPendingS {
		t.Fatalf("old %v", old)
	}
	_, silent := findCluster(r, "silent")
	if silent.GetState() != cSkippedS || !strings.Contains(silent.GetReason(), "preflight held every phase") {
		t.Fatalf("silent %v", silent)
	}
	if got := HeldClusters(r); !slices.Equal(got, []string{"a", "old"}) {
		t.Fatalf("held %v", got)
	}
	for _, s := range []ebbflowv1.RolloutState{rSucceed, rFailed, rAborted, rRolled} {
		if !Terminal(s) {
			t.Errorf("%s not terminal", s)
		}
	}
	for _, s := range []ebbflowv1.RolloutState{rPending, rRunning, rPaused, rWaiting, rRollback} {
		if Terminal(s) {
			t.Errorf("%s terminal", s)
		}
	}
	if _, _, err := New("r1", mustSpec(t, spec), &ebbflowv1.Profile{Name: "other", Revision: 1, Spec: prof.GetSpec()}, fleet, "alice", t0); err == nil {
		t.Fatal("New accepted another profile")
	}
}

func TestEngine(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"happy path through two waves with soak on the agent clock", func(t *testing.T) {
			x := start(t, nil,
				wave(wgates(func(g *ebbflowv1.WaveGates) { g.SoakTime = dur(5 * time.Minute) }), "c1"),
				wave(nil, "c2", "c3"))
			if !x.step() {
				t.Fatal("first step changed nothing")
			}
			x.wantRollout(rRunning, wProgressing, wPending)
			x.wantCluster("c1", cApplyingS, aApply)
			c1 := x.c("c1")
			if c1.GetAssignmentId() != "r1.c1.1" || c1.GetPhase() != baseline || !c1.GetPhaseStartTime().AsTime().Equal(t0) {
				t.Fatalf("c1 %v", c1)
			}
			x.wantCluster("c2", cPendingS, aIdle)
			x.advance(time.Minute)
			x.report("c1", stStarted)
			x.report("c1", stVerified)
			x.wantCluster("c1", cMeasuringS, aApply)
			x.report("c1", stMeasured, httpMeasurement(latency(1, 200, 1.0))...)
			x.wantCluster("c1", cApplyingS, aApply)
			if c := x.c("c1"); c.GetAssignmentId() != "r1.c1.2" || c.GetPhase() != kpr || c.GetPreRolloutHelmRevision() != 7 {
				t.Fatalf("c1 after baseline %v", c)
			}
			x.advance(time.Minute)
			x.phase("c1", 200, 1.0)
			x.wantCluster("c1", cSucceededS, aIdle)
			agentTime := x.now.Add(-30 * time.Second)
			if res := x.c("c1").GetResults(); len(res) != 2 || res[1].GetVerdict() != ebbflowv1.Verdict_VERDICT_PASS || !res[1].GetVerified() ||
				res[1].GetLatency().GetCount() != 200 || res[1].GetHelmRevisionAfter() != 8 {
				t.Fatalf("results %v", res)
			}
			x.step()
			x.wantRollout(rRunning, wSoaking, wPending)
			if got := x.r.GetWaves()[0].GetSoakStartTime().AsTime(); !got.Equal(agentTime) {
				t.Fatalf("soak starts %v; want the agent's %v", got, agentTime)
			}
			x.now = agentTime.Add(5*time.Minute - time.Second)
			if x.step() {
				t.Fatal("soak ended early")
			}
			x.now = agentTime.Add(5 * time.Minute)
			x.step()
			x.wantRollout(rRunning, wSucceeded, wProgressing)
			x.wantCluster("c2", cApplyingS, aApply)
			x.wantCluster("c3", cApplyingS, aApply)
			x.pass("c2")
			x.pass("c3")
			x.step()
			x.wantRollout(rSucceed, wSucceeded, wSucceeded)
			if x.r.GetEndTime() == nil || x.r.GetMessage() != "all 2 waves succeeded" {
				t.Fatalf("end %v %q", x.r.GetEndTime(), x.r.GetMessage())
			}
			x.wantEvent("succeeded", "", "all 2 waves succeeded")
			if x.step() {
				t.Fatal("Step changed a terminal rollout")
			}
			if HeldClusters(x.r) != nil {
				t.Fatal("terminal rollout holds clusters")
			}
		}},
		{"stale, foreign and misplaced reports are refused", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1", "c2"))
			x.step()
			x.phase("c1", 200, 1.0) // c1 now on kpr, assignment 2
			old := &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "r1.c1.1", ProfileRevision: 3, Phase: baseline}
			for _, tc := range []struct {
				name string
				ref  *ebbflowv1.ReportRef
				want string
			}{
				{"old assignment", old, "current assignment"},
				{"other profile revision", &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "r1.c1.2", ProfileRevision: 2, Phase: kpr}, "profile revision 2"},
				{"other phase", &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "r1.c1.2", ProfileRevision: 3, Phase: xdp}, "phase xdp"},
				{"cluster not in rollout", &ebbflowv1.ReportRef{Cluster: "zz", AssignmentId: "r1.zz.1", ProfileRevision: 3, Phase: kpr}, "not in rollout"},
				{"no ref", nil, "no assignment"},
			} {
				ok, why := x.ingest(Report{Ref: tc.ref, Status: stMeasured, Measurements: httpMeasurement(latency(9, 200, 2))})
				if ok || !strings.Contains(why, tc.want) {
					t.Errorf("%s: accepted %v, reason %q; want refused with %q", tc.name, ok, why, tc.want)
				}
			}
			x.wantCluster("c1", cApplyingS, aApply)
			// A cluster not applying (c2 succeeded) refuses reports on its last assignment.
			x.pass("c2")
			ok, why := x.ingest(Report{Ref: &ebbflowv1.ReportRef{Cluster: "c2", AssignmentId: "r1.c2.2", ProfileRevision: 3, Phase: kpr}, Status: stMeasured})
			if ok || !strings.Contains(why, "SUCCEEDED") {
				t.Fatalf("report to succeeded cluster: %v %q", ok, why)
			}
		}},
		{"silence past the phase timeout is UNKNOWN and fails the wave", func(t *testing.T) {
			x := start(t, func(s *ebbflowv1.RolloutSpec) { s.PhaseTimeout = dur(5 * time.Minute) }, wave(nil, "c1", "c2"), wave(nil, "c3"))
			x.step()
			x.pass("c1")
			x.report("c2", stStarted)
			x.advance(5 * time.Minute)
			if x.step() {
				t.Fatal("UNKNOWN at exactly the timeout")
			}
			x.advance(time.Second)
			x.step()
			x.wantCluster("c2", cUnknownS, aIdle)
			if !strings.Contains(x.c("c2").GetReason(), "no report for") {
				t.Fatalf("reason %q", x.c("c2").GetReason())
			}
			if res := x.c("c2").GetResults()[0]; res.GetVerdict() != ebbflowv1.Verdict_VERDICT_UNSPECIFIED {
				t.Fatalf("silent cluster got verdict %s", res.GetVerdict())
			}
			x.wantRollout(rFailed, wFailed, wPending)
			x.wantEvent("timeout", "c2", "no report for")
			x.wantEvent("wave-failed", "", "c2 UNKNOWN")
			x.wantCluster("c3", cPendingS, aIdle)
			if !strings.Contains(x.r.GetMessage(), "later waves not started") {
				t.Fatalf("message %q", x.r.GetMessage())
			}
		}},
		{"silence tolerated by max failures never counts as a pass", func(t *testing.T) {
			x := start(t, nil, wave(maxFail(1), "c1", "c2"))
			x.step()
			x.pass("c1")
			x.advance(11 * time.Minute)
			x.step()
			x.wantCluster("c2", cUnknownS, aIdle)
			x.wantRollout(rSucceed, wSucceeded)
			if !strings.Contains(x.r.GetMessage(), "1 failures tolerated (c2 UNKNOWN)") {
				t.Fatalf("message %q", x.r.GetMessage())
			}
		}},
		{"deleted and cordoned clusters are skipped and the rollout goes on", func(t *testing.T) {
			x := start(t, nil, wave(wgates(func(g *ebbflowv1.WaveGates) { g.MaxConcurrency = 2 }), "c1", "c2", "c3"), wave(nil, "c4"))
			x.step()
			x.report("c2", stStarted)
			delete(x.world, "c2")
			x.world["c3"] = cordoned(fleetCluster("c3"), "disk pressure")
			x.step()
			x.wantCluster("c2", cSkippedS, aIdle)
			x.wantCluster("c3", cSkippedS, aIdle)
			if x.c("c2").GetReason() != "deleted from the registry" || x.c("c3").GetReason() != "cordoned: disk pressure" {
				t.Fatalf("reasons %q %q", x.c("c2").GetReason(), x.c("c3").GetReason())
			}
			x.wantEvent("skip", "c2", "deleted")
			if ok, _ := x.ingest(Report{Ref: x.ref("c2"), Status: stApplied}); ok {
				t.Fatal("skipped cluster's report accepted")
			}
			x.pass("c1")
			x.step()
			x.wantRollout(rRunning, wSucceeded, wProgressing)
			// A completed cluster deleted later stays completed.
			delete(x.world, "c1")
			x.pass("c4")
			x.step()
			x.wantCluster("c1", cSucceededS, aIdle)
			x.wantRollout(rSucceed, wSucceeded, wSucceeded)
		}},
		{"max failures reached halts later waves without rollback under haltOnly", func(t *testing.T) {
			x := start(t, policy(ebbflowv1.FailurePolicy_FAILURE_POLICY_HALT_ONLY), wave(nil, "c1", "c2"), wave(nil, "c3"))
			x.step()
			x.phase("c1", 200, 1.0)
			x.phase("c1", 200, 1.3)
			x.wantCluster("c1", cFailedS, aIdle)
			x.wantEvent("verdict", "c1", "REGRESSION")
			x.step()
			x.wantRollout(rFailed, wFailed, wPending)
			// c2 was in flight: it stops (action IDLE) and its reports are refused.
			x.wantCluster("c2", cApplyingS, aIdle)
			x.wantCluster("c3", cPendingS, aIdle)
			if x.c("c3").GetAssignmentId() != "" {
				t.Fatal("later wave got an assignment")
			}
		}},
		{"regression rolls the cluster back, tolerated by max failures", func(t *testing.T) {
			x := start(t, nil, wave(maxFail(1), "c1", "c2"))
			x.step()
			x.phase("c1", 200, 1.0)
			x.phase("c1", 200, 1.3)
			x.wantCluster("c1", cRollingBackS, aRollback)
			c1 := x.c("c1")
			if c1.GetAssignmentId() != "r1.c1.3" || c1.GetPreRolloutHelmRevision() != 7 || !strings.HasPrefix(c1.GetReason(), "regression in kpr: ") {
				t.Fatalf("c1 %v", c1)
			}
			if res := c1.GetResults()[1]; res.GetVerdict() != ebbflowv1.Verdict_VERDICT_REGRESSION || res.GetP50DeltaPercent() < 20 || res.GetPValue() >= 0.05 {
				t.Fatalf("result %v", res)
			}
			x.wantEvent("verdict", "c1", "kpr: p50 +")
			x.wantEvent("rollback", "c1", "roll back to helm revision 7")
			x.pass("c2")
			x.step()
			x.wantRollout(rRunning, wProgressing) // waits for the rollback
			ok, why := x.ingest(Report{Ref: x.ref("c1"), Status: stRolled})
			if !ok {
				t.Fatal(why)
			}
			x.wantCluster("c1", cRolledBackS, aIdle)
			x.wantEvent("rolled-back", "c1", "helm revision 7")
			x.step()
			x.wantRollout(rSucceed, wSucceeded)
			if !strings.Contains(x.r.GetMessage(), "c1 ROLLED_BACK") {
				t.Fatalf("message %q", x.r.GetMessage())
			}
		}},
		{"regression over max failures: rollout rolls back the cluster then fails", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1"), wave(nil, "c2"))
			x.step()
			x.phase("c1", 200, 1.0)
			x.phase("c1", 200, 1.3)
			x.step()
			x.wantRollout(rRollback, wFailed, wPending)
			x.report("c1", stRolled)
			x.step()
			x.wantRollout(rFailed, wFailed, wPending)
			x.wantCluster("c1", cRolledBackS, aIdle)
		}},
		{"a failure at baseline changed nothing and is not rolled back", func(t *testing.T) {
			x := start(t, nil, wave(maxFail(1), "c1", "c2"))
			x.step()
			if ok, why := x.ingest(Report{Ref: x.ref("c1"), Status: stFailed, Message: "probe target unreachable"}); !ok {
				t.Fatal(why)
			}
			x.wantCluster("c1", cFailedS, aIdle)
			if x.c("c1").GetReason() != "phase baseline failed: probe target unreachable" {
				t.Fatalf("reason %q", x.c("c1").GetReason())
			}
			// A failure reported by the agent in kpr is rolled back.
			x.phase("c2", 200, 1.0)
			x.report("c2", stFailed)
			x.wantCluster("c2", cRollingBackS, aRollback)
		}},
		{"rollbackWave rolls every changed cluster of the wave back", func(t *testing.T) {
			x := start(t, policy(ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_WAVE), wave(nil, "c1", "c2", "c3", "c4"), wave(nil, "c5"))
			x.step()
			x.pass("c1")              // succeeded
			x.phase("c2", 200, 1.0)   // in flight on kpr
			x.report("c2", stStarted) //
			x.phase("c4", 200, 1.0)   //
			x.phase("c4", 200, 1.3)   // regression
			x.report("c3", stStarted) // still at baseline: nothing changed
			x.wantCluster("c4", cRollingBackS, aRollback)
			x.step()
			x.wantRollout(rRollback, wFailed, wPending)
			x.wantCluster("c1", cRollingBackS, aRollback)
			x.wantCluster("c2", cRollingBackS, aRollback)
			x.wantCluster("c3", cApplyingS, aIdle)
			x.wantCluster("c5", cPendingS, aIdle)
			for _, c := range []string{"c1", "c2", "c4"} {
				x.report(c, stRolled)
				if c != "c4" {
					x.step()
					x.wantRollout(rRollback, wFailed, wPending)
				}
			}
			x.step()
			x.wantRollout(rRolled, wRolledBack, wPending)
			if !strings.Contains(x.r.GetMessage(), "wave wave-1 failed") {
				t.Fatalf("message %q", x.r.GetMessage())
			}
		}},
		{"inconclusive waits for approval and proceeds after approve", func(t *testing.T) {
			x := start(t, func(s *ebbflowv1.RolloutSpec) {
				s.Budgets = []*ebbflowv1.RegressionBudget{{Phase: kpr, Alpha: 0.05, MinSamples: 30,
					OnInconclusive: ebbflowv1.InconclusivePolicy_INCONCLUSIVE_POLICY_WAIT_FOR_APPROVAL}}
			}, wave(nil, "c1"))
			x.step()
			x.phase("c1", 200, 1.0)
			x.phase("c1", 5, 1.0) // too few samples: measured again, up to the default 3 windows
			for w := 2; w <= 3; w++ {
				x.wantCluster("c1", cMeasuringS, aApply)
				a := AssignmentFor(x.r, x.c("c1"))
				if a.GetMeasureWindow() != int32(w) || a.GetMaxWindows() != 3 || a.GetPhase() != kpr || x.c("c1").GetReason() != fmt.Sprintf("measuring window %d/3", w) {
					t.Fatalf("window %d: assignment %v, reason %q", w, a, x.c("c1").GetReason())
				}
				x.phase("c1", 5, 1.0) // 15 samples after 3 windows, still under min_samples 30
			}
			x.wantCluster("c1", cWaitingS, aApply)
			x.wantEvent("verdict", "c1", "undecided after window 3/3, the last")
			x.wantEvent("verdict", "c1", "INCONCLUSIVE")
			x.advance(time.Hour) // waiting on a person is not silence
			if x.step() {
				t.Fatal("Step changed a cluster waiting for approval")
			}
			if _, _, err := Approve(x.r, -1, "c2", "bob", x.now); !errors.Is(err, ErrInvalidAction) {
				t.Fatalf("approve unknown cluster: %v", err)
			}
			r, ev, err := Approve(x.r, -1, "c1", "bob", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r, x.events = r, append(x.events, ev...)
			x.wantEvent("approve", "c1", "bob")
			x.wantCluster("c1", cSucceededS, aIdle)
			x.step()
			x.wantRollout(rSucceed, wSucceeded)
		}},
		{"inconclusive fails without a wait policy", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1"))
			x.step()
			x.phase("c1", 200, 1.0)
			for range 3 {
				x.phase("c1", 5, 1.0)
			}
			x.wantCluster("c1", cRollingBackS, aRollback)
			if !strings.HasPrefix(x.c("c1").GetReason(), "inconclusive in kpr") {
				t.Fatalf("reason %q", x.c("c1").GetReason())
			}
		}},
		{"approval gate before a wave", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1"), wave(wgates(func(g *ebbflowv1.WaveGates) { g.RequireApproval = true }), "c2"))
			x.step()
			if _, _, err := Approve(x.r, 0, "", "bob", x.now); !errors.Is(err, ErrInvalidAction) {
				t.Fatalf("approve wave without gate: %v", err)
			}
			if _, _, err := Approve(x.r, 1, "c1", "bob", x.now); !errors.Is(err, ErrInvalidAction) {
				t.Fatalf("approve wave and cluster: %v", err)
			}
			x.pass("c1")
			x.step()
			x.wantRollout(rWaiting, wSucceeded, wWaiting)
			x.wantCluster("c2", cPendingS, aIdle)
			x.advance(time.Hour)
			if x.step() {
				t.Fatal("Step changed a rollout waiting for approval")
			}
			r, _, err := Approve(x.r, 1, "", "bob", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r = r
			if w := x.r.GetWaves()[1]; !w.GetApproved() || w.GetApprovedBy() != "bob" {
				t.Fatalf("wave %v", w)
			}
			x.step()
			x.wantRollout(rRunning, wSucceeded, wProgressing)
			x.wantCluster("c2", cApplyingS, aApply)
		}},
		{"max concurrency is respected", func(t *testing.T) {
			x := start(t, nil, wave(wgates(func(g *ebbflowv1.WaveGates) { g.MaxConcurrency = 2 }), "c1", "c2", "c3", "c4"))
			busy := func() int {
				n := 0
				for _, c := range x.r.GetWaves()[0].GetClusters() {
					if c.GetAction() != aIdle {
						n++
					}
				}
				return n
			}
			x.step()
			if busy() != 2 {
				t.Fatalf("busy %d", busy())
			}
			x.wantCluster("c3", cPendingS, aIdle)
			x.phase("c1", 200, 1.0) // moves on to kpr: still one slot
			x.step()
			if busy() != 2 {
				t.Fatalf("busy %d after a phase", busy())
			}
			x.phase("c1", 200, 1.0)
			x.step()
			x.wantCluster("c3", cApplyingS, aApply)
			x.wantCluster("c4", cPendingS, aIdle)
			for _, c := range []string{"c2", "c3"} {
				x.pass(c)
				x.step()
				if busy() > 2 {
					t.Fatalf("busy %d", busy())
				}
			}
			x.pass("c4")
			x.step()
			x.wantRollout(rSucceed, wSucceeded)
		}},
		{"pause stops new assignments and resume continues", func(t *testing.T) {
			x := start(t, nil, wave(wgates(func(g *ebbflowv1.WaveGates) { g.MaxConcurrency = 1 }), "c1", "c2"))
			x.step()
			r, ev, err := Pause(x.r, "bob", "investigating", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r, x.events = r, append(x.events, ev...)
			x.wantEvent("pause", "", "paused by bob: investigating")
			x.phase("c1", 200, 1.0) // in flight: reports still accepted
			x.wantCluster("c1", cPendingS, aIdle)
			x.step()
			x.wantRollout(rPaused)
			x.wantCluster("c1", cPendingS, aIdle)
			x.wantCluster("c2", cPendingS, aIdle)
			if again, events, err := Pause(x.r, "bob", "", x.now); err != nil || again != x.r || len(events) != 0 {
				t.Fatalf("double pause: %v (a no-op returns the same rollout and no events)", err)
			}
			if r, _, err = Resume(x.r, "bob", x.now); err != nil {
				t.Fatal(err)
			}
			x.r = r
			x.step()
			x.wantRollout(rRunning, wProgressing)
			x.wantCluster("c1", cApplyingS, aApply)
			x.wantCluster("c2", cPendingS, aIdle)
			if x.c("c1").GetPhase() != kpr {
				t.Fatalf("c1 phase %s", x.c("c1").GetPhase())
			}
		}},
		{"silence still counts while paused", func(t *testing.T) {
			x := start(t, nil, wave(maxFail(1), "c1", "c2"))
			x.step()
			r, _, _ := Pause(x.r, "bob", "", x.now)
			x.r = r
			x.advance(11 * time.Minute)
			x.step()
			x.wantCluster("c1", cUnknownS, aIdle)
			x.wantRollout(rPaused)
		}},
		{"abort is terminal", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1", "c2"))
			x.step()
			x.phase("c1", 200, 1.0)
			ref := x.ref("c1")
			r, ev, err := Abort(x.r, "wrong profile", "bob", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r, x.events = r, append(x.events, ev...)
			x.wantRollout(rAborted)
			x.wantEvent("abort", "", "aborted by bob: wrong profile")
			x.wantCluster("c1", cApplyingS, aIdle)
			x.advance(time.Hour)
			if x.step() {
				t.Fatal("Step changed an aborted rollout")
			}
			if ok, _ := x.ingest(Report{Ref: ref, Status: stApplied}); ok {
				t.Fatal("report accepted after abort")
			}
			for name, f := range map[string]func() error{
				"pause":    func() error { _, _, err := Pause(x.r, "bob", "", x.now); return err },
				"resume":   func() error { _, _, err := Resume(x.r, "bob", x.now); return err },
				"abort":    func() error { _, _, err := Abort(x.r, "", "bob", x.now); return err },
				"skip":     func() error { _, _, err := Skip(x.r, "c2", "", "bob", x.now); return err },
				"rollback": func() error { _, _, err := Rollback(x.r, RollbackTarget{All: true}, "", "bob", x.now); return err },
			} {
				if err := f(); !errors.Is(err, ErrInvalidAction) {
					t.Errorf("%s after abort: %v", name, err)
				}
			}
		}},
		{"manual skip, cluster rollback and rollback all", func(t *testing.T) {
			x := start(t, nil, wave(maxFail(1), "c1", "c2", "c3"), wave(nil, "c4"))
			x.step()
			r, _, err := Skip(x.r, "c3", "flaky", "bob", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r = r
			x.wantCluster("c3", cSkippedS, aIdle)
			if _, _, err := Rollback(x.r, RollbackTarget{Cluster: "c1"}, "", "bob", x.now); !errors.Is(err, ErrInvalidAction) {
				t.Fatalf("rollback of an unchanged cluster: %v", err)
			}
			if _, _, err := Rollback(x.r, RollbackTarget{Cluster: "c1", All: true}, "", "bob", x.now); !errors.Is(err, ErrInvalidAction) {
				t.Fatalf("two targets: %v", err)
			}
			x.pass("c1")
			r, _, err = Rollback(x.r, RollbackTarget{Cluster: "c1"}, "customer ticket", "bob", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r = r
			x.wantCluster("c1", cRollingBackS, aRollback)
			x.report("c1", stRolled)
			x.pass("c2")
			x.step() // one failure (c1) tolerated
			x.wantRollout(rRunning, wSucceeded, wProgressing)
			x.phase("c4", 200, 1.0)
			x.report("c4", stStarted)
			r, ev, err := Rollback(x.r, RollbackTarget{All: true}, "abandon", "carol", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r, x.events = r, append(x.events, ev...)
			x.wantRollout(rRollback, wRolledBack, wRolledBack)
			x.wantCluster("c1", cRolledBackS, aIdle)
			x.wantCluster("c2", cRollingBackS, aRollback)
			x.wantCluster("c4", cRollingBackS, aRollback)
			x.report("c2", stRolled)
			x.report("c4", stRolled)
			x.step()
			x.wantRollout(rRolled, wRolledBack, wRolledBack)
			if x.r.GetMessage() != "rolled back all waves: rollback by carol: abandon" {
				t.Fatalf("message %q", x.r.GetMessage())
			}
		}},
		{"agent preflight failure holds the phase and later ones", func(t *testing.T) {
			x := start(t, func(s *ebbflowv1.RolloutSpec) { s.Phases = []ebbflowv1.Phase{baseline, kpr, xdp} }, wave(nil, "c1"))
			x.step()
			x.phase("c1", 200, 1.0)
			if ok, why := x.ingest(Report{Ref: x.ref("c1"), Status: stPreflight, Preflight: []string{"kernel 6.1 on node n1"}}); !ok {
				t.Fatal(why)
			}
			c := x.c("c1")
			if c.GetState() != cSucceededS || !slices.Equal(c.GetHeldPhases(), []ebbflowv1.Phase{kpr, xdp}) || !strings.Contains(c.GetHeldReason(), "kernel 6.1") || changed(c) {
				t.Fatalf("c1 %v", c)
			}
		}},
		{"wave progress deadline turns unfinished clusters UNKNOWN", func(t *testing.T) {
			x := start(t, nil, wave(wgates(func(g *ebbflowv1.WaveGates) {
				g.ProgressDeadline = dur(20 * time.Minute)
				g.MaxConcurrency = 1
			}), "c1", "c2"))
			x.step()
			x.phase("c1", 200, 1.0)
			x.advance(9 * time.Minute)
			x.report("c1", stStarted)
			x.advance(9 * time.Minute)
			x.report("c1", stApplied)
			x.advance(3 * time.Minute)
			x.step()
			x.wantCluster("c1", cUnknownS, aIdle)
			x.wantCluster("c2", cUnknownS, aIdle)
			x.wantRollout(rFailed, wFailed)
			x.wantEvent("timeout", "c1", "wave progress deadline")
		}},
		{"rollout progress deadline fails the rollout", func(t *testing.T) {
			x := start(t, func(s *ebbflowv1.RolloutSpec) { s.ProgressDeadline = dur(time.Hour) }, wave(nil, "c1"))
			x.step()
			for range 7 {
				x.advance(9 * time.Minute)
				x.report("c1", stStarted)
				x.step()
			}
			x.wantRollout(rFailed)
			x.wantEvent("timeout", "", "rollout progress deadline 1h0m0s exceeded")
			x.wantCluster("c1", cApplyingS, aIdle)
		}},
		{"max failures in percent rounds down", func(t *testing.T) {
			x := start(t, nil, wave(wgates(func(g *ebbflowv1.WaveGates) {
				g.MaxFailures = &ebbflowv1.WaveGates_MaxFailuresPercent{MaxFailuresPercent: 50}
			}), "c1", "c2", "c3"))
			x.step()
			x.ingest(Report{Ref: x.ref("c1"), Status: stFailed})
			x.step()
			x.wantRollout(rRunning, wProgressing) // 1 <= floor(1.5)
			x.ingest(Report{Ref: x.ref("c2"), Status: stFailed})
			x.step()
			x.wantRollout(rFailed, wFailed)
		}},
		{"measurement-only reports accumulate and samples are capped", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1"))
			x.step()
			x.report("c1", stVerified)
			x.report("c1", ebbflowv1.PhaseStatus_PHASE_STATUS_UNSPECIFIED, httpMeasurement(latency(5, 7000, 1))...)
			x.wantCluster("c1", cMeasuringS, aApply)
			res := x.c("c1").GetResults()[0]
			if len(res.GetMeasurements()) != 1 || len(res.GetMeasurements()[0].GetSamplesMs()) != MaxStoredSamples {
				t.Fatalf("measurements %d", len(res.GetMeasurements()))
			}
			x.report("c1", stMeasured)
			if res := x.c("c1").GetResults()[0]; res.GetVerdict() != ebbflowv1.Verdict_VERDICT_PASS || res.GetLatency().GetCount() != MaxStoredSamples {
				t.Fatalf("baseline %v", res.GetLatency())
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.run)
	}
}

// TestStepUnchanged: a Step with nothing to do reports no change and returns its input.
func TestStepUnchanged(t *testing.T) {
	x := start(t, nil, wave(nil, "c1"))
	x.step()
	r := x.r
	next, ev, changed := Step(r, World{Now: x.now.Add(time.Minute), Clusters: x.world})
	if changed || next != r || len(ev) != 0 {
		t.Fatalf("changed %v, events %v", changed, ev)
	}
}

// TestDeterminism: the same script gives proto-equal rollouts and events.
func TestDeterminism(t *testing.T) {
	run := func() (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent) {
		x := start(t, nil, wave(maxFail(1), "c1", "c2"), wave(nil, "c3"))
		x.step()
		x.pass("c1")
		x.phase("c2", 200, 1.0)
		x.phase("c2", 200, 1.3)
		x.report("c2", stRolled)
		x.step()
		x.pass("c3")
		x.step()
		return x.r, x.events
	}
	r1, e1 := run()
	r2, e2 := run()
	if !proto.Equal(r1, r2) || len(e1) != len(e2) {
		t.Fatal("rollouts differ")
	}
	for i := range e1 {
		if !proto.Equal(e1[i], e2[i]) {
			t.Fatalf("event %d differs: %v / %v", i, e1[i], e2[i])
		}
	}
	if r1.GetState() != rSucceed {
		t.Fatalf("state %s: %s", r1.GetState(), r1.GetMessage())
	}
}

func TestEngineEdges(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"manual wave rollback ends the rollout ROLLED_BACK", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1", "c2"), wave(nil, "c3"))
			x.step()
			if _, _, err := Rollback(x.r, RollbackTarget{Wave: 1}, "", "bob", x.now); !errors.Is(err, ErrInvalidAction) {
				t.Fatalf("rollback of a wave not started: %v", err)
			}
			if _, _, err := Rollback(x.r, RollbackTarget{Wave: 5}, "", "bob", x.now); !errors.Is(err, ErrInvalidAction) {
				t.Fatalf("rollback of a missing wave: %v", err)
			}
			x.pass("c1")
			x.phase("c2", 200, 1.0)
			r, _, err := Rollback(x.r, RollbackTarget{Wave: 0}, "latency", "bob", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r = r
			x.wantRollout(rRollback, wRolledBack, wPending)
			x.wantCluster("c1", cRollingBackS, aRollback)
			x.wantCluster("c2", cRollingBackS, aRollback)
			x.report("c1", stRolled)
			// The rollback of c2 fails on the agent: FAILED, and the rollout can still end.
			x.report("c2", stFailed)
			x.wantCluster("c2", cFailedS, aIdle)
			if x.c("c2").GetReason() != "rollback failed" {
				t.Fatalf("reason %q", x.c("c2").GetReason())
			}
			x.step()
			x.wantRollout(rRolled, wRolledBack, wPending)
		}},
		{"a silent rollback becomes UNKNOWN and the rollout ends", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1"))
			x.step()
			x.phase("c1", 200, 1.0)
			x.phase("c1", 200, 1.3)
			x.step()
			x.wantRollout(rRollback, wFailed)
			x.advance(11 * time.Minute)
			x.step()
			x.wantCluster("c1", cUnknownS, aIdle)
			x.wantEvent("timeout", "c1", "on rollback")
			x.wantRollout(rFailed, wFailed)
		}},
		{"agent rollback during a phase counts as rolled back", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1"))
			x.step()
			x.phase("c1", 200, 1.0)
			x.report("c1", stRolled)
			x.wantCluster("c1", cRolledBackS, aIdle)
			x.step()
			x.wantRollout(rFailed, wFailed)
		}},
		{"preflight failure at baseline skips the cluster", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1"))
			x.step()
			x.ingest(Report{Ref: x.ref("c1"), Status: stPreflight, Message: "no nodes ready"})
			x.wantCluster("c1", cSkippedS, aIdle)
			x.step()
			x.wantRollout(rSucceed, wSucceeded)
		}},
		{"an invalid sample is inconclusive, never a pass", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1"))
			x.step()
			x.phase("c1", 200, 1.0)
			x.report("c1", stMeasured, httpMeasurement([]float64{1, -1})...)
			if res := x.c("c1").GetResults()[1]; res.GetVerdict() != ebbflowv1.Verdict_VERDICT_INCONCLUSIVE || !strings.Contains(res.GetReason(), "invalid measurement") {
				t.Fatalf("result %v", res)
			}
			x.wantCluster("c1", cRollingBackS, aRollback)
		}},
		{"a budget without a phase applies to every phase", func(t *testing.T) {
			x := start(t, func(s *ebbflowv1.RolloutSpec) {
				s.Budgets = []*ebbflowv1.RegressionBudget{{MaxP50IncreasePercent: 50, MaxP99IncreasePercent: 60, Alpha: 0.05}}
			}, wave(nil, "c1"))
			x.step()
			x.phase("c1", 200, 1.0)
			x.phase("c1", 200, 1.3) // +30% within a 50% budget
			x.wantCluster("c1", cSucceededS, aIdle)
		}},
		{"skip of a succeeded cluster and approve of a non-waiting cluster are refused", func(t *testing.T) {
			x := start(t, nil, wave(nil, "c1", "c2"))
			x.step()
			x.pass("c1")
			for name, f := range map[string]func() error{
				"skip succeeded":   func() error { _, _, err := Skip(x.r, "c1", "", "bob", x.now); return err },
				"skip unknown":     func() error { _, _, err := Skip(x.r, "zz", "", "bob", x.now); return err },
				"approve applying": func() error { _, _, err := Approve(x.r, -1, "c2", "bob", x.now); return err },
				"approve no wave":  func() error { _, _, err := Approve(x.r, 7, "", "bob", x.now); return err },
				"no actor":         func() error { _, _, err := Pause(x.r, "", "", x.now); return err },
			} {
				if err := f(); !errors.Is(err, ErrInvalidAction) {
					t.Errorf("%s: %v", name, err)
				}
			}
			// Resuming a running rollout is a no-op, not an error.
			if again, events, err := Resume(x.r, "bob", x.now); err != nil || again != x.r || len(events) != 0 {
				t.Errorf("resume running: %v (a no-op returns the same rollout and no events)", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.run)
	}
}
