package store

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// newTransport is Raft's TCP transport on bind, over mutual TLS when tlsConfig is set. An
// advertise address whose host is a DNS name (a StatefulSet pod's stable name) is advertised
// as that name and resolved at every dial, so the node keeps its Raft address when its IP
// changes; an IP address is advertised as is.
func newTransport(bind, advertise string, tlsConfig *tls.Config, logger hclog.Logger) (*raft.NetworkTransport, error) {
	host, _, err := net.SplitHostPort(advertise)
	named := advertise != "" && err == nil && net.ParseIP(host) == nil
	if !named && tlsConfig == nil {
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
	addr := ln.Addr()
	switch {
	case named:
		addr = namedAddr(advertise)
	case advertise != "":
		if addr, err = net.ResolveTCPAddr("tcp", advertise); err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	stream := &stream{Listener: ln, addr: addr, tls: tlsConfig}
	if tlsConfig != nil {
		stream.Listener = tls.NewListener(ln, tlsConfig)
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger,
	}), nil
}

// stream is a raft.StreamLayer on a TCP listener that advertises addr, and speaks TLS when tls
// is set.
type stream struct {
	net.Listener
	addr net.Addr
	tls  *tls.Config
}

func (s *stream) Addr() net.Addr { return s.addr }

func (s *stream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.tls == nil {
		return d.Dial("tcp", string(address))
	}
	return tls.DialWithDialer(d, "tcp", string(address), s.tls)
}

// namedAddr is a host:port whose host is a DNS name.
type namedAddr string

func (a namedAddr) Network() string { return "tcp" }
func (a namedAddr) String() string  { return string(a) }
