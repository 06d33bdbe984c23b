package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// ParseControllers splits a comma-separated list of controller URLs (every node of the Raft
// group, or a load balancer in front of them) and checks that they share one scheme.
func ParseControllers(s string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no controller URL in %q", s)
	}
	return out, nil
}

// Conn is the agent's gRPC connection to the controller group. It records the network
// connections it opens, so ResetConnections can make it handshake again (with a rotated client
// certificate, say) without being rebuilt.
type Conn struct {
	*grpc.ClientConn
	tracker *connTracker
}

// ResetConnections closes every network connection the Conn has open, and returns how many it
// closed. Calls in flight on them fail with Unavailable (the agent loop retries them); the
// connection reconnects by itself, with a fresh TLS handshake. It waits (a second at most)
// for gRPC to notice, so a call made after it returns goes over a new connection.
func (c *Conn) ResetConnections() int {
	n := c.tracker.closeAll()
	if n > 0 && c.GetState() == connectivity.Ready {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c.WaitForStateChange(ctx, connectivity.Ready)
		cancel()
	}
	return n
}

// Dial opens one gRPC connection to a controller group: controllerURLs are its nodes
// (http://host:port for h2c, https:// for TLS; all with one scheme). The connection picks one
// node (in shuffled order, so a fleet spreads over the group), and when that node goes away it
// moves to the next by itself; any node serves the assignment stream and forwards writes to
// the leader. It has keepalive and exponential reconnect backoff, and is lazy: it dials on
// first use. tlsConfig is used for https:// (an Identity's TLSConfig, for the agent); each
// node's certificate is verified for the host name of its URL unless tlsConfig sets ServerName.
func Dial(controllerURLs []string, tlsConfig *tls.Config) (*Conn, ebbflowv1.AgentServiceClient, error) {
	if len(controllerURLs) == 0 {
		return nil, nil, fmt.Errorf("no controller URL")
	}
	var scheme string
	var endpoints []resolver.Endpoint
	for _, raw := range controllerURLs {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, nil, fmt.Errorf("controller URL %q: want http://host:port or https://host:port", raw)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, nil, fmt.Errorf("controller URL %q: scheme must be http or https", raw)
		}
		if scheme != "" && u.Scheme != scheme {
			return nil, nil, fmt.Errorf("controller URL %q: every controller URL must use %s", raw, scheme)
		}
		scheme = u.Scheme
		// ServerName is the name the node's certificate is checked against (the channel's
		// authority would be the resolver's made-up "controllers").
		endpoints = append(endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: u.Host, ServerName: u.Hostname()}}})
	}
	var creds credentials.TransportCredentials
	if scheme == "http" {
		creds = insecure.NewCredentials()
	} else {
		if tlsConfig == nil {
			tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		creds = credentials.NewTLS(tlsConfig)
	}
	tracker := &connTracker{conns: map[*trackedConn]struct{}{}}
	r := manual.NewBuilderWithScheme("ebbflow-controllers")
	r.InitialState(resolver.State{Endpoints: endpoints})
	conn, err := grpc.NewClient(r.Scheme()+":///controllers",
		grpc.WithResolvers(r),
		grpc.WithContextDialer(tracker.dial),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": true}}]}`),
		grpc.WithTransportCredentials(creds),
		// A ping every 20 s while a stream is open: the controller counts the open assignment
		// stream as this agent's liveness, and the pings keep both ends sure of it (see
		// controller.HTTP2Config).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: false}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 15 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
	)
	if err != nil {
		return nil, nil, err
	}
	return &Conn{ClientConn: conn, tracker: tracker}, ebbflowv1.NewAgentServiceClient(conn), nil
}

// connTracker dials TCP for gRPC and remembers the connections that are still open.
type connTracker struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func (t *connTracker) dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, tracker: t}
	t.mu.Lock()
	t.conns[tc] = struct{}{}
	t.mu.Unlock()
	return tc, nil
}

func (t *connTracker) closeAll() int {
	t.mu.Lock()
	conns := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// trackedConn leaves its tracker when closed, by gRPC or by closeAll.
type trackedConn struct {
	net.Conn
	tracker *connTracker
	once    sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.tracker.mu.Lock()
		delete(c.tracker.conns, c)
		c.tracker.mu.Unlock()
	})
	return c.Conn.Close()
}
