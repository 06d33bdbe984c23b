package agent_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebbflow/ebbflow/agent"
	"github.com/ebbflow/ebbflow/controller"
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

// countingClient counts the agent's Heartbeat calls to a real controller and, when noStream
// is set, fails WatchAssignment as a controller without the stream would.
type countingClient struct {
	ebbflowv1.AgentServiceClient
	beats    atomic.Int32
	noStream bool
}

func (c *countingClient) Heartbeat(ctx context.Context, in *ebbflowv1.HeartbeatRequest, opts ...grpc.CallOption) (*ebbflowv1.HeartbeatResponse, error) {
	c.beats.Add(1)
	return c.AgentServiceClient.Heartbeat(ctx, in, opts...)
}

func (c *countingClient) WatchAssignment(ctx context.Context, in *ebbflowv1.WatchAssignmentRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[ebbflowv1.WatchAssignmentResponse], error) {
	if c.noStream {
		return nil, status.Error(codes.Unavailable, "no stream in this test")
	}
	return c.AgentServiceClient.WatchAssignment(ctx, in, opts...)
}

// When its assignment stream breaks or reopens (a node died, a new leader), the agent beats
// at once rather than an interval later, retrying until a controller answers: so a new leader
// counts it alive as soon as it can.
func TestAgentHeartbeatsAtOnceWhenItsStreamChanges(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{Config: func(c *controller.Config) { c.HeartbeatInterval = time.Minute }})
	conn, raw, err := agent.Dial([]string{n.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := &countingClient{AgentServiceClient: raw}
	loop := agent.New(agent.Config{Cluster: "edge-1", Version: "test", Client: client, Logger: controllertest.Logger(t), MaxBackoff: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	controllertest.Eventually(t, 10*time.Second, "the stream open and its beat", func() bool {
		return loop.Streaming() && client.beats.Load() >= 1
	})
	before := client.beats.Load()
	n.Stop()
	n.Restart(t)
	// The interval is a minute: only the kick can make these within the wait.
	controllertest.Eventually(t, 20*time.Second, "beats after the stream broke and reopened", func() bool {
		return loop.Streaming() && client.beats.Load() >= before+2
	})
}

// While its assignment stream is open the agent makes no Heartbeat call and the controller
// still counts it alive; an agent without a stream heartbeats every interval.
func TestAgentHeartbeatsOnlyWithoutItsStream(t *testing.T) {
	// The controller's liveness window is three of these: a heartbeat may be late by two
	// intervals (600 ms on a loaded machine) before edge-2 looks silent.
	const interval = 300 * time.Millisecond
	n := controllertest.Start(t, controllertest.Options{Config: func(c *controller.Config) { c.HeartbeatInterval = interval }})
	conn, raw, err := agent.Dial([]string{n.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cc := ebbflowv1connect.NewClusterServiceClient(controllertest.HTTPClient(), n.URL)
	liveness := func(name string) ebbflowv1.Liveness {
		got, err := cc.GetCluster(context.Background(), connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: name}))
		if err != nil {
			t.Fatal(err)
		}
		return got.Msg.GetCluster().GetLiveness()
	}
	run := func(name string, client *countingClient) *agent.Loop {
		loop := agent.New(agent.Config{Cluster: name, Version: "test", Client: client, Logger: controllertest.Logger(t), MaxBackoff: interval})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- loop.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run %s: %v", name, err)
			}
		})
		return loop
	}

	streaming := &countingClient{AgentServiceClient: raw}
	loop := run("edge-1", streaming)
	controllertest.Eventually(t, 10*time.Second, "the stream open", loop.Streaming)
	// One beat when the stream opens (TestAgentHeartbeatsAtOnceWhenItsStreamChanges), then none.
	controllertest.Eventually(t, 10*time.Second, "the beat of the stream opening", func() bool { return streaming.beats.Load() == 1 })
	start, before := time.Now(), streaming.beats.Load()
	for time.Since(start) < 10*interval {
		if st := liveness("edge-1"); st != ebbflowv1.Liveness_LIVENESS_ALIVE {
			t.Fatalf("%s with the stream open: %s", time.Since(start).Round(time.Millisecond), st)
		}
		time.Sleep(20 * time.Millisecond) // sampling the state over ten intervals
	}
	if got := streaming.beats.Load() - before; got != 0 {
		t.Errorf("%d heartbeat calls in ten intervals with the stream open, want 0", got)
	}

	silent := &countingClient{AgentServiceClient: raw, noStream: true}
	run("edge-2", silent)
	controllertest.Eventually(t, 10*time.Second, "heartbeats without a stream", func() bool { return silent.beats.Load() >= 5 })
	if st := liveness("edge-2"); st != ebbflowv1.Liveness_LIVENESS_ALIVE {
		t.Fatalf("heartbeating without a stream: %s", st)
	}
}
