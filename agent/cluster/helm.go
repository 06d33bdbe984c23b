package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// restGetter adapts a *rest.Config to Helm's RESTClientGetter.
type restGetter struct {
	cfg       *rest.Config
	namespace string
}

func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(g.cfg))
	if err != nil {
		return nil, err
	}
	return memory.NewMemCacheClient(dc), nil
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	m := restmapper.NewDeferredDiscoveryRESTMapper(dc)
	return restmapper.NewShortcutExpander(m, dc, nil), nil
}

func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(*clientcmdapi.NewConfig(), &clientcmd.ConfigOverrides{
		Context: clientcmdapi.Context{Namespace: g.namespace},
	})
}

// helmConfig is a Helm action configuration for releases stored as Secrets in namespace.
func (d *Driver) helmConfig(namespace string) (*action.Configuration, error) {
	cfg := new(action.Configuration)
	logf := func(format string, v ...any) { d.log.Debug("helm: " + fmt.Sprintf(format, v...)) }
	if err := cfg.Init(&restGetter{cfg: d.cfg.RESTConfig, namespace: namespace}, namespace, "secret", logf); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	return cfg, nil
}

// releaseRef names a Helm release.
type releaseRef struct {
	name, namespace string
}

func (r releaseRef) String() string { return r.namespace + "/" + r.name }

// history returns every stored revision of the release, oldest first (empty when there is none).
func (d *Driver) history(rel releaseRef) ([]*release.Release, error) {
	cfg, err := d.helmConfig(rel.namespace)
	if err != nil {
		return nil, err
	}
	hs, err := cfg.Releases.History(rel.name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("helm history %s: %w", rel, err)
	}
	slices.SortFunc(hs, func(a, b *release.Release) int { return a.Version - b.Version })
	return hs, nil
}

// lastRelease returns the newest revision of the release, or ErrNoRelease.
func (d *Driver) lastRelease(rel releaseRef) (*release.Release, error) {
	hs, err := d.history(rel)
	if err != nil {
		return nil, err
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("%w: %s (install Cilium with Helm first)", ErrNoRelease, rel)
	}
	return hs[len(hs)-1], nil
}

// upgrade runs `helm upgrade` of rel to ch with exactly vals (the chart's defaults below them:
// never --reuse-values), tagging the revision with description. Helm waits for nothing; the
// driver waits for the DaemonSet itself.
func (d *Driver) upgrade(ctx context.Context, rel releaseRef, ch *chart.Chart, vals map[string]any, description string) (*release.Release, error) {
	cfg, err := d.helmConfig(rel.namespace)
	if err != nil {
		return nil, err
	}
	u := action.NewUpgrade(cfg)
	u.Namespace = rel.namespace
	u.ResetValues = true
	u.Description = description
	u.MaxHistory = d.cfg.MaxHistory
	u.Timeout = d.cfg.WaitTimeout
	// The upgrade is not interrupted half-way by a cancelled context: it runs to its end (or
	// its timeout) so the release is never left pending; the caller checks ctx afterwards.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.WaitTimeout)
	defer cancel()
	r, err := u.RunWithContext(uctx, rel.name, ch, vals)
	if err != nil {
		return nil, fmt.Errorf("helm upgrade %s: %w", rel, err)
	}
	return r, nil
}

// rollback runs `helm rollback` of rel to revision.
func (d *Driver) rollback(rel releaseRef, revision int) error {
	cfg, err := d.helmConfig(rel.namespace)
	if err != nil {
		return err
	}
	rb := action.NewRollback(cfg)
	rb.Version = revision
	rb.Timeout = d.cfg.WaitTimeout
	rb.MaxHistory = d.cfg.MaxHistory
	if err := rb.Run(rel.name); err != nil {
		return fmt.Errorf("helm rollback %s to %d: %w", rel, revision, err)
	}
	return nil
}

// mergeValues lays over on top of base, key by key through nested maps; over wins. Neither
// input is modified.
func mergeValues(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = deepCopyValue(v)
	}
	for k, v := range over {
		if om, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(bm, om)
				continue
			}
		}
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopyValue(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopyValue(e)
		}
		return s
	}
	return v
}

// sameValues compares two Helm value trees after a JSON round trip, so 3 and 3.0 and "3" stay
// distinct the way Helm stores them but int and float64 of the same number are equal.
func sameValues(a, b map[string]any) bool {
	na, errA := normalize(a)
	nb, errB := normalize(b)
	return errA == nil && errB == nil && reflect.DeepEqual(na, nb)
}

func normalize(v map[string]any) (map[string]any, error) {
	if v == nil {
		v = map[string]any{}
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	return out, yaml.Unmarshal(b, &out)
}

// manifestConfigMap returns the data of the ConfigMap name in a rendered release manifest.
func manifestConfigMap(manifest, name string) (map[string]string, bool) {
	for _, doc := range strings.Split(manifest, "\n---") {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Data map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			continue
		}
		if obj.Kind == "ConfigMap" && obj.Metadata.Name == name {
			if obj.Data == nil {
				obj.Data = map[string]string{}
			}
			return obj.Data, true
		}
	}
	return nil, false
}

// diffConfig lists the keys of want whose value in got differs, sorted, as "key=got (want w)".
func diffConfig(got, want map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s missing (want %q)", k, want[k]))
		case g != want[k]:
			out = append(out, fmt.Sprintf("%s=%q (want %q)", k, g, want[k]))
		}
	}
	return out
}
