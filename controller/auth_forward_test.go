package controller_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	c "github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// headers sends h with every call.
func headers(h http.Header) connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			for k, v := range h {
				req.Header()[k] = v
			}
			return next(ctx, req)
		}
	}))
}

// auditOf is the one audit record of procedure on resource on the leader, read as the admin.
func auditOf(t *testing.T, sec *controllertest.Security, leader *controllertest.Node, procedure, resource string) *ebbflowv1.AuditRecord {
	t.Helper()
	res, err := c.NewAuditServiceClient(sec.Client(nil), leader.URL, sec.Bearer("admin")).ListAuditRecords(context.Background(),
		connect.NewRequest(&ebbflowv1.ListAuditRecordsRequest{Prefix: resource}))
	if err != nil {
		t.Fatalf("ListAuditRecords of %s: %v", resource, err)
	}
	var out []*ebbflowv1.AuditRecord
	for _, r := range res.Msg.GetRecords() {
		if r.GetResource() == resource && r.GetProcedure() == procedure {
			out = append(out, r)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d audit records of %s on %s, want 1: %v", len(out), procedure, resource, res.Msg.GetRecords())
	}
	return out[0]
}

func wantAudit(t *testing.T, r *ebbflowv1.AuditRecord, actor, code, node string) {
	t.Helper()
	if r.GetActor() != actor || r.GetCode() != code || r.GetNodeId() != node {
		t.Errorf("audit record %v: want actor %q, code %s, received by %s", r, actor, code, node)
	}
}

const (
	createProfileProc = "ebbflow.v1.ProfileService/CreateProfile"
	registerAgentProc = "ebbflow.v1.AgentService/RegisterAgent"
)

// A follower forwards mutations to the leader with the identity it established: the leader
// authorizes that identity and audits the call under it, refusals included.
func TestForwardedCallsKeepTheCallersIdentity(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	nodes := controllertest.StartSecureCluster(t, 3, sec, nil)
	leader := controllertest.Leader(t, nodes)
	f := follower(t, nodes)
	hc := sec.Client(nil)
	ctx := context.Background()

	if err := adminCall(hc, f.URL, "by-admin", sec.Bearer("admin")); err != nil {
		t.Fatalf("admin's CreateProfile via the follower: %v", err)
	}
	wantAudit(t, auditOf(t, sec, leader, createProfileProc, "profile/by-admin"), "admin", "ok", f.ID)

	wantCode(t, "viewer's CreateProfile via the follower", adminCall(hc, f.URL, "by-viewer", sec.Bearer("viewer")), connect.CodePermissionDenied)
	wantAudit(t, auditOf(t, sec, leader, createProfileProc, "profile/by-viewer"), "viewer", "permission_denied", f.ID)

	agentCert := sec.Join(t, f.URL, "c1")
	// The follower checks an agent's certificate against its own replica, which learns of the
	// new identity epoch when it applies the join.
	controllertest.Eventually(t, 10*time.Second, "the follower to know c1's identity", func() bool {
		who, err := whoAmI(sec.Client(&agentCert), f.URL)
		return err == nil && who.GetKind() == ebbflowv1.IdentityKind_IDENTITY_KIND_AGENT && who.GetName() == "c1"
	})
	agent := c.NewAgentServiceClient(sec.Client(&agentCert), f.URL)
	if _, err := agent.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1"})); err != nil {
		t.Fatalf("c1's agent registering c1 via the follower: %v", err)
	}
	wantAudit(t, auditOf(t, sec, leader, registerAgentProc, "cluster/c1"), "agent:c1", "ok", f.ID)
	_, err := agent.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c2"}))
	wantCode(t, "c1's agent registering c2 via the follower", err, connect.CodePermissionDenied)
	wantAudit(t, auditOf(t, sec, leader, registerAgentProc, "cluster/c2"), "agent:c1", "permission_denied", f.ID)

	for _, name := range []string{"by-viewer"} {
		_, err := c.NewProfileServiceClient(hc, leader.URL, sec.Bearer("admin")).GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: name}))
		wantCode(t, "profile "+name, err, connect.CodeNotFound)
	}
}

// The forwarding headers are believed only from a node of the group: a caller that sets them
// itself, claiming to be the admin, is still the viewer, refused and audited as the viewer,
// whichever node it calls.
func TestForwardingHeadersFromCallersAreIgnored(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	nodes := controllertest.StartSecureCluster(t, 3, sec, nil)
	leader := controllertest.Leader(t, nodes)
	f := follower(t, nodes)
	hc := sec.Client(nil)
	claim := url.Values{
		"kind": {ebbflowv1.IdentityKind_IDENTITY_KIND_PERSON.String()}, "name": {"admin"},
		"role": {ebbflowv1.Role_ROLE_ADMIN.String()}, "method": {"token"}, "actor": {"admin"},
	}.Encode()

	for _, tc := range []struct {
		name    string
		node    *controllertest.Node
		header  http.Header
		profile string
	}{
		{"identity header to the follower", f, http.Header{"Ebbflow-Forwarded-Identity": {claim}}, "forged-f"},
		{"identity header to the leader", leader, http.Header{"Ebbflow-Forwarded-Identity": {claim}}, "forged-l"},
		{"identity and forwarded-by headers to the follower", f, http.Header{
			"Ebbflow-Forwarded-Identity": {claim}, "Ebbflow-Forwarded-By": {leader.ID},
		}, "forged-by-f"},
		{"identity and forwarded-by headers to the leader", leader, http.Header{
			"Ebbflow-Forwarded-Identity": {claim}, "Ebbflow-Forwarded-By": {f.ID},
		}, "forged-by-l"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []connect.ClientOption{sec.Bearer("viewer"), headers(tc.header)}
			who, err := whoAmI(hc, tc.node.URL, opts...)
			wantWhoAmI(t, "WhoAmI with forged headers", who, err, ebbflowv1.IdentityKind_IDENTITY_KIND_PERSON, "viewer", ebbflowv1.Role_ROLE_VIEWER, "token")
			wantCode(t, "CreateProfile with forged headers", adminCall(hc, tc.node.URL, tc.profile, opts...), connect.CodePermissionDenied)
			// The record names the viewer and the node the caller reached, not the one it named.
			wantAudit(t, auditOf(t, sec, leader, createProfileProc, "profile/"+tc.profile), "viewer", "permission_denied", tc.node.ID)
			_, err = c.NewProfileServiceClient(hc, leader.URL, sec.Bearer("admin")).GetProfile(context.Background(),
				connect.NewRequest(&ebbflowv1.GetProfileRequest{Name: tc.profile}))
			wantCode(t, "the forged profile", err, connect.CodeNotFound)
		})
	}

	// A caller's own forwarded-by header does not keep its write on the follower either.
	if err := adminCall(hc, f.URL, "by-admin-via-f", sec.Bearer("admin"), headers(http.Header{"Ebbflow-Forwarded-By": {leader.ID}})); err != nil {
		t.Fatalf("admin's CreateProfile via the follower with a forwarded-by header: %v", err)
	}
	wantAudit(t, auditOf(t, sec, leader, createProfileProc, "profile/by-admin-via-f"), "admin", "ok", f.ID)
}
