// Package probespec holds the rules a probe's settings must meet (ProbeSpec, ProbeSettings):
// what the agent's probes can run, checked where a rollout is created (rollout.CheckSpec) as
// well as where the agent measures (agent/probe), so a probe the agent would refuse is refused
// at creation instead of failing every cluster's phase. Pure: no I/O.
package probespec

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Limits and defaults of every measurement of a rollout (baseline and phases run with the
// same settings).
const (
	// DefaultWindows is the number of measurement windows when ProbeSettings.windows is 0.
	DefaultWindows = 3
	// MaxWindows bounds ProbeSettings.windows.
	MaxWindows = 100
	// DefaultTimeout bounds one operation (request, round trip, connect, query) when the spec
	// has no timeout.
	DefaultTimeout = 5 * time.Second
	// MaxDuration bounds a window's duration, the warm-up and a spec's timeout.
	MaxDuration = 10 * time.Minute
	// MaxRate bounds a spec's rate, in operations per second.
	MaxRate = 1_000_000
)

// ErrInvalid is wrapped by every *Error: the spec or settings are unusable.
var ErrInvalid = errors.New("invalid probe configuration")

// Error names the field of a ProbeSpec or ProbeSettings that is unusable.
type Error struct {
	// Field is the field's path, e.g. "rate", "probes[2].target" or "options.windows".
	Field string
	// Reason says what is wrong and what is allowed.
	Reason string
}

func (e *Error) Error() string { return "probe: " + e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true for every Error.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Invalid returns the *Error of field.
func Invalid(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks one ProbeSpec and returns a *ValidationError naming the first unusable
// field:
//
//   - kind: one of HTTP, TCP_RR, TCP_CRR, THROUGHPUT, PROMETHEUS;
//   - target: required; an http(s) URL with a host for HTTP, an http(s) base URL without a
//     query for PROMETHEUS, host:port with a numeric port for the TCP kinds and THROUGHPUT;
//   - rate: finite and at most MaxRate; > 0 for HTTP; >= 0 for TCP_RR and TCP_CRR (0 means
//     as fast as possible); unset for THROUGHPUT and PROMETHEUS;
//   - duration: required, > 0 and <= MaxDuration (it is the length of one window);
//   - timeout: optional (0 means DefaultTimeout), <= MaxDuration;
//   - query: required for PROMETHEUS, unset otherwise.
func Validate(spec *ebbflowv1.ProbeSpec) error {
	return validateSpec("", spec)
}

// ValidateSettings checks the windows, the warm-up and every probe of s; fields of probes
// are named "probes[i].field".
func ValidateSettings(s *ebbflowv1.ProbeSettings) error {
	if s == nil {
		return Invalid("settings", "required")
	}
	if w := s.GetWindows(); w < 0 || w > MaxWindows {
		return Invalid("windows", "must be between 0 (default %d) and %d, got %d", DefaultWindows, MaxWindows, w)
	}
	if s.GetWarmup() != nil {
		if err := checkDuration("warmup", s.GetWarmup(), true); err != nil {
			return err
		}
	}
	for i, p := range s.GetProbes() {
		if err := validateSpec(fmt.Sprintf("probes[%d].", i), p); err != nil {
			return err
		}
	}
	return nil
}

func validateSpec(prefix string, spec *ebbflowv1.ProbeSpec) error {
	if spec == nil {
		return Invalid(prefix+"spec", "required")
	}
	kind := spec.GetKind()
	switch kind {
	case ebbflowv1.ProbeKind_PROBE_KIND_HTTP, ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR,
		ebbflowv1.ProbeKind_PROBE_KIND_TCP_CRR, ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT,
		ebbflowv1.ProbeKind_PROBE_KIND_PROMETHEUS:
	default:
		return Invalid(prefix+"kind", "must be one of PROBE_KIND_HTTP, PROBE_KIND_TCP_RR, PROBE_KIND_TCP_CRR, PROBE_KIND_THROUGHPUT, PROBE_KIND_PROMETHEUS, got %s", kind)
	}
	if err := checkTarget(prefix+"target", kind, spec.GetTarget()); err != nil {
		return err
	}

	rate := spec.GetRate()
	switch {
	case math.IsNaN(rate) || math.IsInf(rate, 0):
		return Invalid(prefix+"rate", "must be a finite number, got %v", rate)
	case rate > MaxRate:
		return Invalid(prefix+"rate", "must be at most %d per second, got %v", MaxRate, rate)
	case kind == ebbflowv1.ProbeKind_PROBE_KIND_HTTP && rate <= 0:
		return Invalid(prefix+"rate", "must be > 0 requests per second for %s, got %v", kind, rate)
	case rate < 0:
		return Invalid(prefix+"rate", "must be >= 0 (0 means as fast as possible), got %v", rate)
	case rate != 0 && (kind == ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT || kind == ebbflowv1.ProbeKind_PROBE_KIND_PROMETHEUS):
		return Invalid(prefix+"rate", "is not used by %s; leave it 0, got %v", kind, rate)
	}

	if err := checkDuration(prefix+"duration", spec.GetDuration(), false); err != nil {
		return err
	}
	if spec.GetTimeout() != nil {
		if err := checkDuration(prefix+"timeout", spec.GetTimeout(), true); err != nil {
			return err
		}
	}

	switch q := spec.GetQuery(); {
	case kind == ebbflowv1.ProbeKind_PROBE_KIND_PROMETHEUS && q == "":
		return Invalid(prefix+"query", "required for %s (PromQL returning milliseconds)", kind)
	case kind != ebbflowv1.ProbeKind_PROBE_KIND_PROMETHEUS && q != "":
		return Invalid(prefix+"query", "is only used by PROBE_KIND_PROMETHEUS, not %s", kind)
	}
	return nil
}

func checkTarget(field string, kind ebbflowv1.ProbeKind, target string) error {
	if target == "" {
		return Invalid(field, "required")
	}
	switch kind {
	case ebbflowv1.ProbeKind_PROBE_KIND_HTTP, ebbflowv1.ProbeKind_PROBE_KIND_PROMETHEUS:
		u, err := url.Parse(target)
		if err != nil {
			return Invalid(field, "must be an http:// or https:// URL: %v", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return Invalid(field, "must be an http:// or https:// URL, got %q", target)
		}
		if u.Host == "" {
			return Invalid(field, "URL %q has no host", target)
		}
		if kind == ebbflowv1.ProbeKind_PROBE_KIND_PROMETHEUS && (u.RawQuery != "" || u.Fragment != "") {
			return Invalid(field, "must be the Prometheus base URL without query or fragment, got %q", target)
		}
	default:
		host, port, err := net.SplitHostPort(target)
		if err != nil {
			return Invalid(field, "must be host:port, got %q: %v", target, err)
		}
		if host == "" {
			return Invalid(field, "host:port %q has no host", target)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return Invalid(field, "port of %q must be a number between 1 and 65535", target)
		}
	}
	return nil
}

func checkDuration(field string, d *durationpb.Duration, zeroOK bool) error {
	if d == nil {
		return Invalid(field, "required")
	}
	if err := d.CheckValid(); err != nil {
		return Invalid(field, "invalid: %v", err)
	}
	v := d.AsDuration()
	switch {
	case v < 0:
		return Invalid(field, "must not be negative, got %s", v)
	case v == 0 && !zeroOK:
		return Invalid(field, "must be > 0")
	case v > MaxDuration:
		return Invalid(field, "must be at most %s, got %s", MaxDuration, v)
	}
	return nil
}

// MeasuringTime is how long an agent measures one phase with settings s, during which it sends
// no report: each probe's warm-up and its windows, one probe after the other. It counts each
// window at its duration; an operation still in flight at a window's end may add up to its
// timeout.
//
// For example, two probes of 2m windows with the default 3 windows and a 30s warm-up measure
// for 2 × (30s + 3 × 2m) = 13m.
func MeasuringTime(s *ebbflowv1.ProbeSettings) time.Duration {
	windows := time.Duration(s.GetWindows())
	if windows == 0 {
		windows = DefaultWindows
	}
	var total time.Duration
	for _, p := range s.GetProbes() {
		total += s.GetWarmup().AsDuration() + windows*p.GetDuration().AsDuration()
	}
	return total
}
