package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// readDocs reads sources as apply -f does, with stdin as standard input.
func readDocs(t *testing.T, stdin string, recursive bool, sources ...string) ([]*manifest, error) {
	t.Helper()
	a := &app{in: strings.NewReader(stdin), out: &bytes.Buffer{}, errOut: &bytes.Buffer{}}
	return a.readManifests(sources, recursive)
}

func writeFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const tuneEU = `apiVersion: ebbflow.io/v1
kind: Rollout
metadata: {name: tune-eu}
spec:
  profile: eks
  clusterSelector: env=prod
  sortLabel: ring
  failurePolicy: rollbackFailedClusters
  phaseTimeout: 1h30m
  phases: [baseline, l7]
  automatic:
    canaryCount: 1
    waveSize: 10
    canaryGates: {soakTime: 10m}
    gates: {maxFailuresCount: 1, soakTime: 0.05s, requireApproval: true}
  probes:
    probes:
      - {kind: http, target: "http://echo:8080/", rate: 500, duration: 30s}
`

// A rollout file takes the README's spellings: short enum values, Go durations.
func TestRolloutFileShortSpellings(t *testing.T) {
	ms, err := readDocs(t, tuneEU, false, "-")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].kind != kindRollout || ms[0].name != "tune-eu" {
		t.Fatalf("documents: %+v", ms)
	}
	s := ms[0].rollout
	if s.GetFailurePolicy() != ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS {
		t.Errorf("failurePolicy: %v", s.GetFailurePolicy())
	}
	if d := s.GetPhaseTimeout().AsDuration(); d != 90*time.Minute {
		t.Errorf("phaseTimeout 1h30m: %v", d)
	}
	if d := s.GetAutomatic().GetCanaryGates().GetSoakTime().AsDuration(); d != 10*time.Minute {
		t.Errorf("soakTime 10m: %v", d)
	}
	if d := s.GetAutomatic().GetGates().GetSoakTime().AsDuration(); d != 50*time.Millisecond {
		t.Errorf("soakTime 0.05s: %v", d)
	}
	if got := s.GetPhases(); len(got) != 2 || got[1] != ebbflowv1.Phase_PHASE_L7 {
		t.Errorf("phases: %v", got)
	}
	if k := s.GetProbes().GetProbes()[0].GetKind(); k != ebbflowv1.ProbeKind_PROBE_KIND_HTTP {
		t.Errorf("probe kind: %v", k)
	}
	// The proto's own names are taken too, and the encoder writes the short ones back.
	long := strings.Replace(tuneEU, "rollbackFailedClusters", "FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS", 1)
	long = strings.Replace(long, "1h30m", "5400s", 1)
	ms2, err := readDocs(t, long, false, "-")
	if err != nil {
		t.Fatal(err)
	}
	if ms2[0].rollout.String() != s.String() {
		t.Errorf("proto spellings decode differently:\n%v\n%v", ms2[0].rollout, s)
	}
	y, err := encodeRolloutYAML("tune-eu", s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"failurePolicy: rollbackFailedClusters", "phaseTimeout: 1h30m", "soakTime: 10m", "kind: http"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("encoded rollout lacks %q:\n%s", want, y)
		}
	}
	back, err := readDocs(t, string(y), false, "-")
	if err != nil {
		t.Fatalf("the encoded rollout does not decode: %v\n%s", err, y)
	}
	if back[0].rollout.String() != s.String() {
		t.Errorf("round trip changed the spec:\n%v\n%v", back[0].rollout, s)
	}
}

// Every error names the file, the document and the line and column of the user's file, and
// all of them are reported at once.
func TestFileErrorsNameFileDocumentAndLine(t *testing.T) {
	dir := t.TempDir()
	profileDoc := "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: {name: eks}\nspec:\n  chart: {repository: https://helm.cilium.io}\n"
	cases := []struct {
		name, body string
		want       []string
	}{
		{"misspelt key", "# rollouts\n---\n" + profileDoc + "---\n" + strings.Replace(tuneEU, "sortLabel", "sortLable", 1),
			[]string{":15:3: document 2: spec.sortLable: unknown field (did you mean sortLabel?)"}},
		{"bad enum", strings.Replace(tuneEU, "rollbackFailedClusters", "rollbackEverything", 1),
			[]string{":8:18: document 1: spec.failurePolicy: unknown value \"rollbackEverything\"", "want one of haltOnly, rollbackFailedClusters, rollbackWave"}},
		{"bad duration", strings.Replace(tuneEU, "10m", "10 minutes", 1),
			[]string{":14:29: document 1: spec.automatic.canaryGates.soakTime: want a duration like 90s, 10m or 1h30m"}},
		{"list entry", strings.Replace(tuneEU, "rate: 500", "rate: lots", 1),
			[]string{":18:57: document 1: spec.probes.probes[0].rate: want a number"}},
		{"repeated key", "---\n" + strings.Replace(tuneEU, "  sortLabel: ring\n", "  sortLabel: ring\n  sortLabel: zone\n", 1),
			[]string{":9:3: document 1: spec.sortLabel: repeated key (first at line 8)"}},
		{"bad yaml", profileDoc + "---\n" + strings.Replace(tuneEU, "canaryCount: 1", "canaryCount: [1", 1),
			[]string{"document 2: not valid YAML", "line 1"}},
		{"profile field", strings.Replace(profileDoc, "chart:", "chrat:", 1),
			[]string{":5:3: document 1: spec.chrat: unknown field"}},
		{"unknown kind", "apiVersion: ebbflow.io/v1\nkind: Deployment\nmetadata: {name: x}\n",
			[]string{":2:1: document 1: kind: \"Deployment\" is not one fleetctl applies; want Profile or Rollout"}},
		{"two errors", strings.Replace(profileDoc, "chart:", "chrat:", 1) + "---\n" + strings.Replace(tuneEU, "sortLabel", "sortLable", 1),
			[]string{"2 documents are not valid", "document 1: spec.chrat", "document 2: spec.sortLable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := writeFile(t, filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml"), tc.body)
			_, err := readDocs(t, "", false, f)
			if err == nil {
				t.Fatal("no error")
			}
			if codeOf(err) != exitUsage {
				t.Errorf("exit code %d, want %d", codeOf(err), exitUsage)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), f) {
				t.Errorf("error %q does not name the file %s", err, f)
			}
		})
	}
}

// A bad YAML document's line is the line in the file, not in the document.
func TestYAMLErrorLineIsTheFiles(t *testing.T) {
	body := "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: {name: a}\n---\napiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: name: b\n"
	_, err := readDocs(t, body, false, "-")
	if err == nil || !strings.Contains(err.Error(), "stdin:5: document 2") || !strings.Contains(err.Error(), "line 7") {
		t.Fatalf("error: %v", err)
	}
}

// Documents: any number per file, empty ones skipped, a directory in name order, -R for its
// subdirectories, stdin among files; one object twice is an error.
func TestManifestSources(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string {
		return "apiVersion: ebbflow.io/v1\nkind: Profile\nmetadata: {name: " + name + "}\nspec: {}\n"
	}
	writeFile(t, filepath.Join(dir, "b.yaml"), "---\n"+p("b1")+"---\n# nothing here\n---\n\n---\n"+p("b2"))
	writeFile(t, filepath.Join(dir, "a.yml"), p("a"))
	writeFile(t, filepath.Join(dir, "notes.txt"), "not a manifest")
	writeFile(t, filepath.Join(dir, "sub", "c.json"), `{"apiVersion": "ebbflow.io/v1", "kind": "Profile", "metadata": {"name": "c"}, "spec": {}}`)
	names := func(ms []*manifest) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.ref()+"@"+filepath.Base(m.pos.source)+"#"+string(rune('0'+m.pos.doc)))
		}
		return strings.Join(s, " ")
	}
	ms, err := readDocs(t, "", false, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(ms), "profile/a@a.yml#1 profile/b1@b.yaml#1 profile/b2@b.yaml#4"; got != want {
		t.Errorf("directory: %s, want %s", got, want)
	}
	if ms, err = readDocs(t, p("d"), true, dir, "-"); err != nil {
		t.Fatal(err)
	}
	if got, want := names(ms), "profile/a@a.yml#1 profile/b1@b.yaml#1 profile/b2@b.yaml#4 profile/c@c.json#1 profile/d@stdin#1"; got != want {
		t.Errorf("-R with stdin: %s, want %s", got, want)
	}
	_, err = readDocs(t, p("a"), false, dir, "-")
	if err == nil || !strings.Contains(err.Error(), "profile/a is also in") {
		t.Errorf("the same profile twice: %v", err)
	}
	if _, err = readDocs(t, "---\n# empty\n", false, "-"); err == nil || codeOf(err) != exitUsage {
		t.Errorf("only empty documents: %v", err)
	}
	if _, err = readDocs(t, "", false, filepath.Join(dir, "missing.yaml")); err == nil || codeOf(err) != exitUsage {
		t.Errorf("a missing file: %v", err)
	}
}

func TestUnifiedDiff(t *testing.T) {
	from := "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"
	to := "a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\n"
	got := unifiedDiff("old", "new", from, to)
	want := "--- old\n+++ new\n@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n"
	if got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
	if d := unifiedDiff("old", "new", from, from); d != "" {
		t.Errorf("equal texts: %q", d)
	}
	if d := unifiedDiff("old", "new", "", "x\n"); d != "--- old\n+++ new\n@@ -0,0 +1 @@\n+x\n" {
		t.Errorf("from nothing: %q", d)
	}
}
