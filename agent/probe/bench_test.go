package probe

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkHTTPProbeOverhead times one GET against a local DelayHandler with no delay:
// "client" is the bare keep-alive client (request, drain, close), "probe" is the probe's own
// path for one scheduled request (timeout context, request, drain, status check, histogram
// and reservoir). The difference is what the probe adds to every measured latency.
func BenchmarkHTTPProbeOverhead(b *testing.B) {
	url := startHTTP(b, DelayHandler(nil))
	ctx := context.Background()
	opts, err := Options{Connections: 1}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}

	b.Run("client", func(b *testing.B) {
		client := &http.Client{Transport: newTransport(opts.Dialer, 1)}
		defer client.CloseIdleConnections()
		b.ReportAllocs()
		for b.Loop() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				b.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})

	b.Run("probe", func(b *testing.B) {
		p := newHTTPProber(url, 1, DefaultTimeout, opts)
		defer p.close()
		rec := newRecorder(DefaultMaxSamples)
		b.ReportAllocs()
		for b.Loop() {
			p.do(ctx, time.Now(), rec)
		}
		if rec.errors != 0 {
			b.Fatalf("%d errors: %v", rec.errors, rec.lastErr)
		}
	})
}

// BenchmarkRecorderObserve is the cost of recording one latency (histogram, summary and
// reservoir) once the reservoir is full.
func BenchmarkRecorderObserve(b *testing.B) {
	rec := newRecorder(1000)
	d := 500 * time.Microsecond
	b.ReportAllocs()
	for b.Loop() {
		rec.observe(d)
		d += time.Nanosecond
	}
}

// BenchmarkTCPRR is one TCP_RR transaction on a kept loopback connection to ServeEcho.
func BenchmarkTCPRR(b *testing.B) {
	ln := startEcho(b, 1, nil)
	opts, _ := Options{}.withDefaults()
	p := &rrProber{dialer: opts.Dialer, target: ln.Addr().String(), timeout: DefaultTimeout}
	ctx := context.Background()
	if err := p.prepare(ctx); err != nil {
		b.Fatal(err)
	}
	defer p.close()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.transaction(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
