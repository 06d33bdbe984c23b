package controller_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
)

// unlimited turns the per-actor rate limit off: a benchmark is one actor driving the API as
// fast as it can, which the limit exists to stop.
func unlimited(c *controller.Config) { c.PeopleRateLimit = controller.RateLimit{Rate: -1} }

// BenchmarkProfileWrites measures acknowledged profile updates per second through the whole
// stack on one node: Connect client, handler, validation, Raft, bbolt (fsync'd), each with its
// audit record in the same command.
func BenchmarkProfileWrites(b *testing.B) {
	n := controllertest.Start(b, controllertest.Options{Config: unlimited})
	benchProfileWrites(b, n.URL)
}

// benchProfileWrites creates one profile through url, then updates it from parallel clients
// and reports acknowledged writes per second.
func benchProfileWrites(b *testing.B, url string) {
	c := newClients(url)
	ctx := context.Background()
	if _, err := c.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: "bench", Spec: minimalSpec()})); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.profiles.UpdateProfile(ctx, connect.NewRequest(&ebbflowv1.UpdateProfileRequest{Name: "bench", Spec: minimalSpec()})); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkHeartbeats measures agent heartbeats per second through the API on the leader
// (memory only, no Raft write), spread over 10,000 registered clusters.
func BenchmarkHeartbeats(b *testing.B) {
	n := controllertest.Start(b, controllertest.Options{Config: unlimited})
	c := newClients(n.URL)
	ctx := context.Background()
	const clusters = 10000
	for i := 0; i < clusters; i += 500 {
		// Registration is the only write per agent.
		for j := i; j < i+500; j++ {
			if _, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: fmt.Sprintf("c-%05d", j)})); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := c.agents.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: fmt.Sprintf("c-%05d", i%clusters)})); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "heartbeats/s")
}

// BenchmarkSecureHeartbeats is BenchmarkHeartbeats with authentication on: 64 agents joined
// with join tokens call over mutual TLS, and every call checks the caller's certificate against
// its cluster's identity epoch.
func BenchmarkSecureHeartbeats(b *testing.B) {
	sec := controllertest.NewSecurity(b)
	n := controllertest.Start(b, controllertest.Options{Config: unlimited, Security: sec})
	ctx := context.Background()
	const agents = 64
	clients := make([]ebbflowv1connect.AgentServiceClient, agents)
	for i := range clients {
		name := fmt.Sprintf("c-%02d", i)
		cert := sec.Join(b, n.URL, name)
		clients[i] = ebbflowv1connect.NewAgentServiceClient(sec.Client(&cert), n.URL)
		if _, err := clients[i].RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{Cluster: name})); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)) % agents
		c, name := clients[i], fmt.Sprintf("c-%02d", i)
		for pb.Next() {
			if _, err := c.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: name})); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "heartbeats/s")
}

// BenchmarkCreateRollout10k measures CreateRollout over 10,000 registered clusters in one
// wave on one node: the plan, the engine's first step and the write that assigns every
// cluster (each iteration aborts the rollout so the next one may hold the clusters again).
func BenchmarkCreateRollout10k(b *testing.B) {
	n := controllertest.Start(b, controllertest.Options{Config: unlimited})
	c := newClients(n.URL)
	ctx := context.Background()
	applyBareMetal(b, c)
	const clusters = 10000
	values, _ := structpb.NewStruct(map[string]any{"k8sServiceHost": "10.0.0.1", "k8sServicePort": 6443})
	inv := &ebbflowv1.Inventory{KubernetesVersion: "v1.34.3", HelmValues: values, KubeProxyPresent: true, Nodes: []*ebbflowv1.NodeInfo{
		{Name: "n1", KernelVersion: "6.8.0-45-generic", NicDriver: "mlx5", Ready: true},
		{Name: "n2", KernelVersion: "6.8.0-45-generic", NicDriver: "mlx5", Ready: true},
	}}
	var g errgroup.Group
	g.SetLimit(32)
	for i := range clusters {
		g.Go(func() error {
			_, err := c.agents.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{
				Cluster: fmt.Sprintf("c-%05d", i), Labels: map[string]string{"env": "prod"}, Inventory: inv,
			}))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	spec := &ebbflowv1.RolloutSpec{
		Profile: "bare-metal", ClusterSelector: "env=prod",
		Waves: &ebbflowv1.RolloutSpec_Explicit{Explicit: &ebbflowv1.ExplicitWaves{Waves: []*ebbflowv1.WaveSpec{{Name: "all", Selector: "env=prod"}}}},
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("r-%d", i)
		res, err := c.rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: id, Spec: spec}))
		if err != nil {
			b.Fatal(err)
		}
		if got := len(res.Msg.GetRollout().GetWaves()[0].GetClusters()); got != clusters {
			b.Fatalf("clusters in the wave: %d", got)
		}
		b.StopTimer()
		if _, err := c.rollouts.AbortRollout(ctx, connect.NewRequest(&ebbflowv1.AbortRolloutRequest{Id: id})); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
