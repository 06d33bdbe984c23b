// Command raftbench compares fleet-controller's replicated write path and failover with etcd's:
// a 3-node group of each on 127.0.0.1, the same closed-loop write load against each in turn,
// then leader kills under a steady load (see package e2e/raftbench). With --ref-controller-bin
// a reference fleet-controller (e.g. a previous revision) runs as a third side.
//
//	go run ./e2e/cmd/raftbench --clients 1,16,64 --duration 10s --rounds 3
//	make bench-raft REF=HEAD~1 RAFTBENCH_FLAGS='--mode failover --kills 10'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ebbflow/ebbflow/e2e/process"
	"github.com/ebbflow/ebbflow/e2e/raftbench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "raftbench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		o                                   raftbench.Options
		clients, mode, extra, out, dir      string
		bin, refBin, refLabel, etcdBin      string
		keep, removed                       bool
		timeout                             time.Duration
		writesMode, failoverMode, anyRunErr bool
	)
	flag.StringVar(&clients, "clients", "1,16,64", "writes mode: comma-separated concurrencies (closed-loop clients, each writing its own key)")
	flag.DurationVar(&o.Duration, "duration", 10*time.Second, "writes mode: how long each side runs at each concurrency, per round")
	flag.IntVar(&o.Rounds, "rounds", 3, "writes mode: rounds per concurrency (sides rotated each round); the table shows the median")
	flag.IntVar(&o.ValueSize, "value-size", 256, "bytes per written value (ebbflow: cut into cluster label values of 60 characters)")
	flag.BoolVar(&o.LeaderOnly, "leader-only", false, "writes mode: send every client to the leader (etcd: the leader's endpoint only) instead of spreading them over the three nodes")
	flag.StringVar(&mode, "mode", "both", "writes, failover or both")
	flag.IntVar(&o.Kills, "kills", 30, "failover mode: leader kills per side")
	flag.IntVar(&o.FailoverClients, "failover-clients", 4, "failover mode: clients writing while the leader is killed")
	flag.DurationVar(&o.CallTimeout, "call-timeout", 300*time.Millisecond, "failover mode: timeout of each write; a failed write is retried on the next node")
	flag.DurationVar(&o.RecoveryTimeout, "recovery-timeout", 30*time.Second, "failover mode: how long a kill waits for the first acknowledged write")
	flag.StringVar(&bin, "controller-bin", "", "fleet-controller to measure (default: build ./cmd/fleet-controller into ./bin)")
	flag.StringVar(&refBin, "ref-controller-bin", "", "a reference fleet-controller run as a third side (make bench-raft REF=<rev> builds one)")
	flag.StringVar(&refLabel, "ref-label", "ref", "the reference side's name; it is shown as ebbflow@<name>")
	flag.StringVar(&etcdBin, "etcd-bin", "", "etcd to compare with (default: kubebox's etcd, built into ~/.cache/ebbflow/kubebox first if need be)")
	flag.StringVar(&extra, "extra-controller-flags", "", "flags added to every fleet-controller node, space-separated, e.g. '--raft-heartbeat-timeout=300ms --raft-election-timeout=300ms'")
	flag.StringVar(&out, "out", "", "also write the results as JSON to this file")
	flag.StringVar(&dir, "dir", "", "directory for the nodes' data and logs (default: a temporary one)")
	flag.BoolVar(&keep, "keep", false, "keep the temporary directory (data and logs)")
	flag.DurationVar(&timeout, "timeout", 2*time.Hour, "stop everything after this long")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	for _, c := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("--clients %q: want comma-separated positive numbers", clients)
		}
		o.Clients = append(o.Clients, n)
	}
	switch mode {
	case "writes":
		writesMode = true
	case "failover":
		failoverMode = true
	case "both":
		writesMode, failoverMode = true, true
	default:
		return fmt.Errorf("--mode %q: want writes, failover or both", mode)
	}
	if o.ValueSize < raftbench.MinValueSize {
		return fmt.Errorf("--value-size must be at least %d", raftbench.MinValueSize)
	}
	o.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var err error
	if bin == "" {
		fmt.Fprintln(os.Stderr, "raftbench: building ./cmd/fleet-controller into ./bin")
		if bin, err = process.BuildController(ctx, "", ""); err != nil {
			return fmt.Errorf("%w\n(or pass --controller-bin)", err)
		}
	}
	if etcdBin == "" {
		if etcdBin, err = raftbench.EtcdBinary(ctx, os.Stderr); err != nil {
			return err
		}
	}
	if err := process.AbsBinaries(&bin, &refBin, &etcdBin); err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "raftbench-"); err != nil {
			return err
		}
		if !keep {
			removed = true
			defer os.RemoveAll(dir)
		} else {
			fmt.Fprintf(os.Stderr, "raftbench: data and logs in %s\n", dir)
		}
	}
	o.Dir = dir

	flags := strings.Fields(extra)
	specs := []raftbench.SideSpec{
		{Label: raftbench.EbbflowLabel, Bin: bin, Flags: flags},
		{Label: raftbench.EtcdLabel, Bin: etcdBin, Etcd: true},
	}
	if refBin != "" {
		specs = append(specs, raftbench.SideSpec{Label: raftbench.EbbflowLabel + "@" + refLabel, Bin: refBin, Flags: flags})
	}
	sides, err := raftbench.StartSides(ctx, dir, specs, os.Stderr)
	if err != nil {
		return fmt.Errorf("%w (logs in %s; --keep keeps them)", err, dir)
	}
	defer raftbench.StopSides(sides)

	report := raftbench.Report{Sides: map[string]string{}}
	for _, sp := range specs {
		report.Sides[sp.Label] = sp.Bin
	}
	var runErr error
	if writesMode {
		report.Writes, runErr = raftbench.Writes(ctx, o, sides)
	}
	if failoverMode && runErr == nil {
		report.Failover, runErr = raftbench.Failover(ctx, o, sides)
	}
	anyRunErr = runErr != nil

	where := dir
	if removed {
		where += " (removed at the end; --keep keeps it)"
	}
	fmt.Printf("\nraftbench: 3-node groups on 127.0.0.1, %d CPUs, %d-byte values, data in %s\n", runtime.NumCPU(), o.ValueSize, where)
	for _, sp := range specs {
		fmt.Printf("  %s: %s", sp.Label, sp.Bin)
		if len(sp.Flags) > 0 {
			fmt.Printf(" %s", strings.Join(sp.Flags, " "))
		}
		fmt.Println()
	}
	if w := report.Writes; w != nil && len(w.Runs) > 0 {
		spread := "client i on node i%3 (followers forward)"
		if o.LeaderOnly {
			spread = "every client on the leader"
		}
		fmt.Printf("\nwrites: closed loop, each client its own key, %s per run, %d round(s) (median), %s; etcd: one clientv3 over the endpoints\n\n",
			o.Duration, o.Rounds, spread)
		if err := raftbench.WritesTable(os.Stdout, w); err != nil {
			return err
		}
	}
	if f := report.Failover; f != nil && len(f.Kills) > 0 {
		fmt.Printf("\nfailover: %d kill(s) per side (SIGKILL of the leader, restart, heal), %d writing clients, %s per write; time from the kill to the first acknowledged write sent after it\n\n",
			o.Kills, f.Clients, f.CallTimeout)
		if err := raftbench.FailoverTable(os.Stdout, f); err != nil {
			return err
		}
	}
	if out != "" {
		b, err := report.JSON()
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if anyRunErr {
		if keep || errors.Is(runErr, context.Canceled) {
			return runErr
		}
		return fmt.Errorf("%w (rerun with --keep to keep the nodes' logs)", runErr)
	}
	return nil
}
