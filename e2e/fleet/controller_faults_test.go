package fleet_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/ebbflow/ebbflow/e2e/fleet"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// A follower whose Raft log was damaged on disk refuses to start, naming the log and the way
// out; started again with --rejoin it moves its old state aside, the group removes its old
// membership and adds it back empty, and it catches up with everything acknowledged before.
func TestDamagedLogRefusesThenRejoins(t *testing.T) {
	f := fleet.ForTest(t, fleet.Options{Bins: bins})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const marker = "written-before-the-damage"
	_, err := f.Client().Clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{
		Name: "c1", Labels: map[string]string{"note": marker},
	}))
	if err != nil {
		t.Fatal(err)
	}
	leader, err := f.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var victim *fleet.Controller
	for _, c := range f.Controllers {
		if c != leader {
			victim = c
		}
	}
	// The follower has the entry once it serves it.
	waitStale(t, ctx, f, victim, marker)
	victim.Proc.Stop()

	segs, err := filepath.Glob(filepath.Join(victim.DataDir, "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no WAL segments in %s (%v)", victim.DataDir, err)
	}
	damaged := false
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte(marker)); i >= 0 {
			b[i] ^= 0x20
			if err := os.WriteFile(seg, b, 0o600); err != nil {
				t.Fatal(err)
			}
			damaged = true
		}
	}
	if !damaged {
		t.Fatalf("the entry is in none of %v", segs)
	}

	err = f.RestartController(ctx, victim)
	if err == nil {
		t.Fatal("the node started on a damaged log")
	}
	log, rerr := os.ReadFile(victim.Proc.Log)
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, want := range []string{filepath.Join(victim.DataDir, "wal") + " is damaged", "entry", "checksum", "--rejoin"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the refusal does not say %q:\n%s", want, tail(string(log), 20))
		}
	}

	if err := f.RestartController(ctx, victim, "--rejoin"); err != nil {
		t.Fatal(err)
	}
	aside, _ := filepath.Glob(filepath.Join(victim.DataDir, "before-rejoin-*", "wal"))
	if len(aside) != 1 {
		t.Errorf("the old log was not kept aside: %v", aside)
	}
	waitStale(t, ctx, f, victim, marker)
	st, err := f.ClientsFor(victim.URL).Controller.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, m := range st.Msg.GetMembers() {
		if m.GetVoter() {
			voters++
		}
	}
	if voters != 3 {
		t.Fatalf("%d voters after the rejoin, want 3: %v", voters, st.Msg.GetMembers())
	}
}

// waitStale waits until c serves cluster c1 with the note label value want from its own state.
func waitStale(t *testing.T, ctx context.Context, f *fleet.Fleet, c *fleet.Controller, want string) {
	t.Helper()
	waitServes(t, ctx, f, c, "c1", func(cl *ebbflowv1.Cluster) bool { return cl.GetLabels()["note"] == want })
}

// waitStaleOf waits until c serves cluster name from its own state.
func waitStaleOf(t *testing.T, ctx context.Context, f *fleet.Fleet, c *fleet.Controller, name string) {
	t.Helper()
	waitServes(t, ctx, f, c, name, func(*ebbflowv1.Cluster) bool { return true })
}

// waitServes waits until c serves cluster name, read from its own state, such that ok.
func waitServes(t *testing.T, ctx context.Context, f *fleet.Fleet, c *fleet.Controller, name string, ok func(*ebbflowv1.Cluster) bool) {
	t.Helper()
	cl := f.ClientsFor(c.URL)
	for {
		res, err := cl.Clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{
			Name: name, Read: &ebbflowv1.ReadOptions{Consistency: ebbflowv1.Consistency_CONSISTENCY_STALE},
		}))
		if err == nil && ok(res.Msg.GetCluster()) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never served cluster %s as expected (last: %v)", c.ID, name, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// A write sent to a follower while the leader is stalled (SIGSTOP: its sockets stay open and
// nothing answers) fails with Unavailable as soon as the follower sees a new leader, not at
// the caller's deadline; a retry then succeeds through the new leader. A linearizable read
// forwarded at the same time is sent again to the new leader and answers (a read has no
// outcome to lose). The stalled leader, resumed, rejoins as a follower.
func TestForwardedCallFailsFastWhenTheLeaderChanges(t *testing.T) {
	f := fleet.ForTest(t, fleet.Options{Bins: bins})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	leader, err := f.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var via *fleet.Controller
	for _, c := range f.Controllers {
		if c != leader {
			via = c
		}
	}
	cl := f.ClientsFor(via.URL)
	register := func(ctx context.Context, name string) error {
		_, err := cl.Clusters.RegisterCluster(ctx, connect.NewRequest(&ebbflowv1.RegisterClusterRequest{Name: name}))
		return err
	}
	if err := register(ctx, "before"); err != nil { // the follower's connection to the leader is up
		t.Fatal(err)
	}
	if err := leader.Proc.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := leader.Proc.Resume(); err != nil {
				t.Error(err)
			}
		}
	}
	defer resume()

	const deadline = time.Minute
	callCtx, callCancel := context.WithTimeout(ctx, deadline)
	read := make(chan error, 1)
	go func() {
		_, err := cl.Clusters.GetCluster(callCtx, connect.NewRequest(&ebbflowv1.GetClusterRequest{Name: "before"}))
		read <- err
	}()
	start := time.Now()
	err = register(callCtx, "during")
	took := time.Since(start)
	if err := <-read; err != nil {
		t.Errorf("linearizable read forwarded to the stalled leader: %v, want it answered by the new leader", err)
	}
	callCancel()
	if connect.CodeOf(err) != connect.CodeUnknown || !strings.Contains(err.Error(), "leader changed") || !strings.Contains(err.Error(), "outcome unknown") {
		t.Fatalf("write forwarded to the stalled leader: %v after %s, want Unknown: outcome unknown: the leader changed", err, took)
	}
	if took > deadline/2 {
		t.Fatalf("the forwarded write took %s to fail, near its deadline of %s", took, deadline)
	}
	t.Logf("the forwarded write failed after %s: %v", took.Round(time.Millisecond), err)
	// The retry waits at the follower for the new leader (if the election is still on)
	// rather than failing at once.
	// A second leader change may answer this one UNKNOWN as well; a registration is an upsert,
	// so sending it again is safe.
	for attempt := 0; ; attempt++ {
		err := register(ctx, "after")
		if err == nil {
			break
		}
		if connect.CodeOf(err) != connect.CodeUnknown || attempt == 3 {
			t.Fatalf("retry through the new leader: %v", err)
		}
		t.Logf("retry through the new leader: %v; sending it again", err)
	}
	resume()
	waitStaleOf(t, ctx, f, leader, "after")
}
