package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout"
	"github.com/ebbflow/ebbflow/store"
)

type agentService struct{ *Server }

func (s *agentService) RegisterAgent(ctx context.Context, req *connect.Request[ebbflowv1.RegisterAgentRequest]) (*connect.Response[ebbflowv1.RegisterAgentResponse], error) {
	m := req.Msg
	if !s.store.IsLeader() {
		return nil, store.ErrNotLeader
	}
	cluster, err := s.registerIfChanged(ctx, actorOf(ctx), m)
	if err != nil {
		return nil, err
	}
	s.live.beat(m.GetCluster(), s.now())
	return connect.NewResponse(&ebbflowv1.RegisterAgentResponse{
		Cluster:           s.withLiveState(cluster),
		HeartbeatInterval: durationpb.New(s.cfg.HeartbeatInterval),
		StreamLiveness:    true,
	}), nil
}

// registerIfChanged writes through Raft only when the registration changes something, so a
// fleet of agents reconnecting after a leader change costs reads, not log entries.
func (s *agentService) registerIfChanged(ctx context.Context, actor string, m *ebbflowv1.RegisterAgentRequest) (*ebbflowv1.Cluster, error) {
	var cur *ebbflowv1.Cluster
	err := s.store.View(ctx, store.Stale, func(tx *store.Tx) error {
		var err error
		cur, err = tx.Cluster(m.GetCluster())
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if cur != nil && registrationCovered(cur, m) {
		markUnchanged(ctx)
		return cur, nil
	}
	out, err := s.store.Apply(ctx, &storev1.Command{Actor: actor, Body: &storev1.Command_RegisterCluster{
		RegisterCluster: &storev1.RegisterCluster{
			Name: m.GetCluster(), Labels: m.GetLabels(), Inventory: m.GetInventory(),
			AgentVersion: m.GetAgentVersion(), MergeLabels: true,
		},
	}})
	if err != nil {
		return nil, err
	}
	return out.(*ebbflowv1.Cluster), nil
}

// registrationCovered reports whether the stored cluster already holds everything m says
// (the inventory's collection time aside).
func registrationCovered(cur *ebbflowv1.Cluster, m *ebbflowv1.RegisterAgentRequest) bool {
	for k, v := range m.GetLabels() {
		if got, ok := cur.GetLabels()[k]; !ok || got != v {
			return false
		}
	}
	if m.GetAgentVersion() != "" && m.GetAgentVersion() != cur.GetAgentVersion() {
		return false
	}
	if m.GetInventory() == nil {
		return true
	}
	a, b := proto.Clone(cur.GetInventory()).(*ebbflowv1.Inventory), proto.Clone(m.GetInventory()).(*ebbflowv1.Inventory)
	if a == nil {
		return false
	}
	a.CollectTime, b.CollectTime = nil, nil
	return proto.Equal(a, b)
}

func (s *agentService) WatchAssignment(ctx context.Context, req *connect.Request[ebbflowv1.WatchAssignmentRequest], stream *connect.ServerStream[ebbflowv1.WatchAssignmentResponse]) error {
	name := req.Msg.GetCluster()
	// Woken only by this cluster's changes; no goroutine and no queue per stream.
	w := s.store.WatchCluster(name)
	defer w.Close()
	s.readYourWrites(ctx)
	var last *ebbflowv1.Assignment
	for {
		release, err := s.sends.enter(ctx, sendLease)
		if err != nil {
			return nil
		}
		a, err := s.assignment(ctx, name)
		if err != nil {
			release()
			return toConnectError(err)
		}
		if last == nil || !proto.Equal(last, a) {
			err := stream.Send(&ebbflowv1.WatchAssignmentResponse{Assignment: a})
			release()
			if err != nil {
				return err
			}
			if last == nil {
				// The open stream is the agent's liveness from its first message on.
				defer s.local.add(name)()
			}
			last = a
		} else {
			release()
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-w.C:
			if !ok {
				return connect.NewError(connect.CodeUnavailable, errors.New("controller node is shutting down"))
			}
		}
	}
}

// assignment is a cluster's current assignment as this node has applied it: a look-up in the
// store's index (the record of the active rollout holding the cluster) and, for an active
// assignment, the pinned profile revision from the cache.
func (s *Server) assignment(ctx context.Context, cluster string) (*ebbflowv1.Assignment, error) {
	if _, ok := s.store.Registered(cluster); !ok {
		return nil, fmt.Errorf("cluster %q: %w", cluster, store.ErrNotFound)
	}
	h, ok := s.store.HolderOf(cluster)
	if !ok {
		return rollout.Idle(cluster), nil
	}
	a := rollout.AssignmentFor(h.Header, h.Record)
	if a.GetId() == "" {
		return a, nil
	}
	spec, err := s.profiles.get(ctx, s.store, a.GetProfileName(), a.GetProfileRevision())
	if err != nil {
		return nil, fmt.Errorf("rollout %s pins %s revision %d: %w", a.GetRolloutId(), a.GetProfileName(), a.GetProfileRevision(), err)
	}
	a.Profile = spec
	return a, nil
}

func (s *agentService) ReportPhaseStatus(ctx context.Context, req *connect.Request[ebbflowv1.ReportPhaseStatusRequest]) (*connect.Response[ebbflowv1.ReportPhaseStatusResponse], error) {
	m := req.Msg
	ok, reason, err := s.submitReport(ctx, rollout.Report{
		Ref: m.GetRef(), Status: m.GetStatus(), Message: m.GetMessage(), ReportTime: reportTime(m.GetReportTime(), s.now()),
		HelmBefore: m.GetHelmRevisionBefore(), HelmAfter: m.GetHelmRevisionAfter(), Preflight: m.GetPreflightReasons(),
		KprBatch: m.GetKprBatch(),
	})
	if err != nil {
		return nil, err
	}
	s.live.beat(m.GetRef().GetCluster(), s.now())
	return connect.NewResponse(&ebbflowv1.ReportPhaseStatusResponse{Accepted: ok, Reason: reason}), nil
}

func (s *agentService) ReportMeasurement(ctx context.Context, req *connect.Request[ebbflowv1.ReportMeasurementRequest]) (*connect.Response[ebbflowv1.ReportMeasurementResponse], error) {
	m := req.Msg
	ok, reason, err := s.submitReport(ctx, rollout.Report{
		Ref: m.GetRef(), ReportTime: reportTime(m.GetReportTime(), s.now()), Measurements: m.GetMeasurements(),
	})
	if err != nil {
		return nil, err
	}
	s.live.beat(m.GetRef().GetCluster(), s.now())
	return connect.NewResponse(&ebbflowv1.ReportMeasurementResponse{Accepted: ok, Reason: reason}), nil
}

func (s *agentService) Heartbeat(ctx context.Context, req *connect.Request[ebbflowv1.HeartbeatRequest]) (*connect.Response[ebbflowv1.HeartbeatResponse], error) {
	m := req.Msg
	// Liveness lives in the leader's memory: no Raft write per heartbeat.
	if !s.store.IsLeader() {
		return nil, store.ErrNotLeader
	}
	if _, ok := s.store.Registered(m.GetCluster()); !ok {
		return nil, fmt.Errorf("cluster %q: %w", m.GetCluster(), store.ErrNotFound)
	}
	s.live.beat(m.GetCluster(), s.now())
	var id string
	if h, ok := s.store.HolderOf(m.GetCluster()); ok {
		id = rollout.AssignmentFor(h.Header, h.Record).GetId()
	}
	return connect.NewResponse(&ebbflowv1.HeartbeatResponse{AssignmentId: id}), nil
}

// reportTime is the agent's own timestamp of a report, or now when it sent none.
func reportTime(ts *timestamppb.Timestamp, now time.Time) time.Time {
	if ts == nil || ts.AsTime().IsZero() {
		return now
	}
	return ts.AsTime()
}

// profileCache keeps the profile revisions that assignments pin. A revision never changes once
// written, so an entry never goes stale; a deleted profile's entries go when the cache is full.
type profileCache struct {
	mu    sync.Mutex
	specs map[profileRev]*ebbflowv1.ProfileSpec
}

type profileRev struct {
	name     string
	revision uint64
}

// maxCachedProfiles bounds the cache; past it the cache starts over.
const maxCachedProfiles = 256

func (c *profileCache) get(ctx context.Context, st Reader, name string, revision uint64) (*ebbflowv1.ProfileSpec, error) {
	key := profileRev{name, revision}
	c.mu.Lock()
	spec, ok := c.specs[key]
	c.mu.Unlock()
	if ok {
		return spec, nil
	}
	err := st.View(ctx, store.Stale, func(tx *store.Tx) error {
		p, err := tx.Profile(name, revision)
		spec = p.GetSpec()
		return err
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.specs == nil || len(c.specs) >= maxCachedProfiles {
		c.specs = map[profileRev]*ebbflowv1.ProfileSpec{}
	}
	c.specs[key] = spec
	c.mu.Unlock()
	return spec, nil
}
