package controller

import (
	"context"
	"errors"
	"fmt"
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
	if err := validateRequest(m); err != nil {
		return nil, err
	}
	return onLeader(ctx, s.fwd, req, func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.RegisterAgentRequest]) (*connect.Response[ebbflowv1.RegisterAgentResponse], error) {
		return c.agents.RegisterAgent
	}, func(ctx context.Context) (*ebbflowv1.RegisterAgentResponse, error) {
		if !s.store.IsLeader() {
			return nil, store.ErrNotLeader
		}
		cluster, err := s.registerIfChanged(ctx, actorOf(ctx), m)
		if err != nil {
			return nil, err
		}
		s.live.beat(m.GetCluster(), s.now())
		return &ebbflowv1.RegisterAgentResponse{
			Cluster:           s.withLiveness(cluster),
			HeartbeatInterval: durationpb.New(s.cfg.HeartbeatInterval),
		}, nil
	})
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
	if err := validateRequest(req.Msg); err != nil {
		return err
	}
	sub := s.store.Subscribe()
	defer sub.Close()
	s.readYourWrites(ctx)
	var last *ebbflowv1.Assignment
	send := func() error {
		var a *ebbflowv1.Assignment
		err := s.store.View(ctx, store.Stale, func(tx *store.Tx) error {
			if _, err := tx.Cluster(name); err != nil {
				return err
			}
			var err error
			a, err = assignmentFor(tx, name)
			return err
		})
		if err != nil {
			return toConnectError(err)
		}
		if last != nil && proto.Equal(last, a) {
			return nil
		}
		last = a
		return stream.Send(&ebbflowv1.WatchAssignmentResponse{Assignment: a})
	}
	relevant := func(ch store.Change) bool {
		return ch.Resync || ch.Kind == store.KindRollout || ch.Kind == store.KindProfile || (ch.Kind == store.KindCluster && ch.Key == name)
	}
	for {
		if err := send(); err != nil {
			return err
		}
		if err := waitFor(ctx, sub, relevant); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// assignmentFor derives a cluster's current assignment from the active rollout holding it.
func assignmentFor(tx *store.Tx, cluster string) (*ebbflowv1.Assignment, error) {
	idle := &ebbflowv1.Assignment{Cluster: cluster, Action: ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_IDLE}
	rs, err := tx.Rollouts("", 0)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if terminalRollout(r.GetState()) {
			continue
		}
		for _, w := range r.GetWaves() {
			for _, c := range w.GetClusters() {
				if c.GetCluster() != cluster || c.GetAssignmentId() == "" {
					continue
				}
				a := &ebbflowv1.Assignment{
					Id: c.GetAssignmentId(), RolloutId: r.GetId(), Cluster: cluster, Phase: c.GetPhase(),
					ProfileName: r.GetSpec().GetProfile(), ProfileRevision: r.GetProfileRevision(),
					Probes: r.GetSpec().GetProbes(), RollbackToHelmRevision: c.GetPreRolloutHelmRevision(),
				}
				a.Action = c.GetAction()
				if a.Action == ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_UNSPECIFIED {
					a.Action = ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_IDLE
				}
				if d := r.GetSpec().GetPhaseTimeout(); d != nil {
					a.Deadline = d
				}
				a.IssueTime = c.GetPhaseStartTime()
				p, err := tx.Profile(a.ProfileName, a.ProfileRevision)
				if err != nil {
					return nil, fmt.Errorf("rollout %s pins %s revision %d: %w", r.GetId(), a.ProfileName, a.ProfileRevision, err)
				}
				a.Profile = p.GetSpec()
				return a, nil
			}
		}
	}
	return idle, nil
}

func terminalRollout(st ebbflowv1.RolloutState) bool {
	switch st {
	case ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED, ebbflowv1.RolloutState_ROLLOUT_STATE_FAILED,
		ebbflowv1.RolloutState_ROLLOUT_STATE_ABORTED, ebbflowv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK:
		return true
	}
	return false
}

// checkRef validates what a report refers to.
func checkRef(v *issues, ref *ebbflowv1.ReportRef) {
	if ref == nil {
		v.add("ref", "required", "must be set: reports name the assignment, profile revision and phase")
		return
	}
	v.name("ref.cluster", ref.GetCluster())
	if ref.GetAssignmentId() == "" {
		v.add("ref.assignment_id", "required", "must be set")
	}
	v.maxLen("ref.assignment_id", ref.GetAssignmentId(), maxAssignmentID)
	if ref.GetProfileRevision() == 0 {
		v.add("ref.profile_revision", "required", "must be set")
	}
	if _, ok := ebbflowv1.Phase_name[int32(ref.GetPhase())]; !ok || ref.GetPhase() == ebbflowv1.Phase_PHASE_UNSPECIFIED {
		v.add("ref.phase", "enum", "must be one of baseline, l7, kpr, xdp")
	}
}

// matchAssignment checks a report against the cluster's current assignment on the leader.
// A report for an old assignment, another profile revision or another phase is refused.
func (s *Server) matchAssignment(ctx context.Context, ref *ebbflowv1.ReportRef) (bool, string, error) {
	var a *ebbflowv1.Assignment
	err := s.store.View(ctx, store.Linearizable, func(tx *store.Tx) error {
		if _, err := tx.Cluster(ref.GetCluster()); err != nil {
			return err
		}
		var err error
		a, err = assignmentFor(tx, ref.GetCluster())
		return err
	})
	if err != nil {
		return false, "", err
	}
	switch {
	case a.GetId() == "":
		return false, "no active assignment for this cluster", nil
	case a.GetId() != ref.GetAssignmentId():
		return false, fmt.Sprintf("stale assignment %q: the current one is %q", ref.GetAssignmentId(), a.GetId()), nil
	case a.GetProfileRevision() != ref.GetProfileRevision():
		return false, fmt.Sprintf("profile revision %d does not match the assignment's %d", ref.GetProfileRevision(), a.GetProfileRevision()), nil
	case a.GetPhase() != ref.GetPhase():
		return false, fmt.Sprintf("phase %s does not match the assignment's %s", ref.GetPhase(), a.GetPhase()), nil
	}
	return true, "", nil
}

func (s *agentService) ReportPhaseStatus(ctx context.Context, req *connect.Request[ebbflowv1.ReportPhaseStatusRequest]) (*connect.Response[ebbflowv1.ReportPhaseStatusResponse], error) {
	m := req.Msg
	if err := validateRequest(m); err != nil {
		return nil, err
	}
	return onLeader(ctx, s.fwd, req, func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ReportPhaseStatusRequest]) (*connect.Response[ebbflowv1.ReportPhaseStatusResponse], error) {
		return c.agents.ReportPhaseStatus
	}, func(ctx context.Context) (*ebbflowv1.ReportPhaseStatusResponse, error) {
		ok, reason, err := s.matchAssignment(ctx, m.GetRef())
		if err != nil {
			return nil, err
		}
		s.live.beat(m.GetRef().GetCluster(), s.now())
		if !ok {
			return &ebbflowv1.ReportPhaseStatusResponse{Accepted: false, Reason: reason}, nil
		}
		ok, reason, err = s.ingest(ctx, rollout.Report{
			Ref: m.GetRef(), Status: m.GetStatus(), Message: m.GetMessage(), ReportTime: reportTime(m.GetReportTime(), s.now()),
			HelmBefore: m.GetHelmRevisionBefore(), HelmAfter: m.GetHelmRevisionAfter(), Preflight: m.GetPreflightReasons(),
		})
		if err != nil {
			return nil, err
		}
		return &ebbflowv1.ReportPhaseStatusResponse{Accepted: ok, Reason: reason}, nil
	})
}

func (s *agentService) ReportMeasurement(ctx context.Context, req *connect.Request[ebbflowv1.ReportMeasurementRequest]) (*connect.Response[ebbflowv1.ReportMeasurementResponse], error) {
	m := req.Msg
	if err := validateRequest(m); err != nil {
		return nil, err
	}
	return onLeader(ctx, s.fwd, req, func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.ReportMeasurementRequest]) (*connect.Response[ebbflowv1.ReportMeasurementResponse], error) {
		return c.agents.ReportMeasurement
	}, func(ctx context.Context) (*ebbflowv1.ReportMeasurementResponse, error) {
		ok, reason, err := s.matchAssignment(ctx, m.GetRef())
		if err != nil {
			return nil, err
		}
		s.live.beat(m.GetRef().GetCluster(), s.now())
		if !ok {
			return &ebbflowv1.ReportMeasurementResponse{Accepted: false, Reason: reason}, nil
		}
		ok, reason, err = s.ingest(ctx, rollout.Report{
			Ref: m.GetRef(), ReportTime: reportTime(m.GetReportTime(), s.now()), Measurements: m.GetMeasurements(),
		})
		if err != nil {
			return nil, err
		}
		return &ebbflowv1.ReportMeasurementResponse{Accepted: ok, Reason: reason}, nil
	})
}

func (s *agentService) Heartbeat(ctx context.Context, req *connect.Request[ebbflowv1.HeartbeatRequest]) (*connect.Response[ebbflowv1.HeartbeatResponse], error) {
	m := req.Msg
	if err := validateRequest(m); err != nil {
		return nil, err
	}
	return onLeader(ctx, s.fwd, req, func(c *leaderClients) func(context.Context, *connect.Request[ebbflowv1.HeartbeatRequest]) (*connect.Response[ebbflowv1.HeartbeatResponse], error) {
		return c.agents.Heartbeat
	}, func(ctx context.Context) (*ebbflowv1.HeartbeatResponse, error) {
		// Liveness lives in the leader's memory: no Raft write per heartbeat.
		if !s.store.IsLeader() {
			return nil, store.ErrNotLeader
		}
		var a *ebbflowv1.Assignment
		err := s.store.View(ctx, store.Stale, func(tx *store.Tx) error {
			if _, err := tx.Cluster(m.GetCluster()); err != nil {
				return err
			}
			var err error
			a, err = assignmentFor(tx, m.GetCluster())
			return err
		})
		if err != nil {
			return nil, err
		}
		s.live.beat(m.GetCluster(), s.now())
		return &ebbflowv1.HeartbeatResponse{AssignmentId: a.GetId()}, nil
	})
}

// reportTime is the agent's own timestamp of a report, or now when it sent none.
func reportTime(ts *timestamppb.Timestamp, now time.Time) time.Time {
	if ts == nil || ts.AsTime().IsZero() {
		return now
	}
	return ts.AsTime()
}
