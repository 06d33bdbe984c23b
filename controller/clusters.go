package controller

import (
	"context"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/labels"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/store"
)

type clusterService struct{ *Server }

// withLiveState adds what is known of the cluster but not stored with it: its agent's
// liveness from the leader's memory, and where it stands in each active rollout, from this
// node's index.
func (s *Server) withLiveState(c *ebbflowv1.Cluster) *ebbflowv1.Cluster {
	st, last := s.live.state(c.GetName(), s.now())
	c.Liveness = st
	if !last.IsZero() {
		c.LastHeartbeatTime = timestamppb.New(last)
	}
	c.Rollouts = nil
	for _, p := range s.store.PositionsOf(c.GetName()) {
		c.Rollouts = append(c.Rollouts, &ebbflowv1.ClusterRolloutPosition{
			Rollout: p.Rollout, Wave: p.Wave, Phase: p.Record.GetPhase(), State: clusterStateName(p.Record.GetState()),
		})
	}
	return c
}

// clusterStateName is a ClusterRolloutState's name without its prefix, in lower case.
func clusterStateName(st ebbflowv1.ClusterRolloutState) string {
	return strings.ToLower(strings.TrimPrefix(st.String(), "CLUSTER_ROLLOUT_STATE_"))
}

// clusterWrite applies one cluster command on the leader.
func (s *clusterService) clusterWrite(ctx context.Context, actor string, cmd *storev1.Command) (*ebbflowv1.Cluster, error) {
	cmd.Actor = actor
	out, err := s.store.Apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.withLiveState(out.(*ebbflowv1.Cluster)), nil
}

func (s *clusterService) RegisterCluster(ctx context.Context, req *connect.Request[ebbflowv1.RegisterClusterRequest]) (*connect.Response[ebbflowv1.RegisterClusterResponse], error) {
	m := req.Msg
	c, err := s.clusterWrite(ctx, actorOf(ctx), &storev1.Command{Body: &storev1.Command_RegisterCluster{
		RegisterCluster: &storev1.RegisterCluster{Name: m.GetName(), Labels: m.GetLabels()},
	}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ebbflowv1.RegisterClusterResponse{Cluster: c}), nil
}

func (s *clusterService) SetClusterLabels(ctx context.Context, req *connect.Request[ebbflowv1.SetClusterLabelsRequest]) (*connect.Response[ebbflowv1.SetClusterLabelsResponse], error) {
	m := req.Msg
	c, err := s.clusterWrite(ctx, actorOf(ctx), &storev1.Command{Body: &storev1.Command_SetClusterLabels{
		SetClusterLabels: &storev1.SetClusterLabels{Name: m.GetName(), Labels: m.GetLabels(), ExpectedGeneration: m.GetExpectedGeneration()},
	}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ebbflowv1.SetClusterLabelsResponse{Cluster: c}), nil
}

func (s *clusterService) CordonCluster(ctx context.Context, req *connect.Request[ebbflowv1.CordonClusterRequest]) (*connect.Response[ebbflowv1.CordonClusterResponse], error) {
	m := req.Msg
	c, err := s.clusterWrite(ctx, actorOf(ctx), &storev1.Command{Body: &storev1.Command_SetClusterCordon{
		SetClusterCordon: &storev1.SetClusterCordon{Name: m.GetName(), Cordoned: true, Reason: m.GetReason()},
	}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ebbflowv1.CordonClusterResponse{Cluster: c}), nil
}

func (s *clusterService) UncordonCluster(ctx context.Context, req *connect.Request[ebbflowv1.UncordonClusterRequest]) (*connect.Response[ebbflowv1.UncordonClusterResponse], error) {
	m := req.Msg
	c, err := s.clusterWrite(ctx, actorOf(ctx), &storev1.Command{Body: &storev1.Command_SetClusterCordon{
		SetClusterCordon: &storev1.SetClusterCordon{Name: m.GetName(), Cordoned: false},
	}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ebbflowv1.UncordonClusterResponse{Cluster: c}), nil
}

func (s *clusterService) DeleteCluster(ctx context.Context, req *connect.Request[ebbflowv1.DeleteClusterRequest]) (*connect.Response[ebbflowv1.DeleteClusterResponse], error) {
	m := req.Msg
	_, err := s.store.Apply(ctx, &storev1.Command{Actor: actorOf(ctx), Body: &storev1.Command_DeleteCluster{
		DeleteCluster: &storev1.DeleteCluster{Name: m.GetName()},
	}})
	if err != nil {
		return nil, err
	}
	s.live.forget(m.GetName())
	return connect.NewResponse(&ebbflowv1.DeleteClusterResponse{}), nil
}

func (s *clusterService) GetCluster(ctx context.Context, req *connect.Request[ebbflowv1.GetClusterRequest]) (*connect.Response[ebbflowv1.GetClusterResponse], error) {
	m := req.Msg
	return view(ctx, s.Server, m.GetRead(), func(tx *store.Tx) (*ebbflowv1.GetClusterResponse, error) {
		c, err := tx.Cluster(m.GetName())
		if err != nil {
			return nil, err
		}
		return &ebbflowv1.GetClusterResponse{Cluster: s.withLiveState(c)}, nil
	})
}

func (s *clusterService) ListClusters(ctx context.Context, req *connect.Request[ebbflowv1.ListClustersRequest]) (*connect.Response[ebbflowv1.ListClustersResponse], error) {
	m := req.Msg
	var v issues
	size := v.pageSize("page_size", m.GetPageSize())
	after := v.pageToken("page_token", m.GetPageToken())
	sel := v.selector("selector", m.GetSelector())
	return view(ctx, s.Server, m.GetRead(), func(tx *store.Tx) (*ebbflowv1.ListClustersResponse, error) {
		res := &ebbflowv1.ListClustersResponse{}
		// Scan in chunks so a selective selector still fills a page.
		for {
			cs, err := tx.Clusters(after, size+1)
			if err != nil {
				return nil, err
			}
			for _, c := range cs {
				after = c.GetName()
				if !sel.Matches(labels.Set(c.GetLabels())) {
					continue
				}
				if len(res.Clusters) == size {
					res.NextPageToken = nextPageToken(res.Clusters[size-1].GetName())
					return res, nil
				}
				res.Clusters = append(res.Clusters, s.withLiveState(c))
			}
			if len(cs) <= size {
				return res, nil
			}
		}
	})
}

// selector parses a Kubernetes label selector.
func (v *issues) selector(field, s string) labels.Selector {
	if len(s) > 4096 {
		v.Add(field, "max-length", "at most 4096 bytes")
		return labels.Nothing()
	}
	sel, err := labels.Parse(s)
	if err != nil {
		v.Add(field, "label-selector", "invalid label selector %q: %s", s, strings.TrimSpace(err.Error()))
		return labels.Nothing()
	}
	return sel
}
