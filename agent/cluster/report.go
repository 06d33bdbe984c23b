package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Reporter receives the driver's reports. Every report carries the ReportRef of the assignment
// (cluster, assignment id, profile revision, phase).
type Reporter interface {
	// Status reports a phase status.
	Status(ctx context.Context, ref *ebbflowv1.ReportRef, s StatusReport) error
	// Measurements reports the measurements of a phase, before its MEASURED status.
	Measurements(ctx context.Context, ref *ebbflowv1.ReportRef, ms []*ebbflowv1.Measurement) error
}

// StatusReport is one phase status report.
type StatusReport struct {
	Status  ebbflowv1.PhaseStatus
	Message string
	// HelmBefore and HelmAfter are the release revisions around the step.
	HelmBefore, HelmAfter int32
	// Preflight lists the reasons when the status is PREFLIGHT_FAILED.
	Preflight []string
	// KprBatch is the node batch of a node-by-node kpr phase the report is about.
	KprBatch *ebbflowv1.KprBatchStatus
}

// GRPCReporter reports to the controller's AgentService, retrying transient failures.
type GRPCReporter struct {
	client ebbflowv1.AgentServiceClient
	// Attempts per report (default 8); Timeout per attempt (default 15 s); Backoff is the
	// first wait between attempts, doubled each time up to MaxBackoff (default 250 ms and 10 s).
	Attempts            int
	Timeout             time.Duration
	Backoff, MaxBackoff time.Duration
	// Now stamps report_time (default time.Now).
	Now func() time.Time
}

// NewGRPCReporter returns a Reporter over an AgentServiceClient. A report is retried on
// Unavailable, DeadlineExceeded, ResourceExhausted, Aborted and Internal; a report the
// controller refuses (accepted=false: a stale assignment) is not retried and returns
// ErrReportRejected.
func NewGRPCReporter(client ebbflowv1.AgentServiceClient) Reporter {
	return &GRPCReporter{client: client}
}

// Status implements Reporter.
func (g *GRPCReporter) Status(ctx context.Context, ref *ebbflowv1.ReportRef, s StatusReport) error {
	req := &ebbflowv1.ReportPhaseStatusRequest{
		Ref: ref, Status: s.Status, Message: s.Message, ReportTime: timestamppb.New(g.now()),
		HelmRevisionBefore: s.HelmBefore, HelmRevisionAfter: s.HelmAfter, PreflightReasons: s.Preflight,
		KprBatch: s.KprBatch,
	}
	return g.retry(ctx, "status "+s.Status.String(), func(ctx context.Context) (bool, string, error) {
		res, err := g.client.ReportPhaseStatus(ctx, req)
		return res.GetAccepted(), res.GetReason(), err
	})
}

// Measurements implements Reporter.
func (g *GRPCReporter) Measurements(ctx context.Context, ref *ebbflowv1.ReportRef, ms []*ebbflowv1.Measurement) error {
	req := &ebbflowv1.ReportMeasurementRequest{Ref: ref, Measurements: ms, ReportTime: timestamppb.New(g.now())}
	return g.retry(ctx, "measurements", func(ctx context.Context) (bool, string, error) {
		res, err := g.client.ReportMeasurement(ctx, req)
		return res.GetAccepted(), res.GetReason(), err
	})
}

func (g *GRPCReporter) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *GRPCReporter) retry(ctx context.Context, what string, call func(context.Context) (bool, string, error)) error {
	attempts := g.Attempts
	if attempts <= 0 {
		attempts = 8
	}
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	wait, maxWait := g.Backoff, g.MaxBackoff
	if wait <= 0 {
		wait = 250 * time.Millisecond
	}
	if maxWait <= 0 {
		maxWait = 10 * time.Second
	}
	var err error
	for i := range attempts {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		var accepted bool
		var reason string
		accepted, reason, err = call(cctx)
		cancel()
		if err == nil {
			if !accepted {
				return fmt.Errorf("%w: %s: %s", ErrReportRejected, what, reason)
			}
			return nil
		}
		if !retryable(err) || i == attempts-1 {
			break
		}
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("report %s: %w (last error: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
	return fmt.Errorf("report %s: %w", what, err)
}

func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal:
		return true
	}
	return false
}
