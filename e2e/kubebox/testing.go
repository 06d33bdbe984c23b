package kubebox

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ForTest starts a cluster for a test and stops it in t.Cleanup. It never skips: when the
// binaries are not cached yet it builds them (about ten minutes the first time; run
// `go run ./e2e/kubebox/cmd/kubebox -build` beforehand to keep that out of test timeouts). The
// cluster's directory, with one log per process, is removed when the test passed and kept (and
// named in the test log) when it failed.
func ForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Dir == "" {
		name := regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(t.Name(), "_")
		dir, err := os.MkdirTemp("", "kubebox-"+name+"-")
		if err != nil {
			t.Fatal(err)
		}
		opts.Dir = dir
	}
	if opts.Log == nil {
		opts.Log = testWriter{t}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Logf("kubebox logs kept in %s", opts.Dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("kubebox logs kept in %s", c.Logs)
			return
		}
		_ = os.RemoveAll(opts.Dir)
	})
	return c
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
