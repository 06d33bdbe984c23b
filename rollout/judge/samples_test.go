package judge_test

import (
	"encoding/base64"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ebbflow/ebbflow/rollout/judge"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// encodeHistogram records the latencies (ms) as integer nanoseconds in the
// agent's probe geometry (1 ns to 1 h, 3 significant digits) and returns the
// V2 compressed encoding in base64 text form.
func encodeHistogram(t testing.TB, ms []float64, counts []int64) []byte {
	t.Helper()
	h := hdrhistogram.New(1, int64(time.Hour), 3)
	for i, v := range ms {
		n := int64(1)
		if counts != nil {
			n = counts[i]
		}
		if err := h.RecordValues(int64(math.Round(v*judge.HDRUnitsPerMs)), n); err != nil {
			t.Fatalf("record %v: %v", v, err)
		}
	}
	enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return enc
}

func TestSamplesFromHDRRoundTrip(t *testing.T) {
	want := latencies(9, 5000, 2, 0.5, 1)
	text := encodeHistogram(t, want, nil)
	raw, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	for _, tt := range []struct {
		name string
		enc  []byte
	}{
		{"base64 text", text},
		{"base64 text with newline", append(slices.Clone(text), '\n')},
		{"raw binary", raw},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := judge.SamplesFrom([]*ebbflowv1.Measurement{{
				Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, HdrHistogram: tt.enc,
			}})
			if err != nil {
				t.Fatalf("SamplesFrom: %v", err)
			}
			if len(s.LatencyMs) != len(want) {
				t.Fatalf("%d samples, want %d", len(s.LatencyMs), len(want))
			}
			got := slices.Clone(s.LatencyMs)
			slices.Sort(got)
			// Each value comes back as its bucket's midpoint: within 3 significant
			// digits (0.1%) of the recorded nanoseconds, plus the rounding to them.
			for i := range want {
				if d := math.Abs(got[i] - want[i]); d > want[i]*1e-3+1e-6 {
					t.Fatalf("value %d: %v, want %v (off by %v)", i, got[i], want[i], d)
				}
			}
			for _, q := range []float64{0.5, 0.9, 0.99} {
				g, w := judge.Percentile(got, q), judge.Percentile(want, q)
				if math.Abs(g-w)/w > 1e-3 {
					t.Errorf("q%v: %v, want %v", q, g, w)
				}
			}
		})
	}
}

func TestSamplesFromHDRThinned(t *testing.T) {
	// 1.2 million recorded values: 60% at 1 ms, 30% at 5 ms, 10% at 40 ms.
	enc := encodeHistogram(t, []float64{1, 5, 40}, []int64{720_000, 360_000, 120_000})
	s, err := judge.SamplesFrom([]*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR, HdrHistogram: enc}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.LatencyMs) != judge.MaxHistogramSamples {
		t.Fatalf("%d samples, want the cap %d", len(s.LatencyMs), judge.MaxHistogramSamples)
	}
	count := map[float64]int{}
	for _, v := range s.LatencyMs {
		count[math.Round(v)]++
	}
	want := map[float64]int{1: 60_000, 5: 30_000, 40: 10_000}
	for v, n := range want {
		if count[v] != n {
			t.Errorf("%v ms: %d samples, want %d (all: %v)", v, count[v], n, count)
		}
	}
}

func TestSamplesFrom(t *testing.T) {
	hdr := encodeHistogram(t, []float64{0.25, 1.5}, nil)
	tests := []struct {
		name        string
		in          []*ebbflowv1.Measurement
		wantLatency []float64 // sorted
		wantThr     float64
		wantErr     string
	}{
		{name: "nothing", in: nil},
		{
			name: "latency probes pooled, others skipped",
			in: []*ebbflowv1.Measurement{
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: []float64{1, 2}},
				nil,
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR, SamplesMs: []float64{0.5}},
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_TCP_CRR, HdrHistogram: hdr},
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_PROMETHEUS, SamplesMs: []float64{99}},
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_UNSPECIFIED, SamplesMs: []float64{98}},
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Latency: &ebbflowv1.LatencySummary{P50Ms: 7}}, // summary only
			},
			wantLatency: []float64{0.25, 0.5, 1, 1.5, 2},
		},
		{
			// The controller keeps a few thousand raw samples but the whole histogram.
			name: "the histogram preferred when it records more values than samples_ms holds",
			in: []*ebbflowv1.Measurement{
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: []float64{10}, HdrHistogram: hdr},
			},
			wantLatency: []float64{0.25, 1.5},
		},
		{
			name: "raw samples preferred when they are at least as many",
			in: []*ebbflowv1.Measurement{
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: []float64{10, 11}, HdrHistogram: hdr},
			},
			wantLatency: []float64{10, 11},
		},
		{
			name: "invalid raw samples are an error even beside a histogram",
			in: []*ebbflowv1.Measurement{
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: []float64{math.Inf(1)}, HdrHistogram: hdr},
			},
			wantErr: "invalid latency sample +Inf",
		},
		{
			name: "a corrupt histogram is an error even beside raw samples",
			in: []*ebbflowv1.Measurement{
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: []float64{1, 2, 3}, HdrHistogram: []byte("garbage")},
			},
			wantErr: "decode hdr histogram",
		},
		{
			name: "throughput is the mean of the throughput probes",
			in: []*ebbflowv1.Measurement{
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT, ThroughputBps: 1e9, Windows: 3},
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT, ThroughputBps: 2e9, Windows: 3},
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: []float64{1}, ThroughputBps: 7e9},
			},
			wantLatency: []float64{1},
			wantThr:     1.5e9,
		},
		{
			// The throughput probe puts per-window bytes per second in samples_ms;
			// they are never latency.
			name: "throughput windows are not latency; their mean stands in for a missing throughput_bps",
			in: []*ebbflowv1.Measurement{
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT, SamplesMs: []float64{1e9, 2e9, 3e9}},
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT, ThroughputBps: 4e9, SamplesMs: []float64{1, 2}},
			},
			wantThr: 3e9,
		},
		{
			name:    "corrupt histogram",
			in:      []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://t", HdrHistogram: []byte("not a histogram")}},
			wantErr: "decode hdr histogram",
		},
		{
			name:    "truncated raw histogram",
			in:      []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, HdrHistogram: mustRaw(t, hdr)[:20]}},
			wantErr: "decode hdr histogram",
		},
		{
			name:    "NaN sample",
			in:      []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: []float64{1, math.NaN()}}},
			wantErr: "invalid latency sample NaN",
		},
		{
			name:    "negative sample",
			in:      []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR, SamplesMs: []float64{-1}}},
			wantErr: "invalid latency sample -1",
		},
		{
			name:    "negative throughput",
			in:      []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT, ThroughputBps: -5}},
			wantErr: "invalid throughput -5",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := judge.SamplesFrom(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SamplesFrom: %v", err)
			}
			got := slices.Clone(s.LatencyMs)
			slices.Sort(got)
			if len(got) != len(tt.wantLatency) {
				t.Fatalf("latency %v, want %v", got, tt.wantLatency)
			}
			for i := range got {
				// Histogram values are bucket midpoints, within 0.1%.
				if math.Abs(got[i]-tt.wantLatency[i]) > tt.wantLatency[i]*1e-3 {
					t.Fatalf("latency %v, want %v", got, tt.wantLatency)
				}
			}
			if s.ThroughputBps != tt.wantThr {
				t.Errorf("throughput %v, want %v", s.ThroughputBps, tt.wantThr)
			}
		})
	}
}

func mustRaw(t *testing.T, text []byte) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(string(text))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Histogram and raw samples of the same data reach the same verdict.
func TestJudgeFromHistograms(t *testing.T) {
	base := latencies(11, 3000, 2, 0.3, 1)
	cand := latencies(12, 3000, 2, 0.3, 1.2)
	bs, err := judge.SamplesFrom([]*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, HdrHistogram: encodeHistogram(t, base, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := judge.SamplesFrom([]*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, HdrHistogram: encodeHistogram(t, cand, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	b := judge.BudgetFrom(nil)
	fromHist := judge.Judge(bs, cs, b)
	fromRaw := judge.Judge(lat(base), lat(cand), b)
	if fromHist.Verdict != ebbflowv1.Verdict_VERDICT_REGRESSION || fromRaw.Verdict != fromHist.Verdict {
		t.Errorf("verdicts: histogram %v, raw %v; want REGRESSION both", fromHist.Verdict, fromRaw.Verdict)
	}
	if d := math.Abs(fromHist.P99DeltaPct - fromRaw.P99DeltaPct); d > 0.5 {
		t.Errorf("p99 delta: histogram %.2f%%, raw %.2f%%", fromHist.P99DeltaPct, fromRaw.P99DeltaPct)
	}
}
