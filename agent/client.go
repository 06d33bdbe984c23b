package agent

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
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

// Dial opens one gRPC connection to a controller group: controllerURLs are its nodes
// (http://host:port for h2c, https:// for TLS; all with one scheme). The connection picks one
// node (in shuffled order, so a fleet spreads over the group), and when that node goes away it
// moves to the next by itself; any node serves the assignment stream and forwards writes to
// the leader. It has keepalive and exponential reconnect backoff, and is lazy: it dials on
// first use.
func Dial(controllerURLs []string, tlsConfig *tls.Config) (*grpc.ClientConn, ebbflowv1.AgentServiceClient, error) {
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
		endpoints = append(endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: u.Host}}})
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
	r := manual.NewBuilderWithScheme("ebbflow-controllers")
	r.InitialState(resolver.State{Endpoints: endpoints})
	conn, err := grpc.NewClient(r.Scheme()+":///controllers",
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": true}}]}`),
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: false}),
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
	return conn, ebbflowv1.NewAgentServiceClient(conn), nil
}
