package profile

import (
	"fmt"
	"strings"
	"testing"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func TestDiff(t *testing.T) {
	old := &ebbflowv1.Profile{Name: "p", Revision: 1, Spec: spec(nil, nil, kprOK(), nil)}
	old.Spec.L7 = &ebbflowv1.L7Phase{Namespaces: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}}

	changed := clone(old)
	changed.Revision = 2
	changed.UpdatedBy = "bob"
	changed.Spec.Kpr.Values.RoutingMode = tunnel
	changed.Spec.Kpr.Values.BpfMasquerade = nil
	changed.Spec.Kpr.Values.Extra = extra("hubble.relay.enabled", true)
	changed.Spec.L7.Namespaces[2] = "C"
	changed.Spec.L7.Namespaces[10] = "K"
	changed.Spec.Xdp = &ebbflowv1.XdpPhase{}

	tests := []struct {
		name string
		a, b *ebbflowv1.Profile
		want []string
	}{
		{name: "identical, revision and author ignored", a: old, b: func() *ebbflowv1.Profile { p := clone(old); p.Revision = 9; p.UpdatedBy = "x"; return p }()},
		{name: "changes sorted by path, indexes numerically", a: old, b: changed, want: []string{
			`spec.kpr.values.bpfMasquerade: true -> `,
			`spec.kpr.values.extra["hubble.relay.enabled"]:  -> true`,
			`spec.kpr.values.routingMode: "native" -> "tunnel"`,
			`spec.l7.namespaces[2]: "c" -> "C"`,
			`spec.l7.namespaces[10]: "k" -> "K"`,
			`spec.xdp:  -> {}`,
		}},
		{name: "from nothing", a: nil, b: &ebbflowv1.Profile{Name: "p", Spec: &ebbflowv1.ProfileSpec{Platform: "eks"}}, want: []string{
			`metadata.name:  -> "p"`,
			`spec.platform:  -> "eks"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, l := range Diff(tt.a, tt.b) {
				got = append(got, fmt.Sprintf("%s: %s -> %s", l.Path, l.Old, l.New))
				if s := l.String(); !strings.Contains(s, l.Path) || s[1] != ' ' || !strings.Contains("+-~", s[:1]) {
					t.Errorf("String() = %q", s)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("Diff:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDiffLineString(t *testing.T) {
	tests := []struct {
		line DiffLine
		want string
	}{
		{DiffLine{Path: "spec.platform", New: `"eks"`}, `+ spec.platform: "eks"`},
		{DiffLine{Path: "spec.platform", Old: `"eks"`}, `- spec.platform: "eks"`},
		{DiffLine{Path: "spec.platform", Old: `"eks"`, New: `"gke"`}, `~ spec.platform: "eks" -> "gke"`},
	}
	for _, tt := range tests {
		if got := tt.line.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
