package profile

// Node-by-node kube-proxy replacement: which values go through Helm and which into the per-node
// config, and how a cluster's nodes are cut into batches.
//
// Worked example: a profile with kpr {mode: node-by-node, batches: {canaryNodes: 1,
// batchPercent: 50}, values: {kubeProxyReplacement: true, k8sServiceHost: api.internal,
// k8sServicePort: 6443}} on a cluster of nodes n-01..n-06, where n-03's kernel is older than
// kube-proxy replacement needs:
//   - the kpr Helm upgrade sets only k8sServiceHost and k8sServicePort (HelmPhaseValues);
//   - each batch's CiliumNodeConfig carries kube-proxy-replacement: "true" (KprNodeConfig);
//   - n-03 is skipped ("n-03: kube-proxy-replacement fails: kernel 4.18 < 5.10"), leaving 5
//     eligible nodes; batch sizes are 1, then ceil(50% of 5) = 3, then the 1 left
//     (KprBatchSizes): batches [n-01] [n-02 n-04 n-05] [n-06] (KprBatchPlan).

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Defaults and limits of KprBatches.
const (
	DefaultKprCanaryNodes  = 1
	DefaultKprBatchPercent = 25
	MaxKprBatchNodes       = 10000
)

// NodeByNode reports whether the profile's kpr phase moves nodes in batches.
func NodeByNode(spec *ebbflowv1.ProfileSpec) bool {
	return spec.GetKpr().GetMode() == ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
}

// clusterScoped are the kpr values that must be in the Helm release before any node moves: every
// node's Cilium needs them to reach the API server without kube-proxy.
var clusterScoped = []string{"k8sServiceHost", "k8sServicePort"}

// HelmPhaseValues is what the phase's Helm upgrade sets: CumulativeValues, except that the kpr
// phase of a node-by-node profile keeps only kpr's cluster-scoped values (k8sServiceHost,
// k8sServicePort); its other values are node-level (KprNodeConfig). Later phases carry every
// value, kpr's included: by then every eligible node has moved.
func HelmPhaseValues(spec *ebbflowv1.ProfileSpec, phase ebbflowv1.Phase) *ebbflowv1.CiliumValues {
	if phase != ebbflowv1.Phase_PHASE_KPR || !NodeByNode(spec) {
		return CumulativeValues(spec, phase)
	}
	out := CumulativeValues(spec, ebbflowv1.Phase_PHASE_L7)
	if kv := PhaseValues(spec, ebbflowv1.Phase_PHASE_KPR); kv != nil {
		m, src := out.ProtoReflect(), kv.ProtoReflect()
		for _, name := range clusterScoped {
			if fd := fieldDesc(name); src.Has(fd) {
				m.Set(fd, src.Get(fd))
			}
		}
	}
	return out
}

// KprNodeConfig is the cilium-config keys a node-by-node kpr batch's CiliumNodeConfig carries:
// those the kpr phase's full values set differently from its Helm values.
func KprNodeConfig(spec *ebbflowv1.ProfileSpec) map[string]string {
	full := ExpectedConfig(CumulativeValues(spec, ebbflowv1.Phase_PHASE_KPR))
	helm := ExpectedConfig(HelmPhaseValues(spec, ebbflowv1.Phase_PHASE_KPR))
	out := map[string]string{}
	for k, v := range full {
		if hv, ok := helm[k]; !ok || hv != v {
			out[k] = v
		}
	}
	return out
}

// KprBatchSizes cuts eligible nodes into batch sizes: the canary batch, then batches of
// batch_nodes or batch_percent of eligible (rounded up), the last one what is left. No
// eligible node gives no batch. b is assumed valid (see checkKpr).
func KprBatchSizes(b *ebbflowv1.KprBatches, eligible int) []int {
	if eligible <= 0 {
		return nil
	}
	if b == nil {
		b = &ebbflowv1.KprBatches{}
	}
	canary := DefaultKprCanaryNodes
	if b.CanaryNodes != nil {
		canary = int(b.GetCanaryNodes())
	}
	size := (eligible*DefaultKprBatchPercent + 99) / 100
	switch {
	case b.BatchNodes != nil:
		size = int(b.GetBatchNodes())
	case b.BatchPercent != nil:
		size = (eligible*int(b.GetBatchPercent()) + 99) / 100
	}
	size = max(size, 1)
	sizes := []int{min(canary, eligible)}
	for left := eligible - sizes[0]; left > 0; left -= size {
		sizes = append(sizes, min(size, left))
	}
	return sizes
}

// KprEligible splits a cluster's nodes for a node-by-node kpr phase: the nodes kpr's per-node
// preflight checks pass, by name, and the others as "name: reason".
func (p *Preflighter) KprEligible(inv *ebbflowv1.Inventory) (eligible, skipped []string) {
	held := map[string][]string{}
	for _, c := range p.Check(ebbflowv1.Phase_PHASE_KPR, inv) {
		if c.GetNode() != "" && c.GetResult() != pass {
			verdict := "fails"
			if c.GetResult() != fail {
				verdict = "unknown"
			}
			held[c.GetNode()] = append(held[c.GetNode()], fmt.Sprintf("%s %s: %s", c.GetFeature(), verdict, c.GetReason()))
		}
	}
	names := make([]string, 0, len(inv.GetNodes()))
	for _, n := range inv.GetNodes() {
		names = append(names, n.GetName())
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		if r, ok := held[n]; ok {
			skipped = append(skipped, n+": "+r[0])
			continue
		}
		eligible = append(eligible, n)
	}
	return eligible, skipped
}

// KprBatchPlan is the batches a node-by-node kpr phase would move on a cluster with inv, in
// order; nil when the profile is not node-by-node. Each batch lists its nodes, the batch count
// and the nodes skipped (on the first batch only).
func (p *Preflighter) KprBatchPlan(inv *ebbflowv1.Inventory) []*ebbflowv1.KprBatchStatus {
	if !NodeByNode(p.spec) {
		return nil
	}
	eligible, skipped := p.KprEligible(inv)
	sizes := KprBatchSizes(p.spec.GetKpr().GetBatches(), len(eligible))
	out := make([]*ebbflowv1.KprBatchStatus, 0, len(sizes))
	moved := 0
	for i, n := range sizes {
		b := &ebbflowv1.KprBatchStatus{Batch: int32(i + 1), Batches: int32(len(sizes)),
			Nodes: slices.Clone(eligible[moved : moved+n]), NodesMovedBefore: int32(moved)}
		if i == 0 {
			b.Skipped = skipped
		}
		moved += n
		out = append(out, b)
	}
	return out
}

// Passes is PhasePasses for this profile: in a node-by-node kpr phase, a node that fails kpr's
// per-node checks holds only that node (it is skipped by the batches), so the phase passes
// when the cluster-wide checks do and at least one node is eligible.
func (p *Preflighter) Passes(checks []*ebbflowv1.PreflightCheck) (bool, []string) {
	if !NodeByNode(p.spec) {
		return PhasePasses(checks)
	}
	var cluster []*ebbflowv1.PreflightCheck
	nodes := map[string]bool{}   // every node checked in the kpr phase
	failing := map[string]bool{} // nodes with a kpr check that did not pass
	var nodeChecks []*ebbflowv1.PreflightCheck
	for _, c := range checks {
		if c.GetPhase() != ebbflowv1.Phase_PHASE_KPR || c.GetNode() == "" {
			cluster = append(cluster, c)
			continue
		}
		nodeChecks = append(nodeChecks, c)
		nodes[c.GetNode()] = true
		if c.GetResult() != pass {
			failing[c.GetNode()] = true
		}
	}
	ok, reasons := PhasePasses(cluster)
	if len(nodes) > 0 && len(failing) == len(nodes) {
		_, nr := PhasePasses(nodeChecks)
		return false, append(reasons, nr...)
	}
	return ok, reasons
}

// PassesFor is Preflighter.Passes of spec.
func PassesFor(spec *ebbflowv1.ProfileSpec, checks []*ebbflowv1.PreflightCheck) (bool, []string) {
	return NewPreflighter(spec).Passes(checks)
}

// checkKprBatches checks the batches of a kpr phase (path is spec.kpr).
func checkKprBatches(c *Issues, kpr *ebbflowv1.KprPhase) {
	b := kpr.GetBatches()
	if b == nil {
		if kpr.GetMode() == ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE {
			if extra := kpr.GetValues().GetExtra(); len(extra) > 0 {
				c.Add("spec.kpr.values.extra", "node-by-node-extra",
					"node-by-node moves typed values with a cilium-config key into each node's config; extra Helm keys (%s) cannot be applied per node: use typed fields or cluster-wide", firstKeys(extra))
			}
		}
		return
	}
	if kpr.GetMode() != ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE {
		c.Add("spec.kpr.batches", "batches-need-node-by-node", "node batches apply only to mode node-by-node; this profile's kpr mode is %s", cmp.Or(kprModeName(kpr.GetMode()), "cluster-wide"))
		return
	}
	if extra := kpr.GetValues().GetExtra(); len(extra) > 0 {
		c.Add("spec.kpr.values.extra", "node-by-node-extra",
			"node-by-node moves typed values with a cilium-config key into each node's config; extra Helm keys (%s) cannot be applied per node: use typed fields or cluster-wide", firstKeys(extra))
	}
	if b.CanaryNodes != nil && (b.GetCanaryNodes() < 1 || b.GetCanaryNodes() > MaxKprBatchNodes) {
		c.Add("spec.kpr.batches.canaryNodes", "range", "must be 1 to %d nodes, got %d", MaxKprBatchNodes, b.GetCanaryNodes())
	}
	if b.BatchNodes != nil && b.BatchPercent != nil {
		c.Add("spec.kpr.batches", "one-of", "set batchNodes or batchPercent, not both")
	}
	if b.BatchNodes != nil && (b.GetBatchNodes() < 1 || b.GetBatchNodes() > MaxKprBatchNodes) {
		c.Add("spec.kpr.batches.batchNodes", "range", "must be 1 to %d nodes, got %d", MaxKprBatchNodes, b.GetBatchNodes())
	}
	if b.BatchPercent != nil && (b.GetBatchPercent() < 1 || b.GetBatchPercent() > 100) {
		c.Add("spec.kpr.batches.batchPercent", "range", "must be 1 to 100 percent, got %d", b.GetBatchPercent())
	}
}

func kprModeName(m ebbflowv1.KprMode) string {
	s, _ := enumShort(m.Descriptor(), m.Number())
	return s
}

func firstKeys[V any](m map[string]V) string {
	ks := slices.Sorted(maps.Keys(m))
	return listSome(ks)
}
