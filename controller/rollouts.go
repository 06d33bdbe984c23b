package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout"
	"github.com/ebbflow/ebbflow/rollout/profile"
	"github.com/ebbflow/ebbflow/store"
)

type rolloutService struct{ *Server }

func (s *rolloutService) CreateRollout(ctx context.Context, req *connect.Request[ebbflowv1.CreateRolloutRequest]) (*connect.Response[ebbflowv1.CreateRolloutResponse], error) {
	m := req.Msg
	spec, err := checkRolloutSpec(m.GetSpec())
	if err != nil {
		return nil, err
	}
	r, err := s.createRollout(ctx, m.GetId(), actorOf(ctx), spec, m.GetAllowEmpty())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ebbflowv1.CreateRolloutResponse{Rollout: r}), nil
}

// steer runs a manual control on rollout id as the caller.
func steer[Res any](
	ctx context.Context, s *rolloutService, id, reason string,
	fn func(r *ebbflowv1.Rollout, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error),
	wrap func(*ebbflowv1.Rollout) *Res,
) (*connect.Response[Res], error) {
	actor := actorOf(ctx)
	r, err := s.mutateRollout(ctx, id, actor, func(r *ebbflowv1.Rollout, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return fn(r, actor, now)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(wrap(r)), nil
}

func (s *rolloutService) PauseRollout(ctx context.Context, req *connect.Request[ebbflowv1.PauseRolloutRequest]) (*connect.Response[ebbflowv1.PauseRolloutResponse], error) {
	m := req.Msg
	return steer(ctx, s, m.GetId(), m.GetReason(), func(r *ebbflowv1.Rollout, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return rollout.Pause(r, actor, m.GetReason(), now)
	}, func(r *ebbflowv1.Rollout) *ebbflowv1.PauseRolloutResponse {
		return &ebbflowv1.PauseRolloutResponse{Rollout: r}
	})
}

func (s *rolloutService) ResumeRollout(ctx context.Context, req *connect.Request[ebbflowv1.ResumeRolloutRequest]) (*connect.Response[ebbflowv1.ResumeRolloutResponse], error) {
	m := req.Msg
	return steer(ctx, s, m.GetId(), "", func(r *ebbflowv1.Rollout, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return rollout.Resume(r, actor, now)
	}, func(r *ebbflowv1.Rollout) *ebbflowv1.ResumeRolloutResponse {
		return &ebbflowv1.ResumeRolloutResponse{Rollout: r}
	})
}

func (s *rolloutService) ApproveRollout(ctx context.Context, req *connect.Request[ebbflowv1.ApproveRolloutRequest]) (*connect.Response[ebbflowv1.ApproveRolloutResponse], error) {
	m := req.Msg
	return steer(ctx, s, m.GetId(), "", func(r *ebbflowv1.Rollout, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return rollout.Approve(r, m.GetWave(), m.GetCluster(), actor, now)
	}, func(r *ebbflowv1.Rollout) *ebbflowv1.ApproveRolloutResponse {
		return &ebbflowv1.ApproveRolloutResponse{Rollout: r}
	})
}

func (s *rolloutService) SkipCluster(ctx context.Context, req *connect.Request[ebbflowv1.SkipClusterRequest]) (*connect.Response[ebbflowv1.SkipClusterResponse], error) {
	m := req.Msg
	return steer(ctx, s, m.GetId(), m.GetReason(), func(r *ebbflowv1.Rollout, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return rollout.Skip(r, m.GetCluster(), m.GetReason(), actor, now)
	}, func(r *ebbflowv1.Rollout) *ebbflowv1.SkipClusterResponse {
		return &ebbflowv1.SkipClusterResponse{Rollout: r}
	})
}

func (s *rolloutService) AbortRollout(ctx context.Context, req *connect.Request[ebbflowv1.AbortRolloutRequest]) (*connect.Response[ebbflowv1.AbortRolloutResponse], error) {
	m := req.Msg
	return steer(ctx, s, m.GetId(), m.GetReason(), func(r *ebbflowv1.Rollout, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return rollout.Abort(r, m.GetReason(), actor, now)
	}, func(r *ebbflowv1.Rollout) *ebbflowv1.AbortRolloutResponse {
		return &ebbflowv1.AbortRolloutResponse{Rollout: r}
	})
}

func (s *rolloutService) RollbackRollout(ctx context.Context, req *connect.Request[ebbflowv1.RollbackRolloutRequest]) (*connect.Response[ebbflowv1.RollbackRolloutResponse], error) {
	m := req.Msg
	var t rollout.RollbackTarget
	switch x := m.GetTarget().(type) {
	case *ebbflowv1.RollbackRolloutRequest_Cluster:
		t.Cluster, t.Wave = x.Cluster, -1
	case *ebbflowv1.RollbackRolloutRequest_Wave:
		t.Wave = x.Wave
	case *ebbflowv1.RollbackRolloutRequest_All:
		t.All, t.Wave = x.All, -1
	}
	return steer(ctx, s, m.GetId(), m.GetReason(), func(r *ebbflowv1.Rollout, actor string, now time.Time) (*ebbflowv1.Rollout, []*ebbflowv1.RolloutEvent, error) {
		return rollout.Rollback(r, t, m.GetReason(), actor, now)
	}, func(r *ebbflowv1.Rollout) *ebbflowv1.RollbackRolloutResponse {
		return &ebbflowv1.RollbackRolloutResponse{Rollout: r}
	})
}

func (s *rolloutService) GetRollout(ctx context.Context, req *connect.Request[ebbflowv1.GetRolloutRequest]) (*connect.Response[ebbflowv1.GetRolloutResponse], error) {
	m := req.Msg
	return view(ctx, s.Server, m.GetRead(), func(tx *store.Tx) (*ebbflowv1.GetRolloutResponse, error) {
		read := tx.Rollout
		if m.GetOmitMeasurements() {
			read = tx.RolloutWithoutMeasurements
		}
		r, err := read(m.GetId())
		if err != nil {
			return nil, err
		}
		return &ebbflowv1.GetRolloutResponse{Rollout: r}, nil
	})
}

func (s *rolloutService) ListRollouts(ctx context.Context, req *connect.Request[ebbflowv1.ListRolloutsRequest]) (*connect.Response[ebbflowv1.ListRolloutsResponse], error) {
	m := req.Msg
	var v issues
	size := v.pageSize("page_size", m.GetPageSize())
	after := v.pageToken("page_token", m.GetPageToken())
	return view(ctx, s.Server, m.GetRead(), func(tx *store.Tx) (*ebbflowv1.ListRolloutsResponse, error) {
		rs, err := tx.Rollouts(after, size+1, m.GetOmitMeasurements())
		if err != nil {
			return nil, err
		}
		page, next := trimPage(rs, size, (*ebbflowv1.Rollout).GetId)
		return &ebbflowv1.ListRolloutsResponse{Rollouts: page, NextPageToken: next}, nil
	})
}

func (s *rolloutService) GetRolloutHistory(ctx context.Context, req *connect.Request[ebbflowv1.GetRolloutHistoryRequest]) (*connect.Response[ebbflowv1.GetRolloutHistoryResponse], error) {
	m := req.Msg
	return view(ctx, s.Server, m.GetRead(), func(tx *store.Tx) (*ebbflowv1.GetRolloutHistoryResponse, error) {
		if !tx.HasRollout(m.GetId()) {
			return nil, fmt.Errorf("rollout %q: %w", m.GetId(), store.ErrNotFound)
		}
		evs, err := tx.RolloutEvents(m.GetId())
		if err != nil {
			return nil, err
		}
		return &ebbflowv1.GetRolloutHistoryResponse{Events: evs}, nil
	})
}

// WatchRollout streams the rollout from this node's replica: now, then after every change,
// until it reaches a terminal state or the caller leaves. The request narrows the stream (one
// cluster, no measurements) and may ask for changes only; see rolloutView.
func (s *rolloutService) WatchRollout(ctx context.Context, req *connect.Request[ebbflowv1.WatchRolloutRequest], stream *connect.ServerStream[ebbflowv1.WatchRolloutResponse]) error {
	id := req.Msg.GetId()
	sub := s.store.Subscribe()
	defer sub.Close()
	s.readYourWrites(ctx)
	view := &rolloutView{req: req.Msg}
	for {
		r, err := s.watchRead(ctx, id, req.Msg.GetOmitMeasurements())
		if err != nil {
			return toConnectError(err)
		}
		msg, err := view.next(r)
		if err != nil {
			return err
		}
		if msg != nil {
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		if rollout.Terminal(r.GetState()) {
			return nil
		}
		if err := waitFor(ctx, sub, func(ch store.Change) bool { return ch.Resync || (ch.Kind == store.KindRollout && ch.Key == id) }); err != nil {
			return err
		}
		// Coalesce: a rollout of thousands of clusters changes with every batch of reports, and
		// each read assembles all of its records; one read per interval carries them all.
		t := time.NewTimer(watchRolloutInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		drain(sub)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// watchRead reads rollout id for a watch: from the node's index (no decoding, no
// measurements) when measurements are not wanted and the rollout is active, from its state
// database otherwise. Either way the caller gets its own rollout and waves to narrow; records
// from the index are shared and never modified (rolloutView replaces, never edits, them).
func (s *rolloutService) watchRead(ctx context.Context, id string, omitMeasurements bool) (*ebbflowv1.Rollout, error) {
	if omitMeasurements {
		if r, ok := s.store.ActiveRollout(id); ok {
			return r, nil
		}
	}
	var r *ebbflowv1.Rollout
	err := s.store.View(ctx, store.Stale, func(tx *store.Tx) error {
		var err error
		r, err = tx.Rollout(id)
		return err
	})
	return r, err
}

// watchRolloutInterval is the least time between two reads of a watched rollout.
const watchRolloutInterval = 100 * time.Millisecond

// drain discards the changes already queued on sub (the next read covers them).
func drain(sub *store.Subscription) {
	for {
		select {
		case _, ok := <-sub.C:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// waitFor blocks until a change matching want arrives.
func waitFor(ctx context.Context, sub *store.Subscription, want func(store.Change) bool) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ch, ok := <-sub.C:
			if !ok {
				return connect.NewError(connect.CodeUnavailable, errors.New("controller is shutting down"))
			}
			if want(ch) {
				return nil
			}
		}
	}
}

// PlanRollout is a dry run: the waves the rollout would cut and each cluster's preflight.
func (s *rolloutService) PlanRollout(ctx context.Context, req *connect.Request[ebbflowv1.PlanRolloutRequest]) (*connect.Response[ebbflowv1.PlanRolloutResponse], error) {
	spec, err := checkRolloutSpec(req.Msg.GetSpec())
	if err != nil {
		return nil, err
	}
	return view(ctx, s.Server, nil, func(tx *store.Tx) (*ebbflowv1.PlanRolloutResponse, error) {
		p, err := tx.Profile(spec.GetProfile(), spec.GetProfileRevision())
		if err != nil {
			return nil, err
		}
		clusters, err := tx.Clusters("", 0)
		if err != nil {
			return nil, err
		}
		plan, err := rollout.Plan(spec, p, clusters)
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
		return planResponse(plan), nil
	})
}

// checkRolloutSpec validates a rollout spec where it enters, once.
func checkRolloutSpec(spec *ebbflowv1.RolloutSpec) (rollout.Spec, error) {
	out, err := rollout.CheckSpec(spec)
	if ve := (*profile.ValidationError)(nil); errors.As(err, &ve) {
		return out, invalid(ve.Issues)
	}
	return out, err
}

// planResponse is the API's form of a plan.
func planResponse(p *rollout.RolloutPlan) *ebbflowv1.PlanRolloutResponse {
	out := &ebbflowv1.PlanRolloutResponse{ProfileRevision: p.ProfileRevision, Skipped: p.Skipped, Warnings: p.Warnings}
	for _, w := range p.Waves {
		out.Waves = append(out.Waves, &ebbflowv1.WavePlan{Index: int32(w.Index), Name: w.Name, Clusters: w.Clusters})
	}
	return out
}
