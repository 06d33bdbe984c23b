package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/controller/controllertest"
)

// applyDir is a directory as a GitOps repository holds one: the two shipped profiles in one
// file (with an empty document between them) and a rollout in another, README spellings.
func applyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	eks, err := os.ReadFile(repoFile(t, "deploy/profiles/eks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bm, err := os.ReadFile(repoFile(t, "deploy/profiles/bare-metal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "profiles.yaml"), string(eks)+"---\n# retired: the old GKE profile\n---\n"+string(bm))
	writeFile(t, filepath.Join(dir, "rollouts", "tune-prod.yaml"), `apiVersion: ebbflow.io/v1
kind: Rollout
metadata: {name: tune-prod}
spec:
  profile: bare-metal
  clusterSelector: env=prod
  failurePolicy: rollbackFailedClusters
  phaseTimeout: 10m
  automatic:
    canaryCount: 1
    waveSize: 2
    canaryGates: {soakTime: 1h30m}
`)
	return dir
}

// apply -f DIR -R twice: the second run changes nothing and says so; a changed file is a new
// revision; diff -f tells before apply does.
func TestApplyDirectoryTwice(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	controllertest.StartFleet(t, []string{n.URL}, 2, nil, nil)
	dir := applyDir(t)

	first := mustRun(t, n.URL, "apply", "-f", dir, "-R")
	t.Logf("fleetctl apply -f %s -R\n%s", dir, first)
	for _, want := range []string{"profile/eks revision 1 created\n", "profile/bare-metal revision 1 created\n", "rollout/tune-prod created\n"} {
		if !strings.Contains(first, want) {
			t.Errorf("first apply lacks %q:\n%s", want, first)
		}
	}
	if strings.Index(first, "profile/bare-metal") > strings.Index(first, "rollout/tune-prod") {
		t.Errorf("the rollout was applied before the profile it names:\n%s", first)
	}
	second := mustRun(t, n.URL, "apply", "-f", dir, "-R")
	t.Logf("fleetctl apply -f %s -R (again)\n%s", dir, second)
	if want := "profile/eks unchanged\nprofile/bare-metal unchanged\nrollout/tune-prod unchanged\n"; second != want {
		t.Errorf("second apply:\n%s\nwant:\n%s", second, want)
	}
	if hist := mustRun(t, n.URL, "--no-headers", "profile", "history", "eks"); strings.Count(hist, "\n") != 1 {
		t.Errorf("an unchanged apply stored a revision:\n%s", hist)
	}
	if code, out, errOut := fleetctl(t, n.URL, "", "diff", "-f", dir, "-R"); code != exitOK || out != "" || errOut != "" {
		t.Errorf("diff of applied files: exit %d, %q, %q", code, out, errOut)
	}

	// Without -R the directory's own files only.
	if out := mustRun(t, n.URL, "profile", "apply", "-f", dir); strings.Contains(out, "rollout/") {
		t.Errorf("apply without -R read a subdirectory:\n%s", out)
	}

	// A change: diff shows it and exits 1; apply stores revision 2; diff is clean again.
	p := filepath.Join(dir, "profiles.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, strings.Replace(string(b), "releaseName: cilium", "releaseName: cilium-tuned", 1))
	code, out, _ := fleetctl(t, n.URL, "", "diff", "-f", p)
	if code != 1 || !strings.Contains(out, "--- profile/eks (controller, revision 1)") || !strings.Contains(out, "-    releaseName: cilium\n+    releaseName: cilium-tuned\n") {
		t.Errorf("diff of a change: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "bare-metal") {
		t.Errorf("diff shows an unchanged profile:\n%s", out)
	}
	if out := mustRun(t, n.URL, "apply", "-f", p); out != "profile/eks revision 2 configured\nprofile/bare-metal unchanged\n" {
		t.Errorf("apply of a change:\n%s", out)
	}
	if code, out, _ := fleetctl(t, n.URL, "", "diff", "-f", p); code != 0 || out != "" {
		t.Errorf("diff after apply: exit %d\n%s", code, out)
	}

	// A rollout cannot change: applying a different spec under its name is a conflict.
	rp := filepath.Join(dir, "rollouts", "tune-prod.yaml")
	rb, err := os.ReadFile(rp)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, rp, strings.Replace(string(rb), "waveSize: 2", "waveSize: 3", 1))
	code, out, _ = fleetctl(t, n.URL, "", "diff", "-f", rp)
	if code != 1 || !strings.Contains(out, "-    waveSize: 2") || !strings.Contains(out, "+    waveSize: 3") {
		t.Errorf("rollout diff: exit %d\n%s", code, out)
	}
	code, _, errOut := fleetctl(t, n.URL, "", "apply", "-f", rp)
	if code != exitConflict || !strings.Contains(errOut, "cannot be changed") {
		t.Errorf("apply of a changed rollout: exit %d, %s", code, errOut)
	}
	// rollout create refuses an id that exists, as before.
	if code, _, _ := fleetctl(t, n.URL, "", "rollout", "create", "-f", rp); code != exitConflict {
		t.Errorf("rollout create of an existing id: exit %d", code)
	}

	// pause and resume are no-ops when repeated.
	for _, verb := range []string{"pause", "pause", "resume", "resume"} {
		if code, out, errOut := fleetctl(t, n.URL, "", "rollout", verb, "tune-prod"); code != 0 {
			t.Errorf("rollout %s: exit %d %s %s", verb, code, out, errOut)
		}
	}
}

// One invalid document stops the whole apply before anything is sent.
func TestApplyNothingWhenADocumentIsInvalid(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	dir := applyDir(t)
	writeFile(t, filepath.Join(dir, "zz-bad.yaml"), "apiVersion: ebbflow.io/v1\nkind: Rollout\nmetadata: {name: bad}\nspec:\n  profile: eks\n  sortLable: ring\n")
	code, out, errOut := fleetctl(t, n.URL, "", "apply", "-f", dir)
	if code != exitUsage || !strings.Contains(errOut, "zz-bad.yaml:6:3: document 1: spec.sortLable: unknown field (did you mean sortLabel?)") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if code, _, errOut := fleetctl(t, n.URL, "", "get", "profiles"); code != 0 || !strings.Contains(errOut, "No profiles found.") {
		t.Errorf("a profile was stored although a document was invalid: %d %s", code, errOut)
	}
}

// A document that fails on the controller does not stop the others; the exit code is its.
func TestApplyCarriesOnPastAFailure(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	bad := "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: {name: bad}\nspec:\n  chart: {repository: https://helm.cilium.io}\n  kpr:\n    values:\n      maglevTableSize: 1000\n"
	good := "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: {name: good}\nspec:\n  chart: {repository: https://helm.cilium.io}\n"
	code, out, errOut := fleetctl(t, n.URL, bad+"---\n"+good, "apply", "-f", "-")
	if code != exitUsage || !strings.Contains(out, "profile/good revision 1 created") ||
		!strings.Contains(errOut, "error: profile/bad (stdin): ") || !strings.Contains(errOut, "1 of 2 documents failed") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// --dry-run=server asks the controller to validate each object and stores nothing; a profile
// the controller refuses fails the dry run as it would fail apply.
func TestApplyDryRun(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	controllertest.StartFleet(t, []string{n.URL}, 2, nil, nil)
	dir := applyDir(t)
	mustRun(t, n.URL, "apply", "-f", filepath.Join(dir, "profiles.yaml"))
	out := mustRun(t, n.URL, "apply", "-f", dir, "-R", "--dry-run=server")
	if want := "profile/eks unchanged (server dry run)\nprofile/bare-metal unchanged (server dry run)\nrollout/tune-prod created (server dry run)\n"; out != want {
		t.Errorf("dry run:\n%s\nwant:\n%s", out, want)
	}
	if code, _, errOut := fleetctl(t, n.URL, "", "get", "rollouts"); code != 0 || !strings.Contains(errOut, "No rollouts found.") {
		t.Errorf("a dry run stored a rollout: %d %s", code, errOut)
	}
	bad := "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: {name: bad}\nspec:\n  chart: {repository: https://helm.cilium.io}\n  kpr:\n    values:\n      maglevTableSize: 1000\n"
	if code, out, errOut := fleetctl(t, n.URL, bad, "apply", "-f", "-", "--dry-run=server"); code != exitUsage || !strings.Contains(errOut, "maglev") {
		t.Errorf("server dry run of an invalid profile: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := fleetctl(t, n.URL, bad, "apply", "-f", "-", "--dry-run"); code != 0 || out != "profile/bad revision 1 created (client dry run)\n" {
		t.Errorf("client dry run: exit %d %q", code, out)
	}
	if out := mustRun(t, n.URL, "profile", "list", "-o", "name"); out != "profile/bare-metal\nprofile/eks\n" {
		t.Errorf("a dry run stored a profile: %q", out)
	}
}

// rollout create of a rollout without a name has the controller name it; apply refuses it.
func TestRolloutWithoutAName(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	controllertest.StartFleet(t, []string{n.URL}, 1, nil, nil)
	mustRun(t, n.URL, "apply", "-f", repoFile(t, "deploy/profiles/bare-metal.yaml"))
	unnamed := "apiVersion: ebbflow.io/v1\nkind: Rollout\nspec:\n  profile: bare-metal\n  clusterSelector: env=prod\n  automatic: {canaryCount: 1, waveSize: 1}\n"
	if code, _, errOut := fleetctl(t, n.URL, unnamed, "apply", "-f", "-"); code != exitUsage || !strings.Contains(errOut, "metadata.name: required") {
		t.Errorf("apply of an unnamed rollout: exit %d %s", code, errOut)
	}
	code, out, errOut := fleetctl(t, n.URL, unnamed, "rollout", "create", "-f", "-")
	if code != 0 || !strings.HasPrefix(out, "rollout/bare-metal-") || !strings.HasSuffix(out, " created\n") {
		t.Errorf("create of an unnamed rollout: exit %d %q %s", code, out, errOut)
	}
}
