// Command fleet-controller runs one node of Ebbflow's Raft-replicated controller: the API
// (Connect, gRPC, gRPC-Web), health, reflection and /metrics on one listener.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

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
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-controller:", err)
		os.Exit(1)
	}
}

type flags struct {
	dataDir, listen, advertise, raftListen, raftAdvertise, nodeID, join string
	tlsCert, tlsKey, logLevel, logFormat                                string
	heartbeat                                                           time.Duration
	allowInsecureRemote                                                 bool
	readyFile                                                           string
	statefulSetService, podName, tlsCA                                  string
	auditMaxRecords                                                     int64
	auditMaxAge                                                         time.Duration
	agentRate, peopleRate                                               float64
	agentBurst, peopleBurst                                             int
}

func parseFlags() flags {
	var f flags
	flag.StringVar(&f.dataDir, "data-dir", "", "directory for the Raft log, snapshots and the state database (required)")
	flag.StringVar(&f.listen, "listen", "127.0.0.1:7070", "API address: Connect, gRPC, gRPC-Web, health, reflection and /metrics")
	flag.StringVar(&f.advertise, "advertise", "", "API address other nodes use to reach this one (default: the bound --listen address)")
	flag.StringVar(&f.raftListen, "raft-listen", "127.0.0.1:7071", "Raft transport address")
	flag.StringVar(&f.raftAdvertise, "raft-advertise", "", "Raft address other nodes use (default: the bound --raft-listen address)")
	flag.StringVar(&f.nodeID, "node-id", "", "this node's Raft id (default: derived from --raft-listen)")
	flag.StringVar(&f.join, "join", "", "URL of any existing controller to join as a voter (e.g. http://127.0.0.1:7070); without it a new node bootstraps a single-node cluster")
	flag.StringVar(&f.tlsCert, "tls-cert", "", "serve the API over TLS with this certificate (PEM)")
	flag.StringVar(&f.tlsKey, "tls-key", "", "private key for --tls-cert (PEM)")
	flag.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	flag.StringVar(&f.logFormat, "log-format", "text", "text or json")
	flag.DurationVar(&f.heartbeat, "heartbeat-interval", 10*time.Second, "how often agents heartbeat; liveness expires after three missed beats")
	flag.BoolVar(&f.allowInsecureRemote, "allow-insecure-remote", false, "allow serving the API without TLS on a non-loopback address")
	flag.StringVar(&f.statefulSetService, "statefulset-service", "", "run as a pod of a StatefulSet whose headless Service has this DNS name (e.g. ctl-peers.ebbflow.svc.cluster.local): the node id is --pod-name, ordinal 0 bootstraps, the others join <name>-0.<service>, and the advertised addresses are <pod>.<service> with the --listen and --raft-listen ports; excludes --node-id, --join, --advertise and --raft-advertise")
	flag.StringVar(&f.podName, "pod-name", "", "this pod's name, <statefulset>-<ordinal>, with --statefulset-service (default: the hostname)")
	flag.StringVar(&f.tlsCA, "tls-ca", "", "CA bundle (PEM) trusted when calling other nodes over TLS (joining, forwarding to the leader); default the system roots")
	flag.StringVar(&f.readyFile, "ready-file", "", "once serving, write the API address (host:port) to this file (for scripts and tests)")
	flag.Int64Var(&f.auditMaxRecords, "audit-max-records", controller.DefaultAuditMaxRecords, "keep at most this many audit records (the oldest go first); 0 keeps any number")
	flag.DurationVar(&f.auditMaxAge, "audit-max-age", controller.DefaultAuditMaxAge, "drop audit records older than this; 0 keeps them regardless of age")
	flag.Float64Var(&f.agentRate, "agent-rate-limit", controller.DefaultAgentRateLimit.Rate, "agent registrations and reports per second allowed per cluster, per node (heartbeats are not counted); 0 turns the limit off")
	flag.IntVar(&f.agentBurst, "agent-rate-burst", controller.DefaultAgentRateLimit.Burst, "burst of --agent-rate-limit")
	flag.Float64Var(&f.peopleRate, "people-rate-limit", controller.DefaultPeopleRateLimit.Rate, "calls per second allowed per actor (fleetctl, the portal, scripts), per node; 0 turns the limit off")
	flag.IntVar(&f.peopleBurst, "people-rate-burst", controller.DefaultPeopleRateLimit.Burst, "burst of --people-rate-limit")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println(buildinfo.Version())
		os.Exit(0)
	}
	return f
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

func run() error {
	f := parseFlags()
	log, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	if f.dataDir == "" {
		return errors.New("--data-dir is required")
	}
	if f.auditMaxRecords < 0 || f.auditMaxAge < 0 {
		return errors.New("--audit-max-records and --audit-max-age must not be negative")
	}
	if f.agentRate < 0 || f.peopleRate < 0 || f.agentBurst < 1 || f.peopleBurst < 1 {
		return errors.New("rate limits must not be negative and bursts must be at least 1")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	scheme := "http"
	if f.tlsCert != "" {
		scheme = "https"
	}
	bootstrap := f.join == ""
	if f.statefulSetService != "" {
		if f.nodeID != "" || f.join != "" || f.advertise != "" || f.raftAdvertise != "" {
			return errors.New("--statefulset-service derives --node-id, --join, --advertise and --raft-advertise; do not set them too")
		}
		pod := f.podName
		if pod == "" {
			if pod, err = os.Hostname(); err != nil {
				return fmt.Errorf("--pod-name: %w", err)
			}
		}
		plan, err := statefulSetPlan(pod, f.statefulSetService, f.listen, f.raftListen, scheme)
		if err != nil {
			return fmt.Errorf("--statefulset-service: %w", err)
		}
		f.nodeID, f.join, f.advertise, f.raftAdvertise, bootstrap = plan.NodeID, plan.Join, plan.Advertise, plan.RaftAdvertise, plan.Bootstrap
	}
	peerClient, err := newPeerClient(f.tlsCA)
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
	if !loopback(apiLn.Addr()) && f.tlsCert == "" {
		if !f.allowInsecureRemote {
			return fmt.Errorf("--listen %s is not a loopback address and TLS is off; set --tls-cert/--tls-key or --allow-insecure-remote", f.listen)
		}
		log.Warn("serving the API without TLS on a non-loopback address", "listen", apiLn.Addr().String())
	}
	apiAddr := f.advertise
	if apiAddr == "" {
		apiAddr = apiLn.Addr().String()
	}
	nodeID := f.nodeID
	if nodeID == "" {
		nodeID = "node-" + strings.NewReplacer(":", "-", ".", "-", "[", "", "]", "").Replace(f.raftListen)
	}

	var procs []sdktrace.SpanProcessor
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return fmt.Errorf("OTLP trace exporter: %w", err)
		}
		procs = append(procs, sdktrace.NewBatchSpanProcessor(exp))
	}
	tel, err := telemetry.Setup(telemetry.Options{ServiceName: "fleet-controller", SpanProcessors: procs, Global: true})
	if err != nil {
		return err
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()

	st, err := store.Open(store.Config{
		NodeID: nodeID, DataDir: f.dataDir, RaftBind: f.raftListen, RaftAdvertise: f.raftAdvertise,
		APIAddress: apiAddr, Bootstrap: bootstrap, Logger: log,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()

	srv, err := controller.New(controller.Config{
		Store: st, NodeID: nodeID, Logger: log, Tracer: tel.Tracer, Meter: tel.Meter, Metrics: tel.MetricsHandler(),
		HeartbeatInterval: f.heartbeat, ForwardClient: peerClient, ForwardScheme: scheme, Version: buildinfo.Version(),
		AuditMaxRecords: orOff(f.auditMaxRecords), AuditMaxAge: time.Duration(orOff(int64(f.auditMaxAge))),
		AgentRateLimit:  controller.RateLimit{Rate: orOffRate(f.agentRate), Burst: f.agentBurst},
		PeopleRateLimit: controller.RateLimit{Rate: orOffRate(f.peopleRate), Burst: f.peopleBurst},
	})
	if err != nil {
		return err
	}
	go srv.Run(ctx)

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(f.tlsCert == "")
	hs := &http.Server{
		Handler:           srv.Handler(),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() {
		if f.tlsCert != "" {
			hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			serveErr <- hs.ServeTLS(apiLn, f.tlsCert, f.tlsKey)
			return
		}
		serveErr <- hs.Serve(apiLn)
	}()
	log.Info("fleet-controller serving", "node", nodeID, "api", apiLn.Addr().String(), "raft", st.RaftAddress(),
		"data_dir", f.dataDir, "version", buildinfo.Version())

	if f.join != "" {
		if err := join(ctx, log, peerClient, f.join, nodeID, st.RaftAddress(), apiAddr); err != nil && ctx.Err() == nil {
			return err
		}
	}
	if err := st.WaitForLeader(ctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("waiting for a leader: %w", err)
	}
	if f.readyFile != "" && ctx.Err() == nil {
		if err := os.WriteFile(f.readyFile, []byte(apiLn.Addr().String()+"\n"), 0o600); err != nil {
			return fmt.Errorf("--ready-file: %w", err)
		}
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hs.Shutdown(shutCtx)
}

// join asks an existing controller (forwarded to its leader) to add this node as a voter,
// retrying with backoff until it succeeds or ctx ends.
func join(ctx context.Context, log *slog.Logger, hc *http.Client, url, id, raftAddr, apiAddr string) error {
	client := ebbflowv1connect.NewControllerServiceClient(hc, strings.TrimRight(url, "/"))
	backoff := 200 * time.Millisecond
	for {
		_, err := client.AddVoter(ctx, connect.NewRequest(&ebbflowv1.AddVoterRequest{NodeId: id, RaftAddress: raftAddr, ApiAddress: apiAddr}))
		if err == nil {
			log.Info("joined the cluster", "via", url)
			return nil
		}
		if connect.CodeOf(err) == connect.CodeInvalidArgument {
			return fmt.Errorf("--join %s: %w", url, err)
		}
		log.Warn("join failed; retrying", "via", url, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// newPeerClient is the HTTP client for calls to other nodes; with caFile it trusts only that
// CA bundle over TLS.
func newPeerClient(caFile string) (*http.Client, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	if caFile == "" {
		return hc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca: no PEM certificate in %s", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	tr.ForceAttemptHTTP2 = true
	hc.Transport = tr
	return hc, nil
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
