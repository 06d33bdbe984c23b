package controller

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"
)

// RateLimit is a token bucket: Rate calls per second on average, bursts of up to Burst.
type RateLimit struct {
	Rate  float64
	Burst int
}

// Default rate limits, per node. An agent registers, heartbeats every 10 s and sends a
// handful of reports per phase: a 10,000-cluster fleet stays far below 20/s per cluster. A
// person (or a script under one name) gets 100 calls/s with bursts of 500.
var (
	DefaultAgentRateLimit  = RateLimit{Rate: 20, Burst: 100}
	DefaultPeopleRateLimit = RateLimit{Rate: 100, Burst: 500}
)

// DefaultFailedAuthRateLimit limits failed authentications per source address: a mistyped
// token is retried a few times; a guesser is slowed to one try a second.
var DefaultFailedAuthRateLimit = RateLimit{Rate: 1, Burst: 20}

// joinLimit limits joins per join token: an agent retries a join through an election; nobody
// needs more.
var joinLimit = RateLimit{Rate: 0.2, Burst: 10}

// Bounds of the limiter maps: at most maxLimiters identities per map; when it is full, the
// limiters idle for limiterIdle go first, then (under a flood of new identities) a random
// eighth. An evicted identity starts again with a full bucket.
const (
	defaultMaxLimiters = 100000
	limiterIdle        = 10 * time.Minute
)

// limits holds the per-identity and per-source limiters of one node.
type limits struct {
	agents, people *limiterSet
	// failures counts failed authentications per source address; joins counts JoinCluster
	// calls per join token id.
	failures, joins *limiterSet
}

func newLimits(agent, people, failedAuth RateLimit, max int, now func() time.Time) *limits {
	return &limits{
		agents:   newLimiterSet("cluster", agent, max, now),
		people:   newLimiterSet("actor", people, max, now),
		failures: newLimiterSet("failed authentications from", failedAuth, max, now),
		joins:    newLimiterSet("joins with token", joinLimit, max, now),
	}
}

// allow returns nil, or a ResourceExhausted error with a retry hint. Agents' writes count
// against their cluster's limiter, every other unary call against its actor's, heartbeats
// against none (procedure.limit). A caller without credentials is limited by its address
// (anonymous@host), not in one bucket with every other anonymous caller, and a join also by
// its token. Calls forwarded by another node were limited there.
func (l *limits) allow(p procedure, id Identity, remote string, msg any) error {
	if id.Peer || p.access == 0 {
		return nil
	}
	if j, ok := msg.(interface{ GetToken() string }); ok && p.access == accessPublic {
		tokenID, _, _ := strings.Cut(j.GetToken(), ".")
		if err := l.joins.allow(tokenID); err != nil {
			return err
		}
	}
	switch p.limit {
	case limitCluster:
		return l.agents.allow(p.cluster(msg))
	case limitActor:
		if id.Actor == anonymous {
			return l.people.allow(anonymous + "@" + sourceHost(remote))
		}
		return l.people.allow(id.Actor)
	}
	return nil
}

// failedAuth counts a failed authentication against its source address and returns the
// error to answer: err itself while the source is within failedAuthLimit, ResourceExhausted
// once it is past it (and log says whether to log the failure: the first few of each source,
// then one in a while).
func (l *limits) failedAuth(remote string, err error) (answer error, log bool) {
	if lerr := l.failures.allow(sourceHost(remote)); lerr != nil {
		return lerr, false
	}
	return err, true
}

// sourceHost is the host part of a caller's address ("203.0.113.7" of "203.0.113.7:51234").
func sourceHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

type limiterSet struct {
	what  string
	limit RateLimit
	max   int
	now   func() time.Time

	mu sync.Mutex
	m  map[string]*limiterEntry
}

type limiterEntry struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiterSet(what string, l RateLimit, max int, now func() time.Time) *limiterSet {
	return &limiterSet{what: what, limit: l, max: max, now: now, m: map[string]*limiterEntry{}}
}

func (ls *limiterSet) off() bool { return ls == nil || ls.limit.Rate <= 0 }

func (ls *limiterSet) allow(key string) error {
	if ls.off() {
		return nil
	}
	key = clip(key, 256)
	now := ls.now()
	ls.mu.Lock()
	e, ok := ls.m[key]
	if !ok {
		if len(ls.m) >= ls.max {
			ls.evict(now)
		}
		e = &limiterEntry{lim: rate.NewLimiter(rate.Limit(ls.limit.Rate), max(ls.limit.Burst, 1))}
		ls.m[key] = e
	}
	e.last = now
	r := e.lim.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if delay > 0 {
		r.CancelAt(now)
	}
	ls.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	err := connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("rate limit of %s %q: %g calls/s with bursts of %d; retry in %s",
		ls.what, key, ls.limit.Rate, ls.limit.Burst, delay.Round(time.Millisecond)))
	if d, derr := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)}); derr == nil {
		err.AddDetail(d)
	}
	return err
}

// evict makes room: idle limiters first, then a random eighth of the rest. Called with mu
// held when the map is full, so its cost is spread over at least max/8 new identities.
func (ls *limiterSet) evict(now time.Time) {
	for k, e := range ls.m {
		if now.Sub(e.last) > limiterIdle {
			delete(ls.m, k)
		}
	}
	for k := range ls.m {
		if len(ls.m) <= ls.max-max(ls.max/8, 1) {
			break
		}
		delete(ls.m, k)
	}
}

func (ls *limiterSet) size() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.m)
}
