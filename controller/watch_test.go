package controller_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/ebbflow/ebbflow/controller/controllertest"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// WatchRollout's narrowed streams: changes only (a client merging them by cluster ends with
// exactly the rollout GetRollout returns), without measurements, and one cluster only;
// GetRollout and ListRollouts without measurements; and a cluster's rollout positions while it
// is held in a phase.
func TestWatchRolloutChangesAndFilters(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{Config: fastEngine})
	c := newClients(n.URL)
	applyBareMetal(t, c)
	hold, reached := make(chan struct{}), make(chan string, 4)
	controllertest.StartFleet(t, []string{n.URL}, 6, nil, func(a *controllertest.Agent) {
		if a.Name == "c-01" {
			a.HoldAt, a.Hold, a.Reached = ebbflowv1.Phase_PHASE_L7, hold, reached
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.rollouts.CreateRollout(ctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "w", Spec: fleetSpec(0, 1)})); err != nil {
		t.Fatal(err)
	}

	changes, err := c.rollouts.WatchRollout(ctx, connect.NewRequest(&ebbflowv1.WatchRolloutRequest{Id: "w", ChangesOnly: true, OmitMeasurements: true}))
	if err != nil {
		t.Fatal(err)
	}
	one, err := c.rollouts.WatchRollout(ctx, connect.NewRequest(&ebbflowv1.WatchRolloutRequest{Id: "w", Cluster: "c-03"}))
	if err != nil {
		t.Fatal(err)
	}

	// While c-01 is held in l7, the fleet's view of it says so.
	select {
	case <-reached:
	case <-time.After(time.Minute):
		t.Fatal("c-01 did not reach its hold in l7")
	}
	controllertest.Eventually(t, 30*time.Second, "c-01's rollout position", func() bool {
		res, err := c.clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: "c-01"}))
		if err != nil {
			t.Fatal(err)
		}
		ps := res.Msg.GetCluster().GetRollouts()
		return len(ps) == 1 && ps[0].GetRollout() == "w" && ps[0].GetWave() == 0 && ps[0].GetPhase() == ebbflowv1.Phase_PHASE_L7 && ps[0].GetState() == "measuring"
	})
	close(hold)

	// The changes stream: a full first message, then partial ones carrying fewer records.
	merged := map[string]*ebbflowv1.RolloutCluster{}
	var last *ebbflowv1.Rollout
	msgs, partialSmaller := 0, false
	for changes.Receive() {
		m := changes.Msg()
		total := 0
		for _, w := range m.GetRollout().GetWaves() {
			for _, rec := range w.GetClusters() {
				total++
				merged[rec.GetCluster()] = rec
				for _, res := range rec.GetResults() {
					if len(res.GetMeasurements()) > 0 {
						t.Fatalf("message %d: %s carries measurements despite omit_measurements", msgs, rec.GetCluster())
					}
				}
			}
		}
		if msgs == 0 && (m.GetPartial() || total != 6) {
			t.Fatalf("first message: partial %v with %d records, want the full rollout of 6", m.GetPartial(), total)
		}
		if msgs > 0 && !m.GetPartial() {
			t.Fatalf("message %d is not partial", msgs)
		}
		if msgs > 0 && total < 6 {
			partialSmaller = true
		}
		last = m.GetRollout()
		msgs++
	}
	if err := changes.Err(); err != nil {
		t.Fatal(err)
	}
	if !partialSmaller {
		t.Fatalf("%d messages, none carrying fewer than all 6 records", msgs)
	}
	got, err := c.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: "w"}))
	if err != nil {
		t.Fatal(err)
	}
	final := got.Msg.GetRollout()
	if final.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED || last.GetState() != final.GetState() {
		t.Fatalf("rollout %v, last streamed state %v", final.GetState(), last.GetState())
	}
	measured, results := 0, 0
	for _, w := range final.GetWaves() {
		for _, rec := range w.GetClusters() {
			for _, res := range rec.GetResults() {
				results++
				if d := res.GetMeasurements()[0].GetDistribution(); d.GetCount() > 0 && len(d.GetLatencyMs()) == len(d.GetQuantiles()) {
					measured++
				}
				res.Measurements = nil
			}
			if !proto.Equal(merged[rec.GetCluster()], rec) {
				t.Errorf("%s merged from the changes differs from GetRollout's", rec.GetCluster())
			}
		}
	}
	// Every result (4 phases, kpr in two node batches) keeps its latency distribution.
	if measured != results || results != 6*5 {
		t.Errorf("%d of %d results keep a latency distribution, want 30 of 30", measured, results)
	}

	// GetRollout and ListRollouts without measurements: the same records, none of them.
	lean, err := c.rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: "w", OmitMeasurements: true}))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(lean.Msg.GetRollout(), final) {
		t.Error("GetRollout with omit_measurements differs from the full rollout without its measurements")
	}
	list, err := c.rollouts.ListRollouts(ctx, connect.NewRequest(&ebbflowv1.ListRolloutsRequest{OmitMeasurements: true}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Msg.GetRollouts()) != 1 || !proto.Equal(list.Msg.GetRollouts()[0], final) {
		t.Error("ListRollouts with omit_measurements differs from the full rollout without its measurements")
	}

	// The one-cluster stream: only c-03, with its measurements.
	for one.Receive() {
		for _, w := range one.Msg().GetRollout().GetWaves() {
			for _, rec := range w.GetClusters() {
				if rec.GetCluster() != "c-03" {
					t.Fatalf("the c-03 stream carries %s", rec.GetCluster())
				}
				last = one.Msg().GetRollout()
			}
		}
	}
	if err := one.Err(); err != nil {
		t.Fatal(err)
	}
	recs := last.GetWaves()[1].GetClusters()
	if len(recs) != 1 || len(recs[0].GetResults()) != 5 || len(recs[0].GetResults()[4].GetMeasurements()) == 0 {
		t.Fatalf("the c-03 stream's last message: %d records, the first with %d results", len(recs), len(recs[0].GetResults()))
	}

	// A cluster the rollout does not list.
	s, err := c.rollouts.WatchRollout(ctx, connect.NewRequest(&ebbflowv1.WatchRolloutRequest{Id: "w", Cluster: "c-99"}))
	if err != nil {
		t.Fatal(err)
	}
	for s.Receive() {
		t.Fatal("a message for a cluster the rollout does not list")
	}
	if connect.CodeOf(s.Err()) != connect.CodeNotFound {
		t.Fatalf("watch of an unlisted cluster: %v, want NotFound", s.Err())
	}
}
