package judge

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

const (
	// HDRUnitsPerMs is the wire contract for Measurement.hdr_histogram, the
	// one the agent's probes record in: integer nanoseconds, so a recorded value
	// divided by HDRUnitsPerMs is milliseconds.
	HDRUnitsPerMs = 1_000_000
	// MaxHistogramSamples caps the values one histogram expands to. A larger
	// histogram is thinned to this many values taken at evenly spaced ranks,
	// which keeps its shape (every percentile moves by at most one thinned
	// rank) while bounding memory and the U test's cost; the test is then
	// run on fewer samples, which only makes it more conservative.
	MaxHistogramSamples = 100_000
)

// Sample is one side of a comparison: pooled latency samples and the mean
// throughput.
type Sample struct {
	// LatencyMs holds latency samples in milliseconds, in no particular order.
	LatencyMs []float64
	// ThroughputBps is the mean throughput in bytes per second; 0 when not measured.
	ThroughputBps float64
}

// SamplesFrom pools an agent's measurements into a Sample.
//
// Latency comes from the HTTP, TCP_RR and TCP_CRR probes, pooled into one
// set. Of each measurement it takes its hdr_histogram, decoded and expanded to
// one value per recorded count (at the midpoint of each bucket's range,
// thinned to MaxHistogramSamples), when the histogram records more values
// than samples_ms holds, and samples_ms otherwise. The controller keeps at
// most a few thousand raw samples of a measurement but its whole histogram,
// and the tail percentiles rest on the slowest few requests: p999 of 45,000
// requests on the slowest 45, of 5,000 on the slowest 5. The histogram's
// rounding (3 significant digits, 0.1%) is far below any budget. Baseline
// and candidate run the same probe settings, so the pool mixes the probes in
// the same proportions on both sides.
//
// Throughput is the mean of the throughput probes' throughput_bps, each
// already the mean over its windows; when it is 0, the mean of that probe's
// samples_ms, which the throughput probe fills with per-window bytes per
// second (never latency). Prometheus and unspecified probes and nil entries
// are skipped: a Prometheus sample is one query result per window (typically
// a percentile), not a request latency, and must not be pooled with them.
//
// The histogram is the V2 compressed encoding, either raw (as the HdrHistogram
// libraries write it to a byte buffer) or in its base64 text form, recording
// integer nanoseconds (HDRUnitsPerMs). A histogram that does not decode
// (even beside raw samples), a negative or non-finite latency sample (even
// beside a histogram that is used instead) and a negative or non-finite
// throughput are errors.
func SamplesFrom(ms []*ebbflowv1.Measurement) (Sample, error) {
	var (
		s        Sample
		thrSum   float64
		thrCount int
	)
	for i, m := range ms {
		if m == nil {
			continue
		}
		switch m.GetKind() {
		case ebbflowv1.ProbeKind_PROBE_KIND_HTTP,
			ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR,
			ebbflowv1.ProbeKind_PROBE_KIND_TCP_CRR:
			raw := m.GetSamplesMs()
			for _, v := range raw {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					return Sample{}, fmt.Errorf("measurement %d (%s %s): invalid latency sample %v",
						i, m.GetKind(), m.GetTarget(), v)
				}
			}
			if enc := m.GetHdrHistogram(); len(enc) > 0 {
				h, err := decodeHistogram(enc)
				if err != nil {
					return Sample{}, fmt.Errorf("measurement %d (%s %s): %w", i, m.GetKind(), m.GetTarget(), err)
				}
				if h.TotalCount() > int64(len(raw)) {
					s.LatencyMs = append(s.LatencyMs, expandHistogram(h, MaxHistogramSamples)...)
					continue
				}
			}
			s.LatencyMs = append(s.LatencyMs, raw...)
		case ebbflowv1.ProbeKind_PROBE_KIND_THROUGHPUT:
			v := m.GetThroughputBps()
			if windows := m.GetSamplesMs(); v == 0 && len(windows) > 0 {
				for _, w := range windows {
					v += w
				}
				v /= float64(len(windows))
			}
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return Sample{}, fmt.Errorf("measurement %d (%s %s): invalid throughput %v",
					i, m.GetKind(), m.GetTarget(), v)
			}
			thrSum += v
			thrCount++
		}
	}
	if thrCount > 0 {
		s.ThroughputBps = thrSum / float64(thrCount)
	}
	return s, nil
}

// decodeHistogram decodes a V2 compressed histogram, raw or base64.
func decodeHistogram(enc []byte) (*hdrhistogram.Histogram, error) {
	text := enc
	if len(enc) >= 4 && int32(binary.BigEndian.Uint32(enc))&^0xf0 == hdrhistogram.V2CompressedEncodingCookieBase {
		// Raw binary encoding; the library reads the base64 form.
		text = []byte(base64.StdEncoding.EncodeToString(enc))
	} else {
		text = bytes.TrimSpace(text)
	}
	h, err := hdrhistogram.Decode(text)
	if err != nil {
		return nil, fmt.Errorf("decode hdr histogram: %w", err)
	}
	return h, nil
}

// expandHistogram lists a histogram's recorded values in milliseconds,
// ascending, each bucket's count times at the bucket's midpoint. Above limit
// values it keeps limit of them, the ones at ranks (k+0.5)*total/limit.
func expandHistogram(h *hdrhistogram.Histogram, limit int) []float64 {
	total := h.TotalCount()
	if total <= 0 || limit <= 0 {
		return nil
	}
	n := int(min(total, int64(limit)))
	out := make([]float64, 0, n)
	step := float64(total) / float64(n) // 1 when not thinned
	next := 0                           // index of the next value to emit
	var seen int64                      // counts in the bars already walked
	for _, bar := range h.Distribution() {
		if bar.Count <= 0 {
			continue
		}
		seen += bar.Count
		v := (float64(bar.From) + float64(bar.To)) / 2 / HDRUnitsPerMs
		// Emit every value whose rank falls inside this bar.
		for next < n && int64(float64(next)*step+step/2) < seen {
			out = append(out, v)
			next++
		}
	}
	return out
}
