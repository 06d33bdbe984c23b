package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// testCA is a CA in a temporary directory.
func testCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, _, err := pki.LoadOrCreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue makes an agent key and certificate of cluster (epoch 1) valid for ttl from now.
func issue(t *testing.T, ca *pki.CA, cluster string, ttl time.Duration, now time.Time) material {
	t.Helper()
	key, csr, err := pki.NewKeyAndCSR(cluster)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueFromCSR(csr, pki.Identity{Kind: pki.KindAgent, Name: cluster, Epoch: 1}, ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	return material{key: key, cert: cert, ca: ca.CertPEM}
}

func serialOf(t *testing.T, certPEM []byte) *big.Int {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestIdentityStoreLoadRoundTrip(t *testing.T) {
	ca := testCA(t)
	dir := filepath.Join(t.TempDir(), "identity")
	if _, err := LoadIdentity(dir); err != ErrNoIdentity {
		t.Fatalf("missing directory: %v, want ErrNoIdentity", err)
	}
	m := issue(t, ca, "edge-1", time.Hour, time.Now())
	if err := store(dir, m); err != nil {
		t.Fatal(err)
	}
	if got := mode(t, dir); got != 0o700 {
		t.Errorf("directory mode %v, want 0700", got)
	}
	if got := mode(t, filepath.Join(dir, KeyFile)); got != 0o600 {
		t.Errorf("key mode %v, want 0600", got)
	}
	if names := strings.Join(listDir(t, dir), " "); names != "ca.crt tls.crt tls.key" {
		t.Errorf("directory holds %s, want only the three files", names)
	}
	id, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id.Cluster() != "edge-1" || id.Epoch() != 1 {
		t.Fatalf("loaded %q epoch %d", id.Cluster(), id.Epoch())
	}
	if id.Certificate().SerialNumber.Cmp(serialOf(t, m.cert)) != 0 {
		t.Fatal("loaded another certificate")
	}
	if want := id.Certificate().NotAfter; !id.NotAfter().Equal(want) || time.Until(want) < 50*time.Minute {
		t.Fatalf("NotAfter %v", id.NotAfter())
	}
	// An empty directory holds no identity.
	if _, err := LoadIdentity(t.TempDir()); err != ErrNoIdentity {
		t.Fatalf("empty directory: %v, want ErrNoIdentity", err)
	}
}

// Whatever point a crash interrupts a store at, the next load finds a matching key and
// certificate: the old pair or the new one, never a mix.
func TestIdentityCrashSafety(t *testing.T) {
	ca := testCA(t)
	setup := func(t *testing.T) (dir string, old, next material) {
		dir = t.TempDir()
		old = issue(t, ca, "edge-1", time.Hour, time.Now())
		next = issue(t, ca, "edge-1", time.Hour, time.Now())
		if err := store(dir, old); err != nil {
			t.Fatal(err)
		}
		return dir, old, next
	}
	loads := func(t *testing.T, dir string, want material) {
		t.Helper()
		id, err := LoadIdentity(dir)
		if err != nil {
			t.Fatal(err)
		}
		if id.Certificate().SerialNumber.Cmp(serialOf(t, want.cert)) != 0 {
			t.Fatal("loaded the wrong certificate")
		}
		if names := strings.Join(listDir(t, dir), " "); names != "ca.crt tls.crt tls.key" {
			t.Fatalf("after the load the directory holds %s", names)
		}
		if got := mode(t, filepath.Join(dir, KeyFile)); got != 0o600 {
			t.Errorf("key mode %v, want 0600", got)
		}
		// And it loads again, the same.
		if id2, err := LoadIdentity(dir); err != nil || id2.Certificate().SerialNumber.Cmp(id.Certificate().SerialNumber) != 0 {
			t.Fatalf("second load: %v", err)
		}
	}
	// writeJournal does what store does before it touches the three files.
	writeJournal := func(t *testing.T, dir string, m material) {
		t.Helper()
		var j bytes.Buffer
		for _, f := range m.files() {
			for rest := f.data; ; {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				_ = pem.Encode(&j, &pem.Block{Type: b.Type, Headers: map[string]string{fileHeader: f.name}, Bytes: b.Bytes})
			}
		}
		if err := writeAtomic(dir, pendingFile, j.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("leftover temporary file", func(t *testing.T) {
		dir, old, next := setup(t)
		// A crash mid-write leaves a partial temporary file; the real files are untouched.
		if err := os.WriteFile(filepath.Join(dir, ".tls.key.tmp-123"), next.key[:20], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".pending.pem.tmp-9"), []byte("-----BEGIN"), 0o600); err != nil {
			t.Fatal(err)
		}
		loads(t, dir, old)
	})
	t.Run("journal written, no file replaced", func(t *testing.T) {
		dir, _, next := setup(t)
		writeJournal(t, dir, next)
		loads(t, dir, next)
	})
	t.Run("journal written, key replaced, certificate not", func(t *testing.T) {
		dir, _, next := setup(t)
		writeJournal(t, dir, next)
		if err := writeAtomic(dir, KeyFile, next.key, 0o600); err != nil {
			t.Fatal(err)
		}
		loads(t, dir, next)
	})
	t.Run("journal left after every file was replaced", func(t *testing.T) {
		dir, _, next := setup(t)
		writeJournal(t, dir, next)
		for _, f := range next.files() {
			if err := writeAtomic(dir, f.name, f.data, f.perm); err != nil {
				t.Fatal(err)
			}
		}
		loads(t, dir, next)
	})
	t.Run("unusable journal", func(t *testing.T) {
		dir, old, next := setup(t)
		mixed := material{key: next.key, cert: old.cert, ca: old.ca}
		writeJournal(t, dir, mixed)
		loads(t, dir, old)
	})
	t.Run("mismatched pair", func(t *testing.T) {
		dir, _, next := setup(t)
		// The key of one pair with the certificate of another, and no journal to repair it.
		if err := writeAtomic(dir, KeyFile, next.key, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadIdentity(dir)
		var d *DiscardedError
		if !errors.As(err, &d) || !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "private key does not match public key") {
			t.Fatalf("load: %v, want a DiscardedError for the mismatch", err)
		}
		if names := strings.Join(listDir(t, dir), " "); names != "ca.crt.discarded tls.crt.discarded tls.key.discarded" {
			t.Fatalf("the pair was not moved aside: %s", names)
		}
		if _, err := LoadIdentity(dir); err != ErrNoIdentity {
			t.Fatalf("after discarding: %v, want ErrNoIdentity", err)
		}
	})
	t.Run("missing certificate", func(t *testing.T) {
		dir, _, _ := setup(t)
		if err := os.Remove(filepath.Join(dir, CertFile)); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadIdentity(dir); !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "tls.crt missing") {
			t.Fatalf("load: %v", err)
		}
	})
	t.Run("not an agent's certificate", func(t *testing.T) {
		dir := t.TempDir()
		cert, key, err := ca.IssuePerson("alice", pki.RoleAdmin, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := store(dir, material{key: key, cert: cert, ca: ca.CertPEM}); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadIdentity(dir); !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "not an agent") {
			t.Fatalf("load: %v", err)
		}
	})
	t.Run("signed by another CA", func(t *testing.T) {
		dir := t.TempDir()
		m := issue(t, testCA(t), "edge-1", time.Hour, time.Now())
		m.ca = ca.CertPEM
		if err := store(dir, m); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadIdentity(dir); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("load: %v", err)
		}
	})
	t.Run("expired certificate still loads", func(t *testing.T) {
		dir := t.TempDir()
		m := issue(t, ca, "edge-1", time.Second, time.Now().Add(-2*time.Second))
		if err := store(dir, m); err != nil {
			t.Fatal(err)
		}
		id, err := LoadIdentity(dir)
		if err != nil || !id.NotAfter().Before(time.Now()) {
			t.Fatalf("load: %v", err)
		}
	})
}

// The TLS config presents whichever certificate is current at each handshake.
func TestTLSConfigPresentsTheCurrentCertificate(t *testing.T) {
	ca := testCA(t)
	node, err := ca.IssueNode("n1", []string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{node}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serials := make(chan *big.Int, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err == nil {
				serials <- tc.ConnectionState().PeerCertificates[0].SerialNumber
			} else {
				serials <- nil
			}
			_, _ = io.Copy(io.Discard, tc)
			_ = tc.Close()
		}
	}()

	dir := t.TempDir()
	first := issue(t, ca, "edge-1", time.Hour, time.Now())
	if err := store(dir, first); err != nil {
		t.Fatal(err)
	}
	id, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := id.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 || cfg.RootCAs == nil || len(cfg.Certificates) != 0 {
		t.Fatalf("config %+v", cfg)
	}
	handshake := func() *big.Int {
		t.Helper()
		c := cfg.Clone()
		c.ServerName = "127.0.0.1"
		conn, err := tls.Dial("tcp", ln.Addr().String(), c)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.Handshake(); err != nil {
			t.Fatal(err)
		}
		// The server reports the client certificate it verified.
		select {
		case s := <-serials:
			if s == nil {
				t.Fatal("the server refused the client certificate")
			}
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no handshake on the server")
			return nil
		}
	}
	if s := handshake(); s.Cmp(serialOf(t, first.cert)) != 0 {
		t.Fatalf("first handshake presented %v", s)
	}
	next := issue(t, ca, "edge-1", time.Hour, time.Now())
	c, err := parseMaterial(next, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id.swap(c, next.ca)
	// The same config (as a gRPC connection holds it) now presents the new certificate.
	if s := handshake(); s.Cmp(serialOf(t, next.cert)) != 0 {
		t.Fatalf("after the swap the handshake presented %v", s)
	}
}

// fakeClock is a settable clock whose timers fire when it is set past them.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeTimer
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(chan time.Time, 1)
	if d <= 0 {
		c <- f.now
		return c
	}
	f.waiters = append(f.waiters, fakeTimer{at: f.now.Add(d), c: c})
	return c
}

func (f *fakeClock) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(t) {
			kept = append(kept, w)
		} else {
			w.c <- t
		}
	}
	f.waiters = kept
}

// waitingUntil is the deadline of the earliest pending timer (zero when none).
func (f *fakeClock) waitingUntil() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var first time.Time
	for _, w := range f.waiters {
		if first.IsZero() || w.at.Before(first) {
			first = w.at
		}
	}
	return first
}

// fakeController serves the agent service over TLS with a pki CA: join tokens, renewals,
// heartbeats; it records the client certificate each call came with.
type fakeController struct {
	ebbflowv1.UnimplementedAgentServiceServer
	ca    *pki.CA
	addr  string
	clock func() time.Time
	ttl   time.Duration

	mu          sync.Mutex
	tokens      map[string]string // token -> cluster, until used
	joinFails   int               // JoinCluster calls still to fail with Unavailable
	renewErr    error             // RenewCertificate fails with it while set
	renewals    int
	lastSerial  *big.Int // client certificate of the last Heartbeat
	wrongKeyFor bool     // JoinCluster certifies a key other than the request's
}

func startFakeController(t *testing.T, clock func() time.Time) *fakeController {
	t.Helper()
	ca := testCA(t)
	node, err := ca.IssueNode("n1", []string{"127.0.0.1"}, 48*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if clock == nil {
		clock = time.Now
	}
	f := &fakeController{ca: ca, clock: clock, ttl: time.Hour, tokens: map[string]string{}}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{node}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool(),
		Time: clock, MinVersion: tls.VersionTLS12,
	})))
	ebbflowv1.RegisterAgentServiceServer(srv, f)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return f
}

func (f *fakeController) url() string { return "https://" + f.addr }

func (f *fakeController) token(t *testing.T, cluster string) string {
	t.Helper()
	id, secret, err := pki.NewJoinToken()
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[id+"."+secret] = cluster
	return id + "." + secret
}

func peerIdentity(ctx context.Context) (*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no client certificate")
	}
	return ti.State.PeerCertificates[0], nil
}

func (f *fakeController) JoinCluster(ctx context.Context, req *ebbflowv1.JoinClusterRequest) (*ebbflowv1.JoinClusterResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.joinFails > 0 {
		f.joinFails--
		return nil, status.Error(codes.Unavailable, "no leader")
	}
	cluster, ok := f.tokens[req.GetToken()]
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "join token unknown or already used")
	}
	delete(f.tokens, req.GetToken())
	csr := []byte(req.GetCsrPem())
	if f.wrongKeyFor {
		_, other, err := pki.NewKeyAndCSR("x")
		if err != nil {
			return nil, err
		}
		csr = other
	}
	cert, err := f.ca.IssueFromCSR(csr, pki.Identity{Kind: pki.KindAgent, Name: cluster, Epoch: 1}, f.ttl, f.clock())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &ebbflowv1.JoinClusterResponse{Cluster: cluster, CertificatePem: string(cert), CaPem: string(f.ca.CertPEM)}, nil
}

func (f *fakeController) RenewCertificate(ctx context.Context, req *ebbflowv1.RenewCertificateRequest) (*ebbflowv1.RenewCertificateResponse, error) {
	c, err := peerIdentity(ctx)
	if err != nil {
		return nil, err
	}
	ident, err := pki.IdentityOf(c)
	if err != nil || ident.Kind != pki.KindAgent {
		return nil, status.Error(codes.PermissionDenied, "not an agent")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.renewErr != nil {
		return nil, f.renewErr
	}
	cert, err := f.ca.IssueFromCSR([]byte(req.GetCsrPem()), ident, f.ttl, f.clock())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	f.renewals++
	return &ebbflowv1.RenewCertificateResponse{CertificatePem: string(cert), CaPem: string(f.ca.CertPEM)}, nil
}

func (f *fakeController) Heartbeat(ctx context.Context, req *ebbflowv1.HeartbeatRequest) (*ebbflowv1.HeartbeatResponse, error) {
	c, err := peerIdentity(ctx)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.lastSerial = c.SerialNumber
	f.mu.Unlock()
	return &ebbflowv1.HeartbeatResponse{}, nil
}

func (f *fakeController) renewalCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renewals
}

func (f *fakeController) heartbeatSerial(t *testing.T, client ebbflowv1.AgentServiceClient) *big.Int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Heartbeat(ctx, &ebbflowv1.HeartbeatRequest{Cluster: "edge-1"}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastSerial
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJoinOverTLS(t *testing.T) {
	f := startFakeController(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "id")

	// The controllers are unavailable twice (no leader yet): Join waits them out.
	f.mu.Lock()
	f.joinFails = 2
	f.mu.Unlock()
	tok := f.token(t, "edge-1")
	id, err := Join(ctx, dir, []string{f.url()}, f.ca.CertPEM, tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.Cluster() != "edge-1" || id.Epoch() != 1 {
		t.Fatalf("joined as %q epoch %d", id.Cluster(), id.Epoch())
	}
	loaded, err := LoadIdentity(dir)
	if err != nil || loaded.Certificate().SerialNumber.Cmp(id.Certificate().SerialNumber) != 0 {
		t.Fatalf("stored identity: %v", err)
	}
	if got := mode(t, filepath.Join(dir, KeyFile)); got != 0o600 {
		t.Errorf("key mode %v", got)
	}

	// The token was used: a second join is refused at once, with the controller's message.
	start := time.Now()
	_, err = Join(ctx, t.TempDir(), []string{f.url()}, f.ca.CertPEM, tok)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second join: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("a refused token was retried for %s", time.Since(start))
	}

	// A malformed token never reaches the controllers.
	if _, err := Join(ctx, t.TempDir(), []string{f.url()}, f.ca.CertPEM, "nope"); err == nil || !strings.Contains(err.Error(), "join token") {
		t.Fatalf("malformed token: %v", err)
	}

	// A certificate for another key is refused, and nothing is stored.
	f.mu.Lock()
	f.wrongKeyFor = true
	f.mu.Unlock()
	bad := t.TempDir()
	if _, err := Join(ctx, bad, []string{f.url()}, f.ca.CertPEM, f.token(t, "edge-2")); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("certificate for another key: %v", err)
	}
	if _, err := LoadIdentity(bad); err != ErrNoIdentity {
		t.Fatalf("after a refused certificate: %v", err)
	}

	// Controllers that the given CA does not vouch for are never trusted: Join keeps trying
	// until its context ends.
	f.mu.Lock()
	f.wrongKeyFor = false
	f.mu.Unlock()
	sctx, scancel := context.WithTimeout(ctx, time.Second)
	defer scancel()
	if _, err := Join(sctx, t.TempDir(), []string{f.url()}, testCA(t).CertPEM, f.token(t, "edge-3")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("untrusted controllers: %v", err)
	}
}

// logRecords collects log records for the test to inspect.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

func (l *logRecords) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.Level >= slog.LevelError {
			out = append(out, r.Message)
		}
	}
	return out
}

// RunRenewal renews at two thirds of the lifetime, the connection moves to the new
// certificate without being rebuilt, failures are retried with backoff and reported as
// errors once the certificate is about to expire.
func TestRunRenewal(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	f := startFakeController(t, clock.Now)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	id, err := Join(ctx, dir, []string{f.url()}, f.ca.CertPEM, f.token(t, "edge-1"))
	if err != nil {
		t.Fatal(err)
	}
	conn, client, err := Dial([]string{f.url()}, id.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first := id.Certificate()
	if s := f.heartbeatSerial(t, client); s.Cmp(first.SerialNumber) != 0 {
		t.Fatal("the connection did not present the joined certificate")
	}

	logs := &logRecords{}
	rotated := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		id.RunRenewalWith(ctx, Renewal{
			Client: client, Logger: slog.New(logs), Now: clock.Now, After: clock.After,
			MinBackoff: time.Second, MaxBackoff: time.Minute, MaxWait: 10 * time.Minute,
			OnRotate: func() { conn.ResetConnections(); rotated <- struct{}{} },
		})
	}()
	defer func() { cancel(); <-done }()

	// Lifetime is 61 minutes (the CA backdates by one): renewal is due 40m40s after NotBefore.
	due := first.NotBefore.Add(first.NotAfter.Sub(first.NotBefore) * 2 / 3)
	eventually(t, "the first sleep", func() bool { return !clock.waitingUntil().IsZero() })
	if w := clock.waitingUntil(); w.After(due) || w.Before(clock.Now().Add(10*time.Minute-time.Second)) {
		t.Fatalf("sleeping until %v; renewal due %v", w, due)
	}
	// Step up to just before it is due: no renewal.
	for clock.waitingUntil().Before(due) {
		clock.Set(clock.waitingUntil())
		eventually(t, "the next sleep", func() bool { return !clock.waitingUntil().IsZero() })
	}
	if !clock.waitingUntil().Equal(due) {
		t.Fatalf("sleeping until %v, want %v", clock.waitingUntil(), due)
	}
	if f.renewalCount() != 0 {
		t.Fatal("renewed early")
	}
	clock.Set(due)
	select {
	case <-rotated:
	case <-time.After(10 * time.Second):
		t.Fatal("no renewal when due")
	}
	second := id.Certificate()
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 || id.Cluster() != "edge-1" {
		t.Fatal("the certificate did not change")
	}
	stored, err := LoadIdentity(dir)
	if err != nil || stored.Certificate().SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("the renewed certificate was not stored: %v", err)
	}
	// The same connection, reset, now presents the new certificate.
	if s := f.heartbeatSerial(t, client); s.Cmp(second.SerialNumber) != 0 {
		t.Fatal("the connection still presents the old certificate")
	}

	// The controller fails renewals: retried with backoff from 1s, doubling, capped at 1m.
	f.mu.Lock()
	f.renewErr = status.Error(codes.Unavailable, "no leader")
	f.mu.Unlock()
	due = second.NotBefore.Add(second.NotAfter.Sub(second.NotBefore) * 2 / 3)
	for {
		eventually(t, "a sleep", func() bool { return !clock.waitingUntil().IsZero() })
		w := clock.waitingUntil()
		clock.Set(w)
		if !w.Before(due) {
			break
		}
	}
	for i := range 12 {
		eventually(t, "a retry", func() bool { return !clock.waitingUntil().IsZero() })
		d := clock.waitingUntil().Sub(clock.Now())
		want := min(time.Second<<i, time.Minute)
		if d < want*4/5 || d > want*6/5 {
			t.Fatalf("retry %d after %v, want about %v", i, d, want)
		}
		clock.Set(clock.waitingUntil())
	}
	if errs := logs.errors(); len(errs) != 0 {
		t.Fatalf("errors logged while the certificate is far from expiry: %v", errs)
	}
	// Past expiry every failure is an error.
	clock.Set(second.NotAfter.Add(time.Second))
	eventually(t, "an error about the expiry", func() bool {
		for _, e := range logs.errors() {
			if strings.Contains(e, "expired") {
				return true
			}
		}
		return false
	})
}
