package process

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLog is a writer that logs each write to t (the progress of a cluster or benchmark a test
// starts), without its trailing newline.
func TestLog(t testing.TB) io.Writer { return testLog{t} }

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// DumpLogs logs the end (4 KiB) of every file glob matches, e.g. the logs of the processes a
// failed test ran.
func DumpLogs(t testing.TB, glob string) {
	t.Helper()
	logs, _ := filepath.Glob(glob)
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if len(b) > 4096 {
			b = b[len(b)-4096:]
		}
		t.Logf("--- %s (end)\n%s", p, b)
	}
}
