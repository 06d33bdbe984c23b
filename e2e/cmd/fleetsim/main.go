// Command fleetsim is the fleet simulator: it load-tests fleet-controller with a real 3-node
// group on 127.0.0.1 and N simulated agents (the real agent loop, a simulated cluster driver),
// and prints one table of figures (see package e2e/fleetsim). With --ref-controller-bin it
// runs a reference binary side by side and prints the ratios.
//
//	go run ./e2e/cmd/fleetsim --n 1000
//	make bench-fleet N=10000 REF=HEAD~1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ebbflow/ebbflow/e2e/fleetsim"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		o                   fleetsim.Options
		mode, regressPhase  string
		bin, refBin         string
		rounds              int
		timeout             time.Duration
		connectRate, idleWn = 500.0, 30 * time.Second
	)
	flag.IntVar(&o.N, "n", 1000, "simulated agents (clusters)")
	flag.StringVar(&mode, "mode", "all", "all, or a comma-separated list of idle, wave, rollback (wave and rollback share one rollout)")
	flag.IntVar(&o.Regress, "regress", -1, "clusters whose --regress-phase measures 3x slower (judged a regression, rolled back); -1: max(2, N/100)")
	flag.StringVar(&regressPhase, "regress-phase", "l7", "the phase the regressing clusters regress in: l7, kpr or xdp")
	flag.StringVar(&bin, "controller-bin", "", "fleet-controller to measure (default: build ./cmd/fleet-controller into ./bin)")
	flag.StringVar(&refBin, "ref-controller-bin", "", "a reference fleet-controller, run side by side (ref, new, ref, new, ...) and compared")
	flag.IntVar(&rounds, "rounds", 1, "rounds of runs; the table shows the median")
	flag.DurationVar(&idleWn, "idle-window", idleWn, "how long the idle figures are measured")
	flag.Float64Var(&connectRate, "connect-rate", connectRate, "agents started per second")
	flag.IntVar(&o.Samples, "samples", 200, "latency samples per measurement (the rollout's minSamples is half)")
	flag.Uint64Var(&o.Seed, "seed", 1, "seed of the synthetic latencies")
	flag.DurationVar(&o.StepDelay, "step-delay", 0, "each simulated step waits up to this long (uniform) before its report")
	flag.DurationVar(&o.HeartbeatInterval, "heartbeat-interval", 0, "the controllers' --heartbeat-interval (0: their default, 10s)")
	flag.StringVar(&o.ControllerLogLevel, "controller-log-level", "info", "the controllers' --log-level")
	flag.Func("controller-flag", "a flag added to every controller's command line, e.g. --controller-flag=--pprof-listen=127.0.0.1:0 (repeatable)", func(v string) error {
		o.ControllerFlags = append(o.ControllerFlags, v)
		return nil
	})
	flag.DurationVar(&o.ConnectTimeout, "connect-timeout", 0, "how long to wait for every agent to register and connect (0: 2m + 20ms per agent)")
	flag.DurationVar(&o.WaveTimeout, "wave-timeout", 10*time.Minute, "how long to wait for the rollout to end")
	flag.DurationVar(&timeout, "timeout", 2*time.Hour, "stop everything after this long")
	flag.StringVar(&o.Dir, "dir", "", "directory for the controllers' data and logs (default: a temporary one)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (data and logs)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	var err error
	if o.Modes, err = fleetsim.ParseModes(mode); err != nil {
		return err
	}
	p, ok := ebbflowv1.Phase_value["PHASE_"+strings.ToUpper(regressPhase)]
	if !ok || p <= int32(ebbflowv1.Phase_PHASE_BASELINE) {
		return fmt.Errorf("--regress-phase %q: want l7, kpr or xdp", regressPhase)
	}
	o.RegressPhase, o.ConnectRate, o.IdleWindow, o.Log = ebbflowv1.Phase(p), connectRate, idleWn, os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if bin == "" {
		root, err := fleetsim.RepoRoot()
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "fleetsim: building ./cmd/fleet-controller into ./bin")
		if bin, err = fleetsim.BuildController(ctx, root, filepath.Join(root, "bin")); err != nil {
			return err
		}
	}
	for _, b := range []*string{&bin, &refBin} {
		if *b == "" {
			continue
		}
		if *b, err = filepath.Abs(*b); err != nil {
			return err
		}
		if _, err := os.Stat(*b); err != nil {
			return fmt.Errorf("controller binary: %w", err)
		}
	}
	news, refs, err := fleetsim.Compare(ctx, o, bin, refBin, rounds)
	if err != nil && len(news) == 0 {
		return err
	}
	fmt.Printf("\nfleetsim: %d simulated agents, 3 fleet-controller nodes on 127.0.0.1 (--insecure), %d CPUs, modes %s, %d round(s)\n",
		o.N, runtime.NumCPU(), mode, max(rounds, 1))
	fmt.Printf("  new: %s\n", bin)
	if refBin != "" {
		fmt.Printf("  ref: %s\n", refBin)
	}
	fmt.Println()
	if terr := fleetsim.Table(os.Stdout, news, refs); terr != nil {
		return terr
	}
	return err
}
