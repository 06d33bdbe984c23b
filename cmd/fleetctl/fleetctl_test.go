package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// fleetctl runs one invocation in-process and returns its exit code and output.
func fleetctl(t *testing.T, server string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	all := append([]string{"--server", server, "--config", filepath.Join(t.TempDir(), "none.yaml")}, args...)
	code := execute(all, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func mustRun(t *testing.T, server string, args ...string) string {
	t.Helper()
	code, out, errOut := fleetctl(t, server, "", args...)
	if code != 0 {
		t.Fatalf("fleetctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProfileLifecycle(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	eks := repoFile(t, "deploy/profiles/eks.yaml")
	out := mustRun(t, n.URL, "profile", "validate", "-f", eks)
	if !strings.Contains(out, "is valid") {
		t.Fatalf("validate: %s", out)
	}
	out = mustRun(t, n.URL, "profile", "apply", "-f", eks)
	if !strings.Contains(out, "revision 1 created") {
		t.Fatalf("apply: %s", out)
	}
	// get -o yaml round-trips through apply as a new revision.
	y := mustRun(t, n.URL, "profile", "get", "eks", "-o", "yaml")
	y2 := strings.Replace(y, "description:", "description: revised -", 1)
	code, out, errOut := fleetctl(t, n.URL, y2, "profile", "apply", "-f", "-")
	if code != 0 || !strings.Contains(out, "revision 2 configured") {
		t.Fatalf("re-apply from get -o yaml: %d %s %s", code, out, errOut)
	}
	diff := mustRun(t, n.URL, "profile", "diff", "eks")
	if !strings.Contains(diff, "revision 1") || !strings.Contains(diff, "revised -") {
		t.Fatalf("diff: %s", diff)
	}
	hist := mustRun(t, n.URL, "profile", "history", "eks")
	if strings.Count(hist, "\n") != 3 {
		t.Fatalf("history: %s", hist)
	}
	list := mustRun(t, n.URL, "profile", "list", "-o", "json")
	if !strings.Contains(list, `"eks"`) || !strings.Contains(list, `"profiles"`) {
		t.Fatalf("list json: %s", list)
	}
	if code, _, errOut := fleetctl(t, n.URL, "", "profile", "get", "nope"); code != exitNotFound || !strings.Contains(errOut, "not found") {
		t.Fatalf("missing profile: exit %d, %s", code, errOut)
	}
	bad := "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: {name: bad}\nspec:\n  chart: {repository: https://helm.cilium.io}\n  kpr:\n    values:\n      maglevTableSize: 1000\n"
	code, _, errOut = fleetctl(t, n.URL, bad, "profile", "apply", "-f", "-")
	if code != exitUsage || !strings.Contains(errOut, "maglev") {
		t.Fatalf("invalid profile: exit %d, %s", code, errOut)
	}
	mustRun(t, n.URL, "profile", "delete", "eks")
}

func TestClusterCommands(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	mustRun(t, n.URL, "cluster", "register", "eu-1", "-l", "env=prod,region=eu")
	mustRun(t, n.URL, "cluster", "register", "us-1", "-l", "env=staging")
	out := mustRun(t, n.URL, "cluster", "list", "-l", "env=prod")
	if !strings.Contains(out, "eu-1") || strings.Contains(out, "us-1") {
		t.Fatalf("selector list: %s", out)
	}
	out = mustRun(t, n.URL, "cluster", "label", "eu-1", "tier=gold", "region-")
	if !strings.Contains(out, "env=prod,tier=gold") {
		t.Fatalf("label: %s", out)
	}
	mustRun(t, n.URL, "cluster", "cordon", "eu-1", "--reason", "freeze")
	out = mustRun(t, n.URL, "cluster", "get", "eu-1")
	if !strings.Contains(out, "yes (freeze)") {
		t.Fatalf("cordoned: %s", out)
	}
	if code, _, _ := fleetctl(t, n.URL, "", "cluster", "register", "Bad_Name"); code != exitUsage {
		t.Fatalf("bad name: exit %d", code)
	}
}

func TestExitCodes(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	if code, _, errOut := fleetctl(t, "ftp://x", "", "cluster", "list"); code != exitUsage || !strings.Contains(errOut, "http://") {
		t.Fatalf("bad server URL: %d %s", code, errOut)
	}
	if code, _, _ := fleetctl(t, "http://127.0.0.1:1", "", "--timeout", "2s", "cluster", "list"); code != exitUnavailable {
		t.Fatalf("no controller: exit %d", code)
	}
	if code, _, _ := fleetctl(t, n.URL, "", "cluster", "get"); code != exitUsage {
		t.Fatalf("missing arg: exit %d", code)
	}
	if code, _, _ := fleetctl(t, n.URL, "", "-o", "xml", "cluster", "list"); code != exitUsage {
		t.Fatalf("bad output: exit %d", code)
	}
	rf := "apiVersion: ebbflow.io/v1\nkind: Rollout\nmetadata: {name: r1}\nspec:\n  profile: eks\n  clusterSelector: env=prod\n  automatic: {canaryCount: 1, waveSize: 2}\n"
	code, _, errOut := fleetctl(t, n.URL, rf, "rollout", "create", "-f", "-")
	if code != exitNotFound || !strings.Contains(errOut, "eks") {
		t.Fatalf("rollout of a missing profile: %d %s", code, errOut)
	}
	if code, _, _ := fleetctl(t, n.URL, "", "rollout", "status", "nope"); code != exitNotFound {
		t.Fatalf("missing rollout: exit %d", code)
	}
}

// rolloutYAML is a rollout file over the scripted fleet: a canary of 2, then waves of 9.
func rolloutYAML(id, policy string, maxFailures int) string {
	return fmt.Sprintf(`apiVersion: ebbflow.io/v1
kind: Rollout
metadata: {name: %s}
spec:
  profile: bare-metal
  clusterSelector: env=prod
  sortLabel: order
  failurePolicy: %s
  phaseTimeout: 60s
  automatic:
    canaryCount: 2
    waveSize: 9
    canaryGates: {maxFailuresCount: %d, soakTime: 0.05s}
    gates: {maxFailuresCount: %d, soakTime: 0.05s}
`, id, policy, maxFailures, maxFailures)
}

// status --watch follows the stream of a real rollout (real engine, scripted agents speaking the
// agent API) and its exit code tells how the rollout ended.
func TestRolloutWatchExitCodes(t *testing.T) {
	cases := []struct {
		name, policy string
		clusters     int
		maxFailures  int
		slow         map[string]ebbflowv1.Phase
		abort        bool
		code         int
		want         []string
	}{
		{name: "one regression tolerated", policy: "FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS", clusters: 20, maxFailures: 1,
			slow: map[string]ebbflowv1.Phase{"c-05": ebbflowv1.Phase_PHASE_KPR}, code: exitOK,
			want: []string{"SUCCEEDED", "rolled_back", "kpr batch 1/2 regressed"}},
		{name: "regression halts", policy: "FAILURE_POLICY_HALT_ONLY", clusters: 4, maxFailures: 0,
			slow: map[string]ebbflowv1.Phase{"c-01": ebbflowv1.Phase_PHASE_L7}, code: exitRolloutFailed,
			want: []string{"FAILED", "regression in l7"}},
		{name: "aborted", policy: "FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS", clusters: 4, abort: true, code: exitRolloutAborted,
			want: []string{"ABORTED"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := controllertest.Start(t, controllertest.Options{Config: func(c *controller.Config) { c.EngineInterval = 20 * time.Millisecond }})
			mustRun(t, n.URL, "profile", "apply", "-f", repoFile(t, "deploy/profiles/bare-metal.yaml"))
			hold := make(chan struct{})
			defer func() {
				select {
				case <-hold:
				default:
					close(hold)
				}
			}()
			controllertest.StartFleet(t, []string{n.URL}, tc.clusters, tc.slow, func(a *controllertest.Agent) {
				if tc.abort {
					a.HoldAt, a.Hold, a.Reached = ebbflowv1.Phase_PHASE_L7, hold, make(chan string, 1)
				}
			})
			code, out, errOut := fleetctl(t, n.URL, rolloutYAML("r1", tc.policy, tc.maxFailures), "rollout", "create", "-f", "-")
			if code != 0 {
				t.Fatalf("create: %d %s %s", code, out, errOut)
			}
			if tc.abort {
				mustRun(t, n.URL, "rollout", "abort", "r1", "--reason", "change window closed")
			}
			code, out, errOut = fleetctl(t, n.URL, "", "rollout", "status", "r1", "--watch")
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.code, out, errOut)
			}
			final := mustRun(t, n.URL, "rollout", "status", "r1")
			t.Logf("fleetctl rollout status r1:\n%s", final)
			for _, w := range tc.want {
				if !strings.Contains(final+errOut, w) {
					t.Errorf("status lacks %q:\n%s", w, final)
				}
			}
			hist := mustRun(t, n.URL, "rollout", "history", "r1")
			if !strings.Contains(hist, "create") {
				t.Errorf("history:\n%s", hist)
			}
		})
	}
}

func TestConfigContexts(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := execute(append([]string{"--config", cfg}, args...), strings.NewReader(""), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := run("config", "set-context", "local", "--server", n.URL, "--token", "s3cret"); code != 0 {
		t.Fatalf("set-context: %s", out)
	}
	st, err := os.Stat(cfg)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file mode %v %v", st.Mode(), err)
	}
	if code, out := run("config", "view"); code != 0 || strings.Contains(out, "s3cret") || !strings.Contains(out, "REDACTED") {
		t.Fatalf("view leaks or fails: %s", out)
	}
	// The current context supplies the server.
	if code, out := run("controller", "status"); code != 0 || !strings.Contains(out, "leader") {
		t.Fatalf("status via context: %d %s", code, out)
	}
	if code, out := run("config", "use-context", "nope"); code != exitUsage {
		t.Fatalf("unknown context: %d %s", code, out)
	}
}
