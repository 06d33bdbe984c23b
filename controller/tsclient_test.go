package controller_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	c "github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// The generated TypeScript client (clients/ts) type-checks against its pinned packages and,
// run by node, lists profiles on a real controller over HTTPS with a bearer token, as a
// portal would. `make tools` installs the packages (npm ci).
func TestTypeScriptClientListsProfiles(t *testing.T) {
	dir, err := filepath.Abs("../clients/ts")
	if err != nil {
		t.Fatal(err)
	}
	tsc := filepath.Join(dir, "node_modules", ".bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		t.Fatalf("%s is missing: run `make tools` (npm ci in clients/ts) first", tsc)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH: %v", err)
	}
	out := t.TempDir()
	if b, err := exec.Command(tsc, "-p", dir, "--outDir", out).CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	// dist/ resolves the packages from clients/ts/node_modules.
	link := filepath.Join(out, "node_modules")
	if err := os.Symlink(filepath.Join(dir, "node_modules"), link); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "package.json"), []byte(`{"type":"module"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	sec := controllertest.NewSecurity(t)
	url := controllertest.StartSecureCluster(t, 1, sec, nil)[0].URL
	profiles := c.NewProfileServiceClient(sec.Client(nil), url, sec.Bearer("admin"))
	for _, name := range []string{"eks", "bare-metal"} {
		if _, err := profiles.CreateProfile(context.Background(), connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: name, Spec: minimalSpec()})); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	tokenFile, caFile := filepath.Join(tmp, "token"), filepath.Join(tmp, "ca.pem")
	if err := os.WriteFile(tokenFile, []byte(sec.Tokens["viewer"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, sec.CA.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(token string) (string, error) {
		cmd := exec.Command(node, filepath.Join(out, "smoke.js"), url, token, caFile)
		b, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(b)), err
	}
	got, err := run(tokenFile)
	if err != nil {
		t.Fatalf("smoke: %v: %s", err, got)
	}
	var res struct{ Profiles []string }
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatalf("smoke printed %q: %v", got, err)
	}
	slices.Sort(res.Profiles)
	if !slices.Equal(res.Profiles, []string{"bare-metal@1", "eks@1"}) {
		t.Fatalf("the TypeScript client listed %v, want bare-metal@1 and eks@1", res.Profiles)
	}

	// A wrong token comes back as a Connect error the client can read.
	if err := os.WriteFile(tokenFile, []byte("not-a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := run(tokenFile); err == nil || !strings.Contains(got, "Unauthenticated") {
		t.Fatalf("smoke with a wrong token: %v: %s", err, got)
	}
}
