package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout"
	"github.com/ebbflow/ebbflow/store"
)

// The rollout engine runs on the leader. The decisions are rollout's pure functions; this file
// feeds them the stored state and the time, and writes every decision through Raft with the
// rollout's generation as the expected one, so a decision made on stale state (or by a deposed
// leader) is refused rather than applied twice. A new leader starts from what was committed.

// runEngine steps every active rollout whenever the replicated state changes, and on a tick so
// soak times and deadlines pass without a report. It returns when ctx ends (leadership lost).
// Steps that changes trigger are at least engineSpacing apart: a step reads every cluster of
// every active rollout, and while a large wave reports, a change lands every few
// milliseconds. A report's own next assignment does not wait for a step (the report's batch
// decides it), so the spacing delays only wave-level decisions, by at most engineSpacing.
func (s *Server) runEngine(ctx context.Context) {
	sub := s.store.Subscribe()
	defer sub.Close()
	tick := time.NewTicker(s.cfg.EngineInterval)
	defer tick.Stop()
	spacing := min(engineSpacing, s.cfg.EngineInterval)
	for {
		stepped := time.Now()
		if err := s.stepAll(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("rollout engine step", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-sub.C:
			if !ok {
				return
			}
			if wait := spacing - time.Since(stepped); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			// Coalesce a burst of changes into one step.
			for drained := false; !drained; {
				select {
				case _, ok := <-sub.C:
					if !ok {
						return
					}
				default:
					drained = true
				}
			}
		case <-tick.C:
		}
	}
}

// engineSpacing is the least time between two engine steps that changes trigger.
const engineSpacing = 100 * time.Millisecond

// stepAll runs one engine step over every rollout that has not ended. The rollouts come from
// the store's index, which holds every committed decision once linearize returns; the step
// costs pointer work over the clusters, and writes only what changed.
func (s *Server) stepAll(ctx context.Context) error {
	s.rolloutMu.Lock()
	defer s.rolloutMu.Unlock()
	if err := s.linearize(ctx); err != nil {
		return err
	}
	active := s.store.ActiveRollouts()
	if len(active) == 0 {
		return nil
	}
	world := rollout.World{Now: s.now(), Lookup: s.store.Registered}
	var errs []error
	for _, r := range active {
		next, events, changed := rollout.Step(r, world)
		if !changed {
			continue
		}
		if _, err := s.store.Apply(ctx, decisionCommand(rollout.ControllerActor, r, next, events)); err != nil {
			errs = append(errs, fmt.Errorf("rollout %s: %w", r.GetId(), err))
		}
	}
	return errors.Join(errs...)
}

// linearize returns once this node, the leader, has applied every write committed before the
// call (a linearizable read of nothing): the index then holds every earlier decision.
func (s *Server) linearize(ctx context.Context) error {
	return s.store.View(ctx, store.Linearizable, func(*store.Tx) error { return nil })
}

// decisionCommand is the Raft command of a decision that turned old into next: a patch with
// only what changed (rollout.Diff), conditional on the generation the decision was made from,
// so a decision made on stale state (or by a deposed leader) is refused rather than applied
// twice. Measurements the decision added to a record travel once, as add_measurements; the
// records themselves carry none.
func decisionCommand(actor string, old, next *ebbflowv1.Rollout, events []*ebbflowv1.RolloutEvent) *storev1.Command {
	d := rollout.Diff(old, next)
	p := &storev1.PatchRollout{RolloutId: old.GetId(), ExpectedGeneration: old.GetGeneration(), Events: events}
	if d.HeaderChanged {
		p.Header = headerOf(next)
	}
	for _, ch := range d.Clusters {
		var prev *ebbflowv1.RolloutCluster
		if int(ch.Wave) < len(old.GetWaves()) && int(ch.Index) < len(old.GetWaves()[ch.Wave].GetClusters()) {
			prev = old.GetWaves()[ch.Wave].GetClusters()[ch.Index]
			if prev.GetCluster() != ch.Cluster.GetCluster() {
				prev = nil
			}
		}
		p.Clusters = append(p.Clusters, recordPatches(ch.Wave, ch.Index, prev, ch.Cluster)...)
	}
	return &storev1.Command{Actor: actor, Body: &storev1.Command_PatchRollout{PatchRollout: p}}
}

// recordPatches store one changed record: the record without its measurements, carrying the
// measurements it gained over prev (nil: none before) as add_measurements, one patch per phase
// that gained some.
func recordPatches(wave, index int32, prev, cur *ebbflowv1.RolloutCluster) []*storev1.ClusterPatch {
	rec := proto.Clone(cur).(*ebbflowv1.RolloutCluster)
	var added []*storev1.ClusterPatch
	seen := map[ebbflowv1.Phase]int{} // results of each phase so far: a node-by-node kpr phase has one per batch
	for _, res := range rec.GetResults() {
		n := seen[res.GetPhase()]
		seen[res.GetPhase()]++
		have := len(rollout.NthResult(prev, res.GetPhase(), n).GetMeasurements())
		if len(res.GetMeasurements()) > have {
			added = append(added, &storev1.ClusterPatch{MeasurementsPhase: res.GetPhase(), MeasurementsResult: int32(n), AddMeasurements: res.GetMeasurements()[have:]})
		}
		res.Measurements = nil
	}
	if len(added) == 0 {
		added = []*storev1.ClusterPatch{{}}
	}
	for _, cp := range added {
		cp.Wave, cp.Index, cp.Cluster = wave, index, rec
	}
	return added
}

// headerOf copies a rollout without its waves' clusters.
func headerOf(r *ebbflowv1.Rollout) *ebbflowv1.Rollout {
	saved := make([][]*ebbflowv1.RolloutCluster, len(r.GetWaves()))
	for i, w := range r.GetWaves() {
		saved[i], w.Clusters = w.Clusters, nil
	}
	h := proto.Clone(r).(*ebbflowv1.Rollout)
	for i, w := range r.GetWaves() {
		w.Clusters = saved[i]
	}
	return h
}

// mutateRollout applies a manual control to a rollout on the leader.
func (s *Server) mutateRollout(ctx context.Context, id, actor string, fn func(r *ebbflowv1.Rollout, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error)) (*ebbflowv1.Rollout, error) {
	if !s.store.IsLeader() {
		return nil, store.ErrNotLeader
	}
	s.rolloutMu.Lock()
	defer s.rolloutMu.Unlock()
	var r *ebbflowv1.Rollout
	if err := s.store.View(ctx, store.Linearizable, func(tx *store.Tx) error {
		if active, ok := s.store.ActiveRollout(id); ok {
			r = active
			return nil
		}
		var err error
		r, err = tx.Rollout(id) // ended (the control will say so) or missing
		return err
	}); err != nil {
		return nil, err
	}
	next, events, err := fn(r, s.now())
	if err != nil {
		if errors.Is(err, rollout.ErrInvalidAction) {
			return nil, connect.NewError(connect.CodeFailedPrecondition, err)
		}
		return nil, err
	}
	if next == r {
		return r, nil // a repeated control (rollout.manual): nothing to write
	}
	if _, err := s.store.Apply(ctx, decisionCommand(actor, r, next, events)); err != nil {
		return nil, err
	}
	var out *ebbflowv1.Rollout
	err = s.store.View(ctx, store.Stale, func(tx *store.Tx) error {
		var err error
		out, err = tx.Rollout(id)
		return err
	})
	return out, err
}

// createRollout snapshots the plan into a new rollout. Only one active rollout may hold a
// cluster: a second one is refused, naming the rollout that holds it.
func (s *Server) createRollout(ctx context.Context, id, actor string, spec rollout.Spec, allowEmpty bool) (*ebbflowv1.Rollout, error) {
	if !s.store.IsLeader() {
		return nil, store.ErrNotLeader
	}
	s.rolloutMu.Lock()
	defer s.rolloutMu.Unlock()
	var prof *ebbflowv1.Profile
	var clusters []*ebbflowv1.Cluster
	held := map[string]string{}
	if err := s.store.View(ctx, store.Linearizable, func(tx *store.Tx) error {
		var err error
		if prof, err = tx.Profile(spec.GetProfile(), spec.GetProfileRevision()); err != nil {
			return err
		}
		clusters, err = tx.Clusters("", 0)
		return err
	}); err != nil {
		return nil, err
	}
	for _, r := range s.store.ActiveRollouts() {
		for _, c := range rollout.HeldClusters(r) {
			held[c] = r.GetId()
		}
	}
	if id == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		id = spec.GetProfile() + "-" + hex.EncodeToString(b[:])
		if len(id) > 63 {
			id = id[len(id)-63:]
		}
		setAuditResource(ctx, "rollout/"+id)
	}
	r, events, err := rollout.New(id, spec, prof, clusters, actor, s.now())
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if why := rollout.Empty(r); why != "" && !allowEmpty {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New(why+" (allow_empty creates it anyway)"))
	}
	var busy []string
	for _, c := range rollout.HeldClusters(r) {
		if other, ok := held[c]; ok {
			busy = append(busy, fmt.Sprintf("cluster %s is held by active rollout %s", c, other))
		}
	}
	if len(busy) > 0 {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New(strings.Join(busy, "; ")))
	}
	// The engine's first step goes in the same write: the first wave's agents are told when
	// the rollout commits, not one more Raft round of every record later.
	if next, more, changed := rollout.Step(r, rollout.World{Now: s.now(), Lookup: s.store.Registered}); changed {
		r, events = next, append(events, more...)
	}
	if _, err := s.store.Apply(ctx, &storev1.Command{Actor: actor, Body: &storev1.Command_PutRollout{
		PutRollout: &storev1.PutRollout{Rollout: r, Events: events},
	}}); err != nil {
		return nil, err
	}
	return r, nil
}
