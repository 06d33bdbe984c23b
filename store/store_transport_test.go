package store

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// freePort is a TCP port free on 127.0.0.1 right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestNamedRaftAddress: nodes that advertise a DNS name (as StatefulSet pods do) keep that
// name as their Raft address in the configuration, and replicate through it.
func TestNamedRaftAddress(t *testing.T) {
	c := newCluster(t, 2, func(cfg *Config) {
		p := freePort(t)
		cfg.RaftBind = fmt.Sprintf("127.0.0.1:%d", p)
		cfg.RaftAdvertise = fmt.Sprintf("localhost:%d", p)
	})
	for _, s := range c {
		if s.RaftAddress() != s.cfg.RaftAdvertise {
			t.Errorf("%s: RaftAddress %q, want the advertised name %q", s.cfg.NodeID, s.RaftAddress(), s.cfg.RaftAdvertise)
		}
	}
	want := c.apply(t, registerCluster("c1", labels("1"), false)).(*ebbflowv1.Cluster)
	for _, s := range c {
		waitFor(t, 10*time.Second, "c1 on "+s.cfg.NodeID, func() bool {
			got, err := stale(t, s, func(tx *Tx) (*ebbflowv1.Cluster, error) { return tx.Cluster("c1") })
			return err == nil && proto.Equal(got, want)
		})
	}
	var addrs []string
	for _, m := range c.Leader().Status().Members {
		addrs = append(addrs, m.RaftAddress)
	}
	slices.Sort(addrs)
	wantAddrs := []string{c[0].cfg.RaftAdvertise, c[1].cfg.RaftAdvertise}
	slices.Sort(wantAddrs)
	if !slices.Equal(addrs, wantAddrs) {
		t.Errorf("raft configuration addresses %v, want %v", addrs, wantAddrs)
	}
}
