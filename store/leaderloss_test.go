package store

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// slowHeartbeat gives a group a 4 s heartbeat timeout, so an election within 3 s cannot be
// Raft's own. (Not longer: the bootstrapping node waits that long to elect itself.)
func slowHeartbeat(c *Config) {
	c.Fast = false
	c.HeartbeatTimeout = 4 * time.Second
	c.ElectionTimeout = 4 * time.Second
	c.LeaderLeaseTimeout = time.Second
}

// TestLeaderLossElection closes the leader of a group whose heartbeat timeout is 4 s: Raft's
// own timeout could not elect anyone for at least 4 s, so a leader within 3 s (about 0.3 s on
// a quiet machine) is the survivors noticing that the leader's process has gone. The clock
// stops when another node leads, before the new leader's first reads and writes. Writes go on through the new
// leader.
func TestLeaderLossElection(t *testing.T) {
	c := newCluster(t, 3, slowHeartbeat)
	c.apply(t, registerCluster("eu-1", labels("before"), false))
	old := c.Leader()
	if old == nil {
		t.Fatal("no leader")
	}
	closed := time.Now()
	if err := old.Close(); err != nil {
		t.Fatalf("closing the leader: %v", err)
	}
	waitFor(t, 30*time.Second, "another node to lead", func() bool {
		l := c.Leader()
		return l != nil && l != old
	})
	if took := time.Since(closed); took > 3*time.Second {
		t.Fatalf("a new leader took %s after the old one closed; the heartbeat timeout is 4 s, so the leader-loss election did not run", took)
	}
	c.waitForNewLeader(t, old)
	c.apply(t, registerCluster("eu-1", labels("after"), false))
	if got, _ := c.linearCluster(t, "eu-1"); got.GetLabels()["v"] != "after" {
		t.Fatalf("labels after failover = %v", got.GetLabels())
	}
}

// TestProcessGone tells a closed port (gone) from a listening one and from one that accepts
// and holds the connection (a live node's transport).
func TestProcessGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	addr := ln.Addr().String()
	if processGone(addr) {
		t.Fatalf("processGone(%s) with a listener = true", addr)
	}
	_ = ln.Close()
	for len(held) > 0 {
		_ = (<-held).Close()
	}
	if !processGone(addr) {
		t.Fatalf("processGone(%s) after the listener closed = false", addr)
	}
}

// TestNewerLog: Raft's up-to-date rule decides whether a node answers a stale candidate by
// running itself.
func TestNewerLog(t *testing.T) {
	cases := []struct {
		term, index, otherTerm, otherIndex uint64
		want                               bool
	}{
		{3, 10, 3, 9, true},   // same term, longer
		{3, 10, 3, 10, false}, // the same log
		{3, 9, 3, 10, false},  // same term, shorter
		{4, 5, 3, 10, true},   // later term wins over length
		{3, 50, 4, 10, false}, // earlier term loses whatever its length
	}
	for _, c := range cases {
		if got := newerLog(c.term, c.index, c.otherTerm, c.otherIndex); got != c.want {
			t.Errorf("newerLog(%d, %d, %d, %d) = %v, want %v", c.term, c.index, c.otherTerm, c.otherIndex, got, c.want)
		}
	}
}

// TestStaleCandidateHandsOver sends a follower a leadership-transfer vote request, as a
// survivor of a lost leader sends, from a candidate whose log is older than the follower's:
// the follower must refuse it and run itself. The group's heartbeat timeout is 4 s and the
// request's newer term unseats the leader, so a leader within 3 s, and that follower, is the
// hand-over at work.
func TestStaleCandidateHandsOver(t *testing.T) {
	c := newCluster(t, 3, slowHeartbeat)
	c.apply(t, registerCluster("eu-1", labels("before"), false))
	old := c.Leader()
	var followers []*Store
	for _, s := range c {
		if s != old {
			followers = append(followers, s)
		}
	}
	target, stale := followers[0], followers[1]
	waitFor(t, 10*time.Second, "the followers to hold the whole log", func() bool {
		return target.raft.LastIndex() == old.raft.LastIndex() && stale.raft.LastIndex() == old.raft.LastIndex()
	})
	term, err := strconv.ParseUint(target.raft.Stats()["term"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	req := &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{
			ProtocolVersion: raft.ProtocolVersionMax,
			ID:              []byte(stale.cfg.NodeID),
			Addr:            []byte(stale.trans.LocalAddr()),
		},
		Term:               term + 1,
		LastLogIndex:       1, // far behind the follower's log
		LastLogTerm:        1,
		LeadershipTransfer: true,
	}
	sent := time.Now()
	var resp raft.RequestVoteResponse
	if err := stale.trans.RequestVote(raft.ServerID(target.cfg.NodeID), target.trans.LocalAddr(), req, &resp); err != nil {
		t.Fatalf("RequestVote: %v", err)
	}
	if resp.Granted {
		t.Fatal("the follower granted its vote to a candidate with an older log")
	}
	waitFor(t, 30*time.Second, target.cfg.NodeID+" to lead", func() bool { return target.IsLeader() })
	if took := time.Since(sent); took > 3*time.Second {
		t.Fatalf("%s led %s after refusing a stale candidate; the heartbeat timeout is 4 s, so it did not run at once", target.cfg.NodeID, took)
	}
	c.apply(t, registerCluster("eu-1", labels("after"), false))
	if got, _ := c.linearCluster(t, "eu-1"); got.GetLabels()["v"] != "after" {
		t.Fatalf("labels after the hand-over = %v", got.GetLabels())
	}
}
