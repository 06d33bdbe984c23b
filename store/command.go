package store

import (
	"fmt"
	"strings"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	rules "github.com/ebbflow/ebbflow/rollout"
)

// Result is the outcome of one command: the resulting object (nil for deletes, node meta and
// events) or the error the FSM decided.
type Result struct {
	Msg proto.Message
	Err error
}

// applyResult is what the FSM returns for a log entry holding a single command.
type applyResult struct {
	msg proto.Message
	err error
}

// Kinds of Change.
const (
	KindProfile = "profile"
	KindCluster = "cluster"
	KindRollout = "rollout"
	KindNode    = "node"
	// KindJoinToken: a join token was created, used, revoked or pruned (Key is its id).
	KindJoinToken = "join_token"
	// KindIdentity: a cluster's identity epoch moved or was revoked (Key is the cluster).
	KindIdentity = "identity"
)

// maxNameLen bounds names and ids so keys stay far below bbolt's key size limit.
const maxNameLen = 1024

// writer applies commands inside one writable bbolt transaction. Every decision depends only
// on the command and the stored state, never on this node's clock or configuration, so every
// replica reaches the same state.
//
// Each handler checks everything that can fail before its first write, so a command that
// fails leaves no trace and the next command of a batch sees the state as it was. A write
// that fails after those checks means the storage is broken: the handler panics, the
// transaction rolls back, and the node stops rather than diverge.
type writer struct {
	tx      *bbolt.Tx
	index   uint64 // Raft index of the entry being applied
	changes []Change
	// woken: clusters whose assignment may have changed (keyed notifications); wokenRollouts:
	// rollouts all of whose clusters' assignments may have changed (one that ended).
	woken, wokenRollouts []string
	// after: changes to the in-memory index, made once the transaction has committed.
	after []func(ix *index)
}

// applyEntry applies the command of one log entry: a Batch yields []Result, anything else
// *applyResult.
func (w *writer) applyEntry(cmd *storev1.Command) any {
	if b, ok := cmd.GetBody().(*storev1.Command_Batch); ok {
		out := make([]Result, len(b.Batch.GetCommands()))
		for i, sub := range b.Batch.GetCommands() {
			now, actor := sub.GetTime(), sub.GetActor()
			if now == nil {
				now = cmd.GetTime()
			}
			if actor == "" {
				actor = cmd.GetActor()
			}
			out[i].Msg, out[i].Err = w.applyAudited(sub, actor, now)
		}
		return out
	}
	msg, err := w.applyAudited(cmd, cmd.GetActor(), cmd.GetTime())
	return &applyResult{msg: msg, err: err}
}

// applyAudited applies one command and, when it carries an audit entry, stores the record in
// the same transaction with the result just decided, so an acknowledged change never lacks
// its record and a failed one is recorded with its error.
func (w *writer) applyAudited(cmd *storev1.Command, actor string, now *timestamppb.Timestamp) (proto.Message, error) {
	msg, err := w.apply(cmd, actor, now)
	if a := cmd.GetAudit(); a != nil {
		_, own := cmd.GetBody().(*storev1.Command_RecordAudit)
		w.recordAudit(a, actor, now, own, err)
	}
	return msg, err
}

// apply is the one switch over command bodies. A body it does not know (nil, or a field added
// by a newer version) panics: skipping it would let this replica diverge from the others.
func (w *writer) apply(cmd *storev1.Command, actor string, now *timestamppb.Timestamp) (proto.Message, error) {
	switch b := cmd.GetBody().(type) {
	case *storev1.Command_CreateProfile:
		return result(w.createProfile(b.CreateProfile, actor, now))
	case *storev1.Command_UpdateProfile:
		return result(w.updateProfile(b.UpdateProfile, actor, now))
	case *storev1.Command_DeleteProfile:
		return nil, w.deleteProfile(b.DeleteProfile)
	case *storev1.Command_RegisterCluster:
		return result(w.registerCluster(b.RegisterCluster, now))
	case *storev1.Command_SetClusterLabels:
		return result(w.setClusterLabels(b.SetClusterLabels))
	case *storev1.Command_SetClusterCordon:
		return result(w.setClusterCordon(b.SetClusterCordon))
	case *storev1.Command_UpdateInventory:
		return result(w.updateInventory(b.UpdateInventory))
	case *storev1.Command_DeleteCluster:
		return nil, w.deleteCluster(b.DeleteCluster)
	case *storev1.Command_PutRollout:
		return result(w.putRollout(b.PutRollout, actor, now))
	case *storev1.Command_PatchRollout:
		return nil, w.patchRollout(b.PatchRollout, now)
	case *storev1.Command_AppendRolloutEvents:
		return nil, w.appendRolloutEvents(b.AppendRolloutEvents, now)
	case *storev1.Command_PutNodeMeta:
		return nil, w.putNodeMeta(b.PutNodeMeta)
	case *storev1.Command_CreateJoinToken:
		return result(w.createJoinToken(b.CreateJoinToken, actor, now))
	case *storev1.Command_ConsumeJoinToken:
		return result(w.consumeJoinToken(b.ConsumeJoinToken, now))
	case *storev1.Command_RevokeJoinToken:
		return result(w.revokeJoinToken(b.RevokeJoinToken, now))
	case *storev1.Command_RevokeClusterIdentity:
		return result(w.revokeClusterIdentity(b.RevokeClusterIdentity, now))
	case *storev1.Command_RecordAudit:
		if cmd.GetAudit() == nil {
			return nil, fmt.Errorf("record audit without an audit entry: %w", ErrInvalid)
		}
		return nil, nil // applyAudited stores the entry
	case *storev1.Command_Batch:
		return nil, fmt.Errorf("batch inside a batch: %w", ErrInvalid)
	default:
		panic(fmt.Sprintf("store: unhandled command %T at index %d", b, w.index))
	}
}

// result turns a handler's typed result into a proto.Message that is nil on error.
func result[M proto.Message](m M, err error) (proto.Message, error) {
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Helpers.

// terminal reports whether a rollout in state s is over; the rule is the rollout engine's.
var terminal = rules.Terminal

// wake notes that cluster's assignment may have changed.
func (w *writer) wake(cluster string) {
	w.woken = append(w.woken, cluster)
}

func (w *writer) changed(kind, key string) {
	w.changes = append(w.changes, Change{Kind: kind, Key: key, Index: w.index})
}

// checkName refuses names that cannot be keys: empty, too long, or holding the \x00 that
// separates a name from its sequence numbers.
func checkName(kind, name string) error {
	return checkKey(kind+" name", name)
}

// checkKey is checkName for a key described by what, e.g. "join token id".
func checkKey(what, key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%s is empty: %w", what, ErrInvalid)
	case len(key) > maxNameLen:
		return fmt.Errorf("%s is longer than %d bytes: %w", what, maxNameLen, ErrInvalid)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%s %q contains a NUL byte: %w", what, key, ErrInvalid)
	}
	return nil
}

// load decodes the value of key into m; a value that does not decode means the local
// storage is corrupt, and the node stops.
func load[M proto.Message](b *bbolt.Bucket, key string, m M) (M, bool) {
	v := b.Get([]byte(key))
	if v == nil {
		return m, false
	}
	if err := proto.Unmarshal(v, m); err != nil {
		panic(fmt.Sprintf("store: decode %q: %v", key, err))
	}
	return m, true
}

func encode(m proto.Message) []byte {
	b, err := marshalOpts.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("store: encode %T: %v", m, err))
	}
	return b
}

func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("store: write failed: %v", err))
	}
}

// stamp copies a timestamp so stored objects never share one.
func stamp(t *timestamppb.Timestamp) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return &timestamppb.Timestamp{Seconds: t.GetSeconds(), Nanos: t.GetNanos()}
}
