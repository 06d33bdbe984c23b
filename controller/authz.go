package controller

import (
	"fmt"
	"strings"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	c "github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// access is what a procedure requires of its caller.
type access int

const (
	// accessPublic needs no credentials (JoinCluster: its join token authenticates it).
	accessPublic access = iota + 1
	// accessAuthenticated is any identity this group accepts.
	accessAuthenticated
	// accessAgent is a cluster's agent, acting for its own cluster only.
	accessAgent
	accessViewer
	accessOperator
	accessAdmin
	// accessNode is another controller node of this group.
	accessNode
)

func (a access) String() string {
	return [...]string{"", "public", "any authenticated caller", "a cluster's agent", "viewer", "operator", "admin", "a controller node"}[a]
}

// Resources outside the RPCs that need authorization: /metrics and server reflection.
const (
	metricsResource    = "GET /metrics"
	reflectionResource = "grpc.reflection"
)

// procedureAccess is the required access of every procedure of the API. A procedure missing
// here is refused to everyone but nodes (TestEveryProcedureHasAnAccess keeps it complete).
var procedureAccess = map[string]access{
	metricsResource:    accessViewer,
	reflectionResource: accessViewer,

	c.AccessServiceWhoAmIProcedure:                accessAuthenticated,
	c.AccessServiceCreateJoinTokenProcedure:       accessAdmin,
	c.AccessServiceListJoinTokensProcedure:        accessAdmin,
	c.AccessServiceRevokeJoinTokenProcedure:       accessAdmin,
	c.AccessServiceRevokeClusterIdentityProcedure: accessAdmin,

	c.AgentServiceRegisterAgentProcedure:      accessAgent,
	c.AgentServiceWatchAssignmentProcedure:    accessAgent,
	c.AgentServiceReportPhaseStatusProcedure:  accessAgent,
	c.AgentServiceReportMeasurementProcedure:  accessAgent,
	c.AgentServiceHeartbeatProcedure:          accessAgent,
	c.AgentServiceRenewCertificateProcedure:   accessAgent,
	c.AgentServiceJoinClusterProcedure:        accessPublic,
	c.AuditServiceListAuditRecordsProcedure:   accessViewer,
	c.ClusterServiceGetClusterProcedure:       accessViewer,
	c.ClusterServiceListClustersProcedure:     accessViewer,
	c.ClusterServiceRegisterClusterProcedure:  accessAdmin,
	c.ClusterServiceSetClusterLabelsProcedure: accessAdmin,
	c.ClusterServiceCordonClusterProcedure:    accessAdmin,
	c.ClusterServiceUncordonClusterProcedure:  accessAdmin,
	c.ClusterServiceDeleteClusterProcedure:    accessAdmin,

	c.ControllerServiceGetControllerStatusProcedure: accessViewer,
	c.ControllerServiceAddVoterProcedure:            accessAdmin,
	c.ControllerServiceRemoveServerProcedure:        accessAdmin,
	c.ControllerServiceReportAgentStreamsProcedure:  accessNode,

	c.ProfileServiceGetProfileProcedure:           accessViewer,
	c.ProfileServiceListProfilesProcedure:         accessViewer,
	c.ProfileServiceListProfileRevisionsProcedure: accessViewer,
	c.ProfileServiceValidateProfileProcedure:      accessViewer,
	c.ProfileServiceCreateProfileProcedure:        accessAdmin,
	c.ProfileServiceUpdateProfileProcedure:        accessAdmin,
	c.ProfileServiceDeleteProfileProcedure:        accessAdmin,

	c.RolloutServiceGetRolloutProcedure:        accessViewer,
	c.RolloutServiceListRolloutsProcedure:      accessViewer,
	c.RolloutServiceWatchRolloutProcedure:      accessViewer,
	c.RolloutServicePlanRolloutProcedure:       accessViewer,
	c.RolloutServiceGetRolloutHistoryProcedure: accessViewer,
	c.RolloutServiceCreateRolloutProcedure:     accessOperator,
	c.RolloutServicePauseRolloutProcedure:      accessOperator,
	c.RolloutServiceResumeRolloutProcedure:     accessOperator,
	c.RolloutServiceApproveRolloutProcedure:    accessOperator,
	c.RolloutServiceSkipClusterProcedure:       accessOperator,
	c.RolloutServiceAbortRolloutProcedure:      accessOperator,
	c.RolloutServiceRollbackRolloutProcedure:   accessOperator,
}

// roleAccess is the access each role grants.
var roleAccess = map[ebbflowv1.Role]access{
	ebbflowv1.Role_ROLE_VIEWER:   accessViewer,
	ebbflowv1.Role_ROLE_OPERATOR: accessOperator,
	ebbflowv1.Role_ROLE_ADMIN:    accessAdmin,
}

// authorize decides whether id may call procedure; msg is the request, for an agent's calls
// (nil when not received yet: the cluster is checked when it is). Errors are Unauthenticated
// for a caller without credentials and PermissionDenied for one whose identity is not enough.
func authorize(procedure string, id Identity, msg any) error {
	need, known := procedureAccess[procedure]
	if id.Unrestricted || id.Kind == ebbflowv1.IdentityKind_IDENTITY_KIND_NODE {
		return nil
	}
	if known && need == accessPublic {
		return nil
	}
	if id.Kind == ebbflowv1.IdentityKind_IDENTITY_KIND_UNSPECIFIED {
		return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%s needs credentials: a bearer token or a client certificate", short(procedure)))
	}
	if !known {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s is not open to callers", short(procedure)))
	}
	switch id.Kind {
	case ebbflowv1.IdentityKind_IDENTITY_KIND_AGENT:
		if need == accessAuthenticated {
			return nil
		}
		if need != accessAgent {
			return denied(procedure, id, need)
		}
		if msg == nil || procedure == c.AgentServiceRenewCertificateProcedure {
			return nil
		}
		if cl := clusterOf(msg); cl != id.Name {
			return connect.NewError(connect.CodePermissionDenied,
				fmt.Errorf("the agent of cluster %q may not act for cluster %q", id.Name, cl))
		}
		return nil
	case ebbflowv1.IdentityKind_IDENTITY_KIND_PERSON:
		if need == accessAuthenticated || roleAccess[id.Role] >= need && need >= accessViewer && need <= accessAdmin {
			return nil
		}
		return denied(procedure, id, need)
	}
	return denied(procedure, id, need)
}

func denied(procedure string, id Identity, need access) error {
	who := id.Kind.String()
	switch id.Kind {
	case ebbflowv1.IdentityKind_IDENTITY_KIND_PERSON:
		who = fmt.Sprintf("%q has role %s", id.Name, strings.ToLower(strings.TrimPrefix(id.Role.String(), "ROLE_")))
	case ebbflowv1.IdentityKind_IDENTITY_KIND_AGENT:
		who = fmt.Sprintf("the agent of cluster %q", id.Name)
	}
	return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s needs %s; %s", short(procedure), need, who))
}

func short(procedure string) string {
	return strings.TrimPrefix(procedure, "/ebbflow.v1.")
}

// clusterOf is the cluster an agent's request speaks for.
func clusterOf(msg any) string {
	switch m := msg.(type) {
	case *ebbflowv1.RegisterAgentRequest:
		return m.GetCluster()
	case *ebbflowv1.WatchAssignmentRequest:
		return m.GetCluster()
	case *ebbflowv1.ReportPhaseStatusRequest:
		return m.GetRef().GetCluster()
	case *ebbflowv1.ReportMeasurementRequest:
		return m.GetRef().GetCluster()
	case *ebbflowv1.HeartbeatRequest:
		return m.GetCluster()
	}
	return ""
}
