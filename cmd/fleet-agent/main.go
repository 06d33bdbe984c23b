// Command fleet-agent runs Ebbflow's agent for one cluster: it registers the cluster with its
// inventory, heartbeats, follows its assignment from the controller over gRPC, and runs the
// canary phases on its cluster with the Helm SDK and client-go.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

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
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	controllerURL := flag.String("controller", "https://127.0.0.1:7070", "controller URLs, comma-separated: every node of the group, so the agent moves on when one goes away (https://; http:// only for a controller run with --insecure)")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster (default: in-cluster config)")
	clusterID := flag.String("cluster-id", "", "this cluster's id in the fleet, a DNS label (required)")
	labels := flag.String("labels", "", "cluster labels, k=v[,k=v...]")
	nicLabel := flag.String("nic-driver-label", agent.DefaultNICDriverLabel, "node label that names the NIC driver")
	namespace := flag.String("namespace", "ebbflow-system", "namespace of the agent's progress ConfigMaps")
	ciliumNS := flag.String("cilium-namespace", "kube-system", "namespace of the Cilium release, cilium-config and the cilium DaemonSet")
	resolve := flag.String("resolve", "", "probe targets to reach at other addresses, host:port=host:port[,...] (like curl --resolve)")
	waitTimeout := flag.Duration("wait-timeout", 5*time.Minute, "bound on each Helm call and each wait for a DaemonSet rollout")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	leaderElect := flag.Bool("leader-elect", false, "compete for a Lease in --namespace and act only while holding it, so several replicas can run with exactly one active")
	leaseName := flag.String("leader-elect-lease", "ebbflow-agent", "name of the Lease replicas compete for")
	podName := flag.String("pod-name", "", "this replica's identity in the election (default: the hostname)")
	caFile := flag.String("ca", "", "PEM file of the controller group's CA, to verify https:// controllers (required to join; once an identity is stored, the CA stored with it is used)")
	joinToken := flag.String("join-token", "", "one-time join token <id>.<secret> from fleetctl token create, exchanged for the agent's client certificate on the first start")
	joinTokenFile := flag.String("join-token-file", "", "file holding the join token (instead of --join-token)")
	identityDir := flag.String("identity-dir", "/var/lib/ebbflow-agent", "directory of the agent's key and client certificate (created 0700)")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println(buildinfo.Version())
		return nil
	}
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
		if ident, err = loadOrJoin(ctx, log, controllers, *clusterID, *identityDir, *caFile, *joinToken, *joinTokenFile); err != nil {
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

// loadOrJoin returns the agent's stored identity or, on the first start, joins with the join token.
func loadOrJoin(ctx context.Context, log *slog.Logger, controllers []string, clusterID, dir, caFile, token, tokenFile string) (*agent.Identity, error) {
	if token != "" && tokenFile != "" {
		return nil, errors.New("--join-token and --join-token-file: give one, not both")
	}
	tokenFlag := "--join-token"
	if tokenFile != "" {
		tokenFlag = "--join-token-file"
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--join-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--identity-dir: %w", err)
	}
	ident, err := agent.LoadIdentity(dir)
	var discarded *agent.DiscardedError
	switch {
	case err == nil:
		if ident.Cluster() != clusterID {
			return nil, fmt.Errorf("--cluster-id %q: the identity stored in --identity-dir %s is cluster %q's; give that cluster id, or remove the directory and join with a join token for %q", clusterID, dir, ident.Cluster(), clusterID)
		}
		if !time.Now().Before(ident.NotAfter()) {
			if token == "" {
				return nil, fmt.Errorf("--identity-dir %s: the stored certificate of cluster %q expired at %s; join again with --join-token or --join-token-file (fleetctl token create --cluster %s)", dir, clusterID, ident.NotAfter().Format(time.RFC3339), clusterID)
			}
			log.Warn("the stored certificate has expired; joining again", "expired", ident.NotAfter(), "identity_dir", dir)
			break
		}
		if token != "" {
			log.Info("an identity for this cluster is stored; ignoring "+tokenFlag, "identity_dir", dir, "expires", ident.NotAfter())
		}
		log.Info("loaded the agent identity", "cluster", ident.Cluster(), "epoch", ident.Epoch(), "expires", ident.NotAfter(), "identity_dir", dir)
		return ident, nil
	case errors.As(err, &discarded):
		log.Error("the stored identity was unusable and was moved aside", "err", err)
	case errors.Is(err, agent.ErrNoIdentity):
	default:
		return nil, fmt.Errorf("--identity-dir: %w", err)
	}
	if token == "" {
		return nil, fmt.Errorf("--join-token or --join-token-file is required: no usable agent identity in --identity-dir %s (create a token with fleetctl token create --cluster %s)", dir, clusterID)
	}
	if caFile == "" {
		return nil, errors.New("--ca is required with https:// controllers until the agent has joined")
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	log.Info("joining the fleet with the join token", "cluster", clusterID, "identity_dir", dir)
	ident, err = agent.Join(ctx, dir, controllers, caPEM, token)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tokenFlag, err)
	}
	if ident.Cluster() != clusterID {
		return nil, fmt.Errorf("--cluster-id %q: the join token was for cluster %q (its identity is now stored in --identity-dir %s)", clusterID, ident.Cluster(), dir)
	}
	log.Info("joined", "cluster", ident.Cluster(), "epoch", ident.Epoch(), "expires", ident.NotAfter())
	return ident, nil
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
