package store

import (
	"errors"
	"io"
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// A follower learns that its leader is gone in one of two ways. Raft's own is silence: no
// heartbeat for HeartbeatTimeout, randomised up to twice it, and then hashicorp/raft's
// followers still refuse a candidate's vote while they believe in a leader, so a new leader
// takes the slower of the two survivors' timeouts, 1-2 s at the 1 s default. The other, here, is faster and cannot be set off by a slow machine: when the
// leader's process ends (a crash, a kill, an OOM, a restart), the kernel closes its
// connections, so the connections it opened to this node end; the node then connects to the
// leader's Raft address, and when that is refused (nothing listens there: the process is
// gone) it starts an election at once. The survivors go in the order of their server ids,
// leaderLossStagger apart, so they do not split the vote; the first asks itself for
// TimeoutNow, Raft's leadership-transfer RPC, which makes it a candidate whose vote
// request the others grant although they still believe in the dead leader (their logs must
// still be no newer than its own, so safety is Raft's as ever). A leader that is alive but
// slow, paused or cut off accepts connections or does not answer at all, so this path does
// nothing and the heartbeat timeout decides, as before.

// leaderLossStagger is how long the n-th surviving voter (by server id) waits, times n,
// before it starts an election of its own: long enough for the first one's to finish.
const leaderLossStagger = 300 * time.Millisecond

// watchLeaderLoss checks the leader each time a connection a peer opened to this node ends,
// until the store closes.
func (s *Store) watchLeaderLoss() {
	if s.cfg.NoLeaderLossElection {
		return
	}
	for {
		select {
		case <-s.stop:
			return
		case <-s.stream.ended:
		}
		s.checkLeaderLoss()
	}
}

// checkLeaderLoss starts an election when this node is a voting follower whose leader's
// Raft address refuses connections, after its turn among the survivors.
func (s *Store) checkLeaderLoss() {
	addr, id := s.raft.LeaderWithID()
	if id == "" || string(id) == s.cfg.NodeID || s.raft.State() != raft.Follower || !processGone(string(addr)) {
		return
	}
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	var voters []string
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter && srv.ID != id {
			voters = append(voters, string(srv.ID))
		}
	}
	slices.Sort(voters)
	rank := slices.Index(voters, s.cfg.NodeID)
	if rank < 0 {
		return
	}
	if rank > 0 {
		select {
		case <-s.stop:
			return
		case <-time.After(time.Duration(rank) * leaderLossStagger):
		}
		// Another survivor has been elected (or an election is under way) meanwhile.
		if _, now := s.raft.LeaderWithID(); (now != id && now != "") || s.raft.State() != raft.Follower || !processGone(string(addr)) {
			return
		}
	}
	s.log.Warn("the leader's process is gone (its Raft address refuses connections); starting an election",
		"leader", id, "leader_raft", addr, "turn", rank)
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax,
		ID:              []byte(s.cfg.NodeID),
		Addr:            []byte(s.trans.LocalAddr()),
	}}
	if err := s.trans.TimeoutNow(raft.ServerID(s.cfg.NodeID), s.trans.LocalAddr(), req, &raft.TimeoutNowResponse{}); err != nil {
		s.log.Warn("starting an election after the leader's process went", "err", err)
	}
}

// processGone reports whether nothing listens on addr any more: a connection is refused, or
// accepted by a listener that is closing and then reset. A live node's transport holds a
// connection open waiting for a request (or, with TLS, a handshake), and an unreachable or
// paused one does not answer in time; both are "not gone".
func processGone(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}
