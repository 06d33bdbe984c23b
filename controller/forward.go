package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
	"github.com/ebbflow/ebbflow/store"
)

// forwardedHeader marks a request one controller forwarded to another, so a request is
// forwarded at most once (a stale leader view answers Unavailable instead of looping).
const forwardedHeader = "Ebbflow-Forwarded-By"

// PeerClient is the HTTP client a node calls other nodes' APIs with (forwarding to the leader,
// joining): HTTP/2 only, over TLS with tlsConfig, or as h2c (prior knowledge) when tlsConfig is
// nil. Every call to a peer then shares one multiplexed connection; an HTTP/1.1 client would
// open a connection per concurrent call and close all but two when they end, which under a
// burst of forwarded agent reports costs more CPU than the reports.
func PeerClient(tlsConfig *tls.Config) *http.Client {
	var p http.Protocols
	if tlsConfig != nil {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	tr := &http.Transport{
		Protocols: &p, TLSClientConfig: tlsConfig, HTTP2: HTTP2Config(),
		TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: 90 * time.Second,
		Proxy: nil, // peers are reached directly, never through a proxy from the environment
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}
}

// leaderClients are Connect clients for one leader's API.
type leaderClients struct {
	addr       string
	profiles   ebbflowv1connect.ProfileServiceClient
	clusters   ebbflowv1connect.ClusterServiceClient
	rollouts   ebbflowv1connect.RolloutServiceClient
	agents     ebbflowv1connect.AgentServiceClient
	controller ebbflowv1connect.ControllerServiceClient
	audit      ebbflowv1connect.AuditServiceClient
	access     ebbflowv1connect.AccessServiceClient
}

// forwarder sends leader-only calls that reached a follower on to the leader.
type forwarder struct {
	nodeID  string
	members Membership
	http    connect.HTTPClient
	scheme  string
	opts    []connect.ClientOption

	mu      sync.Mutex
	current *leaderClients
}

func (f *forwarder) leader() (*leaderClients, error) {
	addr, err := f.members.LeaderAPIAddress()
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("no leader to forward to: %w", err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current != nil && f.current.addr == addr {
		return f.current, nil
	}
	base := f.scheme + "://" + addr
	f.current = &leaderClients{
		addr:       addr,
		profiles:   ebbflowv1connect.NewProfileServiceClient(f.http, base, f.opts...),
		clusters:   ebbflowv1connect.NewClusterServiceClient(f.http, base, f.opts...),
		rollouts:   ebbflowv1connect.NewRolloutServiceClient(f.http, base, f.opts...),
		agents:     ebbflowv1connect.NewAgentServiceClient(f.http, base, f.opts...),
		controller: ebbflowv1connect.NewControllerServiceClient(f.http, base, f.opts...),
		audit:      ebbflowv1connect.NewAuditServiceClient(f.http, base, f.opts...),
		access:     ebbflowv1connect.NewAccessServiceClient(f.http, base, f.opts...),
	}
	return f.current, nil
}

// onLeader runs local; if this node is not the leader it forwards req to the leader with
// remote instead. Errors from local are mapped to Connect codes.
func onLeader[Req, Res any](
	ctx context.Context,
	f *forwarder,
	req *connect.Request[Req],
	remote func(*leaderClients) func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error),
	local func(context.Context) (*Res, error),
) (*connect.Response[Res], error) {
	res, err := local(ctx)
	if err == nil {
		return connect.NewResponse(res), nil
	}
	if !errors.Is(err, store.ErrNotLeader) {
		return nil, toConnectError(err)
	}
	if by := req.Header().Get(forwardedHeader); by != "" {
		addr, _ := f.members.LeaderAPIAddress()
		return nil, connect.NewError(connect.CodeUnavailable,
			fmt.Errorf("forwarded by %s but this node is not the leader either (leader API address %q); retry", by, addr))
	}
	lc, err := f.leader()
	if err != nil {
		return nil, err
	}
	fwd := connect.NewRequest(req.Msg)
	for k, v := range forwardHeaders(ctx, f) {
		fwd.Header()[k] = v
	}
	markForwarded(ctx)
	return remote(lc)(ctx, fwd)
}

// readYourWrites makes a stream start from a state that holds every write acknowledged before
// the call, on any node: the leader does a linearizable read; a follower asks the leader for its
// commit index and waits until it has applied that far. When no leader answers within a few
// seconds the stream starts from the local replica as it is, and catches up as it follows.
func (s *Server) readYourWrites(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s.store.IsLeader() {
		if err := s.store.View(ctx, store.Linearizable, func(*store.Tx) error { return nil }); err == nil {
			return
		}
	}
	lc, err := s.fwd.leader()
	if err != nil {
		return
	}
	st, err := lc.controller.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
	if err != nil {
		s.log.Debug("no leader commit index for a consistent stream start; serving the local replica", "err", err)
		return
	}
	if err := s.store.CatchUp(ctx, st.Msg.GetCommitIndex()); err != nil {
		s.log.Debug("catching up to the leader's commit index", "index", st.Msg.GetCommitIndex(), "err", err)
	}
}
