package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/ebbflow/ebbflow/internal/durable"
)

// Files of a CA directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	AdminTokenFile = "admin.token"
)

// caValidity is how long a CA made by LoadOrCreateCA is valid.
const caValidity = 10 // years

// CA is a certificate authority: its certificate, its signing key, and the PEM it was loaded from.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte // Cert, then any chain that followed it in ca.crt
}

// LoadOrCreateCA loads dir/ca.crt and dir/ca.key or, when neither exists, creates dir (0700) and a new
// self-signed ECDSA P-256 CA valid for 10 years, written with mode 0600. created reports whether it
// made them. One of the two files existing without the other is an error naming the missing file.
func LoadOrCreateCA(dir string) (ca *CA, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certOK, err := exists(certPath)
	if err != nil {
		return nil, false, err
	}
	keyOK, err := exists(keyPath)
	if err != nil {
		return nil, false, err
	}
	switch {
	case certOK && keyOK:
		ca, err := LoadCA(dir)
		return ca, false, err
	case certOK:
		return nil, false, fmt.Errorf("pki: %s exists but %s is missing", certPath, keyPath)
	case keyOK:
		return nil, false, fmt.Errorf("pki: %s exists but %s is missing", keyPath, certPath)
	}

	ca, keyPEM, err := newCA(time.Now())
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("pki: %w", err)
	}
	// The key goes first: a crash between the two writes leaves a key without a certificate,
	// which the next start reports instead of silently making a second CA.
	if err := durable.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := durable.WriteFile(certPath, ca.CertPEM, 0o600); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// newCA makes a self-signed CA and returns it with its key in PEM.
func newCA(now time.Time) (*CA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Ebbflow CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(caValidity, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pemBlock("CERTIFICATE", der)}, keyPEM, nil
}

// LoadCA loads the CA in dir/ca.crt and dir/ca.key. The CA may be an intermediate: ca.crt may hold
// its chain after the CA's own certificate. CertPEM keeps the whole file and Cert is the first
// certificate, whose public key must match the key.
func LoadCA(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", certPath, err)
	}
	cert := certs[0]
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("pki: %s: the first certificate (%q) is not a CA", certPath, cert.Subject.CommonName)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: %s: the CA certificate lacks the certificate-signing key usage", certPath)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("pki: %s does not match the certificate in %s", keyPath, certPath)
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

// Pool is a pool holding the CA's own certificate only, as the one trust anchor: when the CA
// is an intermediate, trusting its root too would accept any certificate the root signs,
// including ones that carry a made-up Ebbflow identity.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// chain is Cert followed by the other certificates in CertPEM.
func (ca *CA) chain() []*x509.Certificate {
	out := []*x509.Certificate{ca.Cert}
	certs, err := parseCerts(ca.CertPEM)
	if err != nil {
		return out
	}
	for _, c := range certs {
		if !c.Equal(ca.Cert) {
			out = append(out, c)
		}
	}
	return out
}

// intermediates are the certificates a leaf should be sent with so that a peer trusting only the
// root can verify it: the CA and its chain, less any self-signed root. Empty for a root CA.
func (ca *CA) intermediates() [][]byte {
	var out [][]byte
	for _, c := range ca.chain() {
		if !selfSigned(c) {
			out = append(out, c.Raw)
		}
	}
	return out
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

// parseCerts reads every CERTIFICATE block in data; there must be at least one and no other kind.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q, want CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return certs, nil
}

// parseKey reads a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) private key.
func parseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM private key block")
	}
	var (
		key any
		err error
	)
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q, want PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", key)
	}
	return s, nil
}

// marshalKey encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
func marshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// randomSerial is a random, positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("pki: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("pki: %w", err)
	}
}
