package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/ebbflow/ebbflow/internal/durable"
)

// fsm adapts the state database to raft.FSM (and raft.BatchingFSM, so a burst of entries
// costs one bbolt commit). The commands themselves are applied by writer (command.go).
//
// The state is persistent: each transaction records the index it applied up to, entries at
// or below it are skipped, and Raft is told not to restore a snapshot on start
// (Config.NoSnapshotRestoreOnStart), so a restart neither re-applies nor wipes anything.
//
// The state is also derived: everything in it comes from Raft's log and snapshots, which are
// durable before an entry is acknowledged. So a commit does not fsync fsm.db (bbolt NoSync);
// a background loop (Store.syncState) does, about once a second. A process crash loses
// nothing (the pages are in the kernel's cache); after a power cut fsm.db may be behind, and
// the next start replays the log from its applied index, restoring the newest snapshot
// first when the entries it needs have been compacted (needsRestore). Raft compacts only
// what a durable snapshot holds, so the log never loses what fsm.db has not synced.
type fsm struct {
	path    string
	log     *slog.Logger
	sync    bool // fsync every commit (see Config.fsmSync); otherwise syncEvery does
	publish func([]Change)
	wake    func(keys []string, all bool)

	// ix is the in-memory index of the state (index.go), swapped whole by Restore.
	ix atomic.Pointer[index]

	// mu guards db, which Restore swaps and close clears. Readers hold it only to begin a
	// transaction; a transaction keeps its database open until it ends.
	mu sync.RWMutex
	db *bbolt.DB
	// retired counts databases swapped out by Restore that are closing in the background,
	// once their last reader (possibly a snapshot being persisted) is done.
	retired sync.WaitGroup

	appliedMu sync.Mutex
	applied   uint64        // last index applied, including entries that changed nothing
	appliedCh chan struct{} // closed and replaced whenever applied moves
}

var _ raft.BatchingFSM = (*fsm)(nil)

func openFSM(path string, log *slog.Logger, sync bool, publish func([]Change), wake func([]string, bool)) (*fsm, error) {
	db, err := openStateDB(path)
	if err != nil {
		return nil, err
	}
	db.NoSync = !sync
	f := &fsm{path: path, log: log, sync: sync, publish: publish, wake: wake, db: db, appliedCh: make(chan struct{})}
	err = db.View(func(tx *bbolt.Tx) error {
		f.applied = appliedIndex(tx)
		ix, err := loadIndex(tx)
		f.ix.Store(ix)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// index is the current in-memory index.
func (f *fsm) index() *index { return f.ix.Load() }

// Apply applies one log entry.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies committed entries in one bbolt transaction. For each command entry it
// returns *applyResult, or []Result for a Batch; nil for other entries and for entries
// applied before (index at or below the recorded one).
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		// Raft stops applying before the store closes the database.
		panic("store: apply after close")
	}
	var (
		first, last uint64
		changes     []Change
		w           *writer
	)
	err := f.db.Update(func(tx *bbolt.Tx) error {
		applied := appliedIndex(tx)
		w = &writer{tx: tx}
		for i, l := range logs {
			if l.Index <= applied {
				continue
			}
			if first == 0 {
				first = l.Index
			}
			last = l.Index
			if l.Type != raft.LogCommand {
				continue // configuration changes live in Raft's own log
			}
			cmd, err := decodeCommand(l.Data)
			if err != nil {
				panic(fmt.Sprintf("store: undecodable log entry %d: %v", l.Index, err))
			}
			w.index = l.Index
			out[i] = w.applyEntry(cmd)
		}
		if last == 0 {
			return nil
		}
		changes = w.changes
		return tx.Bucket(bucketMeta).Put(keyApplied, binary.BigEndian.AppendUint64(nil, last))
	})
	if err != nil {
		// Nothing of the entries is stored and Raft would move on without them: stop instead.
		panic(fmt.Sprintf("store: committing log entries %d-%d: %v", first, last, err))
	}
	if last != 0 {
		ix := f.index()
		woken := w.woken
		for _, id := range w.wokenRollouts {
			woken = append(woken, ix.clustersOf(id)...)
		}
		for _, fn := range w.after {
			fn(ix)
		}
		f.setApplied(last)
		f.publish(changes)
		if len(woken) > 0 {
			f.wake(woken, false)
		}
	}
	return out
}

// Snapshot starts a point-in-time copy: a read transaction that Persist streams while
// Apply carries on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	tx, err := f.begin()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{tx: tx}, nil
}

// Restore replaces the whole state with a snapshot: written to a temporary file and synced,
// then swapped in under the lock. Subscribers get Change{Resync: true}.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp := f.path + ".restore"
	if err := writeFileSync(tmp, rc); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	// Validate it (and add buckets a snapshot from an older version may lack) before it
	// replaces anything.
	db, err := openStateDB(tmp)
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}

	f.mu.Lock()
	old := f.db
	if old == nil {
		f.mu.Unlock()
		return ErrClosed
	}
	if err := os.Rename(tmp, f.path); err != nil {
		f.mu.Unlock()
		return fmt.Errorf("restore: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(f.path)); err != nil {
		f.log.Warn("syncing the data directory after restore", "err", err)
	}
	db, err = openStateDB(f.path)
	if err == nil {
		db.NoSync = !f.sync
	}
	if err != nil {
		f.mu.Unlock()
		// The old handle still reads its (now unlinked) file; keep serving from it and let
		// Raft retry the restore.
		return fmt.Errorf("restore: %w", err)
	}
	f.db = db
	f.mu.Unlock()

	// The old database closes once its readers are done; a snapshot being persisted from it
	// may need Raft's main loop, which waits for this restore, so do not wait here.
	f.retired.Go(func() {
		if err := old.Close(); err != nil {
			f.log.Warn("closing the replaced state database", "err", err)
		}
	})

	var applied uint64
	err = db.View(func(tx *bbolt.Tx) error {
		applied = appliedIndex(tx)
		ix, err := loadIndex(tx)
		if err == nil {
			f.ix.Store(ix)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f.appliedMu.Lock()
	f.applied = applied
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.appliedMu.Unlock()
	f.publish([]Change{{Resync: true, Index: applied}})
	f.wake(nil, true)
	return nil
}

// begin starts a read transaction on the current database.
func (f *fsm) begin() (*bbolt.Tx, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, ErrClosed
	}
	tx, err := f.db.Begin(false)
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return nil, ErrClosed
	}
	return tx, err
}

// view runs fn in a read transaction.
func (f *fsm) view(fn func(tx *bbolt.Tx) error) error {
	tx, err := f.begin()
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// appliedState returns the applied index and a channel closed when it next moves.
func (f *fsm) appliedState() (uint64, <-chan struct{}) {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	return f.applied, f.appliedCh
}

func (f *fsm) setApplied(index uint64) {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	if index > f.applied {
		f.applied = index
		close(f.appliedCh)
		f.appliedCh = make(chan struct{})
	}
}

// syncTo makes fsm.db durable up to the index applied when it starts, if that is past
// synced, and returns the index it made durable.
func (f *fsm) syncTo(synced uint64) (uint64, error) {
	applied, _ := f.appliedState()
	if applied <= synced || f.sync {
		return max(applied, synced), nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return synced, ErrClosed
	}
	// Sync flushes every page written so far; entries applied while it runs may or may not
	// be part of it, so only the index read before it counts as durable.
	if err := f.db.Sync(); err != nil {
		return synced, fmt.Errorf("sync %s: %w", f.path, err)
	}
	return applied, nil
}

// close syncs and closes the database, waiting for open readers, and records its digest
// beside it (check.go); without that record the next start rebuilds the state.
func (f *fsm) close() error {
	f.mu.Lock()
	db := f.db
	f.db = nil
	f.mu.Unlock()
	f.retired.Wait()
	if db == nil {
		return nil
	}
	if err := db.Sync(); err != nil {
		return errors.Join(err, db.Close())
	}
	return errors.Join(writeStateMarker(f.path, db), db.Close())
}

// fsmSnapshot streams a consistent copy of the state database.
type fsmSnapshot struct {
	tx *bbolt.Tx
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.tx.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {
	_ = s.tx.Rollback()
}

// writeFileSync writes r to path and syncs it.
func writeFileSync(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
