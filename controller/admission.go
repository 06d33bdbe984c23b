package controller

import (
	"context"
	"sync"
	"time"
)

// Admission keeps a node responsive when the whole fleet acts at once. When a rollout opens
// a wave of 10,000 clusters, every node wakes the assignment streams it holds at the same
// moment, and a moment later every agent reports. Left alone, that is thousands of runnable
// goroutines on each node, and Go's scheduler runs them first come, first served: Raft's
// heartbeats and replies wait behind them, a node misses its leader's heartbeats for longer
// than the heartbeat timeout, and the group elects a new leader in the middle of the wave
// (measured with e2e/fleetsim: dozens of elections in a 10,000-cluster wave on two cores).
//
// So the work an agent can cause is admitted through bounded gates: at most sendSlots
// assignment messages are built and sent at once on a node, and at most agentWriteSlots
// agent writes (registrations, reports) run on a node at once (a follower gives a write's
// slot back when it forwards it to the leader, which admits it again). Waiters are parked (a
// channel's FIFO queue), not runnable, so the run queue stays short and a Raft message waits
// behind a few dozen goroutines, not thousands. Throughput is not lost: a send takes tens of
// microseconds, and the leader still decides each batch of reports (reports.go) from every
// report admitted while the previous batch was written.
const (
	// sendSlots is how many assignment messages a node builds and sends at once.
	sendSlots = 32
	// agentWriteSlots is how many agent writes a node runs at once (the leader counts the
	// ones followers forward too, so a batch holds at most this many reports).
	agentWriteSlots = 128
	// sendLease is the longest a send holds its slot: an agent that does not read its stream
	// (a full HTTP/2 flow-control window) must not hold a slot the others need.
	sendLease = time.Second
)

// gate admits at most cap(slots) holders at once; the others wait in arrival order.
type gate struct{ slots chan struct{} }

func newGate(n int) *gate { return &gate{slots: make(chan struct{}, n)} }

// enter waits for a slot (or ctx) and returns its release, which is safe to call more than
// once. With lease > 0 the slot is also released after lease, whether or not the holder is
// done.
func (g *gate) enter(ctx context.Context, lease time.Duration) (func(), error) {
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var once sync.Once
	release := func() { once.Do(func() { <-g.slots }) }
	if lease <= 0 {
		return release, nil
	}
	t := time.AfterFunc(lease, release)
	return func() { t.Stop(); release() }, nil
}

// inUse is how many slots are held.
func (g *gate) inUse() int { return len(g.slots) }
