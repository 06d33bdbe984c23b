package controller

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout"
	"github.com/ebbflow/ebbflow/rollout/profile"
	"github.com/ebbflow/ebbflow/store"
)

// batchServer is a leader (one real Raft node on disk) with n registered clusters and a running
// rollout of all of them in one wave, every cluster assigned its baseline phase.
func batchServer(t *testing.T, n int) (*Server, *store.Store, *ebbflowv1.Rollout) {
	t.Helper()
	st, err := store.Open(store.Config{NodeID: "n1", DataDir: t.TempDir(), Bootstrap: true, Fast: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	for !st.IsLeader() {
		if ctx.Err() != nil {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s, err := New(Config{Store: st, NodeID: "n1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../deploy/profiles/bare-metal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name, spec, err := profile.DecodeYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, &storev1.Command{Body: &storev1.Command_CreateProfile{CreateProfile: &storev1.CreateProfile{Name: name, Spec: spec}}}); err != nil {
		t.Fatal(err)
	}
	values, _ := structpb.NewStruct(map[string]any{"k8sServiceHost": "10.0.0.1", "k8sServicePort": 6443})
	for i := range n {
		inv := &ebbflowv1.Inventory{KubernetesVersion: "v1.34.3", HelmValues: values, KubeProxyPresent: true, Nodes: []*ebbflowv1.NodeInfo{
			{Name: "n1", KernelVersion: "6.8.0-45-generic", NicDriver: "mlx5", Ready: true},
		}}
		if _, err := st.Apply(ctx, &storev1.Command{Body: &storev1.Command_RegisterCluster{RegisterCluster: &storev1.RegisterCluster{
			Name: fmt.Sprintf("c-%03d", i), Labels: map[string]string{"env": "prod"}, Inventory: inv,
		}}}); err != nil {
			t.Fatal(err)
		}
	}
	gates := &ebbflowv1.WaveGates{SoakTime: durationpb.New(time.Millisecond)}
	rspec, err := rollout.CheckSpec(&ebbflowv1.RolloutSpec{
		Profile: name, ClusterSelector: "env=prod",
		Waves: &ebbflowv1.RolloutSpec_Explicit{Explicit: &ebbflowv1.ExplicitWaves{Waves: []*ebbflowv1.WaveSpec{{Name: "all", Selector: "env=prod", Gates: gates}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.createRollout(ctx, "big", "tester", rspec, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.stepAll(ctx); err != nil {
		t.Fatal(err)
	}
	r, ok := st.ActiveRollout(r.GetId())
	if !ok {
		t.Fatal("rollout not active after its first step")
	}
	for _, c := range r.GetWaves()[0].GetClusters() {
		if c.GetAssignmentId() == "" {
			t.Fatalf("%s has no assignment after the first step", c.GetCluster())
		}
	}
	return s, st, r
}

// Reports that arrive while a batch is being decided are decided together and written as one
// Raft entry (the next), each with its own answer; the entry's size per report does not depend on the
// number of clusters in the rollout.
func TestReportsArrivingTogetherShareOneEntry(t *testing.T) {
	const n = 60
	s, st, r := batchServer(t, n)
	before := st.ProposedStats()["report"]

	s.rolloutMu.Lock() // hold decisions until every report is queued
	var wg sync.WaitGroup
	type answer struct {
		ok     bool
		reason string
		err    error
	}
	answers := make([]answer, n)
	for i, c := range r.GetWaves()[0].GetClusters() {
		wg.Go(func() {
			ok, reason, err := s.submitReport(context.Background(), rollout.Report{
				Ref: &ebbflowv1.ReportRef{Cluster: c.GetCluster(), AssignmentId: c.GetAssignmentId(),
					ProfileRevision: r.GetProfileRevision(), Phase: c.GetPhase()},
				Status: ebbflowv1.PhaseStatus_PHASE_STATUS_APPLIED, ReportTime: time.Now(),
			})
			answers[i] = answer{ok, reason, err}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.reports.mu.Lock()
		queued := len(s.reports.pending) + s.reports.taken
		s.reports.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			s.rolloutMu.Unlock()
			t.Fatalf("%d of %d reports queued", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
	s.rolloutMu.Unlock()
	wg.Wait()
	for i, a := range answers {
		if !a.ok || a.err != nil {
			t.Errorf("report %d: accepted %v, reason %q, err %v", i, a.ok, a.reason, a.err)
		}
	}
	got := st.ProposedStats()["report"]
	entries, commands, bytes := got.Entries-before.Entries, got.Commands-before.Commands, got.Bytes-before.Bytes
	// The first report's batch may have started before the others queued: at most two entries.
	if entries > 2 || commands != n {
		t.Errorf("%d reports written as %d entries of %d commands, want at most 2 entries", n, entries, commands)
	}
	if per := bytes / commands; per > 2048 {
		t.Errorf("%d bytes per report in the entry, want at most 2 KiB", per)
	}
	// Every report is in the stored history.
	var hist []*ebbflowv1.RolloutEvent
	if err := st.View(context.Background(), store.Stale, func(tx *store.Tx) error {
		var err error
		hist, err = tx.RolloutEvents("big")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	reports := 0
	for _, e := range hist {
		if e.GetKind() == "report" {
			reports++
		}
	}
	if reports != n {
		t.Errorf("history holds %d report events, want %d", reports, n)
	}
}

// A report that does not match its cluster's assignment is refused with the reason, and the
// others of its batch are still accepted.
func TestStaleReportRefusedInItsBatch(t *testing.T) {
	s, _, r := batchServer(t, 3)
	cs := r.GetWaves()[0].GetClusters()
	ref := func(c *ebbflowv1.RolloutCluster, id string) *ebbflowv1.ReportRef {
		return &ebbflowv1.ReportRef{Cluster: c.GetCluster(), AssignmentId: id, ProfileRevision: r.GetProfileRevision(), Phase: c.GetPhase()}
	}
	ok, reason, err := s.submitReport(context.Background(), rollout.Report{Ref: ref(cs[0], "big.c-000.99"), Status: ebbflowv1.PhaseStatus_PHASE_STATUS_APPLIED})
	if ok || err != nil || reason == "" {
		t.Errorf("stale report: accepted %v, reason %q, err %v", ok, reason, err)
	}
	ok, reason, err = s.submitReport(context.Background(), rollout.Report{Ref: ref(cs[1], cs[1].GetAssignmentId()), Status: ebbflowv1.PhaseStatus_PHASE_STATUS_APPLIED})
	if !ok || err != nil {
		t.Errorf("current report: accepted %v, reason %q, err %v", ok, reason, err)
	}
	_, _, err = s.submitReport(context.Background(), rollout.Report{Ref: &ebbflowv1.ReportRef{Cluster: "nobody", AssignmentId: "x", ProfileRevision: 1, Phase: ebbflowv1.Phase_PHASE_BASELINE}})
	if err == nil {
		t.Error("a report of an unregistered cluster was not refused")
	}
}

// A report whose caller gives up while it waits for its batch is still decided there, and its
// audit record is written in the batch's entry: the interceptor writes none of its own, so a
// wave of agents timing out does not turn into a wave of Raft writes.
func TestGivenUpReportIsAuditedInItsBatch(t *testing.T) {
	s, st, r := batchServer(t, 3)
	c := r.GetWaves()[0].GetClusters()[0]
	call := &auditCall{procedure: "ebbflow.v1.AgentService/ReportPhaseStatus", actor: "agent:" + c.GetCluster(), resource: "cluster/" + c.GetCluster()}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), auditKey{}, call))
	before := st.ProposedStats()
	s.rolloutMu.Lock() // hold the batch until the caller has given up
	done := make(chan error, 1)
	go func() {
		_, _, err := s.submitReport(ctx, rollout.Report{
			Ref: &ebbflowv1.ReportRef{Cluster: c.GetCluster(), AssignmentId: c.GetAssignmentId(),
				ProfileRevision: r.GetProfileRevision(), Phase: c.GetPhase()},
			Status: ebbflowv1.PhaseStatus_PHASE_STATUS_APPLIED, ReportTime: time.Now(),
		})
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.reports.mu.Lock()
		queued := len(s.reports.pending) + s.reports.taken
		s.reports.mu.Unlock()
		if queued == 1 {
			break
		}
		if time.Now().After(deadline) {
			s.rolloutMu.Unlock()
			t.Fatal("the report was never queued")
		}
	}
	cancel()
	err := <-done
	s.finish(ctx, call, nil, err) // what the interceptor does when the handler returns
	s.rolloutMu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		call.mu.Lock()
		written := call.written
		call.mu.Unlock()
		if written {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the given-up report (%v) was not recorded by its batch", err)
		}
	}
	after := st.ProposedStats()
	if d := after["record_audit"].Entries - before["record_audit"].Entries; d != 0 {
		t.Errorf("%d audit entries of their own for a report given up on, want 0", d)
	}
	if d := after["report"].Commands - before["report"].Commands; d != 1 {
		t.Errorf("%d report commands, want the report's decision carrying its record", d)
	}
}

// recordPatches appends new measurements to the result they belong to: in a node-by-node kpr
// phase, one of several results of the same phase.
func TestRecordPatchesKprBatches(t *testing.T) {
	kpr := ebbflowv1.Phase_PHASE_KPR
	m := func(target string) *ebbflowv1.Measurement { return &ebbflowv1.Measurement{Target: target} }
	prev := &ebbflowv1.RolloutCluster{Cluster: "c1", Results: []*ebbflowv1.PhaseResult{
		{Phase: kpr, Measurements: []*ebbflowv1.Measurement{m("a")}},
	}}
	// Batch 1 measured and passed, batch 2 started, in one decision.
	cur := &ebbflowv1.RolloutCluster{Cluster: "c1", Results: []*ebbflowv1.PhaseResult{
		{Phase: kpr, Measurements: []*ebbflowv1.Measurement{m("a"), m("b")}},
		{Phase: kpr},
	}}
	ps := recordPatches(0, 0, prev, cur)
	if len(ps) != 1 || ps[0].GetMeasurementsResult() != 0 || len(ps[0].GetAddMeasurements()) != 1 || ps[0].GetAddMeasurements()[0].GetTarget() != "b" {
		t.Fatalf("batch 1's patch %v", ps)
	}
	next := proto.Clone(cur).(*ebbflowv1.RolloutCluster)
	next.Results[1].Measurements = []*ebbflowv1.Measurement{m("c")}
	ps = recordPatches(0, 0, cur, next)
	if len(ps) != 1 || ps[0].GetMeasurementsResult() != 1 || len(ps[0].GetAddMeasurements()) != 1 || ps[0].GetAddMeasurements()[0].GetTarget() != "c" {
		t.Fatalf("batch 2's patch %v", ps)
	}
	for _, r := range ps[0].GetCluster().GetResults() {
		if len(r.GetMeasurements()) > 0 {
			t.Fatal("the patched record carries measurements")
		}
	}
}
