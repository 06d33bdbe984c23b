package pki

import (
	"bytes"
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
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA makes a CA in a fresh directory.
func testCA(t *testing.T) *CA {
	t.Helper()
	ca, created, err := LoadOrCreateCA(t.TempDir())
	if err != nil || !created {
		t.Fatalf("LoadOrCreateCA: created=%v err=%v", created, err)
	}
	return ca
}

func parsePEMCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("no CERTIFICATE block in %q", data)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadOrCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, created, err := LoadOrCreateCA(dir)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	c := ca.Cert
	if c.Subject.CommonName != "Ebbflow CA" || !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("CA subject %q IsCA=%v", c.Subject.CommonName, c.IsCA)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if years := c.NotAfter.Sub(c.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("validity %.2f years, want 10", years)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 || c.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %v (%d bits)", c.SerialNumber, c.SerialNumber.BitLen())
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}

	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, err %v; want 0700", st.Mode().Perm(), err)
	}
	for _, name := range []string{CACertFile, CAKeyFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v err %v; want 0600", name, st.Mode().Perm(), err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want 2 (no temporary files left)", len(entries))
	}

	again, created, err := LoadOrCreateCA(dir)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if !again.Cert.Equal(ca.Cert) || !bytes.Equal(again.CertPEM, ca.CertPEM) {
		t.Error("loaded CA differs from the created one")
	}
	if !again.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(ca.Key.Public()) {
		t.Error("loaded key differs from the created one")
	}
	loaded, err := LoadCA(dir)
	if err != nil || !loaded.Cert.Equal(ca.Cert) {
		t.Errorf("LoadCA: %v", err)
	}
}

func TestLoadOrCreateCAHalfPresent(t *testing.T) {
	for _, keep := range []string{CACertFile, CAKeyFile} {
		t.Run(keep, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := LoadOrCreateCA(dir); err != nil {
				t.Fatal(err)
			}
			missing := CACertFile
			if keep == CACertFile {
				missing = CAKeyFile
			}
			if err := os.Remove(filepath.Join(dir, missing)); err != nil {
				t.Fatal(err)
			}
			_, created, err := LoadOrCreateCA(dir)
			if err == nil || created {
				t.Fatalf("created=%v err=%v, want an error", created, err)
			}
			if !strings.Contains(err.Error(), missing+" is missing") {
				t.Errorf("error %q does not name the missing %s", err, missing)
			}
			if _, err := os.Stat(filepath.Join(dir, missing)); err == nil {
				t.Errorf("%s was recreated", missing)
			}
		})
	}
}

func TestLoadCAErrors(t *testing.T) {
	if _, err := LoadCA(t.TempDir()); err == nil {
		t.Error("LoadCA of an empty directory succeeded")
	}

	// A key that belongs to another CA.
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if _, _, err := LoadOrCreateCA(d); err != nil {
			t.Fatal(err)
		}
	}
	key, _ := os.ReadFile(filepath.Join(b, CAKeyFile))
	if err := os.WriteFile(filepath.Join(a, CAKeyFile), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(a); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: err %v", err)
	}

	// A leaf certificate in place of the CA's.
	c := t.TempDir()
	ca := testCA(t)
	certPEM, keyPEM, err := ca.IssuePerson("alice", RoleAdmin, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(c, CACertFile), certPEM, 0o600)
	os.WriteFile(filepath.Join(c, CAKeyFile), keyPEM, 0o600)
	if _, err := LoadCA(c); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("leaf as CA: err %v", err)
	}
}

// TestLoadCAIntermediate loads an intermediate CA whose ca.crt carries the root after it.
func TestLoadCAIntermediate(t *testing.T) {
	// An organisation's root, which (unlike the CAs this package makes) may sign CAs.
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{
		SerialNumber:          serialOrFail(t),
		Subject:               pkix.Name{CommonName: "Example root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	rootCert, _ := x509.ParseCertificate(rootDER)
	root := &CA{Cert: rootCert, Key: rootKey, CertPEM: pemBlock("CERTIFICATE", rootDER)}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber:          serialOrFail(t),
		Subject:               pkix.Name{CommonName: "Ebbflow intermediate"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, root.Cert, &key.PublicKey, root.Key)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certPEM := append(pemBlock("CERTIFICATE", der), root.CertPEM...)
	os.WriteFile(filepath.Join(dir, CACertFile), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, CAKeyFile), pemBlock("EC PRIVATE KEY", ecDER), 0o600)

	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != "Ebbflow intermediate" || !bytes.Equal(ca.CertPEM, certPEM) {
		t.Fatalf("Cert %q; CertPEM kept whole: %v", ca.Cert.Subject.CommonName, bytes.Equal(ca.CertPEM, certPEM))
	}

	node, err := ca.IssueNode("n1", []string{"127.0.0.1"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	// The node sends the intermediate, not the root.
	if len(node.Certificate) != 2 || !bytes.Equal(node.Certificate[1], der) {
		t.Fatalf("node chain has %d certificates, want leaf and intermediate", len(node.Certificate))
	}
	// A peer that trusts only the root verifies it with what the node sends.
	inter := x509.NewCertPool()
	ic, _ := x509.ParseCertificate(node.Certificate[1])
	inter.AddCert(ic)
	if _, err := node.Leaf.Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: inter, DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("verify against the root: %v", err)
	}
	// Pool holds the intermediate and the root.
	if _, err := node.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("verify against Pool: %v", err)
	}
	// A root CA sends no chain.
	rootNode, err := root.IssueNode("n1", nil, time.Hour, now)
	if err != nil || len(rootNode.Certificate) != 1 {
		t.Errorf("root-issued node chain: %d certificates, err %v", len(rootNode.Certificate), err)
	}
}

func serialOrFail(t *testing.T) *big.Int {
	t.Helper()
	s, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func csrFor(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "ignored", Organization: []string{"ignored"}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("CERTIFICATE REQUEST", der)
}

func TestIssueFromCSR(t *testing.T) {
	ca := testCA(t)
	now := time.Now()
	agent := Identity{Kind: KindAgent, Name: "prod-eu", Epoch: 3}

	keyPEM, csrPEM, err := NewKeyAndCSR("prod-eu")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM is not PKCS#8: %q", keyPEM)
	}
	leafPEM, err := ca.IssueFromCSR(csrPEM, agent, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := parsePEMCert(t, leafPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: now}); err != nil {
		t.Fatalf("verify as client: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, CurrentTime: now}); err == nil {
		t.Error("agent certificate verifies as a server")
	}
	got, err := IdentityOf(leaf)
	if err != nil || got != agent {
		t.Fatalf("IdentityOf = %+v, %v; want %+v", got, err, agent)
	}
	if leaf.Subject.CommonName != "prod-eu" || len(leaf.Subject.Organization) != 0 {
		t.Errorf("subject %v, want CN=prod-eu only", leaf.Subject)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature || leaf.IsCA {
		t.Errorf("key usage %v IsCA %v", leaf.KeyUsage, leaf.IsCA)
	}
	if want := now.Add(-time.Minute).Truncate(time.Second); !leaf.NotBefore.Equal(want) {
		t.Errorf("NotBefore %v, want %v", leaf.NotBefore, want)
	}
	if want := now.Add(time.Hour).Truncate(time.Second); !leaf.NotAfter.Equal(want) {
		t.Errorf("NotAfter %v, want %v", leaf.NotAfter, want)
	}
	// The issued certificate and the key make a usable pair.
	if _, err := tls.X509KeyPair(leafPEM, keyPEM); err != nil {
		t.Errorf("key pair: %v", err)
	}

	// Serials differ between certificates.
	second, _ := ca.IssueFromCSR(csrPEM, agent, time.Hour, now)
	if parsePEMCert(t, second).SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two certificates share a serial")
	}

	// A lifetime beyond the CA's is cut at the CA's expiry.
	long, err := ca.IssueFromCSR(csrPEM, agent, 20*365*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if na := parsePEMCert(t, long).NotAfter; !na.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", na, ca.Cert.NotAfter)
	}
	if _, err := ca.IssueFromCSR(csrPEM, agent, time.Hour, ca.Cert.NotAfter.Add(time.Second)); err == nil {
		t.Error("issued with an expired CA")
	}
	if _, err := ca.IssueFromCSR(csrPEM, agent, 0, now); err == nil {
		t.Error("issued with a zero lifetime")
	}
	if _, err := ca.IssueFromCSR(csrPEM, Identity{Kind: KindPerson, Name: "bob", Role: "root"}, time.Hour, now); err == nil {
		t.Error("issued for an invalid identity")
	}
}

func TestIssueFromCSRKeys(t *testing.T) {
	ca := testCA(t)
	ecKey := func(c elliptic.Curve) crypto.Signer {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rsaKey := func(bits int) crypto.Signer {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)

	good := csrFor(t, ecKey(elliptic.P256()))
	b, _ := pem.Decode(good)
	tampered := bytes.Clone(b.Bytes)
	tampered[len(tampered)-3] ^= 0xff // inside the signature

	tests := []struct {
		name    string
		csr     []byte
		wantErr string
	}{
		{"P-256", good, ""},
		{"P-384", csrFor(t, ecKey(elliptic.P384())), ""},
		{"Ed25519", csrFor(t, edKey), ""},
		{"RSA 2048", csrFor(t, rsaKey(2048)), ""},
		{"RSA 1024", csrFor(t, rsaKey(1024)), "RSA key of 1024 bits"},
		{"P-521", csrFor(t, ecKey(elliptic.P521())), "P-521"},
		{"bad signature", pemBlock("CERTIFICATE REQUEST", tampered), "bad signature"},
		{"not PEM", []byte("hello"), "no PEM"},
		{"certificate, not request", ca.CertPEM, "no PEM CERTIFICATE REQUEST"},
	}
	id := Identity{Kind: KindAgent, Name: "c1", Epoch: 1}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ca.IssueFromCSR(tt.csr, id, time.Hour, time.Now())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if _, err := parsePEMCert(t, out).Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
					t.Errorf("verify: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestIssueNode(t *testing.T) {
	ca := testCA(t)
	now := time.Now()
	hosts := []string{"127.0.0.1:7400", "ctrl-0.ebbflow.svc", "", " [::1]:7400 ", "ctrl-0.ebbflow.svc:7401", "localhost"}
	c, err := ca.IssueNode("ctrl-0", hosts, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf == nil || c.PrivateKey == nil || len(c.Certificate) != 1 {
		t.Fatalf("certificate incomplete: leaf %v key %v chain %d", c.Leaf != nil, c.PrivateKey != nil, len(c.Certificate))
	}
	leaf := c.Leaf
	if got := strings.Join(leaf.DNSNames, ","); got != "ctrl-0.ebbflow.svc,localhost" {
		t.Errorf("DNS names %q", got)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP addresses %v", leaf.IPAddresses)
	}
	for _, name := range []string{"127.0.0.1", "::1", "ctrl-0.ebbflow.svc", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify as server for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "other.example", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("verifies for a host it was not issued for")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify as client: %v", err)
	}
	if id, err := IdentityOf(leaf); err != nil || id != (Identity{Kind: KindNode, Name: "ctrl-0"}) {
		t.Errorf("IdentityOf = %+v, %v", id, err)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}

	if _, err := ca.IssueNode("ctrl/0", nil, time.Hour, now); err == nil {
		t.Error("issued for a bad node id")
	}
	if _, err := ca.IssueNode("ctrl-0", []string{"bad host"}, time.Hour, now); err == nil || !strings.Contains(err.Error(), `"bad host"`) {
		t.Errorf("bad host: err %v", err)
	}
}

func TestIssuePerson(t *testing.T) {
	ca := testCA(t)
	certPEM, keyPEM, err := ca.IssuePerson("alice", RoleOperator, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM is not PKCS#8")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify as client: %v", err)
	}
	if id, err := IdentityOf(pair.Leaf); err != nil || id != (Identity{Kind: KindPerson, Name: "alice", Role: RoleOperator}) {
		t.Errorf("IdentityOf = %+v, %v", id, err)
	}
	if _, _, err := ca.IssuePerson("alice", "root", time.Hour, time.Now()); err == nil {
		t.Error("issued for role root")
	}
}

func TestOtherCANotTrusted(t *testing.T) {
	ours, theirs := testCA(t), testCA(t)
	certPEM, _, err := theirs.IssuePerson("mallory", RoleAdmin, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = parsePEMCert(t, certPEM).Verify(x509.VerifyOptions{Roots: ours.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err == nil {
		t.Fatal("a certificate of another CA verifies against our Pool")
	}
	node, _ := theirs.IssueNode("n1", []string{"127.0.0.1"}, time.Hour, time.Now())
	if _, err := node.Leaf.Verify(x509.VerifyOptions{Roots: ours.Pool(), DNSName: "127.0.0.1"}); err == nil {
		t.Fatal("another CA's node certificate verifies against our Pool")
	}
}

// TestMutualTLS runs a handshake over an in-memory pipe: a node serving with a NodeCertSource and
// an agent presenting a certificate issued from its CSR; each side verifies the other by the CA.
func TestMutualTLS(t *testing.T) {
	ca := testCA(t)
	src, err := NewNodeCertSource(ca, "ctrl-0", []string{"ctrl-0.local"}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, _ := NewKeyAndCSR("c1")
	leafPEM, err := ca.IssueFromCSR(csrPEM, Identity{Kind: KindAgent, Name: "c1", Epoch: 9}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	agentCert, err := tls.X509KeyPair(leafPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}

	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	server := tls.Server(sc, &tls.Config{
		GetCertificate: src.GetCertificate,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      ca.Pool(),
		MinVersion:     tls.VersionTLS13,
	})
	client := tls.Client(cc, &tls.Config{
		Certificates: []tls.Certificate{agentCert},
		RootCAs:      ca.Pool(),
		ServerName:   "ctrl-0.local",
		MinVersion:   tls.VersionTLS13,
	})
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	peer, err := IdentityOf(server.ConnectionState().PeerCertificates[0])
	if err != nil || peer != (Identity{Kind: KindAgent, Name: "c1", Epoch: 9}) {
		t.Errorf("server sees %+v, %v", peer, err)
	}
	nodeID, err := IdentityOf(client.ConnectionState().PeerCertificates[0])
	if err != nil || nodeID != (Identity{Kind: KindNode, Name: "ctrl-0"}) {
		t.Errorf("client sees %+v, %v", nodeID, err)
	}
}

func TestNodeCertSource(t *testing.T) {
	ca := testCA(t)
	start := time.Now()
	clock := start
	src, err := NewNodeCertSource(ca, "ctrl-0", []string{"127.0.0.1"}, 9*time.Hour, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	first, err := src.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	// Lifetime is 9h plus the minute of backdating; re-issue once under a third of it remains.
	steps := []struct {
		at      time.Duration
		reissue bool
	}{
		{0, false},
		{time.Hour, false},
		{5*time.Hour + 59*time.Minute, false}, // 3h1m left of 9h1m
		{6*time.Hour + 1*time.Minute, true},   // 2h59m left
		{6*time.Hour + 2*time.Minute, false},  // the new one is fresh
		{-time.Hour, true},                    // clock before the certificate's start
	}
	prev := first
	for _, s := range steps {
		clock = start.Add(s.at)
		got, err := src.Certificate()
		if err != nil {
			t.Fatalf("at %v: %v", s.at, err)
		}
		if reissued := got != prev; reissued != s.reissue {
			t.Errorf("at %v: re-issued %v, want %v", s.at, reissued, s.reissue)
		}
		if s.reissue && !got.Leaf.NotBefore.Equal(clock.Add(-time.Minute).Truncate(time.Second)) {
			t.Errorf("at %v: new NotBefore %v", s.at, got.Leaf.NotBefore)
		}
		prev = got
	}

	// When re-issuing fails, the current certificate is served while it is valid, then an error.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	src.ca = &CA{Cert: ca.Cert, Key: other, CertPEM: ca.CertPEM} // signs nothing the CA vouches for
	clock = prev.Leaf.NotAfter.Add(-time.Minute)
	if got, err := src.Certificate(); err != nil || got != prev {
		t.Errorf("failing re-issue with the current one valid: same=%v err=%v", got == prev, err)
	}
	clock = prev.Leaf.NotAfter.Add(time.Second)
	if _, err := src.Certificate(); err == nil {
		t.Error("no error with the current certificate expired and re-issue failing")
	}
	src.ca = ca
	if got, err := src.Certificate(); err != nil || got == prev {
		t.Errorf("recovery: same=%v err=%v", got == prev, err)
	}

	// Near the CA's end the certificate is cut at the CA's expiry.
	clock = ca.Cert.NotAfter.Add(-time.Hour)
	near, err := src.Certificate()
	if err != nil || !near.Leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("near the CA's end: %v, NotAfter %v", err, near.Leaf.NotAfter)
	}
	clock = ca.Cert.NotAfter.Add(time.Second)
	if _, err := src.Certificate(); err == nil {
		t.Error("no error once both the certificate and the CA expired")
	}
}

func TestNodeCertSourceConcurrent(t *testing.T) {
	ca := testCA(t)
	src, err := NewNodeCertSource(ca, "ctrl-0", nil, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *tls.Certificate)
	for range 8 {
		go func() {
			c, _ := src.GetClientCertificate(nil)
			done <- c
		}()
	}
	for range 8 {
		if c := <-done; c == nil || c.Leaf == nil {
			t.Error("no certificate")
		}
	}
}
