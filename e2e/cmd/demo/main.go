// Command demo runs Ebbflow's main job on this machine: a 3-node fleet-controller, N real local
// Kubernetes clusters (kubebox) each with its own fleet-agent and latency target, and a staged
// rollout of the local tuning profile in which one cluster regresses and is rolled back by
// itself, shown live by `fleetctl rollout status --watch`.
//
//	go run ./e2e/cmd/demo --clusters 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/term"

	"github.com/ebbflow/ebbflow/e2e/fleet"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func main() {
	n := flag.Int("clusters", 3, "number of local Kubernetes clusters, each with its own agent (1 to 20)")
	keep := flag.Bool("keep", false, "keep the logs and data when the demo ends")
	stay := flag.Bool("stay", term.IsTerminal(int(os.Stdin.Fd())), "stay up after the rollout until interrupted (default: when run from a terminal)")
	shots := flag.String("screenshots", "", "save pictures of the dashboard during the rollout into this directory (needs chromium)")
	flag.Parse()
	if *n < 1 || *n > 20 {
		fmt.Fprintln(os.Stderr, "demo: --clusters: want 1 to 20")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *n, *keep, *stay, *shots); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Printf("\n\033[1m== %s\033[0m\n", fmt.Sprintf(format, args...))
}

// clusters names the demo's clusters eu-1..eu-N on rings 0..N-1. The third has a node on a
// 5.4 kernel, so preflight holds its kpr and xdp; the second regresses after l7.
func clusters(n int) []fleet.ClusterSpec {
	var out []fleet.ClusterSpec
	for i := range n {
		c := fleet.ClusterSpec{Name: fmt.Sprintf("eu-%d", i+1), Labels: map[string]string{"env": "prod", "region": "eu", "ring": fmt.Sprint(i)}}
		if i == 2 {
			c.Kernels = []string{"6.1.112-124.190.amzn2023.x86_64", "5.4.0-150-generic"}
		}
		out = append(out, c)
	}
	return out
}

// rollout is the demo's rollout: a canary, then the rest in waves of about half; one failed
// cluster per wave is tolerated.
func rollout(n int) fleet.Rollout {
	return fleet.Rollout{ID: "demo", Selector: "env=prod,region=eu", Canary: 1, WaveSize: max(2, n/2),
		WaveFailures: 1, CanarySoak: 2 * time.Second}
}

func run(ctx context.Context, n int, keep, stay bool, shots string) error {
	root, err := fleet.RepoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ebbflow-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if keep {
			fmt.Printf("\nlogs and data kept in %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	say("Starting a 3-node fleet-controller (Raft on bbolt) and %d local Kubernetes clusters with an agent each", n)
	fmt.Println("(the first run builds the Kubernetes binaries, about 10 minutes; they are cached)")
	start := time.Now()
	f, err := fleet.Start(ctx, fleet.Options{Dir: dir, Root: root, Clusters: clusters(n), Log: os.Stdout})
	if err != nil {
		return err
	}
	defer f.Stop()
	fmt.Printf("fleet up in %s\n", time.Since(start).Round(time.Second))
	leader := f.Controllers[0].URL
	ctl := func(args ...string) error {
		fmt.Printf("$ fleetctl %s\n", strings.Join(args, " "))
		cmd := f.FleetctlCmd(ctx, leader, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	if err := ctl("controller", "status"); err != nil {
		return err
	}

	say("Security: mutual TLS everywhere, one-time join tokens for agents, roles for people")
	fmt.Printf("every agent joined with a one-time token and calls with a certificate bound to its cluster;\n"+
		"fleetctl calls as the admin created on first start (--ca %s --token-file %s)\n", f.CAFile, f.AdminTokenFile)
	for _, args := range [][]string{{"whoami"}, {"token", "list"}} {
		if err := ctl(args...); err != nil {
			return err
		}
	}
	fmt.Println("$ fleetctl cluster list   # without a token")
	anon := f.FleetctlCmd(ctx, leader, "cluster", "list")
	anon.Env = append(anon.Env, "EBBFLOW_TOKEN_FILE=")
	anon.Stdout, anon.Stderr = os.Stdout, os.Stdout
	if err := anon.Run(); err == nil {
		return errors.New("an unauthenticated call was accepted")
	}

	say("Tuning profiles: validate, apply, revise, diff")
	eks := filepath.Join(root, "deploy/profiles/eks.yaml")
	b, err := os.ReadFile(eks)
	if err != nil {
		return err
	}
	eks2 := filepath.Join(dir, "eks-v2.yaml")
	if err := os.WriteFile(eks2, []byte(strings.Replace(string(b), "namespaces: [checkout, payments]", "namespaces: [checkout, payments, search]", 1)), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"profile", "validate", "-f", "deploy/profiles/eks.yaml"},
		{"profile", "apply", "-f", "deploy/profiles/eks.yaml"},
		{"profile", "apply", "-f", eks2},
		{"profile", "diff", "eks"},
		{"profile", "apply", "-f", "e2e/demo-profile.yaml"},
		{"profile", "list"},
	} {
		if err := ctl(args...); err != nil {
			return err
		}
	}

	say("The fleet: what each agent reported, plus a cluster cordoned for a change freeze")
	for _, args := range [][]string{
		{"cluster", "register", "eu-frozen", "-l", "env=prod,region=eu,ring=9"},
		{"cluster", "cordon", "eu-frozen", "--reason", "change freeze"},
		{"cluster", "list", "-l", "env=prod"},
	} {
		if err := ctl(args...); err != nil {
			return err
		}
	}

	say("Dry run: waves, and the phases preflight holds")
	spec := filepath.Join(dir, "rollout.yaml")
	if err := os.WriteFile(spec, []byte(rollout(n).YAML()), 0o644); err != nil {
		return err
	}
	if err := ctl("rollout", "plan", "-f", spec); err != nil {
		return err
	}

	say("A staged rollout: a canary, then the rest; every phase measured against the baseline")
	if n >= 2 {
		fmt.Println("eu-2's latency target gets 3x slower once its l7 phase is measured: a real regression in kpr")
	}
	if err := ctl("rollout", "create", "-f", spec); err != nil {
		return err
	}
	fmt.Printf("the same rollout, live in a browser: %s/ui/#/rollouts/demo\n"+
		"  sign in with the admin's token: cat %s\n"+
		"  (the page is served over TLS by the fleet's own CA, %s: trust it, or accept the warning)\n", leader, f.AdminTokenFile, f.CAFile)
	shotsDone := make(chan struct{})
	if shots != "" {
		go func() { defer close(shotsDone); screenshots(ctx, leader, f.AdminTokenFile, shots) }()
	} else {
		close(shotsDone)
	}
	if n >= 2 {
		slow := f.Cluster("eu-2")
		go func() {
			match := func(e *ebbflowv1.RolloutEvent) bool {
				return e.GetKind() == "report" && e.GetCluster() == "eu-2" && strings.HasPrefix(e.GetMessage(), "l7 MEASURED")
			}
			if _, err := f.WaitEvent(ctx, "demo", 15*time.Minute, "eu-2's l7 measured", match); err == nil {
				_ = slow.SetDelay(ctx, 30*time.Millisecond)
			}
		}()
	}
	err = ctl("rollout", "status", "demo", "--watch")
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return err
	}
	if ee != nil {
		fmt.Printf("(the rollout did not succeed: fleetctl exited %d)\n", ee.ExitCode())
	}
	if err := ctl("rollout", "history", "demo"); err != nil {
		return err
	}
	<-shotsDone

	say("Failover: kill the Raft leader; the state survives and a new leader serves")
	l, err := f.Leader(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("leader is %s; killing it\n", l.ID)
	l.Proc.Kill()
	next, err := f.Leader(ctx)
	if err != nil {
		return err
	}
	leader = next.URL
	// The new leader has heard from no agent yet; each comes back within a heartbeat.
	if err := waitAlive(ctx, f, n); err != nil {
		return err
	}
	if err := ctl("controller", "status"); err != nil {
		return err
	}
	if err := ctl("rollout", "status", "demo"); err != nil {
		return err
	}

	say("The audit trail: every change, who made it, from where, and how it ended")
	for _, args := range [][]string{
		{"audit", "--resource", "rollout/", "--limit", "5"},
		{"audit", "--resource", "profile/", "--limit", "5"},
	} {
		if err := ctl(args...); err != nil {
			return err
		}
	}

	say("Where to look")
	fmt.Printf(`  Dashboard:                      %s/ui/#/rollouts/demo   (sign in with: cat %s)
  API (Connect, gRPC, gRPC-Web): %s
      e.g. EBBFLOW_SERVER=%s EBBFLOW_CA=%s EBBFLOW_TOKEN_FILE=%s %s cluster list
  Metrics:                        curl --cacert %s -H "Authorization: Bearer $(cat %s)" %s/metrics
  Logs (every process):           %s
  Clusters' kubeconfigs:          %s/clusters/<name>/kubeconfig
`, leader, f.AdminTokenFile, leader, leader, f.CAFile, f.AdminTokenFile, f.Bins.Fleetctl, f.CAFile, f.AdminTokenFile, leader, f.Logs, dir)
	if !keep {
		fmt.Println("  (logs and data are removed when the demo ends; --keep keeps them)")
	}
	if stay {
		fmt.Println("The fleet stays up; press Ctrl-C to stop everything the demo started.")
		<-ctx.Done()
	}
	fmt.Println("Stopping everything the demo started.")
	return nil
}

// waitAlive waits until the leader counts n live agents. Only the leader holds liveness (a
// follower answers live_agents 0), so each try asks the node that leads now.
func waitAlive(ctx context.Context, f *fleet.Fleet, n int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var live int64
	for {
		if leader, err := f.Leader(ctx); err == nil {
			st, err := f.ClientsFor(leader.URL).Controller.GetControllerStatus(ctx, connect.NewRequest(&ebbflowv1.GetControllerStatusRequest{}))
			if err == nil && st.Msg.GetLeaderId() == leader.ID {
				if live = st.Msg.GetLiveAgents(); live >= int64(n) {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the agents did not come back to the new leader (it counts %d of %d live): %w", live, n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
