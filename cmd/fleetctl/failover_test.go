package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/controller/controllertest"
)

// With --server a,b,c every call moves on when a node is down: a write and a read succeed
// through the live node whatever the dead one's place in the list.
func TestEveryCallSurvivesADeadServer(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	// An address nothing listens on: a port taken and released.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	for _, servers := range []string{dead + "," + n.URL, n.URL + "," + dead} {
		mustRun(t, servers, "cluster", "register", "c-"+strings.Repeat("x", len(servers)%5+1), "--label", "env=prod")
		if out := mustRun(t, servers, "cluster", "list"); !strings.Contains(out, "env=prod") {
			t.Fatalf("cluster list through %s: %s", servers, out)
		}
	}
	// Only dead servers: the call fails as unavailable, naming the refusal.
	code, _, errOut := fleetctl(t, dead+","+dead, "", "--timeout", "2s", "cluster", "list")
	if code != exitUnavailable || !strings.Contains(errOut, "refused") {
		t.Fatalf("all servers dead: exit %d, %s", code, errOut)
	}
}

// A mistyped subcommand or flag is a usage error (exit 2) naming it, with the closest command,
// not a help page and exit 0: a script must see its typo. A group alone still prints its help.
func TestTyposAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rollout", "show", "x"}, `unknown command "show" for "fleetctl rollout"`},
		{[]string{"profile", "revisions", "eks"}, `unknown command "revisions" for "fleetctl profile"`},
		{[]string{"rollout", "stauts", "x"}, "did you mean status?"},
		{[]string{"rollut", "list"}, "did you mean rollout?"},
		{[]string{"cluster", "list", "--bogus"}, "unknown flag: --bogus"},
	} {
		code, _, errOut := fleetctl(t, "http://127.0.0.1:1", "", tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("fleetctl %s: exit %d, %q; want %d and %q", strings.Join(tc.args, " "), code, errOut, exitUsage, tc.want)
		}
	}
	if code, out, _ := fleetctl(t, "http://127.0.0.1:1", "", "rollout"); code != exitOK || !strings.Contains(out, "Available Commands") {
		t.Errorf("fleetctl rollout alone: exit %d, %q; want its help", code, out)
	}
}

// Without the controller's CA the call fails saying which flag to pass, not as an outage
// (exit 1, not 5); with it, the same call works.
func TestMissingCAIsNamed(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	url := controllertest.StartSecureCluster(t, 1, sec, nil)[0].URL
	code, _, errOut := fleetctl(t, url, "", "--token", sec.Tokens["viewer"], "cluster", "list")
	if code != exitError || !strings.Contains(errOut, "--ca") || strings.Contains(errOut, "unavailable") {
		t.Fatalf("without --ca: exit %d, %q", code, errOut)
	}
	// http:// against a TLS controller says so instead of a bare "400 Bad Request".
	code, _, errOut = fleetctl(t, strings.Replace(url, "https://", "http://", 1), "", "--token", sec.Tokens["viewer"], "cluster", "list")
	if code == exitOK || !strings.Contains(errOut, "use an https:// server URL") {
		t.Errorf("http:// against TLS: exit %d, %q", code, errOut)
	}
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, sec.CA.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, url, "--token", sec.Tokens["viewer"], "--ca", ca, "cluster", "list")
}

// An empty list says so on stderr instead of printing a lone header, and is [] in JSON.
func TestEmptyListsSaySo(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	code, out, errOut := fleetctl(t, n.URL, "", "cluster", "list")
	if code != exitOK || out != "" || !strings.Contains(errOut, "No clusters found.") {
		t.Fatalf("empty cluster list: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out := mustRun(t, n.URL, "-o", "json", "profile", "list"); !strings.Contains(strings.ReplaceAll(out, " ", ""), `"profiles":[]`) {
		t.Fatalf("empty profile list in JSON: %s", out)
	}
	mustRun(t, n.URL, "cluster", "register", "c1")
	if out := mustRun(t, n.URL, "cluster", "list"); !strings.Contains(out, "c1") {
		t.Fatalf("cluster list with one cluster: %s", out)
	}
}

// version prints fleetctl's version and the controller's; --client needs no controller.
func TestVersion(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	if out := mustRun(t, n.URL, "version"); !strings.Contains(out, "client: ") || !strings.Contains(out, "controller: ") {
		t.Fatalf("version: %s", out)
	}
	if out := mustRun(t, "http://127.0.0.1:1", "version", "--client"); !strings.HasPrefix(out, "client: ") || strings.Contains(out, "controller") {
		t.Fatalf("version --client: %s", out)
	}
	if code, out, _ := fleetctl(t, "http://127.0.0.1:1", "", "--timeout", "2s", "version"); code != exitUnavailable || !strings.HasPrefix(out, "client: ") {
		t.Fatalf("version without a controller: exit %d, %s", code, out)
	}
}
