// Command fleet-controller runs one node of Ebbflow's Raft-replicated controller: the API
// (Connect, gRPC, gRPC-Web), health, reflection and /metrics on one listener.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ebbflow/ebbflow/internal/cli"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cenkalti/backoff/v5"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/internal/buildinfo"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
	"github.com/ebbflow/ebbflow/store"
)

func main() {
	var f flags
	cmd := &cobra.Command{
		Use:   "fleet-controller",
		Short: "A node of Ebbflow's controller group: the API, Raft and the rollout engine",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return run(f) },
	}
	bindFlags(cmd.Flags(), &f)
	os.Exit(cli.Execute(cmd))
}

type flags struct {
	dataDir, listen, advertise, raftListen, raftAdvertise, nodeID, join string
	tlsCert, tlsKey, logLevel, logFormat                                string
	heartbeat                                                           time.Duration
	raftHeartbeat, raftElection, raftLease, raftCommit                  time.Duration
	raftLeaderLoss                                                      bool
	allowInsecureRemote                                                 bool
	readyFile, pprofListen                                              string
	statefulSetService, podName, tlsCA                                  string
	auditMaxRecords                                                     int64
	auditMaxAge                                                         time.Duration
	agentRate, peopleRate                                               float64
	agentBurst, peopleBurst                                             int
	insecure                                                            bool
	rejoin                                                              bool
	pkiInit                                                             string
	pkiDir, tlsSANs, tokensFile                                         string
	jwtIssuer, jwtAudience, jwtKey, jwtRoleClaim                        string
	agentCertTTL                                                        time.Duration
	corsOrigins                                                         []string
}

// bindFlags declares fleet-controller's flags on fs, into f.
func bindFlags(fs *pflag.FlagSet, f *flags) {
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the Raft log, snapshots and the state database (required)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:7070", "API address: Connect, gRPC, gRPC-Web, health, reflection and /metrics")
	fs.StringVar(&f.advertise, "advertise", "", "API address other nodes use to reach this one (default: the bound --listen address)")
	fs.StringVar(&f.raftListen, "raft-listen", "127.0.0.1:7071", "Raft transport address")
	fs.StringVar(&f.raftAdvertise, "raft-advertise", "", "Raft address other nodes use (default: the bound --raft-listen address)")
	fs.StringVar(&f.nodeID, "node-id", "", "this node's Raft id (default: derived from --raft-listen)")
	fs.BoolVar(&f.rejoin, "rejoin", false, "start this node empty and join the group again as a new member: its Raft log, snapshots and state move to <data-dir>/before-rejoin-<time>/ and the group (reached through --join) removes its old membership first; for a node whose log is damaged (it refuses to start and says so)")
	fs.StringVar(&f.join, "join", "", "URL of any existing controller to join as a voter (e.g. http://127.0.0.1:7070); without it a new node bootstraps a single-node cluster")
	fs.BoolVar(&f.insecure, "insecure", false, "turn TLS and authentication off: plain HTTP (h2c), plain Raft, and every caller may do everything (development only; loopback unless --allow-insecure-remote)")
	fs.StringVar(&f.pkiInit, "pki-init", "", "create a new group CA (ca.crt, ca.key) and admin token (admin.token) in this directory, print where, and exit (e.g. to make the chart's pki Secret)")
	fs.StringVar(&f.pkiDir, "pki-dir", "", "directory of the group's CA (ca.crt, ca.key) and admin credential (admin.token); a bootstrapping node creates them on first start, a joining node needs the CA (default: <data-dir>/pki)")
	fs.StringSliceVar(&f.corsOrigins, "cors-origin", nil, "a browser origin allowed to call the API cross-origin, e.g. https://portal.example.com (repeat or comma-separate; none by default)")
	fs.StringVar(&f.tlsSANs, "tls-san", "", "extra DNS names or IPs for this node's certificate, comma-separated (e.g. the client Service's name)")
	fs.StringVar(&f.tokensFile, "tokens-file", "", "bearer tokens of people and programs, one \"<token or sha256:hex>,<name>,<role>\" per line (role: viewer, operator or admin)")
	fs.StringVar(&f.jwtIssuer, "jwt-issuer", "", "accept JWT bearer tokens from this issuer (the iss claim), signed with --jwt-key")
	fs.StringVar(&f.jwtAudience, "jwt-audience", "", "required aud claim of JWTs")
	fs.StringVar(&f.jwtKey, "jwt-key", "", "the JWT issuer's public key or certificate (PEM)")
	fs.StringVar(&f.jwtRoleClaim, "jwt-role-claim", "ebbflow_role", "JWT claim holding the role (viewer, operator or admin); the name is the sub claim")
	fs.DurationVar(&f.agentCertTTL, "agent-cert-ttl", controller.DefaultAgentCertTTL, "lifetime of the client certificates issued to agents (they renew at two thirds of it)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve the API with this certificate (PEM) instead of one issued by the group's CA")
	fs.StringVar(&f.tlsKey, "tls-key", "", "private key for --tls-cert (PEM)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&f.heartbeat, "heartbeat-interval", 10*time.Second, "how often agents heartbeat; liveness expires after three missed beats")
	fs.DurationVar(&f.raftHeartbeat, "raft-heartbeat-timeout", store.DefaultHeartbeatTimeout, "a follower that hears nothing from the leader for this long (randomised up to twice it) starts an election; lower fails over faster, higher rides out a loaded machine")
	fs.DurationVar(&f.raftElection, "raft-election-timeout", store.DefaultElectionTimeout, "how long a candidate waits for votes (at least --raft-heartbeat-timeout)")
	fs.DurationVar(&f.raftCommit, "raft-commit-timeout", store.DefaultCommitTimeout, "how long an idle leader waits before telling followers what is committed: how far a stale read on a follower may lag")
	fs.DurationVar(&f.raftLease, "raft-leader-lease-timeout", store.DefaultLeaderLeaseTimeout, "a leader that has not heard from a quorum for this long steps down (at most --raft-heartbeat-timeout)")
	fs.BoolVar(&f.raftLeaderLoss, "raft-leader-loss-election", true, "a follower whose leader's process has gone (its Raft port refuses connections after the leader's connections closed) starts an election at once instead of waiting out --raft-heartbeat-timeout")
	fs.BoolVar(&f.allowInsecureRemote, "allow-insecure-remote", false, "with --insecure, allow serving on a non-loopback address")
	fs.StringVar(&f.statefulSetService, "statefulset-service", "", "run as a pod of a StatefulSet whose headless Service has this DNS name (e.g. ctl-peers.ebbflow.svc.cluster.local): the node id is --pod-name, ordinal 0 bootstraps, the others join <name>-0.<service>, and the advertised addresses are <pod>.<service> with the --listen and --raft-listen ports; excludes --node-id, --join, --advertise and --raft-advertise")
	fs.StringVar(&f.podName, "pod-name", "", "this pod's name, <statefulset>-<ordinal>, with --statefulset-service (default: the hostname)")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "extra CA bundle (PEM) trusted when calling other nodes (joining, forwarding), for nodes serving a --tls-cert of another CA")
	fs.StringVar(&f.pprofListen, "pprof-listen", "", "serve Go's profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060 (off by default; no authentication, so loopback only)")
	fs.StringVar(&f.readyFile, "ready-file", "", "once serving, write the API address (host:port) to this file (for scripts and tests)")
	fs.Int64Var(&f.auditMaxRecords, "audit-max-records", controller.DefaultAuditMaxRecords, "keep at most this many audit records (the oldest go first); 0 keeps any number")
	fs.DurationVar(&f.auditMaxAge, "audit-max-age", controller.DefaultAuditMaxAge, "drop audit records older than this; 0 keeps them regardless of age")
	fs.Float64Var(&f.agentRate, "agent-rate-limit", controller.DefaultAgentRateLimit.Rate, "agent registrations and reports per second allowed per cluster, per node (heartbeats are not counted); 0 turns the limit off")
	fs.IntVar(&f.agentBurst, "agent-rate-burst", controller.DefaultAgentRateLimit.Burst, "burst of --agent-rate-limit")
	fs.Float64Var(&f.peopleRate, "people-rate-limit", controller.DefaultPeopleRateLimit.Rate, "calls per second allowed per actor (fleetctl, the portal, scripts), per node; 0 turns the limit off")
	fs.IntVar(&f.peopleBurst, "people-rate-burst", controller.DefaultPeopleRateLimit.Burst, "burst of --people-rate-limit")
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, got %q", format)
}

func run(f flags) error {
	if f.pkiInit != "" {
		return pkiInit(f.pkiInit)
	}
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	if err := checkFlags(f); err != nil {
		return err
	}
	scheme := "https"
	if f.insecure {
		scheme = "http"
	}
	bootstrap, err := place(&f, scheme)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	apiLn, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if f.insecure {
		if !loopback(apiLn.Addr()) && !f.allowInsecureRemote {
			return fmt.Errorf("--listen %s is not a loopback address and --insecure turns TLS off; drop --insecure, or add --allow-insecure-remote", f.listen)
		}
		log.Warn("TLS and authentication are OFF (--insecure): every caller may do everything", "listen", apiLn.Addr().String())
	}
	apiAddr := f.advertise
	if apiAddr == "" {
		apiAddr = apiLn.Addr().String()
	}
	nodeID := f.nodeID
	if nodeID == "" {
		nodeID = "node-" + strings.NewReplacer(":", "-", ".", "-", "[", "", "]", "").Replace(f.raftListen)
	}
	tel, err := startTelemetry(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()

	peerClient := controller.PeerClient(nil)
	var sec *controller.NodeSecurity
	if !f.insecure {
		sec, err = controller.SetupSecurity(controller.SecurityOptions{
			NodeID: nodeID, Bootstrap: bootstrap, Hosts: controller.HostsOf(apiAddr, f.raftAdvertise, f.listen, f.raftListen),
			PKIDir: f.pkiDir, DataDir: f.dataDir, TokensFile: f.tokensFile,
			JWTIssuer: f.jwtIssuer, JWTAudience: f.jwtAudience, JWTKey: f.jwtKey, JWTRoleClaim: f.jwtRoleClaim,
			TLSCert: f.tlsCert, TLSKey: f.tlsKey, TLSCA: f.tlsCA, TLSSANs: f.tlsSANs, Log: log,
		})
		if err != nil {
			return err
		}
		peerClient = sec.Peer
	}
	nopts := nodeOptions(f, log, tel, sec, peerClient, nodeOptionsAt{id: nodeID, api: apiAddr, scheme: scheme, bootstrap: bootstrap, ln: apiLn})
	if f.rejoin {
		if err := rejoin(ctx, log, peerClient, f.join, nodeID, f.dataDir); err != nil {
			return err
		}
	}
	node, err := controller.StartNode(nopts)
	var damaged *store.DamagedLogError
	if errors.As(err, &damaged) {
		return fmt.Errorf("%w\nto rejoin it empty, run it again with --rejoin and --join <URL of a healthy node>: %s",
			err, rejoinCommand(os.Args))
	}
	if err != nil {
		return err
	}
	log.Info("fleet-controller serving", "node", nodeID, "api", scheme+"://"+apiLn.Addr().String(), "raft", node.Store.RaftAddress(),
		"data_dir", f.dataDir, "tls", sec != nil, "version", buildinfo.Version())
	return serve(ctx, f, log, node, peerClient, nodeID, apiAddr, apiLn.Addr().String())
}

// checkFlags refuses flag values and combinations that cannot work, before anything starts.
func checkFlags(f flags) error {
	if f.dataDir == "" {
		return errors.New("--data-dir is required")
	}
	if f.auditMaxRecords < 0 || f.auditMaxAge < 0 {
		return errors.New("--audit-max-records and --audit-max-age must not be negative")
	}
	if f.agentRate < 0 || f.peopleRate < 0 || f.agentBurst < 1 || f.peopleBurst < 1 {
		return errors.New("rate limits must not be negative and bursts must be at least 1")
	}
	if err := controller.CheckCORSOrigins(f.corsOrigins); err != nil {
		return err
	}
	if err := store.CheckRaftTimeouts(f.raftHeartbeat, f.raftElection, f.raftLease, f.raftCommit); err != nil {
		return err
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if f.insecure && (f.tlsCert != "" || f.tokensFile != "" || f.jwtIssuer != "") {
		return errors.New("--insecure turns TLS and authentication off; it excludes --tls-cert, --tokens-file and --jwt-issuer")
	}
	if f.agentCertTTL < 10*time.Second {
		return errors.New("--agent-cert-ttl must be at least 10s")
	}
	return nil
}

// place settles where this node sits in its group: bootstrap a new group, or join one
// (--join); under a StatefulSet (--statefulset-service) the pod's ordinal decides, and the
// node's id, join URL and advertised addresses are derived into f.
func place(f *flags, scheme string) (bootstrap bool, err error) {
	bootstrap = f.join == ""
	if f.statefulSetService != "" {
		if f.nodeID != "" || f.join != "" || f.advertise != "" || f.raftAdvertise != "" {
			return false, errors.New("--statefulset-service derives --node-id, --join, --advertise and --raft-advertise; do not set them too")
		}
		pod := f.podName
		if pod == "" {
			if pod, err = os.Hostname(); err != nil {
				return false, fmt.Errorf("--pod-name: %w", err)
			}
		}
		plan, err := controller.StatefulSetPlan(pod, f.statefulSetService, f.listen, f.raftListen, scheme)
		if err != nil {
			return false, fmt.Errorf("--statefulset-service: %w", err)
		}
		f.nodeID, f.join, f.advertise, f.raftAdvertise, bootstrap = plan.NodeID, plan.Join, plan.Advertise, plan.RaftAdvertise, plan.Bootstrap
	}
	if f.rejoin && f.join == "" {
		return false, errors.New("--rejoin needs --join: the URL of a healthy node of the group")
	}
	return bootstrap, nil
}

// startTelemetry sets up traces (exported over OTLP when OTEL_EXPORTER_OTLP_* says where) and
// the metrics /metrics serves.
func startTelemetry(ctx context.Context) (*telemetry.Telemetry, error) {
	var procs []sdktrace.SpanProcessor
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP trace exporter: %w", err)
		}
		procs = append(procs, sdktrace.NewBatchSpanProcessor(exp))
	}
	return telemetry.Setup(telemetry.Options{ServiceName: "fleet-controller", SpanProcessors: procs, Global: true})
}

// nodeOptionsAt is what run settled about this node before its options are assembled.
type nodeOptionsAt struct {
	id, api, scheme string
	bootstrap       bool
	ln              net.Listener
}

// nodeOptions assembles the store's and the controller's configuration from the flags.
func nodeOptions(f flags, log *slog.Logger, tel *telemetry.Telemetry, sec *controller.NodeSecurity, peerClient *http.Client, at nodeOptionsAt) controller.NodeOptions {
	scfg := store.Config{
		NodeID: at.id, DataDir: f.dataDir, RaftBind: f.raftListen, RaftAdvertise: f.raftAdvertise,
		APIAddress: at.api, Bootstrap: at.bootstrap, Logger: log,
		HeartbeatTimeout: f.raftHeartbeat, ElectionTimeout: f.raftElection, LeaderLeaseTimeout: f.raftLease,
		CommitTimeout: f.raftCommit, NoLeaderLossElection: !f.raftLeaderLoss,
	}
	ccfg := controller.Config{
		NodeID: at.id, Logger: log, Tracer: tel.Tracer, Meter: tel.Meter, Metrics: tel.MetricsHandler(),
		HeartbeatInterval: f.heartbeat, ForwardClient: peerClient, ForwardScheme: at.scheme, Version: buildinfo.Version(),
		AuditMaxRecords: orOff(f.auditMaxRecords), AuditMaxAge: time.Duration(orOff(int64(f.auditMaxAge))),
		AgentRateLimit:  controller.RateLimit{Rate: orOffRate(f.agentRate), Burst: f.agentBurst},
		PeopleRateLimit: controller.RateLimit{Rate: orOffRate(f.peopleRate), Burst: f.peopleBurst},
		AgentCertTTL:    f.agentCertTTL,
		CORSOrigins:     f.corsOrigins,
	}
	nopts := controller.NodeOptions{Store: scfg, Config: ccfg, Listener: at.ln}
	if sec != nil {
		nopts.Store.RaftTLS, nopts.TLS = sec.Raft, sec.API
		nopts.Configure = func(st *store.Store, cfg *controller.Config) error {
			v, err := controller.NewVerifier(controller.AuthConfig{Identities: st, Tokens: sec.Tokens, JWT: sec.JWT})
			if err != nil {
				return err
			}
			cfg.Authenticator, cfg.CA = v, sec.CA
			return nil
		}
	}
	return nopts
}

// serve joins the group when asked, waits for a leader, says it is ready, and serves until a
// signal or the server stops; then it shuts the node down.
func serve(ctx context.Context, f flags, log *slog.Logger, node *controller.Node, peerClient *http.Client, nodeID, apiAddr, listening string) error {
	stopped := false
	defer func() {
		if !stopped {
			if err := node.Close(); err != nil {
				log.Error("closing the node", "err", err)
			}
		}
	}()
	st := node.Store
	if f.join != "" {
		if err := join(ctx, log, peerClient, f.join, nodeID, st.RaftAddress(), apiAddr); err != nil && ctx.Err() == nil {
			return err
		}
	}
	if err := st.WaitForLeader(ctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("waiting for a leader: %w", err)
	}
	if f.pprofListen != "" {
		if err := servePprof(f.pprofListen, log); err != nil {
			return err
		}
	}
	if f.readyFile != "" && ctx.Err() == nil {
		if err := os.WriteFile(f.readyFile, []byte(listening+"\n"), 0o600); err != nil {
			return fmt.Errorf("--ready-file: %w", err)
		}
	}
	select {
	case <-ctx.Done():
	case err := <-node.Served():
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped = true
	return node.Shutdown(shutCtx)
}

// rejoin moves this node's Raft and state files aside and asks the group (through url) to
// remove its old membership, so that the join that follows adds it as a new, empty member
// rather than one that forgot what it voted and acknowledged.
func rejoin(ctx context.Context, log *slog.Logger, hc *http.Client, url, id, dataDir string) error {
	aside, err := store.MoveAside(dataDir, time.Now())
	if err != nil {
		return fmt.Errorf("--rejoin: moving the old state aside: %w", err)
	}
	if aside != "" {
		log.Warn("--rejoin: moved this node's Raft log, snapshots and state aside", "to", aside)
	}
	client := ebbflowv1connect.NewControllerServiceClient(hc, strings.TrimRight(url, "/"))
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		_, err := client.RemoveServer(ctx, connect.NewRequest(&ebbflowv1.RemoveServerRequest{NodeId: id}))
		switch connect.CodeOf(err) {
		case connect.CodeInvalidArgument, connect.CodePermissionDenied, connect.CodeUnauthenticated:
			return struct{}{}, backoff.Permanent(fmt.Errorf("--rejoin: removing %s through %s: %w", id, url, err))
		case connect.CodeNotFound:
			return struct{}{}, nil
		}
		return struct{}{}, err
	}, backoff.WithBackOff(joinBackoff()), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, in time.Duration) {
		log.Warn("--rejoin: removing the old membership failed; retrying", "via", url, "err", err, "in", in)
	}))
	if err != nil {
		return err
	}
	log.Info("--rejoin: the group removed this node's old membership; joining as a new member", "node", id)
	return nil
}

// rejoinCommand is args with --rejoin added.
func rejoinCommand(args []string) string {
	out := append([]string{args[0], "--rejoin"}, args[1:]...)
	for i, a := range out {
		if strings.ContainsAny(a, " '\"$") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

func joinBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.Multiplier = 200*time.Millisecond, 5*time.Second, 2
	return b
}

// join asks an existing controller (forwarded to its leader) to add this node as a voter,
// retrying with backoff (200 ms doubling to 5 s, jittered) until it succeeds, the request is
// refused as invalid, or ctx ends.
func join(ctx context.Context, log *slog.Logger, hc *http.Client, url, id, raftAddr, apiAddr string) error {
	client := ebbflowv1connect.NewControllerServiceClient(hc, strings.TrimRight(url, "/"))
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		_, err := client.AddVoter(ctx, connect.NewRequest(&ebbflowv1.AddVoterRequest{NodeId: id, RaftAddress: raftAddr, ApiAddress: apiAddr}))
		if connect.CodeOf(err) == connect.CodeInvalidArgument {
			return struct{}{}, backoff.Permanent(fmt.Errorf("--join %s: %w", url, err))
		}
		return struct{}{}, err
	}, backoff.WithBackOff(joinBackoff()), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, in time.Duration) {
		log.Warn("join failed; retrying", "via", url, "err", err, "in", in)
	}))
	if err != nil {
		return err
	}
	log.Info("joined the cluster", "via", url)
	return nil
}

func loopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// orOff maps a flag's 0 ("no limit") to the controller's negative "off" (its 0 is "default").
func orOff(v int64) int64 {
	if v == 0 {
		return -1
	}
	return v
}

func orOffRate(v float64) float64 {
	if v == 0 {
		return -1
	}
	return v
}
