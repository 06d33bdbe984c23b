package controller

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
	"github.com/ebbflow/ebbflow/store"
)

// Defaults of the audit log's retention.
const (
	DefaultAuditMaxRecords = 100000
	DefaultAuditMaxAge     = 90 * 24 * time.Hour
)

// Bounds of what an audit record keeps of a caller's input.
const (
	maxAuditResource = 256
	maxAuditMessage  = 1024
)

// The audit trail. Every mutating call of the API (the mutations table) is executed on the
// leader and recorded once there, through Raft:
//
//   - a call that changes state carries its record on the same command (storev1.Command.audit),
//     so the FSM stores it in the same bbolt transaction as the change, with the result the FSM
//     decided: an acknowledged change never lacks its record (auditingStore.Apply);
//   - a call refused before Raft (validation, not found, a conflict decided on the leader) or
//     answered without a state change gets a RecordAudit command of its own (finish).
//
// A mutation that reaches a follower is forwarded to the leader before its handler runs, with
// the caller's address in forwardedForHeader, so the leader records it with the original
// address and the follower records nothing.
//
// Not audited: heartbeats (no state change, never in Raft); an agent registration that
// changes nothing (a fleet reconnecting after a leader change costs reads, not log entries); calls refused by the rate limiter
// (recording a flood would make the flood write through Raft; they are logged and counted);
// and the leader's own engine decisions (actor "controller"): each is already a rollout event
// in the rollout's history, written with the decision, and follows from audited inputs
// (a create, a control, an agent report), so a second record of it would add nothing.

// auditCall is what the interceptor knows of one mutating call while its handler runs.
type auditCall struct {
	procedure, actor, remote, node string

	mu       sync.Mutex
	resource string
	// written: the record went to the FSM with the change. forwarded: the call went on to the
	// leader, which records it. uncertain: a command carrying the record was proposed but its
	// fate is unknown (leadership lost, timeout), so a second record could be a duplicate.
	// unchanged: the call was answered from the stored state and changed nothing (an agent
	// re-registering as it was), so it is no mutation and is not recorded. batched: an agent
	// report handed to the report batches, which write its record in the batch's entry when
	// they decide it (also when the caller has gone by then); a report the batches never
	// decide (leadership lost first) changed nothing and is not recorded.
	written, forwarded, uncertain, unchanged, batched bool
}

type auditKey struct{}

func auditCallOf(ctx context.Context) *auditCall {
	c, _ := ctx.Value(auditKey{}).(*auditCall)
	return c
}

// setAuditResource names the resource once a handler knows it (a generated rollout id).
func setAuditResource(ctx context.Context, resource string) {
	if c := auditCallOf(ctx); c != nil {
		c.mu.Lock()
		c.resource = clip(resource, maxAuditResource)
		c.mu.Unlock()
	}
}

// markUnchanged notes that a call succeeded without changing anything.
func markUnchanged(ctx context.Context) {
	if c := auditCallOf(ctx); c != nil {
		c.mu.Lock()
		c.unchanged = true
		c.mu.Unlock()
	}
}

func markForwarded(ctx context.Context) {
	if c := auditCallOf(ctx); c != nil {
		c.mu.Lock()
		c.forwarded = true
		c.mu.Unlock()
	}
}

func (s *Server) auditEntry(c *auditCall) *storev1.AuditEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &storev1.AuditEntry{
		Actor: c.actor, RemoteAddress: c.remote, Procedure: c.procedure, Resource: c.resource, NodeId: c.node,
		MaxRecords: uint64(s.cfg.AuditMaxRecords),
	}
	if s.cfg.AuditMaxAge > 0 {
		e.MaxAge = durationpb.New(s.cfg.AuditMaxAge)
	}
	return e
}

// auditingStore attaches the call's audit entry to the first command the call proposes.
type auditingStore struct {
	Store
	s *Server
}

func (a auditingStore) Apply(ctx context.Context, cmd *storev1.Command) (proto.Message, error) {
	if cmd.GetTime() == nil {
		cmd.Time = timestamppb.New(a.s.now()) // the leader's clock; the FSM never reads its own
	}
	c := auditCallOf(ctx)
	if c == nil {
		return a.Store.Apply(ctx, cmd)
	}
	c.mu.Lock()
	attach := !c.written && !c.uncertain
	c.mu.Unlock()
	if !attach {
		return a.Store.Apply(ctx, cmd)
	}
	cmd.Audit = a.s.auditEntry(c)
	out, err := a.Store.Apply(ctx, cmd)
	c.mu.Lock()
	switch {
	case err == nil || decidedByFSM(err):
		c.written = true
	case err == store.ErrNotLeader: // the bare sentinel: refused before proposing, so not written
	default:
		c.uncertain = true
	}
	c.mu.Unlock()
	return out, err
}

// decidedByFSM reports whether err is a result the FSM decided (so the command, and its audit
// record, were applied).
func decidedByFSM(err error) bool {
	for _, e := range []error{store.ErrNotFound, store.ErrAlreadyExists, store.ErrConflict, store.ErrInUse, store.ErrInvalid} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// accepted is the shape of the agent reports' responses.
type accepted interface {
	GetAccepted() bool
	GetReason() string
}

// finish records a call that did not write its record with a change.
func (s *Server) finish(ctx context.Context, c *auditCall, res connect.AnyResponse, err error) {
	c.mu.Lock()
	done := c.written || c.forwarded || c.uncertain || c.batched || (c.unchanged && err == nil)
	c.mu.Unlock()
	if done {
		return
	}
	e := s.auditEntry(c)
	e.Code = store.AuditOK
	if err != nil {
		e.Code = connect.CodeOf(err).String()
		var ce *connect.Error
		if errors.As(err, &ce) {
			e.Message = clip(ce.Message(), maxAuditMessage)
		} else {
			e.Message = clip(err.Error(), maxAuditMessage)
		}
	} else if a, ok := res.Any().(accepted); ok && !a.GetAccepted() {
		e.Message = clip("not accepted: "+a.GetReason(), maxAuditMessage)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, aerr := s.raw.Apply(wctx, &storev1.Command{Time: timestamppb.New(s.now()), Actor: c.actor, Audit: e, Body: &storev1.Command_RecordAudit{RecordAudit: &storev1.RecordAudit{}}}); aerr != nil {
		s.log.WarnContext(ctx, "audit record not written", "procedure", c.procedure, "resource", e.GetResource(),
			"actor", c.actor, "code", e.GetCode(), "err", aerr)
	}
}

// mutation is one mutating procedure: how to name its resource and how to forward it.
type mutation struct {
	resource func(msg any) string
	forward  func(ctx context.Context, lc *leaderClients, req connect.AnyRequest, h http.Header) (connect.AnyResponse, error)
}

func mut[Req, Res any](pick func(*leaderClients) func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), resource func(*Req) string) mutation {
	return mutation{
		resource: func(msg any) string {
			if m, ok := msg.(*Req); ok && m != nil {
				return resource(m)
			}
			return ""
		},
		forward: func(ctx context.Context, lc *leaderClients, req connect.AnyRequest, h http.Header) (connect.AnyResponse, error) {
			fwd := connect.NewRequest(req.Any().(*Req))
			for k, v := range h {
				fwd.Header()[k] = v
			}
			return pick(lc)(ctx, fwd)
		},
	}
}

func named(kind string) func(name string) string {
	return func(name string) string { return kind + "/" + name }
}

var (
	profileRes = named("profile")
	clusterRes = named("cluster")
	rolloutRes = named("rollout")
	nodeRes    = named("node")
)

// mutations lists every mutating procedure of the API. Reads, streams, heartbeats and
// validations are not in it.
var mutations = map[string]mutation{
	ebbflowv1connect.ProfileServiceCreateProfileProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.CreateProfileRequest]) (*connect.Response[ebbflowv1.CreateProfileResponse], error) {
		return c.profiles.CreateProfile
	}, func(m *ebbflowv1.CreateProfileRequest) string { return profileRes(m.GetName()) }),
	ebbflowv1connect.ProfileServiceUpdateProfileProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.UpdateProfileRequest]) (*connect.Response[ebbflowv1.UpdateProfileResponse], error) {
		return c.profiles.UpdateProfile
	}, func(m *ebbflowv1.UpdateProfileRequest) string { return profileRes(m.GetName()) }),
	ebbflowv1connect.ProfileServiceDeleteProfileProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.DeleteProfileRequest]) (*connect.Response[ebbflowv1.DeleteProfileResponse], error) {
		return c.profiles.DeleteProfile
	}, func(m *ebbflowv1.DeleteProfileRequest) string { return profileRes(m.GetName()) }),

	ebbflowv1connect.ClusterServiceRegisterClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RegisterClusterRequest]) (*connect.Response[ebbflowv1.RegisterClusterResponse], error) {
		return c.clusters.RegisterCluster
	}, func(m *ebbflowv1.RegisterClusterRequest) string { return clusterRes(m.GetName()) }),
	ebbflowv1connect.ClusterServiceSetClusterLabelsProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.SetClusterLabelsRequest]) (*connect.Response[ebbflowv1.SetClusterLabelsResponse], error) {
		return c.clusters.SetClusterLabels
	}, func(m *ebbflowv1.SetClusterLabelsRequest) string { return clusterRes(m.GetName()) }),
	ebbflowv1connect.ClusterServiceCordonClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.CordonClusterRequest]) (*connect.Response[ebbflowv1.CordonClusterResponse], error) {
		return c.clusters.CordonCluster
	}, func(m *ebbflowv1.CordonClusterRequest) string { return clusterRes(m.GetName()) }),
	ebbflowv1connect.ClusterServiceUncordonClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.UncordonClusterRequest]) (*connect.Response[ebbflowv1.UncordonClusterResponse], error) {
		return c.clusters.UncordonCluster
	}, func(m *ebbflowv1.UncordonClusterRequest) string { return clusterRes(m.GetName()) }),
	ebbflowv1connect.ClusterServiceDeleteClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.DeleteClusterRequest]) (*connect.Response[ebbflowv1.DeleteClusterResponse], error) {
		return c.clusters.DeleteCluster
	}, func(m *ebbflowv1.DeleteClusterRequest) string { return clusterRes(m.GetName()) }),

	ebbflowv1connect.RolloutServiceCreateRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.CreateRolloutRequest]) (*connect.Response[ebbflowv1.CreateRolloutResponse], error) {
		return c.rollouts.CreateRollout
	}, func(m *ebbflowv1.CreateRolloutRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServicePauseRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.PauseRolloutRequest]) (*connect.Response[ebbflowv1.PauseRolloutResponse], error) {
		return c.rollouts.PauseRollout
	}, func(m *ebbflowv1.PauseRolloutRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServiceResumeRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ResumeRolloutRequest]) (*connect.Response[ebbflowv1.ResumeRolloutResponse], error) {
		return c.rollouts.ResumeRollout
	}, func(m *ebbflowv1.ResumeRolloutRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServiceApproveRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ApproveRolloutRequest]) (*connect.Response[ebbflowv1.ApproveRolloutResponse], error) {
		return c.rollouts.ApproveRollout
	}, func(m *ebbflowv1.ApproveRolloutRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServiceSkipClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.SkipClusterRequest]) (*connect.Response[ebbflowv1.SkipClusterResponse], error) {
		return c.rollouts.SkipCluster
	}, func(m *ebbflowv1.SkipClusterRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServiceAbortRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.AbortRolloutRequest]) (*connect.Response[ebbflowv1.AbortRolloutResponse], error) {
		return c.rollouts.AbortRollout
	}, func(m *ebbflowv1.AbortRolloutRequest) string { return rolloutRes(m.GetId()) }),
	ebbflowv1connect.RolloutServiceRollbackRolloutProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RollbackRolloutRequest]) (*connect.Response[ebbflowv1.RollbackRolloutResponse], error) {
		return c.rollouts.RollbackRollout
	}, func(m *ebbflowv1.RollbackRolloutRequest) string { return rolloutRes(m.GetId()) }),

	ebbflowv1connect.ControllerServiceAddVoterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.AddVoterRequest]) (*connect.Response[ebbflowv1.AddVoterResponse], error) {
		return c.controller.AddVoter
	}, func(m *ebbflowv1.AddVoterRequest) string { return nodeRes(m.GetNodeId()) }),
	ebbflowv1connect.ControllerServiceRemoveServerProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RemoveServerRequest]) (*connect.Response[ebbflowv1.RemoveServerResponse], error) {
		return c.controller.RemoveServer
	}, func(m *ebbflowv1.RemoveServerRequest) string { return nodeRes(m.GetNodeId()) }),

	ebbflowv1connect.AgentServiceRegisterAgentProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RegisterAgentRequest]) (*connect.Response[ebbflowv1.RegisterAgentResponse], error) {
		return c.agents.RegisterAgent
	}, func(m *ebbflowv1.RegisterAgentRequest) string { return clusterRes(m.GetCluster()) }),
	ebbflowv1connect.AgentServiceReportPhaseStatusProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ReportPhaseStatusRequest]) (*connect.Response[ebbflowv1.ReportPhaseStatusResponse], error) {
		return c.agents.ReportPhaseStatus
	}, func(m *ebbflowv1.ReportPhaseStatusRequest) string { return clusterRes(m.GetRef().GetCluster()) }),
	ebbflowv1connect.AgentServiceReportMeasurementProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ReportMeasurementRequest]) (*connect.Response[ebbflowv1.ReportMeasurementResponse], error) {
		return c.agents.ReportMeasurement
	}, func(m *ebbflowv1.ReportMeasurementRequest) string { return clusterRes(m.GetRef().GetCluster()) }),
	ebbflowv1connect.AgentServiceJoinClusterProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.JoinClusterRequest]) (*connect.Response[ebbflowv1.JoinClusterResponse], error) {
		return c.agents.JoinCluster
	}, func(m *ebbflowv1.JoinClusterRequest) string { return joinTokenRes(m.GetToken()) }),
	ebbflowv1connect.AgentServiceRenewCertificateProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RenewCertificateRequest]) (*connect.Response[ebbflowv1.RenewCertificateResponse], error) {
		return c.agents.RenewCertificate
	}, func(*ebbflowv1.RenewCertificateRequest) string { return "certificate" }),

	ebbflowv1connect.AccessServiceCreateJoinTokenProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.CreateJoinTokenRequest]) (*connect.Response[ebbflowv1.CreateJoinTokenResponse], error) {
		return c.access.CreateJoinToken
	}, func(m *ebbflowv1.CreateJoinTokenRequest) string { return clusterRes(m.GetCluster()) }),
	ebbflowv1connect.AccessServiceRevokeJoinTokenProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RevokeJoinTokenRequest]) (*connect.Response[ebbflowv1.RevokeJoinTokenResponse], error) {
		return c.access.RevokeJoinToken
	}, func(m *ebbflowv1.RevokeJoinTokenRequest) string { return "join-token/" + m.GetId() }),
	ebbflowv1connect.AccessServiceRevokeClusterIdentityProcedure: mut(func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RevokeClusterIdentityRequest]) (*connect.Response[ebbflowv1.RevokeClusterIdentityResponse], error) {
		return c.access.RevokeClusterIdentity
	}, func(m *ebbflowv1.RevokeClusterIdentityRequest) string { return clusterRes(m.GetCluster()) }),
}

// joinTokenRes names a join token by its public id, never its secret.
func joinTokenRes(token string) string {
	id, _, _ := strings.Cut(token, ".")
	return "join-token/" + id
}

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

// Audit service.

type auditService struct{ *Server }

func (s *auditService) ListAuditRecords(ctx context.Context, req *connect.Request[ebbflowv1.ListAuditRecordsRequest]) (*connect.Response[ebbflowv1.ListAuditRecordsResponse], error) {
	m := req.Msg
	f, before, err := auditQuery(m)
	if err != nil {
		return nil, err
	}
	var v issues
	size := v.pageSize("page_size", m.GetPageSize())
	return readAt(ctx, s.Server, req, m.GetRead(), func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ListAuditRecordsRequest]) (*connect.Response[ebbflowv1.ListAuditRecordsResponse], error) {
		return c.audit.ListAuditRecords
	}, func(tx *store.Tx) (*ebbflowv1.ListAuditRecordsResponse, error) {
		recs, more, err := tx.AuditRecords(f, before, size)
		if err != nil {
			return nil, err
		}
		res := &ebbflowv1.ListAuditRecordsResponse{Records: recs}
		if more && len(recs) > 0 {
			res.NextPageToken = nextPageToken(strconv.FormatUint(recs[len(recs)-1].GetSequence(), 10))
		}
		return res, nil
	})
}

// auditQuery checks a ListAuditRecords request and returns its filter and the sequence the
// page starts below.
func auditQuery(m *ebbflowv1.ListAuditRecordsRequest) (store.AuditFilter, uint64, error) {
	var v issues
	v.pageSize("page_size", m.GetPageSize())
	var before uint64
	if tok := v.pageToken("page_token", m.GetPageToken()); tok != "" {
		n, err := strconv.ParseUint(tok, 10, 64)
		if err != nil || n == 0 {
			v.add("page_token", "page-token", "not a page token returned by this API")
		}
		before = n
	}
	v.maxLen("actor", m.GetActor(), 128)
	v.maxLen("prefix", m.GetPrefix(), maxAuditResource)
	if _, ok := ebbflowv1.AuditResultFilter_name[int32(m.GetResult())]; !ok {
		v.add("result", "enum", "must be one of ok, failed or unspecified")
	}
	f := store.AuditFilter{
		Actor: m.GetActor(), Prefix: m.GetPrefix(),
		OK:     m.GetResult() == ebbflowv1.AuditResultFilter_AUDIT_RESULT_FILTER_OK,
		Failed: m.GetResult() == ebbflowv1.AuditResultFilter_AUDIT_RESULT_FILTER_FAILED,
	}
	if t := m.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			v.add("start_time", "timestamp", "%v", err)
		}
		f.Start = t.AsTime()
	}
	if t := m.GetEndTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			v.add("end_time", "timestamp", "%v", err)
		}
		f.End = t.AsTime()
	}
	if !f.Start.IsZero() && !f.End.IsZero() && !f.Start.Before(f.End) {
		v.add("end_time", "range", "must be after start_time")
	}
	return f, before, v.err()
}
