package cluster

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ebbflow/ebbflow/agent/probe"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// FuzzAssignment decodes fuzz bytes as an Assignment from the controller and runs what the
// agent derives from it before touching a cluster: the release it tunes, the phase's Helm
// values laid over the current ones, the cilium-config it will verify, the probe settings and
// the l7 policies. Nothing may panic; the current values are never modified; an accepted probe
// setting has every probe valid; an accepted policy names its kind, version and name.
func FuzzAssignment(f *testing.F) {
	kpr := true
	port := int32(6443)
	policy, _ := structpb.NewStruct(map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": map[string]any{"name": "l7-visibility"},
		"spec": map[string]any{"endpointSelector": map[string]any{}},
	})
	extra, _ := structpb.NewValue(map[string]any{"a": []any{1.0, map[string]any{"b": nil}}})
	seeds := []*ebbflowv1.Assignment{
		{},
		{Id: "a1", Action: ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY, Phase: ebbflowv1.Phase_PHASE_KPR, Profile: &ebbflowv1.ProfileSpec{
			Chart: &ebbflowv1.ChartRef{Repository: "https://helm.cilium.io", ReleaseName: "cilium", Namespace: "kube-system"},
			L7:    &ebbflowv1.L7Phase{Values: &ebbflowv1.CiliumValues{L7Proxy: &kpr}, Policies: []*structpb.Struct{policy}, Namespaces: []string{"shop"}},
			Kpr: &ebbflowv1.KprPhase{Values: &ebbflowv1.CiliumValues{
				KubeProxyReplacement: &kpr, K8SServiceHost: "10.0.0.1", K8SServicePort: &port,
				LoadBalancerMode: ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_DSR, Extra: map[string]*structpb.Value{"bpf.lb.sock": extra},
			}},
		}, Probes: &ebbflowv1.ProbeSettings{Windows: 3, Warmup: durationpb.New(1e9), Probes: []*ebbflowv1.ProbeSpec{
			{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://echo:8080/", Rate: 100, Duration: durationpb.New(5e9)},
			{Kind: ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR, Target: "echo:9000", Duration: durationpb.New(5e9)},
		}}},
		{Phase: ebbflowv1.Phase(99), Profile: &ebbflowv1.ProfileSpec{Xdp: &ebbflowv1.XdpPhase{Values: &ebbflowv1.CiliumValues{
			Extra: map[string]*structpb.Value{"": structpb.NewNullValue(), "a..b": structpb.NewNumberValue(1)},
		}}}, Probes: &ebbflowv1.ProbeSettings{Windows: -1}},
	}
	for _, a := range seeds {
		b, err := proto.Marshal(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x42, 0x05, 0x22, 0x03, 0x12, 0x01, 0x0a})
	f.Fuzz(func(t *testing.T, data []byte) {
		a := &ebbflowv1.Assignment{}
		if err := proto.Unmarshal(data, a); err != nil {
			return
		}
		rel := releaseOf(a.GetProfile())
		if rel.name == "" || rel.namespace == "" {
			t.Fatalf("release %+v without a name or namespace", rel)
		}
		current := map[string]any{"ipam": map[string]any{"mode": "kubernetes"}, "k8sServicePort": 6443.0, "list": []any{"x"}}
		before := deepCopyValue(current)
		values := profile.HelmValues(profile.CumulativeValues(a.GetProfile(), a.GetPhase()))
		merged := mergeValues(current, values)
		if !reflect.DeepEqual(current, before) {
			t.Fatalf("mergeValues modified the current values: %v", current)
		}
		if _, err := normalize(merged); err != nil && len(values) == 0 {
			t.Fatalf("the current values alone do not normalize: %v", err)
		}
		_ = profile.ExpectedConfig(profile.CumulativeValues(a.GetProfile(), a.GetPhase()))
		if err := probe.ValidateSettings(a.GetProbes()); err == nil {
			for i, p := range a.GetProbes().GetProbes() {
				if err := probe.Validate(p); err != nil {
					t.Fatalf("settings accepted with an invalid probe %d: %v", i, err)
				}
			}
		}
		objs, err := parsePolicies(a.GetProfile().GetL7().GetPolicies())
		if err == nil {
			for _, o := range objs {
				if o.GetKind() == "" || o.GroupVersionKind().Version == "" || o.GetName() == "" {
					t.Fatalf("policy accepted without kind, version or name: %v", o.Object)
				}
			}
		}
	})
}
