package faults

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/e2e/process"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// controllerBin builds fleet-controller once for the package's tests, into a temporary
// directory removed when they end (TestMain).
func controllerBin(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "ebbflow-faults-bin-"); build.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		build.bin, build.err = process.BuildController(ctx, "", build.dir)
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// runDir is a directory for one run's data and logs: removed when the test passed, kept and
// named when it failed.
func runDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ebbflow-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			process.DumpLogs(t, filepath.Join(dir, "logs", "*.log"))
			t.Logf("data and logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

// shortSeeds are the fixed seeds of the short runs; a third, random seed is added (and
// printed) each time.
var shortSeeds = []int64{1, 2}

// TestShortRuns runs a few short fault-injection runs, each of which must keep the history
// linearizable, lose no acknowledged write, show no failed write and end with equal replicas.
// Together they must have injected every kind of fault this machine allows.
func TestShortRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("fault injection runs take a minute or two")
	}
	kinds, why := AvailableKinds()
	if why != "" {
		t.Log(why)
	}
	bin := controllerBin(t)
	seeds := append(append([]int64(nil), shortSeeds...), rand.Int64N(1_000_000))
	t.Logf("seeds %v (reproduce one with: make chaos RUNS=1 SEED=<seed>)", seeds)
	injected := map[Kind]int{}
	for _, seed := range seeds {
		ok := t.Run("seed-"+strconv.FormatInt(seed, 10), func(t *testing.T) {
			dir := runDir(t)
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			r, err := Run(ctx, Options{Seed: seed, Duration: 25 * time.Second, Bin: bin, Dir: dir, Kinds: kinds, Log: process.TestLog(t)})
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			for k, n := range r.Faults {
				injected[k] += n
			}
			if len(r.Injected) == 0 {
				t.Fatalf("seed %d: no fault injected", seed)
			}
			if r.Ops["write ok"]+r.Ops["cas ok"] == 0 || r.Ops["read ok"] == 0 {
				t.Fatalf("seed %d: the clients got nothing done: %v", seed, r.Ops)
			}
			if len(r.KnownBug) > 0 {
				t.Fatalf("seed %d: the marks of %s are back: %v", seed, RerunAfterLeadershipLost, r.KnownBug)
			}
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			t.Logf("seed %d: %d ops %v, faults %v", seed, r.TotalOps(), r.Ops, r.Faults)
		})
		if !ok {
			return
		}
	}
	for _, k := range kinds {
		if injected[k] == 0 {
			t.Errorf("no %s fault in seeds %v: %v", k, seeds, injected)
		}
	}
}
