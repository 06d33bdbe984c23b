package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
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
			copyFile(t, s.fsm.path+stateMarkerSuffix, old+stateMarkerSuffix)
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
			copyFile(t, old+stateMarkerSuffix, s.fsm.path+stateMarkerSuffix)

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

// reopenAfter closes s, lets damage change its data directory, and opens it again.
func reopenAfter(t *testing.T, s *Store, damage func(dir string)) (*Store, error) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damage(s.cfg.DataDir)
	cfg := s.cfg
	cfg.RaftBind = s.RaftAddress()
	return Open(cfg)
}

// flipIn changes one byte of the first occurrence of what in path, keeping its length.
func flipIn(t *testing.T, path, what string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(what))
	if i < 0 {
		t.Fatalf("%q not in %s", what, path)
	}
	b[i] ^= 0x20
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// flipLive changes one byte of what inside the value of key in bucket of the bbolt file at
// path, keeping its length: in every copy of the whole value in the file, so the live one is
// changed whatever stale copies freed pages hold.
func flipLive(t *testing.T, path string, bucket []byte, key, what string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var v []byte
	err = db.View(func(tx *bbolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucket).Get([]byte(key)))
		return nil
	})
	if cerr := db.Close(); err != nil || cerr != nil || !bytes.Contains(v, []byte(what)) {
		t.Fatalf("finding %q in %s/%s: %v, %v, value %q", what, bucket, key, err, cerr, v)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(v)
	changed[bytes.Index(v, []byte(what))] ^= 0x20
	if n := bytes.Count(b, v); n == 0 {
		t.Fatalf("the value of %s/%s is not in %s as one run", bucket, key, path)
	}
	if err := os.WriteFile(path, bytes.ReplaceAll(b, v, changed), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedStateIsRebuilt: fsm.db after a crash (no clean-close record), with a value
// changed in place (same length), cut short, or overwritten with garbage: the node moves it
// aside (or, after a crash, drops it), rebuilds the state from the snapshot and the log, and
// serves exactly what was acknowledged, never the changed value.
func TestDamagedStateIsRebuilt(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(t *testing.T, path string)
		asideOK bool // the file is kept aside as damaged
	}{
		{"crash", func(t *testing.T, path string) {
			if err := os.Remove(path + stateMarkerSuffix); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"value changed in place", func(t *testing.T, path string) { flipLive(t, path, bucketProfiles, "p2", "after") }, true},
		{"cut short", func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, min(st.Size()/2, 4*int64(os.Getpagesize()))); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte{0xa5}, 64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, snapshot := range []bool{false, true} {
		for _, c := range cases {
			name := c.name
			if snapshot {
				name += " after a snapshot"
			}
			t.Run(name, func(t *testing.T) {
				s := mustNewStore(t)
				seed(t, s)
				if snapshot {
					if err := s.Snapshot(); err != nil {
						t.Fatal(err)
					}
				}
				mustApply(t, s, updateProfile("p2", "after", 0))
				want := dump(t, s)
				s, err := reopenAfter(t, s, func(dir string) { c.damage(t, filepath.Join(dir, "fsm.db")) })
				if err != nil {
					t.Fatalf("Open after damage: %v", err)
				}
				t.Cleanup(func() { _ = s.Close() })
				waitEstablished(t, s)
				waitFor(t, 10*time.Second, "the state to be rebuilt", func() bool { return sameDump(dump(t, s), want) == nil })
				aside, _ := filepath.Glob(filepath.Join(s.cfg.DataDir, "fsm.db.damaged-*"))
				if c.asideOK != (len(aside) == 1) {
					t.Fatalf("damaged copies kept: %v, want one: %v", aside, c.asideOK)
				}
				mustApply(t, s, updateProfile("p2", "and after", 0))
			})
		}
	}
}

// TestDamagedLogRefusesToStart: a Raft log whose entry no longer reads back, or whose meta
// database is garbage, stops the node with a DamagedLogError naming wal/.
func TestDamagedLogRefusesToStart(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, wal string)
	}{
		{"entry changed", func(t *testing.T, wal string) {
			segs, _ := filepath.Glob(filepath.Join(wal, "*.wal"))
			if len(segs) == 0 {
				t.Fatal("no segment files")
			}
			flipIn(t, segs[0], "one, again")
		}},
		{"last entry changed", func(t *testing.T, wal string) {
			segs, _ := filepath.Glob(filepath.Join(wal, "*.wal"))
			b, err := os.ReadFile(segs[len(segs)-1])
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.LastIndex(b, []byte("after"))
			if i < 0 {
				t.Fatal("the last write is not in the last segment")
			}
			b[i] ^= 0x20
			if err := os.WriteFile(segs[len(segs)-1], b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"meta database garbage", func(t *testing.T, wal string) {
			if err := os.WriteFile(filepath.Join(wal, "wal-meta.db"), bytes.Repeat([]byte{0xa5}, 64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustNewStore(t)
			seed(t, s)
			mustApply(t, s, updateProfile("p2", "after", 0))
			s2, err := reopenAfter(t, s, func(dir string) { c.damage(t, filepath.Join(dir, "wal")) })
			if err == nil {
				_ = s2.Close()
				t.Fatal("Open succeeded on a damaged log")
			}
			var dl *DamagedLogError
			if !errors.As(err, &dl) || dl.Path != filepath.Join(s.cfg.DataDir, "wal") {
				t.Fatalf("Open: %v, want a DamagedLogError for %s", err, filepath.Join(s.cfg.DataDir, "wal"))
			}
			t.Log(err)
		})
	}
}

// TestTailTruncatedLogReopens: Raft truncating the log's tail (a follower dropping entries a
// new leader overwrote) leaves raft-wal with a segment sealed without its index, unreadable
// after a restart; the log store rewrites it on open, keeping exactly the entries that
// survived the truncation and those written after it, and Raft's term and vote.
func TestTailTruncatedLogReopens(t *testing.T) {
	dir := t.TempDir()
	hlog := newHCLogger(testLogger())
	entry := func(i uint64, data string) *raft.Log {
		return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte(data)}
	}
	ls, err := openLogStore(LogStoreWAL, dir, hlog)
	if err != nil {
		t.Fatal(err)
	}
	var first []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		first = append(first, entry(i, fmt.Sprintf("first %d", i)))
	}
	// Two batches: the truncation cuts the second one, whose commit frame comes after it.
	if err := ls.logs.StoreLogs(first[:5]); err != nil {
		t.Fatal(err)
	}
	if err := ls.logs.StoreLogs(first[5:]); err != nil {
		t.Fatal(err)
	}
	if err := ls.logs.DeleteRange(8, 10); err != nil {
		t.Fatal(err)
	}
	for i := uint64(8); i <= 12; i++ {
		if err := ls.logs.StoreLog(entry(i, fmt.Sprintf("second %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := ls.stable.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := ls.close(); err != nil {
		t.Fatal(err)
	}

	ls, err = openLogStore(LogStoreWAL, dir, hlog)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.close()
	if err := checkLog(ls); err != nil {
		t.Fatalf("log after reopening: %v", err)
	}
	for i := uint64(1); i <= 12; i++ {
		var l raft.Log
		if err := ls.logs.GetLog(i, &l); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		want := fmt.Sprintf("first %d", i)
		if i >= 8 {
			want = fmt.Sprintf("second %d", i)
		}
		if string(l.Data) != want {
			t.Fatalf("entry %d holds %q, want %q", i, l.Data, want)
		}
	}
	if last, _ := ls.logs.LastIndex(); last != 12 {
		t.Fatalf("last index %d, want 12", last)
	}
	if term, err := ls.stable.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("term %d (%v), want 7", term, err)
	}
}
