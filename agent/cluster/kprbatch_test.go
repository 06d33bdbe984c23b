package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/ebbflow/ebbflow/e2e/kubebox"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// nodeByNodeNodes are six nodes, n-03 with a kernel too old for kube-proxy replacement.
func nodeByNodeNodes() []kubebox.Node {
	var out []kubebox.Node
	for i := 1; i <= 6; i++ {
		k := "6.8.0-45-generic"
		if i == 3 {
			k = "4.18.0-553.el8_10.x86_64"
		}
		out = append(out, kubebox.Node{Name: fmt.Sprintf("n-%02d", i), Kernel: k, Labels: map[string]string{nicLabel: "mlx5_core"}})
	}
	return out
}

// nodeByNodeProfile is testProfile with kpr node by node: a canary of 1, then 50%; kube-proxy
// is the env's own DaemonSet.
func nodeByNodeProfile(t testing.TB, ns string) *ebbflowv1.ProfileSpec {
	spec := testProfile(t, ns, nil, []*ebbflowv1.DaemonSetRef{{Namespace: ns, Name: "kube-proxy"}})
	spec.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
	spec.Kpr.Batches = &ebbflowv1.KprBatches{CanaryNodes: proto.Int32(1), BatchPercent: proto.Int32(50)}
	return spec
}

func batchAssignment(id string, spec *ebbflowv1.ProfileSpec, batch int32) *ebbflowv1.Assignment {
	a := assignment(id, ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, ebbflowv1.Phase_PHASE_KPR, spec, nil)
	a.KprBatch = batch
	return a
}

// podNodes lists the nodes a DaemonSet of the env has a ready pod on, sorted.
func (e *env) podNodes(name string) []string {
	e.t.Helper()
	pods, err := (&Driver{cs: e.c.Clientset}).podsOn(context.Background(), e.ciliumNS, name, e.nodeNames())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, p := range pods {
		if p.DeletionTimestamp == nil && podReady(&p) {
			out = append(out, p.Spec.NodeName)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (e *env) nodeNames() []string {
	e.t.Helper()
	ns, err := e.c.Clientset.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, n := range ns.Items {
		out = append(out, n.Name)
	}
	slices.Sort(out)
	return out
}

// waitPodNodes polls until the DaemonSet's ready pods sit exactly on want.
func (e *env) waitPodNodes(name string, want []string) {
	e.t.Helper()
	var got []string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		got = e.podNodes(name)
		return slices.Equal(got, want), nil
	})
	if err != nil {
		e.t.Fatalf("%s pods on %v, want %v", name, got, want)
	}
}

// labelled lists the nodes carrying key (with its value), sorted by node.
func (e *env) labelled(key string) []string {
	e.t.Helper()
	ns, err := e.c.Clientset.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, n := range ns.Items {
		if v, ok := n.Labels[key]; ok {
			out = append(out, n.Name+"="+v)
		}
	}
	slices.Sort(out)
	return out
}

// nodeConfigs lists the CiliumNodeConfig names in the env's Cilium namespace.
func (e *env) nodeConfigs() []string {
	e.t.Helper()
	l, err := dynamic.NewForConfigOrDie(e.c.RESTConfig).Resource(cncResource).Namespace(e.ciliumNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, u := range l.Items {
		out = append(out, u.GetName())
	}
	slices.Sort(out)
	return out
}

// wantMoved checks that exactly the nodes of moved (node: batch key) carry both kpr labels,
// that one CiliumNodeConfig per batch key exists, and that kube-proxy runs on kubeProxy.
func (e *env) wantMoved(when string, moved map[string]string, kubeProxy []string) {
	e.t.Helper()
	var batch, mv, cncs []string
	for n, k := range moved {
		batch, mv, cncs = append(batch, n+"="+k), append(mv, n+"=true"), append(cncs, cncName(k))
	}
	slices.Sort(batch)
	slices.Sort(mv)
	slices.Sort(cncs)
	cncs = slices.Compact(cncs)
	if got := e.labelled(KprBatchLabel); !slices.Equal(got, batch) {
		e.t.Fatalf("%s: batch labels %v, want %v", when, got, batch)
	}
	if got := e.labelled(KprMovedLabel); !slices.Equal(got, mv) {
		e.t.Fatalf("%s: moved labels %v, want %v", when, got, mv)
	}
	if got := e.nodeConfigs(); !slices.Equal(got, cncs) {
		e.t.Fatalf("%s: CiliumNodeConfigs %v, want %v", when, got, cncs)
	}
	e.waitPodNodes("kube-proxy", kubeProxy)
}

func all(nodes []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return slices.Contains(drop, n) })
}

// TestKprNodeByNode moves kube-proxy replacement over six real nodes (one held by its kernel)
// in three batches, adds a node mid-phase, rolls the last two batches back, then the whole
// cluster, checking after each step the node labels, the CiliumNodeConfigs, where kube-proxy
// and Cilium pods run, cilium-config, the Helm history and the reports.
func TestKprNodeByNode(t *testing.T) {
	ctx := context.Background()
	c := kubebox.ForTest(t, kubebox.Options{Nodes: nodeByNodeNodes()})
	ns := "nbn"
	e := newEnv(t, c, ns, "ebbflow-"+ns, map[string]any{"l7Proxy": false}, true)
	spec := nodeByNodeProfile(t, ns)
	d := e.driver(nil)
	rec := &recorder{}
	nodes := e.nodeNames()
	k1, k2, k3 := batchKey("r1", 1), batchKey("r1", 2), batchKey("r1", 3)

	exec := func(a *ebbflowv1.Assignment) []report {
		t.Helper()
		if err := d.Execute(ctx, a, rec); err != nil {
			t.Fatalf("%s: %v", a.GetId(), err)
		}
		return rec.take()
	}
	lastBatch := func(rs []report, want string) {
		t.Helper()
		if got := statuses(rs); !slices.Equal(got, []string{"STARTED", "APPLIED", "VERIFIED", "MEASURED"}) {
			t.Fatalf("reports %v", rs)
		}
		b := rs[len(rs)-1].batch
		got := fmt.Sprintf("%d/%d:%s", b.GetBatch(), b.GetBatches(), strings.Join(b.GetNodes(), ","))
		if got != want {
			t.Fatalf("MEASURED report's batch %s, want %s (%s)", got, want, rs[len(rs)-1].msg)
		}
	}

	// Batch 1, the canary: n-01. (Its Helm upgrade changes the Cilium pod template, so every
	// Cilium pod is replaced once here; batch 2 shows a batch restarts only its own.)
	rs := exec(batchAssignment("a-kpr-1", spec, 1))
	lastBatch(rs, "1/3:n-01")
	if sk := rs[len(rs)-1].batch.GetSkipped(); len(sk) != 1 || !strings.HasPrefix(sk[0], "n-03: ") {
		t.Errorf("skipped %q, want n-03 with its reason", sk)
	}
	if !strings.Contains(rs[len(rs)-1].msg, "kpr batch 1/3: node n-01") {
		t.Errorf("MEASURED message %q does not name the batch", rs[len(rs)-1].msg)
	}
	e.wantMoved("batch 1", map[string]string{"n-01": k1}, all(nodes, "n-01"))
	if cfg := e.config(); cfg["kube-proxy-replacement"] == "true" {
		t.Error("cilium-config turned kube-proxy replacement on for the whole cluster")
	}
	hs := e.history()
	if len(hs) != 2 || hs[1].Config["k8sServiceHost"] != "10.0.0.10" || hs[1].Config["kubeProxyReplacement"] != nil {
		t.Fatalf("helm history: %d revisions, last values %v", len(hs), hs[len(hs)-1].Config)
	}

	// Batch 2: half of the 5 eligible nodes, rounded up: n-02, n-04, n-05 (n-03 held).
	ciliumBefore := e.podUIDs("cilium")
	rs = exec(batchAssignment("a-kpr-2", spec, 2))
	lastBatch(rs, "2/3:n-02,n-04,n-05")
	after := e.podUIDs("cilium")
	for node, uid := range ciliumBefore {
		if moved := slices.Contains([]string{"n-02", "n-04", "n-05"}, node); (after[node] != uid) != moved {
			t.Errorf("batch 2: Cilium pod on %s replaced=%v, want %v", node, after[node] != uid, moved)
		}
	}
	e.waitPodNodes("kube-proxy", []string{"n-03", "n-06"})
	if len(e.history()) != 2 {
		t.Fatalf("batch 2 upgraded Helm again: %d revisions", len(e.history()))
	}

	// A node added mid-phase is not moved, and the report says so.
	if err := c.AddNode(ctx, kubebox.Node{Name: "n-07", Kernel: "6.8.0-45-generic"}); err != nil {
		t.Fatal(err)
	}
	// Batch 3 is n-06 (the plan is fixed at batch 1); n-06 is deleted while the batch moves,
	// after its label: the later steps pass it over and the report says so.
	gone := e.driver(func(step string) error {
		if step != "kpr-batch-"+BatchLabelled {
			return nil
		}
		return c.Clientset.CoreV1().Nodes().Delete(ctx, "n-06", metav1.DeleteOptions{})
	})
	if err := gone.Execute(ctx, batchAssignment("a-kpr-3", spec, 3), rec); err != nil {
		t.Fatalf("a-kpr-3: %v", err)
	}
	rs = rec.take()
	lastBatch(rs, "3/3:n-06")
	sk := rs[len(rs)-1].batch.GetSkipped()
	if !slices.ContainsFunc(sk, func(s string) bool { return strings.HasPrefix(s, "n-07: added after the first batch") }) {
		t.Errorf("skipped %q, want n-07 added mid-phase", sk)
	}
	if !slices.Contains(sk, "n-06: gone during its batch") {
		t.Errorf("skipped %q, want n-06 gone during its batch", sk)
	}
	nodes = e.nodeNames()
	e.waitPodNodes("kube-proxy", []string{"n-03", "n-07"})
	if got := e.nodeConfigs(); !slices.Equal(got, slices.Sorted(slices.Values([]string{cncName(k1), cncName(k2), cncName(k3)}))) {
		t.Fatalf("CiliumNodeConfigs %v", got)
	}
	if kp := e.ds("kube-proxy"); kp.Annotations[KprAffinityAnnotation] != "" || !excludes(kp) {
		t.Errorf("kube-proxy affinity %v, annotation %q", kp.Spec.Template.Spec.Affinity, kp.Annotations[KprAffinityAnnotation])
	}

	// Batches 2 and 3 back: their nodes get kube-proxy again, lose their labels and config.
	rb := assignment("a-rb-batches", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK, ebbflowv1.Phase_PHASE_KPR, spec, nil)
	rb.RollbackKprBatchesFrom = 2
	rs = exec(rb)
	if got := statuses(rs); !slices.Equal(got, []string{"STARTED", "ROLLED_BACK"}) {
		t.Fatalf("reports %v", rs)
	}
	if m := rs[1].msg; !strings.Contains(m, "kpr batches 2 and later moved back") || !strings.Contains(m, "kept with kube-proxy replacement: kpr batch 1/3: node n-01") {
		t.Errorf("ROLLED_BACK message %q", m)
	}
	e.wantMoved("after the batch rollback", map[string]string{"n-01": k1}, all(nodes, "n-01"))
	if len(e.history()) != 2 {
		t.Fatal("a batch rollback touched Helm")
	}

	// The whole cluster back to the pre-rollout revision.
	full := assignment("a-rb-all", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK, ebbflowv1.Phase_PHASE_KPR, spec, nil)
	full.RollbackToHelmRevision = 1
	rs = exec(full)
	if got := statuses(rs); !slices.Equal(got, []string{"STARTED", "ROLLED_BACK"}) {
		t.Fatalf("reports %v", rs)
	}
	if len(e.labelled(KprBatchLabel))+len(e.labelled(KprMovedLabel))+len(e.nodeConfigs()) != 0 {
		t.Fatalf("left behind: labels %v %v, configs %v", e.labelled(KprBatchLabel), e.labelled(KprMovedLabel), e.nodeConfigs())
	}
	if kp := e.ds("kube-proxy"); kp.Spec.Template.Spec.Affinity != nil || kp.Annotations[KprAffinityAnnotation] != "" {
		t.Errorf("kube-proxy affinity not restored: %v", kp.Spec.Template.Spec.Affinity)
	}
	e.waitPodNodes("kube-proxy", nodes)
	if hs := e.history(); len(hs) != 3 || hs[2].Info.Description != "Rollback to 1" {
		t.Fatalf("helm history %d revisions", len(hs))
	}
	p, err := d.Progress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.KprBatches)+len(p.KprExcluded)+len(p.KprPlans) != 0 {
		t.Errorf("progress keeps batches: %+v", p)
	}
}

// podUIDs maps each node to the UID of the DaemonSet's pod there.
func (e *env) podUIDs(name string) map[string]string {
	e.t.Helper()
	pods, err := (&Driver{cs: e.c.Clientset}).podsOn(context.Background(), e.ciliumNS, name, e.nodeNames())
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods {
		out[p.Spec.NodeName] = string(p.UID)
	}
	return out
}
