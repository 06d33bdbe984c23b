package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// minRSABits is the smallest RSA key IssueFromCSR accepts.
const minRSABits = 2048

// backdate is how far before now a certificate becomes valid, for clocks a little behind ours.
const backdate = time.Minute

// IssueFromCSR signs a PEM certificate request as a client certificate carrying id, valid from
// now-1m to now+ttl but never beyond the CA's own expiry: ParseCSR, then IssueForRequest.
func (ca *CA) IssueFromCSR(csrPEM []byte, id Identity, ttl time.Duration, now time.Time) ([]byte, error) {
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	return ca.IssueForRequest(csr, id, ttl, now)
}

// ParseCSR decodes a PEM certificate request and checks what IssueForRequest relies on: the
// request's signature is good and its key is ECDSA P-256 or P-384, Ed25519, or RSA of at least
// 2048 bits. A caller that spends something to get a certificate (a join token) checks the
// request with ParseCSR first.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || (b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST") {
		return nil, errors.New("pki: no PEM CERTIFICATE REQUEST block")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: certificate request: bad signature: %w", err)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("pki: certificate request: %w", err)
	}
	return csr, nil
}

// CanIssue says why the CA cannot sign certificates at now (nil when it can).
func (ca *CA) CanIssue(now time.Time) error {
	if !now.Before(ca.Cert.NotAfter) {
		return fmt.Errorf("pki: the CA expired at %s", ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// IssueForRequest signs a request ParseCSR accepted as a client certificate carrying id, valid
// from now-1m to now+ttl but never beyond the CA's own expiry. The request's subject and
// extensions are ignored: the certificate's common name is id.Name. It returns the certificate
// in PEM.
func (ca *CA) IssueForRequest(csr *x509.CertificateRequest, id Identity, ttl time.Duration, now time.Time) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id.Name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := ca.sign(tmpl, id, csr.PublicKey, ttl, now)
	if err != nil {
		return nil, err
	}
	return pemBlock("CERTIFICATE", der), nil
}

// checkKey accepts ECDSA P-256 and P-384, Ed25519, and RSA of at least minRSABits.
func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s: want P-256 or P-384", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits {
			return fmt.Errorf("RSA key of %d bits: want at least %d", n, minRSABits)
		}
	default:
		return fmt.Errorf("key type %T: want ECDSA P-256/P-384, Ed25519 or RSA", pub)
	}
	return nil
}

// sign completes tmpl (serial, validity, identity, basic constraints) and signs it for pub.
func (ca *CA) sign(tmpl *x509.Certificate, id Identity, pub crypto.PublicKey, ttl time.Duration, now time.Time) ([]byte, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("pki: lifetime %v: want more than zero", ttl)
	}
	if !now.Before(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("pki: the CA expired at %s", ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(ttl)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.URIs = append(tmpl.URIs[:0:0], id.URI())
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate for %v: %w", id, err)
	}
	return der, nil
}

// IssueNode makes an ECDSA P-256 key and a certificate for controller node id that serves TLS
// for each of hosts (IP addresses or DNS names; a port is stripped, empty entries are skipped)
// and that the node can present as a TLS client. The result carries the CA's chain when the CA is
// an intermediate, and its Leaf is set.
func (ca *CA) IssueNode(id string, hosts []string, ttl time.Duration, now time.Time) (tls.Certificate, error) {
	ident := Identity{Kind: KindNode, Name: id}
	if err := ident.Validate(); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	dns, ips, err := splitHosts(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: node key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dns,
		IPAddresses: ips,
	}
	der, err := ca.sign(tmpl, ident, &key.PublicKey, ttl, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: node certificate: %w", err)
	}
	return tls.Certificate{
		Certificate: append([][]byte{der}, ca.intermediates()...),
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// splitHosts sorts hosts into DNS names and IP addresses, stripping ports and brackets and
// dropping empty entries and repeats.
func splitHosts(hosts []string) (dns []string, ips []net.IP, err error) {
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		}
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if err := validDNSName(h); err != nil {
			return nil, nil, fmt.Errorf("pki: host %q: %w", h, err)
		}
		dns = append(dns, h)
	}
	return dns, ips, nil
}

// validDNSName checks that h looks like a DNS name (a leading "*." wildcard allowed).
func validDNSName(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if len(h) > 253 {
		return errors.New("longer than 253 characters")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("want a DNS name or an IP address")
		}
		for _, r := range label {
			switch {
			case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_':
			default:
				return fmt.Errorf("character %q not allowed in a DNS name", r)
			}
		}
	}
	return nil
}

// IssuePerson makes an ECDSA P-256 key and a client certificate for a person with role. It returns
// the certificate in PEM and the key in PKCS#8 PEM.
func (ca *CA) IssuePerson(name, role string, ttl time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	id := Identity{Kind: KindPerson, Name: name, Role: role}
	if err := id.Validate(); err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := ca.sign(tmpl, id, &key.PublicKey, ttl, now)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), keyPEM, nil
}

// NewKeyAndCSR makes an ECDSA P-256 key and a certificate request for it with the given common
// name. The key is PKCS#8 PEM ("PRIVATE KEY").
func NewKeyAndCSR(commonName string) (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: certificate request: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, pemBlock("CERTIFICATE REQUEST", der), nil
}
