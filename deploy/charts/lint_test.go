package charts

import (
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestLint is `helm lint --strict` of both charts through the SDK, with the values a user
// must set.
func TestLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, chart string
		values      map[string]any
	}{
		{"controller", controllerChart, nil},
		{"controller-tls", controllerChart, map[string]any{"tls": map[string]any{"enabled": true, "secretName": "ebbflow-tls"}}},
		{"controller-insecure", controllerChart, map[string]any{"insecure": true, "pki": map[string]any{"secretName": ""}}},
		{"agent", agentChart, agentRequired()},
		{"agent-overrides", agentChart, merge(agentRequired(), map[string]any{"nameOverride": "agent", "rbac": map[string]any{"create": false}})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := lint.AllWithKubeVersion(tt.chart, tt.values, testNamespace, kv)
			for _, m := range res.Messages {
				// Strict: anything above INFO (e.g. the missing icon) fails.
				if m.Severity > support.InfoSev {
					t.Errorf("%s", m)
				} else {
					t.Logf("%s", m)
				}
			}
		})
	}
}

// TestChartMetadata: both charts say where they come from, who keeps them and which
// Kubernetes they need (the lint passes without these).
func TestChartMetadata(t *testing.T) {
	for _, c := range []string{controllerChart, agentChart} {
		ch, err := loader.Load(c)
		if err != nil {
			t.Fatal(err)
		}
		m := ch.Metadata
		if m.Home == "" || len(m.Sources) == 0 || len(m.Maintainers) == 0 || m.KubeVersion == "" {
			t.Errorf("%s: home %q, sources %v, maintainers %v, kubeVersion %q", c, m.Home, m.Sources, m.Maintainers, m.KubeVersion)
		}
		for _, mt := range m.Maintainers {
			if mt.Name == "" || (mt.Email == "" && mt.URL == "") {
				t.Errorf("%s: maintainer %+v without a name and a way to reach them", c, mt)
			}
		}
		if !chartutil.IsCompatibleRange(m.KubeVersion, kubeVersion) {
			t.Errorf("%s: kubeVersion %q excludes %s, which the tests render for", c, m.KubeVersion, kubeVersion)
		}
	}
}
