package charts

import (
	"testing"

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
		{"agent", agentChart, agentRequired()},
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
