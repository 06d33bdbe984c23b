package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// ReadLevel says how fresh a read must be.
type ReadLevel int

const (
	// Linearizable reads see every write acknowledged before they started. Leader only
	// (ErrNotLeader elsewhere): once leadership is established in the current term (a
	// barrier applied), the leader notes its commit index, confirms with a quorum that it is
	// still the leader, and waits until it has applied that index (the ReadIndex scheme).
	Linearizable ReadLevel = iota
	// Stale reads the local replica as it is, on any node; it may lag the leader.
	Stale
)

func (l ReadLevel) String() string {
	switch l {
	case Linearizable:
		return "linearizable"
	case Stale:
		return "stale"
	}
	return fmt.Sprintf("ReadLevel(%d)", int(l))
}

// View runs fn in a read-only transaction at the given level. The Tx is valid only inside
// fn; fn must not call Apply (a snapshot restore waits for readers).
func (s *Store) View(ctx context.Context, level ReadLevel, fn func(tx *Tx) error) error {
	switch level {
	case Linearizable:
		if err := s.linearize(ctx); err != nil {
			return err
		}
	case Stale:
		if err := ctx.Err(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("read level %v: %w", level, ErrInvalid)
	}
	return s.fsm.view(func(tx *bbolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// linearize returns once the local state holds every write committed before the call, or
// ErrNotLeader if this node cannot vouch for that.
func (s *Store) linearize(ctx context.Context) error {
	if s.closed() {
		return ErrClosed
	}
	if err := s.waitEstablished(ctx); err != nil {
		return err
	}
	readIndex := s.raft.CommitIndex()
	if err := s.wait(ctx, s.raft.VerifyLeader()); err != nil {
		return err
	}
	return s.waitApplied(ctx, readIndex)
}

// CatchUp waits until this node's state machine holds the log up to index, typically the
// leader's commit index read after a write was acknowledged: a follower that has caught up
// holds that write. It waits for Raft to have the entries locally and hand them to the FSM
// (Raft's applied index, polled), then for the FSM to have applied the last command among them.
func (s *Store) CatchUp(ctx context.Context, index uint64) error {
	if err := s.pollUntil(ctx, 5*time.Millisecond, func() bool { return s.raft.AppliedIndex() >= index }); err != nil {
		return err
	}
	return s.waitApplied(ctx, index)
}

// pollUntil checks cond every interval until it holds, ctx ends or the store closes.
func (s *Store) pollUntil(ctx context.Context, interval time.Duration, cond func() bool) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for !cond() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return ErrClosed
		}
	}
	return nil
}

// waitApplied waits until the FSM has applied every command at or below index. Entries it
// never sees (no-ops, barriers) need no waiting for.
func (s *Store) waitApplied(ctx context.Context, index uint64) error {
	applied, _ := s.fsm.appliedState()
	if applied >= index {
		return nil
	}
	need, err := s.lastCommandIndex(applied, index)
	if err != nil {
		return err
	}
	for {
		applied, moved := s.fsm.appliedState()
		if applied >= need {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return ErrClosed
		}
	}
}

// lastCommandIndex returns the index of the last command entry in (after, upTo], or 0 if
// there is none. An entry already compacted away is covered by a snapshot, so applied.
func (s *Store) lastCommandIndex(after, upTo uint64) (uint64, error) {
	for i := upTo; i > after; i-- {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				return 0, nil
			}
			return 0, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand {
			return i, nil
		}
	}
	return 0, nil
}
