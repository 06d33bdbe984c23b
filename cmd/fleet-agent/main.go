// Command fleet-agent runs Ebbflow's agent for one cluster: it registers the cluster with its
// inventory, heartbeats, follows its assignment from the controller over gRPC, and runs the
// canary phases on its cluster with the Helm SDK and client-go.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ebbflow/ebbflow/internal/cli"
	"github.com/spf13/cobra"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ebbflow/ebbflow/agent"
	"github.com/ebbflow/ebbflow/agent/cluster"
	"github.com/ebbflow/ebbflow/agent/probe"
	"github.com/ebbflow/ebbflow/internal/buildinfo"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func main() {
	os.Exit(cli.Execute(newCommand()))
}

// newCommand is fleet-agent's command line.
func newCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet-agent",
		Short: "Ebbflow's agent on one cluster: runs its assignments' phases and reports",
		Args:  cobra.NoArgs,
	}
	fs := cmd.Flags()
	controllerURL := fs.String("controller", "https://127.0.0.1:7070", "controller URLs, comma-separated: every node of the group, so the agent moves on when one goes away (https://; http:// only for a controller run with --insecure)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster (default: in-cluster config)")
	clusterID := fs.String("cluster-id", "", "this cluster's id in the fleet, a DNS label (required)")
	labels := fs.String("labels", "", "cluster labels, k=v[,k=v...]")
	nicLabel := fs.String("nic-driver-label", agent.DefaultNICDriverLabel, "node label that names the NIC driver")
	namespace := fs.String("namespace", "ebbflow-system", "namespace of the agent's progress ConfigMaps")
	ciliumNS := fs.String("cilium-namespace", "kube-system", "namespace of the Cilium release, cilium-config and the cilium DaemonSet")
	resolve := fs.String("resolve", "", "probe targets to reach at other addresses, host:port=host:port[,...] (like curl --resolve)")
	waitTimeout := fs.Duration("wait-timeout", 5*time.Minute, "bound on each Helm call and each wait for a DaemonSet rollout")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	leaderElect := fs.Bool("leader-elect", false, "compete for a Lease in --namespace and act only while holding it, so several replicas can run with exactly one active")
	leaseName := fs.String("leader-elect-lease", "ebbflow-agent", "name of the Lease replicas compete for")
	podName := fs.String("pod-name", "", "this replica's identity in the election (default: the hostname)")
	caFile := fs.String("ca", "", "PEM file of the controller group's CA, to verify https:// controllers (required to join; once an identity is stored, the CA stored with it is used)")
	joinToken := fs.String("join-token", "", "one-time join token <id>.<secret> from fleetctl token create, exchanged for the agent's client certificate on the first start")
	joinTokenFile := fs.String("join-token-file", "", "file holding the join token (instead of --join-token)")
	identityDir := fs.String("identity-dir", "/var/lib/ebbflow-agent", "directory of the agent's key and client certificate (created 0700)")
	cmd.RunE = func(*cobra.Command, []string) error {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
		slog.SetDefault(log)
		if *clusterID == "" {
			return errors.New("--cluster-id is required")
		}
		lbls, err := parseLabels(*labels)
		if err != nil {
			return fmt.Errorf("--labels: %w", err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		controllers, err := agent.ParseControllers(*controllerURL)
		if err != nil {
			return fmt.Errorf("--controller: %w", err)
		}
		var ident *agent.Identity
		if strings.HasPrefix(controllers[0], "https://") {
			// The identity comes first: a missing join token or CA is reported before anything else.
			if ident, err = agent.LoadOrJoin(ctx, log, agent.Enrolment{Controllers: controllers, Cluster: *clusterID, Dir: *identityDir, CAFile: *caFile, Token: *joinToken, TokenFile: *joinTokenFile}); err != nil {
				return err
			}
		} else {
			log.Warn("the controllers are plain http://: no TLS and no agent identity, for development only", "controller", *controllerURL)
			if *joinToken != "" || *joinTokenFile != "" || *caFile != "" {
				log.Warn("--ca, --join-token and --join-token-file are ignored with http:// controllers")
			}
		}
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: *kubeconfig}, nil).ClientConfig()
		if err != nil {
			return fmt.Errorf("kubeconfig: %w", err)
		}
		var resolveMap map[string]string
		if *resolve != "" {
			if resolveMap, err = probe.ParseResolve(strings.Split(*resolve, ",")); err != nil {
				return fmt.Errorf("--resolve: %w", err)
			}
		}
		drv, err := cluster.New(cluster.Config{
			RESTConfig: cfg, Namespace: *namespace, CiliumNamespace: *ciliumNS, WaitTimeout: *waitTimeout,
			NICDriverLabel: *nicLabel, Logger: log,
			ProbeOptions: func(ps *ebbflowv1.ProbeSettings) probe.Options {
				o := probe.OptionsFromSettings(ps)
				if resolveMap != nil {
					o.Dialer = probe.ResolvingDialer{Map: resolveMap}
				}
				return o
			},
		})
		if err != nil {
			return err
		}
		defer drv.Close()
		tel, err := telemetry.Setup(telemetry.Options{ServiceName: "fleet-agent", Global: true})
		if err != nil {
			return err
		}
		defer func() { _ = tel.Shutdown(context.Background()) }()

		var tlsConfig *tls.Config
		if ident != nil {
			tlsConfig = ident.TLSConfig()
		}
		conn, client, err := agent.Dial(controllers, tlsConfig)
		if err != nil {
			return err
		}
		defer conn.Close()
		if ident != nil {
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				// A renewed certificate is presented from the next handshake on: reconnect now, so
				// the controllers see it long before the old one expires.
				ident.RunRenewal(rctx, client, log, func() {
					log.Info("reconnecting with the renewed certificate", "connections", conn.ResetConnections())
				})
			}()
			defer func() { cancel(); <-done }()
		}
		rep := cluster.NewGRPCReporter(client)
		act := func(ctx context.Context) error {
			// A step interrupted by a crash is finished or rolled back before anything new starts.
			if err := drv.Resume(ctx, rep); err != nil && ctx.Err() == nil {
				log.Error("resuming an interrupted step", "err", err)
			}
			loop := agent.New(agent.Config{
				Cluster: *clusterID, Labels: lbls, Version: buildinfo.Version(), Client: client, Logger: log,
				Inventory: drv.Inventory, OnAssignment: drv.Handler(rep),
			})
			log.Info("fleet-agent starting", "cluster", *clusterID, "controller", *controllerURL, "version", buildinfo.Version())
			return loop.Run(ctx)
		}
		if !*leaderElect {
			return act(ctx)
		}
		id := *podName
		if id == "" {
			if id, err = os.Hostname(); err != nil {
				return fmt.Errorf("--pod-name: %w", err)
			}
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		log.Info("competing for the agent lease", "lease", *namespace+"/"+*leaseName, "identity", id)
		return agent.RunElected(ctx, agent.Election{Client: cs, Namespace: *namespace, Name: *leaseName, Identity: id}, act)
	}
	return cmd
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not k=v", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}
