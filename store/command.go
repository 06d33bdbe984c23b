package store

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"maps"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
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

// Profiles.

func (w *writer) createProfile(c *storev1.CreateProfile, actor string, now *timestamppb.Timestamp) (*ebbflowv1.Profile, error) {
	if err := checkName("profile", c.GetName()); err != nil {
		return nil, err
	}
	if w.tx.Bucket(bucketProfiles).Get([]byte(c.GetName())) != nil {
		return nil, fmt.Errorf("profile %q: %w", c.GetName(), ErrAlreadyExists)
	}
	p := &ebbflowv1.Profile{
		Name: c.GetName(), Revision: 1, Spec: c.GetSpec(),
		CreateTime: stamp(now), UpdateTime: stamp(now), UpdatedBy: actor,
	}
	w.putProfile(p)
	return p, nil
}

func (w *writer) updateProfile(c *storev1.UpdateProfile, actor string, now *timestamppb.Timestamp) (*ebbflowv1.Profile, error) {
	cur, err := w.profile(c.GetName(), c.GetExpectedRevision())
	if err != nil {
		return nil, err
	}
	p := &ebbflowv1.Profile{
		Name: c.GetName(), Revision: cur.GetRevision() + 1, Spec: c.GetSpec(),
		CreateTime: cur.GetCreateTime(), UpdateTime: stamp(now), UpdatedBy: actor,
	}
	w.putProfile(p)
	return p, nil
}

func (w *writer) deleteProfile(c *storev1.DeleteProfile) error {
	name := c.GetName()
	if _, err := w.profile(name, c.GetExpectedRevision()); err != nil {
		return err
	}
	if id, err := w.activeRolloutPinning(name); err != nil {
		return err
	} else if id != "" {
		return fmt.Errorf("profile %q is pinned by active rollout %q: %w", name, id, ErrInUse)
	}
	// Collect first: deleting under a bbolt cursor skips keys.
	revs := w.tx.Bucket(bucketProfileRevisions)
	var keys [][]byte
	prefix := seqPrefix(name)
	cur := revs.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		must(revs.Delete(k))
	}
	must(w.tx.Bucket(bucketProfiles).Delete([]byte(name)))
	w.changed(KindProfile, name)
	return nil
}

// profile loads the latest revision of a profile and checks the expected revision (0: any).
func (w *writer) profile(name string, expected uint64) (*ebbflowv1.Profile, error) {
	if err := checkName("profile", name); err != nil {
		return nil, err
	}
	cur, ok := load(w.tx.Bucket(bucketProfiles), name, &ebbflowv1.Profile{})
	if !ok {
		return nil, fmt.Errorf("profile %q: %w", name, ErrNotFound)
	}
	if expected != 0 && expected != cur.GetRevision() {
		return nil, fmt.Errorf("profile %q: expected revision %d, have %d: %w", name, expected, cur.GetRevision(), ErrConflict)
	}
	return cur, nil
}

// putProfile stores p as the latest revision and as its immutable revision.
func (w *writer) putProfile(p *ebbflowv1.Profile) {
	v := encode(p)
	must(w.tx.Bucket(bucketProfiles).Put([]byte(p.GetName()), v))
	must(w.tx.Bucket(bucketProfileRevisions).Put(seqKey(p.GetName(), p.GetRevision()), v))
	w.changed(KindProfile, p.GetName())
}

// activeRolloutPinning returns the id of a non-terminal rollout of the profile, or "".
func (w *writer) activeRolloutPinning(profile string) (string, error) {
	c := w.tx.Bucket(bucketRollouts).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		r := &ebbflowv1.Rollout{}
		if err := proto.Unmarshal(v, r); err != nil {
			panic(fmt.Sprintf("store: decode rollout %q: %v", k, err))
		}
		if r.GetSpec().GetProfile() == profile && !terminal(r.GetState()) {
			return r.GetId(), nil
		}
	}
	return "", nil
}

// terminal reports whether a rollout in state s is over; the rule is the rollout engine's.
var terminal = rules.Terminal

// Clusters.

func (w *writer) registerCluster(c *storev1.RegisterCluster, now *timestamppb.Timestamp) (*ebbflowv1.Cluster, error) {
	if err := checkName("cluster", c.GetName()); err != nil {
		return nil, err
	}
	cur, ok := load(w.tx.Bucket(bucketClusters), c.GetName(), &ebbflowv1.Cluster{})
	if !ok {
		cl := &ebbflowv1.Cluster{
			Name: c.GetName(), Labels: maps.Clone(c.GetLabels()), Inventory: c.GetInventory(),
			AgentVersion: c.GetAgentVersion(), RegisterTime: stamp(now), Generation: 1,
		}
		w.putCluster(cl)
		return cl, nil
	}
	return w.updateCluster(cur, func(next *ebbflowv1.Cluster) {
		if c.GetMergeLabels() {
			if next.Labels == nil {
				next.Labels = map[string]string{}
			}
			maps.Copy(next.Labels, c.GetLabels())
		} else {
			next.Labels = maps.Clone(c.GetLabels())
		}
		if c.GetInventory() != nil {
			next.Inventory = c.GetInventory()
		}
		if c.GetAgentVersion() != "" {
			next.AgentVersion = c.GetAgentVersion()
		}
	}), nil
}

func (w *writer) setClusterLabels(c *storev1.SetClusterLabels) (*ebbflowv1.Cluster, error) {
	cur, err := w.cluster(c.GetName())
	if err != nil {
		return nil, err
	}
	if exp := c.GetExpectedGeneration(); exp != 0 && exp != cur.GetGeneration() {
		return nil, fmt.Errorf("cluster %q: expected generation %d, have %d: %w", c.GetName(), exp, cur.GetGeneration(), ErrConflict)
	}
	return w.updateCluster(cur, func(next *ebbflowv1.Cluster) {
		next.Labels = maps.Clone(c.GetLabels())
	}), nil
}

func (w *writer) setClusterCordon(c *storev1.SetClusterCordon) (*ebbflowv1.Cluster, error) {
	cur, err := w.cluster(c.GetName())
	if err != nil {
		return nil, err
	}
	return w.updateCluster(cur, func(next *ebbflowv1.Cluster) {
		next.Cordoned = c.GetCordoned()
		next.CordonReason = ""
		if c.GetCordoned() {
			next.CordonReason = c.GetReason()
		}
	}), nil
}

func (w *writer) updateInventory(c *storev1.UpdateInventory) (*ebbflowv1.Cluster, error) {
	cur, err := w.cluster(c.GetName())
	if err != nil {
		return nil, err
	}
	return w.updateCluster(cur, func(next *ebbflowv1.Cluster) {
		next.Inventory = c.GetInventory()
	}), nil
}

func (w *writer) deleteCluster(c *storev1.DeleteCluster) error {
	if _, err := w.cluster(c.GetName()); err != nil {
		return err
	}
	must(w.tx.Bucket(bucketClusters).Delete([]byte(c.GetName())))
	w.changed(KindCluster, c.GetName())
	w.wake(c.GetName())
	name := c.GetName()
	w.after = append(w.after, func(ix *index) { ix.deleteCluster(name) })
	return nil
}

func (w *writer) cluster(name string) (*ebbflowv1.Cluster, error) {
	if err := checkName("cluster", name); err != nil {
		return nil, err
	}
	cur, ok := load(w.tx.Bucket(bucketClusters), name, &ebbflowv1.Cluster{})
	if !ok {
		return nil, fmt.Errorf("cluster %q: %w", name, ErrNotFound)
	}
	return cur, nil
}

// updateCluster applies edit to a copy of cur and stores it with the next generation, unless
// edit changed nothing: then cur comes back as it is and nothing is written.
func (w *writer) updateCluster(cur *ebbflowv1.Cluster, edit func(next *ebbflowv1.Cluster)) *ebbflowv1.Cluster {
	next := proto.Clone(cur).(*ebbflowv1.Cluster)
	edit(next)
	if proto.Equal(next, cur) {
		return cur
	}
	next.Generation = cur.GetGeneration() + 1
	w.putCluster(next)
	return next
}

// putCluster stores c without the leader's in-memory liveness fields.
func (w *writer) putCluster(c *ebbflowv1.Cluster) {
	c.Liveness = ebbflowv1.Liveness_LIVENESS_UNSPECIFIED
	c.LastHeartbeatTime = nil
	must(w.tx.Bucket(bucketClusters).Put([]byte(c.GetName()), encode(c)))
	w.changed(KindCluster, c.GetName())
	w.wake(c.GetName())
	e := registryEntry{cordoned: c.GetCordoned(), reason: c.GetCordonReason()}
	name := c.GetName()
	w.after = append(w.after, func(ix *index) { ix.putCluster(name, e) })
}

// Rollouts.

func (w *writer) appendRolloutEvents(c *storev1.AppendRolloutEvents, now *timestamppb.Timestamp) error {
	id := c.GetRolloutId()
	if err := checkName("rollout", id); err != nil {
		return err
	}
	if w.tx.Bucket(bucketRollouts).Get([]byte(id)) == nil {
		return fmt.Errorf("rollout %q: %w", id, ErrNotFound)
	}
	w.appendEvents(id, c.GetEvents(), now)
	w.changed(KindRollout, id)
	return nil
}

// appendEvents appends events to the rollout's history; an event without a time gets the
// command's.
func (w *writer) appendEvents(id string, events []*ebbflowv1.RolloutEvent, now *timestamppb.Timestamp) {
	if len(events) == 0 {
		return
	}
	b := w.tx.Bucket(bucketRolloutEvents)
	seq := lastSeq(b, id)
	for _, e := range events {
		if e.GetTime() == nil {
			e = proto.Clone(e).(*ebbflowv1.RolloutEvent)
			e.Time = stamp(now)
		}
		seq++
		must(b.Put(seqKey(id, seq), encode(e)))
	}
}

// Controller nodes.

// putNodeMeta records a node's API address; an empty address forgets the node.
func (w *writer) putNodeMeta(c *storev1.PutNodeMeta) error {
	if err := checkName("node", c.GetNodeId()); err != nil {
		return err
	}
	b := w.tx.Bucket(bucketNodes)
	if c.GetApiAddress() == "" {
		must(b.Delete([]byte(c.GetNodeId())))
	} else {
		must(b.Put([]byte(c.GetNodeId()), []byte(c.GetApiAddress())))
	}
	w.changed(KindNode, c.GetNodeId())
	return nil
}

// Join tokens and cluster identities.

// joinTokenRetention is how long past its expiry a join token stays listed before a later
// CreateJoinToken prunes it.
const joinTokenRetention = 24 * time.Hour

func (w *writer) createJoinToken(c *storev1.CreateJoinToken, actor string, now *timestamppb.Timestamp) (*ebbflowv1.JoinToken, error) {
	t := c.GetToken()
	if t == nil {
		return nil, fmt.Errorf("create join token without a token: %w", ErrInvalid)
	}
	if err := checkKey("join token id", t.GetId()); err != nil {
		return nil, err
	}
	if err := checkName("cluster", t.GetCluster()); err != nil {
		return nil, err
	}
	if len(c.GetSecretHash()) != sha256.Size {
		return nil, fmt.Errorf("join token %q: secret hash is %d bytes, want %d: %w", t.GetId(), len(c.GetSecretHash()), sha256.Size, ErrInvalid)
	}
	if err := t.GetExpireTime().CheckValid(); err != nil {
		return nil, fmt.Errorf("join token %q: expire time: %v: %w", t.GetId(), err, ErrInvalid)
	}
	if !t.GetExpireTime().AsTime().After(now.AsTime()) {
		return nil, fmt.Errorf("join token %q: expire time %s is not after %s: %w", t.GetId(),
			t.GetExpireTime().AsTime().Format(time.RFC3339Nano), now.AsTime().Format(time.RFC3339Nano), ErrInvalid)
	}
	b := w.tx.Bucket(bucketJoinTokens)
	if b.Get([]byte(t.GetId())) != nil {
		return nil, fmt.Errorf("join token %q: %w", t.GetId(), ErrAlreadyExists)
	}
	w.pruneJoinTokens(b, now)
	tok := &ebbflowv1.JoinToken{
		Id: t.GetId(), Cluster: t.GetCluster(), Description: t.GetDescription(),
		CreateTime: stamp(now), ExpireTime: stamp(t.GetExpireTime()), CreatedBy: actor,
		State: ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_PENDING,
	}
	w.putJoinToken(&storev1.JoinTokenRecord{Token: tok, SecretHash: bytes.Clone(c.GetSecretHash())})
	return proto.Clone(tok).(*ebbflowv1.JoinToken), nil
}

// pruneJoinTokens deletes the tokens, whatever their state, that expired more than
// joinTokenRetention before now, at most maxPrunePerCommand of them (the rest go with the
// next creations). It depends only on the stored tokens and the command's time.
func (w *writer) pruneJoinTokens(b *bbolt.Bucket, now *timestamppb.Timestamp) {
	cutoff := now.AsTime().Add(-joinTokenRetention)
	// Collect first: deleting under a bbolt cursor skips keys.
	var keys [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(keys) < maxPrunePerCommand; k, v = c.Next() {
		rec := &storev1.JoinTokenRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			panic(fmt.Sprintf("store: decode join token %q: %v", k, err))
		}
		if rec.GetToken().GetExpireTime().AsTime().Before(cutoff) {
			keys = append(keys, bytes.Clone(k))
		}
	}
	for _, k := range keys {
		must(b.Delete(k))
		w.changed(KindJoinToken, string(k))
	}
}

// consumeJoinToken checks the secret before anything else, so a caller without it learns
// nothing about the token's state.
func (w *writer) consumeJoinToken(c *storev1.ConsumeJoinToken, now *timestamppb.Timestamp) (*storev1.ClusterIdentity, error) {
	rec, err := w.joinToken(c.GetId())
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(rec.GetSecretHash(), c.GetSecretHash()) != 1 {
		return nil, fmt.Errorf("join token %q: %w", c.GetId(), ErrUnauthenticated)
	}
	tok := rec.GetToken()
	switch tok.GetState() {
	case ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_PENDING:
	case ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_USED:
		return nil, fmt.Errorf("join token %q was already used: %w", c.GetId(), ErrFailedPrecondition)
	case ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_REVOKED:
		return nil, fmt.Errorf("join token %q was revoked: %w", c.GetId(), ErrFailedPrecondition)
	default:
		return nil, fmt.Errorf("join token %q is %s, not pending: %w", c.GetId(), tok.GetState(), ErrFailedPrecondition)
	}
	if !tok.GetExpireTime().AsTime().After(now.AsTime()) {
		return nil, fmt.Errorf("join token %q expired at %s: %w", c.GetId(),
			tok.GetExpireTime().AsTime().Format(time.RFC3339Nano), ErrFailedPrecondition)
	}
	tok.State = ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_USED
	tok.UseTime = stamp(now)
	w.putJoinToken(rec)
	return w.nextEpoch(tok.GetCluster(), false, now), nil
}

func (w *writer) revokeJoinToken(c *storev1.RevokeJoinToken, now *timestamppb.Timestamp) (*ebbflowv1.JoinToken, error) {
	rec, err := w.joinToken(c.GetId())
	if err != nil {
		return nil, err
	}
	tok := rec.GetToken()
	switch tok.GetState() {
	case ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_USED:
		return nil, fmt.Errorf("join token %q was already used; revoke the cluster's identity instead: %w", c.GetId(), ErrFailedPrecondition)
	case ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_REVOKED:
		return tok, nil
	}
	tok.State = ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_REVOKED
	tok.UseTime = stamp(now)
	w.putJoinToken(rec)
	return proto.Clone(tok).(*ebbflowv1.JoinToken), nil
}

// revokeClusterIdentity starts a new epoch marked revoked: certificates of every earlier
// epoch stop being accepted, and none of the new one exist until a join token is consumed.
func (w *writer) revokeClusterIdentity(c *storev1.RevokeClusterIdentity, now *timestamppb.Timestamp) (*storev1.ClusterIdentity, error) {
	if err := checkName("cluster", c.GetCluster()); err != nil {
		return nil, err
	}
	return w.nextEpoch(c.GetCluster(), true, now), nil
}

// joinToken loads a stored join token record.
func (w *writer) joinToken(id string) (*storev1.JoinTokenRecord, error) {
	if err := checkKey("join token id", id); err != nil {
		return nil, err
	}
	rec, ok := load(w.tx.Bucket(bucketJoinTokens), id, &storev1.JoinTokenRecord{})
	if !ok {
		return nil, fmt.Errorf("join token %q: %w", id, ErrNotFound)
	}
	return rec, nil
}

func (w *writer) putJoinToken(rec *storev1.JoinTokenRecord) {
	id := rec.GetToken().GetId()
	must(w.tx.Bucket(bucketJoinTokens).Put([]byte(id), encode(rec)))
	w.changed(KindJoinToken, id)
}

// nextEpoch stores the cluster's identity with the next epoch (1 if it has none yet).
func (w *writer) nextEpoch(cluster string, revoked bool, now *timestamppb.Timestamp) *storev1.ClusterIdentity {
	b := w.tx.Bucket(bucketIdentities)
	cur, _ := load(b, cluster, &storev1.ClusterIdentity{})
	id := &storev1.ClusterIdentity{
		Cluster: cluster, Epoch: cur.GetEpoch() + 1, Revoked: revoked, UpdateTime: stamp(now),
	}
	must(b.Put([]byte(cluster), encode(id)))
	w.changed(KindIdentity, cluster)
	return proto.Clone(id).(*storev1.ClusterIdentity)
}

// Helpers.

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
