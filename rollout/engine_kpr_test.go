package rollout

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// nodeByNodeProfile is the EKS example with its kpr phase node by node: a canary of 1 node,
// then batches of 50% of the eligible nodes.
func nodeByNodeProfile(t *testing.T) *ebbflowv1.Profile {
	t.Helper()
	prof := eksProfile(t)
	prof.Spec.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
	prof.Spec.Kpr.Batches = &ebbflowv1.KprBatches{BatchPercent: proto.Int32(50)}
	return prof
}

// kprFleetCluster is a cluster of 4 nodes (n0..n3) passing every phase: batches [n0] [n1 n2]
// [n3] under nodeByNodeProfile.
func kprFleetCluster(name string) *ebbflowv1.Cluster {
	return withInventory(cluster(name, "env", "prod"), true, nodes(4, "6.8.0-45-generic", "ena")...)
}

func startKpr(t *testing.T, edit func(s *ebbflowv1.RolloutSpec), waves ...*ebbflowv1.WaveSpec) *h {
	t.Helper()
	return startWith(t, nodeByNodeProfile(t), kprFleetCluster, edit, waves...)
}

// kprBatches are the batches of a kprFleetCluster, as its agent reports them.
var kprBatches = []*ebbflowv1.KprBatchStatus{
	{Batch: 1, Batches: 3, Nodes: []string{"n0"}},
	{Batch: 2, Batches: 3, Nodes: []string{"n1", "n2"}, NodesMovedBefore: 1},
	{Batch: 3, Batches: 3, Nodes: []string{"n3"}, NodesMovedBefore: 3},
}

// batch runs kpr batch b of the cluster to MEASURED, every report naming the batch, with
// samples around scale ms.
func (x *h) batch(name string, b *ebbflowv1.KprBatchStatus, scale float64) {
	x.t.Helper()
	x.seed++
	for _, st := range []ebbflowv1.PhaseStatus{stStarted, stApplied, stVerified, stMeasured} {
		rep := Report{Ref: x.ref(name), Status: st, HelmBefore: 7, HelmAfter: 8, KprBatch: b}
		if st == stMeasured {
			rep.Measurements = httpMeasurement(latency(x.seed, 200, scale))
		}
		if ok, why := x.ingest(rep); !ok {
			x.t.Fatalf("%s kpr batch %d %s refused: %s", name, b.GetBatch(), st, why)
		}
	}
}

// wantAssignment checks the cluster's assignment: id, action, kpr_batch and
// rollback_kpr_batches_from.
func (x *h) wantAssignment(name, id string, act ebbflowv1.AssignmentAction, batch, rollbackFrom int32) {
	x.t.Helper()
	_, c := findCluster(x.r, name)
	a := AssignmentFor(x.r, c)
	if a.GetId() != id || a.GetAction() != act || a.GetKprBatch() != batch || a.GetRollbackKprBatchesFrom() != rollbackFrom {
		x.t.Fatalf("%s: assignment %s %s kpr_batch %d rollback_kpr_batches_from %d (%s); want %s %s %d %d",
			name, a.GetId(), a.GetAction(), a.GetKprBatch(), a.GetRollbackKprBatchesFrom(), c.GetReason(), id, act, batch, rollbackFrom)
	}
}

// kprResults lists the cluster's kpr results as "batch:verdict:nodes".
func (x *h) kprResults(name string) []string {
	var out []string
	for _, res := range x.c(name).GetResults() {
		if res.GetPhase() == kpr {
			out = append(out, fmt.Sprintf("%d:%s:%s", res.GetKprBatch().GetBatch(), stateName(res.GetVerdict()), strings.Join(res.GetKprBatch().GetNodes(), ",")))
		}
	}
	return out
}

func TestKprNodeByNode(t *testing.T) {
	one := func() *ebbflowv1.WaveSpec { return wave(nil, "c1") }
	// toBatch2 runs c1's baseline and passes kpr batch 1; c1 then applies batch 2.
	toBatch2 := func(t *testing.T, x *h) {
		t.Helper()
		x.step()
		x.wantAssignment("c1", "r1.c1.1", aApply, 0, 0) // baseline: no batch
		x.phase("c1", 200, 1.0)
		x.wantAssignment("c1", "r1.c1.2", aApply, 1, 0)
		if r := x.c("c1").GetReason(); r != "kpr batch 1" {
			t.Fatalf("canary batch reason %q", r)
		}
		x.batch("c1", kprBatches[0], 1.0)
		x.wantAssignment("c1", "r1.c1.3", aApply, 2, 0)
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"three batches pass one by one, then the phase", func(t *testing.T) {
			x := startKpr(t, nil, one())
			if b := x.c("c1").GetKprBatch(); b != 1 {
				t.Fatalf("New set kpr_batch %d on a node-by-node cluster; want 1", b)
			}
			toBatch2(t, x)
			x.wantCluster("c1", cApplyingS, aApply)
			if r := x.c("c1").GetReason(); r != "kpr batch 2/3" {
				t.Fatalf("reason %q; want kpr batch 2/3", r)
			}
			x.wantEvent("assign", "c1", "apply phase kpr batch 2/3 (assignment r1.c1.3)")
			x.wantEvent("report", "c1", "kpr batch 1/3 STARTED (nodes n0)")
			// The new batch measures its own first window.
			if a := AssignmentFor(x.r, x.c("c1")); a.GetMeasureWindow() != 1 {
				t.Fatalf("batch 2 measure window %d; want 1", a.GetMeasureWindow())
			}
			x.batch("c1", kprBatches[1], 1.0)
			x.wantAssignment("c1", "r1.c1.4", aApply, 3, 0)
			x.wantEvent("assign", "c1", "apply phase kpr batch 3/3 (assignment r1.c1.4)")
			x.batch("c1", kprBatches[2], 1.0)
			x.wantCluster("c1", cSucceededS, aIdle)
			if got, want := x.kprResults("c1"), []string{"1:PASS:n0", "2:PASS:n1,n2", "3:PASS:n3"}; !slices.Equal(got, want) {
				t.Fatalf("kpr results %v; want %v", got, want)
			}
			x.step()
			x.wantRollout(rSucceed)
		}},
		{"regression in batch 2 rolls back batch 2 only under rollbackFailedClusters", func(t *testing.T) {
			x := startKpr(t, nil, wave(maxFail(1), "c1"))
			toBatch2(t, x)
			x.batch("c1", kprBatches[1], 1.3)
			x.wantCluster("c1", cRollingBackS, aRollback)
			x.wantAssignment("c1", "r1.c1.4", aRollback, 0, 2)
			if r := x.c("c1").GetReason(); !strings.HasPrefix(r, "regression in kpr batch 2/3: ") {
				t.Fatalf("reason %q", r)
			}
			x.wantEvent("rollback", "c1", "roll back kpr batches from 2 on")
			// A rollback report may name the batch it undoes, not another.
			bad := Report{Ref: x.ref("c1"), Status: stRolled, KprBatch: kprBatches[0]}
			if ok, why := x.ingest(bad); ok || !strings.Contains(why, "is for kpr batch 2") {
				t.Fatalf("rollback report of batch 1: accepted %v (%s)", ok, why)
			}
			x.report("c1", stRolled)
			x.wantCluster("c1", cRolledBackS, aIdle)
			want := "kpr batch 2/3 regressed: batch 2 rolled back; batch 1 (n0) keeps kube-proxy replacement"
			if r := x.c("c1").GetReason(); r != want {
				t.Fatalf("reason %q; want %q", r, want)
			}
			x.wantEvent("rolled-back", "c1", want)
			if got, want := x.kprResults("c1"), []string{"1:PASS:n0", "2:REGRESSION:n1,n2"}; !slices.Equal(got, want) {
				t.Fatalf("kpr results %v; want %v", got, want)
			}
			// A manual rollback of everything still rolls the cluster back in full.
			next, _, err := Rollback(x.r, RollbackTarget{All: true}, "undo", "bob", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r = next
			x.wantCluster("c1", cRollingBackS, aRollback)
			x.wantAssignment("c1", "r1.c1.5", aRollback, 0, 0)
			x.report("c1", stRolled)
			x.step()
			x.wantRollout(rRolled)
			if r := x.c("c1").GetReason(); !strings.Contains(r, "rolled back to helm revision 7") {
				t.Fatalf("reason after the full rollback %q", r)
			}
		}},
		{"a manual rollback of a batch-rolled-back cluster is a full one", func(t *testing.T) {
			x := startKpr(t, nil, wave(maxFail(1), "c1"))
			toBatch2(t, x)
			x.batch("c1", kprBatches[1], 1.3)
			x.report("c1", stRolled)
			next, _, err := Rollback(x.r, RollbackTarget{Cluster: "c1"}, "", "bob", x.now)
			if err != nil {
				t.Fatalf("rollback of a cluster that keeps batch 1: %v", err)
			}
			x.r = next
			x.wantAssignment("c1", "r1.c1.5", aRollback, 0, 0)
		}},
		{"a failing canary batch is rolled back alone", func(t *testing.T) {
			x := startKpr(t, nil, wave(maxFail(1), "c1"))
			x.step()
			x.phase("c1", 200, 1.0)
			if ok, why := x.ingest(Report{Ref: x.ref("c1"), Status: stFailed, Message: "cilium pod not ready", KprBatch: kprBatches[0]}); !ok {
				t.Fatal(why)
			}
			x.wantAssignment("c1", "r1.c1.3", aRollback, 0, 1)
			x.report("c1", stRolled)
			if r := x.c("c1").GetReason(); !strings.HasPrefix(r, "kpr batch 1/3 failed: batch 1 rolled back; no node keeps kube-proxy replacement") {
				t.Fatalf("reason %q", r)
			}
		}},
		{"regression in batch 2 rolls the whole cluster back under rollbackWave", func(t *testing.T) {
			x := startKpr(t, policy(ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_WAVE), wave(maxFail(1), "c1"))
			toBatch2(t, x)
			x.batch("c1", kprBatches[1], 1.3)
			x.wantCluster("c1", cRollingBackS, aRollback)
			x.wantAssignment("c1", "r1.c1.4", aRollback, 0, 0)
			x.wantEvent("rollback", "c1", "roll back to helm revision 7")
			x.report("c1", stRolled)
			x.wantCluster("c1", cRolledBackS, aIdle)
			if r := x.c("c1").GetReason(); strings.Contains(r, "keeps") || !strings.Contains(r, "rolled back to helm revision 7") {
				t.Fatalf("reason %q", r)
			}
		}},
		{"a failed wave rolls a cluster back in full after the agent undid its batch", func(t *testing.T) {
			// The agent rolls batch 2 back on its own; the failure fails the wave, whose
			// rollback must still undo batch 1, earlier phases and Helm.
			x := startKpr(t, policy(ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_WAVE), one())
			toBatch2(t, x)
			x.report("c1", stRolled)
			x.wantCluster("c1", cRolledBackS, aIdle)
			x.step()
			x.wantAssignment("c1", "r1.c1.4", aRollback, 0, 0)
			x.report("c1", stRolled)
			x.step()
			x.wantRollout(rRolled, wRolledBack)
		}},
		{"a manual wave rollback rolls a batch-rolled-back cluster back in full", func(t *testing.T) {
			x := startKpr(t, nil, wave(maxFail(2), "c1", "c2"))
			toBatch2(t, x)
			x.batch("c1", kprBatches[1], 1.3)
			x.report("c1", stRolled)
			next, _, err := Rollback(x.r, RollbackTarget{Wave: 0}, "", "bob", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r = next
			x.wantAssignment("c1", "r1.c1.5", aRollback, 0, 0)
		}},
		{"haltOnly rolls nothing back", func(t *testing.T) {
			x := startKpr(t, policy(ebbflowv1.FailurePolicy_FAILURE_POLICY_HALT_ONLY), wave(maxFail(1), "c1"))
			toBatch2(t, x)
			x.batch("c1", kprBatches[1], 1.3)
			x.wantCluster("c1", cFailedS, aIdle)
		}},
		{"reports naming the wrong batch are refused", func(t *testing.T) {
			x := startKpr(t, nil, one())
			x.step()
			// The baseline is not a node batch.
			if ok, why := x.ingest(Report{Ref: x.ref("c1"), Status: stStarted, KprBatch: kprBatches[0]}); ok || !strings.Contains(why, "not a node batch") {
				t.Fatalf("baseline report with a batch: accepted %v (%s)", ok, why)
			}
			x.phase("c1", 200, 1.0)
			// Batch 1 measured without ever saying how many batches there are.
			if ok, why := x.ingest(Report{Ref: x.ref("c1"), Status: stMeasured, Measurements: httpMeasurement(latency(9, 200, 1))}); ok || !strings.Contains(why, "without kpr_batch") {
				t.Fatalf("MEASURED without a batch: accepted %v (%s)", ok, why)
			}
			x.batch("c1", kprBatches[0], 1.0)
			for _, b := range []*ebbflowv1.KprBatchStatus{
				kprBatches[0], // the batch that passed
				kprBatches[2], // a later one
			} {
				if ok, why := x.ingest(Report{Ref: x.ref("c1"), Status: stStarted, KprBatch: b}); ok || !strings.Contains(why, "is for kpr batch 2") {
					t.Fatalf("batch %d on batch 2's assignment: accepted %v (%s)", b.GetBatch(), ok, why)
				}
			}
			if ok, why := x.ingest(Report{Ref: x.ref("c1"), Status: stStarted, KprBatch: &ebbflowv1.KprBatchStatus{Batch: 2, Batches: 4}}); ok || !strings.Contains(why, "batch 1 said 3") {
				t.Fatalf("another batch count: accepted %v (%s)", ok, why)
			}
			if ok, why := x.ingest(Report{Ref: x.ref("c1"), Status: stStarted, KprBatch: &ebbflowv1.KprBatchStatus{Batch: 2, Batches: 1}}); ok || !strings.Contains(why, "batch 2 of 1") {
				t.Fatalf("batch past the count: accepted %v (%s)", ok, why)
			}
			// Batch 2's count is known from batch 1: MEASURED may leave the batch out.
			x.report("c1", stVerified)
			x.report("c1", stMeasured, httpMeasurement(latency(10, 200, 1))...)
			x.wantAssignment("c1", "r1.c1.4", aApply, 3, 0)
		}},
		{"a cluster-wide kpr phase refuses batches", func(t *testing.T) {
			x := start(t, nil, one())
			x.step()
			x.phase("c1", 200, 1.0)
			x.wantAssignment("c1", "r1.c1.2", aApply, 0, 0)
			if ok, why := x.ingest(Report{Ref: x.ref("c1"), Status: stStarted, KprBatch: kprBatches[0]}); ok || !strings.Contains(why, "not a node batch") {
				t.Fatalf("accepted %v (%s)", ok, why)
			}
		}},
		{"a paused rollout holds the next batch", func(t *testing.T) {
			x := startKpr(t, nil, one())
			x.step()
			x.phase("c1", 200, 1.0)
			next, _, err := Pause(x.r, "bob", "", x.now)
			if err != nil {
				t.Fatal(err)
			}
			x.r = next
			x.batch("c1", kprBatches[0], 1.0)
			x.wantCluster("c1", cPendingS, aIdle)
			if r := x.c("c1").GetReason(); r != "kpr batch 2/3 waits: rollout is PAUSED" {
				t.Fatalf("reason %q", r)
			}
			if next, _, err = Resume(x.r, "bob", x.now); err != nil {
				t.Fatal(err)
			}
			x.r = next
			x.step()
			x.wantAssignment("c1", "r1.c1.3", aApply, 2, 0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestPlanKprBatches(t *testing.T) {
	prof := nodeByNodeProfile(t)
	// n4 runs Ubuntu 5.15: BBR (kpr phase) needs 5.18, so n4 is left out, not the cluster.
	mixed := withInventory(cluster("mixed", "env", "prod"), true,
		append(nodes(4, "6.8.0-45-generic", "ena"), &ebbflowv1.NodeInfo{Name: "n4", KernelVersion: "5.15.0-1051-aws", NicDriver: "ena", Ready: true})...)
	old := withInventory(cluster("old", "env", "prod"), true, nodes(2, "5.15.0-1051-aws", "ena")...)
	spec := explicitSpec(wave(nil, "mixed", "old"))
	spec.Profile = prof.GetName()
	spec.Phases = []ebbflowv1.Phase{baseline, kpr}
	plan, err := Plan(mustSpec(t, spec), prof, []*ebbflowv1.Cluster{mixed, old})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*ebbflowv1.ClusterPlan{}
	for _, c := range plan.Waves[0].Clusters {
		got[c.GetCluster()] = c
	}
	m := got["mixed"]
	if !slices.Equal(m.GetPhases(), []ebbflowv1.Phase{baseline, kpr}) || len(m.GetHeldPhases()) > 0 {
		t.Fatalf("mixed: phases %v held %v; want kpr not held", m.GetPhases(), m.GetHeldPhases())
	}
	var batches []string
	for _, b := range m.GetKprBatches() {
		batches = append(batches, fmt.Sprintf("%d/%d:%s", b.GetBatch(), b.GetBatches(), strings.Join(b.GetNodes(), ",")))
	}
	if want := []string{"1/3:n0", "2/3:n1,n2", "3/3:n3"}; !slices.Equal(batches, want) {
		t.Fatalf("mixed batches %v; want %v", batches, want)
	}
	if sk := m.GetKprBatches()[0].GetSkipped(); len(sk) != 1 || !strings.HasPrefix(sk[0], "n4: ") || !strings.Contains(sk[0], "5.18") {
		t.Fatalf("mixed skipped %v; want n4 with its kernel", sk)
	}
	// Every node fails: the phase is held, and no batch is planned.
	if o := got["old"]; !slices.Equal(o.GetHeldPhases(), []ebbflowv1.Phase{kpr}) || len(o.GetKprBatches()) > 0 {
		t.Fatalf("old: held %v batches %v; want kpr held, no batch", o.GetHeldPhases(), o.GetKprBatches())
	}
	// The rollout runs mixed's kpr phase node by node and holds old's.
	r, _, err := New("r1", mustSpec(t, spec), prof, []*ebbflowv1.Cluster{mixed, old}, "alice", t0)
	if err != nil {
		t.Fatal(err)
	}
	_, mc := findCluster(r, "mixed")
	_, oc := findCluster(r, "old")
	if mc.GetKprBatch() != 1 || mc.GetHeldReason() != "" || oc.GetKprBatch() != 0 || !strings.Contains(oc.GetHeldReason(), "5.18") {
		t.Fatalf("mixed kpr_batch %d held %q; old kpr_batch %d held %q", mc.GetKprBatch(), mc.GetHeldReason(), oc.GetKprBatch(), oc.GetHeldReason())
	}
}
