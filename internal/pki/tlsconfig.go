package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// ServerTLS is a node's API: its own certificate, and client certificates of pool verified
// when a caller presents one (people may call with bearer tokens instead).
func ServerTLS(src *NodeCertSource, pool *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12, GetCertificate: src.GetCertificate,
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool,
	}
}

// PeerTLS is mutual TLS between the nodes of a group (Raft): both sides present their node
// certificate and accept only a node certificate issued by pool.
func PeerTLS(src *NodeCertSource, pool *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetCertificate:       src.GetCertificate,
		GetClientCertificate: src.GetClientCertificate,
		ClientAuth:           tls.RequireAndVerifyClientCert,
		ClientCAs:            pool,
		RootCAs:              pool,
		VerifyConnection:     requireNode,
	}
}

// ClientTLS is for the calls a node makes to other nodes' APIs (joining, forwarding to the
// leader): it trusts pool and presents the node's certificate.
func ClientTLS(src *NodeCertSource, pool *x509.CertPool) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, GetClientCertificate: src.GetClientCertificate}
}

// requireNode accepts a connection only when the peer's certificate is a node's.
func requireNode(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer presented no certificate")
	}
	id, err := IdentityOf(cs.PeerCertificates[0])
	if err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	if id.Kind != KindNode {
		return fmt.Errorf("peer is %s %q, not a controller node", id.Kind, id.Name)
	}
	return nil
}
