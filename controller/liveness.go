package controller

import (
	"sync"
	"sync/atomic"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// liveness is the leader's in-memory record of agent heartbeats. A heartbeat is a map
// lookup and an atomic store: never a Raft write. It is reset when leadership changes, so a
// new leader reports UNKNOWN until it hears from an agent itself.
type liveness struct {
	window time.Duration

	mu    sync.RWMutex
	seen  map[string]*atomic.Int64 // cluster -> last heartbeat, unix nanoseconds
	since time.Time                // when this node became leader
}

func newLiveness(window time.Duration) *liveness {
	return &liveness{window: window, seen: make(map[string]*atomic.Int64)}
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

// state says what is known of cluster at now, and when it was last heard from.
func (l *liveness) state(cluster string, now time.Time) (ebbflowv1.Liveness, time.Time) {
	l.mu.RLock()
	e := l.seen[cluster]
	l.mu.RUnlock()
	if e == nil {
		return ebbflowv1.Liveness_LIVENESS_UNKNOWN, time.Time{}
	}
	last := time.Unix(0, e.Load())
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

// reset forgets everything; called when this node gains or loses leadership.
func (l *liveness) reset(now time.Time) {
	l.mu.Lock()
	l.seen = make(map[string]*atomic.Int64)
	l.since = now
	l.mu.Unlock()
}

// alive counts clusters heard from within the window.
func (l *liveness) alive(now time.Time) int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := 0
	cut := now.Add(-l.window).UnixNano()
	for _, e := range l.seen {
		if e.Load() >= cut {
			n++
		}
	}
	return n
}
