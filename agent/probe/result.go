package probe

import (
	"encoding/base64"
	"fmt"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Result is one probe's measurement over all its windows. Latencies are in milliseconds.
//
// For PROBE_KIND_THROUGHPUT the latency fields stay zero, Count and Errors count windows, and
// SamplesMs holds the per-window throughput in bytes per second (the judge compares those the
// way it compares latency samples, in the other direction). For PROBE_KIND_PROMETHEUS each
// window contributes one sample: the query's value, in milliseconds.
type Result struct {
	Kind   ebbflowv1.ProbeKind
	Target string
	// Windows is the number of measurement windows completed (the warm-up is not counted).
	Windows int
	// Start and End are wall-clock times (Options.Now) of the whole measurement, warm-up
	// included.
	Start, End time.Time
	// Measured is the time spent in measurement windows, warm-up excluded.
	Measured time.Duration

	// Count is the number of successful operations (or windows), Errors the failed ones.
	// A failed operation's latency is not recorded.
	Count, Errors int64
	// LastError is the last failure's message, empty when there was none.
	LastError string

	P50Ms, P90Ms, P99Ms, P999Ms float64
	MeanMs, MinMs, MaxMs        float64

	// SamplesMs are raw samples: every latency up to Options.MaxSamples, then a deterministic
	// uniform reservoir of them. Their order is not meaningful.
	SamplesMs []float64
	// Histogram holds every successful latency in nanoseconds (see NewHistogram); nil for
	// the throughput probe and when nothing succeeded.
	Histogram *hdrhistogram.Histogram

	// ThroughputBps is the mean over windows of the bytes per second the receiver
	// acknowledged (throughput probe).
	ThroughputBps float64
	// BytesSent and BytesReceived are the throughput probe's totals at the sender and as
	// acknowledged by the receiver.
	BytesSent, BytesReceived int64
	// OpsPerSecond is the achieved rate of successful operations over the measured windows
	// (HTTP, TCP_RR, TCP_CRR).
	OpsPerSecond float64
}

// Proto converts r into the API's Measurement. The histogram is included in its compressed
// V2 encoding (see EncodeHistogram) whenever it holds values.
func (r *Result) Proto() *ebbflowv1.Measurement {
	m := &ebbflowv1.Measurement{
		Kind:   r.Kind,
		Target: r.Target,
		Latency: &ebbflowv1.LatencySummary{
			P50Ms:  r.P50Ms,
			P90Ms:  r.P90Ms,
			P99Ms:  r.P99Ms,
			P999Ms: r.P999Ms,
			MeanMs: r.MeanMs,
			MinMs:  r.MinMs,
			MaxMs:  r.MaxMs,
			Count:  r.Count,
			Errors: r.Errors,
		},
		SamplesMs:     append([]float64(nil), r.SamplesMs...),
		ThroughputBps: r.ThroughputBps,
		OpsPerSecond:  r.OpsPerSecond,
		Windows:       int32(r.Windows),
	}
	if !r.Start.IsZero() {
		m.StartTime = timestamppb.New(r.Start)
	}
	if !r.End.IsZero() {
		m.EndTime = timestamppb.New(r.End)
	}
	if r.Histogram != nil && r.Histogram.TotalCount() > 0 {
		if b, err := EncodeHistogram(r.Histogram); err == nil {
			m.HdrHistogram = b
		}
	}
	return m
}

// EncodeHistogram returns h in the HdrHistogram compressed V2 binary encoding (cookie
// 0x1c849314, zlib-compressed counts), the byte layout Java's
// encodeIntoCompressedByteBuffer writes. It is the binary form, not the base64 text of
// histogram logs.
func EncodeHistogram(h *hdrhistogram.Histogram) ([]byte, error) {
	text, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("encode histogram: %w", err)
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(b, text)
	if err != nil {
		return nil, fmt.Errorf("encode histogram: %w", err)
	}
	return b[:n], nil
}

// DecodeHistogram reads what EncodeHistogram wrote (Measurement.hdr_histogram).
func DecodeHistogram(b []byte) (*hdrhistogram.Histogram, error) {
	h, err := hdrhistogram.Decode([]byte(base64.StdEncoding.EncodeToString(b)))
	if err != nil {
		return nil, fmt.Errorf("decode histogram: %w", err)
	}
	return h, nil
}
