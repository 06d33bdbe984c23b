package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func TestPickVersion(t *testing.T) {
	avail := []string{"1.16.5", "1.17.2", "1.18.1", "1.19.0", "1.18.0-rc.1"}
	for _, tc := range []struct {
		name, constraint, deployed, want string
	}{
		{"highest satisfying", ">=1.16.0 <1.19.0", "", "1.18.1"},
		{"deployed kept when it satisfies", ">=1.16.0 <1.19.0", "1.17.2", "1.17.2"},
		{"deployed outside the constraint", ">=1.18.0 <1.19.0", "1.17.2", "1.18.1"},
		{"no constraint: deployed", "", "1.16.5", "1.16.5"},
		{"no constraint: highest stable", "", "", "1.19.0"},
		{"exact pre-release", "1.18.0-rc.1", "", "1.18.0-rc.1"},
		{"nothing", ">=2.0.0", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickVersion(avail, tc.constraint, tc.deployed)
			if got != tc.want || (err != nil) != (tc.want == "") {
				t.Errorf("pickVersion(%q, %q) = %q, %v; want %q", tc.constraint, tc.deployed, got, err, tc.want)
			}
		})
	}
}

// TestChartsRepository serves the packaged test chart from a local https Helm repository and
// loads it by constraint, and from a local path.
func TestChartsRepository(t *testing.T) {
	ch, err := loader.Load(testChart(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pkg, err := chartutil.Save(ch, dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	idx := repo.NewIndexFile()
	if err := idx.MustAdd(ch.Metadata, "charts/"+filepath.Base(pkg), "", hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/index.yaml", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, filepath.Join(dir, "index.yaml")) })
	mux.HandleFunc("/charts/", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, pkg) })
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("server on %s", srv.URL)
	}
	charts := &Charts{HTTPClient: srv.Client()}
	ctx := context.Background()
	got, err := charts.LoadChart(ctx, &ebbflowv1.ChartRef{Repository: srv.URL, Name: "cilium", Version: ">=1.18.0-0 <1.19.0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Metadata.Version != "1.18.0-test" || len(got.Templates) == 0 || len(got.CRDObjects()) != 3 {
		t.Errorf("loaded %s %s with %d templates and %d CRDs", got.Name(), got.Metadata.Version, len(got.Templates), len(got.CRDObjects()))
	}
	if _, err := charts.LoadChart(ctx, &ebbflowv1.ChartRef{Repository: srv.URL, Name: "cilium", Version: ">=1.19.0"}, ""); err == nil {
		t.Error("a version outside the constraint loaded")
	}
	// A tampered package is refused.
	if err := os.WriteFile(pkg, append(data, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := &Charts{HTTPClient: srv.Client()}
	if _, err := fresh.LoadChart(ctx, &ebbflowv1.ChartRef{Repository: srv.URL, Name: "cilium"}, "1.18.0-test"); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("tampered package: %v", err)
	}
	// Local paths: the chart directory, its parent, the package.
	for _, p := range []string{testChart(t), filepath.Dir(testChart(t)), "file://" + testChart(t)} {
		if _, err := fresh.LoadChart(ctx, &ebbflowv1.ChartRef{Repository: p, Name: "cilium", Version: "1.18.0-test"}, ""); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
