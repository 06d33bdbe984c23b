package store

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

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
		return nil, fmt.Errorf("join token %q: expire time: %w: %w", t.GetId(), err, ErrInvalid)
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
