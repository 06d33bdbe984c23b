package controllertest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// Security turns authentication on for the nodes started with it (Options.Security): the
// group's CA in a temporary directory, a bearer token for one person of each role, TLS on the
// API with optional client certificates, and mutual TLS on Raft and between nodes.
type Security struct {
	CA *pki.CA
	// Tokens maps each role ("viewer", "operator", "admin") to the bearer token of a person
	// named after it.
	Tokens map[string]string
	// JWT, when set, makes every node also accept JWTs of that issuer.
	JWT *controller.JWTConfig
}

// NewSecurity creates a CA and the three tokens.
func NewSecurity(t testing.TB) *Security {
	t.Helper()
	ca, _, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &Security{CA: ca, Tokens: map[string]string{}}
	for _, role := range []string{"viewer", "operator", "admin"} {
		tok, err := pki.NewBearerToken()
		if err != nil {
			t.Fatal(err)
		}
		s.Tokens[role] = tok
	}
	return s
}

func (s *Security) staticTokens() []pki.StaticToken {
	var out []pki.StaticToken
	for role, tok := range s.Tokens {
		out = append(out, pki.StaticToken{Hash: sha256.Sum256([]byte(tok)), Name: role, Role: role})
	}
	return out
}

// configure wires a node: its certificate, Raft's and the API's TLS, and the Verifier.
// nodeTLS issues node id's certificate and returns the TLS configuration its API serves with.
func (s *Security) nodeTLS(t testing.TB, id string) (*pki.NodeCertSource, *tls.Config) {
	t.Helper()
	src, err := pki.NewNodeCertSource(s.CA, id, []string{"127.0.0.1", "localhost"}, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return src, pki.ServerTLS(src, s.CA.Pool())
}

// configure turns authentication on in cfg and makes calls to other nodes present src.
func (s *Security) configure(src *pki.NodeCertSource, cfg *controller.Config, reader controller.Reader) error {
	v, err := controller.NewVerifier(controller.AuthConfig{Identities: reader, Tokens: s.staticTokens(), JWT: s.JWT})
	if err != nil {
		return err
	}
	cfg.Authenticator, cfg.CA = v, s.CA
	cfg.ForwardClient, cfg.ForwardScheme = controller.PeerClient(pki.ClientTLS(src, s.CA.Pool())), "https"
	return nil
}

func (s *Security) client(cfg *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	return &http.Client{Transport: tr}
}

// Client trusts the CA and presents cert when it is not nil.
func (s *Security) Client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: s.CA.Pool()}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return s.client(cfg)
}

// Bearer sends role's token with every call.
func (s *Security) Bearer(role string) connect.ClientOption {
	return connect.WithInterceptors(bearer(s.Tokens[role]))
}

// BearerToken sends tok with every call.
func BearerToken(tok string) connect.ClientOption { return connect.WithInterceptors(bearer(tok)) }

type bearer string

func (b bearer) set(h http.Header) {
	if b != "" {
		h.Set("Authorization", "Bearer "+string(b))
	}
}

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		b.set(req.Header())
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		b.set(conn.RequestHeader())
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// JoinToken has the admin create a join token for cluster.
func (s *Security) JoinToken(t testing.TB, url, cluster string) string {
	t.Helper()
	c := ebbflowv1connect.NewAccessServiceClient(s.Client(nil), url, s.Bearer("admin"))
	res, err := c.CreateJoinToken(context.Background(), connect.NewRequest(&ebbflowv1.CreateJoinTokenRequest{Cluster: cluster}))
	if err != nil {
		t.Fatalf("create join token for %s: %v", cluster, err)
	}
	return res.Msg.GetToken()
}

// Join makes a key, exchanges a new join token for cluster's certificate, and returns the
// key pair an agent of cluster would call with.
func (s *Security) Join(t testing.TB, url, cluster string) tls.Certificate {
	t.Helper()
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(cluster)
	if err != nil {
		t.Fatal(err)
	}
	c := ebbflowv1connect.NewAgentServiceClient(s.Client(nil), url)
	res, err := c.JoinCluster(context.Background(), connect.NewRequest(&ebbflowv1.JoinClusterRequest{
		Token: s.JoinToken(t, url, cluster), CsrPem: string(csrPEM),
	}))
	if err != nil {
		t.Fatalf("join %s: %v", cluster, err)
	}
	kp, err := tls.X509KeyPair([]byte(res.Msg.GetCertificatePem()), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}
