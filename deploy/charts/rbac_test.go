package charts

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ebbflow/ebbflow/agent"
	"github.com/ebbflow/ebbflow/agent/cluster"
	"github.com/ebbflow/ebbflow/e2e/kubebox"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

const agentNamespace = "ebbflow"

var cnpResource = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}

// TestAgentLeastPrivilege applies only the RBAC objects the agent chart renders to a real API
// server, then runs the agent's four phases, a rollback and the inventory through
// agent/cluster as the chart's ServiceAccount (a TokenRequest token, nothing else), and shows
// that what the roles do not grant is Forbidden for that same token.
func TestAgentLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	c := kubebox.ForTest(t, kubebox.Options{Nodes: []kubebox.Node{
		{Name: "node-a", Kernel: "6.8.0-45-generic", Labels: map[string]string{"ebbflow.io/nic-driver": "mlx5_core"}},
		{Name: "node-b", Kernel: "6.1.0-13-amd64", Labels: map[string]string{"ebbflow.io/nic-driver": "ixgbe"}},
	}})
	admin := c.Clientset
	// The cluster as the agent finds it, set up by an administrator: kube-proxy, the Cilium
	// release, the agent's namespace, a namespace for the l7 policies and one with a Secret.
	if err := c.InstallKubeProxy(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{agentNamespace, "web", "other"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoreV1().Secrets("other").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-password"}, StringData: map[string]string{"p": "s3cret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "coredns"}, Data: map[string]string{"Corefile": "."}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ciliumChart := testChartPath(t)
	if _, err := cluster.InstallRelease(ctx, c.RESTConfig, "kube-system", "cilium", ciliumChart, map[string]any{"l7Proxy": false}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitDaemonSet(ctx, "kube-system", "cilium", time.Minute); err != nil {
		t.Fatal(err)
	}

	// Only the chart's RBAC objects; the Deployment and its identity volume are left out.
	applied := applyRBAC(t, c, render(t, agentChart, agentChart, agentNamespace, agentRequired()))
	if want := []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"}; !slices.Equal(applied, want) {
		t.Fatalf("applied kinds %v, want %v", applied, want)
	}

	agentCfg := serviceAccountConfig(t, c, agentNamespace, agentChart)
	agentCS := kubernetes.NewForConfigOrDie(agentCfg)
	// RBAC reaches the authorizer through its informers: wait until the token works.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := agentCS.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("the agent's token never could list nodes: %v", err)
	}

	d, err := cluster.New(cluster.Config{
		RESTConfig: agentCfg, Namespace: agentNamespace, CiliumNamespace: "kube-system", WaitTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)

	inv, err := d.Inventory(ctx)
	if err != nil {
		t.Fatalf("inventory as the agent: %v", err)
	}
	if len(inv.GetNodes()) != 2 || inv.GetHelmRevision() != 1 || !inv.GetKubeProxyPresent() || inv.GetCiliumConfig()["enable-l7-proxy"] != "false" {
		t.Fatalf("inventory as the agent: %v", inv)
	}

	spec := profileSpec(ciliumChart)
	rec := &recorder{}
	run := func(id string, action ebbflowv1.AssignmentAction, phase ebbflowv1.Phase, rollbackTo int32, want string) {
		t.Helper()
		a := &ebbflowv1.Assignment{
			Id: id, RolloutId: "r1", Cluster: "kubebox", Action: action, Phase: phase,
			ProfileName: "test", ProfileRevision: 1, Profile: spec, RollbackToHelmRevision: rollbackTo,
		}
		start := time.Now()
		if err := d.Execute(ctx, a, rec); err != nil {
			t.Fatalf("%s as the agent: %v", id, err)
		}
		if got := rec.last(); got != want {
			t.Fatalf("%s: last report %s, want %s (reports %v)", id, got, want, rec.all())
		}
		t.Logf("%s as the agent: %s in %s", id, want, time.Since(start).Round(time.Millisecond))
	}
	apply := ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY
	run("baseline", apply, ebbflowv1.Phase_PHASE_BASELINE, 0, "MEASURED")
	run("l7", apply, ebbflowv1.Phase_PHASE_L7, 0, "MEASURED")
	run("kpr", apply, ebbflowv1.Phase_PHASE_KPR, 0, "MEASURED")
	run("xdp", apply, ebbflowv1.Phase_PHASE_XDP, 0, "MEASURED")

	// What the phases did, read back as the administrator.
	cm, err := admin.CoreV1().ConfigMaps("kube-system").Get(ctx, "cilium-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"enable-l7-proxy": "true", "kube-proxy-replacement": "true", "bpf-lb-acceleration": "native"} {
		if cm.Data[k] != v {
			t.Errorf("after xdp cilium-config %s=%q, want %q", k, cm.Data[k], v)
		}
	}
	kp, err := admin.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if kp.Spec.Template.Spec.NodeSelector[cluster.ParkLabel] != "true" {
		t.Errorf("kube-proxy not parked after kpr: %v", kp.Spec.Template.Spec.NodeSelector)
	}
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig)
	if _, err := dyn.Resource(cnpResource).Namespace("web").Get(ctx, "ebbflow-l7-visibility", metav1.GetOptions{}); err != nil {
		t.Errorf("l7 policy not applied: %v", err)
	}

	run("rollback", ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK, ebbflowv1.Phase_PHASE_XDP, 1, "ROLLED_BACK")
	if cm, err = admin.CoreV1().ConfigMaps("kube-system").Get(ctx, "cilium-config", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if cm.Data["enable-l7-proxy"] != "false" || cm.Data["kube-proxy-replacement"] != "false" {
		t.Errorf("cilium-config not back after the rollback: %v", cm.Data)
	}
	if kp, err = admin.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, parked := kp.Spec.Template.Spec.NodeSelector[cluster.ParkLabel]; parked {
		t.Errorf("kube-proxy still parked after the rollback")
	}
	if _, err := dyn.Resource(cnpResource).Namespace("web").Get(ctx, "ebbflow-l7-visibility", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("l7 policy after the rollback: %v, want NotFound", err)
	}
	if inv, err = d.Inventory(ctx); err != nil || inv.GetHelmRevision() != 5 {
		t.Errorf("inventory after the rollback: revision %d, %v; want 5", inv.GetHelmRevision(), err)
	}

	// Node-by-node kpr as the agent: node-a moved in a batch of its own (its label, its
	// CiliumNodeConfig, its Cilium pod recreated, kube-proxy kept off it), then everything back.
	nbn := profileSpec(ciliumChart)
	nbn.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
	nbn.Kpr.Batches = &ebbflowv1.KprBatches{BatchNodes: proto.Int32(1)}
	batch := &ebbflowv1.Assignment{Id: "kpr-batch-1", RolloutId: "r2", Cluster: "kubebox", Action: apply, Phase: ebbflowv1.Phase_PHASE_KPR,
		ProfileName: "test", ProfileRevision: 2, Profile: nbn, KprBatch: 1}
	if err := d.Execute(ctx, batch, rec); err != nil {
		t.Fatalf("node-by-node kpr batch as the agent: %v", err)
	}
	if got := rec.last(); got != "MEASURED" {
		t.Fatalf("node-by-node kpr batch: last report %s (reports %v)", got, rec.all())
	}
	if n, err := admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{}); err != nil || n.Labels[cluster.KprMovedLabel] != "true" {
		t.Errorf("node-a after its batch: labels %v, %v", n.GetLabels(), err)
	}
	back := &ebbflowv1.Assignment{Id: "kpr-batch-back", RolloutId: "r2", Cluster: "kubebox", Action: ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK,
		Phase: ebbflowv1.Phase_PHASE_KPR, ProfileName: "test", ProfileRevision: 2, Profile: nbn, RollbackToHelmRevision: 5}
	if err := d.Execute(ctx, back, rec); err != nil || rec.last() != "ROLLED_BACK" {
		t.Fatalf("node-by-node rollback as the agent: %v (reports %v)", err, rec.all())
	}
	if n, err := admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{}); err != nil || n.Labels[cluster.KprMovedLabel] != "" || n.Labels[cluster.KprBatchLabel] != "" {
		t.Errorf("node-a after the rollback: labels %v, %v", n.GetLabels(), err)
	}

	// The same token, beyond its roles.
	agentDyn := dynamic.NewForConfigOrDie(agentCfg)
	pod := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	forbidden := []struct {
		name string
		call func() error
	}{
		{"delete a Secret outside the Cilium namespace", func() error {
			return agentCS.CoreV1().Secrets("other").Delete(ctx, "db-password", metav1.DeleteOptions{})
		}},
		{"read a Secret in another namespace", func() error {
			_, err := agentCS.CoreV1().Secrets("other").Get(ctx, "db-password", metav1.GetOptions{})
			return err
		}},
		{"list Secrets in its own namespace", func() error {
			_, err := agentCS.CoreV1().Secrets(agentNamespace).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"delete a Helm release Secret", func() error {
			return agentCS.CoreV1().Secrets("kube-system").Delete(ctx, "sh.helm.release.v1.cilium.v1", metav1.DeleteOptions{})
		}},
		{"delete a node", func() error { return agentCS.CoreV1().Nodes().Delete(ctx, "node-a", metav1.DeleteOptions{}) }},
		{"update a node", func() error {
			n, err := admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n.Spec.Unschedulable = true
			_, err = agentCS.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			return err
		}},
		{"delete a pod outside the Cilium namespace", func() error {
			return agentCS.CoreV1().Pods("other").Delete(ctx, "anything", metav1.DeleteOptions{})
		}},
		{"write a CiliumNodeConfig outside the Cilium namespace", func() error {
			_, err := agentDyn.Resource(schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnodeconfigs"}).Namespace("other").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"delete kube-proxy", func() error {
			return agentCS.AppsV1().DaemonSets("kube-system").Delete(ctx, "kube-proxy", metav1.DeleteOptions{})
		}},
		{"update a ConfigMap that is not cilium-config", func() error {
			cm, err := admin.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = agentCS.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{})
			return err
		}},
		{"read a ConfigMap in another namespace", func() error {
			_, err := agentCS.CoreV1().ConfigMaps("other").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			return err
		}},
		{"list pods outside the Cilium and parked namespaces", func() error {
			_, err := agentDyn.Resource(pod).Namespace("other").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"create a namespace", func() error {
			_, err := agentCS.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "agent-made"}}, metav1.CreateOptions{})
			return err
		}},
		{"bind itself cluster-admin", func() error {
			_, err := agentCS.RbacV1().ClusterRoleBindings().Create(ctx, clusterAdminBinding(), metav1.CreateOptions{})
			return err
		}},
		{"read a CiliumNetworkPolicy", func() error {
			_, err := agentDyn.Resource(cnpResource).Namespace("web").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"take over another Lease", func() error {
			_, err := agentCS.CoordinationV1().Leases(agentNamespace).Get(ctx, "someone-else", metav1.GetOptions{})
			return err
		}},
	}
	for _, f := range forbidden {
		if err := f.call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as the agent: %v, want Forbidden", f.name, err)
		}
	}
	// Leader election among replicas works with the same token: it takes the Lease, runs,
	// and releases it.
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	led := make(chan struct{})
	err = agent.RunElected(lctx, agent.Election{Client: agentCS, Namespace: agentNamespace, Name: "ebbflow-agent", Identity: "replica-0",
		RetryPeriod: 100 * time.Millisecond}, func(ctx context.Context) error {
		close(led)
		lcancel()
		return nil
	})
	lcancel()
	select {
	case <-led:
	default:
		t.Errorf("the agent never led with its own token: %v", err)
	}
	lease, err := admin.CoordinationV1().Leases(agentNamespace).Get(ctx, "ebbflow-agent", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "" {
		t.Errorf("the Lease after the replica stopped: %v %v, want it released", lease.Spec.HolderIdentity, err)
	}

	// And the same token still does what the roles grant (so Forbidden above is RBAC, not a
	// broken token).
	if _, err := agentCS.CoreV1().ConfigMaps("kube-system").Get(ctx, "cilium-config", metav1.GetOptions{}); err != nil {
		t.Errorf("get cilium-config as the agent: %v", err)
	}
	if _, err := admin.CoreV1().Secrets("other").Get(ctx, "db-password", metav1.GetOptions{}); err != nil {
		t.Errorf("the Secret in other is gone: %v", err)
	}
}

func testChartPath(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs("../testdata/charts/cilium")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// applyRBAC creates, as the administrator, the ServiceAccounts, roles and bindings of a
// manifest, and returns the kinds it applied (sorted, once each).
func applyRBAC(t testing.TB, c *kubebox.Cluster, manifest string) []string {
	t.Helper()
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig)
	resources := map[string]schema.GroupVersionResource{
		"ServiceAccount":     {Version: "v1", Resource: "serviceaccounts"},
		"ClusterRole":        {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
		"ClusterRoleBinding": {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
		"Role":               {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
		"RoleBinding":        {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	}
	var kinds []string
	for _, o := range objects(t, manifest) {
		gvr, ok := resources[o.GetKind()]
		if !ok {
			if o.GetKind() != "Deployment" && o.GetKind() != "PersistentVolumeClaim" {
				t.Fatalf("the agent chart renders a %s (%s), neither RBAC nor the Deployment and its volume", o.GetKind(), o.GetName())
			}
			continue
		}
		var err error
		if o.GetNamespace() == "" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" {
			t.Fatalf("%s %s has no namespace", o.GetKind(), o.GetName())
		}
		if o.GetNamespace() == "" {
			_, err = dyn.Resource(gvr).Create(ctx, o, metav1.CreateOptions{})
		} else {
			_, err = dyn.Resource(gvr).Namespace(o.GetNamespace()).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatalf("create %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		if !slices.Contains(kinds, o.GetKind()) {
			kinds = append(kinds, o.GetKind())
		}
	}
	slices.Sort(kinds)
	return kinds
}

// serviceAccountConfig is a rest.Config that carries only a TokenRequest token of the
// ServiceAccount (and the API server's CA).
func serviceAccountConfig(t testing.TB, c *kubebox.Cluster, namespace, name string) *rest.Config {
	t.Helper()
	exp := int64(3600)
	tr, err := c.Clientset.CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", namespace, name, err)
	}
	if tr.Status.Token == "" {
		t.Fatal("empty token")
	}
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.RESTConfig.CAData},
	}
}

// profileSpec is a bare-metal profile of the four phases on the Cilium test chart in
// kube-system, with one l7 policy for namespace web.
func profileSpec(chart string) *ebbflowv1.ProfileSpec {
	pol, err := structpb.NewStruct(map[string]any{
		"apiVersion": "cilium.io/v2",
		"kind":       "CiliumNetworkPolicy",
		"metadata":   map[string]any{"name": "ebbflow-l7-visibility"},
		"spec": map[string]any{
			"endpointSelector": map[string]any{},
			"ingress":          []any{map[string]any{"fromEntities": []any{"all"}}},
		},
	})
	if err != nil {
		panic(err)
	}
	return &ebbflowv1.ProfileSpec{
		Platform: "bare-metal",
		Chart:    &ebbflowv1.ChartRef{Repository: chart, Name: "cilium", Version: "1.18.0-test", ReleaseName: "cilium", Namespace: "kube-system"},
		Baseline: &ebbflowv1.BaselinePhase{},
		L7: &ebbflowv1.L7Phase{
			Values:     &ebbflowv1.CiliumValues{L7Proxy: proto.Bool(true)},
			Policies:   []*structpb.Struct{pol},
			Namespaces: []string{"web"},
		},
		Kpr: &ebbflowv1.KprPhase{Values: &ebbflowv1.CiliumValues{
			KubeProxyReplacement: proto.Bool(true),
			K8SServiceHost:       "10.0.0.10",
			K8SServicePort:       proto.Int32(6443),
		}},
		Xdp: &ebbflowv1.XdpPhase{Values: &ebbflowv1.CiliumValues{
			LoadBalancerAcceleration: ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_NATIVE,
		}},
	}
}

// recorder keeps the statuses the driver reports.
type recorder struct {
	mu       sync.Mutex
	statuses []string
}

func (r *recorder) Status(_ context.Context, _ *ebbflowv1.ReportRef, rep cluster.StatusReport) error {
	st, msg := rep.Status, rep.Message
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.TrimPrefix(st.String(), "PHASE_STATUS_")
	if msg != "" && st != ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED {
		s += "(" + msg + ")"
	}
	r.statuses = append(r.statuses, s)
	return nil
}

func (r *recorder) Measurements(context.Context, *ebbflowv1.ReportRef, []*ebbflowv1.Measurement) error {
	return nil
}

// last is the newest status without its message.
func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.statuses) == 0 {
		return ""
	}
	s, _, _ := strings.Cut(r.statuses[len(r.statuses)-1], "(")
	return s
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.statuses)
}

func clusterAdminBinding() *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-escalation"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: agentChart, Namespace: agentNamespace}},
	}
}
