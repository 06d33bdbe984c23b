package profile

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

const header = "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata:\n  name: p\n"

func TestDecodeYAML(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, spec *ebbflowv1.ProfileSpec)
	}{
		{
			name: "short enum spellings",
			doc: header + `spec:
  kpr:
    mode: node-by-node
    values:
      routingMode: native
      tunnelProtocol: Geneve
      bpfDatapathMode: netkit-l2
      loadBalancerAlgorithm: maglev
      loadBalancerMode: hybrid
      loadBalancerAcceleration: best-effort
      loadBalancerDsrDispatch: opt
`,
			check: func(t *testing.T, s *ebbflowv1.ProfileSpec) {
				want := &ebbflowv1.KprPhase{Mode: ebbflowv1.KprMode_KPR_MODE_NODE_BY_NODE, Values: &ebbflowv1.CiliumValues{
					RoutingMode:              native,
					TunnelProtocol:           ebbflowv1.TunnelProtocol_TUNNEL_PROTOCOL_GENEVE,
					BpfDatapathMode:          ebbflowv1.DatapathMode_DATAPATH_MODE_NETKIT_L2,
					LoadBalancerAlgorithm:    ebbflowv1.LoadBalancerAlgorithm_LOAD_BALANCER_ALGORITHM_MAGLEV,
					LoadBalancerMode:         ebbflowv1.LoadBalancerMode_LOAD_BALANCER_MODE_HYBRID,
					LoadBalancerAcceleration: ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_BEST_EFFORT,
					LoadBalancerDsrDispatch:  ebbflowv1.DsrDispatch_DSR_DISPATCH_OPT,
				}}
				if !proto.Equal(s.GetKpr(), want) {
					t.Fatalf("kpr = %v", s.GetKpr())
				}
			},
		},
		{
			name: "proto enum names and proto field names",
			doc: header + `spec:
  kpr:
    values:
      routing_mode: ROUTING_MODE_NATIVE
      kube_proxy_replacement: true
      maglev_table_size: "16381"
      mtu: 9.0e3
`,
			check: func(t *testing.T, s *ebbflowv1.ProfileSpec) {
				v := s.GetKpr().GetValues()
				if v.GetRoutingMode() != native || !v.GetKubeProxyReplacement() || v.GetMaglevTableSize() != 16381 || v.GetMtu() != 9000 {
					t.Fatalf("values = %v", v)
				}
			},
		},
		{
			name: "explicit false is kept (presence)",
			doc:  header + "spec:\n  xdp:\n    values:\n      bpfHostLegacyRouting: false\n",
			check: func(t *testing.T, s *ebbflowv1.ProfileSpec) {
				if v := s.GetXdp().GetValues(); v.BpfHostLegacyRouting == nil || v.GetBpfHostLegacyRouting() {
					t.Fatalf("values = %v", v)
				}
			},
		},
		{
			name: "extra values and policies are free-form",
			doc: header + `spec:
  l7:
    policies:
      - {apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {name: x}, spec: {endpointSelector: {}}}
    values:
      extra:
        hubble.relay.enabled: true
        operator.replicas: 2
        ignored: null
`,
			check: func(t *testing.T, s *ebbflowv1.ProfileSpec) {
				e := s.GetL7().GetValues().GetExtra()
				if !e["hubble.relay.enabled"].GetBoolValue() || e["operator.replicas"].GetNumberValue() != 2 || e["ignored"] == nil {
					t.Fatalf("extra = %v", e)
				}
				if len(s.GetL7().GetPolicies()) != 1 {
					t.Fatalf("policies = %v", s.GetL7().GetPolicies())
				}
			},
		},
		{
			name: "no spec",
			doc:  header,
			check: func(t *testing.T, s *ebbflowv1.ProfileSpec) {
				if !proto.Equal(s, &ebbflowv1.ProfileSpec{}) {
					t.Fatalf("spec = %v", s)
				}
			},
		},
		{
			name: "read-only metadata is accepted and ignored",
			doc:  "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata:\n  name: p\n  revision: 3\n  updatedBy: alice\n  updateTime: \"2025-01-01T00:00:00Z\"\nspec: {platform: eks}\n",
			check: func(t *testing.T, s *ebbflowv1.ProfileSpec) {
				if s.GetPlatform() != "eks" {
					t.Fatalf("spec = %v", s)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, s, err := DecodeYAML([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if name != "p" {
				t.Fatalf("name = %q", name)
			}
			tt.check(t, s)
		})
	}
}

func TestDecodeYAMLErrors(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		field string
		msg   string // a substring of the message
	}{
		{"not yaml", "a: [b", FieldDocument, "not valid YAML"},
		{"empty", "", FieldDocument, "must be a mapping"},
		{"a list", "- a\n- b\n", FieldDocument, "must be a mapping"},
		{"too big", header + "spec:\n  description: " + strings.Repeat("x", MaxDocumentBytes) + "\n", FieldDocument, "larger than"},
		{"unknown top-level key", header + "status: {}\n", "status", "unknown field"},
		{"wrong apiVersion", strings.Replace(header, "ebbflow.io/v1", "v1", 1), "apiVersion", `must be "ebbflow.io/v1"`},
		{"missing kind", "apiVersion: ebbflow.io/v1\nmetadata: {name: p}\n", "kind", `must be "Profile"`},
		{"metadata not a map", "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: p\n", "metadata", "want a mapping"},
		{"metadata unknown key", "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: {name: p, labels: {}}\n", "metadata.labels", "unknown field"},
		{"name not a string", "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: {name: 12}\n", "metadata.name", "want a string"},
		{"typo in values", header + "spec:\n  kpr:\n    values:\n      routingMod: native\n", "spec.kpr.values.routingMod", "did you mean routingMode?"},
		{"typo in phase", header + "spec:\n  kpr:\n    parkDaemonSet: []\n", "spec.kpr.parkDaemonSet", "did you mean parkDaemonSets?"},
		{"unknown enum", header + "spec:\n  kpr:\n    values:\n      loadBalancerMode: turbo\n", "spec.kpr.values.loadBalancerMode", "want one of snat, dsr, hybrid"},
		{"enum wrong type", header + "spec:\n  kpr:\n    values:\n      routingMode: [native]\n", "spec.kpr.values.routingMode", "want one of"},
		{"bool as string", header + "spec:\n  kpr:\n    values:\n      bpfMasquerade: \"true\"\n", "spec.kpr.values.bpfMasquerade", "want true or false"},
		{"string as number", header + "spec:\n  chart:\n    version: 1.16\n", "spec.chart.version", "quote it"},
		{"int out of range", header + "spec:\n  kpr:\n    values:\n      mtu: 99999999999\n", "spec.kpr.values.mtu", "fits 32 bits"},
		{"int fraction", header + "spec:\n  kpr:\n    values:\n      mtu: 1500.5\n", "spec.kpr.values.mtu", "whole number"},
		{"float as word", header + "spec:\n  kpr:\n    values:\n      bpfMapDynamicSizeRatio: lots\n", "spec.kpr.values.bpfMapDynamicSizeRatio", "want a number"},
		{"list expected", header + "spec:\n  l7:\n    namespaces: web\n", "spec.l7.namespaces", "want a list"},
		{"null in list", header + "spec:\n  l7:\n    namespaces: [web, null]\n", "spec.l7.namespaces[1]", "may not be empty"},
		{"policy not a map", header + "spec:\n  l7:\n    policies: [x]\n", "spec.l7.policies[0]", "want a mapping"},
		{"message expected", header + "spec:\n  kpr: yes\n", "spec.kpr", "want a mapping"},
		{"same field twice by two names", header + "spec:\n  kpr:\n    values:\n      routingMode: native\n      routing_mode: tunnel\n", "spec.kpr.values.routingMode", "set twice"},
		{"repeated key", header + "spec:\n  platform: eks\n  platform: gke\n", "platform", "repeated key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeYAML([]byte(tt.doc))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want a *FieldError, got %v", err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("got %q: %q; want field %q with %q", fe.Field, fe.Msg, tt.field, tt.msg)
			}
		})
	}
}

func TestEncodeYAMLRoundTrip(t *testing.T) {
	for _, f := range exampleFiles {
		t.Run(f, func(t *testing.T) {
			name, s, err := DecodeYAML(readExample(t, f))
			if err != nil {
				t.Fatal(err)
			}
			p := &ebbflowv1.Profile{Name: name, Revision: 4, Spec: s, UpdatedBy: "alice", UpdateTime: timestamppb.New(timestamppb.Now().AsTime())}
			out, err := EncodeYAML(p)
			if err != nil {
				t.Fatal(err)
			}
			name2, s2, err := DecodeYAML(out)
			if err != nil {
				t.Fatalf("decode encoded: %v\n%s", err, out)
			}
			if name2 != name || !proto.Equal(s, s2) {
				t.Fatalf("round trip changed the profile:\n%s", out)
			}
			if len(Diff(p, &ebbflowv1.Profile{Name: name2, Spec: s2})) != 0 {
				t.Fatal("Diff of a round trip is not empty")
			}
		})
	}
}

func TestEncodeYAMLFormat(t *testing.T) {
	p := &ebbflowv1.Profile{Name: "p", Revision: 2, Spec: spec(nil, nil, kprWith(func(v *ebbflowv1.CiliumValues) {
		v.LoadBalancerAcceleration = ebbflowv1.LoadBalancerAcceleration_LOAD_BALANCER_ACCELERATION_BEST_EFFORT
		v.BpfMasquerade = b(false)
	}), nil)}
	out, err := EncodeYAML(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: ebbflow.io/v1
kind: Profile
metadata:
  name: p
  revision: 2
spec:
  chart:
    repository: https://helm.cilium.io
    version: '>=1.16.0 <1.19.0'
  kpr:
    values:
      kubeProxyReplacement: true
      k8sServiceHost: 10.0.0.1
      k8sServicePort: 6443
      routingMode: native
      bpfMasquerade: false
      loadBalancerAcceleration: best-effort
`
	if string(out) != want {
		t.Fatalf("EncodeYAML:\n%s\nwant\n%s", out, want)
	}
	if out, err := EncodeYAML(nil); err != nil || !strings.Contains(string(out), "spec: {}") {
		t.Fatalf("EncodeYAML(nil) = %s, %v", out, err)
	}
}
