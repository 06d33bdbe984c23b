package judge_test

import (
	"math"
	"testing"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/judge"
)

func TestDistributionWorkedExample(t *testing.T) {
	samples := make([]float64, 5000)
	for i := range samples {
		samples[5000-1-i] = 1 + float64(i)/1000 // unordered on purpose
	}
	d := judge.Distribution(&ebbflowv1.Measurement{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: samples})
	if d.GetCount() != 5000 || len(d.GetQuantiles()) != len(judge.DistributionQuantiles) || len(d.GetLatencyMs()) != len(d.GetQuantiles()) {
		t.Fatalf("distribution = count %d, %d quantiles, %d values", d.GetCount(), len(d.GetQuantiles()), len(d.GetLatencyMs()))
	}
	want := map[float64]float64{0.05: 1.24995, 0.5: 3.4995, 0.99: 5.94901, 0.999: 5.994001, 1: 5.999}
	for i, q := range d.GetQuantiles() {
		if w, ok := want[q]; ok {
			if got := d.GetLatencyMs()[i]; math.Abs(got-w) > 1e-9 {
				t.Errorf("q=%v: %v ms, want %v", q, got, w)
			}
			delete(want, q)
		}
		if i > 0 && (q <= d.GetQuantiles()[i-1] || d.GetLatencyMs()[i] < d.GetLatencyMs()[i-1]) {
			t.Errorf("point %d (q=%v) out of order", i, q)
		}
	}
	if len(want) > 0 {
		t.Errorf("quantiles missing: %v", want)
	}
	if n := len(judge.DistributionQuantiles); n > 64 {
		t.Errorf("%d quantiles; the API promises at most 64", n)
	}
}

func TestDistributionNone(t *testing.T) {
	for name, m := range map[string]*ebbflowv1.Measurement{
		"throughput": {Kind: ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT, SamplesMs: []float64{1e9}, ThroughputBps: 1e9},
		"prometheus": {Kind: ebbflowv1.ProbeKind_PROBE_KIND_PROMETHEUS, SamplesMs: []float64{3}},
		"empty":      {Kind: ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR},
		"bad sample": {Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: []float64{1, -1}},
	} {
		if d := judge.Distribution(m); d != nil {
			t.Errorf("%s: distribution %v, want none", name, d)
		}
	}
}
