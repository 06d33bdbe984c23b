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
	need, known := accessOf(procedure)
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
		if cl := clusterOf(procedure, msg); cl != id.Name {
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
