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
//
// The first in id order may hold the older log (the dead leader's last entries reached the
// other survivor first); the other survivor then refuses its vote, and would wait for its own
// turn. Instead, a voter that sees a leadership-transfer vote request from a candidate whose
// log is older than its own starts its own election at once (watchStaleCandidates): the
// candidate steps down for the newer term and votes for it.

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
	s.timeoutNowSelf()
}

// timeoutNowSelf asks this node's Raft for TimeoutNow: it becomes a candidate at once, with a
// leadership-transfer vote request the others grant while they still believe in a leader.
func (s *Store) timeoutNowSelf() {
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax,
		ID:              []byte(s.cfg.NodeID),
		Addr:            []byte(s.trans.LocalAddr()),
	}}
	if err := s.trans.TimeoutNow(raft.ServerID(s.cfg.NodeID), s.trans.LocalAddr(), req, &raft.TimeoutNowResponse{}); err != nil {
		s.log.Warn("starting an election", "err", err)
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

// watchStaleCandidates starts an election when a candidate that was asked to take over (a
// leadership-transfer vote request: a survivor of a lost leader, or a transfer an operator
// asked for) has an older log than this node's, which must therefore refuse it: without this,
// the group would wait for the next survivor's turn or for a heartbeat timeout.
func (s *Store) watchStaleCandidates() {
	if s.cfg.NoLeaderLossElection {
		return
	}
	ch := make(chan raft.Observation, 8)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		req, ok := o.Data.(raft.RequestVoteRequest)
		return ok && req.LeadershipTransfer
	})
	s.raft.RegisterObserver(obs)
	defer s.raft.DeregisterObserver(obs)
	for {
		select {
		case <-s.stop:
			return
		case o := <-ch:
			req := o.Data.(raft.RequestVoteRequest)
			term, index, err := s.lastLog()
			if err != nil || s.raft.State() != raft.Follower || !newerLog(term, index, req.LastLogTerm, req.LastLogIndex) {
				continue
			}
			s.log.Warn("a candidate asked to take over has an older log than this node; starting an election",
				"candidate", string(req.ID), "candidate_last_index", req.LastLogIndex, "last_index", index)
			s.timeoutNowSelf()
		}
	}
}

// lastLog is the term and index of the last entry in this node's log.
func (s *Store) lastLog() (term, index uint64, err error) {
	index = s.raft.LastIndex()
	if index == 0 {
		return 0, 0, nil
	}
	var l raft.Log
	if err := s.logs.GetLog(index, &l); err != nil {
		return 0, 0, err
	}
	return l.Term, l.Index, nil
}

// newerLog says whether a log ending at (term, index) is newer than one ending at
// (otherTerm, otherIndex), by Raft's rule: the later last term wins, then the longer log.
func newerLog(term, index, otherTerm, otherIndex uint64) bool {
	return term > otherTerm || (term == otherTerm && index > otherIndex)
}
