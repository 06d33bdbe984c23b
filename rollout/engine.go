package rollout

// This file is over 500 lines on purpose: Step's state machine (waves, gates, clusters,
// timeouts, whole-wave rollback) reads in one place, in the order Step runs it; reports are
// decided in engine_report.go.

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// The engine is the rollout state machine. It is pure: every function takes the rollout and the
// time, never mutates its input, and returns the next rollout with the events that explain the
// change; the next rollout shares the records it did not change with the input (copy-on-write,
// see recorder.go). The controller stores the change (Diff) and the events in one write.

// ErrInvalidAction wraps every refused manual action.
var ErrInvalidAction = errors.New("invalid action")

const (
	// ControllerActor is the actor of the engine's own decisions.
	ControllerActor = "controller"
	// DefaultPhaseTimeout is how long a cluster may stay silent on its assignment when the spec
	// sets no phase_timeout.
	DefaultPhaseTimeout = 10 * time.Minute
	// MaxStoredSamples caps the raw samples kept per measurement in a PhaseResult.
	MaxStoredSamples = 5000
	// NoWave is the wave index of events that concern the whole rollout.
	NoWave = -1
)

// Short aliases for the enums the engine switches on.
const (
	rPending  = ebbflowv1.RolloutState_ROLLOUT_STATE_PENDING
	rRunning  = ebbflowv1.RolloutState_ROLLOUT_STATE_RUNNING
	rPaused   = ebbflowv1.RolloutState_ROLLOUT_STATE_PAUSED
	rWaiting  = ebbflowv1.RolloutState_ROLLOUT_STATE_WAITING_FOR_APPROVAL
	rSucceed  = ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED
	rFailed   = ebbflowv1.RolloutState_ROLLOUT_STATE_FAILED
	rAborted  = ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED
	rRollback = ebbflowv1.RolloutState_ROLLOUT_STATE_ROLLING_BACK
	rRolled   = ebbflowv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK

	wPending     = ebbflowv1.WaveState_WAVE_STATE_PENDING
	wWaiting     = ebbflowv1.WaveState_WAVE_STATE_WAITING_FOR_APPROVAL
	wProgressing = ebbflowv1.WaveState_WAVE_STATE_PROGRESSING
	wSoaking     = ebbflowv1.WaveState_WAVE_STATE_SOAKING
	wSucceeded   = ebbflowv1.WaveState_WAVE_STATE_SUCCEEDED
	wFailed      = ebbflowv1.WaveState_WAVE_STATE_FAILED
	wRolledBack  = ebbflowv1.WaveState_WAVE_STATE_ROLLED_BACK

	cPending     = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_PENDING
	cApplying    = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_APPLYING
	cMeasuring   = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_MEASURING
	cWaiting     = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_WAITING_FOR_APPROVAL
	cSucceeded   = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SUCCEEDED
	cFailed      = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_FAILED
	cRollingBack = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLING_BACK
	cRolledBack  = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK
	cSkipped     = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SKIPPED
	cUnknown     = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_UNKNOWN

	aIdle     = ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_IDLE
	aApply    = ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY
	aRollback = ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK

	phBaseline = ebbflowv1.Phase_PHASE_BASELINE
	phNone     = ebbflowv1.Phase_PHASE_UNSPECIFIED
)

// Terminal reports whether a rollout in state s is over: SUCCEEDED, FAILED, ABORTED or
// ROLLED_BACK.
func Terminal(s ebbflowv1.RolloutState) bool {
	switch s {
	case rSucceed, rFailed, rAborted, rRolled:
		return true
	}
	return false
}

// HeldClusters lists the clusters a non-terminal rollout holds: every cluster of its waves that
// is not skipped, in wave order. A terminal rollout holds none.
func HeldClusters(r *ebbflowv1.Rollout) []string {
	if r == nil || Terminal(r.GetState()) {
		return nil
	}
	var out []string
	for _, w := range r.GetWaves() {
		for _, c := range w.GetClusters() {
			if c.GetState() != cSkipped {
				out = append(out, c.GetCluster())
			}
		}
	}
	return out
}

// Empty says why rollout r would change nothing on any cluster: every cluster its plan selected
// is skipped (cordoned, matching no wave; Rollout.skipped) or SKIPPED in its wave because
// preflight holds every phase. It is "" when some cluster has a phase to run. The reason names
// up to three clusters with theirs, e.g. `the plan changes nothing on any of 2 clusters: eu-1:
// matches no wave; eu-2: every phase held: kernel 5.4 < 5.10`.
func Empty(r *ebbflowv1.Rollout) string {
	if len(HeldClusters(r)) > 0 {
		return ""
	}
	var reasons []string
	n := 0
	note := func(cluster, why string) {
		n++
		if len(reasons) < 3 {
			var parts []string // a held reason repeats itself phase by phase
			for p := range strings.SplitSeq(why, "; ") {
				if !slices.Contains(parts, p) {
					parts = append(parts, p)
				}
			}
			reasons = append(reasons, cluster+": "+strings.Join(parts, "; "))
		}
	}
	for _, w := range r.GetWaves() {
		for _, c := range w.GetClusters() {
			note(c.GetCluster(), cmp.Or(c.GetReason(), c.GetHeldReason(), "skipped"))
		}
	}
	for _, s := range r.GetSkipped() {
		note(s.GetCluster(), s.GetReason())
	}
	if n == 0 {
		return "the plan selects no cluster"
	}
	more := ""
	if n > len(reasons) {
		more = fmt.Sprintf("; and %d more", n-len(reasons))
	}
	return fmt.Sprintf("the plan changes nothing on any of %d clusters: %s%s", n, strings.Join(reasons, "; "), more)
}

// New builds a rollout from its spec: the waves of PlanWaves with each cluster's preflight
// (Plan) snapshotted into phases, held_phases and held_reason. A cluster whose every phase is
// held is in its wave as SKIPPED; clusters cordoned or matching no wave are in Rollout.skipped.
// The rollout starts PENDING with one "create" event.
func New(id string, spec Spec, prof *ebbflowv1.Profile, clusters []*ebbflowv1.Cluster, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	if id == "" {
		return nil, nil, fmt.Errorf("%w: rollout id is empty", ErrInvalidAction)
	}
	plan, err := Plan(spec, prof, clusters)
	if err != nil {
		return nil, nil, err
	}
	r := &ebbflowv1.Rollout{
		Id:              id,
		Spec:            proto.Clone(spec.RolloutSpec).(*ebbflowv1.RolloutSpec),
		ProfileRevision: prof.GetRevision(),
		State:           rPending,
		Skipped:         plan.Skipped,
		CreateTime:      timestamppb.New(now),
		UpdateTime:      timestamppb.New(now),
		CreatedBy:       actor,
		Message:         "created",
	}
	total := 0
	for _, wp := range plan.Waves {
		w := &ebbflowv1.Wave{Index: int32(wp.Index), Name: wp.Name, State: wPending}
		if wp.Gates != nil {
			w.Gates = proto.Clone(wp.Gates).(*ebbflowv1.WaveGates)
		}
		for _, cp := range wp.Clusters {
			rc := &ebbflowv1.RolloutCluster{
				Cluster:    cp.GetCluster(),
				State:      cPending,
				Action:     aIdle,
				Phases:     slices.Clone(cp.GetPhases()),
				HeldPhases: slices.Clone(cp.GetHeldPhases()),
			}
			if len(rc.HeldPhases) > 0 {
				_, reasons := profile.PassesFor(prof.GetSpec(), cp.GetChecks())
				rc.HeldReason = strings.Join(reasons, "; ")
			}
			if profile.NodeByNode(prof.GetSpec()) && slices.Contains(rc.Phases, phKpr) {
				rc.KprBatch = 1 // the kpr phase runs in node batches, from the first
			}
			if len(rc.Phases) == 0 {
				rc.State = cSkipped
				rc.Reason = "preflight held every phase: " + rc.HeldReason
			}
			w.Clusters = append(w.Clusters, rc)
			total++
		}
		r.Waves = append(r.Waves, w)
	}
	e := &recorder{now: now, actor: actor}
	e.add("create", NoWave, "", phNone, "rollout of profile %s revision %d: %d waves, %d clusters, %d skipped",
		prof.GetName(), prof.GetRevision(), len(r.Waves), total, len(r.Skipped))
	return r, e.events, nil
}

// World is what Step sees of the outside: the time and the cluster registry.
type World struct {
	Now time.Time
	// Clusters is the current registry by name; a missing name means the cluster was deleted.
	// Used when Lookup is nil.
	Clusters map[string]*ebbflowv1.Cluster
	// Lookup, when set, replaces Clusters: it returns the registered cluster of that name, and
	// false when there is none. It lets a caller with its own index skip building a map.
	Lookup func(name string) (*ebbflowv1.Cluster, bool)
}

func (w World) lookup(name string) (*ebbflowv1.Cluster, bool) {
	if w.Lookup != nil {
		return w.Lookup(name)
	}
	c, ok := w.Clusters[name]
	return c, ok
}

// Step decides the next actions of a rollout: start the rollout, skip deleted or cordoned
// clusters, turn silent clusters UNKNOWN, open waves, hand out assignments within
// max_concurrency, fail waves past max_failures, soak and complete waves, and finish the
// rollout. It never mutates r; changed is false (and r is returned) when nothing changed.
// The next rollout shares every record Step left alone with r (see Diff).
func Step(r *ebbflowv1.Rollout, w World) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, bool) {
	if r == nil || Terminal(r.GetState()) {
		return r, nil, false
	}
	e := &recorder{now: w.Now, actor: ControllerActor}
	n := e.begin(r)
	step(n, w, e)
	if !e.done(r, n) {
		return r, nil, false
	}
	return n, e.events, true
}

func step(n *ebbflowv1.Rollout, w World, e *recorder) {
	now := w.Now
	if n.State == rPending {
		n.State = rRunning
		n.Message = "running"
	}
	if d := n.GetSpec().GetProgressDeadline().AsDuration(); d > 0 && n.State != rRollback && now.Sub(n.GetCreateTime().AsTime()) > d {
		msg := fmt.Sprintf("rollout progress deadline %s exceeded", d)
		e.add("timeout", NoWave, "", phNone, "%s", msg)
		halt(n, msg, false, e)
		finish(n, rFailed, msg, e)
		return
	}
	checkRegistry(n, w, e)
	checkSilence(n, now, e)
	switch n.State {
	case rRollback:
		finishRollback(n, e)
	case rRunning, rWaiting:
		advance(n, now, e)
	}
}

// checkRegistry skips clusters, pending or in flight, that were deleted or cordoned.
func checkRegistry(n *ebbflowv1.Rollout, w World, e *recorder) {
	for _, wv := range n.Waves {
		for i, c := range wv.Clusters {
			switch c.State {
			case cPending, cApplying, cMeasuring, cWaiting:
			default:
				continue
			}
			reg, ok := w.lookup(c.Cluster)
			var reason string
			switch {
			case !ok || reg == nil:
				reason = "deleted from the registry"
			case reg.GetCordoned():
				reason = "cordoned: " + cmp.Or(reg.GetCordonReason(), "no reason given")
			default:
				continue
			}
			was := stateName(c.State)
			c = e.own(wv, i)
			c.State, c.Action, c.Reason = cSkipped, aIdle, reason
			e.add("skip", wv.Index, c.Cluster, c.Phase, "skipped while %s: %s", was, reason)
		}
	}
}

// lastActivity is the later of the current assignment's start and the latest report.
func lastActivity(c *ebbflowv1.RolloutCluster) time.Time {
	t := c.GetPhaseStartTime().AsTime()
	if lr := c.GetLastReportTime(); lr != nil && lr.AsTime().After(t) {
		t = lr.AsTime()
	}
	return t
}

func phaseTimeout(spec *ebbflowv1.RolloutSpec) time.Duration {
	if d := spec.GetPhaseTimeout().AsDuration(); d > 0 {
		return d
	}
	return DefaultPhaseTimeout
}

// checkSilence turns clusters that have not reported within the phase timeout UNKNOWN.
func checkSilence(n *ebbflowv1.Rollout, now time.Time, e *recorder) {
	timeout := phaseTimeout(n.GetSpec())
	for _, wv := range n.Waves {
		for i, c := range wv.Clusters {
			if !expectsReports(c) {
				continue
			}
			last := lastActivity(c)
			if now.Sub(last) <= timeout {
				continue
			}
			c = e.own(wv, i)
			what := "phase " + profile.PhaseName(c.Phase)
			if c.Action == aRollback {
				what = "rollback"
			}
			c.Reason = fmt.Sprintf("no report for %s on %s (phase timeout %s)", now.Sub(last), what, timeout)
			c.State, c.Action = cUnknown, aIdle
			e.add("timeout", wv.Index, c.Cluster, c.Phase, "%s", c.Reason)
		}
	}
}

// expectsReports: the cluster works on an assignment and should report on it.
func expectsReports(c *ebbflowv1.RolloutCluster) bool {
	switch c.State {
	case cApplying, cMeasuring, cRollingBack:
		return c.Action != aIdle
	}
	return false
}

// inFlight: the cluster occupies a concurrency slot of its wave.
func inFlight(c *ebbflowv1.RolloutCluster) bool {
	switch c.State {
	case cApplying, cMeasuring, cWaiting, cRollingBack:
		return true
	case cPending:
		return len(c.Results) > 0 // between two phases
	}
	return false
}

func clusterDone(c *ebbflowv1.RolloutCluster) bool {
	switch c.State {
	case cSucceeded, cFailed, cRolledBack, cUnknown, cSkipped:
		return true
	}
	return false
}

func isFailure(c *ebbflowv1.RolloutCluster) bool {
	switch c.State {
	case cFailed, cRolledBack, cUnknown, cRollingBack:
		return true
	}
	return false
}

// maxFailures is the number of failures a wave of size clusters tolerates.
func maxFailures(g *ebbflowv1.WaveGates, size int) int {
	switch m := g.GetMaxFailures().(type) {
	case *ebbflowv1.WaveGates_MaxFailuresCount:
		return int(m.MaxFailuresCount)
	case *ebbflowv1.WaveGates_MaxFailuresPercent:
		return int(m.MaxFailuresPercent) * size / 100
	}
	return 0
}

func waveFailures(wv *ebbflowv1.Wave) []string {
	var out []string
	for _, c := range wv.Clusters {
		if isFailure(c) {
			out = append(out, fmt.Sprintf("%s %s", c.Cluster, stateName(c.State)))
		}
	}
	return out
}

// advance moves the current wave on, and the next ones while they complete at once.
func advance(n *ebbflowv1.Rollout, now time.Time, e *recorder) {
	for {
		i := slices.IndexFunc(n.Waves, func(w *ebbflowv1.Wave) bool { return w.State != wSucceeded })
		if i < 0 {
			succeed(n, e)
			return
		}
		wv := n.Waves[i]
		switch wv.State {
		case wPending, wWaiting:
			if wv.GetGates().GetRequireApproval() && !wv.Approved {
				msg := fmt.Sprintf("wave %s waits for approval", wv.Name)
				if wv.State != wWaiting {
					wv.State = wWaiting
					e.add("start-wave", wv.Index, "", phNone, "%s before it starts", msg)
				}
				n.State, n.Message = rWaiting, msg
				return
			}
			wv.State, wv.StartTime = wProgressing, timestamppb.New(now)
			n.State, n.Message = rRunning, fmt.Sprintf("wave %s in progress", wv.Name)
			e.add("start-wave", wv.Index, "", phNone, "wave %s started: %d clusters, max concurrency %d, max failures %d",
				wv.Name, len(wv.Clusters), wv.GetGates().GetMaxConcurrency(), maxFailures(wv.GetGates(), len(wv.Clusters)))
		case wProgressing:
			if !progress(n, wv, now, e) {
				return
			}
		case wSoaking:
			end := wv.GetSoakStartTime().AsTime().Add(wv.GetGates().GetSoakTime().AsDuration())
			if now.Before(end) {
				return
			}
			wv.State, wv.EndTime = wSucceeded, timestamppb.New(now)
			msg := fmt.Sprintf("wave %s succeeded", wv.Name)
			if f := waveFailures(wv); len(f) > 0 {
				msg += fmt.Sprintf(" with %d tolerated failures (%s)", len(f), strings.Join(f, ", "))
			}
			e.add("wave-succeeded", wv.Index, "", phNone, "%s", msg)
		default:
			return // FAILED or ROLLED_BACK: the rollout is ending
		}
	}
}

// progress drives a PROGRESSING wave; it reports whether the wave moved on to SOAKING.
func progress(n *ebbflowv1.Rollout, wv *ebbflowv1.Wave, now time.Time, e *recorder) bool {
	if d := wv.GetGates().GetProgressDeadline().AsDuration(); d > 0 && now.Sub(wv.GetStartTime().AsTime()) > d {
		for i, c := range wv.Clusters {
			switch c.State {
			case cPending, cApplying, cMeasuring, cWaiting:
				c = e.own(wv, i)
				c.Reason = fmt.Sprintf("wave progress deadline %s exceeded while %s", d, stateName(c.State))
				c.State, c.Action = cUnknown, aIdle
				e.add("timeout", wv.Index, c.Cluster, c.Phase, "%s", c.Reason)
			}
		}
	}
	failures := waveFailures(wv)
	if limit := maxFailures(wv.GetGates(), len(wv.Clusters)); len(failures) > limit {
		failWave(n, wv, fmt.Sprintf("%d failures (%s) > max failures %d", len(failures), strings.Join(failures, ", "), limit), e)
		return false
	}
	if !slices.ContainsFunc(wv.Clusters, func(c *ebbflowv1.RolloutCluster) bool { return !clusterDone(c) }) {
		var start time.Time
		for _, c := range wv.Clusters {
			for _, res := range c.Results {
				if res.Verdict != ebbflowv1.Verdict_VERDICT_UNSPECIFIED && res.GetReportTime().AsTime().After(start) && res.ReportTime != nil {
					start = res.GetReportTime().AsTime()
				}
			}
		}
		src := "the agents' last measured report"
		if start.IsZero() {
			start, src = now, "no measured report"
		}
		wv.State, wv.SoakStartTime = wSoaking, timestamppb.New(start)
		e.add("soak", wv.Index, "", phNone, "wave %s soaks for %s from %s (%s)",
			wv.Name, wv.GetGates().GetSoakTime().AsDuration(), start.UTC().Format(time.RFC3339), src)
		return true
	}
	// Hand out assignments: clusters between two phases first (they hold a slot), then new ones.
	limit := int(wv.GetGates().GetMaxConcurrency())
	busy := 0
	for _, c := range wv.Clusters {
		if inFlight(c) {
			busy++
		}
	}
	for i, c := range wv.Clusters {
		if c.State == cPending && len(c.Results) > 0 {
			if p, ok := nextPhase(c); ok {
				assign(n, wv.Index, e.own(wv, i), p, now, e)
			}
		}
	}
	for i, c := range wv.Clusters {
		if c.State != cPending || len(c.Results) > 0 {
			continue
		}
		if limit > 0 && busy >= limit {
			break
		}
		if p, ok := nextPhase(c); ok {
			assign(n, wv.Index, e.own(wv, i), p, now, e)
			busy++
		}
	}
	return false
}

// failWave fails a wave: later waves never start, in-flight clusters stop, and under
// ROLLBACK_WAVE every cluster of the wave that changed anything is rolled back in full (one
// whose rollback undid only kpr node batches too).
func failWave(n *ebbflowv1.Rollout, wv *ebbflowv1.Wave, why string, e *recorder) {
	now := e.now
	wv.State, wv.EndTime = wFailed, timestamppb.New(now)
	e.add("wave-failed", wv.Index, "", phNone, "wave %s failed: %s", wv.Name, why)
	msg := fmt.Sprintf("wave %s failed: %s; later waves not started", wv.Name, why)
	halt(n, "halted: "+msg, false, e)
	if n.GetSpec().GetFailurePolicy() == ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_WAVE {
		for i, c := range wv.Clusters {
			if rollbackDue(c) {
				rollbackAssign(n, wv.Index, e.own(wv, i), fmt.Sprintf("wave %s failed", wv.Name), 0, now, e)
			}
		}
	}
	n.State, n.Message = rRollback, msg
	finishRollback(n, e)
}

// finishRollback ends a ROLLING_BACK rollout once no cluster rolls back any more: ROLLED_BACK
// when a wave was rolled back as a whole, else FAILED.
func finishRollback(n *ebbflowv1.Rollout, e *recorder) {
	for _, wv := range n.Waves {
		for _, c := range wv.Clusters {
			if c.State == cRollingBack && c.Action == aRollback {
				return
			}
		}
	}
	end := rFailed
	for _, wv := range n.Waves {
		if wv.State == wFailed && n.GetSpec().GetFailurePolicy() == ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_WAVE {
			wv.State = wRolledBack
			e.add("rolled-back", wv.Index, "", phNone, "wave %s rolled back", wv.Name)
		}
		if wv.State == wRolledBack {
			end = rRolled
		}
	}
	msg := n.Message
	if end == rRolled {
		if rest, ok := strings.CutPrefix(msg, "rolling back "); ok {
			msg = "rolled back " + rest
		} else {
			msg = "rolled back: " + msg
		}
	}
	finish(n, end, msg, e)
}

func finish(n *ebbflowv1.Rollout, s ebbflowv1.RolloutState, msg string, e *recorder) {
	n.State, n.Message, n.EndTime = s, msg, timestamppb.New(e.now)
	kind := map[ebbflowv1.RolloutState]string{rSucceed: "succeeded", rFailed: "failed", rRolled: "rolled-back", rAborted: "abort"}[s]
	e.add(kind, NoWave, "", phNone, "%s", msg)
}

func succeed(n *ebbflowv1.Rollout, e *recorder) {
	var tolerated []string
	for _, wv := range n.Waves {
		tolerated = append(tolerated, waveFailures(wv)...)
	}
	msg := fmt.Sprintf("all %d waves succeeded", len(n.Waves))
	if len(tolerated) > 0 {
		msg += fmt.Sprintf("; %d failures tolerated (%s)", len(tolerated), strings.Join(tolerated, ", "))
	}
	finish(n, rSucceed, msg, e)
}

// halt stops clusters working on an apply assignment (and, with rollbacks, those rolling back):
// their action becomes IDLE and their state stays as it is.
func halt(n *ebbflowv1.Rollout, reason string, rollbacks bool, e *recorder) {
	for _, wv := range n.Waves {
		for i, c := range wv.Clusters {
			stop := false
			switch c.State {
			case cApplying, cMeasuring, cWaiting:
				stop = c.Action == aApply
			case cRollingBack:
				stop = rollbacks
			}
			if stop {
				c = e.own(wv, i)
				c.Action = aIdle
				c.Reason = reason
			}
		}
	}
}

// changed: the cluster was given a phase beyond the baseline that preflight did not hold.
func changed(c *ebbflowv1.RolloutCluster) bool {
	for _, res := range c.Results {
		if res.Phase != phBaseline && !slices.Contains(c.HeldPhases, res.Phase) {
			return true
		}
	}
	return false
}

func nextPhase(c *ebbflowv1.RolloutCluster) (ebbflowv1.Phase, bool) {
	for _, p := range c.Phases {
		if slices.Contains(c.HeldPhases, p) {
			continue
		}
		if res := result(c, p); res != nil && res.Verdict != ebbflowv1.Verdict_VERDICT_UNSPECIFIED {
			continue
		}
		return p, true
	}
	return phNone, false
}

// result is c's result of phase p, the latest when there are several (the node batches of a
// node-by-node kpr phase), or nil.
func result(c *ebbflowv1.RolloutCluster, p ebbflowv1.Phase) *ebbflowv1.PhaseResult {
	for i := len(c.GetResults()) - 1; i >= 0; i-- {
		if res := c.GetResults()[i]; res.GetPhase() == p {
			return res
		}
	}
	return nil
}

func newAssignment(n *ebbflowv1.Rollout, c *ebbflowv1.RolloutCluster, now time.Time) {
	c.AssignmentSeq++
	c.AssignmentId = fmt.Sprintf("%s.%s.%d", n.Id, c.Cluster, c.AssignmentSeq)
	c.PhaseStartTime = timestamppb.New(now)
	c.LastStatus = ebbflowv1.PhaseStatus_PHASE_STATUS_UNSPECIFIED
}

func assign(n *ebbflowv1.Rollout, wave int32, c *ebbflowv1.RolloutCluster, p ebbflowv1.Phase, now time.Time, e *recorder) {
	newAssignment(n, c, now)
	c.Action, c.Phase, c.State, c.Reason = aApply, p, cApplying, ""
	if res := result(c, p); res == nil {
		c.Results = append(c.Results, &ebbflowv1.PhaseResult{Phase: p})
	}
	if inKprBatch(c) {
		c.Reason = phaseLabel(c)
	}
	e.add("assign", wave, c.Cluster, p, "apply phase %s (assignment %s)", phaseLabel(c), c.AssignmentId)
}

// rollbackAssign rolls c back: in full to the pre-rollout Helm revision when fromKprBatch is 0,
// else (c in a kpr node batch) only the node batches from fromKprBatch on.
func rollbackAssign(n *ebbflowv1.Rollout, wave int32, c *ebbflowv1.RolloutCluster, why string, fromKprBatch int32, now time.Time, e *recorder) {
	newAssignment(n, c, now)
	c.Action, c.State = aRollback, cRollingBack
	c.Reason = cmp.Or(c.Reason, why)
	if fromKprBatch > 0 && inKprBatch(c) {
		c.KprBatch = fromKprBatch
		e.add("rollback", wave, c.Cluster, c.Phase, "roll back kpr batches from %d on, earlier batches and the Helm release stay (assignment %s): %s",
			fromKprBatch, c.AssignmentId, why)
		return
	}
	c.KprBatch = 0
	e.add("rollback", wave, c.Cluster, c.Phase, "roll back to helm revision %d (assignment %s): %s",
		c.PreRolloutHelmRevision, c.AssignmentId, why)
}

// failCluster marks a cluster FAILED and, unless the policy is HALT_ONLY or nothing changed,
// rolls it back: in full, but for a kpr node batch under ROLLBACK_FAILED_CLUSTERS (the default),
// where only that batch is undone and the batches that passed before it keep their nodes moved.
func failCluster(n *ebbflowv1.Rollout, wave int32, c *ebbflowv1.RolloutCluster, reason string, now time.Time, e *recorder) {
	c.State, c.Action, c.Reason = cFailed, aIdle, reason
	e.add("fail", wave, c.Cluster, c.Phase, "%s", reason)
	pol := n.GetSpec().GetFailurePolicy()
	if pol == ebbflowv1.FailurePolicy_FAILURE_POLICY_HALT_ONLY || !changed(c) {
		return
	}
	from := int32(0)
	if pol != ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_WAVE && inKprBatch(c) {
		from = c.KprBatch
	}
	rollbackAssign(n, wave, c, reason, from, now, e)
}

// passCluster moves a cluster whose phase passed on: the next kpr node batch when a batch but
// the last passed (nextKprBatch), else the next phase right away while the rollout runs, PENDING between phases while it does not, SUCCEEDED when no phase is left (or
// SKIPPED when preflight held every phase).
func passCluster(n *ebbflowv1.Rollout, wave int32, c *ebbflowv1.RolloutCluster, now time.Time, e *recorder) {
	if nextKprBatch(n, wave, c, now, e) {
		return
	}
	p, ok := nextPhase(c)
	switch {
	case !ok:
		c.Action = aIdle
		done := slices.ContainsFunc(c.Results, func(r *ebbflowv1.PhaseResult) bool {
			return r.Verdict != ebbflowv1.Verdict_VERDICT_UNSPECIFIED
		})
		if done {
			c.State = cSucceeded
			e.add("succeeded", wave, c.Cluster, c.Phase, "cluster %s completed its phases", c.Cluster)
		} else {
			c.State, c.Reason = cSkipped, "preflight held every phase: "+c.HeldReason
			e.add("skip", wave, c.Cluster, c.Phase, "%s", c.Reason)
		}
	case n.State == rRunning:
		assign(n, wave, c, p, now, e)
	default:
		c.State, c.Action = cPending, aIdle
		c.Reason = fmt.Sprintf("phase %s waits: rollout is %s", profile.PhaseName(p), stateName(n.State))
	}
}

func stateName(s interface{ String() string }) string {
	name := s.String()
	for _, pre := range []string{"CLUSTER_ROLLOUT_STATE_", "ROLLOUT_STATE_", "WAVE_STATE_", "VERDICT_"} {
		name = strings.TrimPrefix(name, pre)
	}
	return name
}

// findCluster returns the wave index (Wave.index) and the record of the named cluster, or
// NoWave and nil. For reading only; a decision writes through own (see locate).
func findCluster(r *ebbflowv1.Rollout, name string) (int32, *ebbflowv1.RolloutCluster) {
	if w, i := locate(r, name, -1, -1); w >= 0 {
		wv := r.GetWaves()[w]
		return wv.GetIndex(), wv.GetClusters()[i]
	}
	return NoWave, nil
}

// locate returns the positions (in r.Waves and in that wave's Clusters) of the named
// cluster's record, or -1, -1. The hint (wave, index) is checked first; a hint that names
// another record falls back to a scan of every name.
func locate(r *ebbflowv1.Rollout, name string, wave, index int) (int, int) {
	ws := r.GetWaves()
	if wave >= 0 && wave < len(ws) && index >= 0 && index < len(ws[wave].GetClusters()) &&
		ws[wave].GetClusters()[index].GetCluster() == name {
		return wave, index
	}
	for w, wv := range ws {
		for i, c := range wv.GetClusters() {
			if c.GetCluster() == name {
				return w, i
			}
		}
	}
	return -1, -1
}

// budgetFor is the phase's own budget, else the one for every phase (phase unspecified), else nil.
func budgetFor(spec *ebbflowv1.RolloutSpec, p ebbflowv1.Phase) *ebbflowv1.RegressionBudget {
	var all *ebbflowv1.RegressionBudget
	for _, b := range spec.GetBudgets() {
		switch b.GetPhase() {
		case p:
			return b
		case phNone:
			all = b
		}
	}
	return all
}
