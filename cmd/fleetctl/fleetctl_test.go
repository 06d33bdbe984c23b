package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
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
	if !strings.Contains(out, "revision 1 applied") {
		t.Fatalf("apply: %s", out)
	}
	// get -o yaml round-trips through apply as a new revision.
	y := mustRun(t, n.URL, "profile", "get", "eks", "-o", "yaml")
	y2 := strings.Replace(y, "description:", "description: revised -", 1)
	code, out, errOut := fleetctl(t, n.URL, y2, "profile", "apply", "-f", "-")
	if code != 0 || !strings.Contains(out, "revision 2 applied") {
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
	if code != exitUnimplemented || !strings.Contains(errOut, "rollout engine is not available") {
		t.Fatalf("rollout create without engine: %d %s", code, errOut)
	}
	if code, _, _ := fleetctl(t, n.URL, "", "rollout", "status", "nope"); code != exitNotFound {
		t.Fatalf("missing rollout: exit %d", code)
	}
}

// status --watch follows the stream and its exit code tells how the rollout ended.
func TestRolloutWatchExitCodes(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	put := func(r *ebbflowv1.Rollout, gen uint64) {
		t.Helper()
		if _, err := n.Store.Apply(context.Background(), &storev1.Command{Actor: "test", Body: &storev1.Command_PutRollout{
			PutRollout: &storev1.PutRollout{Rollout: r, ExpectedGeneration: gen},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		id    string
		final ebbflowv1.RolloutState
		code  int
	}{
		{"ok", ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED, exitOK},
		{"bad", ebbflowv1.RolloutState_ROLLOUT_STATE_FAILED, exitRolloutFailed},
		{"stop", ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED, exitRolloutAborted},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			r := &ebbflowv1.Rollout{Id: tc.id, Spec: &ebbflowv1.RolloutSpec{Profile: "p"}, ProfileRevision: 1, State: ebbflowv1.RolloutState_ROLLOUT_STATE_RUNNING,
				Waves: []*ebbflowv1.Wave{{Index: 0, State: ebbflowv1.WaveState_WAVE_STATE_PROGRESSING, Clusters: []*ebbflowv1.RolloutCluster{{
					Cluster: "c1", Phase: ebbflowv1.Phase_PHASE_KPR, State: ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_MEASURING,
				}}}}}
			put(r, 0)
			done := make(chan struct{})
			var code int
			var out string
			go func() {
				defer close(done)
				code, out, _ = fleetctl(t, n.URL, "", "rollout", "status", tc.id, "--watch")
			}()
			r.State = tc.final
			r.Message = "final"
			put(r, 1)
			<-done
			if code != tc.code {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tc.code, out)
			}
			if !strings.Contains(out, "c1") || !strings.Contains(out, strings.ToUpper(strings.TrimPrefix(tc.final.String(), "ROLLOUT_STATE_"))) {
				t.Fatalf("output:\n%s", out)
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
