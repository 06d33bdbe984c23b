package controller

import (
	"fmt"
	"testing"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/store"
)

// An unknown outcome is not UNAVAILABLE, which clients may retry: a write whose leader was
// lost while it committed must be read back, not sent again.
func TestUnknownOutcomeIsNotUnavailable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want connect.Code
	}{
		{fmt.Errorf("%w: leadership lost", store.ErrOutcomeUnknown), connect.CodeUnknown},
		{fmt.Errorf("%w: raft: not leader", store.ErrNotLeader), connect.CodeUnavailable},
		{store.ErrConflict, connect.CodeAborted},
	} {
		if got := connect.CodeOf(toConnectError(c.err)); got != c.want {
			t.Errorf("toConnectError(%v): %v, want %v", c.err, got, c.want)
		}
	}
}
