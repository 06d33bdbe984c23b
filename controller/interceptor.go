package controller

import (
	"context"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// interceptor establishes the caller's identity for every call, applies the rate limits, and
// sends mutations to the leader and audits them there.
type interceptor struct{ s *Server }

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		s := i.s
		procedure := req.Spec().Procedure
		id, remote, node, err := s.identify(ctx, req.Peer(), req.Header())
		if err != nil {
			s.log.InfoContext(ctx, "call not authenticated", "procedure", procedure, "remote", remote, "err", err)
			return nil, err
		}
		if id.Unrestricted && id.Actor == "anonymous" && agentProcedures[procedure] {
			// Without authentication an agent names itself by its cluster.
			id.Actor = clip("agent:"+clusterOf(req.Any()), 128)
		}
		ctx = withIdentity(ctx, id)
		ctx = withRemote(ctx, remote)
		if err := s.limits.allow(procedure, id, req.Any()); err != nil {
			s.log.DebugContext(ctx, "rate limited", "procedure", procedure, "actor", id.Actor, "remote", remote)
			return nil, err
		}
		authErr := authorize(procedure, id, req.Any())
		m, ok := mutations[procedure]
		if !ok || connect.CodeOf(authErr) == connect.CodeUnauthenticated {
			if authErr != nil {
				return nil, authErr
			}
			return next(ctx, req)
		}
		// A mutation is executed, and audited (a refused one too), on the leader only.
		if req.Header().Get(forwardedHeader) == "" && !s.store.IsLeader() {
			lc, err := s.fwd.leader()
			if err != nil {
				return nil, err
			}
			return m.forward(ctx, lc, req, forwardHeaders(ctx, s.fwd))
		}
		c := &auditCall{
			procedure: strings.TrimPrefix(procedure, "/"), actor: id.Actor, remote: remote, node: node,
			resource: clip(m.resource(req.Any()), maxAuditResource),
		}
		ctx = context.WithValue(ctx, auditKey{}, c)
		var res connect.AnyResponse
		if err = authErr; err == nil {
			res, err = next(ctx, req)
		}
		s.finish(ctx, c, res, err)
		return res, err
	}
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		procedure := conn.Spec().Procedure
		id, remote, _, err := i.s.identify(ctx, conn.Peer(), conn.RequestHeader())
		if err != nil {
			return err
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
	return authorize(c.procedure, c.id, msg)
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
