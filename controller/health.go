package controller

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
)

// notReady says why this node cannot serve the API now, or "" when it can: it sees no leader
// (an election, or a node cut off from its group), or it has not applied everything it knows
// is committed (a restart replaying its log). /readyz and gRPC health both answer from it, so a
// load balancer and a Kubernetes probe see the same node state.
func (s *Server) notReady() string {
	st := s.store.Status()
	switch {
	case st.LeaderID == "":
		return "no leader"
	case st.AppliedIndex < st.CommitIndex:
		return fmt.Sprintf("catching up (applied %d of %d)", st.AppliedIndex, st.CommitIndex)
	}
	return ""
}

// ready serves /readyz: 200 "ready", or 503 with the reason.
func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	if why := s.notReady(); why != "" {
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// healthChecker answers grpc.health.v1.Health for the whole server ("") and each service it
// serves: SERVING only while notReady says the node is ready, NOT_SERVING otherwise; an unknown
// service is NotFound, as the protocol asks.
func (s *Server) healthChecker() grpchealth.Checker { return healthChecker{s} }

type healthChecker struct{ s *Server }

func (h healthChecker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && !slices.Contains(h.s.services, req.Service) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", shown(req.Service)))
	}
	if h.s.notReady() != "" {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}
