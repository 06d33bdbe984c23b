package rollout

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

var echoProbes = &ebbflowv1.ProbeSettings{Windows: 3, Probes: []*ebbflowv1.ProbeSpec{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://echo", Rate: 100, Duration: durationpb.New(time.Second)}}}

func TestAssignmentFor(t *testing.T) {
	x := start(t, func(s *ebbflowv1.RolloutSpec) {
		s.PhaseTimeout = dur(5 * time.Minute)
		s.Probes = echoProbes
	}, wave(nil, "c1", "c2"))
	x.step()
	x.phase("c1", 200, 1.0)
	x.phase("c1", 200, 1.3) // regression: c1 rolls back to helm revision 7
	x.advance(time.Minute)
	x.report("c2", stStarted)

	apply := AssignmentFor(x.r, x.c("c2"))
	want := &ebbflowv1.Assignment{
		Id: "r1.c2.1", RolloutId: "r1", Cluster: "c2", Action: aApply, Phase: baseline,
		ProfileName: "eks", ProfileRevision: 3, Probes: echoProbes, RollbackToHelmRevision: 7,
		Deadline: dur(5 * time.Minute), IssueTime: timestamppb.New(t0),
		MeasureWindow: 1, MaxWindows: 1, // the baseline is measured once
	}
	if !proto.Equal(apply, want) {
		t.Fatalf("apply\n got %v\nwant %v", apply, want)
	}
	if apply.Probes == x.r.GetSpec().GetProbes() || apply.IssueTime == x.c("c2").GetPhaseStartTime() || apply.Deadline == x.r.GetSpec().GetPhaseTimeout() {
		t.Fatal("the assignment shares messages with the rollout")
	}
	if apply.GetProfile() != nil {
		t.Fatal("the profile spec is the caller's to attach")
	}

	back := AssignmentFor(x.r, x.c("c1"))
	if back.GetAction() != aRollback || back.GetId() != "r1.c1.3" || back.GetRollbackToHelmRevision() != 7 || back.GetPhase() != kpr || back.GetMeasureWindow() != 0 {
		t.Fatalf("rollback %v", back)
	}

	unspecified := proto.Clone(x.c("c2")).(*ebbflowv1.RolloutCluster)
	unspecified.Action = ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_UNSPECIFIED
	if a := AssignmentFor(x.r, unspecified); a.GetAction() != aIdle || a.GetId() != "r1.c2.1" {
		t.Fatalf("unspecified action %v", a)
	}

	noTimeout := proto.Clone(x.r).(*ebbflowv1.Rollout)
	noTimeout.Spec.PhaseTimeout = nil
	// Without a phase timeout the assignment carries the default the engine applies.
	if a := AssignmentFor(noTimeout, x.c("c2")); a.GetDeadline().AsDuration() != DefaultPhaseTimeout {
		t.Fatalf("deadline %v without a phase timeout, want the default %s", a.GetDeadline(), DefaultPhaseTimeout)
	}

	over := proto.Clone(x.r).(*ebbflowv1.Rollout)
	over.State = rAborted
	unassigned := &ebbflowv1.RolloutCluster{Cluster: "c9", State: cPending}
	for name, tc := range map[string]struct {
		r *ebbflowv1.Rollout
		c *ebbflowv1.RolloutCluster
	}{
		"terminal rollout":  {over, x.c("c2")},
		"no rollout":        {nil, x.c("c2")},
		"no assignment yet": {x.r, unassigned},
	} {
		want := Idle(tc.c.GetCluster())
		if a := AssignmentFor(tc.r, tc.c); !proto.Equal(a, want) {
			t.Errorf("%s: %v; want %v", name, a, want)
		}
	}
	if a := Idle("c9"); a.GetCluster() != "c9" || a.GetAction() != aIdle || a.GetId() != "" {
		t.Fatalf("idle %v", a)
	}
}

func TestHolds(t *testing.T) {
	assigned := &ebbflowv1.RolloutCluster{Cluster: "c1", AssignmentId: "r1.c1.1", State: cSucceeded}
	for _, tc := range []struct {
		name  string
		state ebbflowv1.RolloutState
		c     *ebbflowv1.RolloutCluster
		want  bool
	}{
		{"running, assigned", rRunning, assigned, true},
		{"paused, assigned", rPaused, assigned, true},
		{"rolling back, assigned", rRollback, assigned, true},
		{"running, never assigned", rRunning, &ebbflowv1.RolloutCluster{Cluster: "c1"}, false},
		{"running, no record", rRunning, nil, false},
		{"succeeded", rSucceed, assigned, false},
		{"failed", rFailed, assigned, false},
		{"aborted", rAborted, assigned, false},
		{"rolled back", rRolled, assigned, false},
	} {
		if got := Holds(&ebbflowv1.Rollout{Id: "r1", State: tc.state}, tc.c); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
	if Holds(nil, assigned) {
		t.Error("no rollout holds a cluster")
	}
}

func TestMatch(t *testing.T) {
	x := start(t, nil, wave(maxFail(1), "c1", "c2", "c3"))
	x.step()
	x.phase("c1", 200, 1.0)
	x.phase("c1", 200, 1.3) // c1 rolls back: assignment 3
	x.pass("c3")
	ref := func(cluster, id string, rev uint64, p ebbflowv1.Phase) *ebbflowv1.ReportRef {
		return &ebbflowv1.ReportRef{Cluster: cluster, AssignmentId: id, ProfileRevision: rev, Phase: p}
	}
	over := proto.Clone(x.r).(*ebbflowv1.Rollout)
	over.State = rFailed
	for _, tc := range []struct {
		name string
		r    *ebbflowv1.Rollout
		ref  *ebbflowv1.ReportRef
		want string // "" to accept
	}{
		{"current assignment", x.r, ref("c2", "r1.c2.1", 3, baseline), ""},
		{"rollback, phase of the assignment", x.r, ref("c1", "r1.c1.3", 3, kpr), ""},
		{"rollback, no phase", x.r, ref("c1", "r1.c1.3", 3, phNone), ""},
		{"no rollout", nil, ref("c2", "r1.c2.1", 3, baseline), "no rollout"},
		{"rollout over", over, ref("c2", "r1.c2.1", 3, baseline), "rollout r1 is FAILED"},
		{"no ref", x.r, nil, "report names no assignment"},
		{"cluster not in the rollout", x.r, ref("zz", "r1.zz.1", 3, baseline), `cluster "zz" is not in rollout r1`},
		{"old assignment", x.r, ref("c1", "r1.c1.2", 3, kpr), `the current assignment of c1 is "r1.c1.3"`},
		{"other profile revision", x.r, ref("c2", "r1.c2.1", 2, baseline), "profile revision 2"},
		{"cluster done", x.r, ref("c3", "r1.c3.2", 3, kpr), "c3 is SUCCEEDED with no active assignment"},
		{"other phase", x.r, ref("c2", "r1.c2.1", 3, kpr), "report for phase kpr; assignment r1.c2.1 is for phase baseline"},
		{"apply assignment, no phase", x.r, ref("c2", "r1.c2.1", 3, phNone), "report for phase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := Report{Ref: tc.ref, Status: stStarted, ReportTime: x.now}
			got := Match(tc.r, rep)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("Match %q; want %q", got, tc.want)
			}
			_, _, ok, why := Ingest(tc.r, rep, x.now)
			if ok != (got == "") || why != got {
				t.Fatalf("Ingest accepted %v (%q); Match said %q", ok, why, got)
			}
		})
	}
}

func TestIngestAt(t *testing.T) {
	x := start(t, nil, wave(nil, "c1", "c2"), wave(nil, "c3"))
	x.step()
	rep := Report{Ref: x.ref("c2"), Status: stStarted, ReportTime: x.now}
	for _, tc := range []struct {
		name        string
		wave, index int
	}{
		{"right hint", 0, 1},
		{"hint at another cluster", 0, 0},
		{"hint past the clusters", 0, 5},
		{"hint past the waves", 4, 0},
		{"no hint", -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := proto.Clone(x.r)
			next, ev, ok, why := IngestAt(x.r, tc.wave, tc.index, rep, x.now)
			if !ok {
				t.Fatal(why)
			}
			if !proto.Equal(before, x.r) {
				t.Fatal("IngestAt mutated its input")
			}
			d := Diff(x.r, next)
			if d.HeaderChanged || len(d.Clusters) != 1 || d.Clusters[0].Wave != 0 || d.Clusters[0].Index != 1 {
				t.Fatalf("Diff %s", deltaString(d))
			}
			if c := d.Clusters[0].Cluster; c.GetCluster() != "c2" || c.GetLastStatus() != stStarted || len(ev) != 1 || ev[0].GetCluster() != "c2" {
				t.Fatalf("record %v, events %v", c, ev)
			}
		})
	}
	if _, _, ok, why := IngestAt(x.r, 0, 1, Report{Ref: &ebbflowv1.ReportRef{Cluster: "zz"}}, x.now); ok || !strings.Contains(why, "not in rollout") {
		t.Fatalf("report for a cluster not in the rollout: %v %q", ok, why)
	}
}

// A batch decides reports one after the other on its own copy, putting each IngestRecord
// change in place: it must end where IngestAt's chain of new rollouts ends, and leave the
// rollout it started from untouched.
func TestIngestRecordInPlaceMatchesIngestAt(t *testing.T) {
	x := start(t, nil, wave(nil, "c1", "c2", "c3"))
	x.step()
	orig := proto.Clone(x.r).(*ebbflowv1.Rollout)
	work := proto.Clone(x.r).(*ebbflowv1.Rollout) // the batch's own copy
	chain := x.r
	seq := []struct {
		cluster string
		st      ebbflowv1.PhaseStatus
		ms      []*ebbflowv1.Measurement
	}{
		{"c1", stStarted, nil}, {"c2", stStarted, nil}, {"c1", stApplied, nil}, {"c1", stVerified, nil},
		{"c1", stMeasured, httpMeasurement(latency(1, 200, 1.0))}, {"c3", stStarted, nil}, {"c2", stFailed, nil},
	}
	for _, s := range seq {
		_, c := findCluster(chain, s.cluster)
		rep := Report{Ref: &ebbflowv1.ReportRef{Cluster: s.cluster, AssignmentId: c.GetAssignmentId(), ProfileRevision: chain.GetProfileRevision(), Phase: c.GetPhase()},
			Status: s.st, ReportTime: x.now, HelmBefore: 7, HelmAfter: 8, Measurements: s.ms}
		before := proto.Clone(work)
		ch, ev, ok, why := IngestRecord(work, -1, -1, rep, x.now)
		if !ok {
			t.Fatalf("%s %s: %s", s.cluster, s.st, why)
		}
		if !proto.Equal(before, work) {
			t.Fatal("IngestRecord mutated its input")
		}
		if got := work.Waves[ch.Wave].Clusters[ch.Index]; got != ch.Old || ch.New.GetCluster() != s.cluster {
			t.Fatalf("change at %d/%d: old %p is not the record there (%p), new is %s", ch.Wave, ch.Index, ch.Old, got, ch.New.GetCluster())
		}
		work.Waves[ch.Wave].Clusters[ch.Index] = ch.New
		next, ev2, ok2, _ := IngestAt(chain, -1, -1, rep, x.now)
		if !ok2 || len(ev) != len(ev2) {
			t.Fatalf("IngestAt: accepted %v, %d events; IngestRecord %d", ok2, len(ev2), len(ev))
		}
		chain = next
	}
	if !proto.Equal(work, chain) {
		t.Fatalf("in place:\n%v\nIngestAt chain:\n%v", work, chain)
	}
	if proto.Equal(orig, work) {
		t.Fatal("the reports changed nothing")
	}
	stale := Report{Ref: &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "old", ProfileRevision: work.GetProfileRevision()}, Status: stStarted}
	if _, _, ok, why := IngestRecord(work, -1, -1, stale, x.now); ok || !strings.Contains(why, "current assignment") {
		t.Fatalf("stale report: %v %q", ok, why)
	}
}

func TestStoredMeasurement(t *testing.T) {
	samples := make([]float64, 3*MaxStoredSamples)
	for i := range samples {
		samples[i] = float64(i)
	}
	m := &ebbflowv1.Measurement{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://echo", SamplesMs: samples,
		Latency: &ebbflowv1.LatencySummary{Count: int64(len(samples))}}
	got := StoredMeasurement(m)
	if len(m.GetSamplesMs()) != 3*MaxStoredSamples {
		t.Fatal("StoredMeasurement changed its input")
	}
	if len(got.GetSamplesMs()) != MaxStoredSamples || got.GetSamplesMs()[0] != 0 || got.GetSamplesMs()[1] != 3 || got.GetSamplesMs()[MaxStoredSamples-1] != float64(3*MaxStoredSamples-3) {
		t.Fatalf("kept %d samples: %v ... %v", len(got.GetSamplesMs()), got.GetSamplesMs()[:2], got.GetSamplesMs()[len(got.GetSamplesMs())-1])
	}
	if got.GetLatency().GetCount() != int64(len(samples)) || got.GetLatency() == m.GetLatency() {
		t.Fatal("the summary is not kept as sent, or is shared")
	}
	// The distribution is computed from every sample sent, not the kept ones: the maximum is
	// the last sample, which the evenly spaced selection drops.
	if d := got.GetDistribution(); d.GetCount() != int64(len(samples)) || d.GetLatencyMs()[len(d.GetLatencyMs())-1] != float64(len(samples)-1) {
		t.Fatalf("distribution of %d values with maximum %v, want %d values up to %d", d.GetCount(), d.GetLatencyMs(), len(samples), len(samples)-1)
	}
	small := &ebbflowv1.Measurement{SamplesMs: []float64{1, 2}} // no kind: no latency distribution
	if c := StoredMeasurement(small); !proto.Equal(c, small) || &c.SamplesMs[0] == &small.SamplesMs[0] {
		t.Fatal("a small measurement is not an independent equal copy")
	}
}
