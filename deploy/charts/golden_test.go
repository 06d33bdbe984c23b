package charts

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenCases are the renderings kept in testdata/<name>.golden.yaml.
var goldenCases = []struct {
	name, chart string
	values      map[string]any
}{
	{"controller-default", controllerChart, nil},
	{"controller-tls", controllerChart, map[string]any{
		"tls": map[string]any{"enabled": true, "secretName": "ebbflow-controller-tls"},
		"serviceMonitor": map[string]any{"enabled": true, "tlsConfig": map[string]any{"ca": map[string]any{"secret": map[string]any{"name": "ebbflow-controller-tls", "key": "ca.crt"}}},
			"bearerTokenSecret": map[string]any{"name": "ebbflow-metrics", "key": "token"}},
		"tokens": map[string]any{"secretName": "ebbflow-people"},
	}},
	{"agent-default", agentChart, agentRequired()},
	{"agent-tls", agentChart, merge(agentRequired(), map[string]any{
		"controllerUrl": "https://ebbflow.example.com:443",
		"controllerCA":  map[string]any{"secretName": "ebbflow-controller-ca"},
		"joinToken":     map[string]any{"secretName": "ebbflow-join-token"},
		"clusterLabels": map[string]any{"env": "prod", "region": "eu"},
	})},
}

// TestGolden renders each case and compares it with its golden file (go test -update
// rewrites them).
func TestGolden(t *testing.T) {
	for _, tt := range goldenCases {
		t.Run(tt.name, func(t *testing.T) {
			got := render(t, tt.chart, tt.chart, testNamespace, tt.values)
			path := filepath.Join("testdata", tt.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./deploy/charts -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the rendering (go test ./deploy/charts -run TestGolden -update rewrites it); rendering:\n%s", path, lines(got))
			}
		})
	}
}
