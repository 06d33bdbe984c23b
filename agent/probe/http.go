package probe

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// httpProber is the wrk2-style fixed-rate HTTP latency probe.
//
// Coordinated omission. A load generator that sends the next request only after the
// previous one returned, and times each request from the moment it was actually sent,
// "coordinates" with the server: while the server stalls the generator stops sending, so the
// stall is measured once (by the few requests in flight) instead of by every request that a
// real client population would have sent during it. Percentiles then hide the stall almost
// completely. This probe avoids that like wrk2 does: request i of a window is scheduled at
// t0 + i/rate on a fixed timeline decided before the window starts, and a request whose
// slot passed while every worker was still busy is timed from its INTENDED send time, not
// from when a worker got around to sending it. When the workers are blocked behind a stalled
// server, the requests whose slots pass are sent as soon as a worker frees up, and each
// one's latency includes the time it waited for its slot, exactly what a user arriving at
// that moment would have experienced.
//
// A worker that is ahead of the timeline sleeps until the slot; such a request is queued
// behind nothing, and the only delay before it leaves is this process's timer wake-up (tens
// to hundreds of microseconds), which is not the target's latency. It is timed from the
// wake-up (see waitForSlot), so idle-timer slack does not inflate every sample while
// queueing behind a slow target still does.
type httpProber struct {
	client  *http.Client
	owned   *http.Transport // closed by close; nil when Options.HTTPClient was given
	target  string
	rate    float64
	conns   int
	timeout time.Duration
}

func newHTTPProber(target string, rate float64, timeout time.Duration, o Options) *httpProber {
	p := &httpProber{target: target, rate: rate, timeout: timeout, conns: o.Connections}
	if p.conns == 0 {
		p.conns = DefaultConnections(rate)
	}
	p.client = o.HTTPClient
	if p.client == nil {
		p.owned = newTransport(o.Dialer, p.conns)
		p.client = &http.Client{Transport: p.owned}
	}
	return p
}

// newTransport is a keep-alive transport with a pool sized for conns workers and no proxy
// and no compression, so what is timed is the request to the target itself.
func newTransport(d Dialer, conns int) *http.Transport {
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		MaxConnsPerHost:       conns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

func (p *httpProber) prepare(context.Context) error { return nil }

func (p *httpProber) close() {
	if p.owned != nil {
		p.owned.CloseIdleConnections()
	}
}

// window sends round(rate*d) requests on the fixed timeline t0 + i/rate with p.conns
// workers. A worker claims the next slot, waits for its intended time (no wait when it is
// already past), sends, drains the body and records the latency from the intended time.
// The window ends when every scheduled request has completed or failed.
func (p *httpProber) window(ctx context.Context, d time.Duration, rec *recorder) (time.Duration, error) {
	n := scheduled(p.rate, d)
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(int64(p.conns), n) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				from, err := waitForSlot(ctx, intendedAt(t0, i, p.rate))
				if err != nil {
					return
				}
				p.do(ctx, from, rec)
			}
		})
	}
	wg.Wait()
	return max(time.Since(t0), d), ctx.Err()
}

// do sends one request and records its latency from intended. Transport errors, body read
// errors and non-2xx statuses are failures.
func (p *httpProber) do(ctx context.Context, intended time.Time, rec *recorder) {
	rctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, p.target, nil)
	if err != nil {
		rec.fail(err)
		return
	}
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			rec.fail(err)
		}
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(intended)
	switch {
	case ctx.Err() != nil:
		// Cancelled measurement: neither a success nor the target's failure.
	case err != nil:
		rec.fail(fmt.Errorf("read body: %w", err))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		rec.fail(fmt.Errorf("HTTP %s", resp.Status))
	default:
		rec.observe(took)
	}
}
