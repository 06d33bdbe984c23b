package rollout

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// bigN is the size of the fleet of the scale tests and benchmarks.
const bigN = 10_000

// big is a rollout of bigN clusters in one wave without a concurrency limit, built once:
// pending is New's result, running the first Step's (every cluster APPLYING baseline). The
// decisions never mutate their input, so tests and benchmarks share them read-only.
type big struct {
	world            map[string]*ebbflowv1.Cluster
	pending, running *ebbflowv1.Rollout
	now              time.Time
}

var bigRollout = sync.OnceValues(func() (*big, error) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "profiles", "eks.yaml"))
	if err != nil {
		return nil, err
	}
	name, pspec, err := profile.DecodeYAML(b)
	if err != nil {
		return nil, err
	}
	prof := &ebbflowv1.Profile{Name: name, Revision: 3, Spec: pspec}
	spec := explicitSpec(&ebbflowv1.WaveSpec{Selector: "env=prod"})
	spec.Profile = prof.GetName()
	spec.Phases = []ebbflowv1.Phase{baseline, kpr}
	checked, err := CheckSpec(spec)
	if err != nil {
		return nil, err
	}
	x := &big{world: make(map[string]*ebbflowv1.Cluster, bigN), now: t0}
	fleet := make([]*ebbflowv1.Cluster, 0, bigN)
	for i := range bigN {
		c := fleetCluster(fmt.Sprintf("c%05d", i))
		fleet = append(fleet, c)
		x.world[c.GetName()] = c
	}
	if x.pending, _, err = New("r1", checked, prof, fleet, "alice", t0); err != nil {
		return nil, err
	}
	running, _, changed := Step(x.pending, World{Now: t0, Clusters: x.world})
	if !changed {
		return nil, fmt.Errorf("the first step changed nothing")
	}
	x.running = running
	return x, nil
})

func mustBig(tb testing.TB) *big {
	tb.Helper()
	x, err := bigRollout()
	if err != nil {
		tb.Fatal(err)
	}
	return x
}

// BenchmarkStep10k: Step on a rollout of 10,000 clusters. assign-all starts the rollout and
// hands out 10,000 assignments (deep work on every record is inherent); idle is the periodic
// step with nothing to do, which every tick of the engine pays.
func BenchmarkStep10k(b *testing.B) {
	x := mustBig(b)
	b.Run("assign-all", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, changed := Step(x.pending, World{Now: x.now, Clusters: x.world}); !changed {
				b.Fatal("no change")
			}
		}
	})
	b.Run("idle", func(b *testing.B) {
		now := x.now.Add(time.Minute)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, changed := Step(x.running, World{Now: now, Clusters: x.world}); changed {
				b.Fatal("changed")
			}
		}
	})
}

// BenchmarkIngest10k: one agent report into a rollout of 10,000 clusters.
func BenchmarkIngest10k(b *testing.B) {
	x := mustBig(b)
	c := x.running.GetWaves()[0].GetClusters()[bigN/2]
	rep := Report{
		Ref:    &ebbflowv1.ReportRef{Cluster: c.GetCluster(), AssignmentId: c.GetAssignmentId(), ProfileRevision: x.running.GetProfileRevision(), Phase: c.GetPhase()},
		Status: stStarted, ReportTime: x.now.Add(30 * time.Second),
	}
	now := x.now.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok, why := Ingest(x.running, rep, now); !ok {
			b.Fatal(why)
		}
	}
}
