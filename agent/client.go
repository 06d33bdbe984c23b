package agent

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Dial opens a gRPC connection to a controller URL (http://host:port for h2c, https:// for
// TLS) with keepalive and exponential reconnect backoff. The connection is lazy: it dials on
// first use and redials by itself after a failure.
func Dial(controllerURL string, tlsConfig *tls.Config) (*grpc.ClientConn, ebbflowv1.AgentServiceClient, error) {
	u, err := url.Parse(controllerURL)
	if err != nil || u.Host == "" {
		return nil, nil, fmt.Errorf("controller URL %q: want http://host:port or https://host:port", controllerURL)
	}
	var creds credentials.TransportCredentials
	switch u.Scheme {
	case "http":
		creds = insecure.NewCredentials()
	case "https":
		if tlsConfig == nil {
			tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		creds = credentials.NewTLS(tlsConfig)
	default:
		return nil, nil, fmt.Errorf("controller URL %q: scheme must be http or https", controllerURL)
	}
	conn, err := grpc.NewClient("passthrough:///"+u.Host,
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
