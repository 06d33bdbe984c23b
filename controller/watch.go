package controller

import (
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// rolloutView is what one WatchRollout stream sends: the rollout narrowed to one cluster and
// without measurements when asked, and, with changes_only, only the records that changed since
// the previous message. It keeps the last view it sent, keyed by cluster.
type rolloutView struct {
	req  *ebbflowv1.WatchRolloutRequest
	sent map[string]*ebbflowv1.RolloutCluster // by cluster id; nil before the first message
	head *ebbflowv1.Rollout                   // the last header sent, waves without clusters
}

// next returns the message to send for rollout r (which it may narrow in place: callers pass
// their own copy) or nil when nothing the caller watches changed.
func (v *rolloutView) next(r *ebbflowv1.Rollout) (*ebbflowv1.WatchRolloutResponse, error) {
	if c := v.req.GetCluster(); c != "" {
		found := false
		for _, w := range r.GetWaves() {
			kept := w.Clusters[:0:0]
			for _, rec := range w.GetClusters() {
				if rec.GetCluster() == c {
					kept, found = append(kept, rec), true
				}
			}
			w.Clusters = kept
		}
		if !found {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("cluster: rollout %q does not list cluster %q", r.GetId(), c))
		}
	}
	if v.req.GetOmitMeasurements() {
		for _, w := range r.GetWaves() {
			for i, rec := range w.GetClusters() {
				if hasMeasurements(rec) {
					rec = proto.Clone(rec).(*ebbflowv1.RolloutCluster)
					for _, res := range rec.GetResults() {
						res.Measurements = nil
					}
					w.Clusters[i] = rec
				}
			}
		}
	}
	head := header(r)
	first := v.sent == nil
	changed := first || !proto.Equal(head, v.head)
	out := r
	if !first && v.req.GetChangesOnly() {
		out = proto.Clone(head).(*ebbflowv1.Rollout)
	}
	for i, w := range r.GetWaves() {
		for _, rec := range w.GetClusters() {
			if prev, ok := v.sent[rec.GetCluster()]; ok && (prev == rec || proto.Equal(prev, rec)) {
				continue
			}
			changed = true
			if out != r {
				out.Waves[i].Clusters = append(out.Waves[i].Clusters, rec)
			}
		}
	}
	if !changed {
		return nil, nil
	}
	if v.sent == nil {
		v.sent = map[string]*ebbflowv1.RolloutCluster{}
	}
	for _, w := range r.GetWaves() {
		for _, rec := range w.GetClusters() {
			v.sent[rec.GetCluster()] = rec
		}
	}
	v.head = head
	return &ebbflowv1.WatchRolloutResponse{Rollout: out, Partial: out != r}, nil
}

// header is r without its cluster records (a copy; r is not changed).
func header(r *ebbflowv1.Rollout) *ebbflowv1.Rollout {
	waves := r.Waves
	r.Waves = nil
	h := proto.Clone(r).(*ebbflowv1.Rollout)
	r.Waves = waves
	h.Waves = make([]*ebbflowv1.Wave, len(waves))
	for i, w := range waves {
		cs := w.Clusters
		w.Clusters = nil
		h.Waves[i] = proto.Clone(w).(*ebbflowv1.Wave)
		w.Clusters = cs
	}
	return h
}

func hasMeasurements(rec *ebbflowv1.RolloutCluster) bool {
	for _, res := range rec.GetResults() {
		if len(res.GetMeasurements()) > 0 {
			return true
		}
	}
	return false
}
