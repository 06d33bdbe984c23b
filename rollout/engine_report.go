package rollout

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/judge"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// Report is one agent report: a phase status (ReportPhaseStatus) or measurements only
// (ReportMeasurement, Status UNSPECIFIED).
type Report struct {
	Ref     *ebbflowv1.ReportRef
	Status  ebbflowv1.PhaseStatus
	Message string
	// ReportTime is the agent's own clock.
	ReportTime            time.Time
	HelmBefore, HelmAfter int32
	Preflight             []string
	Measurements          []*ebbflowv1.Measurement
	// KprBatch is the node batch a report on a node-by-node kpr phase is about
	// (ReportPhaseStatusRequest.kpr_batch); nil otherwise.
	KprBatch *ebbflowv1.KprBatchStatus
}

// Ingest applies one agent report. It is refused (accepted false, with the reason of Match)
// when the rollout is over, the cluster is not in the rollout, the report names another
// assignment id, another profile revision or another phase, the cluster is not applying,
// measuring or rolling back on an active assignment, or the report's kpr batch does not fit the
// assignment (see matchKprBatch). It never mutates r. An accepted report
// changes the reporting cluster's record only: the next rollout shares every other record and
// its header with r (update_time included; see Diff).
func Ingest(r *ebbflowv1.Rollout, rep Report, now time.Time) (next *ebbflowv1.Rollout, events []*ebbflowv1.RolloutEvent, accepted bool, reason string) {
	return IngestAt(r, -1, -1, rep, now)
}

// IngestAt is Ingest with a hint: the reported cluster's record is expected at
// r.Waves[wave].Clusters[index] (slice positions, as in ClusterChange). A hint that is out of
// range or names another cluster is ignored and the record is found by name, as Ingest does.
func IngestAt(r *ebbflowv1.Rollout, wave, index int, rep Report, now time.Time) (next *ebbflowv1.Rollout, events []*ebbflowv1.RolloutEvent, accepted bool, reason string) {
	ch, events, ok, why := IngestRecord(r, wave, index, rep, now)
	if !ok {
		return r, nil, false, why
	}
	e := &recorder{now: now, actor: ControllerActor}
	n := e.begin(r)
	if !proto.Equal(ch.Old, ch.New) {
		wv := n.Waves[ch.Wave]
		wv.Clusters = slices.Clone(wv.Clusters)
		wv.Clusters[ch.Index] = ch.New
	}
	return n, events, true, ""
}

// RecordChange is the one record an accepted report changes: the record at
// r.Waves[Wave].Clusters[Index] was Old and becomes New.
type RecordChange struct {
	Wave, Index int
	Old, New    *ebbflowv1.RolloutCluster
}

// IngestRecord decides a report as IngestAt does but returns only the record it changes, for a
// caller that keeps its own working copy of r (a batch of reports decided one after the other):
// putting ch.New at r.Waves[ch.Wave].Clusters[ch.Index] turns r into IngestAt's next. It never
// mutates r, and it copies nothing but the one record, where IngestAt also copies the reporting
// wave's slice of records (80 KB at 10,000 clusters) for every report.
func IngestRecord(r *ebbflowv1.Rollout, wave, index int, rep Report, now time.Time) (ch RecordChange, events []*ebbflowv1.RolloutEvent, accepted bool, reason string) {
	w, i := locate(r, rep.Ref.GetCluster(), wave, index)
	if why := match(r, rep, w, i); why != "" {
		return RecordChange{}, nil, false, why
	}
	e := &recorder{now: now, actor: ControllerActor}
	old := r.Waves[w].Clusters[i]
	c := proto.Clone(old).(*ebbflowv1.RolloutCluster)
	ingest(r, r.Waves[w].Index, c, rep, now, e) // ingest reads the header, writes only c
	return RecordChange{Wave: w, Index: i, Old: old, New: c}, e.events, true, ""
}

// Match checks a report against the rollout: empty when Ingest would accept it, else the
// reason it refuses it.
func Match(r *ebbflowv1.Rollout, rep Report) string {
	w, i := locate(r, rep.Ref.GetCluster(), -1, -1)
	return match(r, rep, w, i)
}

// match is Match with the reported cluster's record at r.Waves[w].Clusters[i] (-1 when the
// cluster is not in the rollout).
func match(r *ebbflowv1.Rollout, rep Report, w, i int) string {
	ref := rep.Ref
	if r == nil {
		return "no rollout"
	}
	if Terminal(r.GetState()) {
		return fmt.Sprintf("rollout %s is %s", r.GetId(), stateName(r.GetState()))
	}
	if ref == nil {
		return "report names no assignment"
	}
	var c *ebbflowv1.RolloutCluster
	if w >= 0 {
		c = r.GetWaves()[w].GetClusters()[i]
	}
	switch {
	case c == nil:
		return fmt.Sprintf("cluster %q is not in rollout %s", ref.GetCluster(), r.GetId())
	case ref.GetAssignmentId() != c.GetAssignmentId():
		return fmt.Sprintf("report for assignment %q; the current assignment of %s is %q", ref.GetAssignmentId(), c.GetCluster(), c.GetAssignmentId())
	case ref.GetProfileRevision() != r.GetProfileRevision():
		return fmt.Sprintf("report for profile revision %d; rollout %s runs revision %d", ref.GetProfileRevision(), r.GetId(), r.GetProfileRevision())
	case !expectsReports(c):
		return fmt.Sprintf("cluster %s is %s with no active assignment; not applying, measuring or rolling back", c.GetCluster(), stateName(c.GetState()))
	case ref.GetPhase() != c.GetPhase() && !(c.GetAction() == aRollback && ref.GetPhase() == phNone):
		return fmt.Sprintf("report for phase %s; assignment %s is for phase %s", profile.PhaseName(ref.GetPhase()), c.GetAssignmentId(), profile.PhaseName(c.GetPhase()))
	}
	return matchKprBatch(c, rep)
}

func ingest(n *ebbflowv1.Rollout, wave int32, c *ebbflowv1.RolloutCluster, rep Report, now time.Time, e *recorder) {
	if c.PreRolloutHelmRevision == 0 && rep.HelmBefore > 0 {
		c.PreRolloutHelmRevision = rep.HelmBefore
	}
	if !rep.ReportTime.IsZero() {
		c.LastReportTime = timestamppb.New(rep.ReportTime)
	}
	if rep.Status != ebbflowv1.PhaseStatus_PHASE_STATUS_UNSPECIFIED {
		c.LastStatus = rep.Status
	}
	status := strings.TrimPrefix(rep.Status.String(), "PHASE_STATUS_")
	detail := ""
	if rep.Message != "" {
		detail = ": " + rep.Message
	}

	if c.State == cRollingBack {
		switch rep.Status {
		case ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK:
			if inKprBatch(c) {
				c.State, c.Action = cRolledBack, aIdle
				c.Reason = kprRolledBackReason(c)
				e.add("rolled-back", wave, c.Cluster, c.Phase, "%s%s", c.Reason, detail)
				return
			}
			c.State, c.Action = cRolledBack, aIdle
			c.Reason = cmp.Or(c.Reason, "rolled back") + fmt.Sprintf("; rolled back to helm revision %d", c.PreRolloutHelmRevision)
			e.add("rolled-back", wave, c.Cluster, c.Phase, "rolled back to helm revision %d%s", c.PreRolloutHelmRevision, detail)
		case ebbflowv1.PhaseStatus_PHASE_STATUS_FAILED:
			c.State, c.Action = cFailed, aIdle
			c.Reason = "rollback failed" + detail
			e.add("fail", wave, c.Cluster, c.Phase, "%s", c.Reason)
		default:
			e.add("report", wave, c.Cluster, c.Phase, "rollback %s%s", status, detail)
		}
		return
	}

	res := result(c, c.Phase)
	if res == nil {
		res = &ebbflowv1.PhaseResult{Phase: c.Phase}
		c.Results = append(c.Results, res)
	}
	for _, m := range rep.Measurements {
		if m != nil {
			res.Measurements = append(res.Measurements, StoredMeasurement(m))
		}
	}
	storeKprBatch(res, rep.KprBatch)
	name := phaseLabel(c)
	if nodes := rep.KprBatch.GetNodes(); len(nodes) > 0 && rep.Status != ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED {
		detail += fmt.Sprintf(" (nodes %s)", someNodes(nodes))
	}
	switch rep.Status {
	case ebbflowv1.PhaseStatus_PHASE_STATUS_UNSPECIFIED:
		e.add("report", wave, c.Cluster, c.Phase, "%s: %d measurements", name, len(rep.Measurements))
	case ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED, ebbflowv1.PhaseStatus_PHASE_STATUS_APPLIED:
		e.add("report", wave, c.Cluster, c.Phase, "%s %s%s", name, status, detail)
	case ebbflowv1.PhaseStatus_PHASE_STATUS_VERIFIED:
		c.State, res.Verified = cMeasuring, true
		e.add("report", wave, c.Cluster, c.Phase, "%s %s%s", name, status, detail)
	case ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED:
		res.Verified = true
		if !rep.ReportTime.IsZero() {
			res.ReportTime = timestamppb.New(rep.ReportTime)
		}
		if res.Window == 0 {
			// A later window's assignment only measures: the phase's revisions are the first's.
			res.HelmRevisionBefore, res.HelmRevisionAfter = rep.HelmBefore, rep.HelmAfter
		}
		e.add("report", wave, c.Cluster, c.Phase, "%s %s%s", name, status, detail)
		judgePhase(n, wave, c, res, now, e)
	case ebbflowv1.PhaseStatus_PHASE_STATUS_FAILED:
		failCluster(n, wave, c, fmt.Sprintf("phase %s failed%s", name, detail), now, e)
	case ebbflowv1.PhaseStatus_PHASE_STATUS_PREFLIGHT_FAILED:
		why := cmp.Or(strings.Join(rep.Preflight, "; "), rep.Message, "no reason given")
		if inKprBatch(c) && c.KprBatch > 1 {
			// Earlier batches moved nodes: the phase cannot be held as if nothing changed.
			failCluster(n, wave, c, fmt.Sprintf("agent preflight for %s failed: %s", name, why), now, e)
			return
		}
		// The agent changed nothing: hold this phase and, as Plan does, every later one.
		c.Results = slices.DeleteFunc(c.Results, func(r *ebbflowv1.PhaseResult) bool { return r.Phase == c.Phase })
		i := slices.Index(c.Phases, c.Phase)
		var held []string
		for _, p := range c.Phases[max(i, 0):] {
			if !slices.Contains(c.HeldPhases, p) {
				c.HeldPhases = append(c.HeldPhases, p)
				held = append(held, profile.PhaseName(p))
			}
		}
		c.HeldReason = strings.Join(slices.DeleteFunc([]string{c.HeldReason, "agent preflight for " + name + ": " + why}, func(s string) bool { return s == "" }), "; ")
		e.add("report", wave, c.Cluster, c.Phase, "preflight failed on the cluster for %s: %s; held %s", name, why, strings.Join(held, ", "))
		passCluster(n, wave, c, now, e)
	case ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK:
		c.State, c.Action = cRolledBack, aIdle
		c.Reason = "the agent rolled back during phase " + name + detail
		e.add("rolled-back", wave, c.Cluster, c.Phase, "%s", c.Reason)
	default:
		e.add("report", wave, c.Cluster, c.Phase, "%s unknown status %d", name, rep.Status)
	}
}

// StoredMeasurement is a measurement as the controller stores it: a clone with its latency
// distribution computed from everything the agent sent (judge.Distribution; it outlives the
// raw samples, which are dropped once the phase is judged) and at most MaxStoredSamples raw
// samples kept, taken at evenly spaced positions; the summary stays as the agent sent it.
func StoredMeasurement(m *ebbflowv1.Measurement) *ebbflowv1.Measurement {
	out := proto.Clone(m).(*ebbflowv1.Measurement)
	out.Distribution = judge.Distribution(m)
	if n := len(out.SamplesMs); n > MaxStoredSamples {
		kept := make([]float64, MaxStoredSamples)
		for i := range kept {
			kept[i] = out.SamplesMs[i*n/MaxStoredSamples]
		}
		out.SamplesMs = kept
	}
	return out
}

// judgePhase decides a measured phase: the baseline just passes; every other phase is judged
// against the baseline under its budget, on all of its measurement windows so far. While the
// budgeted percentiles are undecided and the budget allows another window, the cluster measures
// again (a new assignment for the same phase, see measureAgain) and the verdict waits.
func judgePhase(n *ebbflowv1.Rollout, wave int32, c *ebbflowv1.RolloutCluster, res *ebbflowv1.PhaseResult, now time.Time, e *recorder) {
	name := phaseLabel(c)
	cand, err := judge.SamplesFrom(res.Measurements)
	res.Latency = summarize(cand.LatencyMs, res.Measurements)
	budget := judge.BudgetFrom(budgetFor(n.GetSpec(), c.Phase))
	window := int(res.Window) + 1
	res.Window, res.MaxWindows = int32(window), int32(budget.MaxWindows)
	if c.Phase == phBaseline && err == nil {
		res.MaxWindows = 1
		res.Verdict = ebbflowv1.Verdict_VERDICT_PASS
		res.Reason = fmt.Sprintf("baseline: %d samples, p50 %.3f ms, p99 %.3f ms", len(cand.LatencyMs), res.Latency.GetP50Ms(), res.Latency.GetP99Ms())
		e.add("verdict", wave, c.Cluster, c.Phase, "%s: PASS", res.Reason)
		passCluster(n, wave, c, now, e)
		return
	}
	if err != nil {
		res.Verdict, res.PValue = ebbflowv1.Verdict_VERDICT_INCONCLUSIVE, 1
		res.Reason = "invalid measurement: " + err.Error()
	} else {
		var base judge.Sample
		if b := result(c, phBaseline); b != nil {
			base, err = judge.SamplesFrom(b.Measurements)
		}
		jr := judge.JudgeWindow(base, cand, budget, window)
		res.Verdict, res.Reason = jr.Verdict, jr.Reason
		res.P50DeltaPercent, res.P99DeltaPercent, res.P999DeltaPercent = jr.P50DeltaPct, jr.P99DeltaPct, jr.P999DeltaPct
		res.ThroughputDeltaPercent, res.PValue = jr.ThroughputDeltaPct, jr.PValue
		res.Percentiles = judge.PercentilesProto(jr.Percentiles)
		switch {
		case err != nil:
			res.Verdict = ebbflowv1.Verdict_VERDICT_INCONCLUSIVE
			res.Reason = "invalid baseline measurement: " + err.Error()
		case jr.MeasureAgain:
			res.Verdict = ebbflowv1.Verdict_VERDICT_UNSPECIFIED
			e.add("verdict", wave, c.Cluster, c.Phase, "%s: window %d/%d undecided: %s", name, window, budget.MaxWindows, res.Reason)
			measureAgain(n, wave, c, window+1, budget.MaxWindows, now, e)
			return
		}
	}
	e.add("verdict", wave, c.Cluster, c.Phase, "%s: p50 %+.1f%%, p99 %+.1f%% (p=%.4g), window %d/%d: %s: %s",
		name, res.P50DeltaPercent, res.P99DeltaPercent, res.PValue, window, budget.MaxWindows, stateName(res.Verdict), res.Reason)
	if strings.HasPrefix(c.Reason, "measuring window ") {
		c.Reason = ""
	}
	switch res.Verdict {
	case ebbflowv1.Verdict_VERDICT_PASS:
		passCluster(n, wave, c, now, e)
	case ebbflowv1.Verdict_VERDICT_REGRESSION:
		failCluster(n, wave, c, fmt.Sprintf("regression in %s: %s", name, res.Reason), now, e)
	default:
		why := fmt.Sprintf("inconclusive in %s: %s", name, res.Reason)
		if budget := budgetFor(n.GetSpec(), c.Phase); budget.GetOnInconclusive() == ebbflowv1.InconclusivePolicy_INCONCLUSIVE_POLICY_WAIT_FOR_APPROVAL {
			c.State, c.Reason = cWaiting, why+"; waiting for approval"
			return
		}
		failCluster(n, wave, c, why, now, e)
	}
}

// measureAgain gives c a new assignment for the phase it is in: measure window (of max) again.
// The agent changes nothing on the cluster for it: it verifies the phase's values, measures
// with the same probes and reports MEASURED (Assignment.measure_window above 1).
func measureAgain(n *ebbflowv1.Rollout, wave int32, c *ebbflowv1.RolloutCluster, window, max int, now time.Time, e *recorder) {
	newAssignment(n, c, now)
	c.Action, c.State = aApply, cMeasuring
	c.Reason = fmt.Sprintf("measuring window %d/%d", window, max)
	e.add("assign", wave, c.Cluster, c.Phase, "measure phase %s again, window %d/%d (assignment %s)",
		phaseLabel(c), window, max, c.AssignmentId)
}

// summarize is the latency summary of pooled samples, with the measurements' error counts.
func summarize(lat []float64, ms []*ebbflowv1.Measurement) *ebbflowv1.LatencySummary {
	var errs int64
	for _, m := range ms {
		errs += m.GetLatency().GetErrors()
	}
	if len(lat) == 0 && errs == 0 {
		return nil
	}
	s := &ebbflowv1.LatencySummary{Count: int64(len(lat)), Errors: errs}
	if len(lat) == 0 {
		return s
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	sum := 0.0
	for _, v := range sorted {
		sum += v
	}
	s.P50Ms, s.P90Ms = judge.Percentile(sorted, 0.50), judge.Percentile(sorted, 0.90)
	s.P99Ms, s.P999Ms = judge.Percentile(sorted, 0.99), judge.Percentile(sorted, 0.999)
	s.MeanMs, s.MinMs, s.MaxMs = sum/float64(len(sorted)), sorted[0], sorted[len(sorted)-1]
	return s
}
