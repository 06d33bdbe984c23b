package profile

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func nodeByNode(b *ebbflowv1.KprBatches) *ebbflowv1.ProfileSpec {
	s := spec(nil, nil, kprOK(), nil)
	s.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
	s.Kpr.Batches = b
	return s
}

func TestKprBatchSizes(t *testing.T) {
	tests := []struct {
		b        *ebbflowv1.KprBatches
		eligible int
		want     []int
	}{
		{nil, 0, nil},
		{nil, 1, []int{1}},
		{nil, 6, []int{1, 2, 2, 1}}, // default canary 1, then 25% of 6 = 2
		{&ebbflowv1.KprBatches{BatchPercent: proto.Int32(50)}, 6, []int{1, 3, 2}},
		{&ebbflowv1.KprBatches{BatchPercent: proto.Int32(100)}, 6, []int{1, 5}},
		{&ebbflowv1.KprBatches{CanaryNodes: proto.Int32(3), BatchNodes: proto.Int32(10)}, 2, []int{2}},
		{&ebbflowv1.KprBatches{CanaryNodes: proto.Int32(2), BatchNodes: proto.Int32(4)}, 11, []int{2, 4, 4, 1}},
		{&ebbflowv1.KprBatches{BatchPercent: proto.Int32(1)}, 3, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%d", tt.b, tt.eligible), func(t *testing.T) {
			got := KprBatchSizes(tt.b, tt.eligible)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("KprBatchSizes = %v, want %v", got, tt.want)
			}
			sum := 0
			for _, n := range got {
				sum += n
			}
			if sum != tt.eligible {
				t.Fatalf("sizes add up to %d, want %d", sum, tt.eligible)
			}
		})
	}
}

func TestKprBatchPlan(t *testing.T) {
	s := nodeByNode(&ebbflowv1.KprBatches{BatchPercent: proto.Int32(50)})
	inv := inventory(node("n-06", "6.1.0", "ice"), node("n-02", "6.1.0", "ice"), node("n-03", "4.18.0", "ice"),
		node("n-01", "6.1.0", "ice"), node("n-05", "6.1.0", "ice"), node("n-04", "6.1.0", "ice"))
	pf := NewPreflighter(s)
	plan := pf.KprBatchPlan(inv)
	var got []string
	for _, b := range plan {
		got = append(got, fmt.Sprintf("%d/%d:%s", b.GetBatch(), b.GetBatches(), strings.Join(b.GetNodes(), ",")))
	}
	want := []string{"1/3:n-01", "2/3:n-02,n-04,n-05", "3/3:n-06"}
	if !slices.Equal(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
	if sk := plan[0].GetSkipped(); len(sk) != 1 || !strings.HasPrefix(sk[0], "n-03: ") || !strings.Contains(sk[0], "4.18") {
		t.Fatalf("skipped = %q, want n-03 with its kernel", sk)
	}
	if plan[2].GetNodesMovedBefore() != 4 {
		t.Fatalf("batch 3 nodes moved before = %d, want 4", plan[2].GetNodesMovedBefore())
	}
	// A held node holds only itself; every node held holds the phase.
	if ok, reasons := pf.Passes(pf.Check(ebbflowv1.Phase_PHASE_KPR, inv)); !ok {
		t.Fatalf("one old node held the whole phase: %v", reasons)
	}
	if ok, _ := PhasePasses(pf.Check(ebbflowv1.Phase_PHASE_KPR, inv)); ok {
		t.Fatal("PhasePasses (cluster-wide rule) passed a cluster with an old kernel")
	}
	old := inventory(node("n-01", "4.18.0", "ice"), node("n-02", "4.18.0", "ice"))
	if ok, reasons := pf.Passes(pf.Check(ebbflowv1.Phase_PHASE_KPR, old)); ok || len(reasons) != 2 {
		t.Fatalf("every node held: ok %v reasons %v, want held with 2 reasons", ok, reasons)
	}
	if NewPreflighter(spec(nil, nil, kprOK(), nil)).KprBatchPlan(inv) != nil {
		t.Fatal("a cluster-wide profile has a batch plan")
	}
}

func TestKprValuesSplit(t *testing.T) {
	s := nodeByNode(nil)
	helm := HelmPhaseValues(s, ebbflowv1.Phase_PHASE_KPR)
	if helm.GetK8SServiceHost() != "10.0.0.1" || helm.GetK8SServicePort() != 6443 || helm.KubeProxyReplacement != nil || helm.GetRoutingMode() != 0 {
		t.Fatalf("Helm values of a node-by-node kpr phase = %v, want only the service host and port", helm)
	}
	node := KprNodeConfig(s)
	if node["kube-proxy-replacement"] != "true" || node["routing-mode"] != "native" || node["enable-bpf-masquerade"] != "true" {
		t.Fatalf("node config = %v, want the kpr keys", node)
	}
	if !proto.Equal(HelmPhaseValues(s, ebbflowv1.Phase_PHASE_XDP), CumulativeValues(s, ebbflowv1.Phase_PHASE_XDP)) {
		t.Fatal("xdp's Helm values leave kpr's out")
	}
	cw := spec(nil, nil, kprOK(), nil)
	if !proto.Equal(HelmPhaseValues(cw, ebbflowv1.Phase_PHASE_KPR), CumulativeValues(cw, ebbflowv1.Phase_PHASE_KPR)) {
		t.Fatal("a cluster-wide kpr phase's Helm values differ from its cumulative values")
	}
}
