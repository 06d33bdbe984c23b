package fleet_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/ebbflow/ebbflow/agent/cluster"
	"github.com/ebbflow/ebbflow/e2e/fleet"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout"
)

// bins are built once for every scenario of this package.
var bins fleet.Binaries

func TestMain(m *testing.M) {
	root, err := fleet.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "ebbflow-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	bins, err = fleet.Build(ctx, root, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// threeClusters is the scenarios' usual fleet: c1 (ring 0, the canary), c2 and c3.
func threeClusters() []fleet.ClusterSpec {
	var out []fleet.ClusterSpec
	for i := range 3 {
		out = append(out, fleet.ClusterSpec{Name: fmt.Sprintf("c%d", i+1), Labels: map[string]string{"env": "prod", "ring": fmt.Sprint(i)}})
	}
	return out
}

// startFleet starts a 3-node controller group and the clusters, and applies the local profile.
func startFleet(t *testing.T, clusters []fleet.ClusterSpec) *fleet.Fleet {
	t.Helper()
	f := fleet.ForTest(t, fleet.Options{Bins: bins, Clusters: clusters})
	mustFleetctl(t, f, 0, "profile", "apply", "-f", "e2e/demo-profile.yaml")
	return f
}

// createRollout writes the rollout's YAML and creates it with fleetctl.
func createRollout(t *testing.T, f *fleet.Fleet, s fleet.Rollout) {
	t.Helper()
	path := f.Dir + "/" + s.ID + ".yaml"
	writeFile(t, path, s.YAML())
	mustFleetctl(t, f, 0, "rollout", "create", "-f", path)
}

func mustFleetctl(t *testing.T, f *fleet.Fleet, wantCode int, args ...string) fleet.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := f.Fleetctl(ctx, args...)
	if err != nil {
		t.Fatalf("fleetctl %s: %v", strings.Join(args, " "), err)
	}
	if r.Code != wantCode {
		t.Fatalf("fleetctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, wantCode, r.Stdout, r.Stderr)
	}
	return r
}

// watch runs `fleetctl rollout status ID --watch` against server in the background; the
// channel gets its result when the watch exits.
func watch(t *testing.T, f *fleet.Fleet, server, id string) <-chan fleet.Result {
	t.Helper()
	ch := make(chan fleet.Result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	go func() {
		r, err := f.FleetctlTo(ctx, nil, server, "rollout", "status", id, "--watch")
		if err != nil {
			r.Code, r.Stderr = -1, err.Error()
		}
		ch <- r
	}()
	return ch
}

// waitWatch waits for a watch to exit with want.
func waitWatch(t *testing.T, ch <-chan fleet.Result, want int) fleet.Result {
	t.Helper()
	select {
	case r := <-ch:
		if r.Code != want {
			t.Fatalf("fleetctl rollout status --watch: exit %d, want %d\nstderr: %s\nend of stdout:\n%s", r.Code, want, r.Stderr, lastFrame(r.Stdout))
		}
		return r
	case <-time.After(10 * time.Minute):
		t.Fatal("fleetctl rollout status --watch did not exit")
	}
	return fleet.Result{}
}

// lastFrame is the last table the watch printed (frames are separated by "---").
func lastFrame(out string) string {
	frames := strings.Split(strings.TrimSpace(out), "\n---")
	for i := len(frames) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(frames[i]); s != "" {
			return s
		}
	}
	return ""
}

// waitEnd waits until the rollout ends and returns it.
func waitEnd(t *testing.T, f *fleet.Fleet, id string) *ebbflowv1.Rollout {
	t.Helper()
	r, err := f.WaitRollout(context.Background(), id, 10*time.Minute, "the rollout to end", func(r *ebbflowv1.Rollout) bool { return rollout.Terminal(r.GetState()) })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// clusterStates maps each cluster of the rollout to its progress.
func clusterStates(r *ebbflowv1.Rollout) map[string]*ebbflowv1.RolloutCluster {
	out := map[string]*ebbflowv1.RolloutCluster{}
	for _, w := range r.GetWaves() {
		for _, c := range w.GetClusters() {
			out[c.GetCluster()] = c
		}
	}
	return out
}

// onEvent runs do once the rollout's history has an event that matches, in the background;
// the channel gets do's error (or the wait's).
func onEvent(t *testing.T, f *fleet.Fleet, id, what string, match func(*ebbflowv1.RolloutEvent) bool, do func() error) <-chan error {
	t.Helper()
	ch := make(chan error, 1)
	go func() {
		if _, err := f.WaitEvent(context.Background(), id, 10*time.Minute, what, match); err != nil {
			ch <- err
			return
		}
		ch <- do()
	}()
	return ch
}

// reportOf matches a report event of cluster for phase whose message starts with prefix
// (e.g. "l7 MEASURED", "kpr STARTED").
func reportOf(cluster string, phase ebbflowv1.Phase, prefix string) func(*ebbflowv1.RolloutEvent) bool {
	return func(e *ebbflowv1.RolloutEvent) bool {
		return e.GetKind() == "report" && e.GetCluster() == cluster && e.GetPhase() == phase && strings.HasPrefix(e.GetMessage(), prefix)
	}
}

// countEvents counts the history's events of kind for cluster and phase whose message contains sub.
func countEvents(evs []*ebbflowv1.RolloutEvent, kind, cluster string, phase ebbflowv1.Phase, sub string) int {
	n := 0
	for _, e := range evs {
		if e.GetKind() == kind && e.GetCluster() == cluster && e.GetPhase() == phase && strings.Contains(e.GetMessage(), sub) {
			n++
		}
	}
	return n
}

// helmHistory is the cluster's Cilium release history, oldest first, read with the Helm SDK.
func helmHistory(t *testing.T, c *fleet.Cluster) []*release.Release {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	kubeconfig, ns := c.Kube.Kubeconfig, "kube-system"
	flags.KubeConfig, flags.Namespace = &kubeconfig, &ns
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, ns, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	hs, err := action.NewHistory(cfg).Run("cilium")
	if err != nil {
		t.Fatalf("%s: helm history: %v", c.Name, err)
	}
	slices.SortFunc(hs, func(a, b *release.Release) int { return a.Version - b.Version })
	return hs
}

func describeHistory(hs []*release.Release) string {
	var parts []string
	for _, h := range hs {
		parts = append(parts, fmt.Sprintf("%d %s %q", h.Version, h.Info.Status, h.Info.Description))
	}
	return strings.Join(parts, "; ")
}

// ciliumConfig is the cluster's kube-system/cilium-config data.
func ciliumConfig(t *testing.T, c *fleet.Cluster) map[string]string {
	t.Helper()
	cm, err := c.Kube.Clientset.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "cilium-config", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s: cilium-config: %v", c.Name, err)
	}
	return cm.Data
}

// kubeProxy reports whether kube-proxy is parked (its pod selector carries the parking key)
// and how many pods it schedules.
func kubeProxy(t *testing.T, c *fleet.Cluster) (parked bool, desired int32) {
	t.Helper()
	ds, err := c.Kube.Clientset.AppsV1().DaemonSets("kube-system").Get(context.Background(), "kube-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s: kube-proxy: %v", c.Name, err)
	}
	_, parked = ds.Spec.Template.Spec.NodeSelector[cluster.ParkLabel]
	return parked, ds.Status.DesiredNumberScheduled
}

// waitKubeProxy waits until kube-proxy is parked with no pods, or back on every node.
func waitKubeProxy(t *testing.T, c *fleet.Cluster, wantParked bool, nodes int32) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		parked, desired := kubeProxy(t, c)
		if parked == wantParked && ((wantParked && desired == 0) || (!wantParked && desired == nodes)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: kube-proxy parked=%v with %d pods, want parked=%v", c.Name, parked, desired, wantParked)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The profile's values as cilium-config renders them, per phase.
var (
	l7Config  = map[string]string{"enable-l7-proxy": "true", "enable-hubble": "true"}
	kprConfig = map[string]string{"kube-proxy-replacement": "true", "routing-mode": "native", "enable-bpf-masquerade": "true",
		"enable-host-legacy-routing": "false", "bpf-lb-mode": "dsr", "bpf-lb-algorithm": "maglev", "bpf-lb-maglev-table-size": "16381"}
	xdpConfig = map[string]string{"bpf-lb-acceleration": "native"}
)

// checkConfig fails the test for every key of want that cilium-config does not hold.
func checkConfig(t *testing.T, c *fleet.Cluster, wants ...map[string]string) {
	t.Helper()
	got := ciliumConfig(t, c)
	for _, want := range wants {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: cilium-config %s=%q, want %q", c.Name, k, got[k], v)
			}
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkTuned fails the test unless the cluster holds every phase's config and kube-proxy is parked.
func checkTuned(t *testing.T, c *fleet.Cluster) {
	t.Helper()
	checkConfig(t, c, l7Config, kprConfig, xdpConfig)
	waitKubeProxy(t, c, true, 0)
}
