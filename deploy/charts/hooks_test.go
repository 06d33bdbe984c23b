package charts

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	helmrelease "helm.sh/helm/v3/pkg/release"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/ebbflow/ebbflow/controller/controllertest"
)

// podContainer is a bare Pod's container (hooks are Pods, not workloads).
func podContainer(t testing.TB, o *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "containers")
	for _, c := range cs {
		if m := c.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("%s %s has no container %s", o.GetKind(), o.GetName(), name)
	return nil
}

// TestControllerTestHook: `helm test` runs fleetctl from the chart's image against the client
// Service over TLS with the served certificate's CA and a token, and mounts nothing else.
func TestControllerTestHook(t *testing.T) {
	tests := []struct {
		name                  string
		values                map[string]any
		server, caSecret      string
		tokenSecret, tokenKey string
		insecure              bool
	}{
		{name: "default", server: "https://ebbflow-controller.ebbflow.svc:7070", caSecret: "ebbflow-pki", tokenSecret: "ebbflow-pki", tokenKey: "admin.token"},
		{name: "own tls and a viewer token", values: map[string]any{
			"tls":    map[string]any{"enabled": true, "secretName": "api-tls"},
			"apiUrl": "https://ebbflow.example.com:443/",
			"tests":  map[string]any{"tokenSecret": map[string]any{"name": "viewer", "key": "tok"}},
		}, server: "https://ebbflow.example.com:443", caSecret: "api-tls", tokenSecret: "viewer", tokenKey: "tok"},
		{name: "service port", values: map[string]any{"service": map[string]any{"port": 443}}, server: "https://ebbflow-controller.ebbflow.svc:443", caSecret: "ebbflow-pki", tokenSecret: "ebbflow-pki", tokenKey: "admin.token"},
		{name: "insecure", values: map[string]any{"insecure": true}, server: "http://ebbflow-controller.ebbflow.svc:7070", insecure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel := release(t, controllerChart, controllerChart, testNamespace, tt.values)
			hs := hooks(t, rel, helmrelease.HookTest)
			if len(hs) != 1 {
				t.Fatalf("%d test hooks, want the one Pod", len(hs))
			}
			pod := find(t, hs, "Pod", "ebbflow-controller-test-health")
			if p, _, _ := unstructured.NestedString(pod.Object, "spec", "restartPolicy"); p != "Never" {
				t.Errorf("restartPolicy %q: a failed check must fail the test, not restart", p)
			}
			c := podContainer(t, pod, "fleetctl")
			if cmd := stringsAt(t, c, "command"); len(cmd) != 1 || cmd[0] != "/usr/local/bin/fleetctl" {
				t.Errorf("command %v", cmd)
			}
			sts := find(t, objects(t, rel.Manifest), "StatefulSet", controllerChart)
			if c["image"] != container(t, sts, "fleet-controller")["image"] {
				t.Errorf("test image %v, controller image %v", c["image"], container(t, sts, "fleet-controller")["image"])
			}
			args := stringsAt(t, c, "args")
			want := []string{"controller", "status", "--server=" + tt.server}
			if !tt.insecure {
				want = append(want, "--ca=/etc/ebbflow/test/ca.crt", "--token-file=/etc/ebbflow/test/token")
			}
			want = append(want, "--timeout=20s")
			if strings.Join(args, " ") != strings.Join(want, " ") {
				t.Errorf("args\n %v\nwant\n %v", args, want)
			}
			sources, _, _ := unstructured.NestedSlice(pod.Object, "spec", "volumes")
			if tt.insecure {
				if len(sources) != 0 {
					t.Errorf("insecure: volumes %v", sources)
				}
				return
			}
			// What the Pod can read: exactly ca.crt of the CA's Secret and the token.
			got := map[string]string{}
			vols, _, _ := unstructured.NestedSlice(pod.Object, "spec", "volumes")
			for _, v := range vols {
				srcs, _, _ := unstructured.NestedSlice(v.(map[string]any), "projected", "sources")
				for _, s := range srcs {
					sec := s.(map[string]any)["secret"].(map[string]any)
					for _, it := range sec["items"].([]any) {
						it := it.(map[string]any)
						got[it["path"].(string)] = sec["name"].(string) + "/" + it["key"].(string)
					}
				}
			}
			wantFiles := map[string]string{"ca.crt": tt.caSecret + "/ca.crt", "token": tt.tokenSecret + "/" + tt.tokenKey}
			if len(got) != len(wantFiles) || got["ca.crt"] != wantFiles["ca.crt"] || got["token"] != wantFiles["token"] {
				t.Errorf("mounted %v, want %v", got, wantFiles)
			}
			mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
			if len(mounts) != 1 || mounts[0].(map[string]any)["mountPath"] != "/etc/ebbflow/test" {
				t.Errorf("mounts %v", mounts)
			}
		})
	}
	if hs := hooks(t, release(t, controllerChart, controllerChart, testNamespace, map[string]any{"tests": map[string]any{"enabled": false}}), helmrelease.HookTest); len(hs) != 0 {
		t.Errorf("tests.enabled=false still renders %d test hooks", len(hs))
	}
}

// buildFleetctl builds cmd/fleetctl, the binary the controller's test hook and NOTES run.
func buildFleetctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fleetctl")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ebbflow/ebbflow/cmd/fleetctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/fleetctl: %v\n%s", err, out)
	}
	return bin
}

// fleetctl runs bin with args and a config file of its own, and returns its output and exit code.
func fleetctl(t *testing.T, bin, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "EBBFLOW_CONFIG="+filepath.Join(dir, "config.yaml"), "EBBFLOW_SERVER=", "EBBFLOW_TOKEN=",
		"EBBFLOW_TOKEN_FILE=", "EBBFLOW_CA=", "EBBFLOW_CERT=", "EBBFLOW_KEY=")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestControllerChecksRun runs, against a real controller with TLS and authentication, what
// the chart tells people and `helm test` to run: the test Pod's fleetctl command with its
// mounted files, and the NOTES' commands (the Secret reads through kubectl's go-template
// printer, the fleetctl context). Each must pass with the right CA and token and fail with
// another CA or token.
func TestControllerChecksRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fleetctl and starts a controller")
	}
	bin := buildFleetctl(t)
	sec := controllertest.NewSecurity(t)
	node := controllertest.StartSecureCluster(t, 1, sec, nil)[0]
	t.Cleanup(node.Stop)

	rel := release(t, controllerChart, controllerChart, testNamespace, nil)
	c := podContainer(t, find(t, hooks(t, rel, helmrelease.HookTest), "Pod", "ebbflow-controller-test-health"), "fleetctl")

	// The Pod: its files as the projected volume holds them, the Service replaced by the node.
	run := func(ca []byte, token string) (string, int) {
		dir := t.TempDir()
		mount := filepath.Join(dir, "etc/ebbflow/test")
		if err := os.MkdirAll(mount, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mount, "ca.crt"), ca, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mount, "token"), []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var args []string
		for _, a := range stringsAt(t, c, "args") {
			a = strings.Replace(a, "/etc/ebbflow/test", mount, 1)
			if strings.HasPrefix(a, "--server=") {
				a = "--server=" + node.URL
			}
			args = append(args, a)
		}
		return fleetctl(t, bin, dir, args...)
	}
	if out, code := run(sec.CA.CertPEM, sec.Tokens["viewer"]); code != 0 || !strings.Contains(out, "leader") {
		t.Errorf("the test Pod's command against a healthy controller: exit %d\n%s", code, out)
	}
	other := controllertest.NewSecurity(t)
	if out, code := run(other.CA.CertPEM, sec.Tokens["viewer"]); code == 0 {
		t.Errorf("passed with another CA:\n%s", out)
	}
	if out, code := run(sec.CA.CertPEM, other.Tokens["viewer"]); code != 12 {
		t.Errorf("an unknown token: exit %d, want 12 (permission)\n%s", code, out)
	}

	// The NOTES: read the Secret as kubectl would, set the context as written, then call.
	notes := rel.Info.Notes
	dir := t.TempDir()
	secret := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: "ebbflow-pki", Namespace: testNamespace},
		Data:       map[string][]byte{"ca.crt": sec.CA.CertPEM, "ca.key": []byte("not for fleetctl"), "admin.token": []byte(sec.Tokens["admin"])}}
	reads := regexp.MustCompile(`kubectl -n ebbflow get secret (\S+) -o go-template='([^']+)' > ([^\s)]+)\)?\n`).FindAllStringSubmatch(notes, -1)
	if len(reads) != 2 {
		t.Fatalf("NOTES: %d Secret reads, want the CA and the token:\n%s", len(reads), notes)
	}
	for _, r := range reads {
		if r[1] != "ebbflow-pki" {
			t.Errorf("NOTES read Secret %s", r[1])
		}
		p, err := printers.NewGoTemplatePrinter([]byte(r[2]))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := p.PrintObj(secret, &b); err != nil {
			t.Fatalf("%s: %v", r[2], err)
		}
		if err := os.WriteFile(filepath.Join(dir, r[3]), b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var ctxName string
	for _, line := range strings.Split(notes, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "fleetctl" || f[1] != "config" {
			continue
		}
		// The port-forward's address stands for the node's.
		for i := range f {
			f[i] = strings.Replace(f[i], "https://127.0.0.1:7070", node.URL, 1)
		}
		if out, code := fleetctl(t, bin, dir, f[1:]...); code != 0 {
			t.Fatalf("%s: exit %d\n%s", line, code, out)
		}
		ctxName = f[3]
	}
	if ctxName != controllerChart {
		t.Fatalf("NOTES set no context named after the release:\n%s", notes)
	}
	// The NOTES' server is the port-forward's; the node listens elsewhere.
	if !strings.Contains(notes, "--server https://127.0.0.1:7070 ") || !strings.Contains(notes, "port-forward svc/ebbflow-controller 7070:7070") {
		t.Errorf("NOTES: server and port-forward disagree:\n%s", notes)
	}
	if out, code := fleetctl(t, bin, dir, "controller", "status"); code != 0 || !strings.Contains(out, "leader") {
		t.Errorf("controller status with the NOTES' context: exit %d\n%s", code, out)
	}
}

// TestAgentTestHook: `helm test` reads the agent's Lease with kubectl as an identity allowed
// only that, and the check passes only while a replica holds the Lease.
func TestAgentTestHook(t *testing.T) {
	rel := release(t, agentChart, agentChart, testNamespace, merge(agentRequired(), map[string]any{"leaderElection": map[string]any{"leaseName": "agent-lock"}}))
	hs := hooks(t, rel, helmrelease.HookTest)
	pod := find(t, hs, "Pod", "ebbflow-agent-test-lease")
	if sa, _, _ := unstructured.NestedString(pod.Object, "spec", "serviceAccountName"); sa != "ebbflow-agent-test-lease" {
		t.Errorf("the check runs as %q", sa)
	}
	find(t, hs, "ServiceAccount", "ebbflow-agent-test-lease")
	role := find(t, hs, "Role", "ebbflow-agent-test-lease")
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	if len(rules) != 1 {
		t.Fatalf("rules %v", rules)
	}
	r := rules[0].(map[string]any)
	for field, want := range map[string]string{"apiGroups": "coordination.k8s.io", "resources": "leases", "resourceNames": "agent-lock", "verbs": "get"} {
		if got := stringsAt(t, r, field); len(got) != 1 || got[0] != want {
			t.Errorf("rule %s = %v, want [%s]", field, got, want)
		}
	}
	rb := find(t, hs, "RoleBinding", "ebbflow-agent-test-lease")
	if name, _, _ := unstructured.NestedString(rb.Object, "roleRef", "name"); name != role.GetName() {
		t.Errorf("RoleBinding binds %s", name)
	}
	for _, o := range hs {
		if o.GetKind() != "Pod" && o.GetAnnotations()["helm.sh/hook-weight"] != "-1" {
			t.Errorf("%s %s is not created before the Pod", o.GetKind(), o.GetName())
		}
	}

	args := stringsAt(t, podContainer(t, pod, "kubectl"), "args")
	if strings.Join(args[:4], " ") != "get lease agent-lock --namespace=ebbflow" {
		t.Errorf("args %v", args)
	}
	var tmpl string
	strict := false
	for _, a := range args {
		if s, ok := strings.CutPrefix(a, "--output=go-template="); ok {
			tmpl = s
		}
		strict = strict || a == "--allow-missing-template-keys=false"
	}
	if tmpl == "" || !strict {
		t.Fatalf("args %v: want a go-template output with missing keys refused", args)
	}
	// The template through kubectl's own printer, as `kubectl get` runs it.
	check := func(spec coordinationv1.LeaseSpec) (string, error) {
		p, err := printers.NewGoTemplatePrinter([]byte(tmpl))
		if err != nil {
			t.Fatal(err)
		}
		p.AllowMissingKeys(false)
		lease := &coordinationv1.Lease{TypeMeta: metav1.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
			ObjectMeta: metav1.ObjectMeta{Name: "agent-lock", Namespace: testNamespace}, Spec: spec}
		var b bytes.Buffer
		err = p.PrintObj(lease, &b)
		return b.String(), err
	}
	if out, err := check(coordinationv1.LeaseSpec{HolderIdentity: ptrTo("ebbflow-agent-7d9f-x2k"), LeaseDurationSeconds: ptrTo[int32](15)}); err != nil || out != "agent-lock is held by ebbflow-agent-7d9f-x2k\n" {
		t.Errorf("held: %q, %v", out, err)
	}
	// Released: client-go's leader election clears the holder when a replica stops.
	if _, err := check(coordinationv1.LeaseSpec{HolderIdentity: ptrTo(""), LeaseDurationSeconds: ptrTo[int32](1)}); err == nil || !strings.Contains(err.Error(), "noReplicaHoldsTheLease") {
		t.Errorf("a released Lease: %v; want the failure to say no replica holds it", err)
	}
	if _, err := check(coordinationv1.LeaseSpec{}); err == nil {
		t.Error("a Lease without a holder passes")
	}

	// Without the chart's RBAC the check runs as the agent, whose Role may get the Lease.
	hs = hooks(t, release(t, agentChart, agentChart, testNamespace, merge(agentRequired(), map[string]any{"rbac": map[string]any{"create": false}})), helmrelease.HookTest)
	if len(hs) != 1 {
		t.Errorf("rbac.create=false: %d test hooks, want the Pod alone", len(hs))
	}
	if sa, _, _ := unstructured.NestedString(find(t, hs, "Pod", "ebbflow-agent-test-lease").Object, "spec", "serviceAccountName"); sa != "ebbflow-agent" {
		t.Errorf("rbac.create=false: the check runs as %q", sa)
	}
	for _, v := range []map[string]any{
		{"leaderElection": map[string]any{"enabled": false}},
		{"tests": map[string]any{"enabled": false}},
	} {
		if hs := hooks(t, release(t, agentChart, agentChart, testNamespace, merge(agentRequired(), v)), helmrelease.HookTest); len(hs) != 0 {
			t.Errorf("%v: %d test hooks, want none", v, len(hs))
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
