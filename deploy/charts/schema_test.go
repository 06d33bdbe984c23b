package charts

import (
	"strings"
	"testing"
)

// TestSchema: values the schemas refuse fail the install, with the offending key named;
// the charts' own checks refuse what a schema cannot express.
func TestSchema(t *testing.T) {
	tests := []struct {
		name, chart string
		values      map[string]any
		err         string // "" when the values must render
	}{
		{"controller defaults", controllerChart, nil, ""},
		{"controller typo at the top", controllerChart, map[string]any{"replica": 3}, "replica"},
		{"controller typo in tls", controllerChart, map[string]any{"tls": map[string]any{"enable": true}}, "enable"},
		{"controller typo in persistence", controllerChart, map[string]any{"persistence": map[string]any{"storageClass": "fast"}}, "storageClass"},
		{"controller replicas as a string", controllerChart, map[string]any{"replicas": "3"}, "replicas"},
		{"controller zero replicas", controllerChart, map[string]any{"replicas": 0}, "replicas"},
		{"controller bad log level", controllerChart, map[string]any{"log": map[string]any{"level": "verbose"}}, "level"},
		{"controller without the pki Secret", controllerChart, map[string]any{"pki": map[string]any{"secretName": ""}}, "pki.secretName"},
		{"controller insecure without the pki Secret", controllerChart, map[string]any{"insecure": true, "pki": map[string]any{"secretName": ""}}, ""},
		{"controller JWT issuer alone", controllerChart, map[string]any{"jwt": map[string]any{"issuer": "https://id.example.com"}}, "jwt.audience"},
		{"controller extra SAN with a comma", controllerChart, map[string]any{"pki": map[string]any{"extraSANs": []any{"a.example.com,b"}}}, "extraSANs"},
		{"controller bad agent certificate lifetime", controllerChart, map[string]any{"agentCertTTL": "1 day"}, "agentCertTTL"},
		{"controller TLS without a secret", controllerChart, map[string]any{"tls": map[string]any{"enabled": true}}, "tls.secretName"},
		{"controller global values", controllerChart, map[string]any{"global": map[string]any{"imageRegistry": "r.example.com"}}, ""},
		{"controller dependency condition", controllerChart, map[string]any{"enabled": true}, ""},
		{"controller name overrides", controllerChart, map[string]any{"nameOverride": "fleet", "fullnameOverride": "ebbflow"}, ""},
		{"controller fullnameOverride not a DNS label", controllerChart, map[string]any{"fullnameOverride": "Ebbflow"}, "fullnameOverride"},
		{"controller typo in tests", controllerChart, map[string]any{"tests": map[string]any{"tokenSecretName": "x"}}, "tokenSecretName"},
		{"controller apiUrl without scheme", controllerChart, map[string]any{"apiUrl": "ebbflow.example.com:443"}, "apiUrl"},
		{"agent required values", agentChart, agentRequired(), ""},
		{"agent global values", agentChart, merge(agentRequired(), map[string]any{"global": map[string]any{"imageRegistry": "r.example.com"}}), ""},
		{"agent nameOverride not a DNS label", agentChart, merge(agentRequired(), map[string]any{"nameOverride": "Agent_1"}), "nameOverride"},
		{"agent typo in tests", agentChart, merge(agentRequired(), map[string]any{"tests": map[string]any{"imageName": "kubectl"}}), "imageName"},
		{"agent without clusterId", agentChart, map[string]any{"controllerUrl": "http://c:7070"}, "clusterId"},
		{"agent typo at the top", agentChart, merge(agentRequired(), map[string]any{"clusterID": "eu-1"}), "clusterID"},
		{"agent typo in rbac", agentChart, merge(agentRequired(), map[string]any{"rbac": map[string]any{"extraRule": []any{}}}), "extraRule"},
		{"agent typo in a park entry", agentChart, merge(agentRequired(), map[string]any{"parkDaemonSets": []any{map[string]any{"ns": "kube-system", "name": "kube-proxy"}}}), "ns"},
		{"agent two replicas without leader election", agentChart, merge(agentRequired(), map[string]any{"replicas": 2, "leaderElection": map[string]any{"enabled": false}}), "enabled"},
		{"agent two replicas on a ReadWriteOnce identity", agentChart, merge(agentRequired(), map[string]any{"replicas": 2}), "accessModes"},
		{"agent two replicas with leader election", agentChart, merge(agentRequired(), map[string]any{"replicas": 2,
			"identity": map[string]any{"persistence": map[string]any{"accessModes": []any{"ReadWriteMany"}}}}), ""},
		{"agent two replicas without persistence", agentChart, merge(agentRequired(), map[string]any{"replicas": 2,
			"identity": map[string]any{"persistence": map[string]any{"enabled": false}}}), ""},
		{"agent https controller without its CA", agentChart, merge(agentRequired(), map[string]any{"controllerUrl": "https://c:7070"}), "secretName"},
		{"agent typo in joinToken", agentChart, merge(agentRequired(), map[string]any{"joinToken": map[string]any{"secret": "t"}}), "secret"},
		{"agent one replica without leader election", agentChart, merge(agentRequired(), map[string]any{"leaderElection": map[string]any{"enabled": false}}), ""},
		{"agent zero replicas", agentChart, merge(agentRequired(), map[string]any{"replicas": 0}), "replicas"},
		{"agent typo in leaderElection", agentChart, merge(agentRequired(), map[string]any{"leaderElection": map[string]any{"lease": "x"}}), "lease"},
		{"agent cluster id not a DNS label", agentChart, merge(agentRequired(), map[string]any{"clusterId": "EU_1"}), "clusterId"},
		{"agent controller URL without scheme", agentChart, merge(agentRequired(), map[string]any{"controllerUrl": "ctl:7070"}), "controllerUrl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tryRender(tt.chart, tt.chart, testNamespace, tt.values)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err != "" && err == nil:
				t.Fatalf("rendered; want an error naming %q", tt.err)
			case tt.err != "" && !strings.Contains(err.Error(), tt.err):
				t.Fatalf("error %q does not name %q", err, tt.err)
			}
		})
	}
}
