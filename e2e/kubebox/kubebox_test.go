package kubebox_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ebbflow/ebbflow/e2e/kubebox"
)

// TestCluster starts a real cluster and checks what the agent's tests rely on: nodes with their
// kernels become Ready, a DaemonSet rolls out on every node, parking it with a nodeSelector that
// matches no node drops it to zero pods, and removing the selector brings it back.
func TestCluster(t *testing.T) {
	ctx := context.Background()
	c := kubebox.ForTest(t, kubebox.Options{Nodes: []kubebox.Node{
		{Name: "n1", Kernel: "6.8.0-45-generic", Labels: map[string]string{"ebbflow.io/nic-driver": "mlx5_core"}},
		{Name: "n2", Kernel: "5.15.0-1-generic"},
	}})
	v, err := c.Clientset.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != kubebox.KubernetesVersion {
		t.Errorf("server version %s, want %s", v.GitVersion, kubebox.KubernetesVersion)
	}
	n1, err := c.Clientset.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n1.Status.NodeInfo.KernelVersion != "6.8.0-45-generic" || n1.Labels["ebbflow.io/nic-driver"] != "mlx5_core" || !kubebox.NodeReady(n1) {
		t.Errorf("node n1: kernel %q, labels %v, ready %v", n1.Status.NodeInfo.KernelVersion, n1.Labels, kubebox.NodeReady(n1))
	}
	if err := c.InstallKubeProxy(ctx); err != nil {
		t.Fatal(err)
	}
	ds, err := c.Clientset.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Status.DesiredNumberScheduled != 2 || ds.Status.NumberReady != 2 {
		t.Fatalf("kube-proxy: desired %d ready %d, want 2 and 2", ds.Status.DesiredNumberScheduled, ds.Status.NumberReady)
	}

	patch := func(sel map[string]any) {
		b, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"nodeSelector": sel}}}})
		if _, err := c.Clientset.AppsV1().DaemonSets("kube-system").Patch(ctx, "kube-proxy", types.StrategicMergePatchType, b, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	desired := func(want int32) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			ds, err := c.Clientset.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return ds.Status.ObservedGeneration >= ds.Generation && ds.Status.DesiredNumberScheduled == want &&
				ds.Status.CurrentNumberScheduled == want && ds.Status.NumberReady == want, nil
		})
		if err != nil {
			t.Fatalf("kube-proxy never had %d pods: %v", want, err)
		}
	}
	patch(map[string]any{"ebbflow.io/parked": "true"})
	desired(0)
	patch(map[string]any{"ebbflow.io/parked": nil})
	desired(2)

	if err := c.AddNode(ctx, kubebox.Node{Name: "n3", Kernel: "6.1.0-13-amd64"}); err != nil {
		t.Fatal(err)
	}
	desired(3)
}

// TestEnsureBinariesConcurrent: concurrent callers (as test packages running at once) get the
// same cached binaries, and a call on a warm cache costs nothing.
func TestEnsureBinariesConcurrent(t *testing.T) {
	ctx := context.Background()
	if _, err := kubebox.EnsureBinaries(ctx, nil); err != nil { // build once if needed
		t.Fatal(err)
	}
	dirs := make(chan string, 4)
	errs := make(chan error, 4)
	start := time.Now()
	for range 4 {
		go func() {
			b, err := kubebox.EnsureBinaries(ctx, nil)
			dirs <- b.Dir
			errs <- err
		}()
	}
	first := ""
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		d := <-dirs
		if first == "" {
			first = d
		} else if d != first {
			t.Errorf("callers got %s and %s", first, d)
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("cached EnsureBinaries took %s", el)
	}
}
