package store

import (
	"os"
	"path/filepath"
	"testing"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// reopen closes s and opens its data directory again on the same Raft address.
func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := s.cfg
	cfg.RaftBind = s.RaftAddress()
	return mustOpen(t, cfg)
}

// TestRestart: everything written is there after a restart, nothing is applied twice (with
// and without a snapshot before the restart), and the node still leads its cluster.
func TestRestart(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		name := "log only"
		if snapshot {
			name = "after a snapshot"
		}
		t.Run(name, func(t *testing.T) {
			s := mustNewStore(t)
			seed(t, s)
			if snapshot {
				if err := s.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
			mustApply(t, s, updateProfile("p1", "three", 0)) // revision 3, after any snapshot
			want := dump(t, s)
			applied, _ := s.fsm.appliedState()

			s = reopen(t, s)
			waitEstablished(t, s)
			if err := sameDump(dump(t, s), want); err != nil {
				t.Fatalf("state after restart: %v", err)
			}
			if got, _ := s.fsm.appliedState(); got < applied {
				t.Fatalf("applied index went back from %d to %d", applied, got)
			}
			revs, err := stale(t, s, func(tx *Tx) ([]*ebbflowv1.Profile, error) { return tx.ProfileRevisions("p1") })
			if err != nil || len(revs) != 3 {
				t.Fatalf("p1 has %d revisions after restart (%v), want 3", len(revs), err)
			}
			if !s.IsLeader() {
				t.Fatal("not the leader of its single-node cluster after restart")
			}
			p := mustApply(t, s, updateProfile("p1", "four", 3)).(*ebbflowv1.Profile)
			if p.GetRevision() != 4 {
				t.Fatalf("next revision %d, want 4", p.GetRevision())
			}
			if st := s.Status(); len(st.Members) != 1 || st.LeaderAPIAddress != s.cfg.APIAddress {
				t.Fatalf("Status after restart: %+v", st)
			}
		})
	}
}

// TestRestartWithoutStateRestoresSnapshot: if fsm.db is lost, the node rebuilds its state
// from the newest snapshot and the log.
func TestRestartWithoutStateRestoresSnapshot(t *testing.T) {
	s := mustNewStore(t)
	seed(t, s)
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, updateProfile("p1", "three", 0))
	want := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.cfg.DataDir, "fsm.db")); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	waitEstablished(t, s)
	if err := sameDump(dump(t, s), want); err != nil {
		t.Fatalf("state rebuilt from the snapshot: %v", err)
	}
}

// TestOpenRefusesStateWithoutRaft: a state database beside an empty Raft log means the data
// directory was tampered with; starting would skip the new log's entries.
func TestOpenRefusesStateWithoutRaft(t *testing.T) {
	s := mustNewStore(t)
	seed(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(s.cfg.DataDir, "wal")); err != nil {
		t.Fatal(err)
	}
	cfg := s.cfg
	cfg.RaftBind = s.RaftAddress()
	if s2, err := Open(cfg); err == nil {
		_ = s2.Close()
		t.Fatal("Open succeeded")
	}
}
