package controller_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	c "github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// Heartbeats live in the leader's memory: a thousand of them add no Raft log entry, and a
// repeated identical registration adds none either.
func TestHeartbeatsAreNotRaftWrites(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	ctx := context.Background()
	inv := &ebbflowv1.Inventory{KubernetesVersion: "v1.34.3", Nodes: []*ebbflowv1.NodeInfo{{Name: "n1", KernelVersion: "6.8.0-45-generic"}}}
	reg := &ebbflowv1.RegisterAgentRequest{Cluster: "edge-1", Labels: map[string]string{"env": "edge"}, Inventory: inv, AgentVersion: "v0.1.0"}
	if _, err := c.agents.RegisterAgent(ctx, connect.NewRequest(reg)); err != nil {
		t.Fatal(err)
	}
	before := n.Store.Status().LastLogIndex
	for i := 0; i < 1000; i++ {
		res, err := c.agents.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: "edge-1"}))
		if err != nil {
			t.Fatal(err)
		}
		if res.Msg.GetAssignmentId() != "" {
			t.Fatalf("assignment %q without a rollout", res.Msg.GetAssignmentId())
		}
	}
	if _, err := c.agents.RegisterAgent(ctx, connect.NewRequest(reg)); err != nil {
		t.Fatal(err)
	}
	if after := n.Store.Status().LastLogIndex; after != before {
		t.Fatalf("heartbeats or a no-op registration wrote to the log: %d -> %d", before, after)
	}
	got, err := c.clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: "edge-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Msg.GetCluster().GetLiveness() != ebbflowv1.Liveness_LIVENESS_ALIVE || got.Msg.GetCluster().GetLastHeartbeatTime() == nil {
		t.Fatalf("liveness %v", got.Msg.GetCluster())
	}
	// A changed inventory is a state change: one write.
	reg.Inventory.Nodes[0].KernelVersion = "6.8.0-50-generic"
	if _, err := c.agents.RegisterAgent(ctx, connect.NewRequest(reg)); err != nil {
		t.Fatal(err)
	}
	if after := n.Store.Status().LastLogIndex; after != before+1 {
		t.Fatalf("changed inventory: log %d -> %d, want one entry", before, after)
	}
	st, err := c.controller.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
	if err != nil || st.Msg.GetLiveAgents() != 1 {
		t.Fatalf("live agents: %v %v", st.Msg.GetLiveAgents(), err)
	}
}

// A heartbeat from an unregistered cluster is refused, and an unknown cluster reads UNKNOWN.
func TestHeartbeatUnknownCluster(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	ctx := context.Background()
	_, err := c.agents.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: "ghost"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("want NotFound, got %v", err)
	}
	if _, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "quiet"})); err != nil {
		t.Fatal(err)
	}
	got, err := c.clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: "quiet"}))
	if err != nil || got.Msg.GetCluster().GetLiveness() != ebbflowv1.Liveness_LIVENESS_UNKNOWN {
		t.Fatalf("liveness of a silent cluster: %v %v", got, err)
	}
}

// Reports that name no current assignment are refused with the reason, never applied.
func TestReportsForUnknownAssignmentsAreIgnored(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	ctx := context.Background()
	if _, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "c1"})); err != nil {
		t.Fatal(err)
	}
	res, err := c.agents.ReportPhaseStatus(ctx, connect.NewRequest(&ebbflowv1.ReportPhaseStatusRequest{
		Ref:    &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "a-old", ProfileRevision: 3, Phase: ebbflowv1.Phase_PHASE_KPR},
		Status: ebbflowv1.PhaseStatus_PHASE_STATUS_VERIFIED,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Msg.GetAccepted() || res.Msg.GetReason() == "" {
		t.Fatalf("stale report accepted: %v", res.Msg)
	}
}

// An agent whose assignment stream is open on a follower is alive on the leader without a
// single heartbeat: the follower sends its set of streams to the leader as the node it is (its
// certificate), and the agent's registration says so. When the stream ends, the leader hears
// of it from the follower's next set and the agent goes silent.
func TestOpenStreamIsLivenessOnAnyNode(t *testing.T) {
	sec := controllertest.NewSecurity(t)
	// The liveness window is three of these; a follower sends its streams once per interval. At
	// 1 s a push may be late by up to two intervals on a loaded machine before c1 looks silent.
	const interval = time.Second
	nodes := controllertest.StartSecureCluster(t, 3, sec, func(cfg *controller.Config) { cfg.HeartbeatInterval = interval })
	leader, follower := nodes[0], nodes[1]
	if !leader.Store.IsLeader() {
		t.Fatal("the bootstrapping node does not lead")
	}
	cert := sec.Join(t, leader.URL, "c1")
	agent := c.NewAgentServiceClient(sec.Client(&cert), follower.URL)
	ctx := context.Background()
	var reg *connect.Response[ebbflowv1.RegisterAgentResponse]
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		// Unavailable until the follower has applied c1's new identity.
		if reg, err = agent.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: "c1"})); err == nil {
			break
		} else if connect.CodeOf(err) != connect.CodeUnavailable || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	if !reg.Msg.GetStreamLiveness() {
		t.Fatal("the registration does not say an open stream is liveness")
	}
	sctx, closeStream := context.WithCancel(ctx)
	defer closeStream()
	stream, err := agent.WatchAssignment(sctx, connect.NewRequest(&ebbflowv1.WatchAssignmentRequest{Cluster: "c1"}))
	if err != nil || !stream.Receive() {
		t.Fatalf("watching from the follower: %v %v", err, stream.Err())
	}
	admin := c.NewClusterServiceClient(sec.Client(nil), leader.URL, sec.Bearer("admin"))
	liveness := func() *ebbflowv1.Cluster {
		t.Helper()
		res, err := admin.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: "c1"}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetCluster()
	}
	// The registration's own beat lasts one window; the stream keeps c1 alive for several.
	registered := time.Now()
	for time.Since(registered) < 3*3*interval {
		if cl := liveness(); cl.GetLiveness() != ebbflowv1.Liveness_LIVENESS_ALIVE {
			t.Fatalf("%s after registering, with the stream open on %s: %s (last %v)",
				time.Since(registered).Round(time.Millisecond), follower.ID, cl.GetLiveness(), cl.GetLastHeartbeatTime().AsTime())
		}
		time.Sleep(50 * time.Millisecond) // sampling the state over time, not waiting for it
	}
	closeStream()
	deadline := time.Now().Add(20 * time.Second)
	for liveness().GetLiveness() != ebbflowv1.Liveness_LIVENESS_SILENT {
		if time.Now().After(deadline) {
			t.Fatalf("c1 still %s 20 s after its stream closed", liveness().GetLiveness())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := c.NewControllerServiceClient(sec.Client(nil), leader.URL, sec.Bearer("admin")).
		GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
	if err != nil || st.Msg.GetLiveAgents() != 0 {
		t.Fatalf("live agents after the stream closed: %d %v", st.Msg.GetLiveAgents(), err)
	}
}
