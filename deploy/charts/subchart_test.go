package charts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	helmrelease "helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// parentRelease is the release name of the parent chart the subchart tests install.
const parentRelease = "platform"

// parentChart builds, in a temporary folder, a parent chart "platform" that depends on both
// charts (copied into its charts/), as an umbrella chart would: the controller under its own
// name, the agent under the alias "agent", each behind a condition, with global values set.
func parentChart(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "platform")
	for _, c := range []string{controllerChart, agentChart} {
		if err := os.CopyFS(filepath.Join(dir, "charts", c), os.DirFS(c)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"Chart.yaml": `apiVersion: v2
name: platform
version: 1.0.0
dependencies:
  - name: ebbflow-controller
    version: 0.1.0
    repository: file://../ebbflow-controller
    condition: ebbflow-controller.enabled
  - name: ebbflow-agent
    alias: agent
    version: 0.1.0
    repository: file://../ebbflow-agent
    condition: agent.enabled
`,
		"values.yaml": `global:
  imageRegistry: registry.example.com
  environment: staging
ebbflow-controller:
  enabled: true
agent:
  enabled: true
  clusterId: eu-1
  controllerUrl: https://platform-ebbflow-controller.ebbflow.svc:7070
  controllerCA:
    secretName: ebbflow-pki
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// parentValues are the values given at install, on top of the parent's values.yaml.
func parentValues() map[string]any {
	return map[string]any{"global": map[string]any{"owner": "platform-team"}}
}

// TestSubcharts: both charts install as subcharts of one parent release, with global values,
// an alias and conditions; every object and hook is named after its subchart and release, and
// no two collide.
func TestSubcharts(t *testing.T) {
	rel := release(t, parentChart(t), parentRelease, testNamespace, parentValues())
	objs := objects(t, rel.Manifest)
	tests := hooks(t, rel, helmrelease.HookTest)

	seen := map[string]bool{}
	for _, o := range append(append([]*unstructured.Unstructured{}, objs...), tests...) {
		id := o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
		if seen[id] {
			t.Errorf("two objects named %s", id)
		}
		seen[id] = true
		labels := o.GetLabels()
		if labels["app.kubernetes.io/instance"] != parentRelease {
			t.Errorf("%s: instance label %q, want %q", id, labels["app.kubernetes.io/instance"], parentRelease)
		}
		switch name := labels["app.kubernetes.io/name"]; name {
		case "ebbflow-controller", "agent":
			if want := parentRelease + "-" + name; o.GetName() != want && !strings.HasPrefix(o.GetName(), want+"-") {
				t.Errorf("%s: not named after %s", id, want)
			}
		default:
			t.Errorf("%s: name label %q, want ebbflow-controller or agent (the alias)", id, name)
		}
	}

	find(t, objs, "StatefulSet", "platform-ebbflow-controller")
	find(t, objs, "Service", "platform-ebbflow-controller-peers")
	dep := find(t, objs, "Deployment", "platform-agent")
	if got := stringsAt(t, container(t, dep, "fleet-agent"), "args")[0]; got != "--controller=https://platform-ebbflow-controller.ebbflow.svc:7070" {
		t.Errorf("agent args[0] = %q", got)
	}
	health := find(t, tests, "Pod", "platform-ebbflow-controller-test-health")
	if args := strings.Join(stringsAt(t, podContainer(t, health, "fleetctl"), "args"), " "); !strings.Contains(args, "--server=https://platform-ebbflow-controller.ebbflow.svc:7070") {
		t.Errorf("the controller's test asks another server: %s", args)
	}
	find(t, tests, "Pod", "platform-agent-test-lease")
	find(t, tests, "Role", "platform-agent-test-lease")

	for _, want := range []string{
		"fleet-controller replicas (quorum 2) in ebbflow",
		"port-forward svc/platform-ebbflow-controller 7070:7070",
		"fleet-agent for cluster eu-1 in ebbflow",
		"helm test platform -n ebbflow",
	} {
		if !strings.Contains(rel.Info.Notes, want) {
			t.Errorf("the release's NOTES lack %q:\n%s", want, rel.Info.Notes)
		}
	}
}

// TestSubchartValues: a parent's condition switches a subchart off, and the schemas still
// refuse a typo under a subchart's key (accepting global and enabled opened nothing else).
func TestSubchartValues(t *testing.T) {
	dir := parentChart(t)
	objs := objects(t, release(t, dir, parentRelease, testNamespace, map[string]any{"agent": map[string]any{"enabled": false}}).Manifest)
	for _, o := range objs {
		if o.GetLabels()["app.kubernetes.io/name"] == "agent" {
			t.Errorf("agent.enabled=false still renders %s %s", o.GetKind(), o.GetName())
		}
	}
	find(t, objs, "StatefulSet", "platform-ebbflow-controller")

	for _, tt := range []struct {
		name   string
		values map[string]any
		err    string
	}{
		{"controller typo", map[string]any{"ebbflow-controller": map[string]any{"replica": 3}}, "replica"},
		{"agent typo", map[string]any{"agent": map[string]any{"clusterID": "eu-2"}}, "clusterID"},
		{"agent name override not a DNS label", map[string]any{"agent": map[string]any{"nameOverride": "Agent_1"}}, "nameOverride"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tryRelease(dir, parentRelease, testNamespace, tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v; want one naming %q", err, tt.err)
			}
		})
	}
}
