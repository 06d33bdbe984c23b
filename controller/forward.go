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
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

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

// forwarder sends calls that must run on the leader on to it: one generic Connect client per
// procedure and leader address, built from the procedure's schema, so no RPC has forwarding
// code of its own.
type forwarder struct {
	nodeID  string
	members Membership
	http    connect.HTTPClient
	scheme  string
	opts    []connect.ClientOption

	mu      sync.Mutex
	addr    string // the leader the clients below call
	clients map[string]*connect.Client[forwarded, forwarded]
	status  ebbflowv1connect.ControllerServiceClient
}

// forwarded carries one request or response message of any type through a generic client; it
// is itself a proto.Message (the one it carries), so the server sends a forwarded response as
// it is, in whichever codec the caller asked for.
type forwarded struct{ proto.Message }

// forwardCodec is the protobuf codec of one procedure's generic client: it marshals the
// request as it is and unmarshals the response into a new message of the procedure's output.
type forwardCodec struct{ out protoreflect.MessageType }

func (forwardCodec) Name() string { return "proto" }

func (forwardCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*forwarded)
	if !ok || f.Message == nil {
		return nil, fmt.Errorf("forward: cannot marshal %T", v)
	}
	return proto.Marshal(f.Message)
}

func (c forwardCodec) Unmarshal(b []byte, v any) error {
	f, ok := v.(*forwarded)
	if !ok {
		return fmt.Errorf("forward: cannot unmarshal into %T", v)
	}
	f.Message = c.out.New().Interface()
	return proto.Unmarshal(b, f.Message)
}

// leaderWait is how long a call to be forwarded waits for a leader when there is none (an
// election is under way): about what an election takes, so a caller's retry after a failover
// usually finds the new leader instead of failing again at once.
const leaderWait = 2 * time.Second

// leaderAddr is the leader's API address, waiting up to leaderWait (or ctx) for one to be
// known, or Unavailable; and a channel closed when this node next sees the leader change.
func (f *forwarder) leaderAddr(ctx context.Context) (string, <-chan struct{}, error) {
	wait := time.NewTimer(leaderWait)
	defer wait.Stop()
	for {
		changed := f.members.LeaderChanged()
		addr, err := f.members.LeaderAPIAddress()
		if err == nil {
			return addr, changed, nil
		}
		select {
		case <-changed:
		case <-time.After(20 * time.Millisecond): // the leader's address may arrive by a Raft entry
		case <-wait.C:
			return "", nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("no leader to forward to: %w", err))
		case <-ctx.Done():
			return "", nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("no leader to forward to: %w", err))
		}
	}
}

// client is the generic client of spec's procedure on the leader at addr.
func (f *forwarder) client(addr string, spec connect.Spec) (*connect.Client[forwarded, forwarded], error) {
	md, ok := spec.Schema.(protoreflect.MethodDescriptor)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("%s has no schema to forward it by", spec.Procedure))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addr != addr {
		f.addr, f.clients, f.status = addr, map[string]*connect.Client[forwarded, forwarded]{}, nil
	}
	if cl := f.clients[spec.Procedure]; cl != nil {
		return cl, nil
	}
	out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("%s: %w", spec.Procedure, err))
	}
	opts := append([]connect.ClientOption{connect.WithCodec(forwardCodec{out: out}), connect.WithSchema(md)}, f.opts...)
	cl := connect.NewClient[forwarded, forwarded](f.http, f.scheme+"://"+addr+spec.Procedure, opts...)
	f.clients[spec.Procedure] = cl
	return cl, nil
}

// forward sends req to the leader with the headers h (the caller's identity) and returns the
// leader's answer. A call another node already forwarded is not forwarded again: a stale view
// of the leader answers Unavailable instead of looping. A read (a procedure with no side
// effects) whose leader changes while it is forwarded is sent again to the new leader; a write
// is not: its outcome is unknown, and the caller is told so.
func (f *forwarder) forward(ctx context.Context, req connect.AnyRequest, h http.Header) (connect.AnyResponse, error) {
	if by := req.Header().Get(forwardedHeader); by != "" {
		addr, _ := f.members.LeaderAPIAddress()
		return nil, connect.NewError(connect.CodeUnavailable,
			fmt.Errorf("forwarded by %s but this node is not the leader either (leader API address %q); retry", by, addr))
	}
	msg, ok := req.Any().(proto.Message)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("forward: %T is not a protobuf message", req.Any()))
	}
	for {
		res, addr, err := f.forwardOnce(ctx, req.Spec(), msg, h)
		if err == nil || !errors.Is(err, errLeaderChanged) {
			return res, err
		}
		if req.Spec().IdempotencyLevel != connect.IdempotencyNoSideEffects || ctx.Err() != nil {
			return nil, connect.NewError(connect.CodeUnknown, fmt.Errorf("%w: %w while the call was forwarded to %s; it may or may not have been applied: read before retrying (a write with the generation it expects is safe to retry)", store.ErrOutcomeUnknown, errLeaderChanged, addr))
		}
	}
}

// forwardOnce sends msg to the leader this node sees now and returns its answer and address;
// the error wraps errLeaderChanged when this node saw the leader change before the answer.
func (f *forwarder) forwardOnce(ctx context.Context, spec connect.Spec, msg proto.Message, h http.Header) (connect.AnyResponse, string, error) {
	addr, changed, err := f.leaderAddr(ctx)
	if err != nil {
		return nil, "", err
	}
	cl, err := f.client(addr, spec)
	if err != nil {
		return nil, addr, err
	}
	fwd := connect.NewRequest(&forwarded{msg})
	for k, v := range h {
		fwd.Header()[k] = v
	}
	markForwarded(ctx)
	// A leader that died or was cut off may never answer: give up as soon as this node sees
	// another leader (or none) instead of at the caller's deadline.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-changed:
			cancel(errLeaderChanged)
		case <-ctx.Done():
		}
	}()
	res, err := cl.CallUnary(ctx, fwd)
	if err != nil && errors.Is(context.Cause(ctx), errLeaderChanged) {
		return nil, addr, fmt.Errorf("%w: %w", err, errLeaderChanged)
	}
	if err != nil {
		return nil, addr, err
	}
	return res, addr, nil
}

// errLeaderChanged ends a forwarded call whose leader this node no longer sees as leader.
var errLeaderChanged = errors.New("the leader changed")

// leaderController is a ControllerService client of the leader and the leader's address,
// for this node's own calls to it (a consistent stream start, the agent streams it holds).
func (f *forwarder) leaderController(ctx context.Context) (ebbflowv1connect.ControllerServiceClient, string, error) {
	addr, _, err := f.leaderAddr(ctx)
	if err != nil {
		return nil, "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addr != addr {
		f.addr, f.clients, f.status = addr, map[string]*connect.Client[forwarded, forwarded]{}, nil
	}
	if f.status == nil {
		f.status = ebbflowv1connect.NewControllerServiceClient(f.http, f.scheme+"://"+addr, f.opts...)
	}
	return f.status, addr, nil
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
	status, _, err := s.fwd.leaderController(ctx)
	if err != nil {
		return
	}
	st, err := status.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
	if err != nil {
		s.log.Debug("no leader commit index for a consistent stream start; serving the local replica", "err", err)
		return
	}
	if err := s.store.CatchUp(ctx, st.Msg.GetCommitIndex()); err != nil {
		s.log.Debug("catching up to the leader's commit index", "index", st.Msg.GetCommitIndex(), "err", err)
	}
}
