package rollout

import (
	"strings"
	"testing"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func TestParseSelector(t *testing.T) {
	prod := &ebbflowv1.Cluster{Name: "a", Labels: map[string]string{"env": "prod", "region": "eu"}}
	legacy := &ebbflowv1.Cluster{Name: "b", Labels: map[string]string{"env": "prod", "region": "us", "legacy": "true"}}
	dev := &ebbflowv1.Cluster{Name: "c", Labels: map[string]string{"env": "dev"}}
	tests := []struct {
		name    string
		sel     string
		matches string // names of the matching clusters
		err     bool
	}{
		{name: "empty selects everything", sel: "", matches: "a,b,c"},
		{name: "equality", sel: "env=prod", matches: "a,b"},
		{name: "set and not", sel: "env=prod,region in (eu,us),!legacy", matches: "a"},
		{name: "inequality", sel: "env!=prod", matches: "c"},
		{name: "exists", sel: "legacy", matches: "b"},
		{name: "bad syntax", sel: "env in (prod", err: true},
		{name: "bad key", sel: "-env=prod", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := ParseSelector(tt.sel)
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), tt.sel) {
					t.Fatalf("want an error naming %q, got %v", tt.sel, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range []*ebbflowv1.Cluster{prod, legacy, dev} {
				if selects(sel, c) {
					got = append(got, c.GetName())
				}
			}
			if strings.Join(got, ",") != tt.matches {
				t.Fatalf("matches %v, want %s", got, tt.matches)
			}
		})
	}
}
