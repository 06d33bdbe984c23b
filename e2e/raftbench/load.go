package raftbench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// load is a closed loop: one goroutine per client, each writing its own key (client i, key i)
// one write after another until the deadline or until stopped.
type load struct {
	kvs     []KV
	t       *tracker
	perCall time.Duration // each write's timeout
	pause   time.Duration // wait after a failed write before the next

	// onAck, when set, is told of every acknowledged write (from the clients' goroutines).
	onAck func(sent, acked time.Time)

	acked, failed atomic.Int64
	mu            sync.Mutex
	lat           []time.Duration // every acknowledged write's latency
	lastErr       error
}

// run writes until deadline (zero: until ctx ends) and returns when every client stopped.
func (l *load) run(ctx context.Context, deadline time.Time) {
	var wg sync.WaitGroup
	for i, kv := range l.kvs {
		wg.Go(func() { l.client(ctx, i, kv, deadline) })
	}
	wg.Wait()
}

func (l *load) client(ctx context.Context, i int, kv KV, deadline time.Time) {
	key := l.t.keys[i]
	lat := make([]time.Duration, 0, 1024)
	defer func() {
		l.mu.Lock()
		l.lat = append(l.lat, lat...)
		l.mu.Unlock()
	}()
	for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
		seq, v := l.t.start(i)
		cctx, cancel := context.WithTimeout(ctx, l.perCall)
		sent := time.Now()
		err := kv.Put(cctx, key, v)
		acked := time.Now()
		cancel()
		l.t.done(i, seq, err)
		if err != nil && ctx.Err() != nil {
			break // stopped mid-write: not a failure of the side (the tracker keeps it as one)
		}
		if err != nil {
			l.failed.Add(1)
			l.mu.Lock()
			l.lastErr = err
			l.mu.Unlock()
			if l.pause > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(l.pause):
				}
			}
			continue
		}
		l.acked.Add(1)
		lat = append(lat, acked.Sub(sent))
		if l.onAck != nil {
			l.onAck(sent, acked)
		}
	}
}

// latencies are the acknowledged writes' latencies so far, in seconds.
func (l *load) latencies() []float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]float64, len(l.lat))
	for i, d := range l.lat {
		out[i] = d.Seconds()
	}
	return out
}

func (l *load) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}
