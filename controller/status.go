package controller

import (
	"context"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/store"
)

type controllerService struct{ *Server }

var raftStates = map[string]ebbflowv1.RaftState{
	"Follower":  ebbflowv1.RaftState_RAFT_STATE_FOLLOWER,
	"Candidate": ebbflowv1.RaftState_RAFT_STATE_CANDIDATE,
	"Leader":    ebbflowv1.RaftState_RAFT_STATE_LEADER,
	"Shutdown":  ebbflowv1.RaftState_RAFT_STATE_SHUTDOWN,
}

func members(st store.Status) []*ebbflowv1.ControllerMember {
	out := make([]*ebbflowv1.ControllerMember, 0, len(st.Members))
	for _, m := range st.Members {
		out = append(out, &ebbflowv1.ControllerMember{
			NodeId: m.ID, RaftAddress: m.RaftAddress, ApiAddress: m.APIAddress, Voter: m.Voter, Leader: m.Leader,
		})
	}
	return out
}

// GetControllerStatus answers from this node: its Raft state and its view of the members.
func (s *controllerService) GetControllerStatus(context.Context, *connect.Request[ebbflowv1.GetControllerStatusRequest]) (*connect.Response[ebbflowv1.GetControllerStatusResponse], error) {
	st := s.store.Status()
	res := &ebbflowv1.GetControllerStatusResponse{
		NodeId: st.NodeID, State: raftStates[st.State], LeaderId: st.LeaderID, LeaderApiAddress: st.LeaderAPIAddress,
		Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, LastLogIndex: st.LastLogIndex,
		Members: members(st), Version: s.cfg.Version,
	}
	if s.store.IsLeader() {
		res.LiveAgents = int64(s.live.alive(s.now()))
	}
	return connect.NewResponse(res), nil
}

func (s *controllerService) AddVoter(ctx context.Context, req *connect.Request[ebbflowv1.AddVoterRequest]) (*connect.Response[ebbflowv1.AddVoterResponse], error) {
	m := req.Msg
	if err := s.store.AddVoter(ctx, m.GetNodeId(), m.GetRaftAddress(), m.GetApiAddress()); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "voter added", "node", m.GetNodeId(), "raft", m.GetRaftAddress(), "api", m.GetApiAddress(), "by", actorOf(ctx))
	return connect.NewResponse(&ebbflowv1.AddVoterResponse{Members: members(s.store.Status())}), nil
}

func (s *controllerService) RemoveServer(ctx context.Context, req *connect.Request[ebbflowv1.RemoveServerRequest]) (*connect.Response[ebbflowv1.RemoveServerResponse], error) {
	m := req.Msg
	if err := s.store.RemoveServer(ctx, m.GetNodeId()); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "server removed", "node", m.GetNodeId(), "by", actorOf(ctx))
	return connect.NewResponse(&ebbflowv1.RemoveServerResponse{Members: members(s.store.Status())}), nil
}
