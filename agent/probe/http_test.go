package probe

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTPProbeSeesServerDelay(t *testing.T) {
	var delay Delay
	url := startHTTP(t, DelayHandler(delay.Get))
	spec := newSpec(kindHTTP, url, 100, 300*time.Millisecond)
	opts := Options{Windows: 2}

	fast := mustRun(t, spec, opts)
	delay.Set(20 * time.Millisecond)
	slow := mustRun(t, spec, opts)

	for name, r := range map[string]*Result{"no delay": fast, "20ms delay": slow} {
		if r.Count != 60 || r.Errors != 0 {
			t.Errorf("%s: count %d errors %d (last %q), want 60 successes (100/s x 300ms x 2 windows)", name, r.Count, r.Errors, r.LastError)
		}
		if r.Windows != 2 || r.OpsPerSecond <= 0 || r.Histogram == nil || len(r.SamplesMs) != int(r.Count) {
			t.Errorf("%s: windows %d ops/s %v histogram %v samples %d", name, r.Windows, r.OpsPerSecond, r.Histogram != nil, len(r.SamplesMs))
		}
	}
	t.Logf("no delay: p50 %.3fms p99 %.3fms; 20ms delay: p50 %.3fms p99 %.3fms", fast.P50Ms, fast.P99Ms, slow.P50Ms, slow.P99Ms)
	if fast.P50Ms >= 10 {
		t.Errorf("no delay: p50 %.3fms, want < 10ms", fast.P50Ms)
	}
	if slow.P50Ms < 20 || slow.MinMs < 20 || slow.P50Ms > 500 {
		t.Errorf("20ms delay: p50 %.3fms min %.3fms, want both >= 20ms (and p50 < 500ms)", slow.P50Ms, slow.MinMs)
	}
	if !(slow.MinMs <= slow.P50Ms && slow.P50Ms <= slow.P90Ms && slow.P90Ms <= slow.P99Ms && slow.P99Ms <= slow.P999Ms && slow.P999Ms <= slow.MaxMs) {
		t.Errorf("percentiles out of order: %+v", slow)
	}
}

// TestHTTPCoordinatedOmission stalls the whole server once for 300ms during a 1s run at
// 200 requests per second. About 60 requests are due during the stall; measured from their
// intended send times their latencies spread from 300ms down to 0, so p90 and p99 are far
// above 100ms. A probe that timed requests from their actual send could see the stall in at
// most one request per connection (the ones in flight when it began); everything queued
// behind them would be sent after the stall and look fast.
func TestHTTPCoordinatedOmission(t *testing.T) {
	const stall = 300 * time.Millisecond
	var (
		n          atomic.Int64
		mu         sync.Mutex
		stallUntil time.Time
	)
	url := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if n.Add(1) == 50 {
			stallUntil = time.Now().Add(stall)
		}
		until := stallUntil
		mu.Unlock()
		if d := time.Until(until); d > 0 {
			time.Sleep(d)
		}
		io.WriteString(w, "ok\n")
	}))
	const conns = 8
	res := mustRun(t, newSpec(kindHTTP, url, 200, time.Second), Options{Windows: 1, Connections: conns})

	if res.Count != 200 || res.Errors != 0 {
		t.Fatalf("count %d errors %d (last %q), want 200 successes", res.Count, res.Errors, res.LastError)
	}
	t.Logf("p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms", res.P50Ms, res.P90Ms, res.P99Ms, res.MaxMs)
	if res.P99Ms < 100 || res.P90Ms < 100 {
		t.Errorf("p90 %.1fms p99 %.1fms, want both >= 100ms: the stall must show in the tail", res.P90Ms, res.P99Ms)
	}
	if res.MaxMs < 250 {
		t.Errorf("max %.1fms, want about the 300ms stall", res.MaxMs)
	}
	slow := 0
	for _, v := range res.SamplesMs {
		if v >= 100 {
			slow++
		}
	}
	if slow <= 2*conns {
		t.Errorf("%d requests >= 100ms, want more than %d: only the in-flight ones saw the stall (coordinated omission)", slow, 2*conns)
	}
}

func TestHTTPErrorsCounted(t *testing.T) {
	var n atomic.Int64
	url := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok\n")
	}))
	res := mustRun(t, newSpec(kindHTTP, url, 200, 300*time.Millisecond), Options{Windows: 1})
	if res.Count != 45 || res.Errors != 15 {
		t.Errorf("count %d errors %d, want 45 and 15 (every 4th of 60 requests fails)", res.Count, res.Errors)
	}
	if len(res.SamplesMs) != 45 || res.Histogram.TotalCount() != 45 {
		t.Errorf("recorded %d samples and %d histogram values, want only the 45 successes", len(res.SamplesMs), res.Histogram.TotalCount())
	}
	if !strings.Contains(res.LastError, "500") {
		t.Errorf("last error %q, want the 500 status", res.LastError)
	}
}

func TestHTTPAllFailing(t *testing.T) {
	status500 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	hangUp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	for name, h := range map[string]http.Handler{"status 503": status500, "connection closed": hangUp} {
		t.Run(name, func(t *testing.T) {
			url := startHTTP(t, h)
			res := runErr(t, newSpec(kindHTTP, url, 100, 200*time.Millisecond), Options{Windows: 1}, ErrNoSuccess)
			if res.Count != 0 || res.Errors != 20 || res.Histogram != nil || len(res.SamplesMs) != 0 {
				t.Errorf("count %d errors %d histogram %v samples %d, want 0 successes and 20 errors", res.Count, res.Errors, res.Histogram != nil, len(res.SamplesMs))
			}
			if res.LastError == "" {
				t.Error("no last error")
			}
		})
	}
}

func TestWarmupIsDiscarded(t *testing.T) {
	var n atomic.Int64
	url := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.WriteString(w, "ok\n")
	}))
	res := mustRun(t, newSpec(kindHTTP, url, 100, 200*time.Millisecond), Options{Windows: 2, Warmup: 100 * time.Millisecond})
	if got := n.Load(); got != 50 {
		t.Errorf("server saw %d requests, want 10 warm-up + 2 x 20", got)
	}
	if res.Count != 40 || res.Windows != 2 {
		t.Errorf("count %d windows %d, want 40 measured requests in 2 windows", res.Count, res.Windows)
	}
	if res.Measured < 400*time.Millisecond || res.Measured > 2*time.Second {
		t.Errorf("measured %s, want the two windows (400ms) without the warm-up", res.Measured)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	var delay Delay
	delay.Set(50 * time.Millisecond)
	url := startHTTP(t, DelayHandler(delay.Get))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	res, err := Run(ctx, newSpec(kindHTTP, url, 50, time.Minute), Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Run took %s after cancellation", took)
	}
	if res == nil || res.Windows != 0 {
		t.Errorf("result %+v, want a partial result with no completed window", res)
	}
}
