package probe

import (
	"net"
	"testing"
	"time"
)

func TestThroughputProbe(t *testing.T) {
	const limit = 1 << 20 // bytes per second
	fastLn := startServer(t, ServeDiscard)
	slowLn := startServer(t, func(ln net.Listener) error { return ServeDiscardLimited(ln, limit) })
	opts := Options{Windows: 3}
	fast := mustRun(t, newSpec(kindThroughput, fastLn.Addr().String(), 0, 300*time.Millisecond), opts)
	slow := mustRun(t, newSpec(kindThroughput, slowLn.Addr().String(), 0, 300*time.Millisecond), opts)
	t.Logf("samples: %v / %v", fast.SamplesMs, slow.SamplesMs)
	t.Logf("unlimited: %.1f MiB/s (sent %d, acked %d); reader limited to 1 MiB/s: %.2f MiB/s (sent %d, acked %d)",
		fast.ThroughputBps/(1<<20), fast.BytesSent, fast.BytesReceived, slow.ThroughputBps/(1<<20), slow.BytesSent, slow.BytesReceived)

	for name, r := range map[string]*Result{"unlimited": fast, "limited": slow} {
		if r.Count != 3 || r.Errors != 0 || r.Windows != 3 || len(r.SamplesMs) != 3 {
			t.Errorf("%s: count %d errors %d (last %q) windows %d samples %d, want 3 good windows", name, r.Count, r.Errors, r.LastError, r.Windows, len(r.SamplesMs))
		}
		if r.ThroughputBps <= 0 || r.BytesReceived <= 0 || r.BytesReceived > r.BytesSent {
			t.Errorf("%s: %.0f B/s, received %d of %d sent", name, r.ThroughputBps, r.BytesReceived, r.BytesSent)
		}
		for _, v := range r.SamplesMs {
			if v <= 0 {
				t.Errorf("%s: window sample %v", name, v)
			}
		}
		if r.Histogram != nil || r.P50Ms != 0 {
			t.Errorf("%s: latency fields set on a throughput result", name)
		}
		if got := r.Proto().GetThroughputBps(); got != r.ThroughputBps {
			t.Errorf("%s: proto throughput %v", name, got)
		}
	}
	if slow.ThroughputBps >= fast.ThroughputBps/2 {
		t.Errorf("slow reader %.0f B/s vs %.0f B/s unlimited; the back-pressure must show", slow.ThroughputBps, fast.ThroughputBps)
	}
	if slow.ThroughputBps < limit/4 || slow.ThroughputBps > 2*limit {
		t.Errorf("slow reader %.0f B/s, want about its %d B/s limit", slow.ThroughputBps, limit)
	}
}

func TestThroughputWrongTarget(t *testing.T) {
	ln := startEcho(t, 1, nil)
	res := runErr(t, newSpec(kindThroughput, ln.Addr().String(), 0, 100*time.Millisecond), Options{Windows: 2}, ErrNoSuccess)
	if res.Errors != 2 || res.Count != 0 {
		t.Errorf("errors %d count %d, want both windows failed", res.Errors, res.Count)
	}
}
