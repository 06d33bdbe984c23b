package cluster

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ebbflow/ebbflow/e2e/kubebox"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// TestKprBatchCrashResume kills the driver after every step of a node-by-node kpr batch (the
// flow's steps and the batch's own), and at every point of a batch rollback, then lets a new
// driver Resume and Execute the same assignment: batch 2 ends moved exactly once (one record,
// its nodes labelled, its config applied, kube-proxy only on the nodes not moved, no second
// Helm upgrade, only its own Cilium pods replaced), and a rolled-back batch ends fully back.
// The cases share one cluster's nodes, so they run one after another, each cleaning up with
// a full rollback that must leave no label, config or affinity behind.
func TestKprBatchCrashResume(t *testing.T) {
	c := kubebox.ForTest(t, kubebox.Options{Nodes: []kubebox.Node{
		{Name: "n-01", Kernel: "6.8.0-45-generic"}, {Name: "n-02", Kernel: "6.8.0-45-generic"}, {Name: "n-03", Kernel: "6.8.0-45-generic"},
	}})
	setup := func(t *testing.T, ns string) (*env, *ebbflowv1.ProfileSpec) {
		e := newEnv(t, c, ns, "ebbflow-"+ns, map[string]any{"l7Proxy": false}, true)
		spec := nodeByNodeProfile(t, ns)
		spec.Kpr.Batches = &ebbflowv1.KprBatches{BatchNodes: proto.Int32(1)} // n-01 | n-02 | n-03
		if err := e.driver(nil).Execute(context.Background(), batchAssignment("a-kpr-1", spec, 1), &recorder{}); err != nil {
			t.Fatal(err)
		}
		return e, spec
	}
	cleanup := func(t *testing.T, e *env, spec *ebbflowv1.ProfileSpec) {
		t.Helper()
		full := assignment("a-rb-all", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK, ebbflowv1.Phase_PHASE_KPR, spec, nil)
		full.RollbackToHelmRevision = 1
		if err := e.driver(nil).Execute(context.Background(), full, &recorder{}); err != nil {
			t.Fatalf("full rollback: %v", err)
		}
		e.wantMoved("after the full rollback", nil, []string{"n-01", "n-02", "n-03"})
		if kp := e.ds("kube-proxy"); kp.Spec.Template.Spec.Affinity != nil {
			t.Fatalf("full rollback left kube-proxy's affinity %v", kp.Spec.Template.Spec.Affinity)
		}
	}
	k1, k2 := batchKey("r1", 1), batchKey("r1", 2)
	applySteps := slices.Clone(applyOrder)
	for _, s := range batchOrder {
		applySteps = append(applySteps, "kpr-batch-"+s)
	}
	for i, step := range applySteps {
		t.Run("apply/"+step, func(t *testing.T) {
			ns := "kc-a" + itoa(i)
			e, spec := setup(t, ns)
			ciliumBefore := e.podUIDs("cilium")
			rs := killAndResume(t, e, batchAssignment("a-kpr-2", spec, 2), step)
			if len(rs) == 0 || rs[len(rs)-1].status != ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED || rs[len(rs)-1].batch.GetBatch() != 2 {
				t.Fatalf("reports after the restart %v, want MEASURED of batch 2 last", rs)
			}
			e.wantMoved("after the restart", map[string]string{"n-01": k1, "n-02": k2}, []string{"n-03"})
			if hs := e.history(); len(hs) != 2 {
				t.Errorf("helm history: %d revisions, want 2 (batch 2 upgrades nothing)", len(hs))
			}
			after := e.podUIDs("cilium")
			for node, uid := range ciliumBefore {
				if moved := node == "n-02"; (after[node] != uid) != moved {
					t.Errorf("Cilium pod on %s replaced=%v, want %v", node, after[node] != uid, moved)
				}
			}
			p, err := e.driver(nil).Progress(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(p.KprBatches) != 2 || p.KprBatches[1].Batch != 2 || p.KprBatches[1].Step != BatchMoved || !slices.Equal(p.KprBatches[1].Nodes, []string{"n-02"}) {
				t.Errorf("batch records %+v", p.KprBatches)
			}
			cleanup(t, e, spec)
		})
	}
	rollbackSteps := []string{StepStarted, UndoMovedBack, UndoUnconfigured, UndoRestarted, StepUnparked, StepDone}
	for i, step := range rollbackSteps {
		t.Run("rollback/"+step, func(t *testing.T) {
			ns := "kc-r" + itoa(i)
			e, spec := setup(t, ns)
			if err := e.driver(nil).Execute(context.Background(), batchAssignment("a-kpr-2", spec, 2), &recorder{}); err != nil {
				t.Fatal(err)
			}
			rb := assignment("a-rb-2", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK, ebbflowv1.Phase_PHASE_KPR, spec, nil)
			rb.RollbackKprBatchesFrom = 2
			rs := killAndResume(t, e, rb, step)
			if len(rs) == 0 || rs[len(rs)-1].status != ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK {
				t.Fatalf("reports after the restart %v, want ROLLED_BACK last", rs)
			}
			e.wantMoved("after the restart", map[string]string{"n-01": k1}, []string{"n-02", "n-03"})
			if kp := e.ds("kube-proxy"); !excludes(kp) {
				t.Error("kube-proxy lost its exclusion while batch 1 is still moved")
			}
			cleanup(t, e, spec)
		})
	}
	// Nothing of the cases is left on the nodes.
	ns, err := c.Clientset.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns.Items {
		if _, ok := n.Labels[KprBatchLabel]; ok {
			t.Errorf("node %s keeps %s", n.Name, KprBatchLabel)
		}
	}
}

func itoa(i int) string { return string(rune('a'+i/26)) + string(rune('a'+i%26)) }
