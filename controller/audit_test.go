package controller_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// actorClients are clients for url that name actor and record the local addresses they
// dial from, so a test knows the caller's address as the server sees it.
type actorClients struct {
	clients
	audit ebbflowv1connect.AuditServiceClient
	mu    sync.Mutex
	local []string
}

func (a *actorClients) locals() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.local...)
}

func newActorClients(url, actor string, extra http.Header) *actorClients {
	a := &actorClients{}
	hc := controllertest.HTTPClient()
	tr := hc.Transport.(*http.Transport)
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			a.mu.Lock()
			a.local = append(a.local, c.LocalAddr().String())
			a.mu.Unlock()
		}
		return c, err
	}
	set := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Ebbflow-Actor", actor)
			for k, v := range extra {
				req.Header()[k] = v
			}
			return next(ctx, req)
		}
	})
	opt := connect.WithInterceptors(set)
	a.clients = clients{
		profiles:   ebbflowv1connect.NewProfileServiceClient(hc, url, opt),
		clusters:   ebbflowv1connect.NewClusterServiceClient(hc, url, opt),
		rollouts:   ebbflowv1connect.NewRolloutServiceClient(hc, url, opt),
		agents:     ebbflowv1connect.NewAgentServiceClient(hc, url, opt),
		controller: ebbflowv1connect.NewControllerServiceClient(hc, url, opt),
	}
	a.audit = ebbflowv1connect.NewAuditServiceClient(hc, url, opt)
	return a
}

func listAudit(t *testing.T, url string, req *ebbflowv1.ListAuditRecordsRequest) []*ebbflowv1.AuditRecord {
	t.Helper()
	c := ebbflowv1connect.NewAuditServiceClient(controllertest.HTTPClient(), url)
	res, err := c.ListAuditRecords(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("ListAuditRecords on %s: %v", url, err)
	}
	return res.Msg.GetRecords()
}

func stale() *ebbflowv1.ReadOptions {
	return &ebbflowv1.ReadOptions{Consistency: ebbflowv1.Consistency_CONSISTENCY_STALE}
}

// A mutation sent to a follower is forwarded to the leader and audited there exactly once,
// with the original caller's address and the follower as the receiving node; every node holds
// the record. A caller cannot claim another address with the forwarding header.
func TestAuditForwardedMutationOnce(t *testing.T) {
	nodes := controllertest.StartCluster(t, 3)
	f := follower(t, nodes)
	leader := controllertest.Leader(t, nodes)
	c := newActorClients(f.URL, "alice", http.Header{"Ebbflow-Forwarded-For": {"203.0.113.9:4444"}})
	if _, err := c.profiles.CreateProfile(context.Background(), connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: "eks", Spec: minimalSpec()})); err != nil {
		t.Fatal(err)
	}
	recs := listAudit(t, leader.URL, &ebbflowv1.ListAuditRecordsRequest{Prefix: "profile/eks"})
	if len(recs) != 1 {
		t.Fatalf("%d records for one forwarded create, want 1: %v", len(recs), recs)
	}
	r := recs[0]
	if r.GetProcedure() != "ebbflow.v1.ProfileService/CreateProfile" || r.GetResource() != "profile/eks" ||
		r.GetActor() != "alice" || r.GetCode() != "ok" || r.GetNodeId() != f.ID || r.GetTime() == nil {
		t.Fatalf("record %v", r)
	}
	locals := c.locals()
	if len(locals) == 0 || r.GetRemoteAddress() != locals[len(locals)-1] {
		t.Fatalf("remote address %q, want the caller's own %v (not the header's, not the follower's)", r.GetRemoteAddress(), locals)
	}
	for _, n := range nodes {
		controllertest.Eventually(t, 10*time.Second, "the record on "+n.ID, func() bool {
			got := listAudit(t, n.URL, &ebbflowv1.ListAuditRecordsRequest{Prefix: "profile/eks", Read: stale()})
			return len(got) == 1 && got[0].GetSequence() == r.GetSequence()
		})
	}
}

// Refused requests are audited with their Connect code, on the leader and through a follower.
func TestAuditRefusedRequests(t *testing.T) {
	nodes := controllertest.StartCluster(t, 3)
	leader := controllertest.Leader(t, nodes)
	f := follower(t, nodes)
	ctx := context.Background()
	mustCreateProfile(t, newClients(leader.URL), "taken")
	for _, tc := range []struct {
		name     string
		via      *controllertest.Node
		call     func(c *actorClients) error
		code     connect.Code
		resource string
	}{
		{"invalid name", leader, func(c *actorClients) error {
			_, err := c.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: "Not_A_Label", Spec: minimalSpec()}))
			return err
		}, connect.CodeInvalidArgument, "profile/Not_A_Label"},
		{"invalid name through a follower", f, func(c *actorClients) error {
			_, err := c.clusters.CordonCluster(ctx, connect.NewRequest(&ebbflowv1.CordonClusterRequest{Name: "x", Reason: strings.Repeat("r", 5000)}))
			return err
		}, connect.CodeInvalidArgument, "cluster/x"},
		{"already exists", f, func(c *actorClients) error {
			_, err := c.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: "taken", Spec: minimalSpec()}))
			return err
		}, connect.CodeAlreadyExists, "profile/taken"},
		{"delete missing profile", leader, func(c *actorClients) error {
			_, err := c.profiles.DeleteProfile(ctx, connect.NewRequest(&ebbflowv1.DeleteProfileRequest{Name: "missing"}))
			return err
		}, connect.CodeNotFound, "profile/missing"},
		{"pause missing rollout", f, func(c *actorClients) error {
			_, err := c.rollouts.PauseRollout(ctx, connect.NewRequest(&ebbflowv1.PauseRolloutRequest{Id: "nope"}))
			return err
		}, connect.CodeNotFound, "rollout/nope"},
		{"invalid node id", leader, func(c *actorClients) error {
			_, err := c.controller.RemoveServer(ctx, connect.NewRequest(&ebbflowv1.RemoveServerRequest{NodeId: "bad id!"}))
			return err
		}, connect.CodeInvalidArgument, "node/bad id!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			actor := "mallory-" + strings.ReplaceAll(tc.name, " ", "-")
			err := tc.call(newActorClients(tc.via.URL, actor, nil))
			if connect.CodeOf(err) != tc.code {
				t.Fatalf("err %v, want %v", err, tc.code)
			}
			recs := listAudit(t, leader.URL, &ebbflowv1.ListAuditRecordsRequest{Actor: actor, Result: ebbflowv1.AuditResultFilter_AUDIT_RESULT_FILTER_FAILED})
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1: %v", len(recs), recs)
			}
			if r := recs[0]; r.GetCode() != tc.code.String() || r.GetResource() != tc.resource || r.GetMessage() == "" {
				t.Fatalf("record %v, want code %s on %s with a message", r, tc.code, tc.resource)
			}
			if ok := listAudit(t, leader.URL, &ebbflowv1.ListAuditRecordsRequest{Actor: actor, Result: ebbflowv1.AuditResultFilter_AUDIT_RESULT_FILTER_OK}); len(ok) != 0 {
				t.Fatalf("a refusal listed as ok: %v", ok)
			}
		})
	}
}

// The leader stops right after acknowledging a mutation: the new leader has its record.
func TestAuditSurvivesLeaderChange(t *testing.T) {
	nodes := controllertest.StartCluster(t, 3)
	leader := controllertest.Leader(t, nodes)
	c := newActorClients(leader.URL, "bob", nil)
	if _, err := c.clusters.RegisterCluster(context.Background(), connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "eu-1"})); err != nil {
		t.Fatal(err)
	}
	leader.Stop()
	var rest []*controllertest.Node
	for _, n := range nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	nl := controllertest.Leader(t, rest)
	var recs []*ebbflowv1.AuditRecord
	controllertest.Eventually(t, 20*time.Second, "the new leader to serve the audit log", func() bool {
		res, err := ebbflowv1connect.NewAuditServiceClient(controllertest.HTTPClient(), nl.URL).ListAuditRecords(context.Background(),
			connect.NewRequest(&ebbflowv1.ListAuditRecordsRequest{Actor: "bob"}))
		if err != nil {
			return false
		}
		recs = res.Msg.GetRecords()
		return true
	})
	if len(recs) != 1 || recs[0].GetResource() != "cluster/eu-1" || recs[0].GetCode() != "ok" ||
		recs[0].GetProcedure() != "ebbflow.v1.ClusterService/RegisterCluster" {
		t.Fatalf("after the leader change: %v", recs)
	}
}

// Retention by count and by age, with the leader's clock, leaves the same records on every node.
func TestAuditRetentionOnEveryNode(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	for _, tc := range []struct {
		name   string
		keep   int64
		maxAge time.Duration
		// each step advances the clock by this much, then registers cluster c-<i>
		steps []time.Duration
		want  []string
	}{
		{"count", 3, -1, []time.Duration{0, 0, 0, 0, 0}, []string{"cluster/c-4", "cluster/c-3", "cluster/c-2"}},
		{"age", -1, 90 * time.Minute, []time.Duration{0, time.Hour, time.Hour, time.Hour}, []string{"cluster/c-3", "cluster/c-2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := controllertest.StartClusterWith(t, 3, func(c *controller.Config) {
				c.Now = now
				c.AuditMaxRecords, c.AuditMaxAge = tc.keep, tc.maxAge
			})
			leader := controllertest.Leader(t, nodes)
			c := newActorClients(leader.URL, "carol", nil)
			for i, d := range tc.steps {
				clock.Add(int64(d))
				if _, err := c.clusters.RegisterCluster(context.Background(), connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "c-" + string(rune('0'+i))})); err != nil {
					t.Fatal(err)
				}
			}
			want := listAudit(t, leader.URL, &ebbflowv1.ListAuditRecordsRequest{})
			var got []string
			for _, r := range want {
				got = append(got, r.GetResource())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("kept %v, want %v", got, tc.want)
			}
			for _, n := range nodes {
				controllertest.Eventually(t, 10*time.Second, "the same audit log on "+n.ID, func() bool {
					recs := listAudit(t, n.URL, &ebbflowv1.ListAuditRecordsRequest{Read: stale()})
					if len(recs) != len(want) {
						return false
					}
					for i := range recs {
						if recs[i].GetSequence() != want[i].GetSequence() || !recs[i].GetTime().AsTime().Equal(want[i].GetTime().AsTime()) {
							return false
						}
					}
					return true
				})
			}
		})
	}
}

// ListAuditRecords pages newest first and filters by time; bad filters name the field.
func TestListAuditRecordsPagingAndFilters(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newActorClients(n.URL, "dave", nil)
	ctx := context.Background()
	start := time.Now()
	for i := range 5 {
		if _, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "p-" + string(rune('a'+i))})); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	tok := ""
	for {
		res, err := c.audit.ListAuditRecords(ctx, connect.NewRequest(&ebbflowv1.ListAuditRecordsRequest{PageSize: 2, PageToken: tok, StartTime: timestamppb.New(start.Add(-time.Second))}))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Msg.GetRecords() {
			all = append(all, r.GetResource())
		}
		if tok = res.Msg.GetNextPageToken(); tok == "" {
			break
		}
	}
	if got := strings.Join(all, ","); got != "cluster/p-e,cluster/p-d,cluster/p-c,cluster/p-b,cluster/p-a" {
		t.Fatalf("pages: %s", got)
	}
	if recs := listAudit(t, n.URL, &ebbflowv1.ListAuditRecordsRequest{EndTime: timestamppb.New(start.Add(-time.Hour))}); len(recs) != 0 {
		t.Fatalf("records before the test started: %v", recs)
	}
	_, err := c.audit.ListAuditRecords(ctx, connect.NewRequest(&ebbflowv1.ListAuditRecordsRequest{
		StartTime: timestamppb.New(start), EndTime: timestamppb.New(start.Add(-time.Minute)), PageToken: "!!",
	}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || !strings.Contains(ce.Message(), "end_time") || !strings.Contains(ce.Message(), "page_token") {
		t.Fatalf("bad filters: %v", err)
	}
}

// An agent's registration is recorded under the agent's cluster; repeating it unchanged is no
// mutation and leaves no record; its reports are recorded with the reason they were refused.
func TestAuditAgentCalls(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	ctx := context.Background()
	reg := &ebbflowv1.RegisterAgentRequest{Cluster: "c9", Labels: map[string]string{"env": "prod"}}
	for range 2 {
		if _, err := c.agents.RegisterAgent(ctx, connect.NewRequest(reg)); err != nil {
			t.Fatal(err)
		}
	}
	before := n.Store.ProposedStats()
	res, err := c.agents.ReportPhaseStatus(ctx, connect.NewRequest(&ebbflowv1.ReportPhaseStatusRequest{
		Ref:    &ebbflowv1.ReportRef{Cluster: "c9", AssignmentId: "old", ProfileRevision: 1, Phase: ebbflowv1.Phase_PHASE_BASELINE},
		Status: ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED,
	}))
	if err != nil || res.Msg.GetAccepted() {
		t.Fatalf("report without an assignment: %v %v", res, err)
	}
	// The refusal's record is written in the report batch's entry, not as an entry of its own.
	after := n.Store.ProposedStats()
	if d := after["report"].Commands - before["report"].Commands; d != 1 {
		t.Errorf("the refused report's batch carried %d commands, want its audit record", d)
	}
	if d := after["record_audit"].Entries - before["record_audit"].Entries; d != 0 {
		t.Errorf("the refused report's record took %d entries of its own", d)
	}
	recs := listAudit(t, n.URL, &ebbflowv1.ListAuditRecordsRequest{Actor: "agent:c9"})
	if len(recs) != 2 {
		t.Fatalf("%d records, want the registration and the report: %v", len(recs), recs)
	}
	if r := recs[1]; r.GetProcedure() != "ebbflow.v1.AgentService/RegisterAgent" || r.GetResource() != "cluster/c9" || r.GetCode() != "ok" {
		t.Fatalf("registration record %v", r)
	}
	if r := recs[0]; r.GetProcedure() != "ebbflow.v1.AgentService/ReportPhaseStatus" || r.GetCode() != "ok" ||
		!strings.HasPrefix(r.GetMessage(), "not accepted: ") {
		t.Fatalf("report record %v", r)
	}
}
