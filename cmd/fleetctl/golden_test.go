package main

import (
	"bytes"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/golden")

// golden compares got with testdata/golden/name, or writes it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/fleetctl -run %s -update writes it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", p, got, want)
	}
}

// The fixed clock and objects of the golden files.
var (
	goldenNow  = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	goldenTime = func(ago time.Duration) *timestamppb.Timestamp { return timestamppb.New(goldenNow.Add(-ago)) }
)

func goldenObjects() (*ebbflowv1.ListProfilesResponse, *ebbflowv1.ListClustersResponse, *ebbflowv1.ListRolloutsResponse) {
	profiles := &ebbflowv1.ListProfilesResponse{Profiles: []*ebbflowv1.Profile{
		{Name: "bare-metal", Revision: 1, UpdateTime: goldenTime(3 * time.Hour), UpdatedBy: "alice",
			Spec: &ebbflowv1.ProfileSpec{Description: "bare metal", Chart: &ebbflowv1.ChartRef{Version: "1.18.2"},
				Baseline: &ebbflowv1.BaselinePhase{}, Kpr: &ebbflowv1.KprPhase{}}},
		{Name: "eks", Revision: 4, UpdateTime: goldenTime(90 * time.Second), UpdatedBy: "bob",
			Spec: &ebbflowv1.ProfileSpec{Baseline: &ebbflowv1.BaselinePhase{}, L7: &ebbflowv1.L7Phase{}}},
	}}
	clusters := &ebbflowv1.ListClustersResponse{Clusters: []*ebbflowv1.Cluster{
		{Name: "eu-1", Labels: map[string]string{"env": "prod", "region": "eu"}, Liveness: ebbflowv1.Liveness_LIVENESS_ALIVE, Generation: 3,
			Inventory: &ebbflowv1.Inventory{KubernetesVersion: "v1.34.3", CiliumImageVersion: "1.18.2", KubeProxyPresent: true, CloudProvider: "aws",
				Nodes: []*ebbflowv1.NodeInfo{{Name: "n1", KernelVersion: "6.8.0"}, {Name: "n2", KernelVersion: "6.1.112"}}}},
		{Name: "us-1", Cordoned: true, CordonReason: "freeze", Liveness: ebbflowv1.Liveness_LIVENESS_SILENT, Generation: 1},
	}}
	rollouts := &ebbflowv1.ListRolloutsResponse{Rollouts: []*ebbflowv1.Rollout{goldenRollout()}}
	return profiles, clusters, rollouts
}

// goldenRollout is an aborted rollout: a wave the controller left soaking, one never started, a
// cluster judged with percentiles (one unbounded above) and one measuring its second window.
func goldenRollout() *ebbflowv1.Rollout {
	pass := ebbflowv1.Verdict_VERDICT_PASS
	return &ebbflowv1.Rollout{
		Id: "tune-eu", ProfileRevision: 4, State: ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED, CreatedBy: "alice",
		CreateTime: goldenTime(2 * time.Hour), EndTime: goldenTime(time.Hour), Message: "aborted by alice: change window closed",
		Spec: &ebbflowv1.RolloutSpec{Profile: "eks", ClusterSelector: "env=prod", FailurePolicy: ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS,
			PhaseTimeout: durationpb.New(10 * time.Minute)},
		Waves: []*ebbflowv1.Wave{
			{Index: 0, Name: "canary", State: ebbflowv1.WaveState_WAVE_STATE_SOAKING, Clusters: []*ebbflowv1.RolloutCluster{
				{Cluster: "eu-1", Phase: ebbflowv1.Phase_PHASE_KPR, State: ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SUCCEEDED,
					Reason: "measuring window 2/3",
					Results: []*ebbflowv1.PhaseResult{{Phase: ebbflowv1.Phase_PHASE_KPR, Verdict: pass, P50DeltaPercent: 1.04, P99DeltaPercent: 12.1,
						Window: 2, MaxWindows: 3, Percentiles: []*ebbflowv1.PercentileVerdict{
							{Name: "p50", Verdict: pass, DeltaPercent: 1.04, LowerPercent: -2, UpperPercent: 4.1, BudgetPercent: 10},
							{Name: "p99", Verdict: ebbflowv1.Verdict_VERDICT_REGRESSION, DeltaPercent: 12.1, LowerPercent: 4, UpperPercent: 20.9, BudgetPercent: 10},
							{Name: "p999", Verdict: ebbflowv1.Verdict_VERDICT_INCONCLUSIVE, DeltaPercent: 15, LowerPercent: -100, UpperPercent: math.Inf(1), BudgetPercent: 30},
						}}}},
				{Cluster: "eu-2", Phase: ebbflowv1.Phase_PHASE_L7, State: ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_MEASURING,
					Results: []*ebbflowv1.PhaseResult{{Phase: ebbflowv1.Phase_PHASE_L7, Verdict: ebbflowv1.Verdict_VERDICT_INCONCLUSIVE,
						P50DeltaPercent: 3, P99DeltaPercent: 9, Window: 1, MaxWindows: 3}}},
			}},
			{Index: 1, State: ebbflowv1.WaveState_WAVE_STATE_PENDING, Clusters: []*ebbflowv1.RolloutCluster{
				{Cluster: "eu-3", State: ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_PENDING}}},
		},
		Skipped: []*ebbflowv1.SkippedCluster{{Cluster: "us-1", Reason: "cordoned: freeze"}},
	}
}

// Every -o of every list, with a fixed clock: table, wide, json, yaml, name, jsonpath and
// --no-headers.
func TestOutputGolden(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return goldenNow }
	profiles, clusters, rollouts := goldenObjects()
	lists := []struct {
		name string
		msg  proto.Message
		tbl  func(w io.Writer)
	}{
		{"profiles", profiles, func(w io.Writer) { profileTable(w, profiles.GetProfiles()) }},
		{"clusters", clusters, func(w io.Writer) { clusterTable(w, clusters.GetClusters()) }},
		{"rollouts", rollouts, func(w io.Writer) { rolloutTable(w, rollouts.GetRollouts()) }},
	}
	outputs := []struct {
		file, output string
		noHeaders    bool
	}{
		{"table", "table", false},
		{"no-headers", "table", true},
		{"wide", "wide", false},
		{"json", "json", false},
		{"yaml", "yaml", false},
		{"name", "name", false},
		{"jsonpath", "jsonpath={range .*[*]}{.name}{.id} {end}", false},
	}
	for _, l := range lists {
		for _, o := range outputs {
			var out, errOut bytes.Buffer
			a := &app{out: &out, errOut: &errOut, output: o.output, noHeaders: o.noHeaders}
			if err := a.checkOutput(); err != nil {
				t.Fatal(err)
			}
			if err := a.printMsg(l.msg, l.tbl); err != nil {
				t.Fatalf("%s -o %s: %v", l.name, o.output, err)
			}
			golden(t, l.name+"."+o.file, out.String())
		}
	}
}

// The status view: an aborted rollout's waves, percentile verdicts, measuring windows.
func TestRolloutViewGolden(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return goldenNow }
	got := statusTable(t, goldenRollout())
	golden(t, "rollout-status.table", got)
	for _, want := range []string{
		"0 canary (aborted)", "1 not started",
		"eu-1 kpr: p50 +1.0% [-2.0%, +4.1%] <= budget 10% pass; p99 +12.1% [+4.0%, +20.9%] > budget 10% regression; p999 +15.0% [-100.0%, +inf] spans budget 30% inconclusive",
		"measuring window 2/3",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	if strings.Contains(got, "soaking") {
		t.Errorf("an aborted rollout's wave shows as soaking:\n%s", got)
	}
	if strings.Count(got, "measuring window") != 1 {
		t.Errorf("only the measuring cluster should show its window:\n%s", got)
	}
	r := goldenRollout()
	var out bytes.Buffer
	a := &app{out: &out, errOut: &out, output: "table"}
	events := []*ebbflowv1.RolloutEvent{
		{Time: goldenTime(2 * time.Hour), Actor: "alice", Kind: "create", Wave: -1, Message: "created"},
		{Time: goldenTime(time.Hour), Actor: "engine", Kind: "start-wave", Wave: 0, Message: "wave canary started"},
	}
	if err := a.printMsg(r, func(w io.Writer) { describeRollout(w, r, events) }); err != nil {
		t.Fatal(err)
	}
	golden(t, "rollout-describe.table", out.String())
	if !strings.Contains(out.String(), "alice   create      -") {
		t.Errorf("an event of no wave should show - in WAVE:\n%s", out.String())
	}
}

// statusTable is rollout status -o table of r.
func statusTable(t *testing.T, r *ebbflowv1.Rollout) string {
	t.Helper()
	var out bytes.Buffer
	a := &app{out: &out, errOut: &out, output: "table"}
	if err := a.printMsg(r, func(w io.Writer) { rolloutView(w, r) }); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
