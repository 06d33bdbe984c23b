package controller

import (
	"slices"
	"strings"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	c "github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// procedure is everything the interceptor chain knows of one RPC: who may call it, where it
// runs, how it is rate-limited, and (for a mutation) what its audit record names. Handlers
// hold none of this: they read, decide and apply.
type procedure struct {
	access access
	runs   placement
	limit  limitClass
	// cluster is the cluster an agent's request speaks for (agent procedures only): the
	// agent's certificate must name it, and its limiter is the cluster's.
	cluster func(msg any) string
	// resource names what a mutation changes, for its audit record; nil for every call that
	// is not audited (reads, streams, heartbeats, validations).
	resource func(msg any) string
}

// placement is where a call may run.
type placement int

const (
	// anyNode: served by the node that received it (streams, validations, status).
	anyNode placement = iota + 1
	// onLeader: a follower forwards the call to the leader (writes, and reads that must see
	// every acknowledged write, such as a plan).
	onLeader
	// atReadLevel: a read with ReadOptions; a linearizable one (the default) runs on the
	// leader, a stale one on the node that received it.
	atReadLevel
)

func (p placement) String() string {
	return [...]string{"", "any node", "leader", "leader, or any node when stale"}[p]
}

// limitClass is the rate limiter a call counts against.
type limitClass int

const (
	// limitActor: every unary call of a person or portal, per actor.
	limitActor limitClass = iota
	// limitCluster: agents' calls that write, per cluster.
	limitCluster
	// limitNone: heartbeats (a map update in the leader's memory; an agent may send them
	// back to back after a reconnect) and streams.
	limitNone
)

// procedures is the API: every RPC and what the interceptor chain does with it. A procedure
// missing here is refused to everyone but nodes (TestEveryProcedureIsInTheTable keeps it
// complete; the README's access table is tested against it).
var procedures = map[string]procedure{
	c.AccessServiceWhoAmIProcedure:                {access: accessAuthenticated, runs: anyNode},
	c.AccessServiceCreateJoinTokenProcedure:       {access: accessAdmin, runs: onLeader, resource: names(clusterRes, (*ebbflowv1.CreateJoinTokenRequest).GetCluster)},
	c.AccessServiceListJoinTokensProcedure:        {access: accessAdmin, runs: atReadLevel},
	c.AccessServiceRevokeJoinTokenProcedure:       {access: accessAdmin, runs: onLeader, resource: names(named("join-token"), (*ebbflowv1.RevokeJoinTokenRequest).GetId)},
	c.AccessServiceRevokeClusterIdentityProcedure: {access: accessAdmin, runs: onLeader, resource: names(clusterRes, (*ebbflowv1.RevokeClusterIdentityRequest).GetCluster)},

	c.AgentServiceRegisterAgentProcedure:     {access: accessAgent, runs: onLeader, limit: limitCluster, cluster: field((*ebbflowv1.RegisterAgentRequest).GetCluster), resource: names(clusterRes, (*ebbflowv1.RegisterAgentRequest).GetCluster)},
	c.AgentServiceWatchAssignmentProcedure:   {access: accessAgent, runs: anyNode, limit: limitNone, cluster: field((*ebbflowv1.WatchAssignmentRequest).GetCluster)},
	c.AgentServiceReportPhaseStatusProcedure: {access: accessAgent, runs: onLeader, limit: limitCluster, cluster: field(reportCluster[*ebbflowv1.ReportPhaseStatusRequest]), resource: names(clusterRes, reportCluster[*ebbflowv1.ReportPhaseStatusRequest])},
	c.AgentServiceReportMeasurementProcedure: {access: accessAgent, runs: onLeader, limit: limitCluster, cluster: field(reportCluster[*ebbflowv1.ReportMeasurementRequest]), resource: names(clusterRes, reportCluster[*ebbflowv1.ReportMeasurementRequest])},
	c.AgentServiceHeartbeatProcedure:         {access: accessAgent, runs: onLeader, limit: limitNone, cluster: field((*ebbflowv1.HeartbeatRequest).GetCluster)},
	// RenewCertificate names no cluster: the certificate it renews does.
	c.AgentServiceRenewCertificateProcedure: {access: accessAgent, runs: onLeader, resource: func(any) string { return "certificate" }},
	c.AgentServiceJoinClusterProcedure:      {access: accessPublic, runs: onLeader, resource: field(func(m *ebbflowv1.JoinClusterRequest) string { return joinTokenRes(m.GetToken()) })},

	c.AuditServiceListAuditRecordsProcedure: {access: accessViewer, runs: atReadLevel},

	c.ClusterServiceGetClusterProcedure:       {access: accessViewer, runs: atReadLevel},
	c.ClusterServiceListClustersProcedure:     {access: accessViewer, runs: atReadLevel},
	c.ClusterServiceRegisterClusterProcedure:  {access: accessAdmin, runs: onLeader, resource: names(clusterRes, (*ebbflowv1.RegisterClusterRequest).GetName)},
	c.ClusterServiceSetClusterLabelsProcedure: {access: accessAdmin, runs: onLeader, resource: names(clusterRes, (*ebbflowv1.SetClusterLabelsRequest).GetName)},
	c.ClusterServiceCordonClusterProcedure:    {access: accessAdmin, runs: onLeader, resource: names(clusterRes, (*ebbflowv1.CordonClusterRequest).GetName)},
	c.ClusterServiceUncordonClusterProcedure:  {access: accessAdmin, runs: onLeader, resource: names(clusterRes, (*ebbflowv1.UncordonClusterRequest).GetName)},
	c.ClusterServiceDeleteClusterProcedure:    {access: accessAdmin, runs: onLeader, resource: names(clusterRes, (*ebbflowv1.DeleteClusterRequest).GetName)},

	c.ControllerServiceGetControllerStatusProcedure: {access: accessViewer, runs: anyNode},
	c.ControllerServiceAddVoterProcedure:            {access: accessAdmin, runs: onLeader, resource: names(nodeRes, (*ebbflowv1.AddVoterRequest).GetNodeId)},
	c.ControllerServiceRemoveServerProcedure:        {access: accessAdmin, runs: onLeader, resource: names(nodeRes, (*ebbflowv1.RemoveServerRequest).GetNodeId)},
	// Not forwarded: the node sends to whichever node it believes leads, and again within a
	// second when that changes.
	c.ControllerServiceReportAgentStreamsProcedure: {access: accessNode, runs: anyNode, limit: limitNone},

	c.ProfileServiceGetProfileProcedure:           {access: accessViewer, runs: atReadLevel},
	c.ProfileServiceListProfilesProcedure:         {access: accessViewer, runs: atReadLevel},
	c.ProfileServiceListProfileRevisionsProcedure: {access: accessViewer, runs: atReadLevel},
	c.ProfileServiceValidateProfileProcedure:      {access: accessViewer, runs: anyNode},
	c.ProfileServiceCreateProfileProcedure:        {access: accessAdmin, runs: onLeader, resource: names(profileRes, (*ebbflowv1.CreateProfileRequest).GetName)},
	c.ProfileServiceUpdateProfileProcedure:        {access: accessAdmin, runs: onLeader, resource: names(profileRes, (*ebbflowv1.UpdateProfileRequest).GetName)},
	c.ProfileServiceDeleteProfileProcedure:        {access: accessAdmin, runs: onLeader, resource: names(profileRes, (*ebbflowv1.DeleteProfileRequest).GetName)},

	c.RolloutServiceGetRolloutProcedure:        {access: accessViewer, runs: atReadLevel},
	c.RolloutServiceListRolloutsProcedure:      {access: accessViewer, runs: atReadLevel},
	c.RolloutServiceWatchRolloutProcedure:      {access: accessViewer, runs: anyNode, limit: limitNone},
	c.RolloutServicePlanRolloutProcedure:       {access: accessViewer, runs: onLeader},
	c.RolloutServiceGetRolloutHistoryProcedure: {access: accessViewer, runs: atReadLevel},
	c.RolloutServiceCreateRolloutProcedure:     {access: accessOperator, runs: onLeader, resource: names(rolloutRes, (*ebbflowv1.CreateRolloutRequest).GetId)},
	c.RolloutServicePauseRolloutProcedure:      {access: accessOperator, runs: onLeader, resource: names(rolloutRes, (*ebbflowv1.PauseRolloutRequest).GetId)},
	c.RolloutServiceResumeRolloutProcedure:     {access: accessOperator, runs: onLeader, resource: names(rolloutRes, (*ebbflowv1.ResumeRolloutRequest).GetId)},
	c.RolloutServiceApproveRolloutProcedure:    {access: accessOperator, runs: onLeader, resource: names(rolloutRes, (*ebbflowv1.ApproveRolloutRequest).GetId)},
	c.RolloutServiceSkipClusterProcedure:       {access: accessOperator, runs: onLeader, resource: names(rolloutRes, (*ebbflowv1.SkipClusterRequest).GetId)},
	c.RolloutServiceAbortRolloutProcedure:      {access: accessOperator, runs: onLeader, resource: names(rolloutRes, (*ebbflowv1.AbortRolloutRequest).GetId)},
	c.RolloutServiceRollbackRolloutProcedure:   {access: accessOperator, runs: onLeader, resource: names(rolloutRes, (*ebbflowv1.RollbackRolloutRequest).GetId)},
}

// Resources outside the RPCs that need authorization: /metrics and server reflection.
const (
	metricsResource    = "GET /metrics"
	reflectionResource = "grpc.reflection"
)

// accessOf is what a procedure (or metricsResource, reflectionResource) requires; false for
// one the API does not have.
func accessOf(name string) (access, bool) {
	switch name {
	case metricsResource, reflectionResource:
		return accessViewer, true
	}
	p, ok := procedures[name]
	return p.access, ok
}

// field adapts a getter of one request type to any message (empty for another type).
func field[M any](get func(*M) string) func(msg any) string {
	return func(msg any) string {
		if m, ok := msg.(*M); ok && m != nil {
			return get(m)
		}
		return ""
	}
}

// names is the audit resource of a request: kind/name, the name read by get.
func names[M any](kind func(string) string, get func(*M) string) func(msg any) string {
	f := field(get)
	return func(msg any) string { return kind(f(msg)) }
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

// reportCluster is the cluster of an agent's report.
func reportCluster[M interface{ GetRef() *ebbflowv1.ReportRef }](m M) string {
	return m.GetRef().GetCluster()
}

// joinTokenRes names a join token by its public id, never its secret.
func joinTokenRes(token string) string {
	id, _, _ := strings.Cut(token, ".")
	return "join-token/" + id
}

// clusterOf is the cluster an agent's request speaks for, or "".
func clusterOf(procedureName string, msg any) string {
	if p, ok := procedures[procedureName]; ok && p.cluster != nil {
		return p.cluster(msg)
	}
	return ""
}

// ProcedureAccess is one row of the API's access table, for documentation and tests.
type ProcedureAccess struct {
	Procedure string // e.g. /ebbflow.v1.RolloutService/CreateRollout
	Access    string // e.g. operator
	Runs      string // any node, leader, or leader unless stale
	Audited   bool
}

// Procedures lists every RPC of the API with its required access, sorted by procedure.
func Procedures() []ProcedureAccess {
	out := make([]ProcedureAccess, 0, len(procedures))
	for name, p := range procedures {
		out = append(out, ProcedureAccess{Procedure: name, Access: p.access.String(), Runs: p.runs.String(), Audited: p.resource != nil})
	}
	slices.SortFunc(out, func(a, b ProcedureAccess) int {
		switch {
		case a.Procedure < b.Procedure:
			return -1
		case a.Procedure > b.Procedure:
			return 1
		}
		return 0
	})
	return out
}
