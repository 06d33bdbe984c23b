package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/migrate"
	"go.etcd.io/bbolt"

	"github.com/ebbflow/ebbflow/internal/durable"
)

// Log stores Raft's log and stable state may live in.
const (
	// LogStoreBolt keeps them in one bbolt file, raft.db (raft-boltdb/v2): each append is a
	// bbolt commit, two fdatasyncs.
	LogStoreBolt = "boltdb"
	// LogStoreWAL keeps them in wal/ (hashicorp/raft-wal): segment files appended with one
	// fdatasync per append, and a small bbolt file for the stable state.
	LogStoreWAL = "wal"
)

// logStore is an open log and stable store.
type logStore struct {
	logs   raft.LogStore
	stable raft.StableStore
	path   string // the file or directory, for messages
	close  func() error
}

// openLogStore opens the log store kind under dir.
func openLogStore(kind, dir string, log hclog.Logger) (*logStore, error) {
	switch kind {
	case LogStoreBolt:
		path := filepath.Join(dir, "raft.db")
		b, err := raftboltdb.New(raftboltdb.Options{
			Path:        path,
			BoltOptions: &bbolt.Options{Timeout: time.Second},
		})
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		return &logStore{logs: b, stable: b, path: path, close: b.Close}, nil
	case LogStoreWAL:
		path := filepath.Join(dir, "wal")
		if err := migrateBoltToWAL(dir, log); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, err
		}
		w, closeWAL, err := openWAL(path, log)
		if err != nil {
			return nil, err
		}
		return &logStore{logs: compactedLogs{w}, stable: w, path: path, close: closeWAL}, nil
	default:
		return nil, fmt.Errorf("unknown log store %q (want %q or %q)", kind, LogStoreBolt, LogStoreWAL)
	}
}

// walSegmentSize is the size of one WAL segment file: preallocated, so it is what an idle
// node's log takes on disk; a snapshot's compaction deletes whole sealed segments.
const walSegmentSize = 16 << 20

// openWAL opens the WAL in path and returns it with the function that closes it. The meta
// database is the package's own so that closing closes it too: WAL.Close leaves it open
// (and locked).
func openWAL(path string, log hclog.Logger) (*wal.WAL, func() error, error) {
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(path, wal.WithLogger(log.Named("wal")), wal.WithSegmentSize(walSegmentSize), wal.WithMetaStore(meta))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("open %s: %w", path, err), meta.Close())
	}
	return w, func() error { return errors.Join(w.Close(), meta.Close()) }, nil
}

// migrateBoltToWAL moves a node's log from raft.db (the log store of earlier versions) into
// wal/, once: the entries and Raft's stable keys are copied into wal.tmp, which is synced and
// renamed to wal; raft.db is then renamed raft.db.migrated and kept. A crash at any point
// leaves either raft.db in use (the copy is redone) or wal complete.
func migrateBoltToWAL(dir string, log hclog.Logger) error {
	bolt := filepath.Join(dir, "raft.db")
	walDir := filepath.Join(dir, "wal")
	if _, err := os.Stat(bolt); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if _, err := os.Stat(walDir); err == nil {
		log.Warn("both raft.db and wal/ are present; using wal/ and leaving raft.db as it is", "dir", dir)
		return nil
	}
	tmp := walDir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	src, err := raftboltdb.New(raftboltdb.Options{Path: bolt, BoltOptions: &bbolt.Options{Timeout: time.Second, ReadOnly: true}})
	if err != nil {
		return fmt.Errorf("open %s to migrate it: %w", bolt, err)
	}
	defer func() { _ = src.Close() }()
	dst, closeDst, err := openWAL(tmp, log)
	if err != nil {
		return err
	}
	ctx := context.Background()
	err = errors.Join(
		migrate.CopyLogs(ctx, dst, src, 1<<20, nil),
		migrate.CopyStable(ctx, dst, src, nil, nil, nil),
	)
	if err = errors.Join(err, closeDst()); err != nil {
		return fmt.Errorf("migrate %s to %s: %w", bolt, walDir, err)
	}
	if err := os.Rename(tmp, walDir); err != nil {
		return err
	}
	if err := durable.SyncDir(dir); err != nil {
		return err
	}
	if err := os.Rename(bolt, bolt+".migrated"); err != nil {
		return err
	}
	log.Info("moved the Raft log from raft.db to wal/; raft.db.migrated may be deleted", "dir", dir)
	return durable.SyncDir(dir)
}

// compactedLogs makes a log store refuse entries below its first index. raft-wal keeps
// serving compacted entries that are still in its segment files, so a leader would send a
// new follower the old log instead of the snapshot that replaced it (and a restart would
// replay them rather than restore); Raft expects compacted entries to be gone.
type compactedLogs struct {
	raft.LogStore
}

func (c compactedLogs) GetLog(index uint64, l *raft.Log) error {
	first, err := c.FirstIndex()
	if err != nil {
		return err
	}
	if index < first {
		return raft.ErrLogNotFound
	}
	return c.LogStore.GetLog(index, l)
}

// IsMonotonic passes the store's raft.MonotonicLogStore answer on.
func (c compactedLogs) IsMonotonic() bool {
	m, ok := c.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
