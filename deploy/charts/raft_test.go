package charts

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestControllerRaftWiring checks, for 1, 3 and 5 replicas, what makes the StatefulSet form a
// Raft group without a manual step: fleet-controller's --statefulset-service names exactly the
// DNS domain of the pods (<pod>.<serviceName>.<namespace>.svc.<clusterDomain>), the pods get
// their own name as --pod-name (the node id; ordinal 0 bootstraps, the others join ordinal 0
// at that domain), the headless Service publishes not-ready pods so joining pods resolve, the
// ports line up, and the PodDisruptionBudget keeps a quorum.
func TestControllerRaftWiring(t *testing.T) {
	tests := []struct {
		replicas, quorum, maxUnavailable int64
	}{
		{1, 1, 0},
		{3, 2, 1},
		{5, 3, 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.replicas), func(t *testing.T) {
			objs := objects(t, render(t, controllerChart, "ctl", "fleet", map[string]any{
				"replicas": tt.replicas, "clusterDomain": "corp.internal", "apiPort": 8080, "raftPort": 8081,
			}))
			sts := find(t, objs, "StatefulSet", "ctl-ebbflow-controller")
			if n, _, _ := unstructured.NestedInt64(sts.Object, "spec", "replicas"); n != tt.replicas {
				t.Errorf("replicas %d, want %d", n, tt.replicas)
			}
			if p, _, _ := unstructured.NestedString(sts.Object, "spec", "podManagementPolicy"); p != "Parallel" {
				t.Errorf("podManagementPolicy %q: after a full restart no pod is ready until a quorum runs, so OrderedReady would never start pod 1", p)
			}
			serviceName, _, _ := unstructured.NestedString(sts.Object, "spec", "serviceName")
			peers := find(t, objs, "Service", serviceName)
			if ip, _, _ := unstructured.NestedString(peers.Object, "spec", "clusterIP"); ip != "None" {
				t.Errorf("peers Service %s clusterIP %q, want None (headless)", serviceName, ip)
			}
			if p, _, _ := unstructured.NestedBool(peers.Object, "spec", "publishNotReadyAddresses"); !p {
				t.Errorf("peers Service %s must publish not-ready addresses", serviceName)
			}
			wantSelector(t, peers, sts)
			wantSelector(t, find(t, objs, "Service", "ctl-ebbflow-controller"), sts)

			c := container(t, sts, "fleet-controller")
			args := stringsAt(t, c, "args")
			domain := serviceName + ".fleet.svc.corp.internal"
			for _, want := range []string{"--statefulset-service=" + domain, "--pod-name=$(POD_NAME)",
				"--listen=0.0.0.0:8080", "--raft-listen=0.0.0.0:8081", "--pki-dir=/etc/ebbflow/pki"} {
				if !slices.Contains(args, want) {
					t.Errorf("args %v lack %s", args, want)
				}
			}
			for _, a := range args {
				for _, derived := range []string{"--node-id", "--join", "--advertise", "--raft-advertise"} {
					if strings.HasPrefix(a, derived+"=") {
						t.Errorf("arg %s: %s is derived from the pod's ordinal and must not be set", a, derived)
					}
				}
			}
			env, _, _ := unstructured.NestedSlice(c, "env")
			if !slices.ContainsFunc(env, func(e any) bool {
				m := e.(map[string]any)
				p, _, _ := unstructured.NestedString(m, "valueFrom", "fieldRef", "fieldPath")
				return m["name"] == "POD_NAME" && p == "metadata.name"
			}) {
				t.Errorf("env %v: POD_NAME must come from metadata.name", env)
			}
			ports := map[string]int64{}
			cps, _, _ := unstructured.NestedSlice(c, "ports")
			for _, p := range cps {
				m := p.(map[string]any)
				ports[m["name"].(string)] = m["containerPort"].(int64)
			}
			if ports["api"] != 8080 || ports["raft"] != 8081 {
				t.Errorf("container ports %v, want api 8080 raft 8081", ports)
			}
			for _, probe := range []struct{ field, path string }{{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}} {
				if p, _, _ := unstructured.NestedString(c, probe.field, "httpGet", "path"); p != probe.path {
					t.Errorf("%s path %q, want %s", probe.field, p, probe.path)
				}
			}
			// The pods' names, node ids and the addresses fleet-controller derives from them.
			for i := range tt.replicas {
				pod := fmt.Sprintf("%s-%d", sts.GetName(), i)
				t.Logf("pod %s: node id %s, advertises %s.%s:8080 (raft :8081), bootstrap=%v", pod, pod, pod, domain, i == 0)
			}

			pdb := find(t, objs, "PodDisruptionBudget", "ctl-ebbflow-controller")
			mu, found, _ := unstructured.NestedInt64(pdb.Object, "spec", "maxUnavailable")
			if !found || mu != tt.maxUnavailable {
				t.Errorf("PDB maxUnavailable %d (set %v), want %d", mu, found, tt.maxUnavailable)
			}
			if tt.replicas-mu != tt.quorum || tt.quorum != tt.replicas/2+1 {
				t.Errorf("PDB leaves %d of %d available, want the quorum %d", tt.replicas-mu, tt.replicas, tt.quorum)
			}
			wantSelector(t, pdb, sts)

			claims, _, _ := unstructured.NestedSlice(sts.Object, "spec", "volumeClaimTemplates")
			if len(claims) != 1 || claims[0].(map[string]any)["metadata"].(map[string]any)["name"] != "data" {
				t.Errorf("volumeClaimTemplates %v, want one named data", claims)
			}
		})
	}
}

// TestControllerTLS: with TLS on, the API and the probes use it, peers trust the CA, and the
// plain-text flag is gone.
func TestControllerTLS(t *testing.T) {
	objs := objects(t, render(t, controllerChart, controllerChart, testNamespace, map[string]any{
		"tls": map[string]any{"enabled": true, "secretName": "ctl-tls"},
	}))
	sts := find(t, objs, "StatefulSet", controllerChart)
	c := container(t, sts, "fleet-controller")
	args := stringsAt(t, c, "args")
	for _, want := range []string{"--tls-cert=/etc/ebbflow/tls/tls.crt", "--tls-key=/etc/ebbflow/tls/tls.key", "--tls-ca=/etc/ebbflow/tls/ca.crt"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	if slices.Contains(args, "--allow-insecure-remote") {
		t.Errorf("args %v: --allow-insecure-remote with TLS on", args)
	}
	if s, _, _ := unstructured.NestedString(c, "readinessProbe", "httpGet", "scheme"); s != "HTTPS" {
		t.Errorf("readiness probe scheme %q, want HTTPS", s)
	}
	if got := secretVolumes(t, sts); !slices.Equal(got, []string{"ebbflow-pki", "ctl-tls"}) {
		t.Errorf("Secret volumes %v, want the pki and ctl-tls Secrets", got)
	}
}

// TestControllerSecureByDefault: with the defaults, every replica gets the shared CA Secret
// and serves TLS with a certificate naming the client Service; insecure=true is plain text
// without authentication, and says so in its flags.
func TestControllerSecureByDefault(t *testing.T) {
	sts := find(t, objects(t, render(t, controllerChart, controllerChart, testNamespace, nil)), "StatefulSet", controllerChart)
	c := container(t, sts, "fleet-controller")
	args := stringsAt(t, c, "args")
	svc := controllerChart + "." + testNamespace
	for _, want := range []string{"--pki-dir=/etc/ebbflow/pki", "--agent-cert-ttl=24h",
		"--tls-san=" + controllerChart + "," + svc + "," + svc + ".svc," + svc + ".svc.cluster.local"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	if slices.Contains(args, "--insecure") || slices.Contains(args, "--allow-insecure-remote") {
		t.Errorf("args %v turn security off by default", args)
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if s, _, _ := unstructured.NestedString(c, probe, "httpGet", "scheme"); s != "HTTPS" {
			t.Errorf("%s scheme %q, want HTTPS", probe, s)
		}
	}
	if got := secretVolumes(t, sts); !slices.Equal(got, []string{"ebbflow-pki"}) {
		t.Errorf("Secret volumes %v, want the pki Secret", got)
	}

	sts = find(t, objects(t, render(t, controllerChart, controllerChart, testNamespace, map[string]any{
		"pki": map[string]any{"extraSANs": []any{"ebbflow.example.com", "203.0.113.7"}},
	})), "StatefulSet", controllerChart)
	if args := stringsAt(t, container(t, sts, "fleet-controller"), "args"); !slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--tls-san=") && strings.HasSuffix(a, ".svc.cluster.local,ebbflow.example.com,203.0.113.7")
	}) {
		t.Errorf("args %v: extraSANs not appended to --tls-san", args)
	}

	sts = find(t, objects(t, render(t, controllerChart, controllerChart, testNamespace, map[string]any{
		"insecure": true, "tokens": map[string]any{"secretName": "people"},
	})), "StatefulSet", controllerChart)
	c = container(t, sts, "fleet-controller")
	args = stringsAt(t, c, "args")
	if !slices.Contains(args, "--insecure") || slices.Contains(args, "--pki-dir=/etc/ebbflow/pki") || slices.Contains(args, "--tokens-file=/etc/ebbflow/tokens/tokens") {
		t.Errorf("insecure args %v", args)
	}
	if s, _, _ := unstructured.NestedString(c, "readinessProbe", "httpGet", "scheme"); s != "HTTP" {
		t.Errorf("insecure readiness probe scheme %q, want HTTP", s)
	}

	sts = find(t, objects(t, render(t, controllerChart, controllerChart, testNamespace, map[string]any{
		"tokens": map[string]any{"secretName": "people"},
		"jwt":    map[string]any{"issuer": "https://id.example.com", "audience": "ebbflow", "keySecretName": "idp-key"},
	})), "StatefulSet", controllerChart)
	args = stringsAt(t, container(t, sts, "fleet-controller"), "args")
	for _, want := range []string{"--tokens-file=/etc/ebbflow/tokens/tokens", "--jwt-issuer=https://id.example.com",
		"--jwt-audience=ebbflow", "--jwt-key=/etc/ebbflow/jwt/key.pem", "--jwt-role-claim=ebbflow_role"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	if got := secretVolumes(t, sts); !slices.Equal(got, []string{"ebbflow-pki", "people", "idp-key"}) {
		t.Errorf("Secret volumes %v", got)
	}
}

// TestAgentIdentity: the agent gets the controller's CA, its join token as a file, and a
// volume that keeps its certificate across pods (a Recreate Deployment, since that volume is
// ReadWriteOnce).
func TestAgentIdentity(t *testing.T) {
	objs := objects(t, render(t, agentChart, agentChart, testNamespace, merge(agentRequired(), map[string]any{
		"controllerUrl": "https://ctl.example.com:7070",
		"controllerCA":  map[string]any{"secretName": "ctl-ca"},
		"joinToken":     map[string]any{"secretName": "join"},
	})))
	d := find(t, objs, "Deployment", agentChart)
	args := stringsAt(t, container(t, d, "fleet-agent"), "args")
	for _, want := range []string{"--ca=/etc/ebbflow/controller-ca/ca.crt", "--join-token-file=/etc/ebbflow/join/token", "--identity-dir=/var/lib/ebbflow-agent"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %v lack %s", args, want)
		}
	}
	pvc := find(t, objs, "PersistentVolumeClaim", agentChart+"-identity")
	if modes, _, _ := unstructured.NestedStringSlice(pvc.Object, "spec", "accessModes"); !slices.Equal(modes, []string{"ReadWriteOnce"}) {
		t.Errorf("identity PVC access modes %v", modes)
	}
	if s, _, _ := unstructured.NestedString(d.Object, "spec", "strategy", "type"); s != "Recreate" {
		t.Errorf("strategy %q, want Recreate with a ReadWriteOnce identity", s)
	}
	if got := secretVolumes(t, d); !slices.Equal(got, []string{"ctl-ca", "join"}) {
		t.Errorf("Secret volumes %v", got)
	}
}

// secretVolumes are the names of the Secrets a workload's pods mount, in order.
func secretVolumes(t testing.TB, o *unstructured.Unstructured) []string {
	t.Helper()
	vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
	var out []string
	for _, v := range vols {
		if s, ok := v.(map[string]any)["secret"].(map[string]any); ok {
			out = append(out, s["secretName"].(string))
		}
	}
	return out
}

func container(t testing.TB, o *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		if m := c.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("%s %s has no container %s", o.GetKind(), o.GetName(), name)
	return nil
}

func stringsAt(t testing.TB, m map[string]any, field string) []string {
	t.Helper()
	s, _, err := unstructured.NestedStringSlice(m, field)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantSelector checks that o selects (spec.selector or spec.selector.matchLabels) sts's pods.
func wantSelector(t testing.TB, o, sts *unstructured.Unstructured) {
	t.Helper()
	podLabels, _, _ := unstructured.NestedStringMap(sts.Object, "spec", "template", "metadata", "labels")
	sel, found, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
	if !found {
		sel, _, _ = unstructured.NestedStringMap(o.Object, "spec", "selector")
	}
	if len(sel) == 0 {
		t.Errorf("%s %s selects nothing", o.GetKind(), o.GetName())
	}
	for k, v := range sel {
		if podLabels[k] != v {
			t.Errorf("%s %s selects %s=%s, which the pods (%v) lack", o.GetKind(), o.GetName(), k, v, podLabels)
		}
	}
}
