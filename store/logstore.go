package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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
		if err := repairWAL(path, log); err != nil {
			return nil, &DamagedLogError{Path: path, Err: err}
		}
		w, closeWAL, err := openWAL(path, log)
		if err != nil {
			return nil, &DamagedLogError{Path: path, Err: err}
		}
		return &logStore{logs: checkedLogs{w}, stable: w, path: path, close: closeWAL}, nil
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

// checkedLogs wraps the WAL so that what it hands back is what was stored and still
// belongs to the log:
//
//   - each entry is stored with a CRC-32C of its index, term, type and data (in the entry's
//     Extensions, which Ebbflow does not otherwise use), checked when it is read back: raft-wal
//     checks its frames only where a write may have been torn, at the tail, so a byte changed
//     in a sealed segment would otherwise be replayed or sent to a follower;
//   - entries below the first index are refused: raft-wal keeps serving compacted entries
//     still in its segment files, so a leader would send a new follower the old log instead
//     of the snapshot that replaced it, and Raft expects compacted entries to be gone.
type checkedLogs struct {
	raft.LogStore
}

// entrySumTag starts Extensions holding an entry's checksum.
const entrySumTag = "ebbflow-crc32c:"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func entrySum(l *raft.Log) uint32 {
	var hdr [17]byte
	binary.BigEndian.PutUint64(hdr[0:], l.Index)
	binary.BigEndian.PutUint64(hdr[8:], l.Term)
	hdr[16] = byte(l.Type)
	return crc32.Update(crc32.Update(0, castagnoli, hdr[:]), castagnoli, l.Data)
}

// sealed is a copy of l carrying its checksum.
func sealed(l *raft.Log) *raft.Log {
	if len(l.Extensions) != 0 {
		return l // not ours to replace; stored unchecked
	}
	c := *l
	c.Extensions = binary.BigEndian.AppendUint32([]byte(entrySumTag), entrySum(l))
	return &c
}

func (c checkedLogs) StoreLog(l *raft.Log) error { return c.LogStore.StoreLog(sealed(l)) }

func (c checkedLogs) StoreLogs(logs []*raft.Log) error {
	out := make([]*raft.Log, len(logs))
	for i, l := range logs {
		out[i] = sealed(l)
	}
	return c.LogStore.StoreLogs(out)
}

func (c checkedLogs) GetLog(index uint64, l *raft.Log) error {
	first, err := c.FirstIndex()
	if err != nil {
		return err
	}
	if index < first {
		return raft.ErrLogNotFound
	}
	if err := c.LogStore.GetLog(index, l); err != nil {
		return err
	}
	if l.Index != index {
		return fmt.Errorf("entry %d reads back as index %d", index, l.Index)
	}
	ext, ok := bytes.CutPrefix(l.Extensions, []byte(entrySumTag))
	if !ok {
		return nil // stored before checksums (a migrated log)
	}
	if len(ext) != 4 || binary.BigEndian.Uint32(ext) != entrySum(l) {
		return fmt.Errorf("entry %d fails its checksum", index)
	}
	l.Extensions = nil
	return nil
}

// IsMonotonic passes the store's raft.MonotonicLogStore answer on.
func (c checkedLogs) IsMonotonic() bool {
	m, ok := c.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
