package main

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// The plan of a fleet with varied kernels and drivers: waves, the phases each cluster passes,
// the phases held with the node and the reason, and the cordoned cluster listed as skipped.
func TestRolloutPlanTable(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	mustRun(t, n.URL, "profile", "apply", "-f", repoFile(t, "deploy/profiles/eks.yaml"))
	agents := ebbflowv1connect.NewAgentServiceClient(controllertest.HTTPClient(), n.URL)
	values, err := structpb.NewStruct(map[string]any{"k8sServiceHost": "api.internal", "k8sServicePort": 443})
	if err != nil {
		t.Fatal(err)
	}
	register := func(name string, ring string, kernels []string, driver string) {
		t.Helper()
		inv := &ebbflowv1.Inventory{KubernetesVersion: "v1.34.3", HelmValues: values, KubeProxyPresent: true, CloudProvider: "aws"}
		for i, k := range kernels {
			inv.Nodes = append(inv.Nodes, &ebbflowv1.NodeInfo{Name: name + "-n" + string(rune('0'+i)), KernelVersion: k, NicDriver: driver, CloudProvider: "aws", Ready: true})
		}
		if _, err := agents.RegisterAgent(context.Background(), connect.NewRequest(&ebbflowv1.RegisterAgentRequest{
			Cluster: name, Labels: map[string]string{"env": "prod", "ring": ring}, Inventory: inv,
		})); err != nil {
			t.Fatal(err)
		}
	}
	register("canary-new", "0", []string{"6.8.0-1015-aws", "6.8.0-1015-aws"}, "ena")
	register("prod-al2023", "1", []string{"6.1.112-124.190.amzn2023.x86_64"}, "ena")
	register("prod-legacy", "1", []string{"6.1.112-124.190.amzn2023.x86_64", "5.4.0-150-generic"}, "ena")
	register("prod-frozen", "1", []string{"6.8.0-1015-aws"}, "ena")
	mustRun(t, n.URL, "cluster", "cordon", "prod-frozen", "--reason", "change freeze")

	out := mustRun(t, n.URL, "rollout", "plan", "--profile", "eks", "--selector", "env=prod", "--canary", "1", "--wave-size", "2")
	t.Logf("plan:\n%s", out)
	lines := strings.Split(out, "\n")
	find := func(cluster string) string {
		for _, l := range lines {
			if strings.Contains(l, " "+cluster+" ") {
				return l
			}
		}
		t.Fatalf("plan has no row for %s:\n%s", cluster, out)
		return ""
	}
	if l := find("canary-new"); !strings.HasPrefix(l, "0") || !strings.Contains(l, "baseline,l7,kpr,xdp") {
		t.Errorf("canary row: %q", l)
	}
	if l := find("prod-al2023"); !strings.HasPrefix(l, "1") || !strings.Contains(l, "baseline,l7,kpr ") || !strings.Contains(l, "xdp") {
		t.Errorf("6.1 cluster should run up to kpr and hold xdp: %q", l)
	}
	if l := find("prod-legacy"); !strings.Contains(l, "5.4.0-150-generic") && !strings.Contains(l, "prod-legacy-n1") {
		t.Errorf("5.4 node should be named as the reason: %q", l)
	}
	if l := find("prod-frozen"); !strings.HasPrefix(l, "skipped") || !strings.Contains(l, "change freeze") {
		t.Errorf("cordoned cluster should be skipped with the reason: %q", l)
	}
}
