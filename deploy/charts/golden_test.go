package charts

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenCases are the renderings kept in testdata: <name>.golden.yaml is what `helm template`
// prints (the objects, then the hooks: helm test's), <name>.notes.golden.txt the NOTES (of a
// chart alone).
var goldenCases = []struct {
	name, chart string
	// parent, when set, builds the chart to render instead (a parent with both as subcharts).
	parent func(testing.TB) string
	values map[string]any
}{
	{name: "controller-default", chart: controllerChart},
	{name: "controller-tls", chart: controllerChart, values: map[string]any{
		"tls": map[string]any{"enabled": true, "secretName": "ebbflow-controller-tls"},
		"serviceMonitor": map[string]any{"enabled": true, "tlsConfig": map[string]any{"ca": map[string]any{"secret": map[string]any{"name": "ebbflow-controller-tls", "key": "ca.crt"}}},
			"bearerTokenSecret": map[string]any{"name": "ebbflow-metrics", "key": "token"}},
		"tokens": map[string]any{"secretName": "ebbflow-people"},
		"apiUrl": "https://ebbflow.example.com:443",
		"tests":  map[string]any{"tokenSecret": map[string]any{"name": "ebbflow-metrics"}},
	}},
	{name: "controller-insecure", chart: controllerChart, values: map[string]any{"insecure": true, "replicas": 1, "pki": map[string]any{"secretName": ""}}},
	{name: "agent-default", chart: agentChart, values: agentRequired()},
	{name: "agent-tls", chart: agentChart, values: merge(agentRequired(), map[string]any{
		"controllerUrl": "https://ebbflow.example.com:443",
		"controllerCA":  map[string]any{"secretName": "ebbflow-controller-ca"},
		"joinToken":     map[string]any{"secretName": "ebbflow-join-token"},
		"clusterLabels": map[string]any{"env": "prod", "region": "eu"},
	})},
	{name: "subcharts", parent: parentChart, values: parentValues()},
}

// TestGolden renders each case and compares it with its golden files (go test -update
// rewrites them).
func TestGolden(t *testing.T) {
	for _, tt := range goldenCases {
		t.Run(tt.name, func(t *testing.T) {
			chart, name := tt.chart, tt.chart
			if tt.parent != nil {
				chart, name = tt.parent(t), parentRelease
			}
			rel := release(t, chart, name, testNamespace, tt.values)
			compareGolden(t, filepath.Join("testdata", tt.name+".golden.yaml"), templateOutput(rel))
			// Helm joins subcharts' NOTES in map order: TestSubcharts checks those piece by piece.
			if tt.parent == nil {
				compareGolden(t, filepath.Join("testdata", tt.name+".notes.golden.txt"), rel.Info.Notes)
			}
		})
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
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
}
