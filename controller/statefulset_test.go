package controller

import (
	"strings"
	"testing"
)

func TestStatefulSetPlan(t *testing.T) {
	const svc = "ctl-peers.ebbflow.svc.cluster.local"
	tests := []struct {
		name, pod, service, listen, raft, scheme string
		want                                     PodPlan
		err                                      string
	}{
		{name: "ordinal 0 bootstraps", pod: "ctl-0", service: svc, listen: "0.0.0.0:7070", raft: "0.0.0.0:7071", scheme: "http",
			want: PodPlan{NodeID: "ctl-0", Bootstrap: true,
				Advertise: "ctl-0." + svc + ":7070", RaftAdvertise: "ctl-0." + svc + ":7071"}},
		{name: "ordinal 2 joins ordinal 0", pod: "ctl-2", service: svc, listen: ":7070", raft: ":7071", scheme: "http",
			want: PodPlan{NodeID: "ctl-2", Join: "http://ctl-0." + svc + ":7070",
				Advertise: "ctl-2." + svc + ":7070", RaftAdvertise: "ctl-2." + svc + ":7071"}},
		{name: "TLS joins over https", pod: "ebbflow-controller-1", service: "peers.", listen: "0.0.0.0:8443", raft: "0.0.0.0:8444", scheme: "https",
			want: PodPlan{NodeID: "ebbflow-controller-1", Join: "https://ebbflow-controller-0.peers:8443",
				Advertise: "ebbflow-controller-1.peers:8443", RaftAdvertise: "ebbflow-controller-1.peers:8444"}},
		{name: "ordinal 10", pod: "a-b-10", service: svc, listen: ":1", raft: ":2", scheme: "http",
			want: PodPlan{NodeID: "a-b-10", Join: "http://a-b-0." + svc + ":1", Advertise: "a-b-10." + svc + ":1", RaftAdvertise: "a-b-10." + svc + ":2"}},
		{name: "no ordinal", pod: "ctl", service: svc, listen: ":1", raft: ":2", scheme: "http", err: "not <statefulset>-<ordinal>"},
		{name: "empty ordinal", pod: "ctl-", service: svc, listen: ":1", raft: ":2", scheme: "http", err: "not <statefulset>-<ordinal>"},
		{name: "no name", pod: "-0", service: svc, listen: ":1", raft: ":2", scheme: "http", err: "not <statefulset>-<ordinal>"},
		{name: "ordinal not a number", pod: "ctl-abc", service: svc, listen: ":1", raft: ":2", scheme: "http", err: "does not end in an ordinal"},
		{name: "ordinal with a leading zero", pod: "ctl-01", service: svc, listen: ":1", raft: ":2", scheme: "http", err: "does not end in an ordinal"},
		{name: "no service", pod: "ctl-0", service: "", listen: ":1", raft: ":2", scheme: "http", err: "not a DNS name"},
		{name: "service with a port", pod: "ctl-0", service: "peers:80", listen: ":1", raft: ":2", scheme: "http", err: "not a DNS name"},
		{name: "random API port", pod: "ctl-1", service: svc, listen: "0.0.0.0:0", raft: ":2", scheme: "http", err: "--listen: a StatefulSet pod needs a fixed port"},
		{name: "raft listen without port", pod: "ctl-1", service: svc, listen: ":1", raft: "0.0.0.0", scheme: "http", err: "--raft-listen"},
		{name: "unknown scheme", pod: "ctl-1", service: svc, listen: ":1", raft: ":2", scheme: "h2c", err: "scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StatefulSetPlan(tt.pod, tt.service, tt.listen, tt.raft, tt.scheme)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("plan\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
