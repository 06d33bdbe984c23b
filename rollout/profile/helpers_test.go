package profile

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func b(x bool) *bool         { return &x }
func i32(x int32) *int32     { return &x }
func f64(x float64) *float64 { return &x }

const (
	native = ebbflowv1.RoutingMode_ROUTING_MODE_NATIVE
	tunnel = ebbflowv1.RoutingMode_ROUTING_MODE_TUNNEL
)

// spec builds a spec with a valid chart; a nil phase is absent.
func spec(base, l7, kpr, xdp *ebbflowv1.CiliumValues) *ebbflowv1.ProfileSpec {
	s := &ebbflowv1.ProfileSpec{
		Chart: &ebbflowv1.ChartRef{Repository: "https://helm.cilium.io", Version: ">=1.16.0 <1.19.0"},
	}
	if base != nil {
		s.Baseline = &ebbflowv1.BaselinePhase{Values: base}
	}
	if l7 != nil {
		s.L7 = &ebbflowv1.L7Phase{Values: l7}
	}
	if kpr != nil {
		s.Kpr = &ebbflowv1.KprPhase{Values: kpr}
	}
	if xdp != nil {
		s.Xdp = &ebbflowv1.XdpPhase{Values: xdp}
	}
	return s
}

// kprOK is kube-proxy replacement with everything the common rules need.
func kprOK() *ebbflowv1.CiliumValues {
	return &ebbflowv1.CiliumValues{
		KubeProxyReplacement: b(true),
		K8SServiceHost:       "10.0.0.1",
		K8SServicePort:       i32(6443),
		RoutingMode:          native,
		BpfMasquerade:        b(true),
	}
}

// vals returns kprOK with edit applied.
func kprWith(edit func(v *ebbflowv1.CiliumValues)) *ebbflowv1.CiliumValues {
	v := kprOK()
	edit(v)
	return v
}

func extra(kv ...any) map[string]*structpb.Value {
	m := map[string]*structpb.Value{}
	for i := 0; i+1 < len(kv); i += 2 {
		v, err := structpb.NewValue(kv[i+1])
		if err != nil {
			panic(err)
		}
		m[kv[i].(string)] = v
	}
	return m
}

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// findIssue returns the issues with the rule id.
func findIssue(list []*ebbflowv1.ValidationIssue, rule string) []*ebbflowv1.ValidationIssue {
	var out []*ebbflowv1.ValidationIssue
	for _, is := range list {
		if is.GetRule() == rule {
			out = append(out, is)
		}
	}
	return out
}

func dumpIssues(list []*ebbflowv1.ValidationIssue) string {
	var s []string
	for _, is := range list {
		s = append(s, is.GetField()+": "+is.GetMessage()+" ("+is.GetRule()+")")
	}
	return strings.Join(s, "\n")
}

func clone[T proto.Message](m T) T { return proto.Clone(m).(T) }
