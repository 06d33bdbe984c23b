package controller

import (
	"fmt"
	"testing"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func TestLivenessStates(t *testing.T) {
	l := newLiveness(30 * time.Second)
	t0 := time.Unix(1000, 0)
	if st, _ := l.state("a", t0); st != ebbflowv1.Liveness_LIVENESS_UNKNOWN {
		t.Fatalf("never heard: %v", st)
	}
	l.beat("a", t0)
	if st, last := l.state("a", t0.Add(29*time.Second)); st != ebbflowv1.Liveness_LIVENESS_ALIVE || !last.Equal(t0) {
		t.Fatalf("within window: %v %v", st, last)
	}
	if st, _ := l.state("a", t0.Add(31*time.Second)); st != ebbflowv1.Liveness_LIVENESS_SILENT {
		t.Fatalf("past window: %v", st)
	}
	if n := l.alive(t0.Add(time.Second)); n != 1 {
		t.Fatalf("alive %d", n)
	}
	l.reset(t0.Add(time.Minute))
	if st, _ := l.state("a", t0.Add(time.Minute)); st != ebbflowv1.Liveness_LIVENESS_UNKNOWN {
		t.Fatalf("after leadership change: %v", st)
	}
}

// BenchmarkLivenessBeat is the in-memory cost of one heartbeat with 10,000 agents.
func BenchmarkLivenessBeat(b *testing.B) {
	l := newLiveness(30 * time.Second)
	names := make([]string, 10000)
	now := time.Now()
	for i := range names {
		names[i] = fmt.Sprintf("c-%05d", i)
		l.beat(names[i], now)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.beat(names[i%len(names)], now)
			i++
		}
	})
}
