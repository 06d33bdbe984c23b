package profile

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// FuzzDecodeValidate feeds arbitrary documents through DecodeYAML and Validate: nothing may
// panic, every rejection must name a field, and an accepted profile must survive EncodeYAML and
// DecodeYAML unchanged.
func FuzzDecodeValidate(f *testing.F) {
	for _, name := range exampleFiles {
		f.Add(readExample(f, name))
	}
	f.Add([]byte(header + "spec:\n  kpr:\n    values:\n      routingMode: native\n      mtu: 1e3\n"))
	f.Add([]byte(header + "spec:\n  xdp:\n    values:\n      extra: {a.b: [1, {c: null}], x\\.y: -0}\n      allowTurnOff: [a.b]\n"))
	f.Add([]byte(header + "spec:\n  l7:\n    policies: [{apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, spec: {egress: [{toPorts: [{rules: {http: [{}]}}]}]}}]\n"))
	f.Add([]byte(header + "spec:\n  kpr:\n    values:\n      bpfMapDynamicSizeRatio: NaN\n      routingMode: 7\n"))
	f.Add([]byte("a: &a [*a]"))
	inv := &ebbflowv1.Inventory{Nodes: []*ebbflowv1.NodeInfo{
		{Name: "a", KernelVersion: "6.8.0-45-generic", NicDriver: "mlx5_core"},
		{Name: "b", KernelVersion: "4.19.57", NicDriver: "ena"},
		{Name: "c", KernelVersion: "x"},
	}}
	f.Fuzz(func(t *testing.T, data []byte) {
		name, spec, err := DecodeYAML(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Msg == "" {
				t.Fatalf("rejection without a field: %#v", err)
			}
			return
		}
		res := Validate(name, spec)
		for _, is := range append(append([]*ebbflowv1.ValidationIssue(nil), res.Errors...), res.Warnings...) {
			if is.GetField() == "" || is.GetRule() == "" || is.GetMessage() == "" {
				t.Fatalf("issue without field, rule or message: %v", is)
			}
		}
		if err := res.Err(); (err != nil) != (len(res.Errors) > 0) {
			t.Fatalf("Err() = %v with %d errors", err, len(res.Errors))
		} else if err != nil {
			for _, is := range res.Errors {
				if !strings.Contains(err.Error(), is.GetField()+": ") {
					t.Fatalf("Err() does not name %s: %v", is.GetField(), err)
				}
			}
		}
		for _, p := range AllPhases() {
			v := CumulativeValues(spec, p)
			HelmValues(v)
			ExpectedConfig(v)
			PhasePasses(Preflight(spec, p, inv))
		}
		ParkedDaemonSets(spec)
		PreflightWarnings("c", spec, inv)

		p := &ebbflowv1.Profile{Name: name, Spec: spec}
		out, err := EncodeYAML(p)
		if err != nil {
			t.Fatalf("EncodeYAML of a decoded profile: %v", err)
		}
		if len(out) > MaxDocumentBytes {
			return
		}
		name2, spec2, err := DecodeYAML(out)
		if err != nil {
			t.Fatalf("DecodeYAML of EncodeYAML output: %v\n%s", err, out)
		}
		p2 := &ebbflowv1.Profile{Name: name2, Spec: spec2}
		if name2 != name || (!proto.Equal(spec, spec2) && len(Diff(p, p2)) > 0) {
			t.Fatalf("round trip changed the profile: %v\n%s", Diff(p, p2), out)
		}
	})
}
