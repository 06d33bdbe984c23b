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
func (s *Server) runEngine(ctx context.Context) {
	sub := s.store.Subscribe()
	defer sub.Close()
	tick := time.NewTicker(s.cfg.EngineInterval)
	defer tick.Stop()
	for {
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
			// Coalesce a burst of changes into one step.
			for drained := false; !drained; {
				select {
				case <-sub.C:
				default:
					drained = true
				}
			}
		case <-tick.C:
		}
	}
}

// stepAll runs one engine step over every rollout that has not ended.
func (s *Server) stepAll(ctx context.Context) error {
	s.rolloutMu.Lock()
	defer s.rolloutMu.Unlock()
	var active []*ebbflowv1.Rollout
	clusters := map[string]*ebbflowv1.Cluster{}
	err := s.store.View(ctx, store.Linearizable, func(tx *store.Tx) error {
		rs, err := tx.Rollouts("", 0)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if !rollout.Terminal(r.GetState()) {
				active = append(active, r)
			}
		}
		if len(active) == 0 {
			return nil
		}
		cs, err := tx.Clusters("", 0)
		for _, c := range cs {
			clusters[c.GetName()] = c
		}
		return err
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range active {
		next, events, changed := rollout.Step(r, rollout.World{Now: s.now(), Clusters: clusters})
		if !changed {
			continue
		}
		if err := s.putRollout(ctx, "controller", r.GetGeneration(), next, events); err != nil {
			errs = append(errs, fmt.Errorf("rollout %s: %w", r.GetId(), err))
		}
	}
	return errors.Join(errs...)
}

// putRollout writes a rollout decision, conditional on the generation it was made from. A
// decision of the engine itself (actor "controller", ctx without an audit call) is not
// audited: it is a rollout event in the same command already (see audit.go).
func (s *Server) putRollout(ctx context.Context, actor string, gen uint64, r *ebbflowv1.Rollout, events []*ebbflowv1.RolloutEvent) error {
	compact(r)
	_, err := s.store.Apply(ctx, &storev1.Command{Actor: actor, Body: &storev1.Command_PutRollout{
		PutRollout: &storev1.PutRollout{Rollout: r, ExpectedGeneration: gen, Events: events},
	}})
	return err
}

// compact drops the raw samples of phases already judged: the verdict, deltas and summary stay,
// the baseline keeps its samples for the phases still to be judged.
func compact(r *ebbflowv1.Rollout) {
	for _, w := range r.GetWaves() {
		for _, c := range w.GetClusters() {
			for _, res := range c.GetResults() {
				if res.GetPhase() == ebbflowv1.Phase_PHASE_BASELINE || res.GetVerdict() == ebbflowv1.Verdict_VERDICT_UNSPECIFIED {
					continue
				}
				for _, m := range res.GetMeasurements() {
					m.SamplesMs, m.HdrHistogram = nil, nil
				}
			}
		}
	}
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
		var err error
		r, err = tx.Rollout(id)
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
	if err := s.putRollout(ctx, actor, r.GetGeneration(), next, events); err != nil {
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
func (s *Server) createRollout(ctx context.Context, id, actor string, spec *ebbflowv1.RolloutSpec) (*ebbflowv1.Rollout, error) {
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
		if clusters, err = tx.Clusters("", 0); err != nil {
			return err
		}
		rs, err := tx.Rollouts("", 0)
		for _, r := range rs {
			if rollout.Terminal(r.GetState()) {
				continue
			}
			for _, c := range rollout.HeldClusters(r) {
				held[c] = r.GetId()
			}
		}
		return err
	}); err != nil {
		return nil, err
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
	var busy []string
	for _, c := range rollout.HeldClusters(r) {
		if other, ok := held[c]; ok {
			busy = append(busy, fmt.Sprintf("cluster %s is held by active rollout %s", c, other))
		}
	}
	if len(busy) > 0 {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New(strings.Join(busy, "; ")))
	}
	if err := s.putRollout(ctx, actor, 0, r, events); err != nil {
		return nil, err
	}
	return r, nil
}

// ingest applies an agent report to the rollout that issued the assignment.
func (s *Server) ingest(ctx context.Context, rep rollout.Report) (bool, string, error) {
	if !s.store.IsLeader() {
		return false, "", store.ErrNotLeader
	}
	s.rolloutMu.Lock()
	defer s.rolloutMu.Unlock()
	var holder *ebbflowv1.Rollout
	if err := s.store.View(ctx, store.Linearizable, func(tx *store.Tx) error {
		rs, err := tx.Rollouts("", 0)
		for _, r := range rs {
			if rollout.Terminal(r.GetState()) {
				continue
			}
			for _, w := range r.GetWaves() {
				for _, c := range w.GetClusters() {
					if c.GetCluster() == rep.Ref.GetCluster() && c.GetAssignmentId() != "" {
						holder = r
					}
				}
			}
		}
		return err
	}); err != nil {
		return false, "", err
	}
	if holder == nil {
		return false, "no active assignment for this cluster", nil
	}
	next, events, ok, reason := rollout.Ingest(holder, rep, s.now())
	if !ok {
		return false, reason, nil
	}
	if err := s.putRollout(ctx, "agent:"+rep.Ref.GetCluster(), holder.GetGeneration(), next, events); err != nil {
		return false, "", err
	}
	return true, "", nil
}
