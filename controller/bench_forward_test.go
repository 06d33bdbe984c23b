package controller_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// BenchmarkForwardedProfileWrites is BenchmarkProfileWrites sent to a follower of a 3-node
// group: every write crosses the forwarding path (interceptor, generic client, the leader's
// whole stack) before it is acknowledged.
func BenchmarkForwardedProfileWrites(b *testing.B) {
	nodes := controllertest.StartClusterWith(b, 3, unlimited)
	leader := controllertest.Leader(b, nodes)
	var f *controllertest.Node
	for _, n := range nodes {
		if n != leader {
			f = n
			break
		}
	}
	c := newClients(f.URL)
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
