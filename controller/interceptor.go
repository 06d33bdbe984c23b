package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/store"
)

// interceptor is the one chain every call of the API walks, driven by the procedure table:
// authenticate, rate-limit, authorise, validate, forward to the leader when the call must run
// there, audit a mutation (on the leader), and map the handler's errors onto Connect codes.
// Handlers only read, decide and apply.
type interceptor struct{ s *Server }

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		s := i.s
		name := req.Spec().Procedure
		p := procedures[name]
		id, remote, node, err := s.identify(ctx, req.Peer(), req.Header())
		if err != nil {
			return nil, s.notAuthenticated(ctx, name, remote, err)
		}
		if id.Unrestricted && id.Actor == anonymous && p.cluster != nil {
			// Without authentication an agent names itself by its cluster.
			id.Actor = clip("agent:"+p.cluster(req.Any()), 128)
		}
		ctx = withRemote(withIdentity(ctx, id), remote)
		if err := s.limits.allow(p, id, remote, req.Any()); err != nil {
			s.log.DebugContext(ctx, "rate limited", "procedure", name, "actor", id.Actor, "remote", remote)
			return nil, err
		}
		release := func() {}
		if p.limit == limitCluster {
			// An agent's write waits for a slot on this node (admission.go); a call this node
			// forwards gives its slot back while the leader works on it.
			if release, err = s.agentWrites.enter(ctx, 0); err != nil {
				return nil, connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("waiting for this node to admit the call: %w", err))
			}
			defer release()
		}
		authErr := authorize(name, id, req.Any())
		if p.resource == nil || connect.CodeOf(authErr) == connect.CodeUnauthenticated {
			if authErr != nil {
				return nil, authErr
			}
			if err := validateRequest(req.Any()); err != nil {
				return nil, err
			}
			return s.run(ctx, p, req, next, release)
		}
		// A mutation is validated, executed and audited (a refused one too) on the leader.
		if s.mustForward(p, req) {
			release()
			return s.fwd.forward(ctx, req, forwardHeaders(ctx, s.fwd))
		}
		c := &auditCall{
			procedure: strings.TrimPrefix(name, "/"), actor: id.Actor, remote: remote, node: node,
			resource: clip(p.resource(req.Any()), maxAuditResource),
		}
		ctx = context.WithValue(ctx, auditKey{}, c)
		var res connect.AnyResponse
		if err = authErr; err == nil {
			if err = validateRequest(req.Any()); err == nil {
				res, err = s.run(ctx, p, req, next, release)
			}
		}
		s.finish(ctx, c, res, err)
		return res, err
	}
}

// run calls the handler where the procedure table says the call runs: here, or, when it must
// run on the leader and this node is not (or stopped being during the call), on the leader.
// release gives back the call's admission slot before it is forwarded.
func (s *Server) run(ctx context.Context, p procedure, req connect.AnyRequest, next connect.UnaryFunc, release func()) (connect.AnyResponse, error) {
	if s.mustForward(p, req) {
		release()
		return s.fwd.forward(ctx, req, forwardHeaders(ctx, s.fwd))
	}
	res, err := next(ctx, req)
	if err == nil {
		return res, nil
	}
	if p.runs != anyNode && errors.Is(err, store.ErrNotLeader) {
		release()
		return s.fwd.forward(ctx, req, forwardHeaders(ctx, s.fwd))
	}
	return nil, toConnectError(err)
}

// mustForward says whether req must go to the leader before anything runs here. A call another
// node forwarded runs here whatever this node's view (forward refuses to forward it again).
func (s *Server) mustForward(p procedure, req connect.AnyRequest) bool {
	if req.Header().Get(forwardedHeader) != "" || s.store.IsLeader() {
		return false
	}
	switch p.runs {
	case onLeader:
		return true
	case atReadLevel:
		r, ok := req.Any().(interface{ GetRead() *ebbflowv1.ReadOptions })
		return !ok || r.GetRead().GetConsistency() != ebbflowv1.Consistency_CONSISTENCY_STALE
	}
	return false
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		procedure := conn.Spec().Procedure
		id, remote, _, err := i.s.identify(ctx, conn.Peer(), conn.RequestHeader())
		if err != nil {
			return i.s.notAuthenticated(ctx, procedure, remote, err)
		}
		if err := authorize(procedure, id, nil); err != nil {
			return err
		}
		return next(withRemote(withIdentity(ctx, id), remote), authorizedConn{conn, procedure, id})
	}
}

// authorizedConn checks a stream's request message as it arrives (an agent may watch only
// its own cluster's assignment).
type authorizedConn struct {
	connect.StreamingHandlerConn
	procedure string
	id        Identity
}

func (c authorizedConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	if err := authorize(c.procedure, c.id, msg); err != nil {
		return err
	}
	return validateRequest(msg)
}

// notAuthenticated answers a call whose credentials failed: the failure counts against its
// source address (past the budget the answer is ResourceExhausted), and it is logged for the
// first failures of a source only, so a flood of bad tokens neither hides from the limiter nor
// floods the log.
func (s *Server) notAuthenticated(ctx context.Context, procedure, remote string, err error) error {
	answer, log := s.limits.failedAuth(remote, err)
	if log {
		s.log.InfoContext(ctx, "call not authenticated", "procedure", procedure, "remote", remote, "err", err)
	}
	return answer
}

// identify establishes the caller: the Authenticator's answer, or, for a call another node of
// the group forwarded, the identity that node established (forwardedIdentityHeader). It also
// returns the caller's address and the node that received the call from the caller.
func (s *Server) identify(ctx context.Context, peer connect.Peer, h http.Header) (id Identity, remote, node string, err error) {
	remote, node = peer.Addr, s.cfg.NodeID
	id, err = s.auth.Identify(ctx, peer, h)
	if err != nil {
		return Identity{}, remote, node, err
	}
	if !id.Peer {
		// forwardedHeader too: believed, it would keep a mutation on this follower, which
		// cannot write the call's audit record.
		h.Del(forwardedHeader)
		h.Del(forwardedForHeader)
		h.Del(forwardedIdentityHeader)
		return id, remote, node, nil
	}
	if v := h.Get(forwardedForHeader); v != "" {
		remote = clip(v, 256)
	}
	if v := h.Get(forwardedHeader); v != "" {
		node = clip(v, 64)
	}
	if v := h.Get(forwardedIdentityHeader); v != "" {
		fid, err := decodeIdentity(v)
		if err != nil {
			return Identity{}, remote, node, connect.NewError(connect.CodeInvalidArgument, err)
		}
		fid.Peer, fid.Unrestricted = true, id.Unrestricted
		id = fid
	}
	return id, remote, node, nil
}

type remoteKey struct{}

func withRemote(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, remoteKey{}, addr)
}

// remoteOf is the caller's address: the original caller's for a call a node forwarded.
func remoteOf(ctx context.Context) string {
	s, _ := ctx.Value(remoteKey{}).(string)
	return s
}

// forwardHeaders are the headers of a call this node forwards to the leader: the caller's
// identity headers, this node's name, and the caller's address.
func forwardHeaders(ctx context.Context, f *forwarder) http.Header {
	h := http.Header{}
	h.Set(forwardedHeader, f.nodeID)
	h.Set(forwardedIdentityHeader, encodeIdentity(identityOf(ctx)))
	if r := remoteOf(ctx); r != "" {
		h.Set(forwardedForHeader, r)
	}
	return h
}
