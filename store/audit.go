package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// KindAudit is the Change kind of a new audit record (Key is its sequence number).
const KindAudit = "audit"

// maxPrunePerCommand bounds how many audit records one command deletes, so lowering the
// retention on a full log spreads the deletions over the next commands instead of one long
// transaction. The bound is the same on every node, so pruning stays deterministic.
const maxPrunePerCommand = 4096

// Audit result codes: "ok" or the name of the Connect code the API answers for a store error
// (the same mapping as the controller's toConnectError).
const AuditOK = "ok"

// auditCode names the Connect code of an error the FSM decided.
func auditCode(err error) string {
	switch {
	case err == nil:
		return AuditOK
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrAlreadyExists):
		return "already_exists"
	case errors.Is(err, ErrConflict):
		return "aborted"
	case errors.Is(err, ErrInvalid):
		return "invalid_argument"
	case errors.Is(err, ErrInUse), errors.Is(err, ErrFailedPrecondition):
		return "failed_precondition"
	case errors.Is(err, ErrUnauthenticated):
		return "unauthenticated"
	}
	return "internal"
}

// recordAudit stores the audit record of a command with the result the FSM decided (or, for a
// RecordAudit, the result the entry carries), then prunes the log by the entry's retention.
func (w *writer) recordAudit(a *storev1.AuditEntry, actor string, now *timestamppb.Timestamp, own bool, err error) {
	rec := &ebbflowv1.AuditRecord{
		Time: stamp(now), Actor: a.GetActor(), RemoteAddress: a.GetRemoteAddress(),
		Procedure: a.GetProcedure(), Resource: a.GetResource(), NodeId: a.GetNodeId(),
		Code: auditCode(err),
	}
	if rec.Actor == "" {
		rec.Actor = actor
	}
	if err != nil {
		rec.Message = err.Error()
	}
	if own {
		rec.Code, rec.Message = a.GetCode(), a.GetMessage()
		if rec.Code == "" {
			rec.Code = AuditOK
		}
	}
	meta := w.tx.Bucket(bucketMeta)
	seq := metaUint(meta, keyAuditSeq) + 1
	count := metaUint(meta, keyAuditCount) + 1
	rec.Sequence = seq
	b := w.tx.Bucket(bucketAudit)
	must(b.Put(binary.BigEndian.AppendUint64(nil, seq), encode(rec)))
	count -= w.pruneAudit(b, count, a.GetMaxRecords(), a.GetMaxAge().AsDuration(), now)
	must(meta.Put(keyAuditSeq, binary.BigEndian.AppendUint64(nil, seq)))
	must(meta.Put(keyAuditCount, binary.BigEndian.AppendUint64(nil, count)))
	w.changes = append(w.changes, Change{Kind: KindAudit, Key: fmt.Sprint(seq), Index: w.index})
}

// pruneAudit deletes the oldest records beyond maxRecords and those older than maxAge before
// now, at most maxPrunePerCommand of them, and returns how many it deleted. It depends only on
// the stored records and the command, so every replica deletes the same ones.
func (w *writer) pruneAudit(b *bbolt.Bucket, count, maxRecords uint64, maxAge time.Duration, now *timestamppb.Timestamp) uint64 {
	var cutoff time.Time
	if maxAge > 0 && now != nil {
		cutoff = now.AsTime().Add(-maxAge)
	}
	var keys [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(keys) < maxPrunePerCommand; k, v = c.Next() {
		if maxRecords > 0 && count-uint64(len(keys)) > maxRecords {
			keys = append(keys, bytes.Clone(k))
			continue
		}
		if cutoff.IsZero() {
			break
		}
		rec := &ebbflowv1.AuditRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			panic(fmt.Sprintf("store: decode audit record %x: %v", k, err))
		}
		if !rec.GetTime().AsTime().Before(cutoff) {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		must(b.Delete(k))
	}
	return uint64(len(keys))
}

func metaUint(b *bbolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// AuditFilter selects audit records; zero fields match everything.
type AuditFilter struct {
	Actor string
	// Prefix matches the start of the procedure or of the resource.
	Prefix string
	// OK keeps only successful calls, Failed only failed ones.
	OK, Failed bool
	// Start (inclusive) and End (exclusive) bound the record's time.
	Start, End time.Time
}

func (f AuditFilter) match(r *ebbflowv1.AuditRecord) bool {
	switch {
	case f.Actor != "" && r.GetActor() != f.Actor:
		return false
	case f.Prefix != "" && !strings.HasPrefix(r.GetProcedure(), f.Prefix) && !strings.HasPrefix(r.GetResource(), f.Prefix):
		return false
	case f.OK && r.GetCode() != AuditOK, f.Failed && r.GetCode() == AuditOK:
		return false
	}
	t := r.GetTime().AsTime()
	if !f.Start.IsZero() && t.Before(f.Start) {
		return false
	}
	if !f.End.IsZero() && !t.Before(f.End) {
		return false
	}
	return true
}

// AuditRecords returns up to limit records matching f, newest first, starting below sequence
// before (0: from the newest). more reports whether older matching records remain.
func (tx *Tx) AuditRecords(f AuditFilter, before uint64, limit int) (out []*ebbflowv1.AuditRecord, more bool, err error) {
	c := tx.tx.Bucket(bucketAudit).Cursor()
	var k, v []byte
	if before == 0 {
		k, v = c.Last()
	} else {
		k, _ = c.Seek(binary.BigEndian.AppendUint64(nil, before))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		// Seek lands on the first key >= before; everything from Prev is older.
		for k != nil && binary.BigEndian.Uint64(k) >= before {
			k, v = c.Prev()
		}
	}
	for ; k != nil; k, v = c.Prev() {
		rec := &ebbflowv1.AuditRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return nil, false, fmt.Errorf("decode audit record %x: %w", k, err)
		}
		if !f.match(rec) {
			continue
		}
		if limit > 0 && len(out) == limit {
			return out, true, nil
		}
		out = append(out, rec)
	}
	return out, false, nil
}

// AuditCount is the number of records in the audit log.
func (tx *Tx) AuditCount() uint64 {
	return metaUint(tx.tx.Bucket(bucketMeta), keyAuditCount)
}

// decodeCommand decodes a log entry's command and checks that every body in it is one this
// version knows. An entry that fails is an error, never skipped: the FSM stops on it rather
// than let this replica diverge.
func decodeCommand(data []byte) (*storev1.Command, error) {
	cmd := &storev1.Command{}
	if err := proto.Unmarshal(data, cmd); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	if err := checkBody(cmd, 0); err != nil {
		return nil, err
	}
	return cmd, nil
}

func checkBody(cmd *storev1.Command, depth int) error {
	switch b := cmd.GetBody().(type) {
	case nil:
		return errors.New("unhandled command: no body this version knows")
	case *storev1.Command_Batch:
		if depth > 0 {
			return nil // refused by apply with ErrInvalid, the same on every node
		}
		for i, sub := range b.Batch.GetCommands() {
			if err := checkBody(sub, depth+1); err != nil {
				return fmt.Errorf("batch command %d: %w", i, err)
			}
		}
	}
	return nil
}
