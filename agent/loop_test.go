package agent_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/agent"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// The agent registers over gRPC, receives its (idle) assignment on the stream, keeps its
// cluster alive, and after the controller restarts it reconnects and resubscribes by itself.
func TestAgentRegistersFollowsAndReconnects(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	conn, client, err := agent.Dial([]string{n.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var received atomic.Int32
	loop := agent.New(agent.Config{
		Cluster: "edge-7", Labels: map[string]string{"env": "edge"}, Version: "test", Client: client,
		Logger: controllertest.Logger(t), MaxBackoff: 200 * time.Millisecond,
		Inventory: func(context.Context) (*ebbflowv1.Inventory, error) {
			return &ebbflowv1.Inventory{KubernetesVersion: "v1.34.3", Nodes: []*ebbflowv1.NodeInfo{{Name: "n1", KernelVersion: "6.8.0"}}}, nil
		},
		OnAssignment: func(_ context.Context, a *ebbflowv1.Assignment) { received.Add(1) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	controllertest.Eventually(t, 10*time.Second, "first assignment", func() bool { return received.Load() >= 1 })
	if a := loop.Current(); a.GetAction() != ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_IDLE || a.GetCluster() != "edge-7" {
		t.Fatalf("assignment %v", a)
	}
	cc := ebbflowv1connect.NewClusterServiceClient(controllertest.HTTPClient(), n.URL)
	got, err := cc.GetCluster(context.Background(), connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: "edge-7"}))
	if err != nil {
		t.Fatal(err)
	}
	c := got.Msg.GetCluster()
	if c.GetLabels()["env"] != "edge" || c.GetInventory().GetKubernetesVersion() != "v1.34.3" || c.GetLiveness() != ebbflowv1.Liveness_LIVENESS_ALIVE {
		t.Fatalf("registered cluster %v", c)
	}

	// Restart the controller on the same address and data: the agent comes back by itself.
	n.Stop()
	n.Restart(t)
	controllertest.Eventually(t, 20*time.Second, "assignment after reconnect", func() bool { return received.Load() >= 2 })
}

// Given every node of the group, the agent reaches a live one even when another is down, and
// refuses a list that mixes schemes.
func TestAgentDialsAnyLiveController(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	dead := controllertest.Start(t, controllertest.Options{})
	deadURL := dead.URL
	dead.Stop()
	if _, _, err := agent.Dial([]string{n.URL, "https://127.0.0.1:1"}, nil); err == nil || !strings.Contains(err.Error(), "every controller URL must use http") {
		t.Fatalf("mixed schemes: %v", err)
	}
	urls, err := agent.ParseControllers(deadURL + ", " + n.URL + ",")
	if err != nil || len(urls) != 2 {
		t.Fatalf("ParseControllers: %v %v", urls, err)
	}
	conn, client, err := agent.Dial(urls, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Every call lands on the live node, whichever the shuffled order tries first.
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := client.RegisterAgent(ctx, &ebbflowv1.RegisterAgentRequest{Cluster: fmt.Sprintf("edge-%d", i)})
		cancel()
		if err != nil {
			t.Fatalf("register %d through the group: %v", i, err)
		}
	}
}
