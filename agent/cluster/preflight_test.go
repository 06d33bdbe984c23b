package cluster

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/e2e/kubebox"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// TestPreflightFailed: xdp on a cluster with a 5.4 kernel and a node without a NIC driver label
// reports PREFLIGHT_FAILED with the reasons and leaves the release and cilium-config alone. So
// does a profile whose chart namespace is not the agent's Cilium namespace.
func TestPreflightFailed(t *testing.T) {
	ctx := context.Background()
	c := kubebox.ForTest(t, kubebox.Options{Nodes: []kubebox.Node{
		{Name: "old-kernel", Kernel: "5.4.0-150-generic", Labels: map[string]string{nicLabel: "ixgbe"}},
		{Name: "no-driver", Kernel: "6.1.0-13-amd64"},
	}})
	e := newEnv(t, c, "kube-system", "ebbflow-system", map[string]any{"l7Proxy": false}, false)
	configBefore := e.config()
	d := e.driver(nil)
	rec := &recorder{}
	spec := testProfile(t, "kube-system", nil, nil)
	a := assignment("a-xdp", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, ebbflowv1.Phase_PHASE_XDP, spec, nil)
	if err := d.Execute(ctx, a, rec); err != nil {
		t.Fatal(err)
	}
	rs := rec.take()
	if got := statuses(rs); !slices.Equal(got, []string{"STARTED", "PREFLIGHT_FAILED"}) {
		t.Fatalf("reports %v", rs)
	}
	pf := rs[1]
	joined := strings.Join(pf.preflight, "\n")
	for _, want := range []string{
		"host-routing fails on node old-kernel",      // eBPF host routing needs 5.10
		"xdp-acceleration unknown on node no-driver", // no NIC driver label
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("preflight reasons lack %q:\n%s", want, joined)
		}
	}
	if pf.before != 1 || pf.after != 1 || !strings.Contains(pf.msg, "preflight of xdp failed") {
		t.Errorf("PREFLIGHT_FAILED report: %q, revisions %d->%d", pf.msg, pf.before, pf.after)
	}
	if hs := e.history(); len(hs) != 1 || hs[0].Info.Status != "deployed" {
		t.Errorf("the release changed: %d revisions", len(hs))
	}
	if !maps.Equal(e.config(), configBefore) {
		t.Error("cilium-config changed")
	}
	if ds := e.ds("cilium"); ds.Spec.Template.Annotations[RestartAnnotation] != "" {
		t.Error("the Cilium agents were restarted")
	}

	// Re-delivered, it is only reported again.
	if err := d.Execute(ctx, a, rec); err != nil {
		t.Fatal(err)
	}
	if rs := rec.take(); !slices.Equal(statuses(rs), []string{"PREFLIGHT_FAILED"}) || len(rs[0].preflight) != len(pf.preflight) {
		t.Errorf("re-report %v", rs)
	}

	// The profile's release in "cilium", the agent's Cilium in kube-system: l7 would upgrade one
	// and check the other.
	other := testProfile(t, "cilium", nil, nil)
	if err := d.Execute(ctx, assignment("a-ns", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, ebbflowv1.Phase_PHASE_L7, other, nil), rec); err != nil {
		t.Fatal(err)
	}
	rs = rec.take()
	if got := statuses(rs); !slices.Equal(got, []string{"STARTED", "PREFLIGHT_FAILED"}) {
		t.Fatalf("reports with another chart namespace %v", rs)
	}
	if want := `chart namespace "cilium" (the profile's chart.namespace) is not the namespace this agent manages Cilium in, "kube-system"`; !strings.Contains(rs[1].msg, want) || len(rs[1].preflight) != 1 {
		t.Errorf("PREFLIGHT_FAILED report %q %q, want it to say %s", rs[1].msg, rs[1].preflight, want)
	}
	if hs := e.history(); len(hs) != 1 {
		t.Errorf("the release changed: %d revisions", len(hs))
	}
	if !maps.Equal(e.config(), configBefore) {
		t.Error("cilium-config changed")
	}
}
