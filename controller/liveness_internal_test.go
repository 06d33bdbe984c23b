package controller

import (
	"fmt"
	"testing"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func TestLivenessStates(t *testing.T) {
	l := newLiveness(30*time.Second, newStreamSet())
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

// An open stream on this node is alive while it is open; a follower's set counts for the
// window after it arrived and is replaced by the next one; a leadership change forgets the
// followers' sets but not this node's own streams.
func TestLivenessStreams(t *testing.T) {
	local := newStreamSet()
	l := newLiveness(30*time.Second, local)
	t0 := time.Unix(1000, 0)
	closeA := local.add("a")
	closeA2 := local.add("a") // a reconnect overlapping the old stream
	if st, last := l.state("a", t0); st != ebbflowv1.Liveness_LIVENESS_ALIVE || !last.Equal(t0) {
		t.Fatalf("stream open here: %v %v", st, last)
	}
	closeA()
	closeA() // idempotent
	if st, _ := l.state("a", t0); st != ebbflowv1.Liveness_LIVENESS_ALIVE {
		t.Fatalf("one of two streams closed: %v", st)
	}
	closeA2()
	if st, _ := l.state("a", t0); st != ebbflowv1.Liveness_LIVENESS_UNKNOWN {
		t.Fatalf("every stream closed, never heard otherwise: %v", st)
	}

	l.streams("n2", []string{"b", "c"}, t0)
	l.streams("n3", []string{"d"}, t0.Add(10*time.Second))
	if st, last := l.state("b", t0.Add(29*time.Second)); st != ebbflowv1.Liveness_LIVENESS_ALIVE || !last.Equal(t0) {
		t.Fatalf("in n2's set within the window: %v %v", st, last)
	}
	if n := l.alive(t0.Add(29 * time.Second)); n != 3 {
		t.Fatalf("alive %d, want b, c, d", n)
	}
	if n := l.alive(t0.Add(35 * time.Second)); n != 1 {
		t.Fatalf("alive %d after n2's set expired, want d", n)
	}
	l.streams("n2", []string{"c"}, t0.Add(20*time.Second)) // b's stream closed on n2
	if st, last := l.state("b", t0.Add(21*time.Second)); st != ebbflowv1.Liveness_LIVENESS_UNKNOWN {
		t.Fatalf("b left n2's set: %v %v", st, last)
	}
	l.beat("b", t0.Add(5*time.Second))
	if st, last := l.state("b", t0.Add(21*time.Second)); st != ebbflowv1.Liveness_LIVENESS_ALIVE || !last.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("b heartbeated: %v %v", st, last)
	}
	if st, _ := l.state("c", t0.Add(51*time.Second)); st != ebbflowv1.Liveness_LIVENESS_SILENT {
		t.Fatalf("n2 silent for longer than the window: %v", st)
	}
	closeE := local.add("e")
	defer closeE()
	l.reset(t0.Add(time.Minute))
	if st, _ := l.state("c", t0.Add(time.Minute)); st != ebbflowv1.Liveness_LIVENESS_UNKNOWN {
		t.Fatalf("followers' sets after a leadership change: %v", st)
	}
	if n := l.alive(t0.Add(time.Minute)); n != 1 {
		t.Fatalf("alive %d after a leadership change, want e (its stream is here)", n)
	}
}

// BenchmarkLivenessBeat is the in-memory cost of one heartbeat with 10,000 agents.
func BenchmarkLivenessBeat(b *testing.B) {
	l := newLiveness(30*time.Second, newStreamSet())
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
