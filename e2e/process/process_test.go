package process_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/e2e/process"
)

// A process writes to its log, Stop ends it with SIGTERM, and a crashed one reports its exit.
func TestStartStopKill(t *testing.T) {
	dir := t.TempDir()
	p, err := process.Start(dir, dir, "sleeper", "/bin/sh", []string{"GREETING=hello"}, "-c", `echo "$GREETING"; exec sleep 60`)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(p.Log)
		if strings.Contains(string(b), "hello\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s: %q", p.Log, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if done, _ := p.Exited(); done {
		t.Fatal("exited early")
	}
	p.Stop()
	if done, err := p.Exited(); !done || err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Fatalf("after Stop: exited %v, %v", done, err)
	}

	k, err := process.Start(dir, dir, "victim", "/bin/sh", nil, "-c", "exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	k.Kill()
	if done, err := k.Exited(); !done || err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("after Kill: exited %v, %v", done, err)
	}
	k.Stop() // a no-op once it has ended
}
