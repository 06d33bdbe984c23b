package charts

import (
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	helmrelease "helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestImageMatchesCharts: the Dockerfile builds the three commands static in one stage and
// ships them on a pinned distroless non-root base, where the charts' containers run them.
func TestImageMatchesCharts(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	build := regexp.MustCompile(`(?s)RUN CGO_ENABLED=0 go build .*?-o /out/ ([^\n]+)`).FindStringSubmatch(df)
	if build == nil {
		t.Fatalf("no static (CGO_ENABLED=0) go build into /out/ in the Dockerfile")
	}
	for _, cmd := range []string{"./cmd/fleet-controller", "./cmd/fleet-agent", "./cmd/fleetctl"} {
		if !strings.Contains(build[1], cmd) {
			t.Errorf("the build stage does not build %s: %s", cmd, build[1])
		}
	}
	base := regexp.MustCompile(`(?m)^FROM (gcr\.io/distroless/static[^:\s]*):(\S+)\s*$`).FindStringSubmatch(df)
	if base == nil || !strings.Contains(base[2], "nonroot") {
		t.Fatalf("final stage is not a distroless/static image pinned to a nonroot tag: %v", base)
	}
	copied := regexp.MustCompile(`(?m)^COPY --from=build (.+) (\S+/)$`).FindStringSubmatch(df)
	if copied == nil {
		t.Fatal("no COPY --from=build of the binaries into a directory")
	}
	for _, c := range []struct{ chart, kind, name, container string }{
		{controllerChart, "StatefulSet", controllerChart, "fleet-controller"},
		{agentChart, "Deployment", agentChart, "fleet-agent"},
	} {
		var values map[string]any
		if c.chart == agentChart {
			values = agentRequired()
		}
		o := find(t, objects(t, render(t, c.chart, c.chart, testNamespace, values)), c.kind, c.name)
		cmd := stringsAt(t, container(t, o, c.container), "command")
		if len(cmd) != 1 || path.Dir(cmd[0])+"/" != copied[2] || !strings.Contains(copied[1], "/out/"+path.Base(cmd[0])) {
			t.Errorf("%s runs %v; the image has %s in %s", c.chart, cmd, copied[1], copied[2])
		}
		sc, _, _ := unstructuredMap(container(t, o, c.container), "securityContext")
		if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
			t.Errorf("%s container securityContext %v", c.chart, sc)
		}
		psc, _, _ := unstructuredMap(o.Object, "spec", "template", "spec", "securityContext")
		if psc["runAsNonRoot"] != true || psc["seccompProfile"].(map[string]any)["type"] != "RuntimeDefault" {
			t.Errorf("%s pod securityContext %v", c.chart, psc)
		}
	}
	// The controller's `helm test` Pod runs fleetctl from the same image.
	pod := find(t, hooks(t, release(t, controllerChart, controllerChart, testNamespace, nil), helmrelease.HookTest), "Pod", controllerChart+"-test-health")
	cmd := stringsAt(t, podContainer(t, pod, "fleetctl"), "command")
	if len(cmd) != 1 || path.Dir(cmd[0])+"/" != copied[2] || !strings.Contains(copied[1], "/out/"+path.Base(cmd[0])) {
		t.Errorf("the controller's test runs %v; the image has %s in %s", cmd, copied[1], copied[2])
	}
	if v, _, _ := unstructured.NestedBool(pod.Object, "spec", "securityContext", "runAsNonRoot"); !v {
		t.Error("the controller's test Pod may run as root")
	}
}
