package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// Raft's refusals before proposing are ErrNotLeader (safe to send to the leader); a lost
// leadership after proposing is ErrOutcomeUnknown, never ErrNotLeader: the entry may commit.
func TestRaftErrSeparatesUnknownOutcomes(t *testing.T) {
	for _, c := range []struct {
		in        error
		notLeader bool
		unknown   bool
	}{
		{raft.ErrNotLeader, true, false},
		{raft.ErrNotVoter, true, false},
		{raft.ErrLeadershipTransferInProgress, true, false},
		{raft.ErrLeadershipLost, false, true},
		{fmt.Errorf("apply: %w", raft.ErrLeadershipLost), false, true},
	} {
		got := raftErr(c.in)
		if errors.Is(got, ErrNotLeader) != c.notLeader || errors.Is(got, ErrOutcomeUnknown) != c.unknown {
			t.Errorf("raftErr(%v) = %v: ErrNotLeader %v (want %v), ErrOutcomeUnknown %v (want %v)",
				c.in, got, errors.Is(got, ErrNotLeader), c.notLeader, errors.Is(got, ErrOutcomeUnknown), c.unknown)
		}
		if !errors.Is(got, c.in) {
			t.Errorf("raftErr(%v) = %v loses the cause", c.in, got)
		}
	}
}
