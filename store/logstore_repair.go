package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/migrate"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"

	"github.com/ebbflow/ebbflow/internal/durable"
)

// repairWAL rewrites the WAL in path when raft-wal left a sealed segment without its index
// block, which no later start can read ("sealed segment has no index block"). raft-wal
// v0.4.0 does that whenever Raft truncates the log's tail (a follower dropping entries a
// new leader overwrote; hashicorp/raft-wal#31): the segment is marked sealed with no index
// written. The running process is unaffected (it reads from the writer), so the repair runs
// on open: every entry the metadata still counts (MinIndex..MaxIndex of each segment) is
// read by scanning the segment's frames, stored into a fresh WAL with Raft's stable keys,
// and the fresh WAL replaces the old one. Crash-safe: the old one is moved to wal.old first,
// and a start that finds wal.old without wal puts it back.
func repairWAL(path string, log hclog.Logger) error {
	old, tmp := path+".old", path+".repair"
	if _, err := os.Stat(old); err == nil {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if err := os.Rename(old, path); err != nil {
				return err
			}
		} else if err := os.RemoveAll(old); err != nil {
			return err
		}
	}
	meta := &metadb.BoltMetaDB{}
	state, err := meta.Load(path)
	if cerr := meta.Close(); err != nil || cerr != nil {
		return nil //nolint:nilerr // not ours to judge here: opening the WAL reports it
	}
	broken := false
	for _, s := range state.Segments {
		broken = broken || (!s.SealTime.IsZero() && s.IndexStart == 0)
	}
	if !broken {
		return nil
	}
	log.Warn("the Raft log has a segment sealed without its index (a tail truncation); rewriting it", "dir", path)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	dst, closeDst, err := openWAL(tmp, log)
	if err != nil {
		return err
	}
	err = copySegments(dst, path, state.Segments)
	if err == nil {
		// The stable keys (term, vote, and the clean-close record) live in the metadata.
		var src *wal.WAL
		var closeSrc func() error
		if src, closeSrc, err = openWAL(path, log); err == nil {
			err = errors.Join(migrate.CopyStable(context.Background(), dst, src, nil, [][]byte{keyClosedAt}, nil), closeSrc())
		}
	}
	if err = errors.Join(err, closeDst()); err != nil {
		return fmt.Errorf("rewriting %s: %w", path, err)
	}
	if err := os.Rename(path, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// copySegments stores into dst every entry segs still count, read from their files in dir.
func copySegments(dst *wal.WAL, dir string, segs []types.SegmentInfo) error {
	filer := segment.NewFiler(dir, walfs.New())
	var codec wal.BinaryCodec
	var batch []*raft.Log
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := dst.StoreLogs(batch)
		batch = batch[:0]
		return err
	}
	for _, s := range segs {
		// Every frame is read (entries reach the callback only at their batch's commit frame,
		// which may follow the last entry the segment still counts); those past a sealed
		// segment's MaxIndex were truncated away.
		last := uint64(math.MaxUint64)
		if !s.SealTime.IsZero() {
			last = s.MaxIndex
		}
		err := filer.DumpSegment(s.BaseIndex, s.ID, s.MinIndex-1, 0, func(_ types.SegmentInfo, e types.LogEntry) (bool, error) {
			if e.Index > last {
				return false, nil
			}
			l := new(raft.Log)
			if err := codec.Decode(e.Data, l); err != nil {
				return false, fmt.Errorf("entry %d: %w", e.Index, err)
			}
			if l.Index != e.Index {
				return false, fmt.Errorf("frame %d holds entry %d", e.Index, l.Index)
			}
			batch = append(batch, l)
			if len(batch) == 256 {
				return true, flush()
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("segment %d (entries %d-%d): %w", s.ID, s.MinIndex, s.MaxIndex, err)
		}
	}
	return flush()
}
