package controller_test

import (
	"testing"

	"github.com/ebbflow/ebbflow/controller/controllertest"
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
	benchProfileWrites(b, f.URL)
}
