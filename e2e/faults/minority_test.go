package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/e2e/process"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// A node cut off from the majority refuses linearizable reads and writes with UNAVAILABLE
// (it cannot reach a leader, and must not answer from its own replica), while it still serves
// stale reads when they are asked for: the value it held when it was cut off, not the one the
// majority wrote since. Once healed it catches up.
func TestMinorityRefusesAndServesStale(t *testing.T) {
	if err := CanUseNetns(); err != nil {
		t.Skipf("partitions not available: %v", err)
	}
	bin := controllerBin(t)
	dir := runDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	g, err := StartGroup(ctx, GroupOptions{Bin: bin, Dir: dir, Nodes: 3, Netns: true, Log: process.TestLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	key := ClusterKey("stale-a")
	if err := createKeys(ctx, g, NewHistory(), []Key{key}); err != nil {
		t.Fatal(err)
	}
	hc := g.HTTPClient()
	defer hc.CloseIdleConnections()
	l, err := g.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	minority := (l + 1) % 3
	var majority []int
	for i := range 3 {
		if i != minority {
			majority = append(majority, i)
		}
	}
	m := g.ClientsOf(hc, minority)
	before, err := key.Write(ctx, g.ClientsOf(hc, l), "before", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The write is acknowledged once a majority has it; wait until the minority has applied it.
	if err := pollState(ctx, m, key, ebbflowv1.Consistency_CONSISTENCY_STALE, before); err != nil {
		t.Fatal(err)
	}

	if err := g.Net.Partition(ctx, []int{minority}, majority); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Net.Heal(context.Background()) })
	t.Logf("%s cut off from %s and %s", g.Nodes[minority].ID, g.Nodes[majority[0]].ID, g.Nodes[majority[1]].ID)

	// Until it notices (a heartbeat timeout), it may still forward to the old leader; then it
	// must refuse.
	err = poll(ctx, time.Minute, g.Nodes[minority].ID+" refusing linearizable reads", func(ctx context.Context) error {
		_, err := key.Read(ctx, m, ebbflowv1.Consistency_CONSISTENCY_LINEARIZABLE)
		if connect.CodeOf(err) != connect.CodeUnavailable {
			return fmt.Errorf("linearizable read: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		cctx, ccancel := context.WithTimeout(ctx, 15*time.Second)
		st, err := key.Read(cctx, m, ebbflowv1.Consistency_CONSISTENCY_LINEARIZABLE)
		if code := connect.CodeOf(err); code != connect.CodeUnavailable {
			ccancel()
			t.Fatalf("linearizable read %d on the minority: %v, %v; want unavailable", i, st, err)
		}
		st, err = key.Write(cctx, m, fmt.Sprintf("minority-%d", i), 0)
		ccancel()
		if code := connect.CodeOf(err); code != connect.CodeUnavailable {
			t.Fatalf("write %d on the minority: %v, %v; want unavailable", i, st, err)
		}
	}

	// The majority elects a leader (or keeps its own) and takes writes.
	var after State
	err = poll(ctx, time.Minute, "a write on the majority", func(ctx context.Context) error {
		var err error
		after, err = key.Write(ctx, g.ClientsOf(hc, majority[rand.IntN(2)]), "after", 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if after.Version <= before.Version {
		t.Fatalf("write on the majority: %v after %v", after, before)
	}
	// A stale read on the minority is served, from its replica: what it had when cut off.
	for i := range 3 {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := key.Read(cctx, m, ebbflowv1.Consistency_CONSISTENCY_STALE)
		ccancel()
		if err != nil {
			t.Fatalf("stale read %d on the minority: %v", i, err)
		}
		if st != before {
			t.Fatalf("stale read %d on the minority: %v, want %v (written before the cut)", i, st, before)
		}
	}
	// A linearizable read on the majority sees the new value.
	if err := pollState(ctx, g.ClientsOf(hc, majority[0]), key, ebbflowv1.Consistency_CONSISTENCY_LINEARIZABLE, after); err != nil {
		t.Fatal(err)
	}

	if err := g.Net.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pollState(ctx, m, key, ebbflowv1.Consistency_CONSISTENCY_STALE, after); err != nil {
		t.Fatal(err)
	}
	if err := pollState(ctx, m, key, ebbflowv1.Consistency_CONSISTENCY_LINEARIZABLE, after); err != nil {
		t.Fatal(err)
	}
}

// pollState waits until reading key through c at level gives want.
func pollState(ctx context.Context, c *Clients, key Key, level ebbflowv1.Consistency, want State) error {
	return poll(ctx, time.Minute, fmt.Sprintf("%s read %s on %s = %v", level, key.Name(), c.Node.ID, want), func(ctx context.Context) error {
		st, err := key.Read(ctx, c, level)
		if err != nil {
			return err
		}
		if st != want {
			return fmt.Errorf("got %v", st)
		}
		return nil
	})
}

// TestSeed1RerunAfterLeadershipLost reproduces what seed 1 found: writes in flight on the
// leader when it is paused past an election. Their proposals fail with
// raft.ErrLeadershipLost when it wakes, and the controller re-runs them on the new leader
// although they were committed (RerunAfterLeadershipLost). Seen with seed 1:
// SetClusterLabels(chaos-b, expected_generation 67) answered ABORTED "expected generation
// 67, have 68" while its labels were stored as generation 68.
//
// Fixed: a proposal that loses its leader is store.ErrOutcomeUnknown (UNKNOWN), never forwarded
// or run again; this test keeps it so. (Each attempt tags its values: the attempts write to the
// same keys, and a value reused by a later attempt read as a write applied twice.)
func TestSeed1RerunAfterLeadershipLost(t *testing.T) {
	bin := controllerBin(t)
	dir := runDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	g, err := StartGroup(ctx, GroupOptions{Bin: bin, Dir: dir, Nodes: 3, Log: process.TestLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	h := NewHistory()
	keys := []Key{ProfileKey("rerun-p"), ClusterKey("rerun-a")}
	if err := createKeys(ctx, g, h, keys); err != nil {
		t.Fatal(err)
	}
	for attempt := range 5 {
		l, err := g.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Clients call only the leader, with a deadline past the pause, so the calls caught
		// by it are still waiting when it wakes.
		w := &workload{g: g, h: h, keys: keys, opTime: 15 * time.Second, nodes: []int{l}, tag: fmt.Sprintf("a%d-", attempt)}
		runCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for c := 1; c <= 4; c++ {
			rng := rand.New(rand.NewPCG(1, uint64(10*attempt+c)))
			wg.Go(func() { w.client(runCtx, c, rng) })
		}
		// Let the writes flow before the pause.
		n0 := len(h.Ops())
		err = poll(ctx, time.Minute, "writes on the leader", func(context.Context) error {
			if n := len(h.Ops()) - n0; n < 20 {
				return fmt.Errorf("%d operations", n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Pause(l); err != nil {
			t.Fatal(err)
		}
		// The paused leader's calls wait while another node is elected.
		err = poll(ctx, time.Minute, "another node to lead while the leader is paused", func(ctx context.Context) error {
			for i := range g.Nodes {
				if i == l || !g.Running(i) {
					continue
				}
				if st, err := g.Status(ctx, i); err == nil && st.GetState() == ebbflowv1.RaftState_RAFT_STATE_LEADER {
					return nil
				}
			}
			return errors.New("no other leader yet")
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Resume(l); err != nil {
			t.Fatal(err)
		}
		stop()
		wg.Wait()
		if err := g.Converged(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := finalReads(ctx, g, h, keys, 99); err != nil {
			t.Fatal(err)
		}
		stored, err := storedVersions(ctx, g, keys)
		if err != nil {
			t.Fatal(err)
		}
		if sigs := RerunSignatures(h.Ops(), stored); len(sigs) > 0 {
			t.Fatalf("attempt %d: %d writes re-run after the leader's pause:\n%v", attempt+1, len(sigs), sigs)
		}
	}
}
