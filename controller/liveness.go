package controller

import (
	"sync"
	"sync/atomic"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// liveness is the leader's in-memory record of which agents are alive. An agent is alive
// while it holds its assignment stream open on any node (the stream carries HTTP/2 keepalive
// pings, so a dead peer ends it), or when it was heard from within the window: a heartbeat
// (sent only while the agent has no stream) or a report. Streams on this node are read from
// the node's own registry; followers send theirs with ReportAgentStreams, and a follower's set
// counts for the window after it arrived. None of it is a Raft write. It is reset when
// leadership changes, so a new leader reports UNKNOWN until it hears from an agent or a node.
type liveness struct {
	window time.Duration
	local  *streamSet // assignment streams open on this node

	mu     sync.RWMutex
	seen   map[string]*atomic.Int64 // cluster -> last heartbeat or report, unix nanoseconds
	remote map[string]nodeStreams   // node id -> the streams it last reported
	since  time.Time                // when this node became leader
}

// nodeStreams is the set of agent streams a follower reported, and when.
type nodeStreams struct {
	at       time.Time
	clusters map[string]struct{}
}

func newLiveness(window time.Duration, local *streamSet) *liveness {
	return &liveness{window: window, local: local, seen: make(map[string]*atomic.Int64), remote: make(map[string]nodeStreams)}
}

// beat records a heartbeat from cluster at now.
func (l *liveness) beat(cluster string, now time.Time) {
	l.mu.RLock()
	e := l.seen[cluster]
	l.mu.RUnlock()
	if e == nil {
		l.mu.Lock()
		if e = l.seen[cluster]; e == nil {
			e = new(atomic.Int64)
			l.seen[cluster] = e
		}
		l.mu.Unlock()
	}
	e.Store(now.UnixNano())
}

// streams records the set of agent streams node holds open at now, replacing what it sent
// before.
func (l *liveness) streams(node string, clusters []string, now time.Time) {
	set := make(map[string]struct{}, len(clusters))
	for _, c := range clusters {
		set[c] = struct{}{}
	}
	l.mu.Lock()
	l.remote[node] = nodeStreams{at: now, clusters: set}
	l.mu.Unlock()
}

// state says what is known of cluster at now, and when it was last heard from (now, while
// its stream is open).
func (l *liveness) state(cluster string, now time.Time) (ebbflowv1.Liveness, time.Time) {
	if l.local.has(cluster) {
		return ebbflowv1.Liveness_LIVENESS_ALIVE, now
	}
	l.mu.RLock()
	var last time.Time
	if e := l.seen[cluster]; e != nil {
		last = time.Unix(0, e.Load())
	}
	for _, n := range l.remote {
		if _, ok := n.clusters[cluster]; ok && n.at.After(last) {
			last = n.at
		}
	}
	l.mu.RUnlock()
	if last.IsZero() {
		return ebbflowv1.Liveness_LIVENESS_UNKNOWN, time.Time{}
	}
	if now.Sub(last) > l.window {
		return ebbflowv1.Liveness_LIVENESS_SILENT, last
	}
	return ebbflowv1.Liveness_LIVENESS_ALIVE, last
}

// forget drops a cluster (deleted).
func (l *liveness) forget(cluster string) {
	l.mu.Lock()
	delete(l.seen, cluster)
	l.mu.Unlock()
}

// reset forgets everything but this node's own streams; called when this node gains or
// loses leadership.
func (l *liveness) reset(now time.Time) {
	l.mu.Lock()
	l.seen = make(map[string]*atomic.Int64)
	l.remote = make(map[string]nodeStreams)
	l.since = now
	l.mu.Unlock()
}

// alive counts clusters alive at now: with a stream open on this node or on a follower that
// reported within the window, or heard from within the window.
func (l *liveness) alive(now time.Time) int {
	set := make(map[string]struct{}, l.local.len())
	l.local.each(func(c string) { set[c] = struct{}{} })
	cut := now.Add(-l.window)
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, n := range l.remote {
		if n.at.Before(cut) {
			continue
		}
		for c := range n.clusters {
			set[c] = struct{}{}
		}
	}
	for c, e := range l.seen {
		if e.Load() >= cut.UnixNano() {
			set[c] = struct{}{}
		}
	}
	return len(set)
}
