package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"github.com/ebbflow/ebbflow/internal/durable"
)

// What a node checks of its files when it opens, and what it does about what it finds:
//
//   - fsm.db (the applied state) is derived from the log and the snapshots, so it is never
//     trusted blindly: a clean Close writes fsm.db.clean (the applied index and a SHA-256
//     digest of every bucket's keys and values); Open reads and removes it, checks bbolt's
//     structure and compares the digest. A file that fails (damaged, changed behind the
//     node's back, or left by a crash, which can tear it after a power cut since commits are
//     not synced) is moved aside (fsm.db.damaged-<unix time>; a crash's is just removed) and
//     the state is rebuilt from the newest snapshot and the log.
//   - The log (wal/) is the node's promise to the group: if it does not open, or an entry
//     does not read back (each carries a checksum), the node refuses to start with a
//     DamagedLogError naming the file and what is wrong; the way out is to rejoin empty.
//
// A bbolt file damaged badly enough faults when mapped; the checks turn such faults into
// errors (debug.SetPanicOnFault) instead of crashing the process.

// stateMarkerSuffix names the file a clean close leaves beside fsm.db.
const stateMarkerSuffix = ".clean"

// DamagedLogError is a Raft log that cannot be trusted. The node must not start on it: the
// group may count on entries it no longer holds.
type DamagedLogError struct {
	Path string // the log's directory or file
	Err  error  // what is wrong
}

func (e *DamagedLogError) Error() string {
	return fmt.Sprintf("the Raft log in %s is damaged (%v); this node cannot rejoin the group on it: wipe its local state and join again as a new member", e.Path, e.Err)
}

func (e *DamagedLogError) Unwrap() error { return e.Err }

// checkLog reads back every entry of logs, so a damaged segment stops the node at start
// rather than when Raft needs the entry.
func checkLog(ls *logStore) error {
	return guardFault(func() error {
		first, err := ls.logs.FirstIndex()
		if err != nil {
			return err
		}
		last, err := ls.logs.LastIndex()
		if err != nil {
			return err
		}
		if last == 0 {
			return nil
		}
		var l raft.Log
		for i := max(first, 1); i <= last; i++ {
			if err := ls.logs.GetLog(i, &l); err != nil {
				return fmt.Errorf("entry %d of %d-%d: %w", i, first, last, err)
			}
			if l.Index != i {
				return fmt.Errorf("entry %d reads back as index %d", i, l.Index)
			}
		}
		return nil
	})
}

// keyClosedAt is the stable-store key of the log's last index at a clean close.
var keyClosedAt = []byte("ebbflow_closed_last_index")

// recordClose notes the log's last index at a clean close, for checkClose.
func (ls *logStore) recordClose() error {
	last, err := ls.logs.LastIndex()
	if err != nil {
		return err
	}
	return ls.stable.SetUint64(keyClosedAt, last)
}

// checkClose fails if the log ends before where the last clean close left it: raft-wal
// drops a tail whose checksum fails as a torn write, which after a clean close can only be
// damage. The record is cleared, so that a crash later is not judged by it.
func (ls *logStore) checkClose() error {
	closedAt, err := ls.stable.GetUint64(keyClosedAt)
	if err != nil || closedAt == 0 {
		return nil //nolint:nilerr // no record: first start, or after a crash
	}
	last, err := ls.logs.LastIndex()
	if err != nil {
		return err
	}
	if last < closedAt {
		return fmt.Errorf("it ends at entry %d but held entries up to %d when it was closed: its tail failed its checksum and was dropped", last, closedAt)
	}
	return ls.stable.SetUint64(keyClosedAt, 0)
}

// stateVerdict is what checkState found.
type stateVerdict int

const (
	stateFresh   stateVerdict = iota // no fsm.db yet
	stateClean                       // fsm.db as a clean close left it
	stateUnclean                     // no clean-close record: rebuild
	stateDamaged                     // unreadable, inconsistent or changed: keep aside, rebuild
)

// checkState checks fsm.db at path against its clean-close record, removing the record (so
// a later crash is not mistaken for a clean close). The reason says what was wrong.
func checkState(path string) (stateVerdict, string, error) {
	marker := path + stateMarkerSuffix
	rec, err := os.ReadFile(marker)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, "", err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return stateFresh, "", os.RemoveAll(marker)
	}
	if rec != nil {
		if err := os.Remove(marker); err != nil {
			return 0, "", err
		}
		if err := durable.SyncDir(filepath.Dir(path)); err != nil {
			return 0, "", err
		}
	}
	var applied uint64
	var sum []byte
	err = guardFault(func() error {
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
		if err != nil {
			return err
		}
		defer func() { _ = db.Close() }()
		return db.View(func(tx *bbolt.Tx) error {
			if tx.Bucket(bucketMeta) == nil {
				return errors.New("no meta bucket")
			}
			applied = appliedIndex(tx)
			// The walk touches every page in this goroutine, where a fault is caught, before
			// bbolt's check reads them in one of its own.
			if sum, err = stateDigest(tx); err != nil {
				return err
			}
			var first error
			for err := range tx.Check() {
				if first == nil {
					first = fmt.Errorf("consistency check: %w", err)
				}
			}
			return first
		})
	})
	switch {
	case err != nil:
		return stateDamaged, err.Error(), nil //nolint:nilerr // the damage is the verdict, not a failure to check
	case rec == nil:
		return stateUnclean, "not closed cleanly (no " + marker + ")", nil
	}
	wantApplied, wantSum, ok := parseStateMarker(rec)
	switch {
	case !ok:
		return stateDamaged, "unreadable " + marker, nil
	case wantApplied != applied:
		return stateDamaged, fmt.Sprintf("applied index %d, but it was closed at %d", applied, wantApplied), nil
	case !bytes.Equal(wantSum, sum):
		return stateDamaged, fmt.Sprintf("contents changed since it was closed at index %d (digest %x, recorded %x)", applied, sum[:8], wantSum[:8]), nil
	}
	return stateClean, "", nil
}

// prepareState runs checkState and moves a fsm.db that must be rebuilt out of the way.
func prepareState(path string, log interface{ Warn(string, ...any) }, now time.Time) error {
	verdict, reason, err := checkState(path)
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	switch verdict {
	case stateUnclean:
		log.Warn("rebuilding the state from the snapshot and the log", "file", path, "reason", reason)
		if err := os.Remove(path); err != nil {
			return err
		}
	case stateDamaged:
		aside := path + ".damaged-" + strconv.FormatInt(now.Unix(), 10)
		log.Warn("the state database is damaged; moved aside, rebuilding it from the snapshot and the log",
			"file", path, "reason", reason, "moved_to", aside)
		if err := os.Rename(path, aside); err != nil {
			return err
		}
	default:
		return nil
	}
	return durable.SyncDir(filepath.Dir(path))
}

// writeStateMarker records db's applied index and digest beside path, after db is synced.
func writeStateMarker(path string, db *bbolt.DB) error {
	var rec []byte
	err := db.View(func(tx *bbolt.Tx) error {
		sum, err := stateDigest(tx)
		rec = []byte(fmt.Sprintf("applied %d\nsha256 %s\n", appliedIndex(tx), hex.EncodeToString(sum)))
		return err
	})
	if err != nil {
		return err
	}
	return durable.WriteFile(path+stateMarkerSuffix, rec, 0o600)
}

func parseStateMarker(rec []byte) (applied uint64, sum []byte, ok bool) {
	lines := strings.Split(strings.TrimSpace(string(rec)), "\n")
	if len(lines) != 2 {
		return 0, nil, false
	}
	a, okA := strings.CutPrefix(lines[0], "applied ")
	s, okS := strings.CutPrefix(lines[1], "sha256 ")
	if !okA || !okS {
		return 0, nil, false
	}
	applied, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return 0, nil, false
	}
	sum, err = hex.DecodeString(s)
	return applied, sum, err == nil && len(sum) == sha256.Size
}

// stateDigest hashes every bucket's name, keys and values (nested buckets too), each with
// its length, in bbolt's order.
func stateDigest(tx *bbolt.Tx) ([]byte, error) {
	h := sha256.New()
	err := tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
		return digestBucket(h, name, b)
	})
	return h.Sum(nil), err
}

func digestBucket(h hash.Hash, name []byte, b *bbolt.Bucket) error {
	field := func(p []byte) {
		_, _ = h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
		_, _ = h.Write(p)
	}
	field([]byte("bucket"))
	field(name)
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				return digestBucket(h, k, nb)
			}
		}
		field(k)
		field(v)
		return nil
	})
}

// guardFault runs fn, turning a panic or a memory fault (a damaged memory-mapped file) into
// an error.
func guardFault(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable: %v", r)
		}
	}()
	return fn()
}

// MoveAside moves a node's Raft and state files (wal/, raft.db, snapshots/, fsm.db and what
// was kept beside them) into a new directory under dataDir, for a node that rejoins its group
// empty, and returns that directory. Other files (the node's certificates) stay.
func MoveAside(dataDir string, now time.Time) (string, error) {
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return "", err
	}
	aside := filepath.Join(dataDir, "before-rejoin-"+strconv.FormatInt(now.Unix(), 10))
	moved := false
	for _, e := range entries {
		n := e.Name()
		if n != "wal" && n != "snapshots" && !strings.HasPrefix(n, "raft.db") && !strings.HasPrefix(n, "fsm.db") && n != "wal.tmp" {
			continue
		}
		if !moved {
			if err := os.Mkdir(aside, 0o700); err != nil {
				return "", err
			}
			moved = true
		}
		if err := os.Rename(filepath.Join(dataDir, n), filepath.Join(aside, n)); err != nil {
			return "", err
		}
	}
	if !moved {
		return "", nil
	}
	return aside, durable.SyncDir(dataDir)
}
