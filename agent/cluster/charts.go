package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// ChartLoader gets the chart a profile names.
type ChartLoader interface {
	// LoadChart returns the chart ref names at a version that satisfies ref.Version. When
	// deployed (the release's current chart version, "" if unknown) satisfies the constraint,
	// that version is the one returned: a tuning phase never changes the chart version as a
	// side effect. Otherwise the highest satisfying version is returned.
	LoadChart(ctx context.Context, ref *ebbflowv1.ChartRef, deployed string) (*chart.Chart, error)
}

// Charts is the ChartLoader for the three kinds of ChartRef.repository:
//
//   - a local path (or file://path): a chart directory, a packaged .tgz, or a directory that
//     holds the chart directory named ref.name;
//   - an https:// (or http://) Helm repository: its index.yaml is read, the version chosen, the
//     package downloaded and its sha256 checked against the index's digest;
//   - an oci:// registry: the tags are listed, the version chosen and the chart pulled.
//
// The zero value is usable; downloaded charts are kept in memory by URL and digest.
type Charts struct {
	// HTTPClient fetches repository indexes and packages (default: a client with a 60 s timeout).
	HTTPClient *http.Client
	// Registry pulls oci:// charts (default: a client with the local registry credentials).
	Registry *registry.Client

	mu    sync.Mutex
	cache map[string][]byte
}

var _ ChartLoader = (*Charts)(nil)

// LoadChart implements ChartLoader.
func (c *Charts) LoadChart(ctx context.Context, ref *ebbflowv1.ChartRef, deployed string) (*chart.Chart, error) {
	repoURL := strings.TrimSpace(ref.GetRepository())
	name := ref.GetName()
	if name == "" {
		name = profile.DefaultChartName
	}
	var (
		ch  *chart.Chart
		err error
	)
	switch {
	case repoURL == "":
		return nil, errors.New("chart: the profile names no chart repository")
	case strings.HasPrefix(repoURL, "oci://"):
		ch, err = c.loadOCI(ctx, repoURL, name, ref.GetVersion(), deployed)
	case strings.HasPrefix(repoURL, "https://"), strings.HasPrefix(repoURL, "http://"):
		ch, err = c.loadRepo(ctx, repoURL, name, ref.GetVersion(), deployed)
	default:
		ch, err = loadLocal(strings.TrimPrefix(repoURL, "file://"), name)
	}
	if err != nil {
		return nil, err
	}
	if ch.Metadata == nil || ch.Metadata.Name != name {
		return nil, fmt.Errorf("chart: %s holds chart %q, want %q", repoURL, ch.Name(), name)
	}
	if ref.GetVersion() != "" && !satisfies(ch.Metadata.Version, ref.GetVersion()) {
		return nil, fmt.Errorf("chart: %s %s does not satisfy %q", name, ch.Metadata.Version, ref.GetVersion())
	}
	return ch, nil
}

// loadLocal loads a chart directory or archive at path, or path/name.
func loadLocal(path, name string) (*chart.Chart, error) {
	for _, p := range []string{path, filepath.Join(path, name)} {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		if st.IsDir() {
			if _, err := os.Stat(filepath.Join(p, "Chart.yaml")); err != nil {
				continue
			}
		}
		ch, err := loader.Load(p)
		if err != nil {
			return nil, fmt.Errorf("chart: load %s: %w", p, err)
		}
		return ch, nil
	}
	return nil, fmt.Errorf("chart: no chart %q at %s", name, path)
}

func (c *Charts) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: 60 * time.Second}
}

// loadRepo picks a version from an https Helm repository's index and downloads it.
func (c *Charts) loadRepo(ctx context.Context, repoURL, name, constraint, deployed string) (*chart.Chart, error) {
	indexURL, err := repo.ResolveReferenceURL(repoURL, "index.yaml")
	if err != nil {
		return nil, err
	}
	b, err := c.get(ctx, indexURL, "")
	if err != nil {
		return nil, err
	}
	var idx repo.IndexFile
	if err := yaml.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("chart: %s: %w", indexURL, err)
	}
	entries := idx.Entries[name]
	var versions []string
	for _, e := range entries {
		if e != nil && e.Metadata != nil && !e.Removed {
			versions = append(versions, e.Version)
		}
	}
	v, err := pickVersion(versions, constraint, deployed)
	if err != nil {
		return nil, fmt.Errorf("chart: %s in %s: %w", name, repoURL, err)
	}
	var cv *repo.ChartVersion
	for _, e := range entries {
		if e != nil && e.Metadata != nil && e.Version == v {
			cv = e
			break
		}
	}
	if cv == nil || len(cv.URLs) == 0 {
		return nil, fmt.Errorf("chart: %s %s in %s has no download URL", name, v, repoURL)
	}
	u, err := repo.ResolveReferenceURL(repoURL, cv.URLs[0])
	if err != nil {
		return nil, err
	}
	data, err := c.get(ctx, u, cv.Digest)
	if err != nil {
		return nil, err
	}
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("chart: %s: %w", u, err)
	}
	return ch, nil
}

// get downloads url; when digest (hex sha256) is set the body must match it, and a matching
// body is kept in memory for the next call.
func (c *Charts) get(ctx context.Context, url, digest string) ([]byte, error) {
	key := url + "@" + digest
	if digest != "" {
		c.mu.Lock()
		b, ok := c.cache[key]
		c.mu.Unlock()
		if ok {
			return b, nil
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("chart: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("chart: GET %s: %s", url, res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("chart: GET %s: %w", url, err)
	}
	if digest != "" {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, digest) {
			return nil, fmt.Errorf("chart: %s has sha256 %s, the index says %s", url, got, digest)
		}
		c.mu.Lock()
		if c.cache == nil {
			c.cache = map[string][]byte{}
		}
		c.cache[key] = b
		c.mu.Unlock()
	}
	return b, nil
}

// loadOCI picks a version among an OCI repository's tags and pulls it.
func (c *Charts) loadOCI(ctx context.Context, repoURL, name, constraint, deployed string) (*chart.Chart, error) {
	rc := c.Registry
	if rc == nil {
		var err error
		if rc, err = registry.NewClient(registry.ClientOptHTTPClient(c.httpClient())); err != nil {
			return nil, fmt.Errorf("chart: registry client: %w", err)
		}
	}
	base := strings.TrimPrefix(strings.TrimSuffix(repoURL, "/"), "oci://")
	// oci://host/path may name the chart itself or the path that holds it.
	ref := base
	if !strings.HasSuffix(base, "/"+name) {
		ref = base + "/" + name
	}
	tags, err := rc.Tags(ref)
	if err != nil {
		return nil, fmt.Errorf("chart: tags of %s: %w", ref, err)
	}
	v, err := pickVersion(tags, constraint, deployed)
	if err != nil {
		return nil, fmt.Errorf("chart: %s: %w", ref, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, err := rc.Pull(ref + ":" + strings.ReplaceAll(v, "+", "_"))
	if err != nil {
		return nil, fmt.Errorf("chart: pull %s:%s: %w", ref, v, err)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(res.Chart.Data))
	if err != nil {
		return nil, fmt.Errorf("chart: %s:%s: %w", ref, v, err)
	}
	return ch, nil
}

// pickVersion chooses among available versions: deployed when it is available and satisfies
// the constraint (any, when the constraint is empty), else the highest version that satisfies
// it ("" means the highest stable version).
func pickVersion(available []string, constraint, deployed string) (string, error) {
	if deployed != "" && slices.Contains(available, deployed) && (constraint == "" || satisfies(deployed, constraint)) {
		return deployed, nil
	}
	var best *semver.Version
	bestRaw := ""
	for _, a := range available {
		v, err := semver.NewVersion(a)
		if err != nil || !satisfies(a, constraint) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best, bestRaw = v, a
		}
	}
	if best == nil {
		return "", fmt.Errorf("no version satisfies %q among %d", constraint, len(available))
	}
	return bestRaw, nil
}

// satisfies reports whether version meets constraint; "" accepts any stable version and a
// constraint equal to the version accepts it even when it is a pre-release.
func satisfies(version, constraint string) bool {
	constraint = strings.TrimSpace(constraint)
	if constraint == version {
		return true
	}
	v, err := semver.NewVersion(version)
	if err != nil {
		return false
	}
	if constraint == "" {
		return v.Prerelease() == ""
	}
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return false
	}
	return c.Check(v)
}
