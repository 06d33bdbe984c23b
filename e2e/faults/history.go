package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Op is one operation of the history: who called, what, when (nanoseconds since the run
// began, on the monotonic clock) and how it ended.
type Op struct {
	Client       int
	Input        Input
	Output       Output
	Call, Return int64
	// Note says which node served the call and, when it did not succeed, the error.
	Note string
}

// History collects the operations of every client.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewHistory starts a history's clock.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

func (h *History) add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops is a copy of the history so far.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Op(nil), h.ops...)
}

// Key is one piece of state the clients read and write, through the API that owns it.
type Key interface {
	Name() string
	// Create makes the key exist with value through c (retried by the caller) and returns
	// its state.
	Create(ctx context.Context, c *Clients, value string) (State, error)
	// Read reads it at the given level.
	Read(ctx context.Context, c *Clients, level ebbflowv1.Consistency) (State, error)
	// Write sets value, only if the version is expect when expect is not 0; it returns the
	// state the answer carries.
	Write(ctx context.Context, c *Clients, value string, expect uint64) (State, error)
}

// ClusterKey is a cluster's labels ({"v": value}), versioned by its generation: written with
// SetClusterLabels (expected_generation for compare-and-set), read with GetCluster.
type ClusterKey string

func (k ClusterKey) Name() string { return string(k) }

func labelsState(c *ebbflowv1.Cluster) State {
	return State{Value: c.GetLabels()["v"], Version: c.GetGeneration()}
}

func (k ClusterKey) Create(ctx context.Context, c *Clients, value string) (State, error) {
	res, err := c.Clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{
		Name: string(k), Labels: map[string]string{"v": value},
	}))
	if err != nil {
		return State{}, err
	}
	return labelsState(res.Msg.GetCluster()), nil
}

func (k ClusterKey) Read(ctx context.Context, c *Clients, level ebbflowv1.Consistency) (State, error) {
	res, err := c.Clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{
		Name: string(k), Read: &ebbflowv1.ReadOptions{Consistency: level},
	}))
	if err != nil {
		return State{}, err
	}
	return labelsState(res.Msg.GetCluster()), nil
}

func (k ClusterKey) Write(ctx context.Context, c *Clients, value string, expect uint64) (State, error) {
	res, err := c.Clusters.SetClusterLabels(ctx, connect.NewRequest(&ebbflowv1.SetClusterLabelsRequest{
		Name: string(k), Labels: map[string]string{"v": value}, ExpectedGeneration: expect,
	}))
	if err != nil {
		return State{}, err
	}
	return labelsState(res.Msg.GetCluster()), nil
}

// ProfileKey is a profile, its description the value and its revision the version: written
// with UpdateProfile (expected_revision for compare-and-set), read with GetProfile. Every
// revision stays, so ProfileKey can also list what was ever written (Revisions).
type ProfileKey string

func (k ProfileKey) Name() string { return string(k) }

func profileSpec(value string) *ebbflowv1.ProfileSpec {
	return &ebbflowv1.ProfileSpec{
		Description: value,
		Chart:       &ebbflowv1.ChartRef{Repository: "https://helm.cilium.io", Version: ">=1.16.0 <1.19.0"},
	}
}

func profileState(p *ebbflowv1.Profile) State {
	return State{Value: p.GetSpec().GetDescription(), Version: p.GetRevision()}
}

func (k ProfileKey) Create(ctx context.Context, c *Clients, value string) (State, error) {
	res, err := c.Profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: string(k), Spec: profileSpec(value)}))
	if connect.CodeOf(err) == connect.CodeAlreadyExists {
		// An earlier attempt whose answer was lost created it.
		return k.Read(ctx, c, ebbflowv1.Consistency_CONSISTENCY_LINEARIZABLE)
	}
	if err != nil {
		return State{}, err
	}
	return profileState(res.Msg.GetProfile()), nil
}

func (k ProfileKey) Read(ctx context.Context, c *Clients, level ebbflowv1.Consistency) (State, error) {
	res, err := c.Profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{
		Name: string(k), Read: &ebbflowv1.ReadOptions{Consistency: level},
	}))
	if err != nil {
		return State{}, err
	}
	return profileState(res.Msg.GetProfile()), nil
}

func (k ProfileKey) Write(ctx context.Context, c *Clients, value string, expect uint64) (State, error) {
	res, err := c.Profiles.UpdateProfile(ctx, connect.NewRequest(&ebbflowv1.UpdateProfileRequest{
		Name: string(k), Spec: profileSpec(value), ExpectedRevision: expect,
	}))
	if err != nil {
		return State{}, err
	}
	return profileState(res.Msg.GetProfile()), nil
}

// Revisions lists every stored revision of the profile, newest first.
func (k ProfileKey) Revisions(ctx context.Context, c *Clients, level ebbflowv1.Consistency) ([]State, error) {
	res, err := c.Profiles.ListProfileRevisions(ctx, connect.NewRequest(&ebbflowv1.ListProfileRevisionsRequest{
		Name: string(k), Read: &ebbflowv1.ReadOptions{Consistency: level},
	}))
	if err != nil {
		return nil, err
	}
	out := make([]State, 0, len(res.Msg.GetRevisions()))
	for _, p := range res.Msg.GetRevisions() {
		out = append(out, profileState(p))
	}
	return out, nil
}

// writeOutcome classifies a write's error: refusals that happen before anything is proposed
// to Raft are Failed (or Conflict), anything that may have reached the leader is Unknown.
// UNAVAILABLE is Unknown: a leader that lost its leadership while committing answers it after
// the entry may have been replicated.
func writeOutcome(err error) Outcome {
	if err == nil {
		return OK
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		// Refused at connect: the request was never sent (a killed node).
		return Failed
	}
	switch connect.CodeOf(err) {
	case connect.CodeAborted:
		return Conflict
	case connect.CodeNotFound, connect.CodeInvalidArgument, connect.CodeAlreadyExists, connect.CodeFailedPrecondition,
		connect.CodePermissionDenied, connect.CodeUnauthenticated, connect.CodeResourceExhausted:
		return Failed
	}
	// UNAVAILABLE too: even "no leader to forward to" may follow a proposal the node made
	// while it led (see KnownBugs), so the message proves nothing.
	return Unknown
}

// workload is what the clients do.
type workload struct {
	g       *Group
	h       *History
	keys    []Key
	opTime  time.Duration
	pauseOp time.Duration
	// nodes are the nodes the clients call; empty: any.
	nodes []int
	// tag prefixes every value written, so that workloads run one after the other on the same
	// keys never write the same value (a value seen at two versions means a write applied twice).
	tag string
}

// client runs operations until ctx ends: reads, plain writes and read-then-compare-and-set,
// on random keys through random nodes (as users and the portal spread over the nodes).
func (w *workload) client(ctx context.Context, id int, rng *rand.Rand) {
	hc := w.g.HTTPClient()
	defer hc.CloseIdleConnections()
	seq := 0
	for ctx.Err() == nil {
		key := w.keys[rng.IntN(len(w.keys))]
		node := rng.IntN(len(w.g.Nodes))
		if len(w.nodes) > 0 {
			node = w.nodes[rng.IntN(len(w.nodes))]
		}
		c := w.g.ClientsOf(hc, node)
		switch r := rng.IntN(100); {
		case r < 40:
			w.read(ctx, id, c, key)
		case r < 65:
			seq++
			w.write(ctx, id, c, key, fmt.Sprintf("%sc%d-%d", w.tag, id, seq), 0)
		default:
			st, ok := w.read(ctx, id, c, key)
			if !ok {
				break
			}
			seq++
			w.write(ctx, id, c, key, fmt.Sprintf("%sc%d-%d", w.tag, id, seq), st.Version)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(rng.Int64N(int64(w.pauseOp) + 1))):
		}
	}
}

// opContext bounds one call: the run's end does not cut a call short (its outcome would be
// Unknown for no reason), the call's own timeout does.
func (w *workload) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), w.opTime)
}

func (w *workload) read(_ context.Context, id int, c *Clients, key Key) (State, bool) {
	ctx, cancel := w.opContext()
	defer cancel()
	call := w.h.Now()
	st, err := key.Read(ctx, c, ebbflowv1.Consistency_CONSISTENCY_LINEARIZABLE)
	ret := w.h.Now()
	if err != nil {
		// A failed read changed nothing and observed nothing: it has no place in the history.
		return State{}, false
	}
	w.h.add(Op{Client: id, Input: Input{Key: key.Name(), Kind: OpRead}, Output: Output{Outcome: OK, State: st},
		Call: call, Return: ret, Note: c.Node.ID})
	return st, true
}

func (w *workload) write(_ context.Context, id int, c *Clients, key Key, value string, expect uint64) {
	ctx, cancel := w.opContext()
	defer cancel()
	in := Input{Key: key.Name(), Kind: OpWrite, Value: value}
	if expect != 0 {
		in.Kind, in.Expect = OpCAS, expect
	}
	call := w.h.Now()
	st, err := key.Write(ctx, c, value, expect)
	ret := w.h.Now()
	op := Op{Client: id, Input: in, Output: Output{Outcome: writeOutcome(err), State: st}, Call: call, Return: ret, Note: c.Node.ID}
	if err != nil {
		op.Note += ": " + errString(err)
	}
	w.h.add(op)
}

func errString(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code().String() + ": " + ce.Message()
	}
	return err.Error()
}

// createKeys makes every key exist with the value "init", through whichever node answers.
func createKeys(ctx context.Context, g *Group, h *History, keys []Key) error {
	hc := g.HTTPClient()
	defer hc.CloseIdleConnections()
	for _, k := range keys {
		node := 0
		var st State
		call := h.Now()
		err := poll(ctx, time.Minute, "create "+k.Name(), func(ctx context.Context) error {
			var err error
			st, err = k.Create(ctx, g.ClientsOf(hc, node), "init")
			if err != nil {
				node = (node + 1) % len(g.Nodes)
			}
			return err
		})
		if err != nil {
			return err
		}
		h.add(Op{Client: 0, Input: Input{Key: k.Name(), Kind: OpInit, Value: st.Value, Expect: st.Version},
			Output: Output{Outcome: OK, State: st}, Call: call, Return: h.Now(), Note: "setup"})
	}
	return nil
}
