package cluster

// This file is over 500 lines on purpose: the apply and rollback step machines, one step per
// case in applyOrder and rollbackOrder, read top to bottom like the crash-resume test drives them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/release"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// The steps of each flow, in order. The progress records the last one completed.
var (
	applyOrder = []string{StepStarted, StepPreflight, StepUpgrading, StepUpgraded, StepRestarted,
		StepPolicies, StepParked, StepApplied, StepVerified, StepMeasured, StepDone}
	rollbackOrder = []string{StepStarted, StepUnparked, StepRollingBack, StepRolledBack,
		StepRestarted, StepVerified, StepDone}
)

// execution is one run of one assignment's flow.
type execution struct {
	d     *Driver
	st    *progressStore
	p     *Progress
	a     *ebbflowv1.Assignment
	r     Reporter
	rel   releaseRef
	ref   *ebbflowv1.ReportRef
	log   *slog.Logger
	order []string

	reportErr error
}

// reached reports whether the recorded progress is at or past step.
func (x *execution) reached(step string) bool {
	return slices.Index(x.order, x.p.Step) >= slices.Index(x.order, step)
}

// record saves step as done and calls the AfterStep hook.
func (x *execution) record(ctx context.Context, step string) error {
	x.p.Step = step
	if err := x.st.save(ctx, x.p, nil); err != nil {
		return err
	}
	return x.after(ctx, step)
}

func (x *execution) after(ctx context.Context, step string) error {
	if h := x.d.cfg.AfterStep; h != nil {
		if err := h(step); err != nil {
			return fmt.Errorf("%w after step %s: %w", ErrStopped, step, err)
		}
	}
	return ctx.Err()
}

// status reports a phase status; a failed report is logged and remembered, never fatal.
func (x *execution) status(ctx context.Context, st ebbflowv1.PhaseStatus, msg string) {
	rep := StatusReport{Status: st, Message: msg, HelmBefore: x.p.HelmBefore, HelmAfter: x.p.HelmAfter,
		Preflight: x.p.Preflight, KprBatch: batchStatus(x.p, x.a)}
	if err := x.r.Status(ctx, x.ref, rep); err != nil {
		x.log.Warn("status report failed", "status", st.String(), "err", err)
		x.reportErr = errors.Join(x.reportErr, err)
	}
}

// finish records the final status, then reports it.
func (x *execution) finish(ctx context.Context, st ebbflowv1.PhaseStatus, msg string) error {
	x.p.Done, x.p.Status, x.p.Message, x.p.Step = true, st.String(), msg, StepDone
	if err := x.st.save(ctx, x.p, nil); err != nil {
		return err
	}
	x.log.Info("assignment done", "status", st.String(), "message", msg, "helmBefore", x.p.HelmBefore, "helmAfter", x.p.HelmAfter)
	x.status(ctx, st, msg)
	return x.after(ctx, StepDone)
}

// description tags the Helm revision an apply creates, so a restarted agent recognises it.
func (x *execution) description() string {
	return fmt.Sprintf("ebbflow: %s phase, assignment %s", profile.PhaseName(x.a.GetPhase()), x.a.GetId())
}

// apply runs (or resumes) an APPLY: preflight, upgrade, restart and wait, policies (l7),
// parking (kpr), verify, measure. It takes the steps of applyOrder in turn, running each one
// the progress has not reached, and ends with StepDone (finish).
func (x *execution) apply(ctx context.Context) error {
	spec := x.a.GetProfile()
	phase := x.a.GetPhase()
	for _, step := range applyOrder {
		if step == StepDone {
			break
		}
		if !x.reached(step) {
			if end, err := x.applyStep(ctx, step); end || err != nil {
				return err
			}
		}
		if step == StepStarted && (spec == nil || !slices.Contains(profile.AllPhases(), phase)) {
			return x.fail(ctx, errors.New("the assignment carries no profile or no known phase"))
		}
	}
	msg := fmt.Sprintf("verified and measured with %d probes", len(x.a.GetProbes().GetProbes()))
	if b := x.currentBatch(); b != nil {
		if err := x.noteGone(ctx, b); err != nil {
			return err
		}
		msg = describeBatch(b) + ": " + msg
		if len(b.Skipped) > 0 {
			msg += "; not moved: " + strings.Join(b.Skipped, "; ")
		}
	}
	return x.finish(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED, msg)
}

// applyStep runs one step of an APPLY that the progress has not reached. It reports true when
// the flow ended there (the step failed, or the preflight did): apply then returns the error,
// nil included.
func (x *execution) applyStep(ctx context.Context, step string) (bool, error) {
	spec := x.a.GetProfile()
	phase := x.a.GetPhase()
	switch step {
	case StepStarted:
		x.status(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED, "")
		return false, x.record(ctx, StepStarted)
	case StepPreflight:
		if x.rel.namespace != x.d.cfg.CiliumNamespace {
			// The release is the profile's; cilium-config, the cilium DaemonSet, the node
			// configs and the pods this agent restarts are in its own Cilium namespace. Both must
			// be one namespace, or the agent would upgrade one Cilium and check another.
			reason := fmt.Sprintf("chart namespace %q (the profile's chart.namespace) is not the namespace this agent manages Cilium in, %q (its --cilium-namespace)", x.rel.namespace, x.d.cfg.CiliumNamespace)
			x.p.Preflight = []string{reason}
			return true, x.finish(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_PREFLIGHT_FAILED,
				fmt.Sprintf("preflight of %s failed: %s", profile.PhaseName(phase), reason))
		}
		inv, err := x.d.inventory(ctx, x.rel)
		if err != nil {
			return true, x.fail(ctx, fmt.Errorf("inventory: %w", err))
		}
		if x.p.RolloutID != "" && inv.GetHelmRevision() > 0 {
			if x.p.PreRollout == nil {
				x.p.PreRollout = map[string]int32{}
			}
			if _, ok := x.p.PreRollout[x.p.RolloutID]; !ok {
				x.p.PreRollout[x.p.RolloutID] = inv.GetHelmRevision()
			}
		}
		x.p.HelmBefore, x.p.HelmAfter = inv.GetHelmRevision(), inv.GetHelmRevision()
		checks := profile.Preflight(spec, phase, inv)
		if ok, reasons := profile.PassesFor(spec, checks); !ok {
			x.p.Preflight = reasons
			return true, x.finish(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_PREFLIGHT_FAILED,
				fmt.Sprintf("preflight of %s failed: %s", profile.PhaseName(phase), strings.Join(reasons, "; ")))
		}
		return false, x.record(ctx, StepPreflight)
	case StepUpgrading:
		// Nothing to run: upgrade records StepUpgrading (write-ahead) on its way to StepUpgraded.
		return false, nil
	case StepUpgraded:
		if err := x.upgrade(ctx); err != nil {
			return true, x.fail(ctx, err)
		}
		return false, nil
	case StepRestarted:
		if err := x.d.settle(ctx, x.p, x.a.GetId()); err != nil {
			return true, x.fail(ctx, err)
		}
		return false, x.record(ctx, StepRestarted)
	case StepPolicies:
		if phase == ebbflowv1.Phase_PHASE_L7 {
			if err := x.applyPolicies(ctx); err != nil {
				return true, x.fail(ctx, err)
			}
		}
		return false, x.record(ctx, StepPolicies)
	case StepParked:
		switch {
		case x.nodeByNodeKpr():
			if err := x.moveBatch(ctx); err != nil {
				return true, x.fail(ctx, err)
			}
		case phase == ebbflowv1.Phase_PHASE_KPR:
			if err := x.parkAll(ctx); err != nil {
				return true, x.fail(ctx, err)
			}
		}
		return false, x.record(ctx, StepParked)
	case StepApplied:
		msg := fmt.Sprintf("Helm revision %d -> %d", x.p.HelmBefore, x.p.HelmAfter)
		if b := x.currentBatch(); b != nil {
			msg += "; " + describeBatch(b)
		}
		x.status(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_APPLIED, msg)
		return false, x.record(ctx, StepApplied)
	case StepVerified:
		if err := x.verifyApply(ctx); err != nil {
			return true, x.fail(ctx, err)
		}
		x.status(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_VERIFIED, "cilium-config verified and the cilium DaemonSet rolled out")
		return false, x.record(ctx, StepVerified)
	case StepMeasured:
		ms, err := x.d.measure(ctx, x.a.GetProbes())
		if err != nil {
			return true, x.fail(ctx, fmt.Errorf("measure: %w", err))
		}
		if err := x.d.saveMeasurements(ctx, x.a.GetId(), ms); err != nil {
			x.log.Warn("keeping the measurements for re-reporting failed", "err", err)
		}
		if len(ms) > 0 {
			if err := x.r.Measurements(ctx, x.ref, ms); err != nil {
				x.log.Warn("measurement report failed", "err", err)
				x.reportErr = errors.Join(x.reportErr, err)
			}
		}
		return false, x.record(ctx, StepMeasured)
	}
	return true, fmt.Errorf("cluster: apply: step %q has no action", step)
}

// upgrade runs the Helm upgrade of the phase once: the revision before it is recorded first
// (write-ahead), and a restarted agent that finds a revision tagged with this assignment knows
// the upgrade happened.
func (x *execution) upgrade(ctx context.Context) error {
	if x.p.Step == StepUpgrading {
		last, err := x.d.lastRelease(x.rel)
		if err != nil {
			return err
		}
		if int32(last.Version) > x.p.HelmBefore {
			if last.Info != nil && last.Info.Description == x.description() && last.Info.Status == release.StatusDeployed {
				x.p.HelmAfter = int32(last.Version)
				return x.record(ctx, StepUpgraded)
			}
			st := release.StatusUnknown
			if last.Info != nil {
				st = last.Info.Status
			}
			return fmt.Errorf("the agent stopped during the Helm upgrade: revision %d is %s", last.Version, st)
		}
	} else {
		last, err := x.d.lastRelease(x.rel)
		if err != nil {
			return err
		}
		x.p.HelmBefore, x.p.HelmAfter = int32(last.Version), int32(last.Version)
		if x.p.ConfigBefore, x.p.CiliumGeneration, err = x.d.ciliumState(ctx); err != nil {
			return err
		}
		if err := x.record(ctx, StepUpgrading); err != nil {
			return err
		}
	}
	cur, err := x.d.lastRelease(x.rel)
	if err != nil {
		return err
	}
	if cur.Info != nil && cur.Info.Status.IsPending() {
		return fmt.Errorf("release %s revision %d is %s: another Helm operation is in progress", x.rel, cur.Version, cur.Info.Status)
	}
	deployed := ""
	if cur.Chart != nil && cur.Chart.Metadata != nil {
		deployed = cur.Chart.Metadata.Version
	}
	ch, err := x.d.cfg.Chart.LoadChart(ctx, x.a.GetProfile().GetChart(), deployed)
	if err != nil {
		return err
	}
	values := profile.HelmValues(profile.HelmPhaseValues(x.a.GetProfile(), x.a.GetPhase()))
	vals := mergeValues(cur.Config, values)
	if ch.Metadata.Version == deployed && sameValues(vals, cur.Config) {
		x.log.Info("the release already has the phase's values; no upgrade", "revision", cur.Version)
	} else {
		x.log.Info("helm upgrade", "release", x.rel.String(), "chart", ch.Metadata.Version, "from", cur.Version)
		rel, err := x.d.upgrade(ctx, x.rel, ch, vals, x.description())
		if err != nil {
			return err
		}
		x.p.HelmAfter = int32(rel.Version)
	}
	return x.record(ctx, StepUpgraded)
}

// applyPolicies server-side applies the l7 phase's policies, each recorded before it is applied.
func (x *execution) applyPolicies(ctx context.Context) error {
	l7 := x.a.GetProfile().GetL7()
	objs, err := x.d.policyObjects(l7.GetPolicies(), l7.GetNamespaces())
	if err != nil {
		return err
	}
	for _, u := range objs {
		o := AppliedObject{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(),
			HelmBefore: x.p.HelmBefore, AssignmentID: x.a.GetId()}
		if !slices.ContainsFunc(x.p.Policies, func(p AppliedObject) bool { return sameObject(p, o) }) {
			x.p.Policies = append(x.p.Policies, o)
			if err := x.st.save(ctx, x.p, nil); err != nil {
				return err
			}
		}
		if err := x.d.applyObject(ctx, u, x.a.GetId()); err != nil {
			return err
		}
	}
	return nil
}

func sameObject(a, b AppliedObject) bool {
	return a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Namespace == b.Namespace && a.Name == b.Name
}

// parkAll parks the profile's DaemonSets (those that exist), each recorded with its original
// nodeSelector before it is patched, then waits until none has a pod left.
func (x *execution) parkAll(ctx context.Context) error {
	var parked []*ebbflowv1.DaemonSetRef
	for _, ref := range profile.ParkedDaemonSets(x.a.GetProfile()) {
		ds, err := x.d.cs.AppsV1().DaemonSets(ref.GetNamespace()).Get(ctx, ref.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			x.log.Info("nothing to park", "daemonset", ref.GetNamespace()+"/"+ref.GetName())
			continue
		}
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(x.p.Parked, func(p ParkedDaemonSet) bool { return p.Namespace == ref.GetNamespace() && p.Name == ref.GetName() }) {
			orig := maps.Clone(ds.Spec.Template.Spec.NodeSelector)
			if s, ok := ds.Annotations[ParkedAnnotation]; ok { // parked before, record lost: trust the DaemonSet
				orig = nil
				_ = json.Unmarshal([]byte(s), &orig)
			}
			x.p.Parked = append(x.p.Parked, ParkedDaemonSet{Namespace: ref.GetNamespace(), Name: ref.GetName(),
				NodeSelector: orig, HelmBefore: x.p.HelmBefore, AssignmentID: x.a.GetId()})
			if err := x.st.save(ctx, x.p, nil); err != nil {
				return err
			}
		}
		if err := x.d.park(ctx, ref.GetNamespace(), ref.GetName()); err != nil {
			return fmt.Errorf("park %s/%s: %w", ref.GetNamespace(), ref.GetName(), err)
		}
		x.log.Info("parked", "daemonset", ref.GetNamespace()+"/"+ref.GetName())
		parked = append(parked, ref)
	}
	for _, ref := range parked {
		if err := x.d.waitDaemonSet(ctx, ref.GetNamespace(), ref.GetName(), "parked", dsParked); err != nil {
			return err
		}
	}
	return nil
}

// verifyApply waits for the Cilium DaemonSet and checks cilium-config against the values of
// every phase up to this one.
func (x *execution) verifyApply(ctx context.Context) error {
	if err := x.d.waitDaemonSet(ctx, x.d.cfg.CiliumNamespace, ciliumDaemonSet, "rolled out", dsRolledOut); err != nil {
		return err
	}
	want := profile.ExpectedConfig(profile.HelmPhaseValues(x.a.GetProfile(), x.a.GetPhase()))
	got, err := x.d.ciliumConfig(ctx)
	if err != nil {
		return err
	}
	if diff := diffConfig(got, want); len(diff) > 0 {
		return fmt.Errorf("cilium-config does not hold the applied values: %s", strings.Join(diff, ", "))
	}
	if err := x.verifyBatches(ctx); err != nil {
		return err
	}
	for _, pd := range x.p.Parked {
		ds, err := x.d.cs.AppsV1().DaemonSets(pd.Namespace).Get(ctx, pd.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if _, ok := ds.Spec.Template.Spec.NodeSelector[ParkLabel]; !ok || !dsParked(ds) {
			return fmt.Errorf("DaemonSet %s/%s is no longer parked (%s)", pd.Namespace, pd.Name, dsStatus(ds))
		}
	}
	return nil
}

// fail handles an error of an apply step: unless the driver must stop, it undoes the step
// (un-park and delete what it parked and applied, roll Helm back to the revision before it,
// wait), then records and reports FAILED and returns the cause.
func (x *execution) fail(ctx context.Context, cause error) error {
	if isStop(ctx, cause) {
		return cause
	}
	x.log.Error("phase failed; rolling the step back", "err", cause)
	msg := cause.Error()
	if err := x.undo(ctx, func(assignment string, _ int32) bool { return assignment == x.a.GetId() }, x.p.HelmBefore, x.a.GetId()+"/undo"); err != nil {
		if isStop(ctx, err) {
			return err
		}
		msg += "; undoing the step failed: " + err.Error()
	} else if x.p.HelmBefore > 0 {
		msg += fmt.Sprintf("; rolled back to Helm revision %d", x.p.HelmBefore)
	}
	if err := x.finish(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_FAILED, msg); err != nil {
		return err
	}
	return fmt.Errorf("cluster: %s: %w", profile.PhaseName(x.a.GetPhase()), cause)
}

// undo un-parks (and waits for) the recorded DaemonSets and deletes the recorded objects that
// match, then rolls the release back to revision unless it is already there, and settles.
func (x *execution) undo(ctx context.Context, match func(assignment string, helmBefore int32) bool, revision int32, restartID string) error {
	if err := x.undoOutsideHelm(ctx, match); err != nil {
		return err
	}
	if revision <= 0 {
		return nil
	}
	last, err := x.d.lastRelease(x.rel)
	if err != nil {
		return err
	}
	if int32(last.Version) == revision && last.Info != nil && last.Info.Status == release.StatusDeployed {
		return x.d.waitDaemonSet(ctx, x.d.cfg.CiliumNamespace, ciliumDaemonSet, "rolled out", dsRolledOut)
	}
	if x.p.ConfigBefore, x.p.CiliumGeneration, err = x.d.ciliumState(ctx); err != nil {
		return err
	}
	if err := x.d.rollback(x.rel, int(revision)); err != nil {
		return err
	}
	if last, err = x.d.lastRelease(x.rel); err != nil {
		return err
	}
	x.p.HelmAfter = int32(last.Version)
	return x.d.settle(ctx, x.p, restartID)
}

// undoOutsideHelm un-parks the matching parked DaemonSets, waits until they are ready, and
// deletes the matching applied objects; each leaves the record only once it is undone.
func (x *execution) undoOutsideHelm(ctx context.Context, match func(assignment string, helmBefore int32) bool) error {
	if _, err := x.undoBatches(ctx, func(b *KprBatch) bool { return match(b.AssignmentID, b.HelmBefore) }); err != nil {
		return fmt.Errorf("move kpr node batches back: %w", err)
	}
	var keep []ParkedDaemonSet
	var unparked []ParkedDaemonSet
	for _, pd := range x.p.Parked {
		if !match(pd.AssignmentID, pd.HelmBefore) {
			keep = append(keep, pd)
			continue
		}
		changed, err := x.d.unpark(ctx, pd.Namespace, pd.Name)
		if err != nil {
			return fmt.Errorf("un-park %s/%s: %w", pd.Namespace, pd.Name, err)
		}
		if changed {
			x.log.Info("un-parked", "daemonset", pd.Namespace+"/"+pd.Name)
		}
		unparked = append(unparked, pd)
	}
	for _, pd := range unparked {
		err := x.d.waitDaemonSet(ctx, pd.Namespace, pd.Name, "ready", dsReady)
		if err != nil && !strings.Contains(err.Error(), "was deleted") {
			if _, gerr := x.d.cs.AppsV1().DaemonSets(pd.Namespace).Get(ctx, pd.Name, metav1.GetOptions{}); !apierrors.IsNotFound(gerr) {
				return err
			}
		}
	}
	if len(unparked) > 0 {
		x.p.Parked = keep
		if err := x.st.save(ctx, x.p, nil); err != nil {
			return err
		}
	}
	var keepObjs []AppliedObject
	deleted := false
	for _, o := range x.p.Policies {
		if !match(o.AssignmentID, o.HelmBefore) {
			keepObjs = append(keepObjs, o)
			continue
		}
		if err := x.d.deleteObject(ctx, o); err != nil {
			return err
		}
		deleted = true
	}
	if deleted {
		x.p.Policies = keepObjs
		if err := x.st.save(ctx, x.p, nil); err != nil {
			return err
		}
	}
	return nil
}

// rollback runs (or resumes) a ROLLBACK: un-park and delete what was done at or after the
// target revision, `helm rollback`, restart and wait, and verify that cilium-config is the one
// the target revision rendered.
func (x *execution) rollback(ctx context.Context) error {
	if from := x.a.GetRollbackKprBatchesFrom(); from > 0 {
		return x.rollbackBatches(ctx, int(from))
	}
	target := x.a.GetRollbackToHelmRevision()
	if target <= 0 {
		target = x.p.PreRollout[x.a.GetRolloutId()]
	}
	x.p.RollbackTo = target
	for _, step := range rollbackOrder {
		if step == StepDone {
			break
		}
		if !x.reached(step) {
			if end, err := x.rollbackStep(ctx, step, target); end || err != nil {
				return err
			}
		}
		if step == StepStarted && target <= 0 {
			return x.rollbackFailed(ctx, errors.New("no Helm revision to roll back to: the assignment names none and no pre-rollout revision is recorded"))
		}
	}
	return x.finish(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK, fmt.Sprintf("rolled back to Helm revision %d", target))
}

// rollbackStep runs one step of a ROLLBACK that the progress has not reached. It reports true
// when the flow ended there (the step failed): rollback then returns the error.
func (x *execution) rollbackStep(ctx context.Context, step string, target int32) (bool, error) {
	var err error
	switch step {
	case StepStarted:
		x.status(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED, fmt.Sprintf("rolling back to Helm revision %d", target))
	case StepUnparked:
		err = x.undoOutsideHelm(ctx, func(_ string, helmBefore int32) bool { return helmBefore >= target })
	case StepRollingBack:
		return false, nil // helmRollback records it with StepRolledBack
	case StepRolledBack:
		if err := x.helmRollback(ctx, target); err != nil {
			return true, x.rollbackFailed(ctx, err)
		}
		return false, nil // recorded by helmRollback
	case StepRestarted:
		err = x.d.settle(ctx, x.p, x.a.GetId())
	case StepVerified:
		err = x.verifyRollback(ctx, target)
	default:
		return true, fmt.Errorf("rollback: unknown step %q", step)
	}
	if err != nil {
		return true, x.rollbackFailed(ctx, err)
	}
	if err := x.record(ctx, step); err != nil {
		return true, err
	}
	return false, nil
}

func (x *execution) helmRollback(ctx context.Context, target int32) error {
	want := fmt.Sprintf("Rollback to %d", target)
	last, err := x.d.lastRelease(x.rel)
	if err != nil {
		return err
	}
	if x.p.Step == StepRollingBack {
		if int32(last.Version) > x.p.HelmBefore && last.Info != nil && last.Info.Description == want && last.Info.Status == release.StatusDeployed {
			x.p.HelmAfter = int32(last.Version)
			return x.record(ctx, StepRolledBack)
		}
	} else {
		x.p.HelmBefore, x.p.HelmAfter = int32(last.Version), int32(last.Version)
		if x.p.ConfigBefore, x.p.CiliumGeneration, err = x.d.ciliumState(ctx); err != nil {
			return err
		}
		if err := x.record(ctx, StepRollingBack); err != nil {
			return err
		}
	}
	if int32(last.Version) == target && last.Info != nil && last.Info.Status == release.StatusDeployed {
		x.log.Info("the release is at the target revision already", "revision", target)
	} else {
		x.log.Info("helm rollback", "release", x.rel.String(), "from", last.Version, "to", target)
		if err := x.d.rollback(x.rel, int(target)); err != nil {
			return err
		}
		if last, err = x.d.lastRelease(x.rel); err != nil {
			return err
		}
		x.p.HelmAfter = int32(last.Version)
	}
	return x.record(ctx, StepRolledBack)
}

// verifyRollback checks that cilium-config holds exactly what the target revision rendered.
func (x *execution) verifyRollback(ctx context.Context, target int32) error {
	if err := x.d.waitDaemonSet(ctx, x.d.cfg.CiliumNamespace, ciliumDaemonSet, "rolled out", dsRolledOut); err != nil {
		return err
	}
	hs, err := x.d.history(x.rel)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(hs, func(r *release.Release) bool { return r.Version == int(target) })
	if i < 0 {
		return fmt.Errorf("release %s has no revision %d", x.rel, target)
	}
	want, ok := manifestConfigMap(hs[i].Manifest, ciliumConfigMap)
	if !ok {
		return nil // the chart does not render cilium-config: nothing to compare
	}
	got, err := x.d.ciliumConfig(ctx)
	if err != nil {
		return err
	}
	diff := diffConfig(got, want)
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diff = append(diff, fmt.Sprintf("%s=%q (not in revision %d)", k, got[k], target))
		}
	}
	if len(diff) > 0 {
		return fmt.Errorf("cilium-config is not back to revision %d: %s", target, strings.Join(diff, ", "))
	}
	return nil
}

// rollbackBatches runs (or resumes) a ROLLBACK of a node-by-node kpr phase's batches from
// `from` on: they are moved back, newest first; Helm and the earlier batches stay.
func (x *execution) rollbackBatches(ctx context.Context, from int) error {
	rid := x.a.GetRolloutId()
	if !x.reached(StepStarted) {
		x.status(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED, fmt.Sprintf("moving kpr batches %d and later back", from))
		if err := x.record(ctx, StepStarted); err != nil {
			return err
		}
	}
	if !x.reached(StepUnparked) {
		undone, err := x.undoBatches(ctx, func(b *KprBatch) bool { return b.RolloutID == rid && b.Batch >= from })
		if err != nil {
			return x.rollbackFailed(ctx, err)
		}
		x.p.Message = strings.Join(undone, "; ")
		if err := x.record(ctx, StepUnparked); err != nil {
			return err
		}
	}
	if last, err := x.d.lastRelease(x.rel); err == nil {
		x.p.HelmBefore, x.p.HelmAfter = int32(last.Version), int32(last.Version)
	}
	msg := fmt.Sprintf("kpr batches %d and later moved back", from)
	if x.p.Message != "" {
		msg += " (" + x.p.Message + ")"
	}
	var kept []string
	for i := range x.p.KprBatches {
		if b := &x.p.KprBatches[i]; b.RolloutID == rid {
			kept = append(kept, describeBatch(b))
		}
	}
	if len(kept) > 0 {
		msg += "; kept with kube-proxy replacement: " + strings.Join(kept, "; ")
	}
	msg += fmt.Sprintf("; Helm left at revision %d", x.p.HelmAfter)
	return x.finish(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK, msg)
}

func (x *execution) rollbackFailed(ctx context.Context, cause error) error {
	if isStop(ctx, cause) {
		return cause
	}
	x.log.Error("rollback failed", "err", cause)
	if err := x.finish(ctx, ebbflowv1.PhaseStatus_PHASE_STATUS_FAILED, "rollback failed: "+cause.Error()); err != nil {
		return err
	}
	return fmt.Errorf("cluster: rollback: %w", cause)
}
