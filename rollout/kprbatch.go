package rollout

// Node-by-node kube-proxy replacement: the kpr phase of a cluster runs as node batches, each
// moved, measured and judged on its own (one PhaseResult per batch), each a new assignment.
//
// The record says it all through RolloutCluster.kpr_batch (see its proto comment):
//   - New sets it to 1 on a cluster whose kpr phase runs node by node (the profile's mode);
//   - with action APPLY in phase kpr it is the batch the agent moves (Assignment.kpr_batch); a
//     passing batch below the last moves it on by one, with a new result and assignment;
//   - with action ROLLBACK in phase kpr it is the first batch the rollback undoes
//     (Assignment.rollback_kpr_batches_from): a failing batch under ROLLBACK_FAILED_CLUSTERS
//     undoes that batch only, the batches before it keep their nodes moved; a rollback of the
//     whole cluster (ROLLBACK_WAVE, a manual rollback) sets it to 0;
//   - a ROLLED_BACK cluster in phase kpr with kpr_batch above 0 was rolled back from that batch
//     only (batchRolledBack), so a wave or manual rollback still rolls it back in full.

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

const phKpr = ebbflowv1.Phase_PHASE_KPR

// inKprBatch: c is in the kpr phase of a node-by-node profile, on batch c.kpr_batch.
func inKprBatch(c *ebbflowv1.RolloutCluster) bool {
	return c.GetPhase() == phKpr && c.GetKprBatch() > 0
}

// batchRolledBack: c is rolling back, or rolled back, only the kpr node batches from
// c.kpr_batch on; the earlier batches, earlier phases and the Helm release stay.
func batchRolledBack(c *ebbflowv1.RolloutCluster) bool {
	return inKprBatch(c) && (c.GetState() == cRollingBack || c.GetState() == cRolledBack)
}

// rollbackDue: a rollback of c's whole wave must roll c back in full: it changed something and
// is neither skipped nor rolled back (or rolling back) in full already.
func rollbackDue(c *ebbflowv1.RolloutCluster) bool {
	switch {
	case !changed(c) || c.GetState() == cSkipped:
		return false
	case c.GetState() == cRollingBack || c.GetState() == cRolledBack:
		return batchRolledBack(c)
	}
	return true
}

// phaseLabel names c's phase for reasons and events: "kpr batch 2/3" (or "kpr batch 1" while
// the batch count is unknown) in a node batch, else the phase's name.
func phaseLabel(c *ebbflowv1.RolloutCluster) string {
	if !inKprBatch(c) {
		return profile.PhaseName(c.GetPhase())
	}
	if n := result(c, phKpr).GetKprBatch().GetBatches(); n > 0 {
		return fmt.Sprintf("kpr batch %d/%d", c.GetKprBatch(), n)
	}
	return fmt.Sprintf("kpr batch %d", c.GetKprBatch())
}

// matchKprBatch checks a report's kpr_batch against c's assignment: "" when it fits. A report
// may name a batch only on a node batch's assignment (its APPLY, or the ROLLBACK of the batches
// from it on), and only that batch, with the batch count the phase's first report gave. A
// MEASURED report of a batch must say how many batches there are, unless an earlier report of
// the batch did: the engine needs it to tell the last batch from the others.
func matchKprBatch(c *ebbflowv1.RolloutCluster, rep Report) string {
	b := rep.KprBatch
	batch := inKprBatch(c) && (c.GetAction() == aApply || c.GetAction() == aRollback)
	if b == nil {
		if batch && c.GetAction() == aApply && rep.Status == ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED && result(c, phKpr).GetKprBatch().GetBatches() == 0 {
			return fmt.Sprintf("MEASURED report without kpr_batch; assignment %s moves kpr batch %d and no report of it said how many batches there are", c.GetAssignmentId(), c.GetKprBatch())
		}
		return ""
	}
	switch first := NthResult(c, phKpr, 0).GetKprBatch(); {
	case !batch:
		return fmt.Sprintf("report names kpr batch %d; assignment %s is not a node batch of a node-by-node kpr phase", b.GetBatch(), c.GetAssignmentId())
	case b.GetBatch() != c.GetKprBatch():
		return fmt.Sprintf("report names kpr batch %d; assignment %s is for kpr batch %d", b.GetBatch(), c.GetAssignmentId(), c.GetKprBatch())
	case b.GetBatch() > b.GetBatches():
		return fmt.Sprintf("report names kpr batch %d of %d", b.GetBatch(), b.GetBatches())
	case first.GetBatches() > 0 && c.GetKprBatch() > 1 && b.GetBatches() != first.GetBatches():
		return fmt.Sprintf("report says the kpr phase has %d batches; batch 1 said %d", b.GetBatches(), first.GetBatches())
	}
	return ""
}

// NthResult is the n-th (from 0) of c's results of phase p, or nil.
func NthResult(c *ebbflowv1.RolloutCluster, p ebbflowv1.Phase, n int) *ebbflowv1.PhaseResult {
	for _, res := range c.GetResults() {
		if res.GetPhase() == p {
			if n == 0 {
				return res
			}
			n--
		}
	}
	return nil
}

// nextKprBatch moves c, whose kpr batch passed, on to the next batch when there is one: a new
// result for it and, while the rollout runs, a new assignment (PENDING until it runs again). It
// reports false when the batch was the phase's last (or c is not in a node batch).
func nextKprBatch(n *ebbflowv1.Rollout, wave int32, c *ebbflowv1.RolloutCluster, now time.Time, e *recorder) bool {
	if !inKprBatch(c) || c.GetAction() == aRollback {
		return false
	}
	done := result(c, phKpr).GetKprBatch()
	if done.GetBatch() != c.GetKprBatch() || done.GetBatch() >= done.GetBatches() {
		return false
	}
	c.KprBatch++
	c.Results = append(c.Results, &ebbflowv1.PhaseResult{Phase: phKpr,
		KprBatch: &ebbflowv1.KprBatchStatus{Batch: c.KprBatch, Batches: done.GetBatches()}})
	if n.State == rRunning {
		assign(n, wave, c, phKpr, now, e)
		return true
	}
	c.State, c.Action = cPending, aIdle
	c.Reason = fmt.Sprintf("%s waits: rollout is %s", phaseLabel(c), stateName(n.State))
	return true
}

// storeKprBatch keeps a report's batch status on the batch's result (the latest report wins).
func storeKprBatch(res *ebbflowv1.PhaseResult, b *ebbflowv1.KprBatchStatus) {
	if b != nil {
		res.KprBatch = proto.Clone(b).(*ebbflowv1.KprBatchStatus)
	}
}

// kprRolledBackReason says what a rollback of the kpr batches from c.kpr_batch on left, e.g.
// "kpr batch 2/3 regressed: batch 2 rolled back; batch 1 (n-01) keeps kube-proxy replacement".
func kprRolledBackReason(c *ebbflowv1.RolloutCluster) string {
	k := int(c.GetKprBatch())
	res := NthResult(c, phKpr, k-1)
	what := "failed"
	switch res.GetVerdict() {
	case ebbflowv1.Verdict_VERDICT_REGRESSION:
		what = "regressed"
	case ebbflowv1.Verdict_VERDICT_INCONCLUSIVE:
		what = "was inconclusive"
	}
	label := fmt.Sprintf("kpr batch %d", k)
	if n := res.GetKprBatch().GetBatches(); n > 0 {
		label += fmt.Sprintf("/%d", n)
	}
	var kept []string
	for i := range k - 1 {
		kept = append(kept, NthResult(c, phKpr, i).GetKprBatch().GetNodes()...)
	}
	var stays string
	switch k {
	case 1:
		stays = "no node keeps kube-proxy replacement (the Helm release and earlier phases stay)"
	case 2:
		stays = fmt.Sprintf("batch 1 (%s) keeps kube-proxy replacement", someNodes(kept))
	default:
		stays = fmt.Sprintf("batches 1-%d (%s) keep kube-proxy replacement", k-1, someNodes(kept))
	}
	return fmt.Sprintf("%s %s: batch %d rolled back; %s", label, what, k, stays)
}

// someNodes lists up to 5 node names, then how many more; "nodes unknown" for none.
func someNodes(nodes []string) string {
	const show = 5
	switch {
	case len(nodes) == 0:
		return "nodes unknown"
	case len(nodes) > show:
		return fmt.Sprintf("%s and %d more", strings.Join(nodes[:show], ", "), len(nodes)-show)
	}
	return strings.Join(nodes, ", ")
}
