package controller_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

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
