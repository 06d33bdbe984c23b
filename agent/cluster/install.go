package cluster

import (
	"context"
	"fmt"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/client-go/rest"
)

// InstallRelease installs a chart from a local path as a new Helm release. The driver itself
// never installs Cilium; this is for setting up local clusters (the demo and the fleet).
func InstallRelease(ctx context.Context, cfg *rest.Config, namespace, name, chartPath string, values map[string]any) (int, error) {
	hc := new(action.Configuration)
	if err := hc.Init(&restGetter{cfg: cfg, namespace: namespace}, namespace, "secret", func(string, ...any) {}); err != nil {
		return 0, fmt.Errorf("helm: %w", err)
	}
	ch, err := loader.Load(chartPath)
	if err != nil {
		return 0, fmt.Errorf("load chart %s: %w", chartPath, err)
	}
	in := action.NewInstall(hc)
	in.Namespace, in.ReleaseName, in.CreateNamespace = namespace, name, true
	rel, err := in.RunWithContext(ctx, ch, values)
	if err != nil {
		return 0, fmt.Errorf("helm install %s/%s: %w", namespace, name, err)
	}
	return rel.Version, nil
}
