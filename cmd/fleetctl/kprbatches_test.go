package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// The status of a node-by-node kpr phase: eu-4 passed batch 1 and regressed in batch 2, which
// was rolled back; eu-5 applies its batch 2; each batch is one line with its nodes.
func TestRolloutViewKprBatches(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return goldenNow }
	kpr, pass := ebbflowv1.Phase_PHASE_KPR, ebbflowv1.Verdict_VERDICT_PASS
	skipped := []string{"n-03: kube-proxy-replacement fails: kernel 4.18 < 5.10"}
	r := &ebbflowv1.Rollout{
		Id: "kpr-eu", ProfileRevision: 2, State: ebbflowv1.RolloutState_ROLLOUT_STATE_RUNNING, Message: "wave canary in progress",
		Spec: &ebbflowv1.RolloutSpec{Profile: "bare-metal"},
		Waves: []*ebbflowv1.Wave{{Index: 0, Name: "canary", State: ebbflowv1.WaveState_WAVE_STATE_PROGRESSING, Clusters: []*ebbflowv1.RolloutCluster{
			{Cluster: "eu-4", Phase: kpr, KprBatch: 2, State: ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK,
				Reason: "kpr batch 2/3 regressed: batch 2 rolled back; batch 1 (n-01) keeps kube-proxy replacement",
				Results: []*ebbflowv1.PhaseResult{
					{Phase: ebbflowv1.Phase_PHASE_BASELINE, Verdict: pass},
					{Phase: kpr, Verdict: pass, P50DeltaPercent: 1, P99DeltaPercent: 2,
						KprBatch: &ebbflowv1.KprBatchStatus{Batch: 1, Batches: 3, Nodes: []string{"n-01"}, Skipped: skipped}},
					{Phase: kpr, Verdict: ebbflowv1.Verdict_VERDICT_REGRESSION, P50DeltaPercent: 4, P99DeltaPercent: 31,
						KprBatch: &ebbflowv1.KprBatchStatus{Batch: 2, Batches: 3, Nodes: []string{"n-02", "n-04", "n-05"}, NodesMovedBefore: 1}},
				}},
			{Cluster: "eu-5", Phase: kpr, KprBatch: 2, State: ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_APPLYING, Reason: "kpr batch 2/2",
				Results: []*ebbflowv1.PhaseResult{
					{Phase: ebbflowv1.Phase_PHASE_BASELINE, Verdict: pass},
					{Phase: kpr, Verdict: pass, KprBatch: &ebbflowv1.KprBatchStatus{Batch: 1, Batches: 2, Nodes: []string{"m-01"}}},
					{Phase: kpr, KprBatch: &ebbflowv1.KprBatchStatus{Batch: 2, Batches: 2}},
				}},
		}}},
	}
	got := statusTable(t, r)
	golden(t, "rollout-status-kpr.table", got)
	for _, want := range []string{
		"eu-4     kpr 2/3",
		"  eu-4 kpr batch 1/3: n-01 (0 moved before): pass\n",
		"  eu-4 kpr batch 2/3: n-02, n-04, n-05 (1 moved before): regression\n",
		"  eu-4 kpr skips n-03: kube-proxy-replacement fails: kernel 4.18 < 5.10\n",
		"  eu-5 kpr batch 2/2: not started\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q", want)
		}
	}
}

// The plan lists each cluster's node batches and the nodes left out, under the table.
func TestPlanTableKprBatches(t *testing.T) {
	nodes := []string{"n-02", "n-04", "n-05", "n-06", "n-07", "n-08", "n-09", "n-10", "n-11", "n-12"}
	p := &ebbflowv1.PlanRolloutResponse{ProfileRevision: 2, Waves: []*ebbflowv1.WavePlan{{Index: 0, Name: "canary", Clusters: []*ebbflowv1.ClusterPlan{
		{Cluster: "eu-4", Phases: []ebbflowv1.Phase{ebbflowv1.Phase_PHASE_BASELINE, ebbflowv1.Phase_PHASE_KPR}, KprBatches: []*ebbflowv1.KprBatchStatus{
			{Batch: 1, Batches: 2, Nodes: []string{"n-01"}, Skipped: []string{"n-03: kube-proxy-replacement fails: kernel 4.18 < 5.10"}},
			{Batch: 2, Batches: 2, Nodes: nodes, NodesMovedBefore: 1},
		}},
		{Cluster: "eu-5", Phases: []ebbflowv1.Phase{ebbflowv1.Phase_PHASE_BASELINE, ebbflowv1.Phase_PHASE_KPR}},
	}}}}
	var out bytes.Buffer
	a := &app{out: &out, errOut: &out, output: "table"}
	if err := a.printMsg(p, func(w io.Writer) { planTable(w, p) }); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	want := `
Node batches (kpr node by node):
  eu-4 kpr batch 1/2: n-01 (0 moved before)
  eu-4 kpr batch 2/2: n-02, n-04, n-05, n-06, n-07, n-08, n-09, n-10 and 2 more (1 moved before)
  eu-4 kpr skips n-03: kube-proxy-replacement fails: kernel 4.18 < 5.10
`
	if !strings.HasSuffix(got, want) {
		t.Fatalf("plan:\n%s\nwant it to end with:%s", got, want)
	}
	if strings.Contains(got, "eu-5 kpr") {
		t.Fatalf("a cluster-wide cluster lists batches:\n%s", got)
	}
}
