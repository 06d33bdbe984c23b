package fleetsim

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/e2e/process"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// controllerBin builds fleet-controller from the module, or takes FLEETSIM_CONTROLLER_BIN
// (a binary built elsewhere, e.g. from another revision while the tree does not build).
func controllerBin(ctx context.Context, t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("FLEETSIM_CONTROLLER_BIN"); bin != "" {
		return bin
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := BuildController(ctx, root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestSimulatedFleetSmoke runs every mode with 20 simulated agents, 2 of them regressing,
// against a real 3-node group: the rollout ends SUCCEEDED with the 2 rolled back and the rest
// succeeded, every agent got its first assignment, and the table has every figure.
func TestSimulatedFleetSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fleet-controller and runs three of them with 20 agents")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := controllerBin(ctx, t)
	dir := t.TempDir()
	o := Options{
		N: 20, Regress: 2, Dir: dir, IdleWindow: 2 * time.Second, HeartbeatInterval: 500 * time.Millisecond,
		ConnectTimeout: time.Minute, WaveTimeout: 90 * time.Second, Seed: 7, Log: process.TestLog(t),
	}
	r, err := Run(ctx, o, "new", bin)
	if err != nil {
		process.DumpLogs(t, filepath.Join(dir, "logs", "*.log"))
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := Table(&table, []*Result{r}, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	defer func() {
		if t.Failed() {
			process.DumpLogs(t, filepath.Join(dir, "logs", "*.log"))
		}
	}()

	if r.Registered != 20 || r.Connected != 20 || r.FirstAssigned != 20 {
		t.Errorf("registered %d, connected %d, given a first assignment %d; want 20 each", r.Registered, r.Connected, r.FirstAssigned)
	}
	if r.TimedOut || r.EndState != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
		t.Errorf("rollout: %s; want SUCCEEDED", r.Summary())
	}
	regress := map[string]bool{}
	for _, i := range regressing(20, 2) {
		regress[clusterName(i, 20)] = true
	}
	if len(r.ClusterEnds) != 20 {
		t.Errorf("the rollout holds %d clusters, want 20", len(r.ClusterEnds))
	}
	for c, st := range r.ClusterEnds {
		want := ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SUCCEEDED
		if regress[c] {
			want = ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK
		}
		if st != want {
			t.Errorf("cluster %s ended %s, want %s", c, st, want)
		}
	}
	if r.Rollbacks != 2 {
		t.Errorf("%d regressions timed to their rollback, want 2", r.Rollbacks)
	}
	for _, rw := range rows {
		if v := rw.get(r); math.IsNaN(v) {
			raftFigure := strings.HasPrefix(rw.label, "wave: Raft bytes") || rw.label == "wave: reports per report entry"
			if raftFigure && (r.RaftBytesKinds == "not exposed" || strings.Contains(r.RaftBytesKinds, "no command counter")) {
				continue // a controller without the proposal counters (or without the command counter)
			}
			if rw.label == "idle: heartbeat CPU (leader CPU / heartbeat)" && r.Heartbeats == 0 {
				continue // no heartbeat sent: the agents' open streams are their liveness
			}
			t.Errorf("figure %q is n/a", rw.label)
		}
	}
	if len(r.Notes) > 0 {
		t.Errorf("notes: %s", strings.Join(r.Notes, "; "))
	}
}
