package agent_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebbflow/ebbflow/agent"
	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// errorLog keeps the messages of the error records logged to it.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelError }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

func (l *errorLog) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// Against a secure controller group: the agent joins with a one-time token created through
// the AccessService, runs on its certificate, renews it, and carries on with the new one on the
// same connection, without a restart; once its identity is revoked, renewals are refused and
// reported as errors.
func TestJoinAndRenewWithTheController(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	nodes := controllertest.StartSecureCluster(t, 3, sec, func(c *controller.Config) {
		c.AgentCertTTL = 2 * time.Minute
		c.HeartbeatInterval = 200 * time.Millisecond
	})
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Join, through whichever node the connection picks (a follower forwards to the leader).
	dir := filepath.Join(t.TempDir(), "identity")
	tok := sec.JoinToken(t, nodes[0].URL, "edge-1")
	id, err := agent.Join(ctx, dir, urls, sec.CA.CertPEM, tok)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := pki.IdentityOf(id.Certificate())
	if err != nil || ident.Kind != pki.KindAgent || ident.Name != "edge-1" || id.Cluster() != "edge-1" || ident.Epoch == 0 {
		t.Fatalf("joined as %v (%v)", ident, err)
	}
	if got := id.Certificate().NotAfter.Sub(id.Certificate().NotBefore); got > 4*time.Minute {
		t.Fatalf("certificate lifetime %v, want the controller's AgentCertTTL", got)
	}

	// The token is used up: a second join is refused, at once.
	start := time.Now()
	_, err = agent.Join(ctx, t.TempDir(), urls, sec.CA.CertPEM, tok)
	if c := status.Code(err); c != codes.Unauthenticated && c != codes.FailedPrecondition {
		t.Fatalf("second join with the same token: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("a used token was retried for %s", time.Since(start))
	}

	// Run the agent loop over the identity's TLS config, watching which certificate each
	// handshake presents.
	cfg := id.TLSConfig()
	var presented atomic.Pointer[big.Int]
	current := cfg.GetClientCertificate
	cfg.GetClientCertificate = func(i *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c, err := current(i)
		if err == nil {
			presented.Store(c.Leaf.SerialNumber)
		}
		return c, err
	}
	conn, client, err := agent.Dial(urls, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var received atomic.Int32
	loop := agent.New(agent.Config{
		Cluster: "edge-1", Version: "test", Client: client, Logger: controllertest.Logger(t), MaxBackoff: 200 * time.Millisecond,
		OnAssignment: func(context.Context, *ebbflowv1.Assignment) { received.Add(1) },
	})
	lctx, lcancel := context.WithCancel(ctx)
	loopDone := make(chan error, 1)
	go func() { loopDone <- loop.Run(lctx) }()
	defer func() {
		lcancel()
		if err := <-loopDone; err != nil {
			t.Errorf("loop: %v", err)
		}
	}()
	controllertest.Eventually(t, 20*time.Second, "the first assignment", func() bool { return received.Load() >= 1 })
	first := id.Certificate()
	if p := presented.Load(); p == nil || p.Cmp(first.SerialNumber) != 0 {
		t.Fatal("the connection did not present the joined certificate")
	}

	// Renewal: the agent's clock is moved to when two thirds of the lifetime have passed
	// (the controller's clock is not: the certificate it issues is valid from now).
	var skew atomic.Int64
	errs := &errorLog{}
	rotated := make(chan struct{}, 4)
	rctx, rcancel := context.WithCancel(ctx)
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		id.RunRenewalWith(rctx, agent.Renewal{
			Client: client, Logger: slog.New(errs),
			Now:        func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
			MaxWait:    20 * time.Millisecond,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			OnRotate: func() {
				skew.Store(0)
				conn.ResetConnections()
				rotated <- struct{}{}
			},
		})
	}()
	defer func() { rcancel(); <-renewDone }()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-rotated:
		t.Fatal("renewed long before it was due")
	default:
	}
	due := first.NotBefore.Add(first.NotAfter.Sub(first.NotBefore) * 2 / 3)
	skew.Store(int64(time.Until(due) + time.Second))
	select {
	case <-rotated:
	case <-time.After(20 * time.Second):
		t.Fatal("no renewal when due")
	}
	second := id.Certificate()
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the serial did not change")
	}
	if ident2, err := pki.IdentityOf(second); err != nil || ident2 != ident {
		t.Fatalf("renewed as %v, joined as %v (%v)", ident2, ident, err)
	}
	stored, err := agent.LoadIdentity(dir)
	if err != nil || stored.Certificate().SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("the renewed certificate is not the stored one: %v", err)
	}

	// The same connection and loop carry on with the new certificate: the stream comes back
	// (the assignment is sent again), and calls succeed.
	before := received.Load()
	controllertest.Eventually(t, 20*time.Second, "the assignment over the new certificate", func() bool {
		return received.Load() > before
	})
	if p := presented.Load(); p.Cmp(second.SerialNumber) != 0 {
		t.Fatal("the connection still presents the old certificate")
	}
	who, err := ebbflowv1.NewAccessServiceClient(conn).WhoAmI(ctx, &ebbflowv1.WhoAmIRequest{})
	if err != nil || who.GetKind() != ebbflowv1.IdentityKind_IDENTITY_KIND_AGENT || who.GetName() != "edge-1" || who.GetMethod() != "certificate" {
		t.Fatalf("WhoAmI with the renewed certificate: %v %v", who, err)
	}
	if _, err := client.Heartbeat(ctx, &ebbflowv1.HeartbeatRequest{Cluster: "edge-1"}); err != nil {
		t.Fatalf("heartbeat with the renewed certificate: %v", err)
	}
	if p := presented.Load(); p.Cmp(second.SerialNumber) != 0 {
		t.Fatal("a handshake presented the old certificate")
	}

	// Revoked: the controller refuses to renew, and the agent says so as an error.
	access := ebbflowv1connect.NewAccessServiceClient(sec.Client(nil), nodes[0].URL, sec.Bearer("admin"))
	if _, err := access.RevokeClusterIdentity(ctx, connect.NewRequest(&ebbflowv1.RevokeClusterIdentityRequest{Cluster: "edge-1"})); err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(time.Until(second.NotBefore.Add(second.NotAfter.Sub(second.NotBefore)*2/3)) + time.Second))
	controllertest.Eventually(t, 20*time.Second, "an error about the refused renewal", func() bool {
		return errs.has("refused to renew")
	})
	if id.Certificate().SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatal("a refused renewal changed the certificate")
	}
}
