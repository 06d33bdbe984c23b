package controller

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Limits on request fields, applied at the API boundary.
const (
	maxLabels      = 64
	maxReasonBytes = 1024
	maxPageSize    = 1000
	defPageSize    = 100
)

// issues collects validation failures, each naming the field and the rule.
type issues []*ebbflowv1.ValidationIssue

func (v *issues) add(field, rule, format string, args ...any) {
	*v = append(*v, &ebbflowv1.ValidationIssue{Field: field, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

func (v issues) err() error {
	if len(v) == 0 {
		return nil
	}
	return invalid(v)
}

// name checks a DNS-label name (profiles, clusters, rollouts, nodes).
func (v *issues) name(field, s string) {
	if s == "" {
		v.add(field, "required", "must be set")
		return
	}
	if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
		v.add(field, "dns-label", "%q is not a DNS label: %s", s, strings.Join(errs, "; "))
	}
}

// labels checks Kubernetes-style label keys and values.
func (v *issues) labels(field string, m map[string]string) {
	if len(m) > maxLabels {
		v.add(field, "max-items", "at most %d labels, got %d", maxLabels, len(m))
		return
	}
	for k, val := range m {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			v.add(field+"["+k+"]", "label-key", "invalid label key: %s", strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(val); len(errs) > 0 {
			v.add(field+"["+k+"]", "label-value", "invalid label value %q: %s", val, strings.Join(errs, "; "))
		}
	}
}

// maxLen checks a free-text field's size.
func (v *issues) maxLen(field, s string, n int) {
	if len(s) > n {
		v.add(field, "max-length", "at most %d bytes, got %d", n, len(s))
	}
}

// pageSize checks and defaults a page size.
func (v *issues) pageSize(field string, n int32) int {
	switch {
	case n < 0:
		v.add(field, "range", "must not be negative")
	case n == 0:
		return defPageSize
	case n > maxPageSize:
		v.add(field, "range", "at most %d", maxPageSize)
	}
	return int(n)
}

// nodeID checks a controller node id: letters, digits, '-', '_' and '.', at most 64.
func (v *issues) nodeID(field, s string) {
	if s == "" {
		v.add(field, "required", "must be set")
		return
	}
	if len(s) > 64 {
		v.add(field, "max-length", "at most 64 bytes")
		return
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			v.add(field, "node-id", "%q may only hold letters, digits, '-', '_' and '.'", s)
			return
		}
	}
}

// hostPort checks a host:port address.
func (v *issues) hostPort(field, s string) {
	if s == "" {
		v.add(field, "required", "must be set")
		return
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		v.add(field, "host-port", "%q is not host:port", s)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		v.add(field, "host-port", "port of %q must be 1..65535", s)
	}
}

// joinTokenID checks the public half of a join token.
func (v *issues) joinTokenID(field, s string) {
	if _, _, err := pki.ParseJoinToken(s + ".0000000000000000"); err != nil {
		v.add(field, "join-token-id", "%q is not a join token id: 6 characters of a-z and 0-9", s)
	}
}

// csr checks a PEM certificate signing request: present, bounded, well formed and signed by
// its key.
func (v *issues) csr(field, s string) {
	switch {
	case s == "":
		v.add(field, "required", "must be set")
		return
	case len(s) > maxCSRBytes:
		v.add(field, "max-length", "at most %d bytes, got %d", maxCSRBytes, len(s))
		return
	}
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		v.add(field, "pem-csr", "not a PEM \"CERTIFICATE REQUEST\"")
		return
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		v.add(field, "pem-csr", "%v", err)
	}
}
