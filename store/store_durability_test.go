package store

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// copyFile copies src to dst (a test's stand-in for what a disk held at one moment).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLogMigratesFromBoltToWAL: a data directory written by an earlier version (the log in
// raft.db) opens with the WAL: the log and Raft's term and vote move into wal/, raft.db is
// kept as raft.db.migrated, the state is whole and the node leads and writes. A migration
// that stopped half-way (a wal.tmp left behind) is redone.
func TestLogMigratesFromBoltToWAL(t *testing.T) {
	cfg := testConfig(t, "node1", true)
	cfg.logStore = LogStoreBolt
	s := mustOpen(t, cfg)
	waitEstablished(t, s)
	seed(t, s)
	want := dump(t, s)
	term := s.raft.CurrentTerm()
	last := s.raft.LastIndex()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A half-done earlier attempt.
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "wal.tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "wal.tmp", "junk"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg.logStore = ""
	cfg.RaftBind = s.RaftAddress()
	s = mustOpen(t, cfg)
	waitEstablished(t, s)
	for _, p := range []string{"wal", "raft.db.migrated"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, p)); err != nil {
			t.Errorf("after migration: %v", err)
		}
	}
	for _, p := range []string{"raft.db", "wal.tmp"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there after migration (%v)", p, err)
		}
	}
	if err := sameDump(dump(t, s), want); err != nil {
		t.Fatalf("state after migration: %v", err)
	}
	if got := s.raft.CurrentTerm(); got < term {
		t.Fatalf("term went back from %d to %d", term, got)
	}
	if got := s.raft.LastIndex(); got < last {
		t.Fatalf("log lost entries: last index %d, was %d", got, last)
	}
	mustApply(t, s, updateProfile("p1", "after migration", 0))
}

// TestStateBehindTheLogCatchesUp: fsm.db is not synced on every commit, so after a power cut
// it can hold an older state than the log acknowledged. Stand in for that by putting back a
// copy of fsm.db taken earlier: the node replays the log from the copy's applied index (and
// restores the snapshot first when the entries it needs were compacted) and ends with every
// acknowledged write, none applied twice.
func TestStateBehindTheLogCatchesUp(t *testing.T) {
	for _, compacted := range []bool{false, true} {
		name := "log holds the gap"
		if compacted {
			name = "gap compacted into a snapshot"
		}
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, "node1", true)
			if compacted {
				cfg.TrailingLogs = 1
			}
			s := mustOpen(t, cfg)
			waitEstablished(t, s)
			seed(t, s)
			if err := s.fsm.close(); err != nil { // a consistent copy needs the file closed
				t.Fatal(err)
			}
			old := filepath.Join(t.TempDir(), "fsm.db.old")
			copyFile(t, s.fsm.path, old)
			db, err := openStateDB(s.fsm.path)
			if err != nil {
				t.Fatal(err)
			}
			s.fsm.mu.Lock()
			s.fsm.db = db
			s.fsm.mu.Unlock()

			for _, d := range []string{"two", "three", "four"} {
				mustApply(t, s, updateProfile("p1", d, 0))
			}
			if compacted {
				if err := s.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
			want := dump(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			copyFile(t, old, s.fsm.path)

			cfg.RaftBind = s.RaftAddress()
			s = mustOpen(t, cfg)
			waitEstablished(t, s)
			waitFor(t, 10*time.Second, "the log to replay", func() bool {
				return sameDump(dump(t, s), want) == nil
			})
			revs, err := stale(t, s, func(tx *Tx) ([]*ebbflowv1.Profile, error) { return tx.ProfileRevisions("p1") })
			if err != nil || len(revs) != 5 {
				t.Fatalf("p1 has %d revisions after replay (%v), want 5", len(revs), err)
			}
		})
	}
}
