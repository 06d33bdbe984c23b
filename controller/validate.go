package controller

import (
	"net"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ebbflow/ebbflow/internal/pki"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// Limits on request fields, applied at the API boundary.
const (
	maxLabels      = 64
	maxReasonBytes = 1024
	maxPageSize    = 1000
	defPageSize    = 100
)

// issues collects a request's validation failures (profile.Issues) with the API's own checks.
type issues struct{ profile.Issues }

func (v issues) err() error {
	if len(v.Issues) == 0 {
		return nil
	}
	return invalid(v.Issues)
}

// labels checks Kubernetes-style label keys and values.
func (v *issues) labels(field string, m map[string]string) {
	if len(m) > maxLabels {
		v.Add(field, "max-items", "at most %d labels, got %d", maxLabels, len(m))
		return
	}
	for k, val := range m {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			v.Add(field+"["+shown(k)+"]", "label-key", "invalid label key: %s", strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(val); len(errs) > 0 {
			v.Add(field+"["+shown(k)+"]", "label-value", "invalid label value %q: %s", shown(val), strings.Join(errs, "; "))
		}
	}
}

// shown is a value as an error message quotes it: at most 64 bytes, so a huge value is not
// echoed back.
func shown(s string) string {
	if len(s) <= 64 {
		return s
	}
	return clip(s, 61) + "..."
}

// maxLen checks a free-text field's size.
func (v *issues) maxLen(field, s string, n int) {
	if len(s) > n {
		v.Add(field, "max-length", "at most %d bytes, got %d", n, len(s))
	}
}

// pageSize checks and defaults a page size.
func (v *issues) pageSize(field string, n int32) int {
	switch {
	case n < 0:
		v.Add(field, "range", "must not be negative")
	case n == 0:
		return defPageSize
	case n > maxPageSize:
		v.Add(field, "range", "at most %d", maxPageSize)
	}
	return int(n)
}

// hostPort checks a host:port address.
func (v *issues) hostPort(field, s string) {
	if s == "" {
		v.Add(field, "required", "must be set")
		return
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		v.Add(field, "host-port", "%q is not host:port", shown(s))
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		v.Add(field, "host-port", "port of %q must be 1..65535", shown(s))
	}
}

// csr checks a PEM certificate signing request: present, bounded, well formed, signed by its
// key, and of a key type and size the CA signs.
func (v *issues) csr(field, s string) {
	switch {
	case s == "":
		v.Add(field, "required", "must be set")
		return
	case len(s) > maxCSRBytes:
		v.Add(field, "max-length", "at most %d bytes, got %d", maxCSRBytes, len(s))
		return
	}
	if _, err := pki.ParseCSR([]byte(s)); err != nil {
		v.Add(field, "pem-csr", "%s", strings.TrimPrefix(err.Error(), "pki: "))
	}
}
