package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ebbflow/ebbflow/internal/pki"
)

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
