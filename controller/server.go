package controller

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/otelconnect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

	"github.com/ebbflow/ebbflow/controller/ui"
	"github.com/ebbflow/ebbflow/internal/pki"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
	"github.com/ebbflow/ebbflow/proto/ebbflowdesc"
)

// Read limits of request messages. An agent's measurement report carries up to maxMeasurements
// measurements of up to maxSamples float64 samples and a histogram of up to maxHistogramBytes
// each (16 x (200000 x 8 bytes packed + 256 KiB) is about 29.6 MiB); everything else (a profile
// with its values and policies is the largest) stays within 8 MiB.
const (
	maxMessageBytes      = 8 << 20
	compressMinBytes     = 1 << 10
	maxAgentMessageBytes = 32 << 20
)

// Config wires a Server.
type Config struct {
	Store  Store
	NodeID string
	Logger *slog.Logger
	// Tracer and Meter default to no-ops; Metrics is served on /metrics when set.
	Tracer  trace.TracerProvider
	Meter   metric.MeterProvider
	Metrics http.Handler
	// HeartbeatInterval is what agents are told; liveness expires after three missed beats.
	HeartbeatInterval time.Duration
	// ForwardClient and ForwardScheme reach the leader's API ("http" or "https").
	ForwardClient connect.HTTPClient
	ForwardScheme string
	// EngineInterval is how often the leader's rollout engine steps without a change (soak
	// times, deadlines); 1s by default.
	EngineInterval time.Duration
	// ReportTimeout bounds the writing of one batch of agent reports; 10s by default.
	ReportTimeout time.Duration
	// Now is the clock; time.Now by default.
	Now     func() time.Time
	Version string

	// Authenticator establishes who is calling (a Verifier). Without one, authentication is
	// off: every caller may do everything, named by the Ebbflow-Actor header as given.
	Authenticator Authenticator
	// CA issues agents' certificates (JoinCluster, RenewCertificate), valid AgentCertTTL
	// (DefaultAgentCertTTL when 0). Without it agents cannot join.
	CA           *pki.CA
	AgentCertTTL time.Duration
	// AuditMaxRecords and AuditMaxAge bound the audit log; every audit command carries them,
	// so every node prunes the same records. 0 means the default; negative means no limit.
	AuditMaxRecords int64
	AuditMaxAge     time.Duration
	// AgentRateLimit limits agent calls per cluster, PeopleRateLimit every other call per
	// actor. A zero value means the default; a negative Rate turns the limit off.
	AgentRateLimit, PeopleRateLimit RateLimit
	// FailedAuthRateLimit limits failed authentications per source address (default 20, then
	// one a second); a negative Rate turns it off.
	FailedAuthRateLimit RateLimit
	// CORSOrigins are the browser origins (https://portal.example.com) allowed to call the
	// API cross-origin; none by default. CheckCORSOrigins validates them.
	CORSOrigins []string
	// MaxLimiters bounds each map of per-identity limiters (default 100000).
	MaxLimiters int
}

// Server implements every Ebbflow service over one http.Handler.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store Store // raw, with the caller's audit entry attached to its first command
	raw   Store
	auth  Authenticator
	// limits holds the per-identity rate limiters.
	limits   *limits
	fwd      *forwarder
	live     *liveness
	local    *streamSet // agents' assignment streams open on this node
	now      func() time.Time
	handler  http.Handler
	services []string

	// rolloutMu serialises the leader's read-modify-write of rollouts (engine steps, reports,
	// manual controls); the generation check in the store guards across leaders.
	rolloutMu sync.Mutex
	// reports queues agent reports for the next batch (reports.go).
	reports reportQueue
	// profiles caches profile revisions (immutable) for assignments.
	profiles profileCache
	// sends and agentWrites admit the work a whole fleet can cause at once (admission.go).
	sends, agentWrites *gate
}

// New builds the server. Call Run to follow leadership changes.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Tracer == nil {
		cfg.Tracer = nooptrace.NewTracerProvider()
	}
	if cfg.Meter == nil {
		cfg.Meter = noopmetric.NewMeterProvider()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.ForwardClient == nil {
		cfg.ForwardClient = PeerClient(nil)
	}
	if cfg.ForwardScheme == "" {
		cfg.ForwardScheme = "http"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EngineInterval <= 0 {
		cfg.EngineInterval = time.Second
	}
	if cfg.ReportTimeout <= 0 {
		cfg.ReportTimeout = 10 * time.Second
	}
	if cfg.Authenticator == nil {
		cfg.Authenticator = headerAuthenticator{members: cfg.Store}
	}
	if cfg.AgentCertTTL <= 0 {
		cfg.AgentCertTTL = DefaultAgentCertTTL
	}
	switch {
	case cfg.AuditMaxRecords == 0:
		cfg.AuditMaxRecords = DefaultAuditMaxRecords
	case cfg.AuditMaxRecords < 0:
		cfg.AuditMaxRecords = 0
	}
	switch {
	case cfg.AuditMaxAge == 0:
		cfg.AuditMaxAge = DefaultAuditMaxAge
	case cfg.AuditMaxAge < 0:
		cfg.AuditMaxAge = 0
	}
	if cfg.AgentRateLimit == (RateLimit{}) {
		cfg.AgentRateLimit = DefaultAgentRateLimit
	}
	if cfg.FailedAuthRateLimit == (RateLimit{}) {
		cfg.FailedAuthRateLimit = DefaultFailedAuthRateLimit
	}
	if cfg.PeopleRateLimit == (RateLimit{}) {
		cfg.PeopleRateLimit = DefaultPeopleRateLimit
	}
	if cfg.MaxLimiters <= 0 {
		cfg.MaxLimiters = defaultMaxLimiters
	}
	otelOpts := []otelconnect.Option{
		otelconnect.WithTracerProvider(cfg.Tracer),
		otelconnect.WithMeterProvider(cfg.Meter),
		otelconnect.WithPropagator(telemetry.Propagator()),
	}
	// Callers are Ebbflow's own agents, controllers and fleetctl: continue their traces.
	serverOtel, err := otelconnect.NewInterceptor(append(otelOpts, otelconnect.WithTrustRemote())...)
	if err != nil {
		return nil, err
	}
	clientOtel, err := otelconnect.NewInterceptor(otelOpts...)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger,
		raw:    cfg.Store,
		auth:   cfg.Authenticator,
		limits: newLimits(cfg.AgentRateLimit, cfg.PeopleRateLimit, cfg.FailedAuthRateLimit, cfg.MaxLimiters, cfg.Now),
		now:    cfg.Now,
		fwd: &forwarder{
			nodeID:  cfg.NodeID,
			members: cfg.Store,
			http:    cfg.ForwardClient,
			scheme:  cfg.ForwardScheme,
			opts:    []connect.ClientOption{connect.WithInterceptors(clientOtel)},
		},
	}
	s.local = newStreamSet()
	s.sends, s.agentWrites = newGate(sendSlots), newGate(agentWriteSlots)
	s.live = newLiveness(3*cfg.HeartbeatInterval, s.local)
	s.store = auditingStore{Store: cfg.Store, s: s}
	if err := s.registerMetrics(cfg.Meter); err != nil {
		return nil, err
	}
	// Two recovers: the inner one turns a handler's panic into Internal before the audit
	// interceptor records the call; the outer one catches a panic in the interceptors.
	common := []connect.HandlerOption{
		// Messages under 1 KiB (acknowledgements, assignments, heartbeats) go uncompressed:
		// gzip costs more CPU than it saves there, multiplied by every agent.
		connect.WithCompressMinBytes(compressMinBytes),
		strictCodecs(),
		connect.WithRecover(s.recovered),
		connect.WithInterceptors(serverOtel, interceptor{s}),
		connect.WithRecover(s.recovered),
	}
	opts := append([]connect.HandlerOption{connect.WithReadMaxBytes(maxMessageBytes)}, common...)
	agentOpts := append([]connect.HandlerOption{connect.WithReadMaxBytes(maxAgentMessageBytes)}, common...)
	mux := http.NewServeMux()
	mount := func(path string, h http.Handler) {
		mux.Handle(path, h)
		s.services = append(s.services, path[1:len(path)-1])
	}
	mount(ebbflowv1connect.NewProfileServiceHandler(&profileService{s}, opts...))
	mount(ebbflowv1connect.NewClusterServiceHandler(&clusterService{s}, opts...))
	mount(ebbflowv1connect.NewRolloutServiceHandler(&rolloutService{s}, opts...))
	mount(ebbflowv1connect.NewAgentServiceHandler(&agentService{s}, agentOpts...))
	mount(ebbflowv1connect.NewControllerServiceHandler(&controllerService{s}, opts...))
	mount(ebbflowv1connect.NewAuditServiceHandler(&auditService{s}, opts...))
	mount(ebbflowv1connect.NewAccessServiceHandler(&accessService{s}, opts...))
	mux.Handle(grpchealth.NewHandler(s.healthChecker()))
	// Reflection answers from the descriptors with comments (ebbflowdesc), so a client's
	// describe shows what each element means.
	files, err := ebbflowdesc.Files()
	if err != nil {
		return nil, err
	}
	reflector := grpcreflect.NewReflector(serviceNames(s.services), grpcreflect.WithDescriptorResolver(files))
	for _, h := range []func(*grpcreflect.Reflector, ...connect.HandlerOption) (string, http.Handler){grpcreflect.NewHandlerV1, grpcreflect.NewHandlerV1Alpha} {
		path, handler := h(reflector)
		mux.Handle(path, s.httpAuthorized(reflectionResource, handler))
	}
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", s.httpAuthorized(metricsResource, cfg.Metrics))
	}
	// The dashboard: static files, no credentials needed to load them; the page calls the
	// API above with the token its user pastes.
	mux.Handle("GET "+ui.Prefix, ui.Handler())
	mux.Handle("GET /ui", ui.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", s.ready)
	s.handler = withCORS(withClientCertificates(mux), cfg.CORSOrigins)
	return s, nil
}

// serviceNames lists the services reflection describes.
type serviceNames []string

func (n serviceNames) Names() []string { return n }

// Handler serves Connect, gRPC and gRPC-Web, health, reflection, /metrics, /healthz, /readyz.
// Serve it over HTTP/2 (h2c or TLS) for gRPC.
func (s *Server) Handler() http.Handler { return s.handler }

// Services lists the fully-qualified services the handler serves.
func (s *Server) Services() []string { return s.services }

// Run follows leadership until ctx ends: liveness is the leader's alone, so it is reset on
// every change (a new leader has heard from no agent yet).
// While this node leads, it also runs the rollout engine; while it follows, it sends the
// leader its set of open agent streams.
func (s *Server) Run(ctx context.Context) {
	pushed := make(chan struct{})
	go func() { defer close(pushed); s.pushStreams(ctx) }()
	defer func() { <-pushed }()
	stop := func() {}
	defer func() { stop() }()
	for leader := range s.store.WatchLeadership(ctx) {
		s.live.reset(s.now())
		s.log.Info("leadership changed", "leader", leader, "node", s.cfg.NodeID)
		stop()
		stop = func() {}
		if leader {
			ectx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); s.runEngine(ectx) }()
			stop = func() { cancel(); <-done }
		}
	}
}

// httpAuthorized serves h to callers authorized for resource (an entry of procedureAccess).
func (s *Server) httpAuthorized(resource string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.auth.Identify(r.Context(), connect.Peer{Addr: r.RemoteAddr, Protocol: "http"}, r.Header)
		if err == nil {
			err = authorize(resource, id, nil)
		}
		if err != nil {
			status := http.StatusForbidden
			if connect.CodeOf(err) == connect.CodeUnauthenticated {
				status = http.StatusUnauthorized
			}
			http.Error(w, err.Error(), status)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) recovered(ctx context.Context, spec connect.Spec, _ http.Header, p any) error {
	s.log.ErrorContext(ctx, "panic in handler", "procedure", spec.Procedure, "panic", p)
	return connect.NewError(connect.CodeInternal, errInternal)
}

func (s *Server) registerMetrics(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/ebbflow/ebbflow/controller")
	if err := s.registerRolloutMetrics(m); err != nil {
		return err
	}
	term, err := m.Int64ObservableGauge("ebbflow_raft_term", metric.WithDescription("Current Raft term."))
	if err != nil {
		return err
	}
	commit, _ := m.Int64ObservableGauge("ebbflow_raft_commit_index", metric.WithDescription("Raft commit index."))
	applied, _ := m.Int64ObservableGauge("ebbflow_raft_applied_index", metric.WithDescription("Raft index applied to the FSM."))
	last, _ := m.Int64ObservableGauge("ebbflow_raft_last_log_index", metric.WithDescription("Last Raft log index."))
	leader, _ := m.Int64ObservableGauge("ebbflow_raft_leader", metric.WithDescription("1 when this node is the leader."))
	members, _ := m.Int64ObservableGauge("ebbflow_raft_members", metric.WithDescription("Servers in the Raft configuration."))
	live, _ := m.Int64ObservableGauge("ebbflow_agents_alive", metric.WithDescription("Agents heard from within the liveness window (leader only)."))
	propBytes, _ := m.Int64ObservableCounter("ebbflow_store_proposed_bytes", metric.WithDescription("Encoded bytes of the Raft entries this node proposed, by kind (report: a batch of agent reports)."))
	propEntries, _ := m.Int64ObservableCounter("ebbflow_store_proposed_entries", metric.WithDescription("Raft entries this node proposed, by kind."))
	propCommands, _ := m.Int64ObservableCounter("ebbflow_store_proposed_commands", metric.WithDescription("Commands in the Raft entries this node proposed, by kind (a batch carries several)."))
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for kind, st := range s.store.ProposedStats() {
			attrs := metric.WithAttributes(attribute.String("kind", kind))
			o.ObserveInt64(propBytes, int64(st.Bytes), attrs)
			o.ObserveInt64(propEntries, int64(st.Entries), attrs)
			o.ObserveInt64(propCommands, int64(st.Commands), attrs)
		}
		st := s.store.Status()
		o.ObserveInt64(term, int64(st.Term))
		o.ObserveInt64(commit, int64(st.CommitIndex))
		o.ObserveInt64(applied, int64(st.AppliedIndex))
		o.ObserveInt64(last, int64(st.LastLogIndex))
		isLeader := int64(0)
		if st.LeaderID != "" && st.LeaderID == st.NodeID {
			isLeader = 1
		}
		o.ObserveInt64(leader, isLeader)
		o.ObserveInt64(members, int64(len(st.Members)))
		o.ObserveInt64(live, int64(s.live.alive(s.now())))
		return nil
	}, term, commit, applied, last, leader, members, live, propBytes, propEntries, propCommands)
	return err
}
