package store

import (
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ebbflow/ebbflow/internal/pki"
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

// nodeTLS is mutual TLS for Raft with a node certificate of ca.
func nodeTLS(t testing.TB, ca *pki.CA, id string) *tls.Config {
	t.Helper()
	src, err := pki.NewNodeCertSource(ca, id, []string{"127.0.0.1", "localhost"}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return pki.PeerTLS(src, ca.Pool())
}

// TestRaftOverTLS: a group whose Raft transport is mutual TLS replicates, and its Raft port
// refuses a plain-TCP peer and a TLS peer without a node certificate of the group's CA.
func TestRaftOverTLS(t *testing.T) {
	ca, _, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	c := newCluster(t, 2, func(cfg *Config) {
		n++
		cfg.RaftTLS = nodeTLS(t, ca, fmt.Sprintf("tls-%d", n))
	})
	want := c.apply(t, registerCluster("c1", labels("1"), false)).(*ebbflowv1.Cluster)
	for _, s := range c {
		waitFor(t, 10*time.Second, "c1 on "+s.cfg.NodeID, func() bool {
			got, err := stale(t, s, func(tx *Tx) (*ebbflowv1.Cluster, error) { return tx.Cluster("c1") })
			return err == nil && proto.Equal(got, want)
		})
	}
	addr := c.Leader().RaftAddress()

	// Plain TCP: the listener expects a TLS handshake; Raft's first byte gets no answer but
	// a closed connection.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte{0, 0, 0, 0, 0, 0, 0, 0}); err == nil {
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Error("a plain-TCP peer got an answer from the TLS Raft port")
		}
	}
	conn.Close()

	// TLS with the right CA but a person's certificate, and with another CA's node
	// certificate: both refused at the handshake.
	personPEM, keyPEM, err := ca.IssuePerson("mallory", "admin", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	person, err := tls.X509KeyPair(personPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherNode, err := other.IssueNode("tls-9", []string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, cert := range map[string]tls.Certificate{"person certificate": person, "another CA's node certificate": otherNode} {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}
		d := &net.Dialer{Timeout: 5 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err == nil {
			// TLS 1.3 reports a refused client certificate on the first read.
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") && !strings.Contains(err.Error(), "tls") {
			t.Errorf("%s: Raft port accepted it (err %v)", name, err)
		}
	}
}
