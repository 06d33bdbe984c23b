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
	cl := f.ClientsFor(c.URL)
	for {
		res, err := cl.Clusters.GetCluster(ctx, connect.NewRequest(&ebbflowv1.GetClusterRequest{
			Name: "c1", Read: &ebbflowv1.ReadOptions{Consistency: ebbflowv1.Consistency_CONSISTENCY_STALE},
		}))
		if err == nil && res.Msg.GetCluster().GetLabels()["note"] == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never served c1 with note=%s (last: %v)", c.ID, want, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
