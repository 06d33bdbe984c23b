package controller_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	"github.com/ebbflow/ebbflow/internal/pki"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	c "github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// The access every RPC requires, written out independently of the controller's own table.
var wantAccess = map[string]string{
	c.AccessServiceWhoAmIProcedure:                "any",
	c.AccessServiceCreateJoinTokenProcedure:       "admin",
	c.AccessServiceListJoinTokensProcedure:        "admin",
	c.AccessServiceRevokeJoinTokenProcedure:       "admin",
	c.AccessServiceRevokeClusterIdentityProcedure: "admin",

	c.AgentServiceRegisterAgentProcedure:     "agent",
	c.AgentServiceWatchAssignmentProcedure:   "agent",
	c.AgentServiceReportPhaseStatusProcedure: "agent",
	c.AgentServiceReportMeasurementProcedure: "agent",
	c.AgentServiceHeartbeatProcedure:         "agent",
	c.AgentServiceRenewCertificateProcedure:  "agent",
	c.AgentServiceJoinClusterProcedure:       "public",

	c.AuditServiceListAuditRecordsProcedure: "viewer",

	c.ClusterServiceGetClusterProcedure:       "viewer",
	c.ClusterServiceListClustersProcedure:     "viewer",
	c.ClusterServiceRegisterClusterProcedure:  "admin",
	c.ClusterServiceSetClusterLabelsProcedure: "admin",
	c.ClusterServiceCordonClusterProcedure:    "admin",
	c.ClusterServiceUncordonClusterProcedure:  "admin",
	c.ClusterServiceDeleteClusterProcedure:    "admin",

	c.ControllerServiceGetControllerStatusProcedure: "viewer",
	c.ControllerServiceAddVoterProcedure:            "admin",
	c.ControllerServiceRemoveServerProcedure:        "admin",
	c.ControllerServiceReportAgentStreamsProcedure:  "node",

	c.ProfileServiceGetProfileProcedure:           "viewer",
	c.ProfileServiceListProfilesProcedure:         "viewer",
	c.ProfileServiceListProfileRevisionsProcedure: "viewer",
	c.ProfileServiceValidateProfileProcedure:      "viewer",
	c.ProfileServiceCreateProfileProcedure:        "admin",
	c.ProfileServiceUpdateProfileProcedure:        "admin",
	c.ProfileServiceDeleteProfileProcedure:        "admin",

	c.RolloutServiceGetRolloutProcedure:        "viewer",
	c.RolloutServiceListRolloutsProcedure:      "viewer",
	c.RolloutServiceWatchRolloutProcedure:      "viewer",
	c.RolloutServicePlanRolloutProcedure:       "viewer",
	c.RolloutServiceGetRolloutHistoryProcedure: "viewer",
	c.RolloutServiceCreateRolloutProcedure:     "operator",
	c.RolloutServicePauseRolloutProcedure:      "operator",
	c.RolloutServiceResumeRolloutProcedure:     "operator",
	c.RolloutServiceApproveRolloutProcedure:    "operator",
	c.RolloutServiceSkipClusterProcedure:       "operator",
	c.RolloutServiceAbortRolloutProcedure:      "operator",
	c.RolloutServiceRollbackRolloutProcedure:   "operator",
}

var streaming = map[string]bool{
	c.AgentServiceWatchAssignmentProcedure: true,
	c.RolloutServiceWatchRolloutProcedure:  true,
}

// caller is one identity of the table.
type caller struct {
	name  string
	token string           // bearer token
	cert  *tls.Certificate // client certificate
}

// outcome is what caller should get from an RPC requiring need: "ok" (anything but
// Unauthenticated and PermissionDenied), "unauthenticated" or "permission_denied".
func outcome(who, need string) string {
	rank := map[string]int{"viewer": 1, "operator": 2, "admin": 3}
	switch {
	case need == "public":
		return "ok"
	case who == "anonymous":
		return "unauthenticated"
	case need == "any":
		return "ok"
	case need == "node":
		return "permission_denied"
	case who == "agent":
		if need == "agent" {
			return "ok"
		}
		return "permission_denied"
	case need == "agent":
		return "permission_denied"
	case rank[who] >= rank[need]:
		return "ok"
	}
	return "permission_denied"
}

// body is a request an agent of c1 would send: the RPC's cluster field names c1. Everything
// else is empty, so a call that passes authorization fails validation and changes nothing.
func body(procedure string) string {
	switch procedure {
	case c.AgentServiceRegisterAgentProcedure, c.AgentServiceHeartbeatProcedure, c.AgentServiceWatchAssignmentProcedure:
		return `{"cluster":"c1"}`
	case c.AgentServiceReportPhaseStatusProcedure, c.AgentServiceReportMeasurementProcedure:
		return `{"ref":{"cluster":"c1"}}`
	}
	return `{}`
}

// call makes one Connect call with a JSON body and returns "ok" or the error code.
func call(t *testing.T, sec *controllertest.Security, url, procedure string, who caller) string {
	t.Helper()
	hc := sec.Client(who.cert)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ct, payload := "application/json", []byte(body(procedure))
	if streaming[procedure] {
		// A Connect streaming request: one enveloped message.
		ct = "application/connect+json"
		env := []byte{0, 0, 0, 0, byte(len(payload))}
		payload = append(env, payload...)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+procedure, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	if who.token != "" {
		req.Header.Set("Authorization", "Bearer "+who.token)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s as %s: %v", procedure, who.name, err)
	}
	defer res.Body.Close()
	var out []byte
	if streaming[procedure] {
		// Read the first envelope: a message means the stream was allowed; the end-of-stream
		// one carries the refusal.
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(res.Body, hdr); err != nil {
			return "ok" // the stream stayed open until the timeout: allowed
		}
		n := int(hdr[1])<<24 | int(hdr[2])<<16 | int(hdr[3])<<8 | int(hdr[4])
		msg := make([]byte, n)
		if _, err := io.ReadFull(res.Body, msg); err != nil {
			t.Fatal(err)
		}
		if hdr[0]&2 == 0 {
			return "ok"
		}
		var end struct {
			Error *struct{ Code string } `json:"error"`
		}
		if err := json.Unmarshal(msg, &end); err != nil {
			t.Fatal(err)
		}
		if end.Error == nil {
			return "ok"
		}
		return end.Error.Code
	}
	out, _ = io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK {
		return "ok"
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal(out, &e); err != nil {
		t.Fatalf("%s as %s: status %d, body %q", procedure, who.name, res.StatusCode, out)
	}
	return e.Code
}

func authCode(code string) string {
	if code == "unauthenticated" || code == "permission_denied" {
		return code
	}
	return "ok"
}

// Each RPC against each caller: anonymous, the three roles, and a cluster's agent.
func TestEveryRPCAgainstEveryRole(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	nodes := controllertest.StartSecureCluster(t, 1, sec, func(cfg *controller.Config) {
		cfg.PeopleRateLimit = controller.RateLimit{Rate: -1}
		cfg.AgentRateLimit = controller.RateLimit{Rate: -1}
	})
	url := nodes[0].URL
	agentCert := sec.Join(t, url, "c1")
	callers := []caller{
		{name: "anonymous"},
		{name: "viewer", token: sec.Tokens["viewer"]},
		{name: "operator", token: sec.Tokens["operator"]},
		{name: "admin", token: sec.Tokens["admin"]},
		{name: "agent", cert: &agentCert},
	}
	// The subject is the controller's procedure table; the expectations are written out here.
	subject := controller.Procedures()
	if len(subject) != len(wantAccess) {
		t.Errorf("the procedure table has %d RPCs, this test expects %d; update it with the API", len(subject), len(wantAccess))
	}
	for _, p := range subject {
		procedure := p.Procedure
		need, ok := wantAccess[procedure]
		if !ok {
			t.Errorf("%s is in the procedure table but not in wantAccess", procedure)
			continue
		}
		for _, who := range callers {
			t.Run(strings.TrimPrefix(procedure, "/ebbflow.v1.")+"/"+who.name, func(t *testing.T) {
				got := authCode(call(t, sec, url, procedure, who))
				if want := outcome(who.name, need); got != want {
					t.Errorf("%s (needs %s) as %s: got %s, want %s", procedure, need, who.name, got, want)
				}
			})
		}
	}
}

// An agent's certificate binds it to its cluster: c1's agent cannot read c2's assignment,
// report or heartbeat for c2, or call what people call.
func TestAgentActsOnlyForItsOwnCluster(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	url := controllertest.StartSecureCluster(t, 1, sec, nil)[0].URL
	a := sec.Join(t, url, "c1")
	sec.Join(t, url, "c2")
	agent := c.NewAgentServiceClient(sec.Client(&a), url)
	ctx := context.Background()

	if _, err := agent.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1"})); err != nil {
		t.Fatalf("c1 registering itself: %v", err)
	}
	_, err := agent.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c2"}))
	wantCode(t, "register as c2", err, connect.CodePermissionDenied)
	_, err = agent.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: "c2"}))
	wantCode(t, "heartbeat for c2", err, connect.CodePermissionDenied)
	_, err = agent.ReportPhaseStatus(ctx, connect.NewRequest(&ebbflowv1.ReportPhaseStatusRequest{Ref: &ebbflowv1.ReportRef{Cluster: "c2"}}))
	wantCode(t, "report for c2", err, connect.CodePermissionDenied)
	_, err = agent.ReportMeasurement(ctx, connect.NewRequest(&ebbflowv1.ReportMeasurementRequest{Ref: &ebbflowv1.ReportRef{Cluster: "c2"}}))
	wantCode(t, "measurement for c2", err, connect.CodePermissionDenied)

	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := agent.WatchAssignment(wctx, connect.NewRequest(&ebbflowv1.WatchAssignmentRequest{Cluster: "c2"}))
	if err == nil {
		stream.Receive()
		err = stream.Err()
	}
	wantCode(t, "watch c2's assignment", err, connect.CodePermissionDenied)
	own, err := agent.WatchAssignment(wctx, connect.NewRequest(&ebbflowv1.WatchAssignmentRequest{Cluster: "c1"}))
	if err != nil || !own.Receive() {
		t.Fatalf("c1 watching its own assignment: %v %v", err, own.Err())
	}

	profiles := c.NewProfileServiceClient(sec.Client(&a), url)
	_, err = profiles.ListProfiles(ctx, connect.NewRequest(&ebbflowv1.ListProfilesRequest{}))
	wantCode(t, "an agent listing profiles", err, connect.CodePermissionDenied)
	clusters := c.NewClusterServiceClient(sec.Client(&a), url)
	_, err = clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: "c2"}))
	wantCode(t, "an agent reading c2", err, connect.CodePermissionDenied)
}

// Revoking a cluster ends its certificates at once, on connections already open too; a new
// join token brings it back with a new epoch, and the old certificate stays refused.
func TestRevokedClusterIsRefused(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	url := controllertest.StartSecureCluster(t, 1, sec, nil)[0].URL
	old := sec.Join(t, url, "c1")
	agent := c.NewAgentServiceClient(sec.Client(&old), url)
	ctx := context.Background()
	beat := func(a c.AgentServiceClient) error {
		_, err := a.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: "c1"}))
		return err
	}
	if _, err := agent.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1"})); err != nil {
		t.Fatal(err)
	}
	if err := beat(agent); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	access := c.NewAccessServiceClient(sec.Client(nil), url, sec.Bearer("admin"))
	res, err := access.RevokeClusterIdentity(ctx, connect.NewRequest(&ebbflowv1.RevokeClusterIdentityRequest{Cluster: "c1"}))
	if err != nil {
		t.Fatal(err)
	}
	err = beat(agent) // same client, same connection
	wantCode(t, "heartbeat after revocation", err, connect.CodeUnauthenticated)
	if !strings.Contains(err.Error(), "revoked") {
		t.Errorf("error does not say the identity was revoked: %v", err)
	}

	renewed := sec.Join(t, url, "c1")
	if err := beat(c.NewAgentServiceClient(sec.Client(&renewed), url)); err != nil {
		t.Fatalf("after a new join: %v", err)
	}
	err = beat(agent)
	wantCode(t, "the pre-revocation certificate after a re-join", err, connect.CodeUnauthenticated)
	if !strings.Contains(err.Error(), fmt.Sprintf("superseded by epoch %d", res.Msg.GetEpoch()+1)) {
		t.Errorf("error does not name the epoch: %v", err)
	}
}

// A join token works once, only before it expires or is revoked, and only with its secret.
func TestJoinTokenIsSingleUse(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	url := controllertest.StartSecureCluster(t, 1, sec, nil)[0].URL
	ctx := context.Background()
	agents := c.NewAgentServiceClient(sec.Client(nil), url)
	join := func(tok string) error {
		_, csr := newCSR(t)
		_, err := agents.JoinCluster(ctx, connect.NewRequest(&ebbflowv1.JoinClusterRequest{Token: tok, CsrPem: csr}))
		return err
	}
	tok := sec.JoinToken(t, url, "c1")
	id, secret, _ := strings.Cut(tok, ".")
	wrong := id + "." + strings.Repeat("a", len(secret))
	if wrong == tok {
		wrong = id + "." + strings.Repeat("b", len(secret))
	}
	wantCode(t, "join with a wrong secret", join(wrong), connect.CodeUnauthenticated)
	if err := join(tok); err != nil {
		t.Fatalf("first use after a wrong guess: %v", err)
	}
	wantCode(t, "second use", join(tok), connect.CodeFailedPrecondition)

	access := c.NewAccessServiceClient(sec.Client(nil), url, sec.Bearer("admin"))
	tok2 := sec.JoinToken(t, url, "c2")
	id2, _, _ := strings.Cut(tok2, ".")
	if _, err := access.RevokeJoinToken(ctx, connect.NewRequest(&ebbflowv1.RevokeJoinTokenRequest{Id: id2})); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "a revoked token", join(tok2), connect.CodeFailedPrecondition)
	wantCode(t, "a token never issued", join("abcdef.0123456789abcdef"), connect.CodeUnauthenticated)
	err := join("not-a-token")
	wantCode(t, "a malformed token", err, connect.CodeInvalidArgument)

	list, err := access.ListJoinTokens(ctx, connect.NewRequest(&ebbflowv1.ListJoinTokensRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]ebbflowv1.JoinTokenState{}
	for _, jt := range list.Msg.GetJoinTokens() {
		states[jt.GetCluster()] = jt.GetState()
		if strings.Contains(jt.String(), secret) {
			t.Errorf("ListJoinTokens leaks a secret: %v", jt)
		}
	}
	if states["c1"] != ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_USED || states["c2"] != ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_REVOKED {
		t.Errorf("token states: %v", states)
	}
}

func wantCode(t *testing.T, what string, err error, code connect.Code) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want %s", what, code)
		return
	}
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

func newCSR(t *testing.T) (keyPEM []byte, csrPEM string) {
	t.Helper()
	k, csr, err := pki.NewKeyAndCSR("agent")
	if err != nil {
		t.Fatal(err)
	}
	return k, string(csr)
}

// A certificate of an epoch this node has not applied yet (a follower right after a join)
// is Unavailable, to be retried, not a refusal; one of an older epoch is refused.
func TestCertificateAheadOfTheReplicaIsUnavailable(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	url := controllertest.StartSecureCluster(t, 1, sec, nil)[0].URL
	sec.Join(t, url, "c1")
	sec.Join(t, url, "c1") // epoch 2
	for epoch, want := range map[uint64]connect.Code{3: connect.CodeUnavailable, 1: connect.CodeUnauthenticated} {
		key, csr := newCSR(t)
		certPEM, err := sec.CA.IssueFromCSR([]byte(csr), pki.Identity{Kind: pki.KindAgent, Name: "c1", Epoch: epoch}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		kp, err := tls.X509KeyPair(certPEM, key)
		if err != nil {
			t.Fatal(err)
		}
		agent := c.NewAgentServiceClient(sec.Client(&kp), url)
		_, err = agent.RegisterAgent(context.Background(), connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1"}))
		wantCode(t, fmt.Sprintf("a certificate of epoch %d against epoch 2", epoch), err, want)
	}
}

// A join whose certificate request the CA would refuse (a weak key, a bad signature) is refused
// before the token is spent: the token stays pending and the agent running with the cluster's
// current identity keeps working.
func TestRefusedJoinLeavesTokenAndIdentity(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	url := controllertest.StartSecureCluster(t, 1, sec, nil)[0].URL
	ctx := context.Background()
	current := sec.Join(t, url, "c1")
	agent := c.NewAgentServiceClient(sec.Client(&current), url)
	beat := func() error {
		_, err := agent.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: "c1"}))
		return err
	}
	if _, err := agent.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1"})); err != nil {
		t.Fatal(err)
	}

	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "agent"}}, weak)
	if err != nil {
		t.Fatal(err)
	}
	weakCSR := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	_, good := newCSR(t)
	forged := strings.Replace(good, good[len(good)/2:len(good)/2+4], "AAAA", 1)

	tok := sec.JoinToken(t, url, "c1")
	joins := c.NewAgentServiceClient(sec.Client(nil), url)
	for what, csr := range map[string]string{"an RSA-1024 key": weakCSR, "a damaged request": forged} {
		_, err := joins.JoinCluster(ctx, connect.NewRequest(&ebbflowv1.JoinClusterRequest{Token: tok, CsrPem: csr}))
		wantCode(t, "a join with "+what, err, connect.CodeInvalidArgument)
		if err != nil && !strings.Contains(err.Error(), "csr_pem") {
			t.Errorf("the refusal of %s does not name csr_pem: %v", what, err)
		}
	}
	if err := beat(); err != nil {
		t.Fatalf("the current identity stopped working after refused joins: %v", err)
	}
	access := c.NewAccessServiceClient(sec.Client(nil), url, sec.Bearer("admin"))
	list, err := access.ListJoinTokens(ctx, connect.NewRequest(&ebbflowv1.ListJoinTokensRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := strings.Cut(tok, ".")
	for _, jt := range list.Msg.GetJoinTokens() {
		if jt.GetId() == id && jt.GetState() != ebbflowv1.JoinTokenState_JOIN_TOKEN_STATE_PENDING {
			t.Errorf("token %s is %v after refused joins, want pending", id, jt.GetState())
		}
	}
	if _, err := joins.JoinCluster(ctx, connect.NewRequest(&ebbflowv1.JoinClusterRequest{Token: tok, CsrPem: good})); err != nil {
		t.Fatalf("the token after refused joins: %v", err)
	}
	wantCode(t, "the superseded identity after a good join", beat(), connect.CodeUnauthenticated)
}
