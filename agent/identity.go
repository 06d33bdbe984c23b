package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebbflow/ebbflow/internal/durable"
	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Files of an identity directory.
const (
	// KeyFile is the agent's private key (PKCS#8 PEM, mode 0600).
	KeyFile = "tls.key"
	// CertFile is the agent's client certificate, with any chain the controller sent.
	CertFile = "tls.crt"
	// CAFile holds the CA certificates the agent trusts the controllers with.
	CAFile = "ca.crt"
	// pendingFile is the journal of an identity being stored: key, certificate and CA in one
	// file, renamed into place before the three files are replaced, removed after. Whatever a
	// crash interrupts, the next load finds either the old files or a complete journal to finish.
	pendingFile = "pending.pem"
	// fileHeader names, in the journal, the file each PEM block belongs to.
	fileHeader = "File"
)

// ErrNoIdentity means no identity is stored: the agent must join with a join token.
var ErrNoIdentity = errors.New("no agent identity stored")

// DiscardedError reports a stored identity that LoadIdentity could not use (a key that does
// not match its certificate, a missing or unreadable file): it moved the files aside, with the
// suffix ".discarded", and the agent must join again. It matches ErrNoIdentity.
type DiscardedError struct {
	Dir    string
	Reason string
}

func (e *DiscardedError) Error() string {
	return fmt.Sprintf("discarded the identity stored in %s: %s", e.Dir, e.Reason)
}

// Is makes errors.Is(err, ErrNoIdentity) hold.
func (e *DiscardedError) Is(target error) bool { return target == ErrNoIdentity }

// Identity is the agent's mTLS identity: its key and the client certificate the controller
// issued for its cluster, stored in a directory and swapped when renewed. It is safe for
// concurrent use.
type Identity struct {
	dir string

	mu    sync.RWMutex
	cur   keyPair
	caPEM []byte
}

// keyPair is one parsed, checked key + certificate + CA set.
type keyPair struct {
	cert  tls.Certificate // Leaf set
	id    pki.Identity
	roots *x509.CertPool
}

// material is what the identity directory holds, in PEM.
type material struct {
	key, cert, ca []byte
}

// LoadIdentity loads the identity stored in dir. It returns ErrNoIdentity when there is none,
// and a *DiscardedError (which matches ErrNoIdentity) when the stored one was unusable. It
// finishes a store a crash interrupted, and removes temporary files one left behind. An
// expired certificate is loaded all the same: see NotAfter.
func LoadIdentity(dir string) (*Identity, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoIdentity
	} else if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := removeTemps(dir); err != nil {
		return nil, err
	}
	if err := finishPending(dir); err != nil {
		return nil, err
	}
	var m material
	var missing, present []string
	for _, f := range []struct {
		name string
		data *[]byte
	}{{KeyFile, &m.key}, {CertFile, &m.cert}, {CAFile, &m.ca}} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, f.name)
		case err != nil:
			return nil, fmt.Errorf("identity: %w", err)
		default:
			*f.data = b
			present = append(present, f.name)
		}
	}
	if len(present) == 0 {
		return nil, ErrNoIdentity
	}
	if len(missing) > 0 {
		return nil, discard(dir, present, strings.Join(missing, " and ")+" missing")
	}
	c, err := parseMaterial(m, time.Time{})
	if err != nil {
		return nil, discard(dir, present, err.Error())
	}
	return &Identity{dir: dir, cur: c, caPEM: m.ca}, nil
}

// Join makes the agent a key, exchanges the one-time join token for a certificate from the
// controllers (verified with caPEM; the call carries no client certificate), checks the
// certificate and stores it in dir (created 0700). It retries while the controllers are
// unreachable or busy, until ctx ends; a refused token, a bad request or a failed
// precondition is final, and the error carries the controller's message.
func Join(ctx context.Context, dir string, controllers []string, caPEM []byte, token string) (*Identity, error) {
	if _, _, err := pki.ParseJoinToken(token); err != nil {
		return nil, fmt.Errorf("join token: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("join: no CA certificate in the controllers' CA PEM")
	}
	keyPEM, csrPEM, err := pki.NewKeyAndCSR("ebbflow-agent")
	if err != nil {
		return nil, err
	}
	conn, client, err := Dial(controllers, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	log := slog.Default()
	b := newBackoff(15 * time.Second)
	req := &ebbflowv1.JoinClusterRequest{Token: token, CsrPem: string(csrPEM)}
	retried := false
	var res *ebbflowv1.JoinClusterResponse
	for {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err = client.JoinCluster(actx, req)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("join: %w (last error: %v)", ctx.Err(), err)
		}
		if !transient(status.Code(err)) {
			return nil, joinRefused(err, retried)
		}
		retried = true
		d := b.next()
		log.Warn("joining the fleet failed; retrying", "err", err, "in", d)
		if !sleep(ctx, d) {
			return nil, fmt.Errorf("join: %w (last error: %v)", ctx.Err(), err)
		}
	}
	m := material{key: keyPEM}
	if m.cert, err = normalizeCerts([]byte(res.GetCertificatePem())); err != nil {
		return nil, fmt.Errorf("join: the controller's certificate: %w", err)
	}
	if m.ca, err = mergeCAs(caPEM, []byte(res.GetCaPem()), time.Now()); err != nil {
		return nil, fmt.Errorf("join: the controller's CA: %w", err)
	}
	c, err := parseMaterial(m, time.Now())
	if err != nil {
		return nil, fmt.Errorf("join: the controller's certificate: %w", err)
	}
	if cl := res.GetCluster(); cl != "" && cl != c.id.Name {
		return nil, fmt.Errorf("join: the controller said cluster %q but its certificate is for %q", cl, c.id.Name)
	}
	if err := store(dir, m); err != nil {
		return nil, err
	}
	return &Identity{dir: dir, cur: c, caPEM: m.ca}, nil
}

// transient codes are worth another attempt.
func transient(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

func joinRefused(err error, retried bool) error {
	// The error wraps the status, so status.Code still tells the caller what happened.
	switch status.Code(err) {
	case codes.Unauthenticated, codes.FailedPrecondition, codes.PermissionDenied:
		hint := "create a new one with fleetctl token create --cluster <cluster>"
		if retried {
			hint = "an earlier attempt whose answer was lost may have used it; " + hint
		}
		return fmt.Errorf("join: the controller refused the join token: %w (%s)", err, hint)
	case codes.InvalidArgument:
		return fmt.Errorf("join: the controller refused the request: %w", err)
	}
	return fmt.Errorf("join: %w", err)
}

// Cluster is the cluster the certificate binds the agent to.
func (id *Identity) Cluster() string {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cur.id.Name
}

// Epoch is the cluster's identity epoch the certificate was issued in.
func (id *Identity) Epoch() uint64 {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cur.id.Epoch
}

// Certificate is the current client certificate.
func (id *Identity) Certificate() *x509.Certificate {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.cur.cert.Leaf
}

// NotAfter is when the current certificate expires.
func (id *Identity) NotAfter() time.Time { return id.Certificate().NotAfter }

// TLSConfig is a client TLS config for the controllers: it trusts the stored CA certificates
// and presents the current certificate on every handshake, so a renewal is used by the next
// connection without anything being rebuilt (see Conn.ResetConnections).
func (id *Identity) TLSConfig() *tls.Config {
	id.mu.RLock()
	roots := id.cur.roots
	id.mu.RUnlock()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			id.mu.RLock()
			c := id.cur.cert
			id.mu.RUnlock()
			return &c, nil
		},
	}
}

func (id *Identity) swap(c keyPair, caPEM []byte) {
	id.mu.Lock()
	id.cur, id.caPEM = c, caPEM
	id.mu.Unlock()
}

// Renewal configures RunRenewalWith. Only Client is required.
type Renewal struct {
	Client ebbflowv1.AgentServiceClient
	Logger *slog.Logger
	// OnRotate is called after every renewal, once the new certificate is stored and in use
	// for new handshakes (to reset the connections, say).
	OnRotate func()
	// Now and After are the clock (time.Now and time.After by default).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// MinBackoff and MaxBackoff bound the wait between failed attempts (1s and 1m by default).
	MinBackoff, MaxBackoff time.Duration
	// MaxWait bounds one sleep, so a clock that jumped (a suspended machine) is noticed
	// (5m by default).
	MaxWait time.Duration
	// CallTimeout bounds one RenewCertificate call (30s by default).
	CallTimeout time.Duration
}

// RunRenewal renews the certificate whenever two thirds of its lifetime have passed, until
// ctx ends; see RunRenewalWith.
func (id *Identity) RunRenewal(ctx context.Context, client ebbflowv1.AgentServiceClient, log *slog.Logger, onRotate func()) {
	id.RunRenewalWith(ctx, Renewal{Client: client, Logger: log, OnRotate: onRotate})
}

// RunRenewalWith sleeps until two thirds of the current certificate's lifetime have passed,
// then makes a new key, has the controller certify it (over the connection of r.Client, with
// the current certificate), checks the result, stores it, swaps it in and calls r.OnRotate.
// A failed attempt is retried with capped, jittered exponential backoff; once the next attempt
// would come after the certificate expires, each failure is logged as an error. It returns
// when ctx ends.
func (id *Identity) RunRenewalWith(ctx context.Context, r Renewal) {
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.After == nil {
		r.After = time.After
	}
	if r.MinBackoff <= 0 {
		r.MinBackoff = time.Second
	}
	if r.MaxBackoff < r.MinBackoff {
		r.MaxBackoff = max(time.Minute, r.MinBackoff)
	}
	if r.MaxWait <= 0 {
		r.MaxWait = 5 * time.Minute
	}
	if r.CallTimeout <= 0 {
		r.CallTimeout = 30 * time.Second
	}
	log := r.Logger
	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-r.After(d):
			return true
		}
	}
	for {
		leaf := id.Certificate()
		at := renewAt(leaf)
		log.Info("certificate renewal scheduled", "at", at, "expires", leaf.NotAfter, "serial", leaf.SerialNumber.Text(16))
		for now := r.Now(); now.Before(at); now = r.Now() {
			if !wait(min(at.Sub(now), r.MaxWait)) {
				return
			}
		}
		backoff := r.MinBackoff
		for {
			err := id.renew(ctx, r)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			d := jitter(backoff)
			backoff = min(2*backoff, r.MaxBackoff)
			left := leaf.NotAfter.Sub(r.Now())
			switch code := status.Code(err); {
			case left <= 0:
				log.Error("certificate renewal failed and the certificate has expired: the controllers refuse it, the agent needs a new join token", "err", err, "expired", leaf.NotAfter, "retry_in", d)
			case left <= d:
				log.Error("certificate renewal failed; the certificate expires before the next attempt", "err", err, "expires", leaf.NotAfter, "retry_in", d)
			case code == codes.Unauthenticated || code == codes.PermissionDenied:
				log.Error("the controller refused to renew the certificate (was the cluster's identity revoked?)", "err", err, "expires", leaf.NotAfter, "retry_in", d)
			default:
				log.Warn("certificate renewal failed; retrying", "err", err, "expires", leaf.NotAfter, "retry_in", d)
			}
			if !wait(d) {
				return
			}
		}
		c := id.Certificate()
		log.Info("certificate renewed", "serial", c.SerialNumber.Text(16), "expires", c.NotAfter)
		if r.OnRotate != nil {
			r.OnRotate()
		}
	}
}

// renewAt is when two thirds of c's lifetime have passed.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// jitter spreads d over [0.8d, 1.2d], so a fleet that lost its controllers does not come back
// in step.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

// renew makes one renewal attempt: on success the new certificate is stored and in use.
func (id *Identity) renew(ctx context.Context, r Renewal) error {
	id.mu.RLock()
	old, oldCA := id.cur.id, id.caPEM
	id.mu.RUnlock()
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(old.Name)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, r.CallTimeout)
	res, err := r.Client.RenewCertificate(cctx, &ebbflowv1.RenewCertificateRequest{CsrPem: string(csrPEM)})
	cancel()
	if err != nil {
		return err
	}
	m := material{key: keyPEM}
	if m.cert, err = normalizeCerts([]byte(res.GetCertificatePem())); err != nil {
		return fmt.Errorf("the controller's certificate: %w", err)
	}
	if m.ca, err = mergeCAs(oldCA, []byte(res.GetCaPem()), r.Now()); err != nil {
		return fmt.Errorf("the controller's CA: %w", err)
	}
	c, err := parseMaterial(m, r.Now())
	if err != nil {
		return fmt.Errorf("the controller's certificate: %w", err)
	}
	if c.id.Name != old.Name {
		return fmt.Errorf("the controller's certificate is for cluster %q, not %q", c.id.Name, old.Name)
	}
	if c.id.Epoch < old.Epoch {
		return fmt.Errorf("the controller's certificate is of identity epoch %d, older than %d", c.id.Epoch, old.Epoch)
	}
	if err := store(id.dir, m); err != nil {
		return err
	}
	id.swap(c, m.ca)
	return nil
}

// parseMaterial checks that the key and certificate are a pair, that the certificate is an
// agent's, and that it chains to one of the CA certificates for client authentication at
// when (when zero: now, or the nearest moment of the certificate's validity, which checks the
// signatures but not the expiry).
func parseMaterial(m material, when time.Time) (keyPair, error) {
	cert, err := tls.X509KeyPair(m.cert, m.key)
	if err != nil {
		return keyPair{}, fmt.Errorf("key and certificate: %w", err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return keyPair{}, fmt.Errorf("certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	ident, err := pki.IdentityOf(leaf)
	if err != nil {
		return keyPair{}, fmt.Errorf("certificate: %w", err)
	}
	if ident.Kind != pki.KindAgent {
		return keyPair{}, fmt.Errorf("certificate: %s is not an agent's identity", ident)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(m.ca) {
		return keyPair{}, errors.New("no CA certificate")
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if when.IsZero() {
		// Now, or the nearest moment the certificate was valid: an expired one still loads.
		when = time.Now()
		if when.After(leaf.NotAfter) {
			when = leaf.NotAfter
		}
		if when.Before(leaf.NotBefore) {
			when = leaf.NotBefore
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: when,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return keyPair{}, fmt.Errorf("certificate: %w", err)
	}
	return keyPair{cert: cert, id: ident, roots: roots}, nil
}

// normalizeCerts keeps the CERTIFICATE blocks of data, re-encoded plainly; it fails on none.
func normalizeCerts(data []byte) ([]byte, error) {
	var out bytes.Buffer
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			_ = pem.Encode(&out, &pem.Block{Type: b.Type, Bytes: b.Bytes})
		}
	}
	if out.Len() == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out.Bytes(), nil
}

// mergeCAs is the CA certificates of have and got, each once, without the expired ones
// (unless every one has expired).
func mergeCAs(have, got []byte, now time.Time) ([]byte, error) {
	var all []*x509.Certificate
	seen := map[string]bool{}
	for _, data := range [][]byte{got, have} {
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type != "CERTIFICATE" || seen[string(b.Bytes)] {
				continue
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, err
			}
			seen[string(b.Bytes)] = true
			all = append(all, c)
		}
	}
	if len(all) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	var out, expired bytes.Buffer
	for _, c := range all {
		w := &out
		if now.After(c.NotAfter) {
			w = &expired
		}
		_ = pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	if out.Len() == 0 {
		return expired.Bytes(), nil
	}
	return out.Bytes(), nil
}

// store writes m into dir so that a crash at any point leaves either the old identity or the
// new one: first the journal, atomically, then each file, atomically, then the journal goes.
func store(dir string, m material) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
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
		return err
	}
	return install(dir, m)
}

// install replaces the three files with m's and removes the journal.
func install(dir string, m material) error {
	for _, f := range m.files() {
		if err := writeAtomic(dir, f.name, f.data, f.perm); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(dir, pendingFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("identity: %w", err)
	}
	return syncDir(dir)
}

type file struct {
	name string
	data []byte
	perm os.FileMode
}

func (m material) files() []file {
	return []file{{KeyFile, m.key, 0o600}, {CertFile, m.cert, 0o644}, {CAFile, m.ca, 0o644}}
}

// finishPending completes a store that a crash interrupted after its journal was written. A
// journal that does not hold a usable identity is dropped (the files were not touched yet).
func finishPending(dir string) error {
	path := filepath.Join(dir, pendingFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	parts := map[string]*bytes.Buffer{KeyFile: {}, CertFile: {}, CAFile: {}}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if w := parts[b.Headers[fileHeader]]; w != nil {
			_ = pem.Encode(w, &pem.Block{Type: b.Type, Bytes: b.Bytes})
		}
	}
	m := material{key: parts[KeyFile].Bytes(), cert: parts[CertFile].Bytes(), ca: parts[CAFile].Bytes()}
	if _, err := parseMaterial(m, time.Time{}); err != nil {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		return syncDir(dir)
	}
	return install(dir, m)
}

// discard moves the named files of dir aside and reports why.
func discard(dir string, names []string, reason string) error {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.Rename(p, p+".discarded"); err != nil {
			return fmt.Errorf("identity: %s (and moving it aside failed: %w)", reason, err)
		}
	}
	_ = syncDir(dir)
	return &DiscardedError{Dir: dir, Reason: reason}
}

// removeTemps deletes the temporary files an interrupted writeAtomic left in dir.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("identity: %w", err)
			}
		}
	}
	return nil
}

// writeAtomic writes dir/name through a temporary file in dir, synced, then renamed, so the
// file never holds part of data.
func writeAtomic(dir, name string, data []byte, perm os.FileMode) error {
	if err := durable.WriteFile(filepath.Join(dir, name), data, perm); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// syncDir makes renames and removals in dir durable.
func syncDir(dir string) error {
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}
