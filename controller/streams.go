package controller

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/store"
)

// An agent's open assignment stream is its liveness: 10,000 agents then cost the group no
// unary call a second, where a heartbeat each every 10 s cost 1,000. This file keeps the
// node's registry of open streams and, on a follower, sends it to the leader.

// HTTP2Config is the HTTP/2 server setting the API is served with. An open assignment stream
// counts as an agent's liveness, so a peer that vanished without closing its connection (a
// partition, a powered-off host) must end its streams: agents ping every 20 s while their
// stream is open (agent.Dial), and a connection the server has received nothing on for 25 s
// gets a ping of its own, closed when no answer comes within 10 s.
func HTTP2Config() *http.HTTP2Config {
	return &http.HTTP2Config{SendPingTimeout: 25 * time.Second, PingTimeout: 10 * time.Second}
}

// streamSet counts the assignment streams open on this node, by cluster.
type streamSet struct {
	mu      sync.Mutex
	open    map[string]int
	version uint64 // bumped on every change, so a follower sends only a changed set early
}

func newStreamSet() *streamSet { return &streamSet{open: make(map[string]int)} }

// add records a stream of cluster opening; the returned func records it closing.
func (s *streamSet) add(cluster string) (done func()) {
	s.mu.Lock()
	s.open[cluster]++
	s.version++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			if s.open[cluster]--; s.open[cluster] <= 0 {
				delete(s.open, cluster)
			}
			s.version++
			s.mu.Unlock()
		})
	}
}

func (s *streamSet) has(cluster string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[cluster] > 0
}

func (s *streamSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

func (s *streamSet) each(f func(string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.open {
		f(c)
	}
}

func (s *streamSet) currentVersion() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// snapshot is the clusters with a stream open and the set's version.
func (s *streamSet) snapshot() ([]string, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.open))
	for c := range s.open {
		out = append(out, c)
	}
	return out, s.version
}

// streamsPushInterval is how often a follower checks whether its set changed (or half the
// heartbeat interval, when shorter): a stream opened on a follower counts on the leader within
// about this long.
const streamsPushInterval = time.Second

// pushStreams runs on every node until ctx ends. While this node follows, it sends its set of
// open agent streams to the leader when the set changed, when the leader changed, and at least
// every heartbeat interval (the leader counts a set for three). After a leader change it sends
// on a few ticks in a row: a new leader forgets every set when it takes over, which may be
// just after the first one arrived (the same node winning again changes no address).
func (s *Server) pushStreams(ctx context.Context) {
	tick := time.NewTicker(min(streamsPushInterval, s.cfg.HeartbeatInterval/2))
	defer tick.Stop()
	var (
		sentVersion uint64
		sentTo      string
		sentAt      time.Time
		moved       <-chan struct{} // closed when this node next sees the leader change
		again       int             // ticks left on which the set is sent regardless
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s.store.IsLeader() {
			sentTo, moved = "", nil
			continue
		}
		if moved != nil {
			select {
			case <-moved:
				moved, again = nil, pushesAfterLeaderChange
			default:
			}
		}
		changed := s.store.LeaderChanged()
		leader, addr, err := s.fwd.leaderController(ctx)
		if err != nil {
			continue
		}
		now := s.now()
		if again == 0 && addr == sentTo && s.local.currentVersion() == sentVersion && now.Sub(sentAt) < s.cfg.HeartbeatInterval {
			continue // nothing new to send: no list built
		}
		clusters, version := s.local.snapshot()
		cctx, cancel := context.WithTimeout(ctx, s.cfg.HeartbeatInterval)
		// Sent as this node itself (its client certificate), not on anyone's behalf.
		req := connect.NewRequest(&ebbflowv1.ReportAgentStreamsRequest{NodeId: s.cfg.NodeID, Clusters: clusters})
		_, err = leader.ReportAgentStreams(cctx, req)
		cancel()
		if err != nil {
			s.log.Warn("sending the agent streams to the leader", "leader", addr, "streams", len(clusters), "err", err)
			continue
		}
		if addr != sentTo {
			again = pushesAfterLeaderChange - 1
		} else if again > 0 {
			again--
		}
		sentTo, sentVersion, sentAt, moved = addr, version, now, changed
	}
}

// pushesAfterLeaderChange is how many ticks in a row a follower sends its streams after it
// sees a new leader (or the same one again).
const pushesAfterLeaderChange = 3

// ReportAgentStreams records a follower's open agent streams on the leader.
func (s *controllerService) ReportAgentStreams(ctx context.Context, req *connect.Request[ebbflowv1.ReportAgentStreamsRequest]) (*connect.Response[ebbflowv1.ReportAgentStreamsResponse], error) {
	m := req.Msg
	if id := identityOf(ctx); !id.Unrestricted && id.Name != m.GetNodeId() {
		return nil, connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("node %q may not report the streams of node %q", id.Name, m.GetNodeId()))
	}
	if !s.store.IsLeader() {
		// Not forwarded: the caller sends to whichever node it believes leads, and again
		// within a second when that changes.
		return nil, toConnectError(store.ErrNotLeader)
	}
	s.live.streams(m.GetNodeId(), m.GetClusters(), s.now())
	return connect.NewResponse(&ebbflowv1.ReportAgentStreamsResponse{}), nil
}
