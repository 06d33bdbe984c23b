package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Layout of fsm.db. Every value is a deterministically marshalled proto message, except in
// bucketMeta and bucketNodes.
var (
	// bucketMeta holds keyApplied: the last Raft index applied, written in the same bbolt
	// transaction as the entry's effects.
	bucketMeta = []byte("meta")
	// bucketProfiles: name -> latest Profile.
	bucketProfiles = []byte("profiles")
	// bucketProfileRevisions: name \x00 bigendian(revision) -> Profile (immutable).
	bucketProfileRevisions = []byte("profile_revisions")
	// bucketClusters: name -> Cluster (without liveness fields).
	bucketClusters = []byte("clusters")
	// bucketRollouts: id -> the Rollout's header (its waves without their clusters).
	bucketRollouts = []byte("rollouts")
	// bucketRolloutClusters: id \x00 be32(wave) be32(position) -> RolloutCluster (rollouts.go).
	bucketRolloutClusters = []byte("rollout_clusters")
	// bucketRolloutMeasurements: id \x00 be32(wave) be32(position) phase be16(result) be16(seq) -> Measurement.
	bucketRolloutMeasurements = []byte("rollout_measurements")
	// bucketRolloutEvents: id \x00 bigendian(seq) -> RolloutEvent, seq from 1 in append order.
	bucketRolloutEvents = []byte("rollout_events")
	// bucketNodes: controller node id -> API address (plain bytes).
	bucketNodes = []byte("nodes")
	// bucketAudit: bigendian(sequence) -> AuditRecord, sequence from 1 in commit order; the
	// last sequence and the number of records are keyAuditSeq and keyAuditCount in bucketMeta.
	bucketAudit = []byte("audit")
	// bucketJoinTokens: token id -> storev1.JoinTokenRecord (the token and its secret's hash).
	bucketJoinTokens = []byte("join_tokens")
	// bucketIdentities: cluster name -> storev1.ClusterIdentity.
	bucketIdentities = []byte("identities")

	allBuckets = [][]byte{
		bucketMeta, bucketProfiles, bucketProfileRevisions, bucketClusters,
		bucketRollouts, bucketRolloutEvents, bucketNodes, bucketAudit,
		bucketJoinTokens, bucketIdentities, bucketRolloutClusters, bucketRolloutMeasurements,
	}

	keyApplied    = []byte("applied_index")
	keyAuditSeq   = []byte("audit_seq")
	keyAuditCount = []byte("audit_count")
)

// marshalOpts makes stored bytes identical on every replica.
var marshalOpts = proto.MarshalOptions{Deterministic: true}

// openStateDB opens (or creates) a state database and makes sure every bucket exists.
func openStateDB(path string) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout: time.Second,
		// A snapshot holds a read transaction while it streams; a write that has to grow the
		// memory map waits for it. Mapping generously up front makes that rare.
		InitialMmapSize: 64 << 20,
		FreelistType:    bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return migrateRollouts(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialise %s: %w", path, err)
	}
	return db, nil
}

// appliedIndex reads the last applied Raft index recorded in tx.
func appliedIndex(tx *bbolt.Tx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyApplied)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// seqKey is prefix \x00 bigendian(seq): the key of a profile revision or a rollout event.
// Names never contain \x00 (the FSM refuses them), so a prefix scan cannot leak into another
// name's keys.
func seqKey(prefix string, seq uint64) []byte {
	k := make([]byte, 0, len(prefix)+9)
	k = append(k, prefix...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// seqPrefix is the common prefix of every seqKey of prefix.
func seqPrefix(prefix string) []byte {
	return append([]byte(prefix), 0)
}

// seekLast positions c on the last key of prefix's seqKey range and returns it, or nil.
func seekLast(c *bbolt.Cursor, prefix string) (k, v []byte) {
	end := seqKey(prefix, ^uint64(0))
	k, v = c.Seek(end)
	switch {
	case k == nil:
		k, v = c.Last()
	case !bytes.Equal(k, end):
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, seqPrefix(prefix)) {
		return nil, nil
	}
	return k, v
}

// lastSeq returns the highest sequence number stored under prefix in b, or 0.
func lastSeq(b *bbolt.Bucket, prefix string) uint64 {
	k, _ := seekLast(b.Cursor(), prefix)
	if len(k) != len(prefix)+9 {
		return 0
	}
	return binary.BigEndian.Uint64(k[len(prefix)+1:])
}

// Tx is a read-only view of the replicated state. It is valid only inside the function given
// to View. Every object it returns is a fresh copy the caller may keep and modify.
type Tx struct {
	tx *bbolt.Tx
}

func get[M proto.Message](b *bbolt.Bucket, key []byte, m M) (M, bool, error) {
	v := b.Get(key)
	if v == nil {
		return m, false, nil
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return m, false, fmt.Errorf("decode %q: %w", key, err)
	}
	return m, true, nil
}

// list decodes the values of b with keys > after in ascending order, at most limit of them
// (limit <= 0: all).
func list[M proto.Message](b *bbolt.Bucket, after string, limit int, newM func() M) ([]M, error) {
	var out []M
	c := b.Cursor()
	k, v := c.First()
	if after != "" {
		k, v = c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, v = c.Next()
		}
	}
	for ; k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
		m := newM()
		if err := proto.Unmarshal(v, m); err != nil {
			return nil, fmt.Errorf("decode %q: %w", k, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Profile returns revision of the named profile; revision 0 means the latest.
func (tx *Tx) Profile(name string, revision uint64) (*ebbflowv1.Profile, error) {
	var (
		p   *ebbflowv1.Profile
		ok  bool
		err error
	)
	if revision == 0 {
		p, ok, err = get(tx.tx.Bucket(bucketProfiles), []byte(name), &ebbflowv1.Profile{})
	} else {
		p, ok, err = get(tx.tx.Bucket(bucketProfileRevisions), seqKey(name, revision), &ebbflowv1.Profile{})
	}
	switch {
	case err != nil:
		return nil, err
	case !ok && revision == 0:
		return nil, fmt.Errorf("profile %q: %w", name, ErrNotFound)
	case !ok:
		return nil, fmt.Errorf("profile %q revision %d: %w", name, revision, ErrNotFound)
	}
	return p, nil
}

// Profiles returns the latest revision of each profile whose name sorts after after, in
// ascending name order, at most limit of them (limit <= 0: all).
func (tx *Tx) Profiles(after string, limit int) ([]*ebbflowv1.Profile, error) {
	return list(tx.tx.Bucket(bucketProfiles), after, limit, func() *ebbflowv1.Profile { return &ebbflowv1.Profile{} })
}

// ProfileRevisions returns every stored revision of the named profile, newest first.
func (tx *Tx) ProfileRevisions(name string) ([]*ebbflowv1.Profile, error) {
	var out []*ebbflowv1.Profile
	prefix := seqPrefix(name)
	c := tx.tx.Bucket(bucketProfileRevisions).Cursor()
	for k, v := seekLast(c, name); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		p := &ebbflowv1.Profile{}
		if err := proto.Unmarshal(v, p); err != nil {
			return nil, fmt.Errorf("decode profile %q revision: %w", name, err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("profile %q: %w", name, ErrNotFound)
	}
	return out, nil
}

// Cluster returns the named cluster. Liveness fields are never stored and come back unset.
func (tx *Tx) Cluster(name string) (*ebbflowv1.Cluster, error) {
	c, ok, err := get(tx.tx.Bucket(bucketClusters), []byte(name), &ebbflowv1.Cluster{})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("cluster %q: %w", name, ErrNotFound)
	}
	return c, nil
}

// Clusters returns the clusters whose name sorts after after, ascending, at most limit
// (limit <= 0: all).
func (tx *Tx) Clusters(after string, limit int) ([]*ebbflowv1.Cluster, error) {
	return list(tx.tx.Bucket(bucketClusters), after, limit, func() *ebbflowv1.Cluster { return &ebbflowv1.Cluster{} })
}

// Rollout returns the rollout with the given id.
func (tx *Tx) Rollout(id string) (*ebbflowv1.Rollout, error) {
	r, ok, err := readRollout(tx.tx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("rollout %q: %w", id, ErrNotFound)
	}
	return r, nil
}

// Rollouts returns the rollouts whose id sorts after after, ascending, at most limit
// (limit <= 0: all), with their measurements unless omitMeasurements (which then are neither
// read nor decoded).
func (tx *Tx) Rollouts(after string, limit int, omitMeasurements bool) ([]*ebbflowv1.Rollout, error) {
	rs, err := list(tx.tx.Bucket(bucketRollouts), after, limit, func() *ebbflowv1.Rollout { return &ebbflowv1.Rollout{} })
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if err := attachClusters(tx.tx, r, !omitMeasurements); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// RolloutWithoutMeasurements returns the rollout with the given id, its records without their
// measurements (not read, not decoded).
func (tx *Tx) RolloutWithoutMeasurements(id string) (*ebbflowv1.Rollout, error) {
	h, ok, err := get(tx.tx.Bucket(bucketRollouts), []byte(id), &ebbflowv1.Rollout{})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("rollout %q: %w", id, ErrNotFound)
	}
	return h, attachClusters(tx.tx, h, false)
}

// HasRollout reports whether the rollout exists, without decoding it.
func (tx *Tx) HasRollout(id string) bool {
	return tx.tx.Bucket(bucketRollouts).Get([]byte(id)) != nil
}

// HasCluster reports whether the named cluster is registered, without decoding it.
func (tx *Tx) HasCluster(name string) bool {
	return tx.tx.Bucket(bucketClusters).Get([]byte(name)) != nil
}

// RolloutEvents returns the history of a rollout in append order (empty if it has none).
func (tx *Tx) RolloutEvents(id string) ([]*ebbflowv1.RolloutEvent, error) {
	var out []*ebbflowv1.RolloutEvent
	prefix := seqPrefix(id)
	c := tx.tx.Bucket(bucketRolloutEvents).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		e := &ebbflowv1.RolloutEvent{}
		if err := proto.Unmarshal(v, e); err != nil {
			return nil, fmt.Errorf("decode rollout %q event: %w", id, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// JoinToken returns the stored join token with its secret's hash.
func (tx *Tx) JoinToken(id string) (*storev1.JoinTokenRecord, error) {
	rec, ok, err := get(tx.tx.Bucket(bucketJoinTokens), []byte(id), &storev1.JoinTokenRecord{})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("join token %q: %w", id, ErrNotFound)
	}
	return rec, nil
}

// JoinTokens returns the stored join tokens, without their secrets' hashes, of the given
// cluster (empty: of every cluster), oldest first (by create time, then id). The state is the
// stored one: a pending token past its expire time is still pending here, and the caller
// decides with its own clock whether to show it as expired.
func (tx *Tx) JoinTokens(cluster string) ([]*ebbflowv1.JoinToken, error) {
	var out []*ebbflowv1.JoinToken
	err := tx.tx.Bucket(bucketJoinTokens).ForEach(func(k, v []byte) error {
		rec := &storev1.JoinTokenRecord{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("decode join token %q: %w", k, err)
		}
		if cluster == "" || rec.GetToken().GetCluster() == cluster {
			out = append(out, rec.GetToken())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *ebbflowv1.JoinToken) int {
		if c := a.GetCreateTime().AsTime().Compare(b.GetCreateTime().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.GetId(), b.GetId())
	})
	return out, nil
}

// ClusterIdentity returns the cluster's identity; false if no join token was ever consumed
// for it nor its identity revoked.
func (tx *Tx) ClusterIdentity(cluster string) (*storev1.ClusterIdentity, bool, error) {
	return get(tx.tx.Bucket(bucketIdentities), []byte(cluster), &storev1.ClusterIdentity{})
}

// NodeAPIAddress returns the API address a controller node recorded through Raft.
func (tx *Tx) NodeAPIAddress(nodeID string) (string, bool) {
	v := tx.tx.Bucket(bucketNodes).Get([]byte(nodeID))
	if v == nil {
		return "", false
	}
	return string(v), true
}

// AppliedIndex is the last Raft index whose effects this view contains.
func (tx *Tx) AppliedIndex() uint64 {
	return appliedIndex(tx.tx)
}
