package rollout

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// A decision is copy-on-write. begin gives it a new Rollout and new Waves whose headers (every
// field but the waves and the clusters) are deep copies and whose Clusters slices are the
// input's own. A wave's slice is copied when the decision first owns one of its records, and a
// record is deep-cloned only when the decision first mutates it, through recorder.own: a
// decision on a rollout of N clusters costs pointer work over the waves it changes (none over
// the others) plus deep work on the records it changes, and the records it leaves alone stay
// shared with the input. A report changes one record, so ingesting it copies one wave's
// pointers, not the rollout's. The rule that keeps the input intact: never write to a wave's
// Clusters slice, or through a *RolloutCluster, that own did not hand out.

// Field names skipped by the header copies and comparisons.
const (
	fieldWaves    protoreflect.Name = "waves"
	fieldClusters protoreflect.Name = "clusters"
)

// recorder collects the events of one decision and, after begin, its copy-on-write state.
type recorder struct {
	now    time.Time
	actor  string
	events []*ebbflowv1.RolloutEvent

	// from maps each wave of the next rollout to the input's wave at the same position.
	from map[*ebbflowv1.Wave]*ebbflowv1.Wave
	// copied holds the waves whose Clusters slice is the decision's own copy.
	copied map[*ebbflowv1.Wave]bool
	// owned lists the records cloned by own, in order.
	owned []ownedRecord
}

// ownedRecord is one record cloned by own: the input's record and its clone at wv.Clusters[i].
type ownedRecord struct {
	wv       *ebbflowv1.Wave
	i        int
	old, cur *ebbflowv1.RolloutCluster
}

func (e *recorder) add(kind string, wave int32, cluster string, phase ebbflowv1.Phase, format string, args ...any) {
	e.events = append(e.events, &ebbflowv1.RolloutEvent{
		Time: timestamppb.New(e.now), Actor: e.actor, Kind: kind, Cluster: cluster, Wave: wave, Phase: phase,
		Message: fmt.Sprintf(format, args...),
	})
}

// begin returns the rollout a decision on r works on: new header and waves, shared records.
func (e *recorder) begin(r *ebbflowv1.Rollout) *ebbflowv1.Rollout {
	n := headerOf(r, fieldWaves)
	n.Waves = make([]*ebbflowv1.Wave, len(r.GetWaves()))
	e.from = make(map[*ebbflowv1.Wave]*ebbflowv1.Wave, len(n.Waves))
	for i, w := range r.GetWaves() {
		nw := headerOf(w, fieldClusters)
		nw.Clusters = w.GetClusters() // shared until own copies it
		n.Waves[i] = nw
		e.from[nw] = w
	}
	return n
}

// own returns the record at wv.Clusters[i] for writing: a deep clone of the input's record on
// the first call for that position (replacing it in wv.Clusters), the same clone afterwards.
// wv must be a wave of the rollout begin returned.
func (e *recorder) own(wv *ebbflowv1.Wave, i int) *ebbflowv1.RolloutCluster {
	src, ok := e.from[wv]
	if !ok {
		panic("rollout: own called on a wave outside the decision")
	}
	c := wv.Clusters[i]
	if c != src.Clusters[i] {
		return c // already owned
	}
	if !e.copied[wv] {
		if e.copied == nil {
			e.copied = make(map[*ebbflowv1.Wave]bool)
		}
		wv.Clusters = slices.Clone(wv.Clusters)
		e.copied[wv] = true
	}
	cp := proto.Clone(c).(*ebbflowv1.RolloutCluster)
	wv.Clusters[i] = cp
	e.owned = append(e.owned, ownedRecord{wv: wv, i: i, old: c, cur: cp})
	return cp
}

// settle puts back the input's record wherever an owned clone ended up equal to it, so an
// unchanged record stays shared, and reports whether any record changed.
func (e *recorder) settle() bool {
	changed := false
	for _, o := range e.owned {
		if proto.Equal(o.old, o.cur) {
			o.wv.Clusters[o.i] = o.old
			continue
		}
		changed = true
	}
	e.owned = nil
	return changed
}

// headersEqual reports whether a and b agree on everything outside waves[].clusters: the
// rollout's own fields and every wave's. Rollouts with different wave counts differ.
func headersEqual(a, b *ebbflowv1.Rollout) bool {
	if !headerEqual(a, b, fieldWaves) || len(a.GetWaves()) != len(b.GetWaves()) {
		return false
	}
	for i, w := range a.GetWaves() {
		if !headerEqual(w, b.GetWaves()[i], fieldClusters) {
			return false
		}
	}
	return true
}

// headerOf returns a deep copy of m without its field skip. The copy goes through reflection
// so that a field added to the proto later is copied too.
func headerOf[M proto.Message](m M, skip protoreflect.Name) M {
	src := m.ProtoReflect()
	tmp := src.Type().New() // shallow: shares src's values until the Clone below
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Name() != skip {
			tmp.Set(fd, v)
		}
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		tmp.SetUnknown(u)
	}
	return proto.Clone(tmp.Interface()).(M)
}

// headerEqual is proto.Equal of a and b with their field skip cleared, without copying.
func headerEqual(a, b proto.Message, skip protoreflect.Name) bool {
	ma, mb := a.ProtoReflect(), b.ProtoReflect()
	if ma.IsValid() != mb.IsValid() {
		return false
	}
	fields := ma.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Name() == skip {
			continue
		}
		has := ma.Has(fd)
		if has != mb.Has(fd) || (has && !ma.Get(fd).Equal(mb.Get(fd))) {
			return false
		}
	}
	return bytes.Equal(ma.GetUnknown(), mb.GetUnknown())
}

// done ends a decision on r that produced n: it settles the owned records and stamps
// n.update_time when anything outside the records changed. update_time moves with the header
// only: a decision that changes records alone leaves the header equal to r's, so a store that
// keeps one record per cluster writes just those records (each carries its own times). It
// reports whether n differs from r.
func (e *recorder) done(r, n *ebbflowv1.Rollout) bool {
	records := e.settle()
	header := !headersEqual(r, n)
	if header {
		n.UpdateTime = timestamppb.New(e.now)
	}
	return header || records
}
