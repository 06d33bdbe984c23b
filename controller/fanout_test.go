package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// A wave wakes every agent's stream at once, and every stream gets its own assignment: a
// hundred streams open on one node, all in one wave.
func TestWaveReachesEveryOpenStream(t *testing.T) {
	const n = 100
	node := controllertest.Start(t, controllertest.Options{Config: fastEngine})
	c := newClients(node.URL)
	applyBareMetal(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type watch struct {
		name   string
		stream *connect.ServerStreamForClient[ebbflowv1.WatchAssignmentResponse]
	}
	var watches []watch
	for i := range n {
		name := fmt.Sprintf("w-%03d", i)
		reg := &ebbflowv1.RegisterAgentRequest{Cluster: name, Labels: map[string]string{"env": "prod"}, AgentVersion: "v0.1.0",
			Inventory: &ebbflowv1.Inventory{KubernetesVersion: "v1.34.3", Nodes: []*ebbflowv1.NodeInfo{{Name: "n1", KernelVersion: "6.8.0-45-generic"}}}}
		if _, err := c.agents.RegisterAgent(ctx, connect.NewRequest(reg)); err != nil {
			t.Fatal(err)
		}
		s, err := c.agents.WatchAssignment(ctx, connect.NewRequest(&ebbflowv1.WatchAssignmentRequest{Cluster: name}))
		if err != nil {
			t.Fatal(err)
		}
		if !s.Receive() || s.Msg().GetAssignment().GetId() != "" {
			t.Fatalf("%s: first message %v, err %v; want an empty assignment", name, s.Msg(), s.Err())
		}
		t.Cleanup(func() { _ = s.Close() })
		watches = append(watches, watch{name, s})
	}
	spec := &ebbflowv1.RolloutSpec{
		Profile: "bare-metal", ClusterSelector: "env=prod", PhaseTimeout: durationpb.New(time.Minute),
		Waves: &ebbflowv1.RolloutSpec_Explicit{Explicit: &ebbflowv1.ExplicitWaves{Waves: []*ebbflowv1.WaveSpec{{Name: "all", Selector: "env=prod"}}}},
	}
	if _, err := c.rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "fanout", Spec: spec})); err != nil {
		t.Fatal(err)
	}
	for _, w := range watches {
		if !w.stream.Receive() {
			t.Fatalf("%s: stream ended without an assignment: %v", w.name, w.stream.Err())
		}
		a := w.stream.Msg().GetAssignment()
		if a.GetId() == "" || a.GetPhase() != ebbflowv1.Phase_PHASE_BASELINE {
			t.Fatalf("%s: got %v; want the baseline assignment", w.name, a)
		}
	}
}
