package controller

import (
	"fmt"
	"testing"
	"time"
)

// A flood of identities cannot grow the limiter map past its bound; idle limiters go first.
func TestLimiterSetBounded(t *testing.T) {
	now := time.Unix(0, 0)
	ls := newLimiterSet("actor", RateLimit{Rate: 1, Burst: 1}, 64, func() time.Time { return now })
	if err := ls.allow("steady"); err != nil {
		t.Fatal(err)
	}
	if ls.allow("steady") == nil {
		t.Fatal("second call within the burst of 1 allowed")
	}
	for i := range 10000 {
		now = now.Add(time.Millisecond)
		if err := ls.allow(fmt.Sprintf("flood-%d", i)); err != nil {
			t.Fatalf("a new identity refused: %v", err)
		}
		if n := ls.size(); n > 64 {
			t.Fatalf("%d limiters after %d identities, bound 64", n, i+1)
		}
	}
	// Idle ones are evicted before active ones.
	now = now.Add(2 * limiterIdle)
	for i := range 63 {
		_ = ls.allow(fmt.Sprintf("fresh-%d", i))
	}
	_ = ls.allow("one-more")
	ls.mu.Lock()
	for k, e := range ls.m {
		if now.Sub(e.last) > limiterIdle {
			t.Errorf("idle limiter %s kept while the map was full", k)
		}
	}
	ls.mu.Unlock()
}

// An off limit never refuses.
func TestLimiterOff(t *testing.T) {
	ls := newLimiterSet("actor", RateLimit{Rate: -1}, 8, time.Now)
	for range 1000 {
		if err := ls.allow("x"); err != nil {
			t.Fatal(err)
		}
	}
}
