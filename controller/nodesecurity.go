package controller

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

	"github.com/ebbflow/ebbflow/internal/pki"
)

// nodeCertTTL is how long a node's own certificate lives; it is re-issued from the CA, in
// memory, when a third of that is left.
const nodeCertTTL = 30 * 24 * time.Hour

// SecurityOptions are a node's security settings. They are fleet-controller's flags, and
// errors name the flag (--pki-dir, --tokens-file, ...).
type SecurityOptions struct {
	NodeID string
	// Bootstrap: this node starts the group, and creates the CA and admin credential on its
	// first start; a joining node needs the group's CA in PKIDir.
	Bootstrap bool
	// Hosts are this node's names and addresses, for its certificate (TLSSANs are added, and
	// localhost).
	Hosts []string
	// PKIDir holds the CA and the admin token; DataDir/pki when empty.
	PKIDir, DataDir                              string
	TokensFile                                   string
	JWTIssuer, JWTAudience, JWTKey, JWTRoleClaim string
	TLSCert, TLSKey, TLSCA, TLSSANs              string
	Log                                          *slog.Logger
}

// NodeSecurity is the TLS and authentication wiring of one node: the group's CA, this node's
// certificate, and the TLS configurations of the API, of Raft and of calls to other nodes.
type NodeSecurity struct {
	CA   *pki.CA
	Node *pki.NodeCertSource
	// API serves the API; Raft is mutual TLS between nodes only.
	API, Raft *tls.Config
	// Peer calls other nodes (joining, forwarding to the leader) with this node's certificate.
	Peer   *http.Client
	Tokens []pki.StaticToken
	JWT    *JWTConfig
	// AdminTokenFile is the admin credential's file, when this node has one.
	AdminTokenFile string
}

// SetupSecurity loads (or, on a bootstrapping node's first start, creates) the CA and the
// admin credential in the PKI directory, and issues this node's certificate for its hosts.
func SetupSecurity(o SecurityOptions) (*NodeSecurity, error) {
	log, nodeID, bootstrap, hosts := o.Log, o.NodeID, o.Bootstrap, o.Hosts
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := o.PKIDir
	if dir == "" {
		dir = filepath.Join(o.DataDir, "pki")
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
	sec := &NodeSecurity{CA: ca}

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
		sec.AdminTokenFile = adminPath
		sec.Tokens = append(sec.Tokens, pki.StaticToken{Hash: sha256Of(tok), Name: "admin", Role: "admin"})
	}
	if o.TokensFile != "" {
		data, err := os.ReadFile(o.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file: %w", err)
		}
		toks, err := pki.ParseTokensFile(data)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file %s: %w", o.TokensFile, err)
		}
		sec.Tokens = append(sec.Tokens, toks...)
	}
	if o.JWTIssuer != "" || o.JWTKey != "" || o.JWTAudience != "" {
		if o.JWTIssuer == "" || o.JWTKey == "" || o.JWTAudience == "" {
			return nil, errors.New("--jwt-issuer, --jwt-audience and --jwt-key go together")
		}
		key, err := readPublicKey(o.JWTKey)
		if err != nil {
			return nil, fmt.Errorf("--jwt-key: %w", err)
		}
		sec.JWT = &JWTConfig{Issuer: o.JWTIssuer, Audience: o.JWTAudience, Key: key, RoleClaim: o.JWTRoleClaim}
	}

	for _, s := range strings.Split(o.TLSSANs, ",") {
		if s = strings.TrimSpace(s); s != "" {
			hosts = append(hosts, s)
		}
	}
	hosts = append(hosts, "localhost", "127.0.0.1", "::1")
	if sec.Node, err = pki.NewNodeCertSource(ca, nodeID, hosts, nodeCertTTL, time.Now); err != nil {
		return nil, fmt.Errorf("issuing this node's certificate: %w", err)
	}
	// The API: this node's certificate (or --tls-cert); client certificates of the CA are
	// optional (people may use bearer tokens instead). Raft: mutual TLS between nodes only.
	pool := ca.Pool()
	sec.API = pki.ServerTLS(sec.Node, pool)
	if o.TLSCert != "" {
		kp, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		sec.API.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	sec.Raft = pki.PeerTLS(sec.Node, pool)

	// Calls to other nodes (joining, forwarding to the leader) present this node's certificate.
	peerPool := ca.Pool()
	if o.TLSCA != "" {
		data, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		if !peerPool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--tls-ca: no PEM certificate in %s", o.TLSCA)
		}
	}
	sec.Peer = PeerClient(pki.ClientTLS(sec.Node, peerPool))
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

// HostsOf are the hosts of addresses, for this node's certificate (unspecified ones skipped).
func HostsOf(addrs ...string) []string {
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
