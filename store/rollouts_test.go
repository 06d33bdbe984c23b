package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// bigRollout is a running rollout of n clusters in two waves; cluster i is "c<i>". The first
// cluster measured its baseline (judged) and its kpr phase (judged too).
func bigRollout(id string, n int) *ebbflowv1.Rollout {
	r := rollout(id, "p", ebbflowv1.RolloutState_ROLLOUT_STATE_RUNNING)
	r.Waves = []*ebbflowv1.Wave{{Index: 0, Name: "canary"}, {Index: 1, Name: "rest"}}
	for i := range n {
		w := r.Waves[min(i, 1)]
		w.Clusters = append(w.Clusters, &ebbflowv1.RolloutCluster{
			Cluster: fmt.Sprintf("c%d", i), State: ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_PENDING,
		})
	}
	c0 := r.Waves[0].Clusters[0]
	c0.AssignmentId, c0.Phase = id+".c0.2", ebbflowv1.Phase_PHASE_KPR
	c0.Action = ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY
	c0.Results = []*ebbflowv1.PhaseResult{
		{Phase: ebbflowv1.Phase_PHASE_BASELINE, Verdict: ebbflowv1.Verdict_VERDICT_PASS, Measurements: []*ebbflowv1.Measurement{{Target: "t", SamplesMs: []float64{1, 2, 3}}}},
		{Phase: ebbflowv1.Phase_PHASE_KPR, Verdict: ebbflowv1.Verdict_VERDICT_PASS, Measurements: []*ebbflowv1.Measurement{{Target: "t", SamplesMs: []float64{4, 5}}}},
	}
	return r
}

func readRolloutT(t *testing.T, s *Store, id string) *ebbflowv1.Rollout {
	t.Helper()
	var r *ebbflowv1.Rollout
	if err := s.View(ctxT(t), Stale, func(tx *Tx) error {
		var err error
		r, err = tx.Rollout(id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return r
}

func patch(id string, gen uint64, header *ebbflowv1.Rollout, ps ...*storev1.ClusterPatch) *storev1.Command {
	return &storev1.Command{Actor: "controller", Body: &storev1.Command_PatchRollout{PatchRollout: &storev1.PatchRollout{
		RolloutId: id, ExpectedGeneration: gen, Header: header, Clusters: ps, Events: []*ebbflowv1.RolloutEvent{event("patch")},
	}}}
}

func TestRolloutStoredAsHeaderAndRecords(t *testing.T) {
	s := mustNewStore(t)
	mustApply(t, s, putRollout(bigRollout("r1", 5), 0))
	got := readRolloutT(t, s, "r1")
	if n := len(got.GetWaves()[0].GetClusters()) + len(got.GetWaves()[1].GetClusters()); n != 5 {
		t.Fatalf("read back %d clusters, want 5", n)
	}
	c0 := got.GetWaves()[0].GetClusters()[0]
	if len(c0.GetResults()) != 2 {
		t.Fatalf("c0 results: %v", c0.GetResults())
	}
	base, kpr := c0.GetResults()[0].GetMeasurements(), c0.GetResults()[1].GetMeasurements()
	if len(base) != 1 || len(base[0].GetSamplesMs()) != 3 {
		t.Errorf("baseline measurement %v: want its 3 samples kept", base)
	}
	if len(kpr) != 1 || len(kpr[0].GetSamplesMs()) != 0 || kpr[0].GetTarget() != "t" {
		t.Errorf("judged kpr measurement %v: want the summary without samples", kpr)
	}
	// The header holds no clusters on disk.
	if err := s.fsm.view(func(tx *bbolt.Tx) error {
		h := &ebbflowv1.Rollout{}
		if err := proto.Unmarshal(tx.Bucket(bucketRollouts).Get([]byte("r1")), h); err != nil {
			return err
		}
		if hasInlineClusters(h) {
			t.Errorf("stored header carries clusters")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestPatchRolloutChangesOneRecord(t *testing.T) {
	s := mustNewStore(t)
	mustApply(t, s, putRollout(bigRollout("r1", 100), 0))
	before := readRolloutT(t, s, "r1")
	w5 := s.WatchCluster("c5")
	defer w5.Close()
	w6 := s.WatchCluster("c6")
	defer w6.Close()

	rec := proto.Clone(before.GetWaves()[1].GetClusters()[4]).(*ebbflowv1.RolloutCluster) // c5
	rec.AssignmentId, rec.Phase = "r1.c5.1", ebbflowv1.Phase_PHASE_BASELINE
	rec.State = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_MEASURING
	rec.Results = []*ebbflowv1.PhaseResult{{Phase: ebbflowv1.Phase_PHASE_BASELINE}}
	cmd := patch("r1", 1, nil, &storev1.ClusterPatch{Wave: 1, Index: 4, Cluster: rec,
		MeasurementsPhase: ebbflowv1.Phase_PHASE_BASELINE, AddMeasurements: []*ebbflowv1.Measurement{{Target: "t", SamplesMs: []float64{9}}}})
	if b, _ := proto.Marshal(cmd); len(b) > 2048 {
		t.Errorf("a one-cluster patch of a 100-cluster rollout is %d bytes", len(b))
	}
	mustApply(t, s, cmd)

	after := readRolloutT(t, s, "r1")
	if after.GetGeneration() != 2 {
		t.Errorf("generation %d, want 2", after.GetGeneration())
	}
	got := after.GetWaves()[1].GetClusters()[4]
	if got.GetAssignmentId() != "r1.c5.1" || len(got.GetResults()[0].GetMeasurements()) != 1 {
		t.Errorf("patched record %v", got)
	}
	for w := range after.GetWaves() {
		for i, c := range after.GetWaves()[w].GetClusters() {
			if w == 1 && i == 4 {
				continue
			}
			if !proto.Equal(c, before.GetWaves()[w].GetClusters()[i]) {
				t.Errorf("record %d/%d changed: %v", w, i, c)
			}
		}
	}
	// The index: c5 is held by r1 now, with the record as patched.
	h, ok := s.HolderOf("c5")
	if !ok || h.Record.GetAssignmentId() != "r1.c5.1" || h.Wave != 1 || h.Index != 4 || len(h.Record.GetResults()[0].GetMeasurements()) != 0 {
		t.Errorf("HolderOf(c5) = %+v, %v", h, ok)
	}
	if _, ok := s.HolderOf("c6"); ok {
		t.Errorf("c6 has no assignment yet")
	}
	select {
	case <-w5.C:
	case <-time.After(5 * time.Second):
		t.Fatal("c5's watch was not woken")
	}
	select {
	case <-w6.C:
		t.Error("c6's watch was woken by c5's change")
	default:
	}
	// A second baseline measurement appends.
	rec2 := proto.Clone(rec).(*ebbflowv1.RolloutCluster)
	mustApply(t, s, patch("r1", 2, nil, &storev1.ClusterPatch{Wave: 1, Index: 4, Cluster: rec2,
		MeasurementsPhase: ebbflowv1.Phase_PHASE_BASELINE, AddMeasurements: []*ebbflowv1.Measurement{{Target: "u"}}}))
	ms := readRolloutT(t, s, "r1").GetWaves()[1].GetClusters()[4].GetResults()[0].GetMeasurements()
	if len(ms) != 2 || ms[0].GetTarget() != "t" || ms[1].GetTarget() != "u" {
		t.Errorf("measurements after two appends: %v", ms)
	}
	// A window sent again (the same measurement with its start time: a retried report) is
	// stored once; a different window of the same probe, and a measurement without a start
	// time sent again, append.
	start := timestamppb.New(time.Unix(1700000000, 0))
	window := &ebbflowv1.Measurement{Target: "v", StartTime: start, SamplesMs: []float64{1, 2}}
	next := &ebbflowv1.Measurement{Target: "v", StartTime: timestamppb.New(time.Unix(1700000010, 0)), SamplesMs: []float64{1, 2}}
	for i, add := range [][]*ebbflowv1.Measurement{{window}, {window}, {next}, {{Target: "u"}}} {
		mustApply(t, s, patch("r1", uint64(3+i), nil, &storev1.ClusterPatch{Wave: 1, Index: 4, Cluster: rec2,
			MeasurementsPhase: ebbflowv1.Phase_PHASE_BASELINE, AddMeasurements: add}))
	}
	ms = readRolloutT(t, s, "r1").GetWaves()[1].GetClusters()[4].GetResults()[0].GetMeasurements()
	var targets []string
	for _, m := range ms {
		targets = append(targets, m.GetTarget())
	}
	if strings.Join(targets, ",") != "t,u,v,v,u" || !ms[2].GetStartTime().AsTime().Equal(start.AsTime()) {
		t.Errorf("measurements after a window sent twice: %v", targets)
	}
}

func TestPatchRolloutRefusals(t *testing.T) {
	s := mustNewStore(t)
	mustApply(t, s, putRollout(bigRollout("r1", 3), 0))
	rec := &ebbflowv1.RolloutCluster{Cluster: "c1"}
	withClusters := proto.Clone(bigRollout("r1", 3)).(*ebbflowv1.Rollout)
	oneWave := rollout("r1", "p", ebbflowv1.RolloutState_ROLLOUT_STATE_RUNNING)
	oneWave.Waves = []*ebbflowv1.Wave{{Name: "x"}}
	for _, tc := range []struct {
		name string
		cmd  *storev1.Command
		want error
	}{
		{"stale generation", patch("r1", 7, nil, &storev1.ClusterPatch{Wave: 1, Index: 0, Cluster: rec}), ErrConflict},
		{"unknown rollout", patch("nope", 1, nil), ErrNotFound},
		{"no record at the position", patch("r1", 1, nil, &storev1.ClusterPatch{Wave: 1, Index: 9, Cluster: rec}), ErrInvalid},
		{"another cluster at the position", patch("r1", 1, nil, &storev1.ClusterPatch{Wave: 1, Index: 1, Cluster: rec}), ErrInvalid},
		{"no record", patch("r1", 1, nil, &storev1.ClusterPatch{Wave: 1, Index: 0}), ErrInvalid},
		{"header with clusters", patch("r1", 1, withClusters), ErrInvalid},
		{"header with another wave count", patch("r1", 1, oneWave), ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Apply(ctxT(t), tc.cmd)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if g := readRolloutT(t, s, "r1").GetGeneration(); g != 1 {
		t.Errorf("refused patches changed the generation to %d", g)
	}
}

func TestEndedRolloutLeavesTheIndexAndWakesItsClusters(t *testing.T) {
	s := mustNewStore(t)
	mustApply(t, s, putRollout(bigRollout("r1", 3), 0))
	if _, ok := s.HolderOf("c0"); !ok {
		t.Fatal("c0 should be held by r1")
	}
	w := s.WatchCluster("c2")
	defer w.Close()
	h := readRolloutT(t, s, "r1")
	hdr, _ := splitRollout(h)
	hdr.State = ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED
	mustApply(t, s, patch("r1", 1, hdr))
	if _, ok := s.HolderOf("c0"); ok {
		t.Error("c0 is still held by an aborted rollout")
	}
	if len(s.ActiveRollouts()) != 0 {
		t.Error("aborted rollout still active in the index")
	}
	select {
	case <-w.C:
	case <-time.After(5 * time.Second):
		t.Fatal("the end of the rollout did not wake c2's watch")
	}
}

func TestIndexSurvivesRestart(t *testing.T) {
	cfg := testConfig(t, "node1", true)
	s := mustOpen(t, cfg)
	waitEstablished(t, s)
	mustApply(t, s, registerCluster("c0", nil, false))
	mustApply(t, s, putRollout(bigRollout("r1", 4), 0))
	want := s.ActiveRollouts()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, cfg)
	got := s2.ActiveRollouts()
	if len(got) != 1 || !proto.Equal(got[0], want[0]) {
		t.Fatalf("index after restart: %v, want %v", got, want)
	}
	if _, ok := s2.Registered("c0"); !ok {
		t.Error("registry not rebuilt")
	}
}

func TestWholeRolloutsOfEarlierVersionsAreMigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	db, err := openStateDB(path)
	if err != nil {
		t.Fatal(err)
	}
	whole := bigRollout("old", 3)
	whole.Generation = 4
	if err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRollouts).Put([]byte("old"), encode(whole))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := openFSM(path, testLogger(), false, func([]Change) {}, func([]string, bool) {})
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	if err := f.view(func(tx *bbolt.Tx) error {
		got, ok, err := readRollout(tx, "old")
		if err != nil || !ok {
			return fmt.Errorf("read: %v %v", ok, err)
		}
		want := proto.Clone(whole).(*ebbflowv1.Rollout)
		want.Waves[0].Clusters[0].Results[1].Measurements[0].SamplesMs = nil // judged kpr: compacted
		if !proto.Equal(got, want) {
			t.Errorf("migrated rollout\n got %v\nwant %v", got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if h, ok := (&Store{fsm: f}).HolderOf("c0"); !ok || h.Header.GetId() != "old" {
		t.Errorf("migrated rollout not indexed: %+v %v", h, ok)
	}
}

// A node-by-node kpr phase has one result per node batch: each keeps its own measurements,
// read back and compacted one by one, and a dropped result drops only its own.
func TestMeasurementsPerResult(t *testing.T) {
	s := mustNewStore(t)
	mustApply(t, s, putRollout(bigRollout("r1", 2), 0))
	kpr, pass := ebbflowv1.Phase_PHASE_KPR, ebbflowv1.Verdict_VERDICT_PASS
	rec := proto.Clone(readRolloutT(t, s, "r1").GetWaves()[0].GetClusters()[0]).(*ebbflowv1.RolloutCluster)
	rec.Phase = kpr
	rec.Results = []*ebbflowv1.PhaseResult{{Phase: ebbflowv1.Phase_PHASE_BASELINE, Verdict: pass}, {Phase: kpr}}
	m := func(target string) []*ebbflowv1.Measurement {
		return []*ebbflowv1.Measurement{{Target: target, SamplesMs: []float64{1, 2}}}
	}
	mustApply(t, s, patch("r1", 1, nil, &storev1.ClusterPatch{Wave: 0, Index: 0, Cluster: rec, MeasurementsPhase: kpr, AddMeasurements: m("b1")}))
	// Batch 1 passes and batch 2 starts in the same decision.
	rec.Results[1].Verdict = pass
	rec.Results = append(rec.Results, &ebbflowv1.PhaseResult{Phase: kpr})
	mustApply(t, s, patch("r1", 2, nil, &storev1.ClusterPatch{Wave: 0, Index: 0, Cluster: rec, MeasurementsPhase: kpr, MeasurementsResult: 1, AddMeasurements: m("b2")}))
	got := readRolloutT(t, s, "r1").GetWaves()[0].GetClusters()[0].GetResults()
	b1, b2 := got[1].GetMeasurements(), got[2].GetMeasurements() // bigRollout's kpr result has "t"
	if len(b1) != 2 || b1[1].GetTarget() != "b1" || len(b1[1].GetSamplesMs()) != 0 {
		t.Errorf("batch 1 (judged): %v; want t and b1, compacted", b1)
	}
	if len(b2) != 1 || b2[0].GetTarget() != "b2" || len(b2[0].GetSamplesMs()) != 2 {
		t.Errorf("batch 2 (measuring): %v; want b2 with its samples", b2)
	}
	var ms MeasurementsByResult
	if err := s.View(t.Context(), Stale, func(tx *Tx) error {
		var err error
		ms, err = tx.ClusterMeasurements("r1", 0, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(ms[kpr]) != 2 || ms[kpr][1][0].GetTarget() != "b2" {
		t.Errorf("ClusterMeasurements kpr: %v", ms[kpr])
	}
	// Batch 2's result gone: batch 1 keeps its measurement.
	rec.Results = rec.Results[:2]
	mustApply(t, s, patch("r1", 3, nil, &storev1.ClusterPatch{Wave: 0, Index: 0, Cluster: rec}))
	got = readRolloutT(t, s, "r1").GetWaves()[0].GetClusters()[0].GetResults()
	if len(got) != 2 || len(got[1].GetMeasurements()) != 2 {
		t.Errorf("after dropping batch 2: %v", got)
	}
}
