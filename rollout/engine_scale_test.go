package rollout

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// TestScale10k: on a rollout of 10,000 clusters, the first Step hands out every assignment,
// and an agent report changes exactly the reporting cluster's record and nothing else.
func TestScale10k(t *testing.T) {
	x := mustBig(t)
	if got := len(x.pending.GetWaves()); got != 1 || len(x.pending.GetWaves()[0].GetClusters()) != bigN {
		t.Fatalf("%d waves", got)
	}

	// New + Step: every cluster gets its baseline assignment (no concurrency limit). The lookup
	// stands in for the registry; it must be asked for each cluster.
	asked := 0
	world := World{Now: x.now, Lookup: func(name string) (*ebbflowv1.Cluster, bool) {
		asked++
		c, ok := x.world[name]
		return c, ok
	}}
	running, ev, changed := Step(x.pending, world)
	if !changed || asked != bigN {
		t.Fatalf("changed %v, lookups %d", changed, asked)
	}
	assigned := 0
	for _, c := range running.GetWaves()[0].GetClusters() {
		if c.GetState() == cApplyingS && c.GetAction() == aApply && c.GetAssignmentId() == "r1."+c.GetCluster()+".1" {
			assigned++
		}
	}
	if assigned != bigN || len(ev) != bigN+1 { // one assign per cluster and the wave's start
		t.Fatalf("%d assigned, %d events", assigned, len(ev))
	}
	if d := Diff(x.pending, running); !d.HeaderChanged || len(d.Clusters) != bigN {
		t.Fatalf("first step: %d records changed, header %v", len(d.Clusters), d.HeaderChanged)
	}
	if !proto.Equal(running, x.running) {
		t.Fatal("Lookup and the Clusters map disagree")
	}

	// A report from the middle of the wave: one record, no header.
	const mid = bigN / 2
	c := running.GetWaves()[0].GetClusters()[mid]
	rep := Report{
		Ref:    &ebbflowv1.ReportRef{Cluster: c.GetCluster(), AssignmentId: c.GetAssignmentId(), ProfileRevision: running.GetProfileRevision(), Phase: baseline},
		Status: stVerified, ReportTime: x.now.Add(time.Minute),
	}
	for _, hint := range [][2]int{{-1, -1}, {0, mid}} {
		next, ev, ok, why := IngestAt(running, hint[0], hint[1], rep, x.now.Add(time.Minute))
		if !ok {
			t.Fatal(why)
		}
		d := Diff(running, next)
		if d.HeaderChanged || len(d.Clusters) != 1 || d.Clusters[0].Wave != 0 || d.Clusters[0].Index != mid || len(ev) != 1 {
			t.Fatalf("hint %v: header %v, %d records, %d events", hint, d.HeaderChanged, len(d.Clusters), len(ev))
		}
		if got := d.Clusters[0].Cluster; got.GetState() != cMeasuringS || c.GetState() != cApplyingS {
			t.Fatalf("record %s, input %s", got.GetState(), c.GetState())
		}
		shared := 0
		for i, rc := range next.GetWaves()[0].GetClusters() {
			if rc == running.GetWaves()[0].GetClusters()[i] {
				shared++
			}
		}
		if shared != bigN-1 {
			t.Fatalf("%d records shared; want %d", shared, bigN-1)
		}
	}

	// A step with nothing to do returns its input.
	if next, ev, changed := Step(running, World{Now: x.now.Add(time.Minute), Clusters: x.world}); changed || next != running || len(ev) != 0 {
		t.Fatal("an idle step changed the rollout")
	}
}
