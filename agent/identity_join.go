package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

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
			return nil, fmt.Errorf("join: %w (last error: %w)", ctx.Err(), err)
		}
		if !transient(status.Code(err)) {
			return nil, joinRefused(err, retried)
		}
		retried = true
		d := b.NextBackOff()
		log.Warn("joining the fleet failed; retrying", "err", err, "in", d)
		if !sleep(ctx, d) {
			return nil, fmt.Errorf("join: %w (last error: %w)", ctx.Err(), err)
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
		b := exponential(r.MinBackoff, r.MaxBackoff, 0.2)
		for {
			err := id.renew(ctx, r)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			d := b.NextBackOff()
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
