package fleet

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ForTest starts a fleet for a test and stops it in t.Cleanup. Its directory (binaries aside,
// every process's log and data) is removed when the test passed, and kept and named in the test
// log when it failed.
func ForTest(t testing.TB, o Options) *Fleet {
	t.Helper()
	if o.Dir == "" {
		name := regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(t.Name(), "_")
		dir, err := os.MkdirTemp("", "ebbflow-e2e-"+name+"-")
		if err != nil {
			t.Fatal(err)
		}
		o.Dir = dir
	}
	if o.Log == nil {
		o.Log = testWriter{t}
	}
	keep := func() {
		if t.Failed() {
			t.Logf("fleet logs and data kept in %s", o.Dir)
			return
		}
		_ = os.RemoveAll(o.Dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	f, err := Start(ctx, o)
	if err != nil {
		t.Cleanup(keep)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Stop()
		if t.Failed() {
			t.Logf("logs: %s", strings.Join(f.LogFiles(), " "))
		}
		keep()
	})
	return f
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
