package controller_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Every bad request is refused with InvalidArgument, a message naming the field, and a
// BadRequest detail carrying the same field.
func TestValidationNamesTheField(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	c := newClients(n.URL)
	ctx := context.Background()
	longReason := strings.Repeat("x", 2000)
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"profile without name", func() error {
			_, err := c.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Spec: minimalSpec()}))
			return err
		}, "name"},
		{"profile with bad name", func() error {
			_, err := c.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: "Bad_Name", Spec: minimalSpec()}))
			return err
		}, "name"},
		{"profile without spec", func() error {
			_, err := c.profiles.CreateProfile(ctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: "p"}))
			return err
		}, "spec"},
		{"get profile without name", func() error {
			_, err := c.profiles.GetProfile(ctx, connect.NewRequest(&ebbflowv1.GetProfileRequest{}))
			return err
		}, "name"},
		{"list profiles negative page size", func() error {
			_, err := c.profiles.ListProfiles(ctx, connect.NewRequest(&ebbflowv1.ListProfilesRequest{PageSize: -1}))
			return err
		}, "page_size"},
		{"list profiles bad page token", func() error {
			_, err := c.profiles.ListProfiles(ctx, connect.NewRequest(&ebbflowv1.ListProfilesRequest{PageToken: "!!"}))
			return err
		}, "page_token"},
		{"register cluster bad label key", func() error {
			_, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "c1", Labels: map[string]string{"bad key": "v"}}))
			return err
		}, "labels[bad key]"},
		{"register cluster bad label value", func() error {
			_, err := c.clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: "c1", Labels: map[string]string{"env": "not ok!"}}))
			return err
		}, "labels[env]"},
		{"list clusters bad selector", func() error {
			_, err := c.clusters.ListClusters(ctx, connect.NewRequest(&ebbflowv1.ListClustersRequest{Selector: "env in (a"}))
			return err
		}, "selector"},
		{"cordon reason too long", func() error {
			_, err := c.clusters.CordonCluster(ctx, connect.NewRequest(&ebbflowv1.CordonClusterRequest{Name: "c1", Reason: longReason}))
			return err
		}, "reason"},
		{"agent register without cluster", func() error {
			_, err := c.agents.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{}))
			return err
		}, "cluster"},
		{"report without ref", func() error {
			_, err := c.agents.ReportPhaseStatus(ctx, connect.NewRequest(&ebbflowv1.ReportPhaseStatusRequest{Status: ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED}))
			return err
		}, "ref"},
		{"report without assignment id", func() error {
			_, err := c.agents.ReportPhaseStatus(ctx, connect.NewRequest(&ebbflowv1.ReportPhaseStatusRequest{
				Ref:    &ebbflowv1.ReportRef{Cluster: "c1", ProfileRevision: 1, Phase: ebbflowv1.Phase_PHASE_KPR},
				Status: ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED,
			}))
			return err
		}, "ref.assignment_id"},
		{"report without phase", func() error {
			_, err := c.agents.ReportPhaseStatus(ctx, connect.NewRequest(&ebbflowv1.ReportPhaseStatusRequest{
				Ref:    &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "a", ProfileRevision: 1},
				Status: ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED,
			}))
			return err
		}, "ref.phase"},
		{"measurement without measurements", func() error {
			_, err := c.agents.ReportMeasurement(ctx, connect.NewRequest(&ebbflowv1.ReportMeasurementRequest{
				Ref: &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "a", ProfileRevision: 1, Phase: ebbflowv1.Phase_PHASE_L7},
			}))
			return err
		}, "measurements"},
		{"measurement with a distribution", func() error {
			_, err := c.agents.ReportMeasurement(ctx, connect.NewRequest(&ebbflowv1.ReportMeasurementRequest{
				Ref: &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "a", ProfileRevision: 1, Phase: ebbflowv1.Phase_PHASE_L7},
				Measurements: []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: []float64{1},
					Distribution: &ebbflowv1.LatencyDistribution{Quantiles: []float64{0.5}, LatencyMs: []float64{1}, Count: 1}}},
			}))
			return err
		}, "measurements[0].distribution"},
		{"watch rollout bad cluster", func() error {
			s, err := c.rollouts.WatchRollout(ctx, connect.NewRequest(&ebbflowv1.WatchRolloutRequest{Id: "r1", Cluster: "Not_A_Cluster"}))
			if err != nil {
				return err
			}
			defer s.Close()
			for s.Receive() {
			}
			return s.Err()
		}, "cluster"},
		{"heartbeat bad cluster", func() error {
			_, err := c.agents.Heartbeat(ctx, connect.NewRequest(&ebbflowv1.HeartbeatRequest{Cluster: "UPPER"}))
			return err
		}, "cluster"},
		{"add voter bad address", func() error {
			_, err := c.controller.AddVoter(ctx, connect.NewRequest(&ebbflowv1.AddVoterRequest{NodeId: "n9", RaftAddress: "nohost", ApiAddress: "127.0.0.1:1"}))
			return err
		}, "raft_address"},
		{"add voter bad node id", func() error {
			_, err := c.controller.AddVoter(ctx, connect.NewRequest(&ebbflowv1.AddVoterRequest{NodeId: "n 9", RaftAddress: "127.0.0.1:2", ApiAddress: "127.0.0.1:1"}))
			return err
		}, "node_id"},
		{"rollout get without id", func() error {
			_, err := c.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{}))
			return err
		}, "id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("want InvalidArgument, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.field+":") {
				t.Errorf("message does not name field %q: %v", tc.field, err)
			}
			var ce *connect.Error
			if !errorsAs(err, &ce) {
				t.Fatal("not a connect error")
			}
			found := false
			for _, d := range ce.Details() {
				v, derr := d.Value()
				if derr != nil {
					continue
				}
				if br, ok := v.(*errdetails.BadRequest); ok {
					for _, fv := range br.GetFieldViolations() {
						if fv.GetField() == tc.field {
							found = true
						}
					}
				}
			}
			if !found {
				t.Errorf("no BadRequest field violation for %q", tc.field)
			}
		})
	}
}
