package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Given every node (--server a,b,c), `rollout status --watch` outlives the controller it
// follows: when that node stops mid-rollout, the watch reconnects to another and still exits 0
// when the rollout succeeds.
func TestRolloutWatchSurvivesItsController(t *testing.T) {
	fast := func(c *controller.Config) { c.EngineInterval = 20 * time.Millisecond }
	first := controllertest.Start(t, controllertest.Options{Config: fast})
	nodes := []*controllertest.Node{first,
		controllertest.Start(t, controllertest.Options{Join: first, Config: fast}),
		controllertest.Start(t, controllertest.Options{Join: first, Config: fast})}
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.URL)
	}
	mustRun(t, first.URL, "profile", "apply", "-f", repoFile(t, "deploy/profiles/bare-metal.yaml"))
	hold, reached := make(chan struct{}), make(chan string, 3)
	released := false
	defer func() {
		if !released {
			close(hold)
		}
	}()
	controllertest.StartFleet(t, urls, 3, nil, func(a *controllertest.Agent) {
		a.HoldAt, a.Hold, a.Reached = ebbflowv1.Phase_PHASE_L7, hold, reached
	})
	if code, out, errOut := fleetctl(t, first.URL, rolloutYAML("r1", "FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS", 0), "rollout", "create", "-f", "-"); code != 0 {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := fleetctl(t, strings.Join(urls, ","), "", "rollout", "status", "r1", "--watch")
		done <- result{code, out, errOut}
	}()
	select {
	case <-reached: // the canary wave is in the middle of l7
	case <-time.After(time.Minute):
		t.Fatal("no agent reached l7")
	}
	nodes[0].Stop() // the node the watch follows: the first of its list
	// Every other call moves on too: a read and a write through the same list, whose first
	// node is now dead, are served by the others.
	if out := mustRun(t, strings.Join(urls, ","), "rollout", "get", "r1", "-o", "name"); strings.TrimSpace(out) != "rollout/r1" {
		t.Errorf("rollout get after the first node died: %q", out)
	}
	mustRun(t, strings.Join(urls, ","), "cluster", "label", "c-00", "after-kill=yes")
	close(hold)
	released = true
	select {
	case r := <-done:
		if r.code != exitOK {
			t.Fatalf("watch exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
		}
		if !strings.Contains(r.errOut, "reconnecting to "+urls[1]) {
			t.Errorf("the watch did not say it moved on to %s:\n%s", urls[1], r.errOut)
		}
		frames := strings.Split(strings.TrimSpace(r.out), "---")
		if last := frames[len(frames)-2]; !strings.Contains(last, "SUCCEEDED") {
			t.Errorf("the last frame does not show the rollout succeeded:\n%s", last)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the watch did not end")
	}
}
