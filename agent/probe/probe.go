package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/probespec"
)

// Defaults and limits. They are fixed so that every measurement of a rollout (baseline and
// phases) runs with the same settings. The rules of a spec are rollout/probespec's, shared
// with the controller, which refuses at creation what the agent would refuse.
const (
	// DefaultWindows is the number of measurement windows when Options.Windows is 0.
	DefaultWindows = probespec.DefaultWindows
	// MaxWindows bounds Options.Windows and ProbeSettings.windows.
	MaxWindows = probespec.MaxWindows
	// DefaultMaxSamples bounds the raw samples kept per Result when Options.MaxSamples is 0.
	DefaultMaxSamples = 100_000
	// DefaultTimeout bounds one operation (request, round trip, connect, query) when the spec
	// has no timeout.
	DefaultTimeout = probespec.DefaultTimeout
	// MaxDuration bounds a window's duration, the warm-up and a spec's timeout.
	MaxDuration = probespec.MaxDuration
	// MaxRate bounds a spec's rate, in operations per second.
	MaxRate = probespec.MaxRate
	// MaxConnections bounds the HTTP probe's pool of connections.
	MaxConnections = 1024
)

// Sentinel errors. Errors returned by Run and Validate wrap them; test with errors.Is.
var (
	// ErrInvalid is wrapped by every *ValidationError: the spec, settings or options are
	// unusable and nothing was measured.
	ErrInvalid = probespec.ErrInvalid
	// ErrNoSuccess means every operation of every window failed; the Result still carries the
	// error count and the last error.
	ErrNoSuccess = errors.New("no successful operation")
	// ErrEmptyResult means a Prometheus query returned no series.
	ErrEmptyResult = errors.New("prometheus query returned an empty result")
)

// ValidationError names the field of a ProbeSpec, ProbeSettings or Options that is unusable.
type ValidationError = probespec.Error

// Validate checks one ProbeSpec (probespec.Validate).
func Validate(spec *ebbflowv1.ProbeSpec) error { return probespec.Validate(spec) }

// ValidateSettings checks the windows, the warm-up and every probe of s
// (probespec.ValidateSettings).
func ValidateSettings(s *ebbflowv1.ProbeSettings) error { return probespec.ValidateSettings(s) }

var invalid = probespec.Invalid

// Dialer opens connections for the TCP, throughput and default HTTP clients. *net.Dialer
// implements it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options are the agent-side settings of a measurement. The zero value is usable.
type Options struct {
	// Windows is the number of measurement windows; 0 means DefaultWindows.
	Windows int
	// Warmup is run once before the first window, exactly like a window, and discarded.
	// 0 means no warm-up.
	Warmup time.Duration
	// HTTPClient is used by the HTTP and Prometheus probes. nil means a client owned by the
	// probe with keep-alive, one idle connection per worker and Dialer for its connections.
	HTTPClient *http.Client
	// Dialer opens TCP connections; nil means a *net.Dialer with keep-alive.
	Dialer Dialer
	// MaxSamples bounds the raw samples in a Result; 0 means DefaultMaxSamples. When there
	// are more, a deterministic reservoir keeps a uniform subset of them.
	MaxSamples int
	// Connections is the HTTP probe's number of workers, each with its own connection;
	// 0 means DefaultConnections(rate).
	Connections int
	// Now reads the wall clock for Result.Start and Result.End; nil means time.Now.
	// Latencies are always measured on the monotonic clock.
	Now func() time.Time
}

// DefaultConnections is the HTTP probe's worker count for a rate when Options.Connections is
// 0: one connection per 25 requests per second, at least 8 and at most 256. It depends only
// on the rate, so every measurement of a profile uses the same pool.
func DefaultConnections(rate float64) int {
	n := int(math.Ceil(rate / 25))
	return min(max(n, 8), 256)
}

// OptionsFromSettings returns Options carrying the windows and warm-up of settings; the
// caller adds its clients.
func OptionsFromSettings(s *ebbflowv1.ProbeSettings) Options {
	return Options{
		Windows: int(s.GetWindows()),
		Warmup:  s.GetWarmup().AsDuration(),
	}
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Windows < 0 || o.Windows > MaxWindows:
		return o, invalid("options.windows", "must be between 0 (default %d) and %d, got %d", DefaultWindows, MaxWindows, o.Windows)
	case o.Warmup < 0 || o.Warmup > MaxDuration:
		return o, invalid("options.warmup", "must be between 0 and %s, got %s", MaxDuration, o.Warmup)
	case o.MaxSamples < 0:
		return o, invalid("options.max_samples", "must be >= 0 (0 means %d), got %d", DefaultMaxSamples, o.MaxSamples)
	case o.Connections < 0 || o.Connections > MaxConnections:
		return o, invalid("options.connections", "must be between 0 (default) and %d, got %d", MaxConnections, o.Connections)
	}
	if o.Windows == 0 {
		o.Windows = DefaultWindows
	}
	if o.MaxSamples == 0 {
		o.MaxSamples = DefaultMaxSamples
	}
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{KeepAlive: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// prober is one kind of probe bound to one spec.
type prober interface {
	// prepare runs once before the warm-up; an error aborts the measurement.
	prepare(ctx context.Context) error
	// window runs one window of length d and records into rec. It returns how long the
	// window really took (it can overrun d while in-flight operations finish). An error
	// aborts the measurement; failed operations are recorded in rec instead.
	window(ctx context.Context, d time.Duration, rec *recorder) (time.Duration, error)
	// close releases connections.
	close()
}

// Run validates spec and opts, then measures: prepare, warm-up (discarded), opts.Windows
// windows of the spec's duration, and the summary. It returns a Result whenever measuring
// started, also together with an error: ctx's error when cancelled (the Result holds the
// windows completed so far), or ErrNoSuccess when no operation succeeded at all.
func Run(ctx context.Context, spec *ebbflowv1.ProbeSpec, opts Options) (*Result, error) {
	if err := Validate(spec); err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p := newProber(spec, o)
	defer p.close()

	res := &Result{Kind: spec.GetKind(), Target: spec.GetTarget(), Start: o.Now()}
	rec := newRecorder(o.MaxSamples)
	finish := func(err error) (*Result, error) {
		res.End = o.Now()
		rec.fill(res)
		switch k := res.Kind; {
		case res.Measured <= 0:
		case k == ebbflowv1.ProbeKind_PROBE_KIND_HTTP, k == ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR, k == ebbflowv1.ProbeKind_PROBE_KIND_TCP_CRR:
			// Achieved successful operations per second over the measured windows.
			res.OpsPerSecond = float64(res.Count) / res.Measured.Seconds()
		}
		if err == nil && res.Count == 0 {
			err = fmt.Errorf("%w: %d errors in %d windows against %s", ErrNoSuccess, res.Errors, res.Windows, res.Target)
			if rec.lastErr != nil {
				err = fmt.Errorf("%w: %d errors in %d windows against %s, last: %w", ErrNoSuccess, res.Errors, res.Windows, res.Target, rec.lastErr)
			}
		}
		return res, err
	}
	if err := p.prepare(ctx); err != nil {
		return finish(err)
	}
	if o.Warmup > 0 {
		if _, err := p.window(ctx, o.Warmup, newRecorder(0)); err != nil {
			return finish(err)
		}
	}
	d := spec.GetDuration().AsDuration()
	for range o.Windows {
		took, err := p.window(ctx, d, rec)
		res.Measured += took
		if err != nil {
			return finish(err)
		}
		res.Windows++
	}
	return finish(ctx.Err())
}

func newProber(spec *ebbflowv1.ProbeSpec, o Options) prober {
	timeout := spec.GetTimeout().AsDuration()
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	switch spec.GetKind() {
	case ebbflowv1.ProbeKind_PROBE_KIND_HTTP:
		return newHTTPProber(spec.GetTarget(), spec.GetRate(), timeout, o)
	case ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR:
		return &rrProber{dialer: o.Dialer, target: spec.GetTarget(), rate: spec.GetRate(), timeout: timeout}
	case ebbflowv1.ProbeKind_PROBE_KIND_TCP_CRR:
		return &rrProber{dialer: o.Dialer, target: spec.GetTarget(), rate: spec.GetRate(), timeout: timeout, connectEach: true}
	case ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT:
		return &throughputProber{dialer: o.Dialer, target: spec.GetTarget(), timeout: timeout}
	default: // PROBE_KIND_PROMETHEUS; Validate rejects every other kind.
		return newPromProber(spec.GetTarget(), spec.GetQuery(), timeout, o)
	}
}

// sleepUntil waits until t or until ctx is done.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// waitForSlot waits for a fixed-rate slot and returns the time the operation's latency is
// measured from. A slot already in the past means the operation is overdue because the
// probe was busy with earlier operations (a slow or stalled target): the latency counts
// from the intended time, so the wait is charged to the target (coordinated omission). A
// slot in the future means nothing is queued: the probe sleeps until it and counts from
// when it woke, so its own timer slack is not charged to the target.
func waitForSlot(ctx context.Context, intended time.Time) (time.Time, error) {
	if !time.Now().Before(intended) {
		return intended, ctx.Err()
	}
	if err := sleepUntil(ctx, intended); err != nil {
		return intended, err
	}
	return time.Now(), nil
}

// scheduled returns the number of operations a window of d holds at rate, at least one.
func scheduled(rate float64, d time.Duration) int64 {
	return max(int64(math.Round(rate*d.Seconds())), 1)
}

// intendedAt is the i-th slot of a fixed-rate schedule starting at t0.
func intendedAt(t0 time.Time, i int64, rate float64) time.Time {
	return t0.Add(time.Duration(float64(i) * float64(time.Second) / rate))
}
