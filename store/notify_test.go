package store

import (
	"testing"
	"time"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func next(t *testing.T, sub *Subscription) Change {
	t.Helper()
	select {
	case ch, ok := <-sub.C:
		if !ok {
			t.Fatal("subscription closed")
		}
		return ch
	case <-time.After(10 * time.Second):
		t.Fatal("no change")
	}
	return Change{}
}

func TestSubscribe(t *testing.T) {
	c := newCluster(t, 2, nil)
	// Wait until both nodes applied everything so far (the node metadata of the join).
	c.apply(t, registerCluster("c0", nil, false))
	waitFor(t, 10*time.Second, "both nodes to catch up", func() bool {
		_, err0 := stale(t, c[0], func(tx *Tx) (*ebbflowv1.Cluster, error) { return tx.Cluster("c0") })
		_, err1 := stale(t, c[1], func(tx *Tx) (*ebbflowv1.Cluster, error) { return tx.Cluster("c0") })
		return err0 == nil && err1 == nil
	})
	subs := []*Subscription{c[0].Subscribe(), c[1].Subscribe()}
	c.apply(t, registerCluster("c1", nil, false))
	c.apply(t, registerCluster("c2", nil, false))
	// Every node publishes, followers too. A change committed just before Subscribe may
	// still arrive, and a new leader may record its API address: skip those.
	for i, sub := range subs {
		a := next(t, sub)
		for a.Kind == KindNode || a.Key == "c0" {
			a = next(t, sub)
		}
		b := next(t, sub)
		for b.Kind == KindNode {
			b = next(t, sub)
		}
		if a.Kind != KindCluster || a.Key != "c1" || b.Kind != KindCluster || b.Key != "c2" || a.Index == 0 || b.Index <= a.Index || a.Resync || b.Resync {
			t.Fatalf("node %d: changes %+v, %+v", i+1, a, b)
		}
	}
	subs[0].Close()
	subs[0].Close()
	if _, ok := <-subs[0].C; ok {
		t.Fatal("C open after Close")
	}
	c.apply(t, registerCluster("c3", nil, false)) // publishing to a closed subscription is fine
	if err := c[1].Close(); err != nil {
		t.Fatal(err)
	}
	for range subs[1].C { // the store's Close closes its subscriptions
	}
}

// TestSlowSubscriber: a subscriber that does not read never blocks the state machine; it
// gets one Resync once it reads again, then changes as usual.
func TestSlowSubscriber(t *testing.T) {
	s := mustNewStore(t)
	slow := s.hub.subscribe(4)
	defer slow.Close()

	var cmds []*storev1.Command
	for i := range 50 {
		cmds = append(cmds, registerCluster("c"+string(rune('a'+i%26))+string(rune('a'+i/26)), nil, false))
	}
	done := make(chan error, 1)
	go func() { _, err := s.ApplyBatch(ctxT(t), cmds); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ApplyBatch blocked on a slow subscriber")
	}
	mustApply(t, s, createProfile("p1", "")) // applies too while the subscriber lags

	// The buffered changes (the buffer, plus the one on its way), then one Resync.
	n := 0
	for ch := next(t, slow); !ch.Resync; ch = next(t, slow) {
		if ch.Kind == KindNode && n == 0 {
			continue // the leader's API address, committed just before Subscribe
		}
		if ch.Kind != KindCluster {
			t.Fatalf("change %d: %+v, want a buffered cluster change", n, ch)
		}
		n++
	}
	if n < 3 || n > 5 {
		t.Fatalf("%d changes before the Resync, want the buffer's worth", n)
	}
	// Caught up: changes flow again (and nothing more was queued meanwhile).
	mustApply(t, s, createProfile("p2", ""))
	if ch := next(t, slow); ch.Resync || ch.Key != "p2" {
		t.Fatalf("after the resync: %+v, want p2", ch)
	}
}

// TestHubDropsThenResyncs: overflowing changes are dropped, one Resync follows the buffered
// ones, and later changes arrive in order after it.
func TestHubDropsThenResyncs(t *testing.T) {
	h := newHub()
	sub := h.subscribe(2)
	defer sub.Close()
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		h.publish([]Change{{Kind: KindProfile, Key: k}})
	}
	var got string
	for ch := range sub.C {
		if ch.Resync {
			break
		}
		got += ch.Key
	}
	if got != "ab" && got != "abc" {
		t.Fatalf("before the Resync got %q, want the first 2 or 3 changes", got)
	}
	h.publish([]Change{{Kind: KindProfile, Key: "g"}})
	h.publish([]Change{{Kind: KindProfile, Key: "h"}})
	if a, b := <-sub.C, <-sub.C; a.Key != "g" || b.Key != "h" {
		t.Fatalf("after the Resync got %+v, %+v; want g, h", a, b)
	}
	h.close()
	if _, ok := <-sub.C; ok {
		t.Fatal("C open after the hub closed")
	}
	if s := h.subscribe(1); s != nil {
		if _, ok := <-s.C; ok {
			t.Fatal("a subscription to a closed hub is open")
		}
	}
}
