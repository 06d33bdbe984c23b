package controller

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
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
	case err == store.ErrNotLeader: //nolint:errorlint // the bare sentinel: refused before proposing, so not written (a wrapped one may have been)
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
	return view(ctx, s.Server, m.GetRead(), func(tx *store.Tx) (*ebbflowv1.ListAuditRecordsResponse, error) {
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
			v.Add("page_token", "page-token", "not a page token returned by this API")
		}
		before = n
	}
	v.maxLen("actor", m.GetActor(), 128)
	v.maxLen("prefix", m.GetPrefix(), maxAuditResource)
	if _, ok := ebbflowv1.AuditResultFilter_name[int32(m.GetResult())]; !ok {
		v.Add("result", "enum", "must be one of ok, failed or unspecified")
	}
	f := store.AuditFilter{
		Actor: m.GetActor(), Prefix: m.GetPrefix(),
		OK:     m.GetResult() == ebbflowv1.AuditResultFilter_AUDIT_RESULT_FILTER_OK,
		Failed: m.GetResult() == ebbflowv1.AuditResultFilter_AUDIT_RESULT_FILTER_FAILED,
	}
	if t := m.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			v.Add("start_time", "timestamp", "%v", err)
		}
		f.Start = t.AsTime()
	}
	if t := m.GetEndTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			v.Add("end_time", "timestamp", "%v", err)
		}
		f.End = t.AsTime()
	}
	if !f.Start.IsZero() && !f.End.IsZero() && !f.Start.Before(f.End) {
		v.Add("end_time", "range", "must be after start_time")
	}
	return f, before, v.err()
}
