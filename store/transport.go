package store

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// newTransport is Raft's TCP transport on bind, over mutual TLS when tlsConfig is set. An
// advertise address whose host is a DNS name (a StatefulSet pod's stable name) is advertised
// as that name and resolved at every dial, so the node keeps its Raft address when its IP
// changes; an IP address is advertised as is. The stream it returns reports when a
// connection a peer opened to this node ends (stream.ended), which is how a follower learns
// at once that its leader's process has gone (leaderloss.go).
func newTransport(bind, advertise string, tlsConfig *tls.Config, logger hclog.Logger) (*raft.NetworkTransport, *stream, error) {
	host, _, err := net.SplitHostPort(advertise)
	named := advertise != "" && err == nil && net.ParseIP(host) == nil
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, nil, err
	}
	addr := ln.Addr()
	switch {
	case named:
		addr = namedAddr(advertise)
	case advertise != "":
		if addr, err = net.ResolveTCPAddr("tcp", advertise); err != nil {
			_ = ln.Close()
			return nil, nil, err
		}
	}
	s := &stream{Listener: ln, addr: addr, tls: tlsConfig, ended: make(chan struct{}, 1), conns: map[net.Conn]struct{}{}}
	if tlsConfig != nil {
		s.Listener = tls.NewListener(ln, tlsConfig)
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: s, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger,
	}), s, nil
}

// stream is a raft.StreamLayer on a TCP listener that advertises addr, and speaks TLS when tls
// is set. It keeps every connection it opened or accepted, so that closing it (the node
// stopping) closes them all and peers learn at once, and it signals ended (without
// blocking; one pending signal stands for any number) when an accepted connection fails or
// its peer closes it.
type stream struct {
	net.Listener
	addr  net.Addr
	tls   *tls.Config
	ended chan struct{}

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (s *stream) Addr() net.Addr { return s.addr }

func (s *stream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	var (
		c   net.Conn
		err error
	)
	if s.tls == nil {
		c, err = d.Dial("tcp", string(address))
	} else {
		c, err = tls.DialWithDialer(d, "tcp", string(address), s.tls)
	}
	if err != nil {
		return nil, err
	}
	return s.track(c, false)
}

func (s *stream) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c, true)
}

// Close stops accepting and closes every connection the stream holds.
func (s *stream) Close() error {
	err := s.Listener.Close()
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[net.Conn]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
	return err
}

func (s *stream) track(c net.Conn, accepted bool) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, s: s, accepted: accepted}
	s.conns[tc] = struct{}{}
	return tc, nil
}

func (s *stream) forget(c *trackedConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// trackedConn is a connection the stream holds until it is closed.
type trackedConn struct {
	net.Conn
	s        *stream
	accepted bool
	once     sync.Once
}

// Read signals the stream's ended channel the first time a read of an accepted connection
// fails: its peer closed it, or it broke.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.accepted {
		c.once.Do(func() {
			select {
			case c.s.ended <- struct{}{}:
			default:
			}
		})
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.s.forget(c)
	return c.Conn.Close()
}

// namedAddr is a host:port whose host is a DNS name.
type namedAddr string

func (a namedAddr) Network() string { return "tcp" }
func (a namedAddr) String() string  { return string(a) }
