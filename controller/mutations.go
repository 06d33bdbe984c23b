package controller

import (
	"context"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// mutation is one mutating procedure: how to name its resource and how to forward it.
type mutation struct {
	resource func(msg any) string
	forward  func(ctx context.Context, lc *leaderClients, req connect.AnyRequest, h http.Header) (connect.AnyResponse, error)
}

func mut[Req, Res any](pick func(*leaderClients) func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), resource func(*Req) string) mutation {
	return mutation{
		resource: func(msg any) string {
			if m, ok := msg.(*Req); ok && m != nil {
				return resource(m)
			}
			return ""
		},
		forward: func(ctx context.Context, lc *leaderClients, req connect.AnyRequest, h http.Header) (connect.AnyResponse, error) {
			fwd := connect.NewRequest(req.Any().(*Req))
			for k, v := range h {
				fwd.Header()[k] = v
			}
			return pick(lc)(ctx, fwd)
		},
	}
}

func named(kind string) func(name string) string {
	return func(name string) string { return kind + "/" + name }
}

var (
	profileRes = named("profile")
	clusterRes = named("cluster")
	rolloutRes = named("rollout")
	nodeRes    = named("node")
)

// mutations lists every mutating procedure of the API. Reads, streams, heartbeats and
// validations are not in it.
var mutations = map[string]mutation{
	ebbflowv1connect.ProfileServiceCreateProfileProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.CreateProfileRequest]) (*connect.Response[ebbflowv1.CreateProfileResponse], error) {
		return c.profiles.CreateProfile
	}, func(m *ebbflowv1.CreateProfileRequest) string { return profileRes(m.GetName()) }),
	ebbflowv1connect.ProfileServiceUpdateProfileProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.UpdateProfileRequest]) (*connect.Response[ebbflowv1.UpdateProfileResponse], error) {
		return c.profiles.UpdateProfile
	}, func(m *ebbflowv1.UpdateProfileRequest) string { return profileRes(m.GetName()) }),
	ebbflowv1connect.ProfileServiceDeleteProfileProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.DeleteProfileRequest]) (*connect.Response[ebbflowv1.DeleteProfileResponse], error) {
		return c.profiles.DeleteProfile
	}, func(m *ebbflowv1.DeleteProfileRequest) string { return profileRes(m.GetName()) }),

	ebbflowv1connect.ClusterServiceRegisterClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RegisterClusterRequest]) (*connect.Response[ebbflowv1.RegisterClusterResponse], error) {
		return c.clusters.RegisterCluster
	}, func(m *ebbflowv1.RegisterClusterRequest) string { return clusterRes(m.GetName()) }),
	ebbflowv1connect.ClusterServiceSetClusterLabelsProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.SetClusterLabelsRequest]) (*connect.Response[ebbflowv1.SetClusterLabelsResponse], error) {
		return c.clusters.SetClusterLabels
	}, func(m *ebbflowv1.SetClusterLabelsRequest) string { return clusterRes(m.GetName()) }),
	ebbflowv1connect.ClusterServiceCordonClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.CordonClusterRequest]) (*connect.Response[ebbflowv1.CordonClusterResponse], error) {
		return c.clusters.CordonCluster
	}, func(m *ebbflowv1.CordonClusterRequest) string { return clusterRes(m.GetName()) }),
	ebbflowv1connect.ClusterServiceUncordonClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.UncordonClusterRequest]) (*connect.Response[ebbflowv1.UncordonClusterResponse], error) {
		return c.clusters.UncordonCluster
	}, func(m *ebbflowv1.UncordonClusterRequest) string { return clusterRes(m.GetName()) }),
	ebbflowv1connect.ClusterServiceDeleteClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.DeleteClusterRequest]) (*connect.Response[ebbflowv1.DeleteClusterResponse], error) {
		return c.clusters.DeleteCluster
	}, func(m *ebbflowv1.DeleteClusterRequest) string { return clusterRes(m.GetName()) }),

	ebbflowv1connect.RolloutServiceCreateRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.CreateRolloutRequest]) (*connect.Response[ebbflowv1.CreateRolloutResponse], error) {
		return c.rollouts.CreateRollout
	}, func(m *ebbflowv1.CreateRolloutRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServicePauseRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.PauseRolloutRequest]) (*connect.Response[ebbflowv1.PauseRolloutResponse], error) {
		return c.rollouts.PauseRollout
	}, func(m *ebbflowv1.PauseRolloutRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServiceResumeRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ResumeRolloutRequest]) (*connect.Response[ebbflowv1.ResumeRolloutResponse], error) {
		return c.rollouts.ResumeRollout
	}, func(m *ebbflowv1.ResumeRolloutRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServiceApproveRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ApproveRolloutRequest]) (*connect.Response[ebbflowv1.ApproveRolloutResponse], error) {
		return c.rollouts.ApproveRollout
	}, func(m *ebbflowv1.ApproveRolloutRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServiceSkipClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.SkipClusterRequest]) (*connect.Response[ebbflowv1.SkipClusterResponse], error) {
		return c.rollouts.SkipCluster
	}, func(m *ebbflowv1.SkipClusterRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServiceAbortRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.AbortRolloutRequest]) (*connect.Response[ebbflowv1.AbortRolloutResponse], error) {
		return c.rollouts.AbortRollout
	}, func(m *ebbflowv1.AbortRolloutRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServiceRollbackRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RollbackRolloutRequest]) (*connect.Response[ebbflowv1.RollbackRolloutResponse], error) {
		return c.rollouts.RollbackRollout
	}, func(m *ebbflowv1.RollbackRolloutRequest) string { return rolloutRes(m.GetId()) }),

	ebbflowv1connect.ControllerServiceAddVoterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.AddVoterRequest]) (*connect.Response[ebbflowv1.AddVoterResponse], error) {
		return c.controller.AddVoter
	}, func(m *ebbflowv1.AddVoterRequest) string { return nodeRes(m.GetNodeId()) }),
	ebbflowv1connect.ControllerServiceRemoveServerProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RemoveServerRequest]) (*connect.Response[ebbflowv1.RemoveServerResponse], error) {
		return c.controller.RemoveServer
	}, func(m *ebbflowv1.RemoveServerRequest) string { return nodeRes(m.GetNodeId()) }),

	ebbflowv1connect.AgentServiceRegisterAgentProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RegisterAgentRequest]) (*connect.Response[ebbflowv1.RegisterAgentResponse], error) {
		return c.agents.RegisterAgent
	}, func(m *ebbflowv1.RegisterAgentRequest) string { return clusterRes(m.GetCluster()) }),
	ebbflowv1connect.AgentServiceReportPhaseStatusProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ReportPhaseStatusRequest]) (*connect.Response[ebbflowv1.ReportPhaseStatusResponse], error) {
		return c.agents.ReportPhaseStatus
	}, func(m *ebbflowv1.ReportPhaseStatusRequest) string { return clusterRes(m.GetRef().GetCluster()) }),
	ebbflowv1connect.AgentServiceReportMeasurementProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ReportMeasurementRequest]) (*connect.Response[ebbflowv1.ReportMeasurementResponse], error) {
		return c.agents.ReportMeasurement
	}, func(m *ebbflowv1.ReportMeasurementRequest) string { return clusterRes(m.GetRef().GetCluster()) }),
	ebbflowv1connect.AgentServiceJoinClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.JoinClusterRequest]) (*connect.Response[ebbflowv1.JoinClusterResponse], error) {
		return c.agents.JoinCluster
	}, func(m *ebbflowv1.JoinClusterRequest) string { return joinTokenRes(m.GetToken()) }),
	ebbflowv1connect.AgentServiceRenewCertificateProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RenewCertificateRequest]) (*connect.Response[ebbflowv1.RenewCertificateResponse], error) {
		return c.agents.RenewCertificate
	}, func(*ebbflowv1.RenewCertificateRequest) string { return "certificate" }),

	ebbflowv1connect.AccessServiceCreateJoinTokenProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.CreateJoinTokenRequest]) (*connect.Response[ebbflowv1.CreateJoinTokenResponse], error) {
		return c.access.CreateJoinToken
	}, func(m *ebbflowv1.CreateJoinTokenRequest) string { return clusterRes(m.GetCluster()) }),
	ebbflowv1connect.AccessServiceRevokeJoinTokenProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RevokeJoinTokenRequest]) (*connect.Response[ebbflowv1.RevokeJoinTokenResponse], error) {
		return c.access.RevokeJoinToken
	}, func(m *ebbflowv1.RevokeJoinTokenRequest) string { return "join-token/" + m.GetId() }),
	ebbflowv1connect.AccessServiceRevokeClusterIdentityProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RevokeClusterIdentityRequest]) (*connect.Response[ebbflowv1.RevokeClusterIdentityResponse], error) {
		return c.access.RevokeClusterIdentity
	}, func(m *ebbflowv1.RevokeClusterIdentityRequest) string { return clusterRes(m.GetCluster()) }),
}

// joinTokenRes names a join token by its public id, never its secret.
func joinTokenRes(token string) string {
	id, _, _ := strings.Cut(token, ".")
	return "join-token/" + id
}
