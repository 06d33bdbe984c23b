package controller_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func badRequest(t *testing.T, err error) (*connect.Error, []*errdetails.BadRequest_FieldViolation) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("not a Connect error: %v", err)
	}
	var out []*errdetails.BadRequest_FieldViolation
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if br, ok := v.(*errdetails.BadRequest); ok {
				out = append(out, br.GetFieldViolations()...)
			}
		}
	}
	return ce, out
}

func deep(n int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{"leaf": structpb.NewStringValue("x")}}
	for range n {
		s = &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStructValue(s)}}
	}
	return s
}

// Per-field limits on what agents and people send: each refusal names the field and the rule
// (the schema's rule id where the rule is declared in proto/, e.g. string.max_bytes).
func TestFieldLimits(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	ctx := context.Background()
	ref := &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "a1", ProfileRevision: 1, Phase: ebbflowv1.Phase_PHASE_BASELINE}
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name, field, rule string
		call              func() error
	}{
		{"node name", "inventory.nodes[1].name", "string.max_bytes", func() error {
			_, err := c.agents.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1", Inventory: &ebbflowv1.Inventory{
				Nodes: []*ebbflowv1.NodeInfo{{Name: "n1"}, {Name: long}},
			}}))
			return err
		}},
		{"kernel version", "inventory.nodes[0].kernel_version", "string.max_bytes", func() error {
			_, err := c.agents.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1", Inventory: &ebbflowv1.Inventory{
				Nodes: []*ebbflowv1.NodeInfo{{Name: "n1", KernelVersion: long}},
			}}))
			return err
		}},
		{"helm values depth", "inventory.helm_values", "max-depth", func() error {
			_, err := c.agents.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1", Inventory: &ebbflowv1.Inventory{HelmValues: deep(80)}}))
			return err
		}},
		{"cilium-config value", `inventory.cilium_config["k"]`, "string.max_bytes", func() error {
			_, err := c.agents.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1", Inventory: &ebbflowv1.Inventory{
				CiliumConfig: map[string]string{"k": strings.Repeat("v", 70<<10)},
			}}))
			return err
		}},
		{"preflight reason", "preflight_reasons[0]", "string.max_bytes", func() error {
			_, err := c.agents.ReportPhaseStatus(ctx, connect.NewRequest(&ebbflowv1.ReportPhaseStatusRequest{
				Ref: ref, Status: ebbflowv1.PhaseStatus_PHASE_STATUS_PREFLIGHT_FAILED, PreflightReasons: []string{long},
			}))
			return err
		}},
		{"measurement target", "measurements[0].target", "string.max_bytes", func() error {
			_, err := c.agents.ReportMeasurement(ctx, connect.NewRequest(&ebbflowv1.ReportMeasurementRequest{
				Ref: ref, Measurements: []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: long}},
			}))
			return err
		}},
		{"histogram", "measurements[0].hdr_histogram", "bytes.max_len", func() error {
			_, err := c.agents.ReportMeasurement(ctx, connect.NewRequest(&ebbflowv1.ReportMeasurementRequest{
				Ref: ref, Measurements: []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, HdrHistogram: make([]byte, 300<<10)}},
			}))
			return err
		}},
		{"approve cluster", "cluster", "string.pattern", func() error {
			_, err := c.rollouts.ApproveRollout(ctx, connect.NewRequest(&ebbflowv1.ApproveRolloutRequest{Id: "r1", Wave: -1, Cluster: "Not A Name"}))
			return err
		}},
		{"rollback cluster", "cluster", "string.max_len", func() error {
			_, err := c.rollouts.RollbackRollout(ctx, connect.NewRequest(&ebbflowv1.RollbackRolloutRequest{Id: "r1", Target: &ebbflowv1.RollbackRolloutRequest_Cluster{Cluster: long}}))
			return err
		}},
		{"skip reason", "reason", "string.max_bytes", func() error {
			_, err := c.rollouts.SkipCluster(ctx, connect.NewRequest(&ebbflowv1.SkipClusterRequest{Id: "r1", Cluster: "c1", Reason: long}))
			return err
		}},
		{"audit prefix", "prefix", "max-length", func() error {
			_, err := newActorClients(n.URL, "x", nil).audit.ListAuditRecords(ctx, connect.NewRequest(&ebbflowv1.ListAuditRecordsRequest{Prefix: long}))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce, vs := badRequest(t, tc.call())
			if ce.Code() != connect.CodeInvalidArgument || !strings.Contains(ce.Message(), tc.field+":") {
				t.Fatalf("%v: want InvalidArgument naming %s", ce, tc.field)
			}
			found := false
			for _, v := range vs {
				found = found || (v.GetField() == tc.field && v.GetReason() == tc.rule)
			}
			if !found {
				t.Fatalf("no violation %s (%s) in %v", tc.field, tc.rule, vs)
			}
		})
	}
}

// The read limit: people's messages stop at 8 MiB; an agent's measurement report may be far
// bigger (here 6 x 200,000 samples, about 9.6 MB) and reaches validation and the handler.
func TestReadLimits(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	ctx := context.Background()
	spec := minimalSpec()
	spec.Description = strings.Repeat("d", 9<<20)
	_, err := c.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: "huge", Spec: spec}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("9 MiB profile: %v, want ResourceExhausted", err)
	}
	samples := make([]float64, 200000)
	for i := range samples {
		samples[i] = 1.25 + float64(i%7)
	}
	var ms []*ebbflowv1.Measurement
	for range 6 {
		ms = append(ms, &ebbflowv1.Measurement{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://t", SamplesMs: samples})
	}
	_, err = c.agents.ReportMeasurement(ctx, connect.NewRequest(&ebbflowv1.ReportMeasurementRequest{
		Ref: &ebbflowv1.ReportRef{Cluster: "nowhere", AssignmentId: "a1", ProfileRevision: 1, Phase: ebbflowv1.Phase_PHASE_BASELINE}, Measurements: ms,
	}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("big measurement report: %v, want NotFound from the handler (the cluster does not exist)", err)
	}
}

func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted {
		t.Fatalf("%v: want ResourceExhausted", err)
	}
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ri, ok := v.(*errdetails.RetryInfo); ok {
				return ri.GetRetryDelay().AsDuration()
			}
		}
	}
	t.Fatalf("no RetryInfo in %v", err)
	return 0
}

// A burst over the limit is refused with a retry hint; another identity is unaffected.
func TestRateLimits(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{Config: func(c *controller.Config) {
		c.PeopleRateLimit = controller.RateLimit{Rate: 0.01, Burst: 3}
		c.AgentRateLimit = controller.RateLimit{Rate: 0.01, Burst: 2}
	}})
	ctx := context.Background()
	alice, bob := newActorClients(n.URL, "alice", nil), newActorClients(n.URL, "bob", nil)
	list := func(c *actorClients) error {
		_, err := c.profiles.ListProfiles(ctx, connect.NewRequest(&ebbflowv1.ListProfilesRequest{}))
		return err
	}
	for i := range 3 {
		if err := list(alice); err != nil {
			t.Fatalf("alice call %d within the burst: %v", i, err)
		}
	}
	err := list(alice)
	if d := retryDelay(t, err); d <= 0 || !strings.Contains(err.Error(), `actor "alice"`) {
		t.Fatalf("retry delay %s in %v", d, err)
	}
	if err := list(bob); err != nil {
		t.Fatalf("bob limited by alice's burst: %v", err)
	}

	reg := func(cluster string) error {
		_, err := alice.agents.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: cluster}))
		return err
	}
	for i := range 2 {
		if err := reg("c1"); err != nil {
			t.Fatalf("c1 registration %d within the burst: %v", i, err)
		}
	}
	if d := retryDelay(t, reg("c1")); d <= 0 {
		t.Fatalf("retry delay %s", d)
	}
	if err := reg("c2"); err != nil {
		t.Fatalf("c2 limited by c1's burst: %v", err)
	}
	// Agents and people are counted apart, and heartbeats are not counted.
	for range 20 {
		if _, err := alice.agents.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: "c1"})); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
	}
}

// panicky panics in the handler (the clock) or in the interceptors (the authenticator) when on.
type panicky struct{ on atomic.Bool }

func (p *panicky) now() time.Time {
	if p.on.Load() {
		panic("secret-handler-state 0xdeadbeef")
	}
	return time.Now()
}

func (p *panicky) Identify(context.Context, connect.Peer, http.Header) (controller.Identity, error) {
	if p.on.Load() {
		panic("secret-auth-state 0xfeedface")
	}
	return controller.Identity{Actor: "tester", Unrestricted: true}, nil
}

// No panic reaches a client: a panic in a handler or an interceptor comes back as Internal
// without its text, and the server keeps serving.
func TestPanicIsInternal(t *testing.T) {
	for _, where := range []string{"handler", "interceptor"} {
		t.Run(where, func(t *testing.T) {
			p := &panicky{}
			n := controllertest.Start(t, controllertest.Options{Config: func(c *controller.Config) {
				if where == "handler" {
					c.Now = p.now
				} else {
					c.Authenticator = p
				}
			}})
			c := newClients(n.URL)
			ctx := context.Background()
			if _, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "c1"})); err != nil {
				t.Fatal(err)
			}
			p.on.Store(true)
			_, err := c.agents.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: "c1"}))
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeInternal {
				t.Fatalf("%v: want Internal", err)
			}
			if strings.Contains(ce.Error(), "secret") || strings.Contains(ce.Error(), "0x") || !strings.Contains(ce.Message(), "internal error") {
				t.Fatalf("the panic leaked: %q", ce.Error())
			}
			p.on.Store(false)
			if _, err := c.agents.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: "c1"})); err != nil {
				t.Fatalf("after the panic: %v", err)
			}
		})
	}
}
