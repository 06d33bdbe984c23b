package charts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	helmrelease "helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Charts, and how the tests install them.
const (
	controllerChart = "ebbflow-controller"
	agentChart      = "ebbflow-agent"
	testNamespace   = "ebbflow"
	// kubeVersion is what the renderings assume the cluster runs.
	kubeVersion = "v1.34.3"
)

// agentRequired are the values the agent chart cannot do without.
func agentRequired() map[string]any {
	return map[string]any{"clusterId": "eu-1", "controllerUrl": "http://ebbflow-controller.ebbflow.svc:7070"}
}

// render renders chart (a folder beside this file) as release name in namespace with values,
// client-only through the Helm SDK, and returns the manifest.
func render(t testing.TB, chart, name, namespace string, values map[string]any) string {
	t.Helper()
	m, err := tryRender(chart, name, namespace, values)
	if err != nil {
		t.Fatalf("render %s: %v", chart, err)
	}
	return m
}

func tryRender(chart, name, namespace string, values map[string]any) (string, error) {
	rel, err := tryRelease(chart, name, namespace, values)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

// release installs chart (a folder: one beside this file, or a parent chart built by a test)
// client-only and returns the release: the manifest, the hooks (helm test's among them) and
// the NOTES, subcharts' NOTES included.
func release(t testing.TB, chart, name, namespace string, values map[string]any) *helmrelease.Release {
	t.Helper()
	rel, err := tryRelease(chart, name, namespace, values)
	if err != nil {
		t.Fatalf("render %s: %v", chart, err)
	}
	return rel
}

func tryRelease(chart, name, namespace string, values map[string]any) (*helmrelease.Release, error) {
	ch, err := loader.Load(chart)
	if err != nil {
		return nil, err
	}
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, err
	}
	in := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	in.DryRun, in.ClientOnly, in.Replace, in.SubNotes = true, true, true, true
	in.ReleaseName, in.Namespace, in.KubeVersion = name, namespace, kv
	return in.Run(ch, values)
}

// templateOutput is what `helm template` prints for a release: the manifest, then each hook
// under its source.
func templateOutput(rel *helmrelease.Release) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(rel.Manifest) + "\n")
	for _, h := range rel.Hooks {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", h.Path, h.Manifest)
	}
	return b.String()
}

// hooks decodes the release's hooks of one event (e.g. helm test's).
func hooks(t testing.TB, rel *helmrelease.Release, event helmrelease.HookEvent) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, h := range rel.Hooks {
		for _, e := range h.Events {
			if e == event {
				out = append(out, objects(t, h.Manifest)...)
			}
		}
	}
	return out
}

// objects decodes every document of a manifest (numbers as int64, as the API server has them).
func objects(t testing.TB, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read manifest: %v", err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("decode manifest: %v", err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("decode %s: %v", js, err)
		}
		out = append(out, u)
	}
}

// find returns the one object of kind and name.
func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var names []string
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
		names = append(names, o.GetKind()+"/"+o.GetName())
	}
	t.Fatalf("no %s %s among %v", kind, name, names)
	return nil
}

// merge lays over on base, key by key; neither is modified.
func merge(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if om, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = merge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// lines is for error messages: the manifest with line numbers.
func lines(s string) string {
	var b bytes.Buffer
	for i, l := range strings.Split(s, "\n") {
		b.WriteString(strings.Repeat(" ", 4-len(itoa(i+1))) + itoa(i+1) + " " + l + "\n")
	}
	return b.String()
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// unstructuredMap is the map at fields (nil when missing).
func unstructuredMap(m map[string]any, fields ...string) (map[string]any, bool, error) {
	return unstructured.NestedMap(m, fields...)
}
