package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// A rollout is stored in three parts, so that a decision about one cluster writes one small
// record whatever the size of the rollout:
//
//	rollouts             id -> header: the Rollout with its waves but without their clusters
//	rollout_clusters     id \x00 be32(wave) be32(position) -> RolloutCluster, its results
//	                     without measurements
//	rollout_measurements id \x00 be32(wave) be32(position) phase be16(result) be16(seq)
//	                     -> Measurement
//
// result says which of the record's results of that phase the measurement belongs to, from 0:
// always 0 but for the node batches of a node-by-node kpr phase, one result each (the two
// be16 were one be32 sequence before, so earlier measurements read as result 0). A result keeps
// at most MaxResultMeasurements measurements; later ones are dropped.
// Measurements are bounded when they arrive (rollout.StoredMeasurement) and compacted when their phase
// is judged: a judged phase other than the baseline keeps each measurement's summary and drops
// its raw samples and histogram (the baseline keeps them for the phases still to be judged).
// Tx.Rollout puts the parts back together, so readers see the API's Rollout.

// MaxRolloutClusters and MaxRolloutWaves bound one rollout; the FSM refuses larger ones.
const (
	MaxRolloutClusters = 20000
	MaxRolloutWaves    = 1000
)

// clusterKey is the key of the record at position index of wave in rollout id.
func clusterKey(id string, wave, index int32) []byte {
	k := make([]byte, 0, len(id)+9)
	k = append(k, id...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint32(k, uint32(wave))
	return binary.BigEndian.AppendUint32(k, uint32(index))
}

// MaxResultMeasurements bounds the measurements stored for one phase result.
const MaxResultMeasurements = 1<<16 - 1

// measurementPrefix is the prefix of the measurements of one phase of one cluster record.
func measurementPrefix(id string, wave, index int32, phase ebbflowv1.Phase) []byte {
	return append(clusterKey(id, wave, index), byte(phase))
}

// resultPrefix is the prefix of the measurements of one result (the result-th of its phase,
// from 0) of one cluster record.
func resultPrefix(id string, wave, index int32, phase ebbflowv1.Phase, result int) []byte {
	return binary.BigEndian.AppendUint16(measurementPrefix(id, wave, index, phase), uint16(result))
}

// resultKey names one result of a cluster record: its phase and which of that phase's results,
// from 0.
type resultKey struct {
	phase ebbflowv1.Phase
	n     int
}

// resultKeys lists the results of rec by key, each with whether it is judged.
func resultKeys(rec *ebbflowv1.RolloutCluster) map[resultKey]bool {
	out := map[resultKey]bool{}
	seen := map[ebbflowv1.Phase]int{}
	for _, res := range rec.GetResults() {
		k := resultKey{res.GetPhase(), seen[res.GetPhase()]}
		seen[res.GetPhase()]++
		out[k] = res.GetVerdict() != ebbflowv1.Verdict_VERDICT_UNSPECIFIED
	}
	return out
}

// MeasurementsByResult is a cluster record's stored measurements: by phase, then by which of
// that phase's results (from 0).
type MeasurementsByResult map[ebbflowv1.Phase][][]*ebbflowv1.Measurement

func (ms MeasurementsByResult) add(phase ebbflowv1.Phase, result int, m *ebbflowv1.Measurement) {
	for len(ms[phase]) <= result {
		ms[phase] = append(ms[phase], nil)
	}
	ms[phase][result] = append(ms[phase][result], m)
}

// AttachTo sets the measurements of each of rec's results to those stored for it.
func (ms MeasurementsByResult) AttachTo(rec *ebbflowv1.RolloutCluster) {
	seen := map[ebbflowv1.Phase]int{}
	for _, res := range rec.GetResults() {
		n := seen[res.GetPhase()]
		seen[res.GetPhase()]++
		res.Measurements = nil
		if byResult := ms[res.GetPhase()]; n < len(byResult) {
			res.Measurements = byResult[n]
		}
	}
}

// measurementAt decodes the position of a measurement key under the record prefix.
func measurementAt(id string, k []byte, prefix int) (ebbflowv1.Phase, int, error) {
	if len(k) != prefix+5 {
		return 0, 0, fmt.Errorf("rollout %q: malformed measurement key %q", id, k)
	}
	return ebbflowv1.Phase(k[prefix]), int(binary.BigEndian.Uint16(k[prefix+1:])), nil
}

// splitRollout returns r's header (a copy without the waves' clusters) and its records by wave.
// The records are r's own objects.
func splitRollout(r *ebbflowv1.Rollout) (*ebbflowv1.Rollout, [][]*ebbflowv1.RolloutCluster) {
	recs := make([][]*ebbflowv1.RolloutCluster, len(r.GetWaves()))
	saved := make([][]*ebbflowv1.RolloutCluster, len(r.GetWaves()))
	for i, w := range r.GetWaves() {
		recs[i], saved[i] = w.GetClusters(), w.Clusters
		w.Clusters = nil
	}
	h := proto.Clone(r).(*ebbflowv1.Rollout)
	for i, w := range r.GetWaves() {
		w.Clusters = saved[i]
	}
	return h, recs
}

// hasInlineClusters reports whether a stored header still holds its clusters (the layout of
// earlier versions, migrated by migrateRollouts).
func hasInlineClusters(h *ebbflowv1.Rollout) bool {
	return slices.ContainsFunc(h.GetWaves(), func(w *ebbflowv1.Wave) bool { return len(w.GetClusters()) > 0 })
}

// readRollout assembles a stored rollout, measurements included.
func readRollout(tx *bbolt.Tx, id string) (*ebbflowv1.Rollout, bool, error) {
	h, ok, err := get(tx.Bucket(bucketRollouts), []byte(id), &ebbflowv1.Rollout{})
	if err != nil || !ok {
		return nil, ok, err
	}
	return h, true, attachClusters(tx, h, true)
}

// attachClusters fills header h with its stored records and, when measurements is set, their
// measurements.
func attachClusters(tx *bbolt.Tx, h *ebbflowv1.Rollout, measurements bool) error {
	id := h.GetId()
	prefix := seqPrefix(id)
	type pos struct{ wave, index int32 }
	at := map[pos]*ebbflowv1.RolloutCluster{}
	c := tx.Bucket(bucketRolloutClusters).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) != len(prefix)+8 {
			return fmt.Errorf("rollout %q: malformed cluster key %q", id, k)
		}
		w, i := int32(binary.BigEndian.Uint32(k[len(prefix):])), int32(binary.BigEndian.Uint32(k[len(prefix)+4:]))
		if int(w) >= len(h.GetWaves()) {
			return fmt.Errorf("rollout %q: cluster record of wave %d, which it does not have", id, w)
		}
		rec := &ebbflowv1.RolloutCluster{}
		if err := proto.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("decode rollout %q cluster %d/%d: %w", id, w, i, err)
		}
		h.Waves[w].Clusters = append(h.Waves[w].Clusters, rec)
		at[pos{w, i}] = rec
	}
	if !measurements {
		return nil
	}
	ms := map[pos]MeasurementsByResult{}
	mc := tx.Bucket(bucketRolloutMeasurements).Cursor()
	for k, v := mc.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = mc.Next() {
		phase, result, err := measurementAt(id, k, len(prefix)+8)
		if err != nil {
			return err
		}
		p := pos{int32(binary.BigEndian.Uint32(k[len(prefix):])), int32(binary.BigEndian.Uint32(k[len(prefix)+4:]))}
		if at[p] == nil {
			continue
		}
		m := &ebbflowv1.Measurement{}
		if err := proto.Unmarshal(v, m); err != nil {
			return fmt.Errorf("decode rollout %q measurement: %w", id, err)
		}
		if ms[p] == nil {
			ms[p] = MeasurementsByResult{}
		}
		ms[p].add(phase, result, m)
	}
	for p, byResult := range ms {
		byResult.AttachTo(at[p])
	}
	return nil
}

// ClusterMeasurements returns the stored measurements of the record at (wave, index) of
// rollout id, by phase and result.
func (tx *Tx) ClusterMeasurements(id string, wave, index int32) (MeasurementsByResult, error) {
	out := MeasurementsByResult{}
	prefix := clusterKey(id, wave, index)
	c := tx.tx.Bucket(bucketRolloutMeasurements).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		phase, result, err := measurementAt(id, k, len(prefix))
		if err != nil {
			return nil, err
		}
		m := &ebbflowv1.Measurement{}
		if err := proto.Unmarshal(v, m); err != nil {
			return nil, fmt.Errorf("decode rollout %q measurement: %w", id, err)
		}
		out.add(phase, result, m)
	}
	return out, nil
}

// Writing.

// putRollout stores a whole rollout: the create of a new one, or (in log entries of earlier
// versions) every decision about it.
func (w *writer) putRollout(c *storev1.PutRollout, actor string, now *timestamppb.Timestamp) (*ebbflowv1.Rollout, error) {
	if c.GetRollout() == nil {
		return nil, fmt.Errorf("put rollout without a rollout: %w", ErrInvalid)
	}
	id := c.GetRollout().GetId()
	if err := checkName("rollout", id); err != nil {
		return nil, err
	}
	if err := checkRolloutSize(c.GetRollout()); err != nil {
		return nil, err
	}
	cur, ok := load(w.tx.Bucket(bucketRollouts), id, &ebbflowv1.Rollout{})
	next := proto.Clone(c.GetRollout()).(*ebbflowv1.Rollout)
	switch exp := c.GetExpectedGeneration(); {
	case exp == 0 && ok:
		return nil, fmt.Errorf("rollout %q: %w", id, ErrAlreadyExists)
	case exp == 0:
		next.Generation = 1
		next.CreateTime = stamp(now)
		if next.GetCreatedBy() == "" {
			next.CreatedBy = actor
		}
	case !ok:
		return nil, fmt.Errorf("rollout %q: %w", id, ErrNotFound)
	case exp != cur.GetGeneration():
		return nil, fmt.Errorf("rollout %q: expected generation %d, have %d: %w", id, exp, cur.GetGeneration(), ErrConflict)
	default:
		next.Generation = cur.GetGeneration() + 1
		next.CreateTime = cur.GetCreateTime()
		next.CreatedBy = cur.GetCreatedBy()
	}
	next.UpdateTime = stamp(now)
	if ok {
		w.deletePrefix(bucketRolloutClusters, seqPrefix(id))
		w.deletePrefix(bucketRolloutMeasurements, seqPrefix(id))
	}
	h, recs := splitRollout(next)
	must(w.tx.Bucket(bucketRollouts).Put([]byte(id), encode(h)))
	stored := make([][]*ebbflowv1.RolloutCluster, len(recs))
	for wi, ws := range recs {
		for i, rec := range ws {
			stored[wi] = append(stored[wi], w.putClusterRecord(id, int32(wi), int32(i), nil, rec, nil))
		}
	}
	w.appendEvents(id, c.GetEvents(), now)
	w.changed(KindRollout, id)
	w.after = append(w.after, func(ix *index) { ix.setRollout(h, stored) })
	return next, nil
}

// patchRollout applies a decision's changes to a stored rollout.
func (w *writer) patchRollout(c *storev1.PatchRollout, now *timestamppb.Timestamp) error {
	id := c.GetRolloutId()
	if err := checkName("rollout", id); err != nil {
		return err
	}
	cur, ok := load(w.tx.Bucket(bucketRollouts), id, &ebbflowv1.Rollout{})
	if !ok {
		return fmt.Errorf("rollout %q: %w", id, ErrNotFound)
	}
	if exp := c.GetExpectedGeneration(); exp != cur.GetGeneration() {
		return fmt.Errorf("rollout %q: expected generation %d, have %d: %w", id, exp, cur.GetGeneration(), ErrConflict)
	}
	if h := c.GetHeader(); h != nil {
		switch {
		case h.GetId() != id:
			return fmt.Errorf("rollout %q: patch header names rollout %q: %w", id, h.GetId(), ErrInvalid)
		case len(h.GetWaves()) != len(cur.GetWaves()):
			return fmt.Errorf("rollout %q: patch header has %d waves, the rollout %d: %w", id, len(h.GetWaves()), len(cur.GetWaves()), ErrInvalid)
		case hasInlineClusters(h):
			return fmt.Errorf("rollout %q: patch header carries cluster records: %w", id, ErrInvalid)
		}
	}
	olds := make([]*ebbflowv1.RolloutCluster, len(c.GetClusters()))
	for i, p := range c.GetClusters() {
		if p.GetCluster() == nil {
			return fmt.Errorf("rollout %q: cluster patch %d has no record: %w", id, i, ErrInvalid)
		}
		old, ok := loadKey(w.tx.Bucket(bucketRolloutClusters), clusterKey(id, p.GetWave(), p.GetIndex()), &ebbflowv1.RolloutCluster{})
		switch {
		case !ok:
			return fmt.Errorf("rollout %q has no cluster at wave %d position %d: %w", id, p.GetWave(), p.GetIndex(), ErrInvalid)
		case old.GetCluster() != p.GetCluster().GetCluster():
			return fmt.Errorf("rollout %q: the cluster at wave %d position %d is %q, not %q: %w", id, p.GetWave(), p.GetIndex(), old.GetCluster(), p.GetCluster().GetCluster(), ErrInvalid)
		}
		olds[i] = old
	}
	next := cur
	if h := c.GetHeader(); h != nil {
		next = proto.Clone(h).(*ebbflowv1.Rollout)
	}
	next.Generation = cur.GetGeneration() + 1
	next.CreateTime, next.CreatedBy, next.UpdateTime = cur.GetCreateTime(), cur.GetCreatedBy(), stamp(now)
	must(w.tx.Bucket(bucketRollouts).Put([]byte(id), encode(next)))
	if terminal(next.GetState()) != terminal(cur.GetState()) {
		w.wokenRollouts = append(w.wokenRollouts, id)
	}
	type update struct {
		wave, index int32
		rec         *ebbflowv1.RolloutCluster
	}
	updates := make([]update, len(c.GetClusters()))
	for i, p := range c.GetClusters() {
		rec := w.putClusterRecord(id, p.GetWave(), p.GetIndex(), olds[i], p.GetCluster(), p)
		updates[i] = update{p.GetWave(), p.GetIndex(), rec}
	}
	w.appendEvents(id, c.GetEvents(), now)
	w.changed(KindRollout, id)
	w.after = append(w.after, func(ix *index) {
		ix.patchRollout(id, next, func(set func(wave, index int32, rec *ebbflowv1.RolloutCluster)) {
			for _, u := range updates {
				set(u.wave, u.index, u.rec)
			}
		})
	})
	return nil
}

// putClusterRecord stores rec at its position, moving the measurements its results carry (and
// those add appends to one result) into the measurements bucket, dropping those of results it
// no longer has and compacting those of results judged since old. It returns the record as
// stored.
func (w *writer) putClusterRecord(id string, wave, index int32, old, rec *ebbflowv1.RolloutCluster, add *storev1.ClusterPatch) *ebbflowv1.RolloutCluster {
	rec = proto.Clone(rec).(*ebbflowv1.RolloutCluster)
	mb := w.tx.Bucket(bucketRolloutMeasurements)
	seen := map[ebbflowv1.Phase]int{}
	for _, res := range rec.GetResults() {
		n := seen[res.GetPhase()]
		seen[res.GetPhase()]++
		for _, m := range res.GetMeasurements() {
			w.appendMeasurement(mb, resultPrefix(id, wave, index, res.GetPhase(), n), m)
		}
		res.Measurements = nil
	}
	for _, m := range add.GetAddMeasurements() {
		w.appendMeasurement(mb, resultPrefix(id, wave, index, add.GetMeasurementsPhase(), int(add.GetMeasurementsResult())), m)
	}
	now, before := resultKeys(rec), resultKeys(old)
	for k := range before {
		if _, ok := now[k]; ok {
			continue
		}
		if seen[k.phase] == 0 { // the phase is gone: every measurement of it, whatever its key
			w.deletePrefix(bucketRolloutMeasurements, measurementPrefix(id, wave, index, k.phase))
		} else {
			w.deletePrefix(bucketRolloutMeasurements, resultPrefix(id, wave, index, k.phase, k.n))
		}
	}
	for k, done := range now {
		if done && k.phase != ebbflowv1.Phase_PHASE_BASELINE && (old == nil || !before[k]) {
			w.compactMeasurements(mb, resultPrefix(id, wave, index, k.phase, k.n))
		}
	}
	must(w.tx.Bucket(bucketRolloutClusters).Put(clusterKey(id, wave, index), encode(rec)))
	w.wake(rec.GetCluster())
	return rec
}

// appendMeasurement stores m after the measurements of one result (prefix is its
// resultPrefix), unless that result holds MaxResultMeasurements already, or m is a window it
// holds already: a measurement with a start time that is byte for byte one stored for the
// result is the same window sent again (an agent retries a report whose answer it lost), and
// judging it twice would count its samples twice.
func (w *writer) appendMeasurement(b *bbolt.Bucket, prefix []byte, m *ebbflowv1.Measurement) {
	if m == nil {
		return
	}
	enc := encode(m)
	if m.GetStartTime() != nil {
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) == len(prefix)+2 && bytes.Equal(v, enc) {
				return
			}
		}
	}
	var seq uint16
	c := b.Cursor()
	end := binary.BigEndian.AppendUint16(bytes.Clone(prefix), ^uint16(0))
	k, _ := c.Seek(end)
	if k == nil {
		k, _ = c.Last()
	} else if !bytes.Equal(k, end) {
		k, _ = c.Prev()
	}
	if k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+2 {
		seq = binary.BigEndian.Uint16(k[len(prefix):])
	}
	if seq >= MaxResultMeasurements {
		return
	}
	must(b.Put(binary.BigEndian.AppendUint16(prefix, seq+1), enc))
}

// compactMeasurements drops the raw samples and histograms of the measurements under prefix;
// their summaries stay.
func (w *writer) compactMeasurements(b *bbolt.Bucket, prefix []byte) {
	type kv struct{ k, v []byte }
	var todo []kv
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		m := &ebbflowv1.Measurement{}
		if err := proto.Unmarshal(v, m); err != nil {
			panic(fmt.Sprintf("store: decode measurement %q: %v", k, err))
		}
		if len(m.SamplesMs) == 0 && len(m.HdrHistogram) == 0 {
			continue
		}
		m.SamplesMs, m.HdrHistogram = nil, nil
		todo = append(todo, kv{bytes.Clone(k), encode(m)})
	}
	for _, e := range todo {
		must(b.Put(e.k, e.v))
	}
}

// deletePrefix deletes every key of bucket b that starts with prefix.
func (w *writer) deletePrefix(b []byte, prefix []byte) {
	bk := w.tx.Bucket(b)
	var keys [][]byte
	c := bk.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		must(bk.Delete(k))
	}
}

// checkRolloutSize refuses rollouts past MaxRolloutWaves or MaxRolloutClusters.
func checkRolloutSize(r *ebbflowv1.Rollout) error {
	if n := len(r.GetWaves()); n > MaxRolloutWaves {
		return fmt.Errorf("rollout %q has %d waves, more than the limit of %d: %w", r.GetId(), n, MaxRolloutWaves, ErrInvalid)
	}
	n := 0
	for _, wv := range r.GetWaves() {
		n += len(wv.GetClusters())
	}
	if n > MaxRolloutClusters {
		return fmt.Errorf("rollout %q has %d clusters, more than the limit of %d: %w", r.GetId(), n, MaxRolloutClusters, ErrInvalid)
	}
	return nil
}

// loadKey is load with a byte key.
func loadKey[M proto.Message](b *bbolt.Bucket, key []byte, m M) (M, bool) {
	v := b.Get(key)
	if v == nil {
		return m, false
	}
	if err := proto.Unmarshal(v, m); err != nil {
		panic(fmt.Sprintf("store: decode %q: %v", key, err))
	}
	return m, true
}

// migrateRollouts moves the clusters of rollouts stored whole (by earlier versions) into their
// own records. It depends only on the stored state, so every replica migrates alike.
func migrateRollouts(tx *bbolt.Tx) error {
	b := tx.Bucket(bucketRollouts)
	var whole []*ebbflowv1.Rollout
	err := b.ForEach(func(k, v []byte) error {
		r := &ebbflowv1.Rollout{}
		if err := proto.Unmarshal(v, r); err != nil {
			return fmt.Errorf("decode rollout %q: %w", k, err)
		}
		if hasInlineClusters(r) {
			whole = append(whole, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range whole {
		w := &writer{tx: tx}
		h, recs := splitRollout(r)
		if err := b.Put([]byte(r.GetId()), encode(h)); err != nil {
			return err
		}
		for wi, ws := range recs {
			for i, rec := range ws {
				w.putClusterRecord(r.GetId(), int32(wi), int32(i), nil, rec, nil)
			}
		}
	}
	return nil
}
