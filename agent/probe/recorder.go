package probe

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: nanoseconds from 1 ns to one hour at three significant digits (0.1%
// resolution at any magnitude). Longer values are recorded as one hour.
const (
	histLowest  = 1
	histHighest = int64(time.Hour)
	histDigits  = 3
)

// NewHistogram returns an empty histogram with the geometry the probes record in:
// nanoseconds, 1 ns to 1 h, three significant digits.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

// recorder collects one measurement's observations; it is safe for concurrent use.
type recorder struct {
	mu      sync.Mutex
	discard bool // warm-up: observations are dropped

	hist   *hdrhistogram.Histogram
	count  int64
	errors int64
	sumMs  float64
	minMs  float64
	maxMs  float64

	// Raw samples: the first maxSamples, then Algorithm R reservoir sampling with a fixed
	// seed, so a run that sees the same sequence keeps the same subset.
	samples    []float64
	maxSamples int
	rng        *rand.Rand

	// Throughput probe: per-window bytes per second and byte totals.
	throughput []float64
	sent       int64
	received   int64

	lastErr error
}

// newRecorder returns a recorder keeping at most maxSamples raw samples; maxSamples 0
// returns a recorder that drops everything (warm-up).
func newRecorder(maxSamples int) *recorder {
	if maxSamples == 0 {
		return &recorder{discard: true}
	}
	return &recorder{
		hist:       NewHistogram(),
		maxSamples: maxSamples,
		minMs:      math.Inf(1),
		rng:        rand.New(rand.NewPCG(0x65626266, 0x6c6f77)),
	}
}

// observe records one successful operation that took d.
func (r *recorder) observe(d time.Duration) {
	r.observeMs(float64(d) / float64(time.Millisecond))
}

// observeMs records one successful operation or value in milliseconds.
func (r *recorder) observeMs(ms float64) {
	if r.discard {
		return
	}
	ns := int64(math.Round(ms * float64(time.Millisecond)))
	ns = min(max(ns, 0), histHighest)
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.hist.RecordValue(ns) // cannot fail: ns is clamped into the histogram's range
	r.count++
	r.sumMs += ms
	r.minMs = min(r.minMs, ms)
	r.maxMs = max(r.maxMs, ms)
	if len(r.samples) < r.maxSamples {
		r.samples = append(r.samples, ms)
		return
	}
	if j := r.rng.Int64N(r.count); j < int64(r.maxSamples) {
		r.samples[j] = ms
	}
}

// fail records one failed operation; its latency is not recorded.
func (r *recorder) fail(err error) {
	if r.discard {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors++
	r.lastErr = err
}

// observeThroughput records one successful throughput window.
func (r *recorder) observeThroughput(bytesPerSecond float64, sent, received int64) {
	if r.discard {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	r.throughput = append(r.throughput, bytesPerSecond)
	r.sent += sent
	r.received += received
}

// fill writes the summary into res.
func (r *recorder) fill(res *Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res.Count, res.Errors = r.count, r.errors
	if r.lastErr != nil {
		res.LastError = r.lastErr.Error()
	}
	if r.throughput != nil {
		res.SamplesMs = append([]float64(nil), r.throughput...)
		var sum float64
		for _, v := range r.throughput {
			sum += v
		}
		res.ThroughputBps = sum / float64(len(r.throughput))
		res.BytesSent, res.BytesReceived = r.sent, r.received
		return
	}
	if r.hist == nil || r.count == 0 {
		return
	}
	res.Histogram = r.hist
	res.SamplesMs = append([]float64(nil), r.samples...)
	res.MeanMs = r.sumMs / float64(r.count)
	res.MinMs, res.MaxMs = r.minMs, r.maxMs
	q := r.hist.ValueAtPercentilesSlice([]float64{50, 90, 99, 99.9})
	clamp := func(ns int64) float64 {
		return min(max(float64(ns)/float64(time.Millisecond), r.minMs), r.maxMs)
	}
	res.P50Ms, res.P90Ms, res.P99Ms, res.P999Ms = clamp(q[0]), clamp(q[1]), clamp(q[2]), clamp(q[3])
}
