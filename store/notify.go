package store

import "sync"

// subscriptionBuffer is how many changes a subscriber may fall behind before it gets a
// Resync instead.
const subscriptionBuffer = 1024

// Change says that an object changed at a Raft index. Every node publishes changes after
// applying each entry (once it is readable), followers too. Resync means changes were lost
// (the subscriber fell behind, or a snapshot replaced the whole state): re-read everything.
// A subscriber that reads right after subscribing may still get a change it already saw.
type Change struct {
	// KindProfile, KindCluster, KindRollout, KindNode, KindJoinToken, KindIdentity or
	// KindAudit; empty with Resync.
	Kind   string
	Key    string // the object's name or id
	Index  uint64
	Resync bool
}

// Subscription delivers changes on C, in order, until Close (or the store's Close), which
// closes C.
//
// The state machine never waits for a subscriber: changes queue in a bounded buffer, and
// when it is full they are dropped and a single Change{Resync: true} follows the buffered
// ones. The subscriber receives that Resync after every dropped change was applied, so
// re-reading on receipt misses nothing.
type Subscription struct {
	C <-chan Change

	c    chan Change // unbuffered: a send completes when the subscriber has the change
	hub  *hub
	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu       sync.Mutex
	queue    []Change
	size     int
	overflow bool // changes were dropped; a Resync is owed after the queue
}

// Subscribe returns a subscription to the changes this node applies from now on.
func (s *Store) Subscribe() *Subscription {
	return s.hub.subscribe(subscriptionBuffer)
}

// Close stops the subscription and closes C.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.hub.mu.Lock()
		delete(s.hub.subs, s)
		s.hub.mu.Unlock()
		close(s.done)
		s.wg.Wait()
		close(s.c)
	})
}

// offer queues changes without blocking.
func (s *Subscription) offer(changes []Change) {
	s.mu.Lock()
	for _, ch := range changes {
		switch {
		case s.overflow:
		case len(s.queue) >= s.size:
			s.overflow = true
		default:
			s.queue = append(s.queue, ch)
		}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pump hands queued changes to the subscriber, then the owed Resync.
func (s *Subscription) pump() {
	for {
		s.mu.Lock()
		var (
			next Change
			have = true
		)
		switch {
		case len(s.queue) > 0:
			next = s.queue[0]
			s.queue = s.queue[1:]
			if len(s.queue) == 0 {
				s.queue = nil
			}
		case s.overflow:
			next = Change{Resync: true}
			s.overflow = false
		default:
			have = false
		}
		s.mu.Unlock()
		if !have {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case s.c <- next:
		case <-s.done:
			return
		}
	}
}

// hub fans changes out to subscriptions, and wakes key watches.
type hub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	keys   map[string]map[*KeyWatch]struct{}
	closed bool
}

func newHub() *hub {
	return &hub{subs: map[*Subscription]struct{}{}, keys: map[string]map[*KeyWatch]struct{}{}}
}

// KeyWatch wakes one watcher when the assignment of one cluster may have changed: C receives
// (latest wins: at most one wake is pending, so a watcher that is busy misses nothing but
// repeats). It costs no goroutine and is woken only by its own cluster's changes (and by a
// snapshot restore, which wakes every watch). C is closed when the store closes.
type KeyWatch struct {
	C <-chan struct{}

	c    chan struct{}
	key  string
	hub  *hub
	once sync.Once
}

// WatchCluster returns a watch of the cluster's assignment: woken whenever a record of the
// cluster in a rollout, the end of a rollout holding it, or its registration changes, once
// this node has applied the change. Close it when done.
func (s *Store) WatchCluster(name string) *KeyWatch {
	return s.hub.watchKey(name)
}

// Close stops the watch.
func (w *KeyWatch) Close() {
	w.once.Do(func() {
		w.hub.mu.Lock()
		defer w.hub.mu.Unlock()
		if set := w.hub.keys[w.key]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(w.hub.keys, w.key)
			}
		}
	})
}

func (h *hub) watchKey(key string) *KeyWatch {
	c := make(chan struct{}, 1)
	w := &KeyWatch{C: c, c: c, key: key, hub: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(c)
		return w
	}
	set := h.keys[key]
	if set == nil {
		set = map[*KeyWatch]struct{}{}
		h.keys[key] = set
	}
	set[w] = struct{}{}
	return w
}

// wake wakes the watches of keys, or every watch.
func (h *hub) wake(keys []string, all bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	poke := func(set map[*KeyWatch]struct{}) {
		for w := range set {
			select {
			case w.c <- struct{}{}:
			default:
			}
		}
	}
	if all {
		for _, set := range h.keys {
			poke(set)
		}
		return
	}
	for _, k := range keys {
		poke(h.keys[k])
	}
}

// subscribe returns a subscription buffering up to size changes.
func (h *hub) subscribe(size int) *Subscription {
	c := make(chan Change)
	s := &Subscription{C: c, c: c, hub: h, size: size, wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.once.Do(func() { close(s.done); close(s.c) })
		return s
	}
	h.subs[s] = struct{}{}
	s.wg.Go(s.pump)
	return s
}

// publish offers changes to every subscription; it never blocks on a subscriber.
func (h *hub) publish(changes []Change) {
	if len(changes) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.offer(changes)
	}
}

// close ends every subscription.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	subs := make([]*Subscription, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	for _, set := range h.keys {
		for w := range set {
			close(w.c)
		}
	}
	h.keys = map[string]map[*KeyWatch]struct{}{}
	h.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}
