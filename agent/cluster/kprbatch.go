package cluster

// Node-by-node kube-proxy replacement: the kpr phase of a node-by-node profile moves one batch
// of nodes per assignment. A batch's steps, each recorded in the progress before the next:
//
//	chosen      the batch's nodes are fixed (from the plan recorded at batch 1)
//	configured  CiliumNodeConfig ebbflow-kpr-<key> carries the node-level kpr keys, selecting
//	            nodes labelled ebbflow.io/kpr-batch=<key>
//	labelled    the batch's nodes carry that label
//	restarting  the batch's Cilium pods (their UIDs recorded) are being deleted
//	restarted   every batch node has a new, ready Cilium pod (it read the node config)
//	moved       the parked DaemonSets exclude nodes labelled ebbflow.io/kpr-moved (a node
//	            affinity, added once), the batch's nodes carry that label, and no pod of those
//	            DaemonSets is left on them
//
// Undoing a batch runs the other way: the moved label comes off and the parked DaemonSets are
// waited for on those nodes first, then the node config is deleted, the batch label removed and
// the nodes' Cilium pods recreated; the affinity goes once no batch is left. Each step is
// idempotent, so a restarted agent repeats the step it was in and never moves a batch twice.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// Keys node-by-node kpr writes.
const (
	// KprBatchLabel on a node selects its batch's CiliumNodeConfig; the value is the batch key.
	KprBatchLabel = "ebbflow.io/kpr-batch"
	// KprMovedLabel on a node keeps the parked DaemonSets (kube-proxy) off it.
	KprMovedLabel = "ebbflow.io/kpr-moved"
	// KprAffinityAnnotation on a DaemonSet holds its node affinity before the exclusion, as JSON.
	KprAffinityAnnotation = "ebbflow.io/kpr-original-affinity"
)

// Steps of a batch (KprBatch.Step).
const (
	BatchChosen     = "chosen"
	BatchConfigured = "configured"
	BatchLabelled   = "labelled"
	BatchRestarting = "restarting"
	BatchRestarted  = "restarted"
	BatchMoved      = "moved"
	// BatchUndoing: the batch is being moved back; the undo repeats from the start.
	BatchUndoing = "undoing"
)

// Points inside a batch's undo where Config.AfterStep is called (nothing is recorded there:
// the undo repeats from its start, each part idempotent).
const (
	UndoMovedBack    = "kpr-undo-moved-back"
	UndoUnconfigured = "kpr-undo-unconfigured"
	UndoRestarted    = "kpr-undo-restarted"
)

var batchOrder = []string{BatchChosen, BatchConfigured, BatchLabelled, BatchRestarting, BatchRestarted, BatchMoved}

var cncResource = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnodeconfigs"}

// KprBatch is one node batch of a node-by-node kpr phase, recorded from the moment its nodes
// are chosen until it is moved back.
type KprBatch struct {
	RolloutID    string `json:"rolloutId"`
	AssignmentID string `json:"assignmentId"`
	Batch        int    `json:"batch"`
	Batches      int    `json:"batches"`
	// Key names the batch's node config and label value: a hash of the rollout and the batch.
	Key   string   `json:"key"`
	Nodes []string `json:"nodes,omitempty"`
	// MovedBefore counts the nodes of the rollout's earlier batches.
	MovedBefore int      `json:"movedBefore,omitempty"`
	Skipped     []string `json:"skipped,omitempty"`
	Step        string   `json:"step"`
	// OldPods are the UIDs of the Cilium pods being replaced (Step restarting, or undoing).
	OldPods []string `json:"oldPods,omitempty"`
	// HelmBefore is the release revision before the assignment that moved the batch: a rollback
	// to it or an earlier one moves the batch back.
	HelmBefore int32 `json:"helmBefore"`
}

// KprPlan fixes a rollout's batches when its first batch starts.
type KprPlan struct {
	// Eligible nodes in order; Sizes the batch sizes over them.
	Eligible []string `json:"eligible"`
	Sizes    []int    `json:"sizes"`
	// Skipped nodes, "name: reason" (held by preflight).
	Skipped []string `json:"skipped,omitempty"`
}

// ExcludedDaemonSet is a parked DaemonSet given the moved-node exclusion, with its affinity
// before it.
type ExcludedDaemonSet struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Affinity is the pod template's affinity before the exclusion, as JSON ("" for none).
	Affinity string `json:"affinity,omitempty"`
}

func batchKey(rollout string, batch int) string {
	h := sha256.Sum256([]byte(rollout))
	return hex.EncodeToString(h[:])[:10] + "-" + strconv.Itoa(batch)
}

func cncName(key string) string { return "ebbflow-kpr-" + key }

// nodeByNodeKpr: the assignment is the kpr phase of a node-by-node profile.
func (x *execution) nodeByNodeKpr() bool {
	return x.a.GetPhase() == ebbflowv1.Phase_PHASE_KPR && profile.NodeByNode(x.a.GetProfile())
}

// currentBatch returns the record of the assignment's batch, or nil before it is chosen.
func (x *execution) currentBatch() *KprBatch { return batchOf(x.p, x.a) }

// batchOf returns p's record of a's node batch: nil unless a is an APPLY of a node-by-node kpr
// phase whose batch is chosen.
func batchOf(p *Progress, a *ebbflowv1.Assignment) *KprBatch {
	if a.GetPhase() != ebbflowv1.Phase_PHASE_KPR || !profile.NodeByNode(a.GetProfile()) ||
		a.GetAction() != ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY {
		return nil
	}
	k := max(int(a.GetKprBatch()), 1)
	for i := range p.KprBatches {
		if b := &p.KprBatches[i]; b.RolloutID == a.GetRolloutId() && b.Batch == k {
			return b
		}
	}
	return nil
}

// batchStatus is the report's view of a's batch (nil when a is not a node-by-node kpr APPLY or
// before its batch is chosen).
func batchStatus(p *Progress, a *ebbflowv1.Assignment) *ebbflowv1.KprBatchStatus {
	b := batchOf(p, a)
	if b == nil {
		return nil
	}
	return &ebbflowv1.KprBatchStatus{Batch: int32(b.Batch), Batches: int32(b.Batches), Nodes: slices.Clone(b.Nodes),
		NodesMovedBefore: int32(b.MovedBefore), Skipped: slices.Clone(b.Skipped)}
}

// describeBatch is "kpr batch 2/5: nodes n-04..n-13".
func describeBatch(b *KprBatch) string {
	nodes := "no node"
	switch len(b.Nodes) {
	case 0:
	case 1:
		nodes = "node " + b.Nodes[0]
	default:
		nodes = fmt.Sprintf("nodes %s..%s", b.Nodes[0], b.Nodes[len(b.Nodes)-1])
	}
	return fmt.Sprintf("kpr batch %d/%d: %s", b.Batch, b.Batches, nodes)
}

// moveBatch moves (or resumes moving) the assignment's node batch.
func (x *execution) moveBatch(ctx context.Context) error {
	b := x.currentBatch()
	if b == nil {
		var err error
		if b, err = x.chooseBatch(ctx); err != nil {
			return err
		}
	}
	x.log.Info("moving node batch", "batch", describeBatch(b), "step", b.Step)
	step := func(s string) error {
		b.Step = s
		if err := x.st.save(ctx, x.p, nil); err != nil {
			return err
		}
		return x.after(ctx, "kpr-batch-"+s)
	}
	at := func(s string) bool { return slices.Index(batchOrder, b.Step) >= slices.Index(batchOrder, s) }
	if !at(BatchConfigured) {
		if err := x.d.applyNodeConfig(ctx, b.Key, profile.KprNodeConfig(x.a.GetProfile()), x.a.GetId()); err != nil {
			return err
		}
		if err := step(BatchConfigured); err != nil {
			return err
		}
	}
	if !at(BatchLabelled) {
		if err := x.d.labelNodes(ctx, b.Nodes, KprBatchLabel, b.Key); err != nil {
			return err
		}
		if err := step(BatchLabelled); err != nil {
			return err
		}
	}
	if !at(BatchRestarted) {
		if err := x.restartCiliumOn(ctx, b, step); err != nil {
			return err
		}
	}
	if !at(BatchMoved) {
		if err := x.excludeMoved(ctx); err != nil {
			return err
		}
		if err := x.d.labelNodes(ctx, b.Nodes, KprMovedLabel, "true"); err != nil {
			return err
		}
		for _, ref := range profile.ParkedDaemonSets(x.a.GetProfile()) {
			if err := x.d.waitPods(ctx, ref.GetNamespace(), ref.GetName(), b.Nodes, "gone", false); err != nil {
				return err
			}
		}
		if err := step(BatchMoved); err != nil {
			return err
		}
	}
	return nil
}

// noteGone records, among b's skipped nodes, the nodes of b that no longer exist: a node deleted
// while its batch moved is passed over by every step and the report says so.
func (x *execution) noteGone(ctx context.Context, b *KprBatch) error {
	live, err := x.d.liveNodes(ctx, b.Nodes)
	if err != nil {
		return err
	}
	changed := false
	for _, n := range b.Nodes {
		note := n + ": gone during its batch"
		if !slices.Contains(live, n) && !slices.Contains(b.Skipped, note) {
			b.Skipped = append(b.Skipped, note)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return x.st.save(ctx, x.p, nil)
}

// chooseBatch fixes the assignment's batch: the rollout's plan is made at batch 1 from the
// nodes kpr's per-node preflight passes; batch k takes the plan's k-th slice, leaving out nodes
// that are gone. It is recorded before anything changes.
func (x *execution) chooseBatch(ctx context.Context) (*KprBatch, error) {
	k := max(int(x.a.GetKprBatch()), 1)
	rid := x.a.GetRolloutId()
	inv, err := x.d.inventory(ctx, x.rel)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	moved := map[string]bool{}
	for _, b := range x.p.KprBatches {
		for _, n := range b.Nodes {
			moved[n] = true
		}
	}
	if x.p.KprPlans == nil {
		x.p.KprPlans = map[string]KprPlan{}
	}
	plan, ok := x.p.KprPlans[rid]
	if !ok {
		if k != 1 {
			return nil, fmt.Errorf("kpr batch %d assigned, but this cluster has no record of batch 1 of rollout %s", k, rid)
		}
		eligible, skipped := profile.NewPreflighter(x.a.GetProfile()).KprEligible(inv)
		var free []string
		for _, n := range eligible {
			if moved[n] {
				skipped = append(skipped, n+": moved already by an earlier rollout")
				continue
			}
			free = append(free, n)
		}
		if len(free) == 0 {
			return nil, fmt.Errorf("no node is eligible for kube-proxy replacement: %s", strings.Join(skipped, "; "))
		}
		plan = KprPlan{Eligible: free, Sizes: profile.KprBatchSizes(x.a.GetProfile().GetKpr().GetBatches(), len(free)), Skipped: skipped}
		x.p.KprPlans[rid] = plan
	}
	if k > len(plan.Sizes) {
		return nil, fmt.Errorf("kpr batch %d assigned, but the phase has %d batches", k, len(plan.Sizes))
	}
	from := 0
	for _, n := range plan.Sizes[:k-1] {
		from += n
	}
	live := map[string]bool{}
	for _, n := range inv.GetNodes() {
		live[n.GetName()] = true
	}
	b := KprBatch{RolloutID: rid, AssignmentID: x.a.GetId(), Batch: k, Batches: len(plan.Sizes), Key: batchKey(rid, k),
		MovedBefore: from, Step: BatchChosen, HelmBefore: x.p.HelmBefore}
	if k == 1 {
		b.Skipped = slices.Clone(plan.Skipped)
	}
	for _, n := range plan.Eligible[from : from+plan.Sizes[k-1]] {
		if !live[n] {
			b.Skipped = append(b.Skipped, n+": gone before its batch")
			continue
		}
		b.Nodes = append(b.Nodes, n)
	}
	known := map[string]bool{}
	for _, n := range plan.Eligible {
		known[n] = true
	}
	for _, s := range plan.Skipped {
		known[strings.SplitN(s, ":", 2)[0]] = true
	}
	for _, n := range inv.GetNodes() {
		if !known[n.GetName()] && !moved[n.GetName()] {
			b.Skipped = append(b.Skipped, n.GetName()+": added after the first batch; not moved")
		}
	}
	x.p.KprBatches = append(x.p.KprBatches, b)
	if err := x.st.save(ctx, x.p, nil); err != nil {
		return nil, err
	}
	return &x.p.KprBatches[len(x.p.KprBatches)-1], x.after(ctx, "kpr-batch-"+BatchChosen)
}

// restartCiliumOn replaces the Cilium pods of b's nodes: their UIDs are recorded, they are
// deleted, and every node that still exists must get a new ready pod.
func (x *execution) restartCiliumOn(ctx context.Context, b *KprBatch, step func(string) error) error {
	if b.Step != BatchRestarting && b.Step != BatchUndoing || len(b.OldPods) == 0 {
		uids, err := x.d.ciliumPodUIDs(ctx, b.Nodes)
		if err != nil {
			return err
		}
		b.OldPods = uids
		if b.Step != BatchUndoing {
			if err := step(BatchRestarting); err != nil {
				return err
			}
		} else if err := x.st.save(ctx, x.p, nil); err != nil {
			return err
		}
	}
	if err := x.d.deletePods(ctx, x.d.cfg.CiliumNamespace, b.OldPods); err != nil {
		return err
	}
	if err := x.d.waitCiliumReplaced(ctx, b.Nodes, b.OldPods); err != nil {
		return err
	}
	b.OldPods = nil
	if b.Step == BatchUndoing {
		return x.st.save(ctx, x.p, nil)
	}
	return step(BatchRestarted)
}

// excludeMoved gives each parked DaemonSet (those that exist) a node affinity that excludes
// nodes labelled KprMovedLabel, recording its affinity before.
func (x *execution) excludeMoved(ctx context.Context) error {
	for _, ref := range profile.ParkedDaemonSets(x.a.GetProfile()) {
		ds, err := x.d.cs.AppsV1().DaemonSets(ref.GetNamespace()).Get(ctx, ref.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(x.p.KprExcluded, func(e ExcludedDaemonSet) bool { return e.Namespace == ref.GetNamespace() && e.Name == ref.GetName() }) {
			orig, ok := ds.Annotations[KprAffinityAnnotation]
			if !ok && ds.Spec.Template.Spec.Affinity != nil {
				raw, _ := json.Marshal(ds.Spec.Template.Spec.Affinity)
				orig = string(raw)
			}
			x.p.KprExcluded = append(x.p.KprExcluded, ExcludedDaemonSet{Namespace: ref.GetNamespace(), Name: ref.GetName(), Affinity: orig})
			if err := x.st.save(ctx, x.p, nil); err != nil {
				return err
			}
		}
		if excludes(ds) {
			continue
		}
		orig, _ := json.Marshal(ds.Spec.Template.Spec.Affinity)
		if ds.Spec.Template.Spec.Affinity == nil {
			orig = nil
		}
		aff := withExclusion(ds.Spec.Template.Spec.Affinity)
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"annotations": map[string]string{KprAffinityAnnotation: string(orig)}},
			"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"affinity": aff}}},
		})
		if _, err := x.d.cs.AppsV1().DaemonSets(ref.GetNamespace()).Patch(ctx, ref.GetName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
			return fmt.Errorf("exclude moved nodes from %s/%s: %w", ref.GetNamespace(), ref.GetName(), err)
		}
		x.log.Info("kept off moved nodes", "daemonset", ref.GetNamespace()+"/"+ref.GetName())
	}
	return nil
}

// restoreExcluded puts back the affinity of each excluded DaemonSet once no batch is left.
func (x *execution) restoreExcluded(ctx context.Context) error {
	if len(x.p.KprBatches) > 0 || len(x.p.KprExcluded) == 0 {
		return nil
	}
	for len(x.p.KprExcluded) > 0 {
		e := x.p.KprExcluded[0]
		var aff any // JSON null removes the affinity
		if e.Affinity != "" {
			aff = json.RawMessage(e.Affinity)
		}
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{KprAffinityAnnotation: nil}},
			"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"affinity": aff}}},
		})
		_, err := x.d.cs.AppsV1().DaemonSets(e.Namespace).Patch(ctx, e.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("restore the affinity of %s/%s: %w", e.Namespace, e.Name, err)
		}
		x.log.Info("node exclusion removed", "daemonset", e.Namespace+"/"+e.Name)
		x.p.KprExcluded = x.p.KprExcluded[1:]
		if err := x.st.save(ctx, x.p, nil); err != nil {
			return err
		}
	}
	return nil
}

// undoBatches moves back, newest first, every batch match selects: the moved label comes off
// and the parked DaemonSets are waited for on its nodes, then the node config is deleted, the
// batch label removed and the nodes' Cilium pods recreated. The affinity of the parked
// DaemonSets goes with the last batch.
func (x *execution) undoBatches(ctx context.Context, match func(b *KprBatch) bool) ([]string, error) {
	var undone []string
	for i := len(x.p.KprBatches) - 1; i >= 0; i-- {
		b := &x.p.KprBatches[i]
		if !match(b) {
			continue
		}
		if b.Step != BatchUndoing {
			b.Step = BatchUndoing
			if err := x.st.save(ctx, x.p, nil); err != nil {
				return undone, err
			}
		}
		x.log.Info("moving node batch back", "batch", describeBatch(b))
		if err := x.d.unlabelNodes(ctx, b.Nodes, KprMovedLabel); err != nil {
			return undone, err
		}
		for _, e := range x.p.KprExcluded {
			if err := x.d.waitPods(ctx, e.Namespace, e.Name, b.Nodes, "ready", true); err != nil {
				return undone, err
			}
		}
		if err := x.after(ctx, UndoMovedBack); err != nil {
			return undone, err
		}
		if err := x.d.deleteNodeConfig(ctx, b.Key); err != nil {
			return undone, err
		}
		if err := x.d.unlabelNodes(ctx, b.Nodes, KprBatchLabel); err != nil {
			return undone, err
		}
		if err := x.after(ctx, UndoUnconfigured); err != nil {
			return undone, err
		}
		if err := x.restartCiliumOn(ctx, b, nil); err != nil {
			return undone, err
		}
		if err := x.after(ctx, UndoRestarted); err != nil {
			return undone, err
		}
		undone = append(undone, describeBatch(b))
		rid := b.RolloutID
		x.p.KprBatches = slices.Delete(x.p.KprBatches, i, i+1)
		if !slices.ContainsFunc(x.p.KprBatches, func(o KprBatch) bool { return o.RolloutID == rid }) {
			delete(x.p.KprPlans, rid)
		}
		if err := x.st.save(ctx, x.p, nil); err != nil {
			return undone, err
		}
	}
	return undone, x.restoreExcluded(ctx)
}

// verifyBatches checks every moved batch: its node config holds the node-level keys, its
// nodes (those that exist) carry both labels, and no pod of a parked DaemonSet runs there.
func (x *execution) verifyBatches(ctx context.Context) error {
	want := profile.KprNodeConfig(x.a.GetProfile())
	for _, b := range x.p.KprBatches {
		if b.RolloutID != x.a.GetRolloutId() || b.Step != BatchMoved {
			continue
		}
		u, err := x.d.dyn.Resource(cncResource).Namespace(x.d.cfg.CiliumNamespace).Get(ctx, cncName(b.Key), metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("%s: CiliumNodeConfig %s: %w", describeBatch(&b), cncName(b.Key), err)
		}
		got, _, _ := unstructured.NestedStringMap(u.Object, "spec", "defaults")
		if diff := diffConfig(got, want); len(diff) > 0 {
			return fmt.Errorf("%s: CiliumNodeConfig %s does not hold the kpr values: %s", describeBatch(&b), cncName(b.Key), strings.Join(diff, ", "))
		}
		for _, n := range b.Nodes {
			node, err := x.d.cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			if node.Labels[KprBatchLabel] != b.Key || node.Labels[KprMovedLabel] != "true" {
				return fmt.Errorf("%s: node %s lost its kpr labels", describeBatch(&b), n)
			}
		}
		for _, e := range x.p.KprExcluded {
			if err := x.d.waitPods(ctx, e.Namespace, e.Name, b.Nodes, "gone", false); err != nil {
				return err
			}
		}
	}
	return nil
}
