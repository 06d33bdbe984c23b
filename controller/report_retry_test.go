package controller_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// An agent that lost the answer to a measurement report sends it again: the window is stored
// and judged once (the measurement's start time and content identify it), and the retry is
// acknowledged like the first send.
func TestMeasurementReportRetriedIsStoredOnce(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{Config: fastEngine})
	c := newClients(n.URL)
	applyBareMetal(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	values, _ := structpb.NewStruct(map[string]any{"k8sServiceHost": "10.0.0.1", "k8sServicePort": 6443})
	if _, err := c.agents.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{
		Cluster: "c-00", Labels: map[string]string{"env": "prod", "order": "00"},
		Inventory: &ebbflowv1.Inventory{KubernetesVersion: "v1.34.3", HelmValues: values, KubeProxyPresent: true, Nodes: []*ebbflowv1.NodeInfo{
			{Name: "n1", KernelVersion: "6.8.0-45-generic", NicDriver: "mlx5", Ready: true},
		}},
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "retry", Spec: fleetSpec(0, 1)})); err != nil {
		t.Fatal(err)
	}
	stream, err := c.agents.WatchAssignment(ctx, connect.NewRequest(&ebbflowv1.WatchAssignmentRequest{Cluster: "c-00"}))
	if err != nil {
		t.Fatal(err)
	}
	var as *ebbflowv1.Assignment
	for as.GetId() == "" && stream.Receive() {
		as = stream.Msg().GetAssignment()
	}
	if as.GetId() == "" {
		t.Fatalf("no assignment: %v", stream.Err())
	}
	ref := &ebbflowv1.ReportRef{Cluster: "c-00", AssignmentId: as.GetId(), ProfileRevision: as.GetProfileRevision(), Phase: as.GetPhase()}
	for _, st := range []ebbflowv1.PhaseStatus{ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED, ebbflowv1.PhaseStatus_PHASE_STATUS_VERIFIED} {
		if _, err := c.agents.ReportPhaseStatus(ctx, connect.NewRequest(&ebbflowv1.ReportPhaseStatusRequest{Ref: ref, Status: st, ReportTime: timestamppb.Now()})); err != nil {
			t.Fatal(err)
		}
	}
	window := &ebbflowv1.Measurement{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://target", SamplesMs: []float64{1, 1.1, 0.9},
		StartTime: timestamppb.New(time.Unix(1700000000, 0)), EndTime: timestamppb.New(time.Unix(1700000010, 0))}
	req := &ebbflowv1.ReportMeasurementRequest{Ref: ref, ReportTime: timestamppb.Now(), Measurements: []*ebbflowv1.Measurement{window}}
	for range 2 {
		res, err := c.agents.ReportMeasurement(ctx, connect.NewRequest(req))
		if err != nil || !res.Msg.GetAccepted() {
			t.Fatalf("report: %v %v", res, err)
		}
	}
	got, err := c.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: "retry"}))
	if err != nil {
		t.Fatal(err)
	}
	if ms := got.Msg.GetRollout().GetWaves()[0].GetClusters()[0].GetResults()[0].GetMeasurements(); len(ms) != 1 {
		t.Fatalf("%d measurements stored after the same window was reported twice, want 1", len(ms))
	}
}
