package profile

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func TestValidateFields(t *testing.T) {
	base := func(edit func(s *ebbflowv1.ProfileSpec)) *ebbflowv1.ProfileSpec {
		s := spec(nil, nil, kprOK(), nil)
		edit(s)
		return s
	}
	kprVal := func(edit func(v *ebbflowv1.CiliumValues)) *ebbflowv1.ProfileSpec {
		return base(func(s *ebbflowv1.ProfileSpec) { edit(s.Kpr.Values) })
	}
	policy := func(m map[string]any) func(s *ebbflowv1.ProfileSpec) {
		return func(s *ebbflowv1.ProfileSpec) {
			st, err := structpb.NewStruct(m)
			if err != nil {
				t.Fatal(err)
			}
			if s.L7 == nil {
				s.L7 = &ebbflowv1.L7Phase{}
			}
			s.L7.Policies = append(s.L7.Policies, st)
		}
	}
	cnp := func(name, ns string) map[string]any {
		md := map[string]any{"name": name}
		if ns != "" {
			md["namespace"] = ns
		}
		return map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": md, "spec": map[string]any{}}
	}
	manyExtra := map[string]*structpb.Value{}
	for i := range MaxExtraKeys + 1 {
		manyExtra[fmt.Sprintf("k%d", i)] = structpb.NewBoolValue(true)
	}
	tests := []struct {
		name  string
		pname string
		spec  *ebbflowv1.ProfileSpec
		field string // "" means valid
		rule  string
	}{
		{name: "valid", pname: "p", spec: base(func(*ebbflowv1.ProfileSpec) {})},
		{name: "name missing", spec: base(func(*ebbflowv1.ProfileSpec) {}), field: "name", rule: "required"},
		{name: "name not a label", pname: "Bad_Name", spec: base(func(*ebbflowv1.ProfileSpec) {}), field: "name", rule: "dns-label"},
		{name: "name too long", pname: strings.Repeat("a", 64), spec: base(func(*ebbflowv1.ProfileSpec) {}), field: "name", rule: "dns-label"},
		{name: "spec missing", pname: "p", field: "spec", rule: "required"},
		{name: "platform upper case ok", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Platform = "EKS" })},
		{name: "platform bad", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Platform = "bare metal" }), field: "spec.platform", rule: "dns-label"},
		{name: "description too long", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Description = strings.Repeat("x", MaxStringBytes+1) }), field: "spec.description", rule: "max-length"},
		{name: "chart missing", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart = nil }), field: "spec.chart.repository", rule: "required"},
		{name: "chart http", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.Repository = "http://helm.cilium.io" }), field: "spec.chart.repository", rule: "chart-repository"},
		{name: "chart https without host", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.Repository = "https:///x" }), field: "spec.chart.repository", rule: "chart-repository"},
		{name: "chart relative path", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.Repository = "charts/cilium" }), field: "spec.chart.repository", rule: "chart-repository"},
		{name: "chart oci", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.Repository = "oci://quay.io/cilium/charts" })},
		{name: "chart local absolute", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.Repository = "/srv/charts/cilium" })},
		{name: "chart local relative", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.Repository = "./charts/cilium" })},
		{name: "chart version bad", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.Version = ">=1.16 <<2" }), field: "spec.chart.version", rule: "semver-constraint"},
		{name: "chart version exact", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.Version = "1.17.4" })},
		{name: "chart name bad", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.Name = "Cilium" }), field: "spec.chart.name", rule: "dns-label"},
		{name: "release name too long", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.ReleaseName = strings.Repeat("a", 54) }), field: "spec.chart.releaseName", rule: "release-name"},
		{name: "chart namespace bad", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Chart.Namespace = "kube_system" }), field: "spec.chart.namespace", rule: "dns-label"},
		{name: "enum undefined", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.RoutingMode = 9 }), field: "spec.kpr.values.routingMode", rule: "enum"},
		{name: "kpr mode undefined", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.Kpr.Mode = 7 }), field: "spec.kpr.mode", rule: "enum"},
		{name: "port zero", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.K8SServicePort = i32(0) }), field: "spec.kpr.values.k8sServicePort", rule: "range"},
		{name: "port too big", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.K8SServicePort = i32(70000) }), field: "spec.kpr.values.k8sServicePort", rule: "range"},
		{name: "host with scheme", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.K8SServiceHost = "https://api.example.com" }), field: "spec.kpr.values.k8sServiceHost", rule: "host"},
		{name: "host upper-case EKS endpoint", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.K8SServiceHost = "0A1B2C3D4E.gr7.us-west-2.eks.amazonaws.com" })},
		{name: "host bad", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.K8SServiceHost = "api server" }), field: "spec.kpr.values.k8sServiceHost", rule: "host"},
		{name: "cidr v6", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Ipv4NativeRoutingCidr = "fd00::/64" }), field: "spec.kpr.values.ipv4NativeRoutingCidr", rule: "cidr"},
		{name: "cidr bad", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Ipv4NativeRoutingCidr = "10.0.0.0" }), field: "spec.kpr.values.ipv4NativeRoutingCidr", rule: "cidr"},
		{name: "cidr ok", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Ipv4NativeRoutingCidr = "10.0.0.0/8" })},
		{name: "map ratio too big", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.BpfMapDynamicSizeRatio = f64(2) }), field: "spec.kpr.values.bpfMapDynamicSizeRatio", rule: "range"},
		{name: "map ratio ok", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.BpfMapDynamicSizeRatio = f64(0.0025) })},
		{name: "maglev size not prime", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.MaglevTableSize = i32(16384) }), field: "spec.kpr.values.maglevTableSize", rule: "maglev-table-size"},
		{name: "maglev size prime but not allowed", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.MaglevTableSize = i32(16369) }), field: "spec.kpr.values.maglevTableSize", rule: "maglev-table-size"},
		{name: "maglev size ok", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) {
			v.MaglevTableSize = i32(131071)
			v.LoadBalancerAlgorithm = ebbflowv1.LoadBalancerAlgorithm_LOAD_BALANCER_ALGORITHM_MAGLEV
		})},
		{name: "hash seed not base64", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.MaglevHashSeed = "not base64!" }), field: "spec.kpr.values.maglevHashSeed", rule: "maglev-hash-seed"},
		{name: "hash seed 16 bytes", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.MaglevHashSeed = "AAAAAAAAAAAAAAAAAAAAAA==" }), field: "spec.kpr.values.maglevHashSeed", rule: "maglev-hash-seed"},
		{name: "hash seed 12 bytes", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) {
			v.MaglevHashSeed = "JLfvgnHc2kaSUFaI"
			v.LoadBalancerAlgorithm = ebbflowv1.LoadBalancerAlgorithm_LOAD_BALANCER_ALGORITHM_MAGLEV
		})},
		{name: "mtu too small", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Mtu = i32(100) }), field: "spec.kpr.values.mtu", rule: "range"},
		{name: "mtu auto", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Mtu = i32(0) })},
		{name: "mtu jumbo", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Mtu = i32(9001) })},
		{name: "extra key bad", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Extra = extra("a..b", 1) }), field: `spec.kpr.values.extra["a..b"]`, rule: "extra-key"},
		{name: "extra key with space", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Extra = extra("a b", 1) }), field: `spec.kpr.values.extra["a b"]`, rule: "extra-key"},
		{name: "extra key escaped dot", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Extra = extra(`podAnnotations.prometheus\.io/scrape`, "true") })},
		{name: "extra sets typed key", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Extra = extra("bpf.masquerade", true) }), field: `spec.kpr.values.extra["bpf.masquerade"]`, rule: "extra-typed-key"},
		{name: "extra covers typed key", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Extra = extra("loadBalancer", map[string]any{"mode": "dsr"}) }), field: "spec.kpr.values.extra.loadBalancer", rule: "extra-typed-key"},
		{name: "extra below typed key", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Extra = extra("MTU.x", 1) }), field: `spec.kpr.values.extra["MTU.x"]`, rule: "extra-typed-key"},
		{name: "extra sibling of typed key", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Extra = extra("bpf.preallocateMaps", true) })},
		{name: "extra too many", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Extra = manyExtra }), field: "spec.kpr.values.extra", rule: "max-items"},
		{name: "extra string too long", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.Extra = extra("a", strings.Repeat("x", MaxStringBytes+1)) }), field: "spec.kpr.values.extra.a", rule: "max-length"},
		{name: "allowTurnOff bad", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.AllowTurnOff = []string{"not a key"} }), field: "spec.kpr.values.allowTurnOff[0]", rule: "allow-turn-off-key"},
		{name: "allowTurnOff duplicate", pname: "p", spec: kprVal(func(v *ebbflowv1.CiliumValues) { v.AllowTurnOff = []string{"bpf.masquerade", "bpfMasquerade"} }), field: "spec.kpr.values.allowTurnOff[1]", rule: "duplicate"},
		{name: "l7 namespace bad", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.L7 = &ebbflowv1.L7Phase{Namespaces: []string{"Web"}} }), field: "spec.l7.namespaces[0]", rule: "dns-label"},
		{name: "l7 namespace duplicate", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { s.L7 = &ebbflowv1.L7Phase{Namespaces: []string{"web", "web"}} }), field: "spec.l7.namespaces[1]", rule: "duplicate"},
		{name: "policy ok in its namespace", pname: "p", spec: base(policy(cnp("vis", "web")))},
		{name: "policy wrong kind", pname: "p", spec: base(policy(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x", "namespace": "web"}, "spec": map[string]any{}})), field: "spec.l7.policies[0].apiVersion", rule: "l7-policy-kind"},
		{name: "policy without name", pname: "p", spec: base(policy(cnp("", "web"))), field: "spec.l7.policies[0].metadata.name", rule: "required"},
		{name: "policy without spec", pname: "p", spec: base(policy(map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": map[string]any{"name": "x", "namespace": "web"}})), field: "spec.l7.policies[0].spec", rule: "required"},
		{name: "policy without any namespace", pname: "p", spec: base(policy(cnp("vis", ""))), field: "spec.l7.policies[0].metadata.namespace", rule: "l7-policy-namespace"},
		{name: "policy outside the namespaces", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			policy(cnp("vis", "other"))(s)
			s.L7.Namespaces = []string{"web"}
		}), field: "spec.l7.policies[0].metadata.namespace", rule: "l7-policy-namespace"},
		{name: "clusterwide policy with namespace", pname: "p", spec: base(policy(map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": map[string]any{"name": "x", "namespace": "web"}, "spec": map[string]any{}})), field: "spec.l7.policies[0].metadata.namespace", rule: "l7-policy-namespace"},
		{name: "policy duplicate", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) { policy(cnp("vis", "web"))(s); policy(cnp("vis", "web"))(s) }), field: "spec.l7.policies[1].metadata.name", rule: "duplicate"},
		{name: "policies too many", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			for i := range MaxPolicies + 1 {
				policy(cnp(fmt.Sprintf("p%d", i), "web"))(s)
			}
		}), field: "spec.l7.policies", rule: "max-items"},
		{name: "kpr node by node", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
		})},
		{name: "kpr node by node batches", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
			s.Kpr.Batches = &ebbflowv1.KprBatches{CanaryNodes: proto.Int32(2), BatchPercent: proto.Int32(50)}
		})},
		{name: "kpr batches cluster-wide", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_CLUSTER_WIDE
			s.Kpr.Batches = &ebbflowv1.KprBatches{CanaryNodes: proto.Int32(1)}
		}), field: "spec.kpr.batches", rule: "batches-need-node-by-node"},
		{name: "kpr canary 0", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
			s.Kpr.Batches = &ebbflowv1.KprBatches{CanaryNodes: proto.Int32(0)}
		}), field: "spec.kpr.batches.canaryNodes", rule: "range"},
		{name: "kpr batch nodes negative", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
			s.Kpr.Batches = &ebbflowv1.KprBatches{BatchNodes: proto.Int32(-3)}
		}), field: "spec.kpr.batches.batchNodes", rule: "range"},
		{name: "kpr batch percent over 100", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
			s.Kpr.Batches = &ebbflowv1.KprBatches{BatchPercent: proto.Int32(150)}
		}), field: "spec.kpr.batches.batchPercent", rule: "range"},
		{name: "kpr batch nodes and percent", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
			s.Kpr.Batches = &ebbflowv1.KprBatches{BatchNodes: proto.Int32(2), BatchPercent: proto.Int32(50)}
		}), field: "spec.kpr.batches", rule: "one-of"},
		{name: "kpr node by node extra", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE
			if s.Kpr.Values == nil {
				s.Kpr.Values = &ebbflowv1.CiliumValues{}
			}
			s.Kpr.Values.Extra = map[string]*structpb.Value{"foo.bar": structpb.NewBoolValue(true)}
		}), field: "spec.kpr.values.extra", rule: "node-by-node-extra"},
		{name: "kpr cluster-wide", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.Mode = ebbflowv1.KprMode_KPR_MODE_CLUSTER_WIDE
		})},
		{name: "park cilium", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.ParkDaemonSets = []*ebbflowv1.DaemonSetRef{{Name: "cilium"}}
		}), field: "spec.kpr.parkDaemonSets[0].name", rule: "park-cilium"},
		{name: "park duplicate", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.ParkDaemonSets = []*ebbflowv1.DaemonSetRef{{Name: "kube-proxy"}, {Namespace: "kube-system", Name: "kube-proxy"}}
		}), field: "spec.kpr.parkDaemonSets[1]", rule: "duplicate"},
		{name: "park without name", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.ParkDaemonSets = []*ebbflowv1.DaemonSetRef{{Namespace: "kube-system"}}
		}), field: "spec.kpr.parkDaemonSets[0].name", rule: "required"},
		{name: "park aws-node", pname: "p", spec: base(func(s *ebbflowv1.ProfileSpec) {
			s.Kpr.ParkDaemonSets = []*ebbflowv1.DaemonSetRef{{Name: "kube-proxy"}, {Name: "aws-node"}}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Validate(tt.pname, tt.spec)
			if tt.field == "" {
				if err := res.Err(); err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			for _, is := range res.Errors {
				if is.GetField() == tt.field && is.GetRule() == tt.rule {
					return
				}
			}
			t.Fatalf("want %s at %s, got:\n%s", tt.rule, tt.field, dumpIssues(res.Errors))
		})
	}
}

func TestResultErr(t *testing.T) {
	if err := (Result{Warnings: []*ebbflowv1.ValidationIssue{{Field: "f", Rule: "r", Message: "m"}}}).Err(); err != nil {
		t.Fatalf("warnings only: Err() = %v", err)
	}
	r := Result{Errors: []*ebbflowv1.ValidationIssue{
		{Field: "name", Rule: "required", Message: "must be set"},
		{Field: "spec.chart.repository", Rule: "required", Message: "must be set"},
	}}
	err := r.Err()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Issues) != 2 {
		t.Fatalf("Err() = %#v", err)
	}
	want := "invalid profile: name: must be set (required); spec.chart.repository: must be set (required)"
	if err.Error() != want {
		t.Fatalf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestValidateUnvalidatedKeys(t *testing.T) {
	s := spec(&ebbflowv1.CiliumValues{Extra: extra("b.x", 1, "a", true)}, nil, kprWith(func(v *ebbflowv1.CiliumValues) { v.Extra = extra("a", false) }), nil)
	s.Kpr.Values.AllowTurnOff = []string{"a"}
	res := Validate("p", s)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Unvalidated, ","); got != "a,b.x" {
		t.Fatalf("Unvalidated = %q", got)
	}
	if n := len(findIssue(res.Warnings, "extra-unvalidated")); n != 3 {
		t.Fatalf("%d extra-unvalidated warnings, want 3 (one per key per phase)", n)
	}
}

func TestValidateDeepStruct(t *testing.T) {
	v := structpb.NewStringValue("leaf")
	for range maxStructDepth + 5 {
		v = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": v}})
	}
	s := spec(&ebbflowv1.CiliumValues{Extra: map[string]*structpb.Value{"deep": v}}, nil, nil, nil)
	res := Validate("p", s)
	if len(findIssue(res.Errors, "max-depth")) != 1 {
		t.Fatalf("want one max-depth error, got:\n%s", dumpIssues(res.Errors))
	}
}
