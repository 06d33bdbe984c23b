package controller

import (
	"context"
	"fmt"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout"
	"github.com/ebbflow/ebbflow/store"
)

// Agent reports are decided in batches: the reports that arrive while the previous batch is
// being written are decided together, one after another on the state the earlier ones left,
// and written as one Raft entry (store.ApplyBatch). Each report still gets its own answer: its
// own command's result in the batch. Under load a batch holds every report that came in during
// one Raft round trip, so the leader's throughput grows with the load instead of queueing
// behind one commit per report.

// maxReportBatch bounds the reports decided and written together.
const maxReportBatch = 256

// reportQueue holds the reports waiting for the next batch.
type reportQueue struct {
	mu      sync.Mutex
	pending []*pendingReport
	running bool // a goroutine is draining the queue
	taken   int  // reports taken into batches so far
}

type pendingReport struct {
	rep   rollout.Report
	audit *auditCall
	done  chan struct{}

	accepted bool
	reason   string
	err      error
}

// submitReport queues an agent report for the next batch and waits for its decision. If ctx
// ends first the report may still be applied.
func (s *Server) submitReport(ctx context.Context, rep rollout.Report) (bool, string, error) {
	if !s.store.IsLeader() {
		return false, "", store.ErrNotLeader
	}
	p := &pendingReport{rep: rep, audit: auditCallOf(ctx), done: make(chan struct{})}
	if p.audit != nil {
		// The batch writes the record, whether or not the caller still waits: a caller that
		// gives up must not cost a Raft write of its own.
		p.audit.mu.Lock()
		p.audit.batched = true
		p.audit.mu.Unlock()
	}
	q := &s.reports
	q.mu.Lock()
	q.pending = append(q.pending, p)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go s.drainReports()
	}
	select {
	case <-p.done:
		return p.accepted, p.reason, p.err
	case <-ctx.Done():
		return false, "", ctx.Err()
	}
}

// drainReports decides batches until the queue is empty.
func (s *Server) drainReports() {
	q := &s.reports
	for {
		q.mu.Lock()
		n := min(len(q.pending), maxReportBatch)
		batch := q.pending[:n:n]
		q.pending = q.pending[n:]
		q.taken += n
		if n == 0 {
			q.pending = nil
			q.running = false
		}
		q.mu.Unlock()
		if n == 0 {
			return
		}
		s.decideReports(batch)
		for _, p := range batch {
			close(p.done)
		}
	}
}

// decideReports decides one batch and writes it. Reports that do not match their cluster's
// current assignment are refused here, with the reason, and write nothing.
func (s *Server) decideReports(batch []*pendingReport) {
	ctx, cancel := context.WithTimeout(store.WithProposalKind(context.Background(), "report"), s.cfg.ReportTimeout)
	defer cancel()
	s.rolloutMu.Lock()
	defer s.rolloutMu.Unlock()
	fail := func(err error) {
		for _, p := range batch {
			if p.err == nil && !p.accepted && p.reason == "" {
				p.err = err
			}
		}
	}
	if !s.store.IsLeader() {
		fail(store.ErrNotLeader)
		return
	}
	if err := s.linearize(ctx); err != nil {
		fail(err)
		return
	}
	now := s.now()
	// work holds the rollouts decided on in this batch, as the decisions so far left them. Each
	// is the batch's own (ActiveRollout assembles a new header and new slices of shared, read-only
	// records), so a decision puts its one new record in place instead of copying the wave.
	work := map[string]*ebbflowv1.Rollout{}
	var (
		cmds   []*storev1.Command
		owners []*pendingReport
	)
	for _, p := range batch {
		cluster := p.rep.Ref.GetCluster()
		if _, ok := s.store.Registered(cluster); !ok {
			p.err = connect.NewError(connect.CodeNotFound, fmt.Errorf("cluster %q is not registered", cluster))
			continue
		}
		h, ok := s.store.HolderOf(cluster)
		if !ok {
			p.reason = "no active assignment for this cluster"
			continue
		}
		id := h.Header.GetId()
		r := work[id]
		if r == nil {
			if r, ok = s.store.ActiveRollout(id); !ok {
				p.reason = "no active assignment for this cluster"
				continue
			}
		}
		if p.rep.Status == ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED {
			var err error
			if r, err = s.withMeasurements(ctx, r, h.Wave, h.Index); err != nil {
				p.err = err
				continue
			}
		}
		ch, events, ok, why := rollout.IngestRecord(r, int(h.Wave), int(h.Index), p.rep, now)
		if !ok {
			p.reason = why
			continue
		}
		cmd := &storev1.Command{Actor: "agent:" + cluster, Body: &storev1.Command_PatchRollout{PatchRollout: &storev1.PatchRollout{
			RolloutId: id, ExpectedGeneration: r.GetGeneration(), Events: events,
			Clusters: recordPatches(int32(ch.Wave), int32(ch.Index), ch.Old, ch.New),
		}}}
		if p.audit != nil {
			cmd.Audit = s.auditEntry(p.audit)
		}
		// r is this batch's own copy (see work): the next report of its rollout is decided on
		// it as this one leaves it.
		r.Waves[ch.Wave].Clusters[ch.Index] = ch.New
		r.Generation++
		work[id] = r
		cmds = append(cmds, cmd)
		owners = append(owners, p)
	}
	// A refused report's audit record rides in the same entry: a storm of stale reports (agents
	// retrying after a leader change, or after giving up on a slow answer) must not cost one
	// Raft write each.
	for _, p := range batch {
		if p.audit == nil || p.reason == "" && p.err == nil {
			continue
		}
		e := s.auditEntry(p.audit)
		e.Code = store.AuditOK
		e.Message = clip("not accepted: "+p.reason, maxAuditMessage)
		if p.err != nil {
			e.Code, e.Message = connect.CodeOf(p.err).String(), clip(p.err.Error(), maxAuditMessage)
		}
		cmds = append(cmds, &storev1.Command{Time: timestamppb.New(now), Actor: p.audit.actor, Audit: e, Body: &storev1.Command_RecordAudit{RecordAudit: &storev1.RecordAudit{}}})
		owners = append(owners, p)
	}
	if len(cmds) == 0 {
		return
	}
	results, err := s.raw.ApplyBatch(ctx, cmds)
	for i, p := range owners {
		var res error
		if err == nil {
			res = results[i].Err
		} else {
			res = err
		}
		if p.reason != "" || p.err != nil { // a refusal: only its audit record was written
			if p.audit != nil && err == nil && res == nil {
				p.audit.mu.Lock()
				p.audit.written = true
				p.audit.mu.Unlock()
			}
			continue
		}
		if p.audit != nil {
			p.audit.mu.Lock()
			if err == nil {
				p.audit.written = true
			} else if err != store.ErrNotLeader { //nolint:errorlint // only the bare sentinel means "not proposed"
				p.audit.uncertain = true
			}
			p.audit.mu.Unlock()
		}
		p.accepted, p.err = res == nil, res
	}
}

// withMeasurements returns r with the stored measurements of the record at (wave, index)
// attached to a copy of that record (the judge compares them), unless they are attached
// already.
func (s *Server) withMeasurements(ctx context.Context, r *ebbflowv1.Rollout, wave, index int32) (*ebbflowv1.Rollout, error) {
	rec := r.GetWaves()[wave].GetClusters()[index]
	for _, res := range rec.GetResults() {
		if len(res.GetMeasurements()) > 0 {
			return r, nil
		}
	}
	var ms store.MeasurementsByResult
	if err := s.store.View(ctx, store.Stale, func(tx *store.Tx) error {
		var err error
		ms, err = tx.ClusterMeasurements(r.GetId(), wave, index)
		return err
	}); err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return r, nil
	}
	rec = proto.Clone(rec).(*ebbflowv1.RolloutCluster)
	ms.AttachTo(rec)
	// r is the batch's own (see decideReports): replacing one pointer of its slice changes no
	// one else's view.
	r.Waves[wave].Clusters[index] = rec
	return r, nil
}
