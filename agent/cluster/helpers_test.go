package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ebbflow/ebbflow/agent/probe"
	"github.com/ebbflow/ebbflow/e2e/kubebox"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// testChart is the local Cilium test chart.
func testChart(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs("../../deploy/testdata/charts/cilium")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// env is one isolated Cilium installation in a shared cluster: its own namespaces for the
// release (with cilium-config, the cilium DaemonSet and a kube-proxy DaemonSet) and for the
// driver's progress.
type env struct {
	t        testing.TB
	c        *kubebox.Cluster
	ciliumNS string
	agentNS  string
}

// newEnv installs the test chart as release "cilium" in ciliumNS with values and waits until
// the cilium DaemonSet has rolled out; with kubeProxy it also runs a kube-proxy DaemonSet there
// (in kube-system it must already exist).
func newEnv(t testing.TB, c *kubebox.Cluster, ciliumNS, agentNS string, values map[string]any, kubeProxy bool) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, c: c, ciliumNS: ciliumNS, agentNS: agentNS}
	if ciliumNS != "kube-system" {
		_, err := c.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ciliumNS}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if kubeProxy {
			ds := kubebox.KubeProxyDaemonSet()
			ds.Namespace = ciliumNS
			if _, err := c.Clientset.AppsV1().DaemonSets(ciliumNS).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := e.helm()
	in := action.NewInstall(cfg)
	in.Namespace, in.ReleaseName = ciliumNS, "cilium"
	ch, err := loader.Load(testChart(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.RunWithContext(ctx, ch, values); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	e.waitDS("cilium", kubebox.DaemonSetRolledOut)
	if kubeProxy {
		e.waitDS("kube-proxy", func(ds *appsv1.DaemonSet) bool { return dsReady(ds) && ds.Status.DesiredNumberScheduled > 0 })
	}
	return e
}

// helm is a Helm configuration of the test itself, to read what the driver did.
func (e *env) helm() *action.Configuration {
	e.t.Helper()
	cfg := new(action.Configuration)
	err := cfg.Init(&restGetter{cfg: e.c.RESTConfig, namespace: e.ciliumNS}, e.ciliumNS, "secret", func(string, ...any) {})
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

// history is the release's history, oldest first.
func (e *env) history() []*release.Release {
	e.t.Helper()
	hs, err := action.NewHistory(e.helm()).Run("cilium")
	if err != nil {
		e.t.Fatal(err)
	}
	slices.SortFunc(hs, func(a, b *release.Release) int { return a.Version - b.Version })
	return hs
}

func (e *env) last() *release.Release {
	hs := e.history()
	return hs[len(hs)-1]
}

func (e *env) config() map[string]string {
	e.t.Helper()
	cm, err := e.c.Clientset.CoreV1().ConfigMaps(e.ciliumNS).Get(context.Background(), "cilium-config", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return cm.Data
}

func (e *env) ds(name string) *appsv1.DaemonSet {
	e.t.Helper()
	ds, err := e.c.Clientset.AppsV1().DaemonSets(e.ciliumNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

// waitDS polls a DaemonSet of the env until cond holds (one minute at most).
func (e *env) waitDS(name string, cond func(*appsv1.DaemonSet) bool) *appsv1.DaemonSet {
	e.t.Helper()
	var last *appsv1.DaemonSet
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		ds, err := e.c.Clientset.AppsV1().DaemonSets(e.ciliumNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = ds
		return cond(ds), nil
	})
	if err != nil {
		e.t.Fatalf("DaemonSet %s/%s: condition not met: %v (%s)", e.ciliumNS, name, err, dsStatus(last))
	}
	return last
}

// driver returns a new Driver for the env, as a restarted agent would create it.
func (e *env) driver(afterStep func(string) error) *Driver {
	e.t.Helper()
	d, err := New(Config{
		RESTConfig:      e.c.RESTConfig,
		Namespace:       e.agentNS,
		CiliumNamespace: e.ciliumNS,
		WaitTimeout:     time.Minute,
		Logger:          testLogger(e.t),
		AfterStep:       afterStep,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(d.Close)
	return d
}

// testLogger logs through t, and is silent once the test is over.
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// report is one report a recorder received.
type report struct {
	ref           *ebbflowv1.ReportRef
	status        ebbflowv1.PhaseStatus // UNSPECIFIED for measurements
	msg           string
	before, after int32
	preflight     []string
	measurements  []*ebbflowv1.Measurement
	batch         *ebbflowv1.KprBatchStatus
}

func (r report) String() string {
	if r.status == ebbflowv1.PhaseStatus_PHASE_STATUS_UNSPECIFIED {
		return fmt.Sprintf("%s/%s measurements(%d)", r.ref.GetAssignmentId(), r.ref.GetPhase(), len(r.measurements))
	}
	return fmt.Sprintf("%s/%s %s %d->%d", r.ref.GetAssignmentId(), r.ref.GetPhase(), strings.TrimPrefix(r.status.String(), "PHASE_STATUS_"), r.before, r.after)
}

// recorder is the tests' Reporter: it keeps every report in order.
type recorder struct {
	mu      sync.Mutex
	reports []report
}

func (r *recorder) Status(_ context.Context, ref *ebbflowv1.ReportRef, s StatusReport) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := report{ref: proto.Clone(ref).(*ebbflowv1.ReportRef), status: s.Status, msg: s.Message, before: s.HelmBefore, after: s.HelmAfter, preflight: slices.Clone(s.Preflight)}
	if s.KprBatch != nil {
		rep.batch = proto.Clone(s.KprBatch).(*ebbflowv1.KprBatchStatus)
	}
	r.reports = append(r.reports, rep)
	return nil
}

func (r *recorder) Measurements(_ context.Context, ref *ebbflowv1.ReportRef, ms []*ebbflowv1.Measurement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, report{ref: proto.Clone(ref).(*ebbflowv1.ReportRef), measurements: ms})
	return nil
}

// take returns the reports received since the last take.
func (r *recorder) take() []report {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reports
	r.reports = nil
	return out
}

// statuses lists the statuses of reports, "M" for a measurement report.
func statuses(rs []report) []string {
	var out []string
	for _, r := range rs {
		if r.status == ebbflowv1.PhaseStatus_PHASE_STATUS_UNSPECIFIED {
			out = append(out, "M")
			continue
		}
		out = append(out, strings.TrimPrefix(r.status.String(), "PHASE_STATUS_"))
	}
	return out
}

// policy is a CiliumNetworkPolicy for the l7 phase.
func policy(t testing.TB) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(map[string]any{
		"apiVersion": "cilium.io/v2",
		"kind":       "CiliumNetworkPolicy",
		"metadata":   map[string]any{"name": "ebbflow-l7-visibility"},
		"spec": map[string]any{
			"endpointSelector": map[string]any{},
			"ingress": []any{
				map[string]any{"fromEntities": []any{"all"}},
				map[string]any{
					"fromEntities": []any{"all"},
					"toPorts": []any{map[string]any{
						"ports": []any{map[string]any{"port": "80", "protocol": "TCP"}},
						"rules": map[string]any{"http": []any{map[string]any{}}},
					}},
				},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testProfile is a bare-metal profile of the four phases on the test chart in namespace ns;
// park names the DaemonSets kpr parks (nil: the default kube-system/kube-proxy).
func testProfile(t testing.TB, ns string, policyNamespaces []string, park []*ebbflowv1.DaemonSetRef) *ebbflowv1.ProfileSpec {
	return &ebbflowv1.ProfileSpec{
		Platform: "bare-metal",
		Chart:    &ebbflowv1.ChartRef{Repository: testChart(t), Name: "cilium", Version: "1.18.0-test", ReleaseName: "cilium", Namespace: ns},
		Baseline: &ebbflowv1.BaselinePhase{},
		L7: &ebbflowv1.L7Phase{
			Values:     &ebbflowv1.CiliumValues{L7Proxy: proto.Bool(true), HubbleEnabled: proto.Bool(true)},
			Policies:   []*structpb.Struct{policy(t)},
			Namespaces: policyNamespaces,
		},
		Kpr: &ebbflowv1.KprPhase{
			ParkDaemonSets: park,
			Values: &ebbflowv1.CiliumValues{
				KubeProxyReplacement:  proto.Bool(true),
				K8SServiceHost:        "10.0.0.10",
				K8SServicePort:        proto.Int32(6443),
				RoutingMode:           ebbflowv1.RoutingMode_ROUTING_MODE_NATIVE,
				AutoDirectNodeRoutes:  proto.Bool(true),
				Ipv4NativeRoutingCidr: "10.0.0.0/8",
				BpfMasquerade:         proto.Bool(true),
				BpfHostLegacyRouting:  proto.Bool(false),
				LoadBalancerAlgorithm: ebbflowv1.LoadBalancerAlgorithm_LOAD_BALANCER_ALGORITHM_MAGLEV,
				MaglevTableSize:       proto.Int32(65521),
				LoadBalancerMode:      ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_SNAT,
			},
		},
		Xdp: &ebbflowv1.XdpPhase{Values: &ebbflowv1.CiliumValues{
			LoadBalancerAcceleration: ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_NATIVE,
		}},
	}
}

// assignment builds an assignment of the test's rollout.
func assignment(id string, action ebbflowv1.AssignmentAction, phase ebbflowv1.Phase, spec *ebbflowv1.ProfileSpec, probes *ebbflowv1.ProbeSettings) *ebbflowv1.Assignment {
	return &ebbflowv1.Assignment{
		Id: id, RolloutId: "r1", Cluster: "kubebox", Action: action, Phase: phase,
		ProfileName: "test", ProfileRevision: 3, Profile: spec, Probes: probes,
	}
}

// target is a local HTTP server whose latency a test changes.
type target struct {
	url   string
	delay *probe.Delay
}

func newTarget(t testing.TB) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &probe.Delay{}
	srv := &http.Server{Handler: probe.DelayHandler(d.Get), ReadHeaderTimeout: 5 * time.Second, ErrorLog: nil}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return &target{url: "http://" + ln.Addr().String() + "/", delay: d}
}

// probes are small HTTP probe settings against url: 2 windows of 400 ms at 50 requests/s.
func probes(url string) *ebbflowv1.ProbeSettings {
	return &ebbflowv1.ProbeSettings{
		Windows: 2,
		Probes: []*ebbflowv1.ProbeSpec{{
			Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: url, Rate: 50,
			Duration: durationpb.New(400 * time.Millisecond), Timeout: durationpb.New(2 * time.Second),
		}},
	}
}
