package fleet_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ebbflow/ebbflow/agent/cluster"
	"github.com/ebbflow/ebbflow/e2e/fleet"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// nodeByNodeProfile is the demo profile with kube-proxy replacement moved node by node: a
// canary batch of one node, then batches of half the nodes.
func nodeByNodeProfile(t *testing.T, f *fleet.Fleet) string {
	t.Helper()
	root, err := fleet.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	demo, err := os.ReadFile(filepath.Join(root, "e2e/demo-profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(demo), "name: local-tuning", "name: local-nodes", 1)
	y = strings.Replace(y, "    mode: cluster-wide\n", "    mode: node-by-node\n    batches: {canaryNodes: 1, batchPercent: 50}\n", 1)
	if !strings.Contains(y, "node-by-node") {
		t.Fatal("the demo profile no longer has the kpr mode line this test rewrites")
	}
	path := filepath.Join(f.Dir, "local-nodes.yaml")
	writeFile(t, path, y)
	return path
}

// movedNodes lists the cluster's nodes carrying the kpr labels, and those kube-proxy runs on.
func movedNodes(t *testing.T, c *fleet.Cluster) (batch, moved, kubeProxy []string) {
	t.Helper()
	ctx := context.Background()
	ns, err := c.Kube.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns.Items {
		if _, ok := n.Labels[cluster.KprBatchLabel]; ok {
			batch = append(batch, n.Name)
		}
		if n.Labels[cluster.KprMovedLabel] == "true" {
			moved = append(moved, n.Name)
		}
	}
	pods, err := c.Kube.Clientset.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-proxy"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			kubeProxy = append(kubeProxy, p.Spec.NodeName)
		}
	}
	slices.Sort(batch)
	slices.Sort(moved)
	slices.Sort(kubeProxy)
	return batch, moved, kubeProxy
}

// waitMoved waits until exactly want carry both kpr labels and kube-proxy runs on every other
// node.
func waitMoved(t *testing.T, c *fleet.Cluster, all, want []string) {
	t.Helper()
	rest := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return slices.Contains(want, n) })
	var batch, moved, kp []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		batch, moved, kp = movedNodes(t, c)
		return slices.Equal(batch, want) && slices.Equal(moved, want) && slices.Equal(kp, rest), nil
	})
	if err != nil {
		t.Fatalf("%s: nodes with the batch label %v, moved %v, kube-proxy on %v; want moved %v and kube-proxy on %v", c.Name, batch, moved, kp, want, rest)
	}
}

// Scenario: kube-proxy replacement node by node on two 6-node clusters, each in a rollout of
// its own, batches of 1 then 50% (c?-n1 | n2..n4 | n5..n6). Both targets get 3x slower once
// batch 2 is assigned, so batch 2 regresses. Under rollbackFailedClusters (c1) only batch 2
// is rolled back: kube-proxy is back on n2..n4 and their labels are gone, the canary node n1
// keeps kube-proxy replacement, and status says so. Under rollbackWave (c2) the whole cluster
// is rolled back, n1 included.
func TestKprNodeByNodeBatchRegression(t *testing.T) {
	six := []string{"6.8.0-1015-aws", "6.8.0-1015-aws", "6.8.0-1015-aws", "6.8.0-1015-aws", "6.8.0-1015-aws", "6.8.0-1015-aws"}
	f := startFleet(t, []fleet.ClusterSpec{
		{Name: "c1", Kernels: six, Labels: map[string]string{"env": "prod", "policy": "failed", "ring": "0"}},
		{Name: "c2", Kernels: six, Labels: map[string]string{"env": "prod", "policy": "wave", "ring": "0"}},
	})
	mustFleetctl(t, f, 0, "profile", "apply", "-f", nodeByNodeProfile(t, f))
	plan := mustFleetctl(t, f, 0, "rollout", "plan", "--profile", "local-nodes", "--selector", "policy=failed")
	if !strings.Contains(plan.Stdout, "kpr batch 2/3: c1-n2, c1-n3, c1-n4") {
		t.Errorf("plan does not list c1's batches:\n%s", plan.Stdout)
	}

	slowed := map[string]<-chan error{}
	for _, r := range []fleet.Rollout{
		{ID: "nodes-failed", Profile: "local-nodes", Selector: "policy=failed", Canary: 1, WaveSize: 1, CanaryFailures: 1},
		{ID: "nodes-wave", Profile: "local-nodes", Selector: "policy=wave", Canary: 1, WaveSize: 1, CanaryFailures: 1, Policy: "FAILURE_POLICY_ROLLBACK_WAVE"},
	} {
		createRollout(t, f, r)
		c := f.Cluster(map[string]string{"nodes-failed": "c1", "nodes-wave": "c2"}[r.ID])
		slowed[r.ID] = onEvent(t, f, r.ID, c.Name+"'s kpr batch 2 assigned", func(e *ebbflowv1.RolloutEvent) bool {
			return e.GetKind() == "assign" && e.GetCluster() == c.Name && strings.Contains(e.GetMessage(), "kpr batch 2/3")
		}, func() error { return c.SetDelay(context.Background(), 30*time.Millisecond) })
	}
	for id, ch := range slowed {
		if err := <-ch; err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}

	c1 := f.Cluster("c1")
	all := []string{"c1-n1", "c1-n2", "c1-n3", "c1-n4", "c1-n5", "c1-n6"}
	r := waitEnd(t, f, "nodes-failed")
	cs := clusterStates(r)["c1"]
	if cs.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK || cs.GetPhase() != ebbflowv1.Phase_PHASE_KPR ||
		!strings.Contains(cs.GetReason(), "kpr batch 2/3 regressed") || !strings.Contains(cs.GetReason(), "c1-n1") {
		t.Fatalf("c1: %s at %s: %q", cs.GetState(), cs.GetPhase(), cs.GetReason())
	}
	waitMoved(t, c1, all, []string{"c1-n1"})
	st := mustFleetctl(t, f, 0, "rollout", "status", "nodes-failed")
	t.Logf("fleetctl rollout status nodes-failed:\n%s", st.Stdout)
	for _, want := range []string{"kpr batch 1/3: c1-n1", "kpr batch 2/3: c1-n2, c1-n3, c1-n4", "regress"} {
		if !strings.Contains(st.Stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, st.Stdout)
		}
	}

	c2 := f.Cluster("c2")
	r = waitEnd(t, f, "nodes-wave")
	cs = clusterStates(r)["c2"]
	if cs.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK {
		t.Fatalf("c2: %s at %s: %q", cs.GetState(), cs.GetPhase(), cs.GetReason())
	}
	all2 := []string{"c2-n1", "c2-n2", "c2-n3", "c2-n4", "c2-n5", "c2-n6"}
	waitMoved(t, c2, all2, nil)
	hs := helmHistory(t, c2)
	if last := hs[len(hs)-1]; !strings.HasPrefix(last.Info.Description, "Rollback to ") {
		t.Errorf("c2: helm history %s, want a rollback last", describeHistory(hs))
	}
}
