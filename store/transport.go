package store

import (
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// newTransport is Raft's TCP transport on bind. An advertise address whose host is a DNS name
// (a StatefulSet pod's stable name) is advertised as that name and resolved at every dial, so
// the node keeps its Raft address when its IP changes; an IP address is advertised as is.
func newTransport(bind, advertise string, logger hclog.Logger) (*raft.NetworkTransport, error) {
	host, _, err := net.SplitHostPort(advertise)
	if advertise == "" || err != nil || net.ParseIP(host) != nil {
		var addr net.Addr
		if advertise != "" {
			if addr, err = net.ResolveTCPAddr("tcp", advertise); err != nil {
				return nil, err
			}
		}
		return raft.NewTCPTransportWithLogger(bind, addr, 3, 10*time.Second, logger)
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &namedStream{Listener: ln, addr: namedAddr(advertise)}, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger,
	}), nil
}

// namedStream is a raft.StreamLayer on a TCP listener that advertises a host name.
type namedStream struct {
	net.Listener
	addr namedAddr
}

func (s *namedStream) Addr() net.Addr { return s.addr }

func (s *namedStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
}

// namedAddr is a host:port whose host is a DNS name.
type namedAddr string

func (a namedAddr) Network() string { return "tcp" }
func (a namedAddr) String() string  { return string(a) }
