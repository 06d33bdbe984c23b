package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/internal/pki"
)

// nodeCertTTL is how long a node's own certificate lives; it is re-issued from the CA, in
// memory, when a third of that is left.
const nodeCertTTL = 30 * 24 * time.Hour

// security is the TLS and authentication wiring of one node: the group's CA, this node's
// certificate, and the TLS configurations of the API, of Raft and of calls to other nodes.
type security struct {
	ca        *pki.CA
	node      *pki.NodeCertSource
	api       *tls.Config
	raft      *tls.Config
	peer      *http.Client
	tokens    []pki.StaticToken
	jwt       *controller.JWTConfig
	adminFile string
}

// setupSecurity loads (or, on a bootstrapping node's first start, creates) the CA and the
// admin credential in pkiDir, and issues this node's certificate for hosts.
func setupSecurity(f flags, log *slog.Logger, nodeID string, bootstrap bool, hosts []string) (*security, error) {
	dir := f.pkiDir
	if dir == "" {
		dir = filepath.Join(f.dataDir, "pki")
	}
	var ca *pki.CA
	var err error
	if bootstrap {
		var created bool
		if ca, created, err = pki.LoadOrCreateCA(dir); err != nil {
			return nil, fmt.Errorf("--pki-dir: %w", err)
		}
		if created {
			log.Info("created the controller group's certificate authority", "cert", filepath.Join(dir, pki.CACertFile), "key", filepath.Join(dir, pki.CAKeyFile))
		}
	} else if ca, err = pki.LoadCA(dir); err != nil {
		return nil, fmt.Errorf("--pki-dir: a joining node needs the group's CA: copy %s and %s from the first node's pki directory (or share one): %w",
			pki.CACertFile, pki.CAKeyFile, err)
	}
	sec := &security{ca: ca}

	adminPath := filepath.Join(dir, pki.AdminTokenFile)
	if _, statErr := os.Stat(adminPath); bootstrap || statErr == nil {
		tok, created, err := pki.LoadOrCreateAdminToken(dir)
		if err != nil {
			return nil, fmt.Errorf("admin credential: %w", err)
		}
		if created {
			log.Info("created an admin credential; use it with fleetctl --token-file and --ca", "token_file", adminPath,
				"ca", filepath.Join(dir, pki.CACertFile))
		}
		sec.adminFile = adminPath
		sec.tokens = append(sec.tokens, pki.StaticToken{Hash: sha256Of(tok), Name: "admin", Role: "admin"})
	}
	if f.tokensFile != "" {
		data, err := os.ReadFile(f.tokensFile)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file: %w", err)
		}
		toks, err := pki.ParseTokensFile(data)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file %s: %w", f.tokensFile, err)
		}
		sec.tokens = append(sec.tokens, toks...)
	}
	if f.jwtIssuer != "" || f.jwtKey != "" || f.jwtAudience != "" {
		if f.jwtIssuer == "" || f.jwtKey == "" || f.jwtAudience == "" {
			return nil, errors.New("--jwt-issuer, --jwt-audience and --jwt-key go together")
		}
		key, err := readPublicKey(f.jwtKey)
		if err != nil {
			return nil, fmt.Errorf("--jwt-key: %w", err)
		}
		sec.jwt = &controller.JWTConfig{Issuer: f.jwtIssuer, Audience: f.jwtAudience, Key: key, RoleClaim: f.jwtRoleClaim}
	}

	for _, s := range strings.Split(f.tlsSANs, ",") {
		if s = strings.TrimSpace(s); s != "" {
			hosts = append(hosts, s)
		}
	}
	hosts = append(hosts, "localhost", "127.0.0.1", "::1")
	if sec.node, err = pki.NewNodeCertSource(ca, nodeID, hosts, nodeCertTTL, time.Now); err != nil {
		return nil, fmt.Errorf("issuing this node's certificate: %w", err)
	}
	// The API: this node's certificate (or --tls-cert); client certificates of the CA are
	// optional (people may use bearer tokens instead). Raft: mutual TLS between nodes only.
	pool := ca.Pool()
	sec.api = pki.ServerTLS(sec.node, pool)
	if f.tlsCert != "" {
		kp, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		sec.api.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	sec.raft = pki.PeerTLS(sec.node, pool)

	// Calls to other nodes (joining, forwarding to the leader) present this node's certificate.
	peerPool := ca.Pool()
	if f.tlsCA != "" {
		data, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		if !peerPool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--tls-ca: no PEM certificate in %s", f.tlsCA)
		}
	}
	sec.peer = controller.PeerClient(pki.ClientTLS(sec.node, peerPool))
	return sec, nil
}

func sha256Of(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func readPublicKey(path string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("no PEM block in %s", path)
	}
	switch b.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	}
	return nil, fmt.Errorf("%s holds a %q; want a PEM \"PUBLIC KEY\" or \"CERTIFICATE\"", path, b.Type)
}

// hostsOf are the hosts of addresses, for this node's certificate (unspecified ones skipped).
func hostsOf(addrs ...string) []string {
	var out []string
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			h = a
		}
		if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
			continue
		}
		out = append(out, h)
	}
	return out
}

// pkiInit creates (or keeps) a CA and an admin token in dir and says where they are.
func pkiInit(dir string) error {
	_, created, err := pki.LoadOrCreateCA(dir)
	if err != nil {
		return fmt.Errorf("--pki-init: %w", err)
	}
	if _, _, err := pki.LoadOrCreateAdminToken(dir); err != nil {
		return fmt.Errorf("--pki-init: %w", err)
	}
	what := "created"
	if !created {
		what = "kept the existing"
	}
	fmt.Printf("%s CA and admin token in %s: %s, %s, %s (mode 0600)\n", what, dir, pki.CACertFile, pki.CAKeyFile, pki.AdminTokenFile)
	return nil
}
