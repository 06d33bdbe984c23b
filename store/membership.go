package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
)

// Status is this node's view of Raft and its members.
type Status struct {
	NodeID            string
	State             string // "Leader", "Follower", "Candidate" or "Shutdown"
	LeaderID          string
	LeaderRaftAddress string
	LeaderAPIAddress  string
	Term              uint64
	CommitIndex       uint64
	// AppliedIndex is the last index Raft handed to the state machine.
	AppliedIndex uint64
	LastLogIndex uint64
	Members      []Member
}

// Member is one server of the Raft configuration.
type Member struct {
	ID          string
	RaftAddress string
	APIAddress  string
	Voter       bool
	Leader      bool
}

// leadership is what this node knows of its own leadership.
type leadership struct {
	mu     sync.Mutex
	leader bool
	gen    uint64 // number of transitions
	// readyTerm is the term in which this node, as leader, saw a barrier applied: from then
	// on its state holds everything committed before it led.
	readyTerm uint64
	changed   chan struct{} // closed and replaced on every change of the above
}

func (s *Store) leaderState() (leader bool, gen, readyTerm uint64, changed <-chan struct{}) {
	s.lead.mu.Lock()
	defer s.lead.mu.Unlock()
	return s.lead.leader, s.lead.gen, s.lead.readyTerm, s.lead.changed
}

func (s *Store) updateLeadership(fn func(l *leadership)) {
	s.lead.mu.Lock()
	defer s.lead.mu.Unlock()
	fn(&s.lead)
	close(s.lead.changed)
	s.lead.changed = make(chan struct{})
}

func (s *Store) setLeadership(leader bool) {
	s.updateLeadership(func(l *leadership) {
		if l.leader != leader {
			l.leader = leader
			l.gen++
		}
		if !leader {
			l.readyTerm = 0
		}
	})
}

// followLeadership consumes Raft's leadership notifications until Close.
func (s *Store) followLeadership(notify <-chan bool) {
	for {
		select {
		case leader := <-notify:
			s.log.Info("raft leadership changed", "node", s.cfg.NodeID, "leader", leader)
			s.setLeadership(leader)
			if leader {
				s.bg.Go(s.establish)
			}
		case <-s.stop:
			return
		}
	}
}

// establish runs when this node becomes leader: it waits for a barrier so the state holds
// everything earlier leaders committed, marks linearizable reads as servable in this term,
// then records this node's API address if the stored one differs.
func (s *Store) establish() {
	term := s.raft.CurrentTerm()
	for {
		// A barrier handed to the FSM goroutine is never answered if Raft shuts down
		// meanwhile: wait for it or for Close, never for it alone.
		errc := make(chan error, 1)
		f := s.raft.Barrier(s.cfg.ApplyTimeout)
		go func() { errc <- f.Error() }()
		var err error
		select {
		case err = <-errc:
		case <-s.stop:
			return
		}
		if err == nil {
			break
		}
		if s.raft.State() != raft.Leader || s.raft.CurrentTerm() != term || s.closed() {
			return
		}
		s.log.Warn("barrier after gaining leadership failed; retrying", "err", err)
		select {
		case <-time.After(100 * time.Millisecond):
		case <-s.stop:
			return
		}
	}
	if s.raft.State() != raft.Leader || s.raft.CurrentTerm() != term {
		return
	}
	s.updateLeadership(func(l *leadership) { l.readyTerm = max(l.readyTerm, term) })
	if err := s.recordAPIAddress(s.cfg.NodeID, s.cfg.APIAddress); err != nil {
		s.log.Error("recording this node's API address", "err", err, "api", s.cfg.APIAddress)
	}
}

// recordAPIAddress applies PutNodeMeta unless the stored address is already addr.
func (s *Store) recordAPIAddress(nodeID, addr string) error {
	if addr == "" {
		return nil
	}
	if cur, ok := s.nodeAPIAddress(nodeID); ok && cur == addr {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
	defer cancel()
	_, err := s.Apply(ctx, &storev1.Command{Actor: "controller", Body: &storev1.Command_PutNodeMeta{
		PutNodeMeta: &storev1.PutNodeMeta{NodeId: nodeID, ApiAddress: addr},
	}})
	return err
}

func (s *Store) nodeAPIAddress(nodeID string) (addr string, ok bool) {
	_ = s.fsm.view(func(tx *bbolt.Tx) error {
		addr, ok = (&Tx{tx: tx}).NodeAPIAddress(nodeID)
		return nil
	})
	return addr, ok
}

// waitEstablished waits until this node leads and has established the current term, or
// returns ErrNotLeader.
func (s *Store) waitEstablished(ctx context.Context) error {
	for {
		_, _, ready, changed := s.leaderState()
		if s.raft.State() != raft.Leader {
			return ErrNotLeader
		}
		if ready != 0 && ready == s.raft.CurrentTerm() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stop:
			return ErrClosed
		}
	}
}

// IsLeader reports whether this node is the Raft leader.
func (s *Store) IsLeader() bool {
	return s.raft.State() == raft.Leader
}

// LeaderID returns the current leader's node id, or "" if there is none known.
func (s *Store) LeaderID() string {
	_, id := s.raft.LeaderWithID()
	return string(id)
}

// LeaderAPIAddress returns the API address the current leader recorded. It fails with an
// ErrNotLeader-wrapping error when there is no leader, ErrNotFound when the leader's address
// is not known (yet).
func (s *Store) LeaderAPIAddress() (string, error) {
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return "", fmt.Errorf("no leader: %w", ErrNotLeader)
	}
	addr, ok := s.nodeAPIAddress(string(id))
	if !ok {
		return "", fmt.Errorf("API address of leader %q: %w", id, ErrNotFound)
	}
	return addr, nil
}

// LeaderChanged returns a channel closed when this node next sees the leader change (a new
// leader, or none): a call it forwarded to the old one can stop waiting for an answer that
// may never come.
func (s *Store) LeaderChanged() <-chan struct{} {
	s.leaderSeen.mu.Lock()
	defer s.leaderSeen.mu.Unlock()
	return s.leaderSeen.changed
}

// observeLeader closes and replaces leaderSeen.changed whenever Raft reports a leader change,
// until Close.
func (s *Store) observeLeader() {
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(obs)
	defer s.raft.DeregisterObserver(obs)
	for {
		select {
		case <-ch:
			s.leaderSeen.mu.Lock()
			close(s.leaderSeen.changed)
			s.leaderSeen.changed = make(chan struct{})
			s.leaderSeen.mu.Unlock()
		case <-s.stop:
			return
		}
	}
}

// WaitForLeader waits until some node is known as leader.
func (s *Store) WaitForLeader(ctx context.Context) error {
	return s.pollUntil(ctx, 20*time.Millisecond, func() bool { return s.LeaderID() != "" })
}

// WatchLeadership reports whether this node is the leader: the current state first, then
// every change, until ctx ends or the store closes (then the channel is closed). A reader
// that falls behind gets the latest state, preceded by the opposite one if leadership was
// lost and regained meanwhile, so no change of term goes unnoticed.
func (s *Store) WatchLeadership(ctx context.Context) <-chan bool {
	out := make(chan bool)
	go func() {
		defer close(out)
		var (
			sent, sentAny bool
			sentGen       uint64
		)
		send := func(v bool) bool {
			select {
			case out <- v:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			leader, gen, _, changed := s.leaderState()
			if !sentAny || gen != sentGen {
				if sentAny && leader == sent && !send(!leader) {
					return
				}
				if !send(leader) {
					return
				}
				sent, sentAny, sentGen = leader, true, gen
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			case <-s.done:
				// Close has set leadership to false; deliver that, then end.
				if leader, _, _, _ := s.leaderState(); leader != sent {
					send(leader)
				}
				return
			}
		}
	}()
	return out
}

// AddVoter adds a voting member (leader only), and records its API address. Adding a
// member that is already a voter at that address only updates the API address.
func (s *Store) AddVoter(ctx context.Context, id, raftAddr, apiAddr string) error {
	if id == "" || raftAddr == "" {
		return fmt.Errorf("add voter: node id and raft address are required: %w", ErrInvalid)
	}
	if !s.IsLeader() {
		return ErrNotLeader
	}
	servers, err := s.servers(ctx)
	if err != nil {
		return err
	}
	member := false
	for _, srv := range servers {
		switch {
		case srv.ID == raft.ServerID(id):
			member = srv.Address == raft.ServerAddress(raftAddr) && srv.Suffrage == raft.Voter
		case srv.Address == raft.ServerAddress(raftAddr):
			return fmt.Errorf("raft address %s belongs to node %q: %w", raftAddr, srv.ID, ErrConflict)
		}
	}
	if !member {
		timeout, err := s.timeout(ctx)
		if err != nil {
			return err
		}
		if err := s.wait(ctx, s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, timeout)); err != nil {
			return fmt.Errorf("add voter %q: %w", id, err)
		}
	}
	if apiAddr == "" {
		return nil
	}
	if cur, ok := s.nodeAPIAddress(id); ok && cur == apiAddr {
		return nil
	}
	_, err = s.Apply(ctx, &storev1.Command{Actor: "controller", Body: &storev1.Command_PutNodeMeta{
		PutNodeMeta: &storev1.PutNodeMeta{NodeId: id, ApiAddress: apiAddr},
	}})
	return err
}

// RemoveServer removes a member (leader only) and forgets its API address. A leader asked to
// remove itself first hands leadership to another voter and returns ErrNotLeader (nothing
// proposed): the call then runs on the new leader (the API forwards it), which removes this
// node as a follower, so the group does not wait out an election timeout. (Removing itself, a
// leader commits the change and stops leading without a successor, and the group waits for an
// election: 1-5 s in the fault runs.) Should the hand-over fail, it removes itself.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	servers, err := s.servers(ctx)
	if err != nil {
		return err
	}
	found, others := false, 0
	for _, srv := range servers {
		found = found || srv.ID == raft.ServerID(id)
		if srv.ID != raft.ServerID(s.cfg.NodeID) && srv.Suffrage == raft.Voter {
			others++
		}
	}
	if !found {
		return fmt.Errorf("raft member %q: %w", id, ErrNotFound)
	}
	if id == s.cfg.NodeID && others > 0 {
		err := s.wait(ctx, s.raft.LeadershipTransfer())
		if err == nil {
			s.log.Info("leadership handed over before removing this node", "node", id)
			return ErrNotLeader
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Warn("leadership hand-over failed; removing this node as leader", "node", id, "err", err)
	}
	timeout, err := s.timeout(ctx)
	if err != nil {
		return err
	}
	if err := s.wait(ctx, s.raft.RemoveServer(raft.ServerID(id), 0, timeout)); err != nil {
		return fmt.Errorf("remove server %q: %w", id, err)
	}
	if id == s.cfg.NodeID {
		return nil // no longer the leader
	}
	if _, ok := s.nodeAPIAddress(id); ok {
		_, err := s.Apply(ctx, &storev1.Command{Actor: "controller", Body: &storev1.Command_PutNodeMeta{
			PutNodeMeta: &storev1.PutNodeMeta{NodeId: id},
		}})
		if err != nil {
			s.log.Warn("forgetting a removed node's API address", "node", id, "err", err)
		}
	}
	return nil
}

// servers returns the latest Raft configuration.
func (s *Store) servers(ctx context.Context) ([]raft.Server, error) {
	f := s.raft.GetConfiguration()
	if err := s.wait(ctx, f); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// Status reports this node's view of Raft.
func (s *Store) Status() Status {
	addr, id := s.raft.LeaderWithID()
	st := Status{
		NodeID:            s.cfg.NodeID,
		State:             s.raft.State().String(),
		LeaderID:          string(id),
		LeaderRaftAddress: string(addr),
		Term:              s.raft.CurrentTerm(),
		CommitIndex:       s.raft.CommitIndex(),
		AppliedIndex:      s.raft.AppliedIndex(),
		LastLogIndex:      s.raft.LastIndex(),
	}
	if s.closed() {
		return st
	}
	var servers []raft.Server
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		servers = f.Configuration().Servers
	}
	_ = s.fsm.view(func(btx *bbolt.Tx) error {
		tx := &Tx{tx: btx}
		if id != "" {
			st.LeaderAPIAddress, _ = tx.NodeAPIAddress(string(id))
		}
		for _, srv := range servers {
			api, _ := tx.NodeAPIAddress(string(srv.ID))
			st.Members = append(st.Members, Member{
				ID: string(srv.ID), RaftAddress: string(srv.Address), APIAddress: api,
				Voter: srv.Suffrage == raft.Voter, Leader: srv.ID == id,
			})
		}
		return nil
	})
	return st
}
