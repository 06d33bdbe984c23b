package main

import (
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/controller/controllertest"
)

// controller status asks every member itself: a stopped node is unreachable, not a plain voter.
func TestControllerStatusMarksADeadMember(t *testing.T) {
	first := controllertest.Start(t, controllertest.Options{ID: "ctl-1"})
	controllertest.Start(t, controllertest.Options{Join: first, ID: "ctl-2"})
	third := controllertest.Start(t, controllertest.Options{Join: first, ID: "ctl-3"})
	status := func() map[string]string {
		out := mustRun(t, first.URL, "--no-headers", "controller", "status")
		rows := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "ctl-") {
				rows[f[0]] = l
			}
		}
		return rows
	}
	rows := status()
	for _, id := range []string{"ctl-1", "ctl-2", "ctl-3"} {
		if !strings.HasSuffix(rows[id], " ok") {
			t.Errorf("%s of a healthy group: %q", id, rows[id])
		}
	}
	third.Stop()
	t.Logf("fleetctl controller status, ctl-3 stopped:\n%s", mustRun(t, first.URL, "controller", "status"))
	rows = status()
	if r := rows["ctl-3"]; !strings.Contains(r, "unreachable") {
		t.Errorf("stopped member: %q", r)
	}
	if r := rows["ctl-2"]; !strings.HasSuffix(r, " ok") {
		t.Errorf("live member: %q", r)
	}
	if out := mustRun(t, first.URL, "controller", "status", "--no-probe"); strings.Contains(out, "STATUS") {
		t.Errorf("--no-probe still probes:\n%s", out)
	}
}
