package probe

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func TestValidate(t *testing.T) {
	valid := map[ebbflowv1.ProbeKind]*ebbflowv1.ProbeSpec{
		kindHTTP:       newSpec(kindHTTP, "http://10.0.0.1:8080/healthz", 100, time.Second),
		kindRR:         newSpec(kindRR, "echo.default.svc:7007", 0, time.Second),
		kindCRR:        newSpec(kindCRR, "[fd00::1]:7007", 500, time.Second),
		kindThroughput: newSpec(kindThroughput, "10.0.0.2:7008", 0, time.Minute),
		kindProm:       {Kind: kindProm, Target: "https://prometheus.monitoring:9090/", Query: "x * 1000", Duration: durationpb.New(30 * time.Second)},
	}
	for kind, spec := range valid {
		if err := Validate(spec); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}

	edit := func(kind ebbflowv1.ProbeKind, f func(*ebbflowv1.ProbeSpec)) *ebbflowv1.ProbeSpec {
		s := newSpec(kind, valid[kind].Target, valid[kind].Rate, valid[kind].Duration.AsDuration())
		s.Query = valid[kind].Query
		f(s)
		return s
	}
	tests := []struct {
		name  string
		spec  *ebbflowv1.ProbeSpec
		field string
		msg   string
	}{
		{"nil", nil, "spec", "required"},
		{"no kind", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Kind = 0 }), "kind", "PROBE_KIND_UNSPECIFIED"},
		{"unknown kind", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Kind = 42 }), "kind", "42"},
		{"no target", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Target = "" }), "target", "required"},
		{"unparseable URL", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Target = "http://[::1" }), "target", "missing ']'"},
		{"URL scheme", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Target = "ftp://x/" }), "target", "http:// or https://"},
		{"URL without host", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Target = "http:///path" }), "target", "no host"},
		{"host:port for http", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Target = "10.0.0.1:80" }), "target", "http:// or https://"},
		{"prometheus with query string", edit(kindProm, func(s *ebbflowv1.ProbeSpec) { s.Target = "http://p:9090/api/v1/query?query=up" }), "target", "base URL"},
		{"tcp without port", edit(kindRR, func(s *ebbflowv1.ProbeSpec) { s.Target = "10.0.0.1" }), "target", "host:port"},
		{"tcp URL", edit(kindRR, func(s *ebbflowv1.ProbeSpec) { s.Target = "http://10.0.0.1:80" }), "target", "host:port"},
		{"tcp without host", edit(kindCRR, func(s *ebbflowv1.ProbeSpec) { s.Target = ":7007" }), "target", "no host"},
		{"tcp port 0", edit(kindThroughput, func(s *ebbflowv1.ProbeSpec) { s.Target = "h:0" }), "target", "between 1 and 65535"},
		{"tcp named port", edit(kindThroughput, func(s *ebbflowv1.ProbeSpec) { s.Target = "h:http" }), "target", "between 1 and 65535"},
		{"http rate 0", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Rate = 0 }), "rate", "must be > 0"},
		{"negative rate", edit(kindRR, func(s *ebbflowv1.ProbeSpec) { s.Rate = -1 }), "rate", ">= 0"},
		{"NaN rate", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Rate = math.NaN() }), "rate", "finite"},
		{"infinite rate", edit(kindRR, func(s *ebbflowv1.ProbeSpec) { s.Rate = math.Inf(1) }), "rate", "finite"},
		{"rate too high", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Rate = 2e6 }), "rate", "at most"},
		{"throughput with rate", edit(kindThroughput, func(s *ebbflowv1.ProbeSpec) { s.Rate = 10 }), "rate", "not used"},
		{"no duration", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Duration = nil }), "duration", "required"},
		{"zero duration", edit(kindRR, func(s *ebbflowv1.ProbeSpec) { s.Duration = durationpb.New(0) }), "duration", "> 0"},
		{"negative duration", edit(kindRR, func(s *ebbflowv1.ProbeSpec) { s.Duration = durationpb.New(-time.Second) }), "duration", "negative"},
		{"duration over 10m", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Duration = durationpb.New(11 * time.Minute) }), "duration", "at most 10m0s"},
		{"malformed duration", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Duration = &durationpb.Duration{Seconds: 1, Nanos: -1} }), "duration", "invalid"},
		{"negative timeout", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Timeout = durationpb.New(-time.Second) }), "timeout", "negative"},
		{"prometheus without query", edit(kindProm, func(s *ebbflowv1.ProbeSpec) { s.Query = "" }), "query", "required"},
		{"query on http", edit(kindHTTP, func(s *ebbflowv1.ProbeSpec) { s.Query = "up" }), "query", "only used by PROBE_KIND_PROMETHEUS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.spec)
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate = %v, want a *ValidationError wrapping ErrInvalid", err)
			}
			if ve.Field != tt.field || !strings.Contains(ve.Reason, tt.msg) {
				t.Errorf("field %q reason %q, want field %q and %q", ve.Field, ve.Reason, tt.field, tt.msg)
			}
			if !strings.Contains(err.Error(), tt.field+": ") {
				t.Errorf("message %q does not name the field", err)
			}
			if res, err := Run(context.Background(), tt.spec, Options{}); res != nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("Run measured an invalid spec: %v, %v", res, err)
			}
		})
	}
}

func TestValidateSettings(t *testing.T) {
	good := &ebbflowv1.ProbeSettings{
		Probes:  []*ebbflowv1.ProbeSpec{newSpec(kindHTTP, "http://a/", 10, time.Second), newSpec(kindRR, "a:1", 0, time.Second)},
		Windows: 5,
		Warmup:  durationpb.New(5 * time.Second),
	}
	if err := ValidateSettings(good); err != nil {
		t.Fatal(err)
	}
	if o := OptionsFromSettings(good); o.Windows != 5 || o.Warmup != 5*time.Second {
		t.Errorf("OptionsFromSettings = %+v", o)
	}
	bad := []struct {
		s     *ebbflowv1.ProbeSettings
		field string
	}{
		{nil, "settings"},
		{&ebbflowv1.ProbeSettings{Windows: -1}, "windows"},
		{&ebbflowv1.ProbeSettings{Windows: MaxWindows + 1}, "windows"},
		{&ebbflowv1.ProbeSettings{Warmup: durationpb.New(time.Hour)}, "warmup"},
		{&ebbflowv1.ProbeSettings{Probes: []*ebbflowv1.ProbeSpec{good.Probes[0], newSpec(kindRR, "a", 0, time.Second)}}, "probes[1].target"},
	}
	for _, tt := range bad {
		var ve *ValidationError
		if err := ValidateSettings(tt.s); !errors.As(err, &ve) || ve.Field != tt.field {
			t.Errorf("ValidateSettings(%v) = %v, want field %q", tt.s, err, tt.field)
		}
	}
}

func TestOptionsValidated(t *testing.T) {
	spec := newSpec(kindRR, "127.0.0.1:1", 0, time.Second)
	for field, o := range map[string]Options{
		"options.windows":     {Windows: -1},
		"options.warmup":      {Warmup: -time.Second},
		"options.max_samples": {MaxSamples: -5},
		"options.connections": {Connections: MaxConnections + 1},
	} {
		var ve *ValidationError
		if _, err := Run(context.Background(), spec, o); !errors.As(err, &ve) || ve.Field != field {
			t.Errorf("%+v: error %v, want field %s", o, err, field)
		}
	}
}

func TestDefaultConnections(t *testing.T) {
	for rate, want := range map[float64]int{1: 8, 200: 8, 201: 9, 1000: 40, 1e6: 256} {
		if got := DefaultConnections(rate); got != want {
			t.Errorf("DefaultConnections(%v) = %d, want %d", rate, got, want)
		}
	}
}

// fakeClock returns t0, t0+1s, t0+2s, ... for Result.Start and Result.End.
func fakeClock(t0 time.Time) func() time.Time {
	n := 0
	return func() time.Time {
		n++
		return t0.Add(time.Duration(n-1) * time.Second)
	}
}

func TestProto(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	spec := newSpec(kindProm, promServer(t, "q", 200, promVector("1.5"), promVector("2.5"), promVector("100")), 0, 5*time.Millisecond)
	spec.Query = "q"
	res := mustRun(t, spec, Options{Windows: 3, Now: fakeClock(t0)})
	m := res.Proto()

	if m.GetKind() != kindProm || m.GetTarget() != spec.Target || m.GetWindows() != 3 {
		t.Errorf("kind %v target %q windows %d", m.GetKind(), m.GetTarget(), m.GetWindows())
	}
	if !m.GetStartTime().AsTime().Equal(t0) || !m.GetEndTime().AsTime().Equal(t0.Add(time.Second)) {
		t.Errorf("start %v end %v, want the injected clock's %v and +1s", m.GetStartTime().AsTime(), m.GetEndTime().AsTime(), t0)
	}
	l := m.GetLatency()
	if l.GetCount() != 3 || l.GetErrors() != 0 || l.GetMinMs() != 1.5 || l.GetMaxMs() != 100 || l.GetMeanMs() != 104.0/3 {
		t.Errorf("latency summary %v", l)
	}
	if l.GetP50Ms() != res.P50Ms || l.GetP90Ms() != res.P90Ms || l.GetP99Ms() != res.P99Ms || l.GetP999Ms() != res.P999Ms {
		t.Errorf("percentiles %v, result %+v", l, res)
	}
	if !slices.Equal(m.GetSamplesMs(), []float64{1.5, 2.5, 100}) {
		t.Errorf("samples %v", m.GetSamplesMs())
	}
	h, err := DecodeHistogram(m.GetHdrHistogram())
	if err != nil {
		t.Fatal(err)
	}
	if h.TotalCount() != 3 || !h.Equals(res.Histogram) {
		t.Errorf("decoded histogram holds %d values, equal to the result's: %v", h.TotalCount(), h.Equals(res.Histogram))
	}
	if got := float64(h.ValueAtQuantile(50)) / 1e6; math.Abs(got-2.5) > 0.01 {
		t.Errorf("decoded p50 %vms, want 2.5ms", got)
	}
	// The binary V2 compressed encoding starts with its cookie.
	if b := m.GetHdrHistogram(); len(b) < 8 || b[0] != 0x1c || b[1] != 0x84 || b[2] != 0x93 || b[3] != 0x14 {
		t.Errorf("hdr_histogram does not start with the V2 compressed cookie: % x", b[:min(len(b), 8)])
	}

	// The proto owns its samples.
	m.SamplesMs[0] = -1
	if res.SamplesMs[0] != 1.5 {
		t.Error("Proto shares the samples slice")
	}
	empty := (&Result{Kind: kindThroughput, ThroughputBps: 42, SamplesMs: []float64{40, 44}}).Proto()
	if empty.GetHdrHistogram() != nil || empty.GetStartTime() != nil || empty.GetThroughputBps() != 42 || len(empty.GetSamplesMs()) != 2 {
		t.Errorf("throughput proto %v", empty)
	}
}

func TestRecorderSampleCap(t *testing.T) {
	const limit, n = 1000, 50_000
	record := func() *Result {
		rec := newRecorder(limit)
		for i := 1; i <= n; i++ {
			rec.observe(time.Duration(i) * time.Microsecond)
		}
		res := &Result{}
		rec.fill(res)
		return res
	}
	a, b := record(), record()
	if len(a.SamplesMs) != limit || a.Count != n || a.Histogram.TotalCount() != n {
		t.Fatalf("%d samples, count %d, histogram %d; want %d kept of %d", len(a.SamplesMs), a.Count, a.Histogram.TotalCount(), limit, n)
	}
	if !slices.Equal(a.SamplesMs, b.SamplesMs) {
		t.Error("the reservoir is not deterministic")
	}
	// A uniform subset: its median is near the population's, and it reaches past the first
	// `limit` values.
	s := slices.Clone(a.SamplesMs)
	slices.Sort(s)
	if med := s[len(s)/2]; med < 20 || med > 30 {
		t.Errorf("median of kept samples %vms, want about 25ms", med)
	}
	if s[len(s)-1] <= float64(limit)/1000 {
		t.Error("only the first samples were kept")
	}
	// The summary still covers every value, not only the kept ones.
	if math.Abs(a.P50Ms-25) > 0.05 || a.MinMs != 0.001 || a.MaxMs != 50 {
		t.Errorf("p50 %v min %v max %v", a.P50Ms, a.MinMs, a.MaxMs)
	}
}

func TestRunSampleCap(t *testing.T) {
	ln := startEcho(t, 1, nil)
	res := mustRun(t, newSpec(kindRR, ln.Addr().String(), 0, 100*time.Millisecond), Options{Windows: 1, MaxSamples: 10})
	if len(res.SamplesMs) != 10 || res.Count <= 10 || res.Histogram.TotalCount() != res.Count {
		t.Errorf("%d samples for %d round trips (histogram %d), want 10 kept", len(res.SamplesMs), res.Count, res.Histogram.TotalCount())
	}
	if len(res.Proto().GetSamplesMs()) != 10 {
		t.Error("proto samples not capped")
	}
}
