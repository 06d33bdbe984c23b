package store

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { m.cancelled = true; return nil }
func (m *memSink) Close() error  { m.closed = true; return nil }

// TestFSMSnapshotRestore: a snapshot restored into an empty FSM reproduces the state, and
// the restore publishes a resync.
func TestFSMSnapshotRestore(t *testing.T) {
	src := newFSMHarness(t)
	src.apply(createProfile("p1", "v1"))
	src.apply(updateProfile("p1", "v2", 0))
	src.apply(registerCluster("c1", map[string]string{"env": "prod"}, false))
	src.apply(putRollout(rollout("r1", "p1", 0), 0, event("create")))
	src.apply(putNodeMeta("n1", "127.0.0.1:1"))

	snap, err := src.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes after the snapshot started are not in it.
	src.apply(createProfile("later", ""))
	want := src.dump()

	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("Persist: %v (closed %v)", err, sink.closed)
	}
	snap.Release()

	dst := newFSMHarness(t)
	dst.apply(createProfile("gone", "")) // replaced by the restore
	if err := dst.f.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	dst.view(func(tx *Tx) error {
		if _, err := tx.Profile("gone", 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("state from before the restore survived: %v", err)
		}
		if _, err := tx.Profile("later", 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("a write after the snapshot is in it: %v", err)
		}
		if tx.AppliedIndex() != 5 {
			t.Errorf("applied index %d after restore, want 5", tx.AppliedIndex())
		}
		return nil
	})
	if got, _ := dst.f.appliedState(); got != 5 {
		t.Errorf("in-memory applied index %d, want 5", got)
	}
	if last := dst.changes[len(dst.changes)-1]; !last.Resync {
		t.Errorf("last change %+v, want a resync", last)
	}

	// Applying the entry written after the snapshot makes both equal.
	dst.index = 5
	dst.apply(createProfile("later", ""))
	if err := sameDump(dst.dump(), want); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreDoesNotWaitForOpenSnapshot: a restore must not wait for a snapshot of the old
// state that is still being persisted (Raft's snapshot goroutine may be waiting for the main
// loop, which waits for the restore).
func TestRestoreDoesNotWaitForOpenSnapshot(t *testing.T) {
	src := newFSMHarness(t)
	src.apply(createProfile("p1", ""))
	var sink memSink
	snap, _ := src.f.Snapshot()
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	dst := newFSMHarness(t)
	dst.apply(createProfile("old", ""))
	open, err := dst.f.Snapshot() // held open across the restore
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- dst.f.Restore(io.NopCloser(&sink)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("restore blocked on an open snapshot")
	}
	// The open snapshot still streams the old state.
	var old memSink
	if err := open.Persist(&old); err != nil {
		t.Fatal(err)
	}
	open.Release()
	if old.Len() == 0 {
		t.Fatal("empty snapshot of the old state")
	}
}

// TestSnapshotInstallOnNewNode: a node joining after the log was compacted gets the leader's
// snapshot through Raft and ends up with the same state.
func TestSnapshotInstallOnNewNode(t *testing.T) {
	small := func(c *Config) { c.TrailingLogs = 2; c.SnapshotThreshold = 4 }
	cfg := testConfig(t, "node1", true)
	small(&cfg)
	leader := mustOpen(t, cfg)
	waitEstablished(t, leader)
	seed(t, leader)
	for range 5 {
		mustApply(t, leader, updateProfile("p2", "again", 0))
	}
	if err := leader.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if first, _ := leader.logStore.logs.FirstIndex(); first <= 1 {
		t.Fatalf("log not compacted: first index %d", first)
	}

	cfg2 := testConfig(t, "node2", false)
	small(&cfg2)
	joiner := mustOpen(t, cfg2)
	sub := joiner.Subscribe()
	defer sub.Close()
	if err := leader.AddVoter(ctxT(t), "node2", joiner.RaftAddress(), joiner.cfg.APIAddress); err != nil {
		t.Fatal(err)
	}
	want := dump(t, leader)
	waitFor(t, 10*time.Second, "the joiner to catch up", func() bool { return sameDump(dump(t, joiner), want) == nil })

	resync := false
	for !resync {
		select {
		case ch := <-sub.C:
			resync = ch.Resync
		case <-time.After(5 * time.Second):
			t.Fatal("no resync after the snapshot was installed")
		}
	}
	p, err := stale(t, joiner, func(tx *Tx) (*ebbflowv1.Profile, error) { return tx.Profile("p2", 0) })
	if err != nil || p.GetRevision() != 6 {
		t.Fatalf("joiner's p2: %v, %v", p, err)
	}
	// It keeps applying new entries on top of the snapshot.
	mustApply(t, leader, createProfile("p3", ""))
	waitFor(t, 10*time.Second, "p3 on the joiner", func() bool {
		_, err := stale(t, joiner, func(tx *Tx) (*ebbflowv1.Profile, error) { return tx.Profile("p3", 0) })
		return err == nil
	})
}
