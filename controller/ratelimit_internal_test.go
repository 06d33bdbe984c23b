package controller

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
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

// Callers without credentials are limited per source address, not in one shared bucket: a
// flood from one address leaves another's calls alone.
func TestAnonymousCallersAreLimitedBySource(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimits(DefaultAgentRateLimit, RateLimit{Rate: 1, Burst: 2}, DefaultFailedAuthRateLimit, 64, func() time.Time { return now })
	p := procedures[ebbflowv1connect.ProfileServiceListProfilesProcedure]
	anon := Identity{Actor: anonymous, Method: "none"}
	for range 2 {
		if err := l.allow(p, anon, "192.0.2.1:4000", &ebbflowv1.ListProfilesRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.allow(p, anon, "192.0.2.1:4001", &ebbflowv1.ListProfilesRequest{}); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("third call from one address within the burst of 2: %v", err)
	}
	if err := l.allow(p, anon, "192.0.2.2:4000", &ebbflowv1.ListProfilesRequest{}); err != nil {
		t.Fatalf("another address after the first one's flood: %v", err)
	}
}

// JoinCluster has its own budget per join token, whatever address the calls come from.
func TestJoinsAreLimitedByToken(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimits(DefaultAgentRateLimit, DefaultPeopleRateLimit, DefaultFailedAuthRateLimit, 64, func() time.Time { return now })
	p := procedures[ebbflowv1connect.AgentServiceJoinClusterProcedure]
	anon := Identity{Actor: anonymous, Method: "none"}
	join := func(token, remote string) error {
		return l.allow(p, anon, remote, &ebbflowv1.JoinClusterRequest{Token: token})
	}
	for i := range joinLimit.Burst {
		if err := join("abcdef.secret", fmt.Sprintf("192.0.2.%d:1", i)); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
	}
	if err := join("abcdef.other", "192.0.2.99:1"); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("a join past the token's budget from a new address: %v", err)
	}
	if err := join("ghijkl.secret", "192.0.2.1:1"); err != nil {
		t.Fatalf("another token: %v", err)
	}
}

// Failed authentications count against their source: past the budget the answer turns into
// ResourceExhausted and stops being logged; another source still gets its own answer.
func TestFailedAuthenticationsAreLimitedBySource(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimits(DefaultAgentRateLimit, DefaultPeopleRateLimit, DefaultFailedAuthRateLimit, 64, func() time.Time { return now })
	bad := connect.NewError(connect.CodeUnauthenticated, errors.New("bad token"))
	for i := range DefaultFailedAuthRateLimit.Burst {
		if err, log := l.failedAuth("192.0.2.1:1000", bad); err != bad || !log {
			t.Fatalf("failure %d: %v (log %v), want the authentication error, logged", i, err, log)
		}
	}
	err, log := l.failedAuth("192.0.2.1:1001", bad)
	if connect.CodeOf(err) != connect.CodeResourceExhausted || log {
		t.Fatalf("a failure past the budget: %v (log %v), want resource_exhausted, not logged", err, log)
	}
	if err, log := l.failedAuth("192.0.2.2:1000", bad); err != bad || !log {
		t.Fatalf("another source: %v (log %v)", err, log)
	}
	now = now.Add(time.Second)
	if err, _ := l.failedAuth("192.0.2.1:1002", bad); err != bad {
		t.Fatalf("a second later the source gets one more try: %v", err)
	}
}
