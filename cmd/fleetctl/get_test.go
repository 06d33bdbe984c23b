package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/controller/controllertest"
)

// get and describe of one object and of lists, against a controller; -o name and jsonpath;
// shell completion of names from the controller and of -o's values.
func TestGetDescribeAndCompletion(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	controllertest.StartFleet(t, []string{n.URL}, 2, nil, nil)
	mustRun(t, n.URL, "apply", "-f", applyDir(t), "-R")

	if out := mustRun(t, n.URL, "get", "rollouts", "-o", "name"); out != "rollout/tune-prod\n" {
		t.Errorf("get rollouts -o name: %q", out)
	}
	if out := mustRun(t, n.URL, "get", "profiles", "-o", "jsonpath={.profiles[*].name}"); out != "bare-metal eks\n" {
		t.Errorf("get profiles -o jsonpath: %q", out)
	}
	if out := mustRun(t, n.URL, "get", "profile/eks", "-o", "jsonpath={.revision}"); out != "1\n" {
		t.Errorf("get profile/eks -o jsonpath: %q", out)
	}
	out := mustRun(t, n.URL, "rollout", "get", "tune-prod")
	if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, "tune-prod  bare-metal@1") {
		t.Errorf("rollout get:\n%s", out)
	}
	if out := mustRun(t, n.URL, "--no-headers", "get", "rollout", "tune-prod"); strings.HasPrefix(out, "ID") || !strings.HasPrefix(out, "tune-prod") {
		t.Errorf("--no-headers:\n%s", out)
	}
	out = mustRun(t, n.URL, "rollout", "describe", "tune-prod")
	for _, want := range []string{"Id:", "tune-prod", "Failure policy:  rollbackFailedClusters", "Events:", "create"} {
		if !strings.Contains(out, want) {
			t.Errorf("rollout describe lacks %q:\n%s", want, out)
		}
	}
	if out := mustRun(t, n.URL, "describe", "profile", "eks"); !strings.Contains(out, "Revisions:") {
		t.Errorf("describe profile:\n%s", out)
	}
	if out := mustRun(t, n.URL, "get", "profile", "eks", "-o", "yaml"); !strings.HasPrefix(out, "apiVersion: ebbflow.io/v1\nkind: Profile\n") {
		t.Errorf("get profile -o yaml is not an applyable file:\n%s", out)
	}
	if code, _, errOut := fleetctl(t, n.URL, "", "get", "rollout", "nope"); code != exitNotFound {
		t.Errorf("get of a missing rollout: exit %d %s", code, errOut)
	}
	if code, _, errOut := fleetctl(t, n.URL, "", "get", "rollots"); code != exitUsage || !strings.Contains(errOut, "did you mean rollouts?") {
		t.Errorf("get of a misspelt resource: exit %d %s", code, errOut)
	}
	if code, _, errOut := fleetctl(t, n.URL, "", "get", "rollouts", "-o", "jsonpath={.rollouts[", "--timeout", "2s"); code != exitUsage {
		t.Errorf("a broken jsonpath: exit %d %s", code, errOut)
	}

	// --watch --timeout: the canary soaks for 1h30m, so the watch times out: exit 13.
	code, out, errOut := fleetctl(t, n.URL, "", "rollout", "status", "tune-prod", "--watch", "--timeout", "1s")
	if code != exitWatchTimeout || !strings.Contains(errOut, "had not ended after 1s") || !strings.Contains(out, "Rollout tune-prod") {
		t.Errorf("watch --timeout 1s: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// rollout history: the create event belongs to no wave: "-", not -1.
	hist := mustRun(t, n.URL, "rollout", "history", "tune-prod")
	found := false
	for _, l := range strings.Split(hist, "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[2] == "create" {
			found = true
			if f[3] != "-" {
				t.Errorf("WAVE of the create event: %q in %q", f[3], l)
			}
		}
	}
	if !found {
		t.Errorf("history has no create event:\n%s", hist)
	}

	// Completion: cobra's __complete, as the shells call it.
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"rollout", "status", ""}, []string{"tune-prod"}},
		{[]string{"profile", "get", "e"}, []string{"eks"}},
		{[]string{"get", "profiles", ""}, []string{"bare-metal", "eks"}},
		{[]string{"get", "ro"}, []string{"rollouts"}},
		{[]string{"cluster", "cordon", "c-0"}, []string{"c-00", "c-01"}},
		{[]string{"get", "clusters", "-o", ""}, []string{"table", "wide", "json", "yaml", "name", "jsonpath="}},
	} {
		// The shells call "fleetctl __complete <every word>", flags included.
		var stdout, stderr bytes.Buffer
		if code := execute(append([]string{"__complete", "--server", n.URL}, tc.args...), strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Fatalf("__complete %q: exit %d %s", tc.args, code, stderr.String())
		}
		out := stdout.String()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		got := lines[:len(lines)-1] // the last line is cobra's directive
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("completion of %q: %q, want %q (stderr %q)", tc.args, got, tc.want, stderr.String())
		}
	}
}

func TestConfigContextCommands(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := execute(append([]string{"--config", cfg}, args...), strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, _, errOut := run("config", "get-contexts"); code != 0 || !strings.Contains(errOut, "No contexts found") {
		t.Errorf("get-contexts of no file: %d %s", code, errOut)
	}
	if code, _, _ := run("config", "current-context"); code != exitNotFound {
		t.Errorf("current-context of no file: exit %d", code)
	}
	run("config", "set-context", "prod", "--server", "https://ctl:7070", "--token-file", "/t")
	run("config", "set-context", "dev", "--server", "http://127.0.0.1:7070")
	if _, out, _ := run("config", "current-context"); out != "prod\n" {
		t.Errorf("current-context: %q", out)
	}
	_, out, _ := run("config", "get-contexts")
	want := "CURRENT  NAME  SERVER                 AUTH           CA\n*        prod  https://ctl:7070       token-file /t  -\n         dev   http://127.0.0.1:7070  -              -\n"
	if out != want {
		t.Errorf("get-contexts:\n%s\nwant:\n%s", out, want)
	}
	if _, out, _ := run("config", "get-contexts", "-o", "name"); out != "prod\ndev\n" {
		t.Errorf("get-contexts -o name: %q", out)
	}
	if code, out, _ := run("config", "delete-context", "prod"); code != 0 || !strings.Contains(out, "no context is current now") {
		t.Errorf("delete-context of the current one: %d %s", code, out)
	}
	if code, _, _ := run("config", "current-context"); code != exitNotFound {
		t.Errorf("current-context after deleting it: exit %d", code)
	}
	if code, _, _ := run("config", "delete-context", "prod"); code != exitNotFound {
		t.Errorf("delete-context of a missing one: exit %d", code)
	}
	if _, out, _ := run("__complete", "config", "use-context", ""); !strings.HasPrefix(out, "dev\n") {
		t.Errorf("completion of contexts: %q", out)
	}
}
