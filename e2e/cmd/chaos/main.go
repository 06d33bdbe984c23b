// Command chaos runs many fault-injection runs (e2e/faults) against a real fleet-controller
// group, one after another, and prints a line per run and a summary: faults per kind,
// operations, linearizability violations, lost writes, divergent replicas, wall time.
//
//	go run ./e2e/cmd/chaos --runs 100 --seed 1
//
// Run i uses seed+i; `--runs 1 --seed S` reproduces run S's fault schedule (with the same
// --kinds, which narrows the kinds injected: --kinds disk-full,membership). A run that finds
// anything keeps its directory (data, logs, history.jsonl and porcupine's visualisation) and
// names it. The kinds are kill, pause, partition-minority, partition-leader, partition-bridge,
// disk-full (a node's tmpfs filled) and membership (a voter removed and added back); the
// summary says how many full disks and membership changes hit the leader and how many left
// the node to be restarted. Partitions and full disks need root (and mount(2)); without it
// they are skipped and said so.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ebbflow/ebbflow/e2e/faults"
	"github.com/ebbflow/ebbflow/e2e/process"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

func run() error {
	runs := flag.Int("runs", 10, "number of runs")
	seed := flag.Int64("seed", 0, "seed of the first run (run i uses seed+i); 0 picks one at random")
	duration := flag.Duration("duration", 20*time.Second, "how long the clients run under faults, per run")
	nodes := flag.Int("nodes", 3, "size of the controller group (3 or 5)")
	clients := flag.Int("clients", 4, "concurrent clients")
	bin := flag.String("controller-bin", "", "fleet-controller binary (default: built from this module into a temporary directory)")
	visDir := flag.String("vis-dir", "", "where porcupine's visualisations go (default: the run's directory)")
	raftTimeout := flag.Duration("raft-timeout", time.Second, "the nodes' Raft heartbeat and election timeout")
	verbose := flag.Bool("v", false, "print each fault as it is injected")
	only := flag.String("kinds", "", "comma-separated kinds of fault to inject (default: every kind this machine allows); a seed reproduces its schedule only with the same kinds")
	flag.Parse()
	if *seed == 0 {
		*seed = 1 + rand.Int64N(1_000_000)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kinds, why := faults.AvailableKinds()
	if why != "" {
		fmt.Println(why)
	}
	if *only != "" {
		var picked []faults.Kind
		for _, name := range strings.Split(*only, ",") {
			k := faults.Kind(strings.TrimSpace(name))
			if !slices.Contains(faults.AllKinds, k) {
				return fmt.Errorf("--kinds: unknown kind %q (kinds: %v)", k, faults.AllKinds)
			}
			if !slices.Contains(kinds, k) {
				return fmt.Errorf("--kinds: %s cannot be injected here: %s", k, why)
			}
			picked = append(picked, k)
		}
		kinds = picked
	}
	if *bin == "" {
		tmp, err := os.MkdirTemp("", "ebbflow-chaos-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if *bin, err = process.BuildController(ctx, "", tmp); err != nil {
			return err
		}
	} else if err := process.AbsBinaries(bin); err != nil {
		return err
	}
	fmt.Printf("%d runs of %s, seeds %d..%d, %d nodes, %d clients, faults %v\n", *runs, *duration, *seed, *seed+int64(*runs)-1, *nodes, *clients, kinds)
	began := time.Now()
	var rs []*faults.Result
	var errs []error
	for i := range *runs {
		if ctx.Err() != nil {
			break
		}
		s := *seed + int64(i)
		dir, err := os.MkdirTemp("", fmt.Sprintf("ebbflow-chaos-%d-", s))
		if err != nil {
			return err
		}
		o := faults.Options{Seed: s, Duration: *duration, Nodes: *nodes, Clients: *clients, Kinds: kinds, Bin: *bin, Dir: dir,
			VisDir: *visDir, RaftTimeout: *raftTimeout}
		if *verbose {
			o.Log = os.Stdout
		}
		r, err := faults.Run(ctx, o)
		rs, errs = append(rs, r), append(errs, err)
		verdict := "clean"
		switch {
		case err != nil:
			verdict = "not carried out: " + err.Error()
		case r.Err() != nil:
			verdict = "FOUND: " + r.Err().Error()
			if len(r.KnownBug) > 0 {
				verdict += fmt.Sprintf("\n  known bug (%s): %v", faults.RerunAfterLeadershipLost, r.KnownBug)
			}
		}
		fmt.Printf("run %d/%d seed %d: %d ops, faults %v, %s: %s\n", i+1, *runs, s, r.TotalOps(), r.Faults, r.Check, verdict)
		if err == nil && r.Err() == nil {
			os.RemoveAll(dir)
		} else {
			fmt.Printf("  kept %s\n", dir)
		}
	}
	fmt.Println()
	if err := faults.WriteRuns(os.Stdout, rs, errs); err != nil {
		return err
	}
	fmt.Println()
	sum := faults.Summarize(rs, errs, time.Since(began))
	if err := sum.WriteSummary(os.Stdout); err != nil {
		return err
	}
	if sum.Failed > 0 || sum.Violations > 0 || sum.Lost > 0 || sum.Phantom > 0 || sum.Divergent > 0 || sum.Problems > 0 || sum.Undecided > 0 {
		return errors.New("some runs found problems or could not be carried out (see above)")
	}
	return nil
}
