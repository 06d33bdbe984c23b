package cluster

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// flakyController is a real gRPC AgentService that fails the first calls with Unavailable and
// refuses reports of assignment "stale".
type flakyController struct {
	ebbflowv1.UnimplementedAgentServiceServer
	mu       sync.Mutex
	failures int
	statuses []*ebbflowv1.ReportPhaseStatusRequest
	measured []*ebbflowv1.ReportMeasurementRequest
}

func (f *flakyController) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return status.Error(codes.Unavailable, "leader changing")
	}
	return nil
}

func (f *flakyController) ReportPhaseStatus(_ context.Context, req *ebbflowv1.ReportPhaseStatusRequest) (*ebbflowv1.ReportPhaseStatusResponse, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	if req.GetRef().GetAssignmentId() == "stale" {
		return &ebbflowv1.ReportPhaseStatusResponse{Accepted: false, Reason: "not the current assignment"}, nil
	}
	f.mu.Lock()
	f.statuses = append(f.statuses, req)
	f.mu.Unlock()
	return &ebbflowv1.ReportPhaseStatusResponse{Accepted: true}, nil
}

func (f *flakyController) ReportMeasurement(_ context.Context, req *ebbflowv1.ReportMeasurementRequest) (*ebbflowv1.ReportMeasurementResponse, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.measured = append(f.measured, req)
	f.mu.Unlock()
	return &ebbflowv1.ReportMeasurementResponse{Accepted: true}, nil
}

func TestGRPCReporter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	fc := &flakyController{failures: 2}
	ebbflowv1.RegisterAgentServiceServer(srv, fc)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := NewGRPCReporter(ebbflowv1.NewAgentServiceClient(conn)).(*GRPCReporter)
	r.Backoff = 10 * time.Millisecond
	ctx := context.Background()
	ref := &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "a1", ProfileRevision: 2, Phase: ebbflowv1.Phase_PHASE_KPR}

	if err := r.Status(ctx, ref, StatusReport{Status: ebbflowv1.PhaseStatus_PHASE_STATUS_APPLIED, Message: "ok", HelmBefore: 3, HelmAfter: 4}); err != nil {
		t.Fatalf("status after two Unavailable: %v", err)
	}
	fc.failures = 1
	if err := r.Measurements(ctx, ref, []*ebbflowv1.Measurement{{Target: "x"}}); err != nil {
		t.Fatal(err)
	}
	if len(fc.statuses) != 1 || fc.statuses[0].GetHelmRevisionBefore() != 3 || fc.statuses[0].GetHelmRevisionAfter() != 4 ||
		fc.statuses[0].GetReportTime() == nil || fc.statuses[0].GetRef().GetPhase() != ebbflowv1.Phase_PHASE_KPR || len(fc.measured) != 1 {
		t.Errorf("controller got %v / %v", fc.statuses, fc.measured)
	}
	stale := &ebbflowv1.ReportRef{Cluster: "c1", AssignmentId: "stale", ProfileRevision: 2, Phase: ebbflowv1.Phase_PHASE_KPR}
	if err := r.Status(ctx, stale, StatusReport{Status: ebbflowv1.PhaseStatus_PHASE_STATUS_APPLIED}); !errors.Is(err, ErrReportRejected) {
		t.Errorf("stale report: %v, want ErrReportRejected", err)
	}
	fc.failures = 100
	r.Attempts = 3
	if err := r.Status(ctx, ref, StatusReport{Status: ebbflowv1.PhaseStatus_PHASE_STATUS_VERIFIED}); status.Code(errors.Unwrap(err)) != codes.Unavailable {
		t.Errorf("after 3 attempts: %v", err)
	}
	if fc.failures != 97 {
		t.Errorf("%d attempts, want 3", 100-fc.failures)
	}
}
