package profile

import (
	"os"
	"path/filepath"
	"testing"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// exampleFiles are the shipped example profiles.
var exampleFiles = []string{"eks.yaml", "bare-metal.yaml"}

func readExample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "profiles", name))
	if err != nil {
		t.Fatalf("read example: %v", err)
	}
	return b
}

func TestExampleProfilesValidate(t *testing.T) {
	for _, f := range exampleFiles {
		t.Run(f, func(t *testing.T) {
			name, spec, err := DecodeYAML(readExample(t, f))
			if err != nil {
				t.Fatalf("DecodeYAML: %v", err)
			}
			res := Validate(name, spec)
			if err := res.Err(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			for _, w := range res.Warnings {
				t.Logf("warning %s: %s (%s)", w.GetField(), w.GetMessage(), w.GetRule())
			}
			t.Logf("unvalidated: %v", res.Unvalidated)
			// Every phase is present and the kpr phase turns kube-proxy replacement on.
			for _, p := range AllPhases() {
				if !phasePresent(spec, p) {
					t.Errorf("phase %s missing", PhaseName(p))
				}
			}
			if !CumulativeValues(spec, ebbflowv1.Phase_PHASE_KPR).GetKubeProxyReplacement() {
				t.Errorf("kpr phase does not turn on kubeProxyReplacement")
			}
		})
	}
}
