package pki

import (
	"crypto/tls"
	"fmt"
	"sync"
	"time"
)

// NodeCertSource serves a controller node's certificate and re-issues it from the CA when less
// than a third of its lifetime remains, so that a long-running node never serves an expired one.
type NodeCertSource struct {
	ca    *CA
	id    string
	hosts []string
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	current *tls.Certificate
}

// NewNodeCertSource issues the node's first certificate (see IssueNode). now is the clock; nil
// means time.Now.
func NewNodeCertSource(ca *CA, id string, hosts []string, ttl time.Duration, now func() time.Time) (*NodeCertSource, error) {
	if now == nil {
		now = time.Now
	}
	s := &NodeCertSource{ca: ca, id: id, hosts: append([]string(nil), hosts...), ttl: ttl, now: now}
	c, err := ca.IssueNode(id, s.hosts, ttl, now())
	if err != nil {
		return nil, err
	}
	s.current = &c
	return s, nil
}

// Certificate is the node's certificate, re-issued first when less than a third of its lifetime
// remains (or the clock is before its start). If re-issuing fails while the current certificate
// is still valid, that one is returned; it is tried again on the next call. It is safe for
// concurrent use.
func (s *NodeCertSource) Certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.now()
	leaf := s.current.Leaf
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	if !t.Before(leaf.NotBefore) && leaf.NotAfter.Sub(t) >= lifetime/3 {
		return s.current, nil
	}
	c, err := s.ca.IssueNode(s.id, s.hosts, s.ttl, t)
	if err != nil {
		if !t.Before(leaf.NotBefore) && t.Before(leaf.NotAfter) {
			return s.current, nil
		}
		return nil, fmt.Errorf("pki: re-issue node certificate: %w", err)
	}
	s.current = &c
	return s.current, nil
}

// GetCertificate is Certificate in the form of tls.Config.GetCertificate.
func (s *NodeCertSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.Certificate()
}

// GetClientCertificate is Certificate in the form of tls.Config.GetClientCertificate.
func (s *NodeCertSource) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.Certificate()
}
