package store

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// On a loaded machine a node can stall long enough for leadership to move at any time. The
// helpers below therefore act on whichever node leads when they run and retry when it
// stops leading; the commands they are used with are idempotent, so a retry of a command
// that did commit is harmless.

// apply applies cmd on the current leader.
func (c cluster) apply(t testing.TB, cmd *storev1.Command) proto.Message {
	t.Helper()
	var out proto.Message
	var unknown error // an earlier attempt's outcome is unknown: it may have committed
	waitFor(t, 20*time.Second, "a leader to apply a command", func() bool {
		l := c.Leader()
		if l == nil {
			return false
		}
		m, err := l.Apply(ctxT(t), proto.Clone(cmd).(*storev1.Command))
		if errors.Is(err, ErrNotLeader) {
			return false
		}
		if errors.Is(err, ErrOutcomeUnknown) {
			unknown = err
			return false
		}
		if unknown != nil && (errors.Is(err, ErrAlreadyExists) || errors.Is(err, ErrConflict)) {
			t.Logf("Apply(%v) on %s: %v after %v: the earlier attempt committed", cmd, l.cfg.NodeID, err, unknown)
			return true
		}
		if err != nil {
			t.Fatalf("Apply(%v) on %s: %v", cmd, l.cfg.NodeID, err)
		}
		out = m
		return true
	})
	return out
}

// linearCluster reads a cluster with a linearizable read on the current leader.
func (c cluster) linearCluster(t testing.TB, name string) (*ebbflowv1.Cluster, *Store) {
	t.Helper()
	var (
		out *ebbflowv1.Cluster
		on  *Store
	)
	waitFor(t, 20*time.Second, "a linearizable read", func() bool {
		l := c.Leader()
		if l == nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := l.View(ctx, Linearizable, func(tx *Tx) error {
			var err error
			out, err = tx.Cluster(name)
			return err
		})
		if errors.Is(err, ErrNotLeader) || errors.Is(err, context.DeadlineExceeded) {
			return false
		}
		if err != nil {
			t.Fatalf("linearizable read of %s on %s: %v", name, l.cfg.NodeID, err)
		}
		on = l
		return true
	})
	return out, on
}

// follower returns an open node that does not lead.
func (c cluster) follower() *Store {
	for _, s := range c {
		if !s.closed() && !s.IsLeader() {
			return s
		}
	}
	return nil
}

func labels(v string) map[string]string { return map[string]string{"v": v} }

// TestMultiNode runs three nodes in one process through replication, follower refusals,
// leader discovery, failover and removal.
func TestMultiNode(t *testing.T) {
	c := newCluster(t, 3, nil)

	// A write on the leader is readable with a stale read on every node once replicated.
	want := c.apply(t, registerCluster("c1", labels("1"), false)).(*ebbflowv1.Cluster)
	for _, s := range c {
		waitFor(t, 10*time.Second, "c1 on "+s.cfg.NodeID, func() bool {
			got, err := stale(t, s, func(tx *Tx) (*ebbflowv1.Cluster, error) { return tx.Cluster("c1") })
			return err == nil && proto.Equal(got, want)
		})
	}

	// Writes, linearizable reads and membership changes on a follower fail with ErrNotLeader.
	// (Should the follower win an election meanwhile, try again with the new follower.)
	refused := func(what string, op func(f *Store) error) {
		t.Helper()
		waitFor(t, 20*time.Second, what+" on a follower to be refused", func() bool {
			f := c.follower()
			err := op(f)
			if errors.Is(err, ErrNotLeader) {
				return true
			}
			if !f.IsLeader() {
				t.Fatalf("%s on follower %s: %v, want ErrNotLeader", what, f.cfg.NodeID, err)
			}
			return false
		})
	}
	refused("Apply", func(f *Store) error {
		_, err := f.Apply(ctxT(t), registerCluster("c1", labels("1"), false))
		return err
	})
	refused("ApplyBatch", func(f *Store) error {
		_, err := f.ApplyBatch(ctxT(t), []*storev1.Command{registerCluster("c1", labels("1"), false)})
		return err
	})
	refused("linearizable View", func(f *Store) error {
		return f.View(ctxT(t), Linearizable, func(*Tx) error { return nil })
	})
	refused("AddVoter", func(f *Store) error { return f.AddVoter(ctxT(t), "x", "127.0.0.1:1", "") })
	refused("RemoveServer", func(f *Store) error { return f.RemoveServer(ctxT(t), "node1") })

	// Followers find the leader's API address through the replicated node meta, and see
	// every member with its API address.
	waitFor(t, 20*time.Second, "followers to know the leader's API address", func() bool {
		l := c.Leader()
		if l == nil {
			return false
		}
		for _, f := range c {
			if f == l {
				continue
			}
			addr, err := f.LeaderAPIAddress()
			st := f.Status()
			if err != nil || addr != l.cfg.APIAddress || st.State != "Follower" || st.LeaderID != l.cfg.NodeID ||
				st.LeaderAPIAddress != l.cfg.APIAddress || len(st.Members) != 3 {
				return false
			}
			for _, m := range st.Members {
				if m.APIAddress != apiAddress(m.ID) || !m.Voter || m.Leader != (m.ID == l.cfg.NodeID) {
					t.Fatalf("member %+v in %s's status", m, f.cfg.NodeID)
				}
			}
		}
		return true
	})

	// A write acknowledged before the leader dies survives on the new leader.
	leader := c.Leader()
	acked, err := leader.Apply(ctxT(t), registerCluster("c1", labels("2"), false))
	for errors.Is(err, ErrNotLeader) { // leadership moved on its own: use the next leader
		leader = c.waitForNewLeader(t, nil)
		acked, err = leader.Apply(ctxT(t), registerCluster("c1", labels("2"), false))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Close(); err != nil {
		t.Fatal(err)
	}
	c.waitForNewLeader(t, leader)
	got, on := c.linearCluster(t, "c1")
	if !proto.Equal(got, acked) {
		t.Fatalf("c1 on the new leader %s: %v; want the acknowledged %v", on.cfg.NodeID, got, acked)
	}
	after := c.apply(t, registerCluster("c1", labels("3"), false)).(*ebbflowv1.Cluster)
	if !maps.Equal(after.GetLabels(), labels("3")) {
		t.Fatalf("write after failover: %v", after)
	}

	// Remove the dead node: the membership shrinks to two, its API address is forgotten,
	// and writes still commit.
	dead := leader.cfg.NodeID
	waitFor(t, 20*time.Second, "RemoveServer on the leader", func() bool {
		l := c.Leader()
		if l == nil {
			return false
		}
		err := l.RemoveServer(ctxT(t), dead)
		switch {
		case err == nil:
			return true
		case errors.Is(err, ErrNotLeader):
			return false
		case errors.Is(err, ErrNotFound): // removed by an attempt that lost leadership after
			return true
		}
		t.Fatalf("RemoveServer(%s): %v", dead, err)
		return false
	})
	waitFor(t, 20*time.Second, "the membership to shrink", func() bool {
		for _, s := range c {
			if s.closed() {
				continue
			}
			st := s.Status()
			if len(st.Members) != 2 {
				return false
			}
			for _, m := range st.Members {
				if m.ID == dead {
					return false
				}
			}
			if _, ok := s.nodeAPIAddress(dead); ok {
				return false
			}
		}
		return true
	})
	c.apply(t, registerCluster("after-remove", nil, false))
}

// TestRemoveLeaderHandsOver: a leader asked to remove itself hands leadership over first
// (ErrNotLeader, nothing proposed) and no longer leads when the call returns; another node
// leads; the new leader then removes the old one as a follower and writes go on.
func TestRemoveLeaderHandsOver(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.apply(t, registerCluster("c1", labels("1"), false))
	old := c.Leader()
	if old == nil {
		t.Fatal("no leader")
	}
	id := old.cfg.NodeID
	if err := old.RemoveServer(ctxT(t), id); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("RemoveServer(itself) on the leader: %v, want ErrNotLeader after the hand-over", err)
	}
	if old.IsLeader() {
		t.Fatal("the old leader still leads after the hand-over")
	}
	var next *Store
	waitFor(t, 10*time.Second, "the new leader", func() bool {
		next = c.Leader()
		return next != nil && next != old
	})
	if err := next.RemoveServer(ctxT(t), id); err != nil {
		t.Fatalf("RemoveServer(%s) on the new leader: %v", id, err)
	}
	if !next.IsLeader() {
		t.Fatal("the new leader lost leadership removing the old one")
	}
	if st := next.Status(); len(st.Members) != 2 {
		t.Fatalf("members after the removal: %v", st.Members)
	}
	c.apply(t, registerCluster("after-remove", nil, false))
}

// TestMultiNodeNoLeader: with its leader gone and no quorum, a follower reports that there
// is no leader.
func TestMultiNodeNoLeader(t *testing.T) {
	c := newCluster(t, 2, nil)
	var leader *Store
	waitFor(t, 20*time.Second, "a leader", func() bool { leader = c.Leader(); return leader != nil })
	if err := leader.Close(); err != nil {
		t.Fatal(err)
	}
	follower := c.follower()
	waitFor(t, 10*time.Second, "the follower to lose its leader", func() bool { return follower.LeaderID() == "" })
	if _, err := follower.LeaderAPIAddress(); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("LeaderAPIAddress without a leader: %v, want ErrNotLeader", err)
	}
	if _, err := follower.Apply(ctxT(t), registerCluster("c1", nil, false)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Apply without a leader: %v, want ErrNotLeader", err)
	}
}
