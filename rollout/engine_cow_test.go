package rollout

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// The decisions are copy-on-write. These tests drive them through every branch they can reach
// and check after each one that the input is intact, that the records left alone are shared,
// that the changed ones are not, and that Diff says exactly what changed.

// headerOnly is a deep copy of r without any cluster record: what Delta.HeaderChanged covers.
func headerOnly(r *ebbflowv1.Rollout) *ebbflowv1.Rollout {
	out := proto.Clone(r).(*ebbflowv1.Rollout)
	for _, w := range out.GetWaves() {
		w.Clusters = nil
	}
	return out
}

// checkCOW checks one decision that turned in (a deep copy of which is before) into out.
func checkCOW(t *testing.T, what string, in, before, out *ebbflowv1.Rollout, now time.Time) {
	t.Helper()
	if !proto.Equal(in, before) {
		t.Fatalf("%s mutated its input", what)
	}
	if out == in {
		return
	}
	if out.GetSpec() != nil && out.GetSpec() == in.GetSpec() {
		t.Fatalf("%s: the next rollout shares the spec with the input", what)
	}
	if len(out.GetWaves()) != len(in.GetWaves()) {
		t.Fatalf("%s: %d waves, the input had %d", what, len(out.GetWaves()), len(in.GetWaves()))
	}
	var want []ClusterChange
	for w, wv := range out.GetWaves() {
		old := in.GetWaves()[w]
		if wv == old || (wv.GetGates() != nil && wv.GetGates() == old.GetGates()) {
			t.Fatalf("%s: wave %d (or its gates) is shared with the input", what, w)
		}
		if len(wv.GetClusters()) != len(old.GetClusters()) {
			t.Fatalf("%s: wave %d has %d clusters, the input had %d", what, w, len(wv.GetClusters()), len(old.GetClusters()))
		}
		for i, c := range wv.GetClusters() {
			switch same := proto.Equal(c, old.GetClusters()[i]); {
			case c == old.GetClusters()[i]:
			case same:
				t.Fatalf("%s: unchanged record %s is a copy, not shared", what, c.GetCluster())
			default:
				want = append(want, ClusterChange{Wave: int32(w), Index: int32(i), Cluster: c})
			}
		}
	}
	d := Diff(in, out)
	headerChanged := !proto.Equal(headerOnly(in), headerOnly(out))
	if d.HeaderChanged != headerChanged || !slices.Equal(d.Clusters, want) {
		t.Fatalf("%s: Diff %s; want header %v and %s", what, deltaString(d), headerChanged, deltaString(Delta{Clusters: want}))
	}
	if d.Empty() != (!headerChanged && len(want) == 0) {
		t.Fatalf("%s: Empty %v", what, d.Empty())
	}
	if headerChanged && !out.GetUpdateTime().AsTime().Equal(now) {
		t.Fatalf("%s changed the header but update_time is %v, not %v", what, out.GetUpdateTime().AsTime(), now)
	}
}

func deltaString(d Delta) string {
	var b strings.Builder
	b.WriteString("header ")
	if d.HeaderChanged {
		b.WriteString("changed")
	} else {
		b.WriteString("same")
	}
	for _, c := range d.Clusters {
		b.WriteString(" " + c.Cluster.GetCluster())
	}
	return b.String()
}

// The cow* methods run a decision on x.r through checkCOW; an accepted one moves x.r on.

func (x *h) cowStep() bool {
	x.t.Helper()
	in, before := x.r, proto.Clone(x.r).(*ebbflowv1.Rollout)
	next, ev, changed := Step(in, World{Now: x.now, Clusters: x.world})
	checkCOW(x.t, "Step", in, before, next, x.now)
	if changed != !Diff(in, next).Empty() || changed != (next != in) {
		x.t.Fatalf("Step: changed %v, but Diff %s", changed, deltaString(Diff(in, next)))
	}
	x.r, x.events = next, append(x.events, ev...)
	return changed
}

func (x *h) cowIngest(rep Report) (bool, string) {
	x.t.Helper()
	if rep.ReportTime.IsZero() {
		rep.ReportTime = x.now.Add(-30 * time.Second)
	}
	in, before := x.r, proto.Clone(x.r).(*ebbflowv1.Rollout)
	next, ev, ok, why := Ingest(in, rep, x.now)
	checkCOW(x.t, "Ingest", in, before, next, x.now)
	if m := Match(before, rep); (m == "") != ok || m != why {
		x.t.Fatalf("Ingest accepted %v (%q) but Match says %q", ok, why, m)
	}
	if ok {
		d := Diff(in, next)
		if d.HeaderChanged || len(d.Clusters) != 1 || d.Clusters[0].Cluster.GetCluster() != rep.Ref.GetCluster() {
			x.t.Fatalf("Ingest of %s changed %s; want that record only", rep.Ref.GetCluster(), deltaString(d))
		}
	} else if next != in || len(ev) > 0 {
		x.t.Fatal("a refused report changed the rollout")
	}
	x.r, x.events = next, append(x.events, ev...)
	return ok, why
}

func (x *h) cowReport(name string, st ebbflowv1.PhaseStatus, ms ...*ebbflowv1.Measurement) {
	x.t.Helper()
	if ok, why := x.cowIngest(Report{Ref: x.ref(name), Status: st, HelmBefore: 7, HelmAfter: 8, Measurements: ms}); !ok {
		x.t.Fatalf("%s %s refused: %s", name, st, why)
	}
}

func (x *h) cowPhase(name string, n int, scale float64) {
	x.t.Helper()
	x.seed++
	for _, st := range []ebbflowv1.PhaseStatus{stStarted, stApplied, stVerified} {
		x.cowReport(name, st)
	}
	x.cowReport(name, stMeasured, httpMeasurement(latency(x.seed, n, scale))...)
}

func (x *h) cowPass(name string) {
	x.t.Helper()
	x.cowPhase(name, 200, 1.0)
	x.cowPhase(name, 200, 1.0)
}

// cowDo runs a manual action; it reports whether the action was accepted.
func (x *h) cowDo(what string, act func(r *ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error)) bool {
	x.t.Helper()
	in, before := x.r, proto.Clone(x.r).(*ebbflowv1.Rollout)
	next, ev, err := act(in)
	if err != nil {
		if !errors.Is(err, ErrInvalidAction) {
			x.t.Fatalf("%s: %v", what, err)
		}
		checkCOW(x.t, what, in, before, in, x.now)
		if next != in || len(ev) > 0 {
			x.t.Fatalf("refused %s changed the rollout", what)
		}
		return false
	}
	checkCOW(x.t, what, in, before, next, x.now)
	x.r, x.events = next, append(x.events, ev...)
	return true
}

func (x *h) mustDo(what string, act func(r *ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error)) {
	x.t.Helper()
	if !x.cowDo(what, act) {
		x.t.Fatalf("%s refused", what)
	}
}

func (x *h) mustRefuse(what string, act func(r *ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error)) {
	x.t.Helper()
	if x.cowDo(what, act) {
		x.t.Fatalf("%s accepted", what)
	}
}

func pause(actor string, now time.Time) func(*ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return func(r *ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return Pause(r, actor, "why", now)
	}
}

func resume(now time.Time) func(*ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return func(r *ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return Resume(r, "bob", now)
	}
}

func approve(wave int32, cluster string, now time.Time) func(*ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return func(r *ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return Approve(r, wave, cluster, "bob", now)
	}
}

func skip(cluster string, now time.Time) func(*ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return func(r *ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return Skip(r, cluster, "flaky", "bob", now)
	}
}

func abort(now time.Time) func(*ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return func(r *ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return Abort(r, "stop", "bob", now)
	}
}

func rollback(target RollbackTarget, now time.Time) func(*ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
	return func(r *ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return Rollback(r, target, "ticket", "bob", now)
	}
}

// TestDecisionsCopyOnWrite runs scripts that reach every branch of the engine that writes a
// record, each decision checked by checkCOW.
func TestDecisionsCopyOnWrite(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"two waves, soak, approval gate, every report status", func(t *testing.T) {
			x := start(t, func(s *ebbflowv1.RolloutSpec) { s.Phases = []ebbflowv1.Phase{baseline, kpr, xdp} },
				wave(wgates(func(g *ebbflowv1.WaveGates) { g.SoakTime = dur(time.Minute); g.MaxConcurrency = 2 }), "c1", "c2", "c3"),
				wave(wgates(func(g *ebbflowv1.WaveGates) { g.RequireApproval = true }), "c4"))
			x.mustRefuse("approve a wave without gate", approve(0, "", x.now))
			x.cowStep()
			// Measurements only (capped), then a status the engine does not know.
			x.cowReport("c1", ebbflowv1.PhaseStatus_PHASE_STATUS_UNSPECIFIED, httpMeasurement(latency(1, 7000, 1))...)
			x.cowReport("c1", ebbflowv1.PhaseStatus(99))
			x.cowPhase("c1", 200, 1.0)
			x.cowPhase("c1", 200, 1.0)
			if ok, why := x.cowIngest(Report{Ref: x.ref("c1"), Status: stPreflight, Preflight: []string{"kernel"}}); !ok {
				t.Fatal(why) // xdp held by the agent: c1 succeeds
			}
			x.wantCluster("c1", cSucceededS, aIdle)
			x.cowStep() // c3 takes the free slot
			x.wantCluster("c3", cApplyingS, aApply)
			x.cowPass("c2")
			x.cowReport("c2", stStarted) // xdp
			x.cowReport("c2", stApplied)
			x.cowPhase("c3", 200, 1.0)
			x.mustDo("skip c3 between phases", skip("c3", x.now))
			x.mustRefuse("skip a skipped cluster", skip("c3", x.now))
			x.cowPhase("c2", 200, 1.0)
			x.cowStep()
			x.wantRollout(rRunning, wSoaking, wPending)
			x.advance(2 * time.Minute)
			x.cowStep()
			x.wantRollout(rWaiting, wSucceeded, wWaiting)
			if x.cowStep() {
				t.Fatal("a waiting rollout changed")
			}
			x.mustDo("approve wave 1", approve(1, "", x.now))
			x.cowStep()
			x.cowPass("c4")
			x.cowPhase("c4", 200, 1.0)
			x.cowStep()
			x.wantRollout(rSucceed, wSucceeded, wSucceeded)
			if x.cowStep() {
				t.Fatal("a terminal rollout changed")
			}
		}},
		{"deleted, cordoned and silent clusters, pause and resume", func(t *testing.T) {
			x := start(t, nil, wave(maxFail(3), "c1", "c2", "c3", "c4", "c5"))
			x.cowStep()
			x.mustDo("pause", pause("bob", x.now))
			// A second pause is a no-op: the same rollout back, no events, nothing to write.
			if again, events, err := pause("bob", x.now)(x.r); err != nil || again != x.r || len(events) != 0 {
				t.Fatalf("pause twice: %p (want %p), %d events, %v", again, x.r, len(events), err)
			}
			x.cowPhase("c4", 200, 1.0) // passes while paused: PENDING between phases
			x.wantCluster("c4", cPendingS, aIdle)
			delete(x.world, "c1")
			x.world["c2"] = cordoned(fleetCluster("c2"), "disk")
			x.cowStep()
			x.wantCluster("c1", cSkippedS, aIdle)
			x.advance(11 * time.Minute)
			x.cowStep() // c3, c5 silent
			x.wantCluster("c3", cUnknownS, aIdle)
			x.mustDo("resume", resume(x.now))
			if again, events, err := resume(x.now)(x.r); err != nil || again != x.r || len(events) != 0 {
				t.Fatalf("resume twice: %p (want %p), %d events, %v", again, x.r, len(events), err)
			}
			x.cowStep() // c4 gets kpr
			x.wantCluster("c4", cApplyingS, aApply)
		}},
		{"regression, rollback, rollback failure and silent rollback", func(t *testing.T) {
			x := start(t, nil, wave(maxFail(3), "c1", "c2", "c3", "c4"))
			x.cowStep()
			x.cowPhase("c1", 200, 1.0)
			x.cowPhase("c1", 200, 1.3) // regression: rolled back
			x.wantCluster("c1", cRollingBackS, aRollback)
			x.cowReport("c1", stStarted)
			x.cowReport("c1", stRolled)
			x.cowPhase("c2", 200, 1.0)
			x.cowReport("c2", stFailed) // agent failure in kpr: rolled back
			x.cowReport("c2", stFailed) // the rollback fails
			x.wantCluster("c2", cFailedS, aIdle)
			x.cowPhase("c3", 200, 1.0)
			for range 3 { // too few samples in every window; inconclusive after the third: fails, rolls back
				x.cowPhase("c3", 5, 1.0)
			}
			x.wantCluster("c3", cRollingBackS, aRollback)
			x.cowPhase("c4", 200, 1.0)
			x.cowReport("c4", stRolled) // the agent rolled back by itself
			x.advance(11 * time.Minute)
			x.cowStep() // c3's rollback is silent: UNKNOWN; four failures > 3
			x.wantCluster("c3", cUnknownS, aIdle)
			x.wantRollout(rFailed, wFailed)
		}},
		{"inconclusive wait, approve a cluster, invalid samples, preflight at baseline", func(t *testing.T) {
			x := start(t, func(s *ebbflowv1.RolloutSpec) {
				s.Budgets = []*ebbflowv1.RegressionBudget{{Phase: kpr, Alpha: 0.05, MinSamples: 30,
					OnInconclusive: ebbflowv1.InconclusivePolicy_INCONCLUSIVE_POLICY_WAIT_FOR_APPROVAL}}
			}, wave(maxFail(2), "c1", "c2", "c3"))
			x.cowStep()
			x.cowPhase("c1", 200, 1.0)
			for range 3 {
				x.cowPhase("c1", 5, 1.0)
			}
			x.wantCluster("c1", cWaitingS, aApply)
			x.mustRefuse("approve a wave and a cluster", approve(0, "c1", x.now))
			x.mustRefuse("approve an applying cluster", approve(-1, "c2", x.now))
			x.mustRefuse("approve a missing cluster", approve(-1, "zz", x.now))
			x.mustDo("approve c1", approve(-1, "c1", x.now))
			x.wantCluster("c1", cSucceededS, aIdle)
			x.cowPhase("c2", 200, 1.0)
			x.cowReport("c2", stMeasured, httpMeasurement([]float64{1, -1})...) // invalid: inconclusive, waits
			x.wantCluster("c2", cWaitingS, aApply)
			if ok, _ := x.cowIngest(Report{Ref: x.ref("c3"), Status: stPreflight, Message: "no nodes"}); !ok {
				t.Fatal("preflight report refused")
			}
			x.wantCluster("c3", cSkippedS, aIdle)
			if ok, _ := x.cowIngest(Report{Ref: &ebbflowv1.ReportRef{Cluster: "c3", AssignmentId: "r1.c3.1", ProfileRevision: 3, Phase: baseline}, Status: stApplied}); ok {
				t.Fatal("report to a skipped cluster accepted")
			}
		}},
		{"haltOnly stops in-flight clusters, and a failed baseline is not rolled back", func(t *testing.T) {
			x := start(t, policy(ebbflowv1.FailurePolicy_FAILURE_POLICY_HALT_ONLY), wave(nil, "c1", "c2"), wave(nil, "c3"))
			x.cowStep()
			x.cowReport("c2", stStarted)
			x.cowReport("c1", stFailed)
			x.wantCluster("c1", cFailedS, aIdle)
			x.cowStep()
			x.wantRollout(rFailed, wFailed, wPending)
			x.wantCluster("c2", cApplyingS, aIdle)
		}},
		{"rollbackWave rolls the wave back", func(t *testing.T) {
			x := start(t, policy(ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_WAVE), wave(nil, "c1", "c2", "c3"), wave(nil, "c4"))
			x.cowStep()
			x.cowPass("c1")
			x.cowPhase("c2", 200, 1.0)
			x.cowPhase("c3", 200, 1.0)
			x.cowPhase("c3", 200, 1.3)
			x.cowStep()
			x.wantRollout(rRollback, wFailed, wPending)
			for _, c := range []string{"c1", "c2", "c3"} {
				x.cowReport(c, stRolled)
				x.cowStep()
			}
			x.wantRollout(rRolled, wRolledBack, wPending)
		}},
		{"wave and rollout progress deadlines", func(t *testing.T) {
			x := start(t, nil, wave(wgates(func(g *ebbflowv1.WaveGates) { g.ProgressDeadline = dur(20 * time.Minute); g.MaxConcurrency = 1 }), "c1", "c2"))
			x.cowStep()
			x.cowPhase("c1", 200, 1.0)
			for range 3 {
				x.advance(7 * time.Minute)
				x.cowReport("c1", stStarted)
			}
			x.cowStep()
			x.wantCluster("c2", cUnknownS, aIdle)
			x.wantRollout(rFailed, wFailed)

			y := start(t, func(s *ebbflowv1.RolloutSpec) { s.ProgressDeadline = dur(time.Hour) }, wave(nil, "c1"))
			y.cowStep()
			for range 7 {
				y.advance(9 * time.Minute)
				y.cowReport("c1", stStarted)
				y.cowStep()
			}
			y.wantRollout(rFailed)
			y.wantCluster("c1", cApplyingS, aIdle)
		}},
		{"manual rollbacks, skip and abort", func(t *testing.T) {
			x := start(t, nil, wave(maxFail(2), "c1", "c2", "c3"), wave(nil, "c4", "c5"))
			x.cowStep()
			x.mustRefuse("roll back an unchanged cluster", rollback(RollbackTarget{Cluster: "c1"}, x.now))
			x.mustRefuse("roll back two targets", rollback(RollbackTarget{Cluster: "c1", All: true}, x.now))
			x.mustRefuse("roll back a missing cluster", rollback(RollbackTarget{Cluster: "zz"}, x.now))
			x.mustRefuse("roll back a wave not started", rollback(RollbackTarget{Wave: 1}, x.now))
			x.mustRefuse("roll back a missing wave", rollback(RollbackTarget{Wave: 9}, x.now))
			x.cowPass("c1")
			x.mustDo("roll back c1", rollback(RollbackTarget{Cluster: "c1"}, x.now))
			x.mustRefuse("roll back c1 twice", rollback(RollbackTarget{Cluster: "c1"}, x.now))
			x.cowReport("c1", stRolled)
			x.mustDo("skip c3", skip("c3", x.now))
			x.mustRefuse("skip a missing cluster", skip("zz", x.now))
			x.cowPass("c2")
			x.cowStep()
			x.wantRollout(rRunning, wSucceeded, wProgressing)
			x.cowPhase("c4", 200, 1.0)
			x.cowReport("c5", stStarted)
			x.mustDo("roll back wave 1", rollback(RollbackTarget{Wave: 1}, x.now))
			x.wantCluster("c4", cRollingBackS, aRollback)
			x.wantCluster("c5", cApplyingS, aIdle)
			x.mustDo("roll back all", rollback(RollbackTarget{All: true}, x.now))
			x.wantCluster("c2", cRollingBackS, aRollback)
			x.cowReport("c2", stRolled)
			x.mustDo("abort", abort(x.now))
			x.wantRollout(rAborted)
			x.wantCluster("c4", cRollingBackS, aIdle)
			for what, act := range map[string]func(*ebbflowv1.Rollout) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error){
				"pause": pause("bob", x.now), "resume": resume(x.now), "abort": abort(x.now), "skip": skip("c5", x.now),
				"approve": approve(1, "", x.now), "rollback": rollback(RollbackTarget{All: true}, x.now),
			} {
				x.mustRefuse(what+" after abort", act)
			}
			x.mustRefuse("pause without actor", pause("", x.now))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.run)
	}
}

// TestStepSharesUntouchedRecords: a Step that assigns one cluster clones that record only, and
// a Step that changes only the rollout's header clones no record.
func TestStepSharesUntouchedRecords(t *testing.T) {
	x := start(t, nil, wave(wgates(func(g *ebbflowv1.WaveGates) { g.MaxConcurrency = 1 }), "c1", "c2", "c3"))
	in := x.r
	x.cowStep()
	got, was := x.r.GetWaves()[0].GetClusters(), in.GetWaves()[0].GetClusters()
	if got[0] == was[0] || got[1] != was[1] || got[2] != was[2] {
		t.Fatal("Step should clone c1 only")
	}
	if in.GetState() != rPending || was[0].GetState() != cPendingS || was[0].GetAssignmentId() != "" {
		t.Fatal("the input changed")
	}
	if x.r.GetUpdateTime().AsTime() != x.now {
		t.Fatal("a header change did not stamp update_time")
	}

	y := start(t, nil, wave(wgates(func(g *ebbflowv1.WaveGates) { g.RequireApproval = true }), "c1", "c2"))
	in = y.r
	y.cowStep()
	if y.r == in || y.r.GetState() != rWaiting {
		t.Fatalf("state %s", y.r.GetState())
	}
	if d := Diff(in, y.r); !d.HeaderChanged || len(d.Clusters) != 0 {
		t.Fatalf("Diff %s", deltaString(d))
	}
	for i, c := range y.r.GetWaves()[0].GetClusters() {
		if c != in.GetWaves()[0].GetClusters()[i] {
			t.Fatalf("record %s cloned by a header-only step", c.GetCluster())
		}
	}
}

// TestRecordOnlyDecisionsKeepHeader: a decision that changes records only leaves update_time,
// so the header needs no write.
func TestRecordOnlyDecisionsKeepHeader(t *testing.T) {
	x := start(t, nil, wave(nil, "c1", "c2"))
	x.cowStep()
	stamp := x.r.GetUpdateTime().AsTime()
	x.advance(time.Minute)
	x.cowReport("c1", stStarted)
	x.mustDo("skip c2", skip("c2", x.now))
	if got := x.r.GetUpdateTime().AsTime(); !got.Equal(stamp) {
		t.Fatalf("update_time %v; want %v", got, stamp)
	}
	if x.c("c1").GetLastReportTime() == nil || x.c("c2").GetState() != cSkippedS {
		t.Fatal("the decisions did not land")
	}
}

// TestOwnIsIdempotent: the second own of a record returns the same clone, and settle shares
// back a record that was owned but left equal.
func TestOwnIsIdempotent(t *testing.T) {
	x := start(t, nil, wave(nil, "c1", "c2"))
	e := &recorder{now: x.now}
	n := e.begin(x.r)
	wv := n.Waves[0]
	a := e.own(wv, 0)
	if b := e.own(wv, 0); a != b || a == x.r.Waves[0].Clusters[0] {
		t.Fatal("own cloned twice or not at all")
	}
	e.own(wv, 1).Reason = "changed"
	if !e.settle() {
		t.Fatal("settle missed a change")
	}
	if wv.Clusters[0] != x.r.Waves[0].Clusters[0] || wv.Clusters[1] == x.r.Waves[0].Clusters[1] {
		t.Fatal("settle shares back the wrong records")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("own on a foreign wave did not panic")
		}
	}()
	e.own(x.r.Waves[0], 0)
}

// TestDecisionsShareInputSafely: decisions on one input from several goroutines only read it
// (the race detector fails this test on any write to a shared record or header).
func TestDecisionsShareInputSafely(t *testing.T) {
	x := start(t, nil, wave(nil, "c1", "c2", "c3"))
	x.step()
	x.phase("c1", 200, 1.0)
	r, now := x.r, x.now.Add(11*time.Minute)
	rep := Report{Ref: x.ref("c2"), Status: stVerified, ReportTime: x.now}
	before := proto.Clone(r)
	decisions := []func(){
		func() { Step(r, World{Now: now, Clusters: x.world}) },
		func() { Ingest(r, rep, now) },
		func() { Skip(r, "c2", "", "bob", now) },
		func() { Abort(r, "", "bob", now) },
		func() { Rollback(r, RollbackTarget{All: true}, "", "bob", now) },
	}
	done := make(chan struct{})
	for _, d := range decisions {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 20 {
				d()
			}
		}()
	}
	for range decisions {
		<-done
	}
	if !proto.Equal(before, r) {
		t.Fatal("a decision mutated the shared input")
	}
}
