package controller

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout"
	"github.com/ebbflow/ebbflow/store"
)

type rolloutService struct{ *Server }

// The verbs that start or steer a rollout answer plainly that the engine is not there yet.

func (s *rolloutService) CreateRollout(_ context.Context, req *connect.Request[ebbflowv1.CreateRolloutRequest]) (*connect.Response[ebbflowv1.CreateRolloutResponse], error) {
	if issues := rollout.ValidateSpec(req.Msg.GetSpec()); len(issues) > 0 {
		return nil, invalid(issues)
	}
	return nil, errRolloutEngineUnavailable
}

func (s *rolloutService) PauseRollout(context.Context, *connect.Request[ebbflowv1.PauseRolloutRequest]) (*connect.Response[ebbflowv1.PauseRolloutResponse], error) {
	return nil, errRolloutEngineUnavailable
}

func (s *rolloutService) ResumeRollout(context.Context, *connect.Request[ebbflowv1.ResumeRolloutRequest]) (*connect.Response[ebbflowv1.ResumeRolloutResponse], error) {
	return nil, errRolloutEngineUnavailable
}

func (s *rolloutService) ApproveRollout(context.Context, *connect.Request[ebbflowv1.ApproveRolloutRequest]) (*connect.Response[ebbflowv1.ApproveRolloutResponse], error) {
	return nil, errRolloutEngineUnavailable
}

func (s *rolloutService) SkipCluster(context.Context, *connect.Request[ebbflowv1.SkipClusterRequest]) (*connect.Response[ebbflowv1.SkipClusterResponse], error) {
	return nil, errRolloutEngineUnavailable
}

func (s *rolloutService) AbortRollout(context.Context, *connect.Request[ebbflowv1.AbortRolloutRequest]) (*connect.Response[ebbflowv1.AbortRolloutResponse], error) {
	return nil, errRolloutEngineUnavailable
}

func (s *rolloutService) RollbackRollout(context.Context, *connect.Request[ebbflowv1.RollbackRolloutRequest]) (*connect.Response[ebbflowv1.RollbackRolloutResponse], error) {
	return nil, errRolloutEngineUnavailable
}

func (s *rolloutService) GetRollout(ctx context.Context, req *connect.Request[ebbflowv1.GetRolloutRequest]) (*connect.Response[ebbflowv1.GetRolloutResponse], error) {
	m := req.Msg
	var v issues
	v.name("id", m.GetId())
	if err := v.err(); err != nil {
		return nil, err
	}
	return readAt(ctx, s.Server, req, m.GetRead(), func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.GetRolloutRequest]) (*connect.Response[ebbflowv1.GetRolloutResponse], error) {
		return c.rollouts.GetRollout
	}, func(tx *store.Tx) (*ebbflowv1.GetRolloutResponse, error) {
		r, err := tx.Rollout(m.GetId())
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
	if err := v.err(); err != nil {
		return nil, err
	}
	return readAt(ctx, s.Server, req, m.GetRead(), func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ListRolloutsRequest]) (*connect.Response[ebbflowv1.ListRolloutsResponse], error) {
		return c.rollouts.ListRollouts
	}, func(tx *store.Tx) (*ebbflowv1.ListRolloutsResponse, error) {
		rs, err := tx.Rollouts(after, size+1)
		if err != nil {
			return nil, err
		}
		res := &ebbflowv1.ListRolloutsResponse{Rollouts: rs}
		if len(rs) > size {
			res.Rollouts = rs[:size]
			res.NextPageToken = nextPageToken(rs[size-1].GetId())
		}
		return res, nil
	})
}

func (s *rolloutService) GetRolloutHistory(ctx context.Context, req *connect.Request[ebbflowv1.GetRolloutHistoryRequest]) (*connect.Response[ebbflowv1.GetRolloutHistoryResponse], error) {
	m := req.Msg
	var v issues
	v.name("id", m.GetId())
	if err := v.err(); err != nil {
		return nil, err
	}
	return readAt(ctx, s.Server, req, m.GetRead(), func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.GetRolloutHistoryRequest]) (*connect.Response[ebbflowv1.GetRolloutHistoryResponse], error) {
		return c.rollouts.GetRolloutHistory
	}, func(tx *store.Tx) (*ebbflowv1.GetRolloutHistoryResponse, error) {
		if _, err := tx.Rollout(m.GetId()); err != nil {
			return nil, err
		}
		evs, err := tx.RolloutEvents(m.GetId())
		if err != nil {
			return nil, err
		}
		return &ebbflowv1.GetRolloutHistoryResponse{Events: evs}, nil
	})
}

// WatchRollout streams the rollout from this node's replica: now, then after every change,
// until it reaches a terminal state or the caller leaves.
func (s *rolloutService) WatchRollout(ctx context.Context, req *connect.Request[ebbflowv1.WatchRolloutRequest], stream *connect.ServerStream[ebbflowv1.WatchRolloutResponse]) error {
	id := req.Msg.GetId()
	var v issues
	v.name("id", id)
	if err := v.err(); err != nil {
		return err
	}
	sub := s.store.Subscribe()
	defer sub.Close()
	var last *ebbflowv1.Rollout
	for {
		var r *ebbflowv1.Rollout
		err := s.store.View(ctx, store.Stale, func(tx *store.Tx) error {
			var err error
			r, err = tx.Rollout(id)
			return err
		})
		if err != nil {
			return toConnectError(err)
		}
		if last == nil || !proto.Equal(last, r) {
			if err := stream.Send(&ebbflowv1.WatchRolloutResponse{Rollout: r}); err != nil {
				return err
			}
			last = r
		}
		if terminalRollout(r.GetState()) {
			return nil
		}
		if err := waitFor(ctx, sub, func(ch store.Change) bool { return ch.Resync || (ch.Kind == "rollout" && ch.Key == id) }); err != nil {
			return err
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
	spec := req.Msg.GetSpec()
	if issues := rollout.ValidateSpec(spec); len(issues) > 0 {
		return nil, invalid(issues)
	}
	return readAt(ctx, s.Server, req, nil, func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.PlanRolloutRequest]) (*connect.Response[ebbflowv1.PlanRolloutResponse], error) {
		return c.rollouts.PlanRollout
	}, func(tx *store.Tx) (*ebbflowv1.PlanRolloutResponse, error) {
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
		return plan, nil
	})
}
