package rollout

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/judge"
)

// What an agent is told is derived from the rollout record of its cluster; these are the
// rules, pure, so the controller only looks the record up and attaches the profile spec.

// Idle is the assignment of a cluster that no active rollout holds: action IDLE, no id.
func Idle(cluster string) *ebbflowv1.Assignment {
	return &ebbflowv1.Assignment{Cluster: cluster, Action: aIdle}
}

// Holds reports whether record c of rollout r carries its cluster's current assignment: r is
// not over and c was given an assignment. A cluster is in at most one active rollout, so this
// picks the rollout whose record answers the agent.
func Holds(r *ebbflowv1.Rollout, c *ebbflowv1.RolloutCluster) bool {
	return r != nil && !Terminal(r.GetState()) && c.GetAssignmentId() != ""
}

// AssignmentFor is the assignment record c of rollout r gives its cluster: id, phase and
// action of the record (UNSPECIFIED reads as IDLE), the pinned profile name and revision, the
// probes, the Helm revision to roll back to, issued at the record's phase start with the
// spec's phase_timeout as deadline (none when unset), and for an APPLY the measurement window
// it asks for (the phase result's windows so far plus one) and the budget's most windows
// (1 for the baseline, which is measured once). In a node-by-node kpr phase (see kprbatch.go)
// an APPLY carries the node batch to move (kpr_batch) and a ROLLBACK the first batch it undoes
// (rollback_kpr_batches_from, 0 for the whole cluster). Profile is left nil: the caller attaches
// the pinned revision's spec. When r does not hold c (see Holds), it is Idle. The result
// shares nothing with r or c.
func AssignmentFor(r *ebbflowv1.Rollout, c *ebbflowv1.RolloutCluster) *ebbflowv1.Assignment {
	if !Holds(r, c) {
		return Idle(c.GetCluster())
	}
	spec := r.GetSpec()
	a := &ebbflowv1.Assignment{
		Id:                     c.GetAssignmentId(),
		RolloutId:              r.GetId(),
		Cluster:                c.GetCluster(),
		Action:                 c.GetAction(),
		Phase:                  c.GetPhase(),
		ProfileName:            spec.GetProfile(),
		ProfileRevision:        r.GetProfileRevision(),
		RollbackToHelmRevision: c.GetPreRolloutHelmRevision(),
	}
	if a.Action == ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_UNSPECIFIED {
		a.Action = aIdle
	}
	if a.Action == aApply {
		// The window the phase's result has judged so far, plus this one.
		a.MeasureWindow, a.MaxWindows = result(c, c.GetPhase()).GetWindow()+1, 1
		if c.GetPhase() != phBaseline {
			a.MaxWindows = int32(judge.BudgetFrom(budgetFor(spec, c.GetPhase())).MaxWindows)
		}
	}
	if inKprBatch(c) {
		switch a.Action {
		case aApply:
			a.KprBatch = c.GetKprBatch()
		case aRollback:
			a.RollbackKprBatchesFrom = c.GetKprBatch()
		}
	}
	if p := spec.GetProbes(); p != nil {
		a.Probes = proto.Clone(p).(*ebbflowv1.ProbeSettings)
	}
	// The phase timeout the engine applies, the default included, so the agent sees the same.
	a.Deadline = durationpb.New(phaseTimeout(spec))
	if t := c.GetPhaseStartTime(); t != nil {
		a.IssueTime = proto.Clone(t).(*timestamppb.Timestamp)
	}
	return a
}
