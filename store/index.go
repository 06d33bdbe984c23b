package store

import (
	"fmt"
	"slices"
	"sync"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// index is every node's in-memory view of what agents and the engine ask about on every call:
// the active rollouts (header and cluster records, without measurements) and the cluster
// registry's cordons. The FSM keeps it as entries apply (after their transaction commits, and
// before the applied index moves), and rebuilds it from fsm.db on open and on a snapshot
// restore. So a heartbeat, an assignment stream or a report is matched with map look-ups, not
// by decoding every rollout.
//
// Headers and records in the index are never modified once stored: an update replaces the
// pointer. Readers may keep what they got, and must not modify it.
type index struct {
	mu       sync.RWMutex
	rollouts map[string]*liveRollout // active (not terminal) rollouts by id
	// byCluster: cluster -> ids of the active rollouts that list it, sorted.
	byCluster map[string][]string
	registry  map[string]registryEntry
}

// liveRollout is one active rollout in the index.
type liveRollout struct {
	header *ebbflowv1.Rollout // waves without their clusters
	waves  [][]*ebbflowv1.RolloutCluster
	pos    map[string][2]int32 // cluster -> (wave, position)
}

// registryEntry is what the index keeps of a registered cluster: its name and cordon, as
// one read-only Cluster shared by every caller of Registered (the engine looks every cluster
// of a rollout up on each step; it must not cost an allocation each).
type registryEntry struct{ view *ebbflowv1.Cluster }

func newRegistryEntry(name string, cordoned bool, reason string) registryEntry {
	return registryEntry{view: &ebbflowv1.Cluster{Name: name, Cordoned: cordoned, CordonReason: reason}}
}

func newIndex() *index {
	return &index{rollouts: map[string]*liveRollout{}, byCluster: map[string][]string{}, registry: map[string]registryEntry{}}
}

// load builds an index from a state database.
func loadIndex(tx *bbolt.Tx) (*index, error) {
	ix := newIndex()
	err := tx.Bucket(bucketClusters).ForEach(func(k, v []byte) error {
		c := &ebbflowv1.Cluster{}
		if err := proto.Unmarshal(v, c); err != nil {
			return fmt.Errorf("decode cluster %q: %w", k, err)
		}
		ix.registry[string(k)] = newRegistryEntry(string(k), c.GetCordoned(), c.GetCordonReason())
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketRollouts).ForEach(func(k, v []byte) error {
		h := &ebbflowv1.Rollout{}
		if err := proto.Unmarshal(v, h); err != nil {
			return fmt.Errorf("decode rollout %q: %w", k, err)
		}
		if terminal(h.GetState()) {
			return nil
		}
		full := proto.Clone(h).(*ebbflowv1.Rollout)
		if err := attachClusters(tx, full, false); err != nil {
			return err
		}
		recs := make([][]*ebbflowv1.RolloutCluster, len(full.GetWaves()))
		for i, w := range full.GetWaves() {
			recs[i] = w.GetClusters()
		}
		ix.setRolloutLocked(h, recs)
		return nil
	})
	return ix, err
}

// setRollout stores a whole rollout (header without clusters, and its records).
func (ix *index) setRollout(h *ebbflowv1.Rollout, recs [][]*ebbflowv1.RolloutCluster) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.setRolloutLocked(h, recs)
}

func (ix *index) setRolloutLocked(h *ebbflowv1.Rollout, recs [][]*ebbflowv1.RolloutCluster) {
	id := h.GetId()
	ix.removeLocked(id)
	if terminal(h.GetState()) {
		return
	}
	lr := &liveRollout{header: h, waves: recs, pos: map[string][2]int32{}}
	for w, ws := range recs {
		for i, rec := range ws {
			lr.pos[rec.GetCluster()] = [2]int32{int32(w), int32(i)}
			ids := ix.byCluster[rec.GetCluster()]
			if j, found := slices.BinarySearch(ids, id); !found {
				ix.byCluster[rec.GetCluster()] = slices.Insert(ids, j, id)
			}
		}
	}
	ix.rollouts[id] = lr
}

// removeLocked drops a rollout from the index.
func (ix *index) removeLocked(id string) {
	lr := ix.rollouts[id]
	if lr == nil {
		return
	}
	for name := range lr.pos {
		ids := slices.DeleteFunc(ix.byCluster[name], func(s string) bool { return s == id })
		if len(ids) == 0 {
			delete(ix.byCluster, name)
		} else {
			ix.byCluster[name] = ids
		}
	}
	delete(ix.rollouts, id)
}

// patchRollout replaces a rollout's header and, through each, some of its records. A header
// that is terminal drops the rollout from the index.
func (ix *index) patchRollout(id string, h *ebbflowv1.Rollout, each func(set func(wave, index int32, rec *ebbflowv1.RolloutCluster))) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	lr := ix.rollouts[id]
	if lr == nil {
		return // terminal already
	}
	if terminal(h.GetState()) {
		ix.removeLocked(id)
		return
	}
	lr.header = h
	each(func(wave, index int32, rec *ebbflowv1.RolloutCluster) {
		if int(wave) < len(lr.waves) && int(index) < len(lr.waves[wave]) {
			lr.waves[wave][index] = rec
		}
	})
}

func (ix *index) putCluster(name string, e registryEntry) {
	ix.mu.Lock()
	ix.registry[name] = e
	ix.mu.Unlock()
}

func (ix *index) deleteCluster(name string) {
	ix.mu.Lock()
	delete(ix.registry, name)
	ix.mu.Unlock()
}

// clustersOf lists the clusters of an active rollout.
func (ix *index) clustersOf(id string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	lr := ix.rollouts[id]
	if lr == nil {
		return nil
	}
	out := make([]string, 0, len(lr.pos))
	for name := range lr.pos {
		out = append(out, name)
	}
	return out
}

// assemble builds a Rollout of a live rollout: a copy of the header whose waves hold the
// index's records (shared, not copied).
func (lr *liveRollout) assemble() *ebbflowv1.Rollout {
	r := proto.Clone(lr.header).(*ebbflowv1.Rollout)
	for i, w := range r.GetWaves() {
		if i < len(lr.waves) {
			w.Clusters = slices.Clone(lr.waves[i])
		}
	}
	return r
}

// Reading the index.

// ActiveRollouts returns every rollout that has not ended, as this node has applied it, in id
// order. The cluster records carry no measurements (Tx.ClusterMeasurements has them) and are
// shared with the index: callers must not modify them (rollout's decisions never do).
func (s *Store) ActiveRollouts() []*ebbflowv1.Rollout {
	ix := s.fsm.index()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]*ebbflowv1.Rollout, 0, len(ix.rollouts))
	for _, lr := range ix.rollouts {
		out = append(out, lr.assemble())
	}
	slices.SortFunc(out, func(a, b *ebbflowv1.Rollout) int {
		switch {
		case a.GetId() < b.GetId():
			return -1
		case a.GetId() > b.GetId():
			return 1
		}
		return 0
	})
	return out
}

// ActiveRollout returns one active rollout as ActiveRollouts does; false if it has ended or
// does not exist.
func (s *Store) ActiveRollout(id string) (*ebbflowv1.Rollout, bool) {
	ix := s.fsm.index()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	lr := ix.rollouts[id]
	if lr == nil {
		return nil, false
	}
	return lr.assemble(), true
}

// Holding is the record of a cluster in the active rollout that holds its current assignment.
type Holding struct {
	// Header is the rollout without its clusters; shared, read-only.
	Header *ebbflowv1.Rollout
	// Record is the cluster's record (without measurements); shared, read-only.
	Record      *ebbflowv1.RolloutCluster
	Wave, Index int32
}

// HolderOf returns the record that carries the cluster's assignment: the cluster's record in
// the first (by id) active rollout where it has an assignment id. False when none has.
func (s *Store) HolderOf(cluster string) (Holding, bool) {
	ix := s.fsm.index()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for _, id := range ix.byCluster[cluster] {
		lr := ix.rollouts[id]
		p := lr.pos[cluster]
		rec := lr.waves[p[0]][p[1]]
		if rec.GetAssignmentId() != "" {
			return Holding{Header: lr.header, Record: rec, Wave: p[0], Index: p[1]}, true
		}
	}
	return Holding{}, false
}

// Position is where a cluster stands in one active rollout.
type Position struct {
	Rollout string
	Wave    int32
	// Record is the cluster's record (without measurements); shared, read-only.
	Record *ebbflowv1.RolloutCluster
}

// PositionsOf returns the cluster's record in every active rollout that lists it, by rollout
// id: map look-ups, no decoding.
func (s *Store) PositionsOf(cluster string) []Position {
	ix := s.fsm.index()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ids := ix.byCluster[cluster]
	if len(ids) == 0 {
		return nil
	}
	out := make([]Position, 0, len(ids))
	for _, id := range ids {
		lr := ix.rollouts[id]
		p := lr.pos[cluster]
		out = append(out, Position{Rollout: id, Wave: p[0], Record: lr.waves[p[0]][p[1]]})
	}
	return out
}

// ActiveRolloutsOf returns the ids of the active rollouts that list the cluster, sorted.
func (s *Store) ActiveRolloutsOf(cluster string) []string {
	ix := s.fsm.index()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return slices.Clone(ix.byCluster[cluster])
}

// Registered reports whether the cluster is in the registry, and its cordon, as this node has
// applied it. The Cluster holds only the name and the cordon, and is shared: read it, never
// change it.
func (s *Store) Registered(name string) (c *ebbflowv1.Cluster, ok bool) {
	ix := s.fsm.index()
	ix.mu.RLock()
	e, ok := ix.registry[name]
	ix.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return e.view, true
}
