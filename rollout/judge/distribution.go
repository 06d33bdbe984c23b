package judge

import (
	"slices"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// DistributionQuantiles are the quantiles a stored measurement keeps its latency at (see
// Distribution): every 5% up to p90, then denser towards the tail, then the maximum. 42 points
// of 16 bytes: under a kilobyte per measurement, however many samples it had.
//
// Worked example: 5,000 samples of 1.000, 1.001, ... 5.999 ms keep 42 numbers, among them
// q=0.05 -> 1.24995 ms, q=0.5 -> 3.4995 ms, q=0.99 -> 5.94901 ms, q=0.999 -> 5.994001 ms and
// q=1 -> 5.999 ms. Plotted on a "nines" axis (-log10(1-q)) the tail gets as much room as the
// body, which is where a regression that moves only p99.9 shows.
var DistributionQuantiles = []float64{
	0.001, 0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6,
	0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.975, 0.98, 0.985,
	0.99, 0.9925, 0.995, 0.996, 0.997, 0.998, 0.999, 0.99925, 0.9995, 0.9996, 0.9997,
	0.9998, 0.9999, 1,
}

// Distribution returns the latency distribution of one measurement at DistributionQuantiles,
// from the same values the judge pools (its histogram when that records more values than its
// raw samples, its raw samples otherwise); nil for a probe that measures no request latency,
// for one without values, and for one whose values do not decode (the judge refuses those).
func Distribution(m *ebbflowv1.Measurement) *ebbflowv1.LatencyDistribution {
	s, err := SamplesFrom([]*ebbflowv1.Measurement{m})
	if err != nil || len(s.LatencyMs) == 0 {
		return nil
	}
	sorted := slices.Clone(s.LatencyMs)
	slices.Sort(sorted)
	d := &ebbflowv1.LatencyDistribution{
		Quantiles: slices.Clone(DistributionQuantiles),
		LatencyMs: make([]float64, len(DistributionQuantiles)),
		Count:     int64(len(sorted)),
	}
	for i, q := range DistributionQuantiles {
		d.LatencyMs[i] = Percentile(sorted, q)
	}
	return d
}
