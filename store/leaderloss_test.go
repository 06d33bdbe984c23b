package store

import (
	"net"
	"testing"
	"time"
)

// TestLeaderLossElection closes the leader of a group whose heartbeat timeout is 4 s: Raft's
// own timeout could not elect anyone for at least 4 s, so a leader within 3 s is the
// survivors noticing that the leader's process has gone. Writes go on through the new
// leader.
func TestLeaderLossElection(t *testing.T) {
	slow := func(c *Config) {
		c.Fast = false
		c.HeartbeatTimeout = 4 * time.Second
		c.ElectionTimeout = 4 * time.Second
		c.LeaderLeaseTimeout = time.Second
	}
	c := newCluster(t, 3, slow)
	c.apply(t, registerCluster("eu-1", labels("before"), false))
	old := c.Leader()
	if old == nil {
		t.Fatal("no leader")
	}
	closed := time.Now()
	if err := old.Close(); err != nil {
		t.Fatalf("closing the leader: %v", err)
	}
	l := c.waitForNewLeader(t, old)
	if took := time.Since(closed); took > 3*time.Second {
		t.Fatalf("a new leader (%s) took %s after the old one closed; the heartbeat timeout is 4 s, so the leader-loss election did not run", l.cfg.NodeID, took)
	}
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
