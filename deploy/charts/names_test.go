package charts

import (
	"strings"
	"testing"

	helmrelease "helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestNameOverrides: nameOverride and fullnameOverride name every object the charts create
// (test hooks included) and their app.kubernetes.io/name label, and every reference between
// objects (selectors, the peers Service, ServiceAccounts, RBAC bindings, the identity claim,
// the test's server) follows.
func TestNameOverrides(t *testing.T) {
	tests := []struct {
		name, chart, release string
		values               map[string]any
		full, label          string
	}{
		{"controller default", controllerChart, "prod", nil, "prod-ebbflow-controller", "ebbflow-controller"},
		{"controller release holds the name", controllerChart, "ebbflow-controller-eu", nil, "ebbflow-controller-eu", "ebbflow-controller"},
		{"controller nameOverride", controllerChart, "prod", map[string]any{"nameOverride": "fleet"}, "prod-fleet", "fleet"},
		{"controller fullnameOverride", controllerChart, "prod", map[string]any{"nameOverride": "fleet", "fullnameOverride": "ebbflow"}, "ebbflow", "fleet"},
		{"controller long fullnameOverride", controllerChart, "prod", map[string]any{"fullnameOverride": strings.Repeat("a", 60)}, strings.Repeat("a", 50), "ebbflow-controller"},
		{"agent default", agentChart, "prod", agentRequired(), "prod-ebbflow-agent", "ebbflow-agent"},
		{"agent nameOverride", agentChart, "prod", merge(agentRequired(), map[string]any{"nameOverride": "agent"}), "prod-agent", "agent"},
		{"agent fullnameOverride", agentChart, "prod", merge(agentRequired(), map[string]any{"fullnameOverride": "eu-agent"}), "eu-agent", "ebbflow-agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel := release(t, tt.chart, tt.release, testNamespace, tt.values)
			objs := objects(t, rel.Manifest)
			all := append(append([]*unstructured.Unstructured{}, objs...), hooks(t, rel, helmrelease.HookTest)...)
			byKind := map[string]map[string]bool{}
			for _, o := range all {
				if o.GetName() != tt.full && !strings.HasPrefix(o.GetName(), tt.full+"-") {
					t.Errorf("%s %s: not named %s or %s-…", o.GetKind(), o.GetName(), tt.full, tt.full)
				}
				if got := o.GetLabels()["app.kubernetes.io/name"]; got != tt.label {
					t.Errorf("%s %s: app.kubernetes.io/name %q, want %q", o.GetKind(), o.GetName(), got, tt.label)
				}
				if byKind[o.GetKind()] == nil {
					byKind[o.GetKind()] = map[string]bool{}
				}
				byKind[o.GetKind()][o.GetName()] = true
			}
			exists := func(kind, name, what string) {
				t.Helper()
				if !byKind[kind][name] {
					t.Errorf("%s names %s %s, which the chart does not create", what, kind, name)
				}
			}
			for _, o := range all {
				what := o.GetKind() + " " + o.GetName()
				switch o.GetKind() {
				case "RoleBinding", "ClusterRoleBinding":
					ref, _, _ := unstructured.NestedString(o.Object, "roleRef", "name")
					kind, _, _ := unstructured.NestedString(o.Object, "roleRef", "kind")
					exists(kind, ref, what)
					subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
					for _, s := range subjects {
						exists("ServiceAccount", s.(map[string]any)["name"].(string), what)
					}
				case "Pod":
					sa, _, _ := unstructured.NestedString(o.Object, "spec", "serviceAccountName")
					exists("ServiceAccount", sa, what)
				case "StatefulSet", "Deployment":
					sa, _, _ := unstructured.NestedString(o.Object, "spec", "template", "spec", "serviceAccountName")
					exists("ServiceAccount", sa, what)
				}
			}
			if tt.chart == controllerChart {
				sts := find(t, objs, "StatefulSet", tt.full)
				peers, _, _ := unstructured.NestedString(sts.Object, "spec", "serviceName")
				exists("Service", peers, "the StatefulSet's serviceName")
				if peers != tt.full+"-peers" {
					t.Errorf("serviceName %s", peers)
				}
				args := strings.Join(stringsAt(t, container(t, sts, "fleet-controller"), "args"), " ")
				for _, want := range []string{
					"--statefulset-service=" + tt.full + "-peers.ebbflow.svc.cluster.local",
					"--tls-san=" + tt.full + "," + tt.full + ".ebbflow,",
				} {
					if !strings.Contains(args, want) {
						t.Errorf("controller args lack %q: %s", want, args)
					}
				}
				for _, name := range []string{tt.full, tt.full + "-peers"} {
					wantSelector(t, find(t, objs, "Service", name), sts)
				}
				wantSelector(t, find(t, objs, "PodDisruptionBudget", tt.full), sts)
				test := podContainer(t, find(t, all, "Pod", tt.full+"-test-health"), "fleetctl")
				if args := strings.Join(stringsAt(t, test, "args"), " "); !strings.Contains(args, "--server=https://"+tt.full+".ebbflow.svc:7070") {
					t.Errorf("the test asks another server: %s", args)
				}
				if !strings.Contains(rel.Info.Notes, "svc/"+tt.full+" ") {
					t.Errorf("NOTES do not port-forward to svc/%s:\n%s", tt.full, rel.Info.Notes)
				}
			} else {
				dep := find(t, objs, "Deployment", tt.full)
				claim := ""
				vols, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "volumes")
				for _, v := range vols {
					if c, ok, _ := unstructured.NestedString(v.(map[string]any), "persistentVolumeClaim", "claimName"); ok {
						claim = c
					}
				}
				exists("PersistentVolumeClaim", claim, "the Deployment's identity volume")
				if !strings.Contains(rel.Info.Notes, "deployment/"+tt.full+"\n") {
					t.Errorf("NOTES do not name deployment/%s:\n%s", tt.full, rel.Info.Notes)
				}
			}
		})
	}
}
