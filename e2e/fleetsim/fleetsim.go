// Package fleetsim is the fleet simulator: a load test of fleet-controller. It starts a real
// 3-node fleet-controller group on 127.0.0.1 (TLS off, loopback only) and runs N simulated
// agents in its own process. Each simulated agent is the real agent.Loop over its own
// agent.Dial connection; only its cluster driver is simulated (it sends the report sequence of
// agent/cluster's execute.go, with synthetic latency measurements). This package is the only
// place a simulated cluster driver is allowed: it exists to load the controller, not to test
// an agent.
//
// A run measures, in this order (see Mode):
//
//   - idle: the controllers' memory and CPU with N agents connected and alive (their open
//     streams, or heartbeats against a controller that does not count streams);
//   - wave: one rollout of all N clusters in one wave: CreateRollout's latency, how soon each
//     agent receives its first assignment, the turn-around from a MEASURED report to the next
//     phase, reports accepted per second, Raft bytes per report, the rollout's end;
//   - rollback: within that wave, K clusters measure one phase 3x slower; the time from the
//     acknowledgement of that MEASURED report to the ROLLBACK assignment on the agent's stream.
//
// Compare runs a reference binary side by side (ref, new, ref, new, ...), since the machine
// is shared and noisy, and Table prints both with their ratio. e2e/cmd/fleetsim is the
// command; `make bench-fleet` runs it.
package fleetsim

// This file is over 500 lines on purpose: the simulator's one run, read top to bottom (start the
// group, connect the agents, register, start a rollout, drive the simulated report sequence,
// measure); the agents' driver and the figures it prints have files of their own.

// This file is over 500 lines on purpose: one simulator run (group, agents, the idle, wave and
// rollback modes and what each measures); the agents and the table have files of their own.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

var nan = math.NaN()

// Mode is one part of a run.
type Mode string

// The modes, in the order a run takes them.
const (
	ModeIdle     Mode = "idle"
	ModeWave     Mode = "wave"
	ModeRollback Mode = "rollback"
)

// ParseModes reads "all" or a comma-separated list of idle, wave and rollback. wave and
// rollback share one rollout: rollback reads the regressing clusters of the wave.
func ParseModes(s string) ([]Mode, error) {
	if s == "" || s == "all" {
		return []Mode{ModeIdle, ModeWave, ModeRollback}, nil
	}
	var out []Mode
	for _, m := range strings.Split(s, ",") {
		switch mm := Mode(strings.TrimSpace(m)); mm {
		case ModeIdle, ModeWave, ModeRollback:
			if !slices.Contains(out, mm) {
				out = append(out, mm)
			}
		default:
			return nil, fmt.Errorf("fleetsim: unknown mode %q; want all, idle, wave or rollback", m)
		}
	}
	return out, nil
}

// Options configure a run.
type Options struct {
	// N is the number of simulated agents (clusters).
	N int
	// Regress is how many clusters measure RegressPhase 3x slower (judged a regression and
	// rolled back); -1 picks max(2, N/100), capped at N.
	Regress int
	// RegressPhase is the phase they regress in (default l7).
	RegressPhase ebbflowv1.Phase
	// Modes to run (default all).
	Modes []Mode
	// Root is the module root, where the controller is built (default RepoRoot()).
	Root string
	// Dir holds the controllers' data and logs; empty means a temporary directory, removed
	// after the run unless Keep.
	Dir  string
	Keep bool
	// IdleWindow is how long the idle figures are measured (default 30 s).
	IdleWindow time.Duration
	// ConnectRate bounds how many agents start per second (default 500).
	ConnectRate float64
	// Samples is the latency samples per measurement (default 200).
	Samples int
	// Seed seeds the synthetic latencies.
	Seed uint64
	// StepDelay is the most a simulated step waits before its report (default none).
	StepDelay time.Duration
	// HeartbeatInterval is the controllers' --heartbeat-interval (0: the controller's default).
	HeartbeatInterval time.Duration
	// ControllerLogLevel is the controllers' --log-level (default info).
	ControllerLogLevel string
	// ControllerFlags are added to every controller's command line (e.g. --pprof-listen
	// 127.0.0.1:0 to profile the run; the address is in each controller's log).
	ControllerFlags []string
	// ConnectTimeout bounds the wait for every agent to register and receive its first
	// assignment (default 2 min + 20 ms per agent); WaveTimeout bounds the rollout (default 10 min).
	ConnectTimeout, WaveTimeout time.Duration
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

func (o *Options) defaults() error {
	if o.N < 1 {
		return fmt.Errorf("fleetsim: N must be at least 1, got %d", o.N)
	}
	if o.Regress < 0 {
		o.Regress = min(max(2, o.N/100), o.N)
	}
	if o.Regress > o.N {
		return fmt.Errorf("fleetsim: %d regressing clusters of %d", o.Regress, o.N)
	}
	if o.RegressPhase == ebbflowv1.Phase_PHASE_UNSPECIFIED {
		o.RegressPhase = ebbflowv1.Phase_PHASE_L7
	}
	if o.RegressPhase == ebbflowv1.Phase_PHASE_BASELINE {
		return errors.New("fleetsim: the regressing phase must not be the baseline (it is judged against itself)")
	}
	if len(o.Modes) == 0 {
		o.Modes, _ = ParseModes("all")
	}
	if slices.Equal(o.Modes, []Mode{ModeRollback}) && o.Regress == 0 {
		return errors.New("fleetsim: rollback mode needs regressing clusters (Regress > 0)")
	}
	if o.IdleWindow <= 0 {
		o.IdleWindow = 30 * time.Second
	}
	if o.ConnectRate <= 0 {
		o.ConnectRate = 500
	}
	if o.Samples <= 0 {
		o.Samples = 200
	}
	if o.ControllerLogLevel == "" {
		o.ControllerLogLevel = "info"
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 2*time.Minute + time.Duration(o.N)*20*time.Millisecond
	}
	if o.WaveTimeout <= 0 {
		o.WaveTimeout = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

func (o *Options) has(m Mode) bool { return slices.Contains(o.Modes, m) }

// minSamples is the rollout's minimum of latency samples per side: the judge tests with
// fewer than it as inconclusive (rule 5), so the simulator sends more.
func (o *Options) minSamples() int32 { return int32(max(o.Samples/2, 1)) }

// Result is what one run measured. Figures that were not measured (a mode not run, a metric
// the binary does not expose) are NaN; durations are in seconds, memory in bytes, CPU in
// percent of one core.
type Result struct {
	// Label says which binary ("new" or "ref"); Binary is its path.
	Label, Binary string
	N, Regress    int
	// Nodes are the controllers' ids; Leader the one leading when the idle window started.
	Nodes  []string
	Leader string

	// Registered and Connected count the agents registered and holding an assignment stream
	// (they received their first assignment); ConnectSeconds is how long all of them took.
	Registered, Connected int
	ConnectSeconds        float64

	// Idle: RSS and Go heap (go_memstats_heap_inuse_bytes) per node before the agents and at
	// the end of the idle window, and per agent (the difference over the connected agents,
	// N unless some never connected).
	RSSBefore, RSSIdle, HeapBefore, HeapIdle []float64
	RSSPerAgent, HeapPerAgent                float64
	RSSPerAgentNode, HeapPerAgentNode        []float64
	CPUIdleAll, CPUIdleLeader, CPUIdleSim    float64
	// Heartbeats is how many the agents sent (and got answered) in the idle window (none from
	// agents whose stream is open, against a controller that counts the stream as liveness);
	// HeartbeatCPU the leader's CPU seconds per heartbeat; LeaderCPUPerAgent the leader's CPU
	// seconds per second per connected agent.
	Heartbeats, HeartbeatRate, HeartbeatCPU, LeaderCPUPerAgent float64

	// Wave.
	CreateRolloutSeconds                    float64
	FirstAssigned                           int
	FirstP50, FirstP99, FirstMax, FirstIn2s float64
	// FirstCallP99 is the 99th percentile of the first assignments timed from the
	// CreateRollout call instead of its acknowledgement (what the person who started it waits).
	FirstCallP99     float64
	TurnP50, TurnP99 float64
	Turnarounds      int
	// BeforeAck is the share of the timed assignments that arrived before the acknowledgement
	// they are timed from (the controller commits the next assignment with the report, and
	// the stream may be faster than the report's response); they count as 0.
	BeforeAck                                float64
	RollbackP50, RollbackP99                 float64
	Rollbacks                                int
	ReportsAccepted, ReportsRejected         float64
	ReportErrors                             float64
	ReportsPerSecond                         float64
	RaftBytesPerReport, RaftEntriesPerReport float64
	// RaftBytesPerEntry is per log entry of the report kinds; ReportsPerEntry how many
	// reports (commands) such an entry carried.
	RaftBytesPerEntry, ReportsPerEntry float64
	// RaftBytesKinds says which proposal kinds RaftBytesPerReport came from.
	RaftBytesKinds string
	// RolloutBytes is the encoded size of the rollout at the end (what a whole-rollout write
	// carries).
	RolloutBytes float64
	// EndState is the rollout's state when the run stopped waiting, EndSeconds when it got
	// there (from the CreateRollout acknowledgement); TimedOut when it never ended.
	EndState    ebbflowv1.RolloutState
	EndMessage  string
	EndSeconds  float64
	TimedOut    bool
	ClusterEnds map[string]ebbflowv1.ClusterRolloutState
	// Live is the leader's count of live agents at the end.
	Live float64
	// SchedOver10ms and SchedOver117ms are the controllers' scheduling waits over the wave
	// (how long a runnable goroutine waited for a CPU, from go_sched_latencies_seconds, whose
	// top bounds are 10.5 ms and 117 ms): the worst node's share of waits over 10 ms and its
	// number of waits over 117 ms (a Raft heartbeat waiting that long is a third of the way
	// to an election).
	SchedOver10ms, SchedOver117ms float64
	// Elections is how many Raft terms began from the agents' start to the end of the run
	// (the highest ebbflow_raft_term of the nodes, before and after): leader changes under
	// load, which a healthy group has none of.
	Elections float64

	// Notes are what went wrong without stopping the run.
	Notes []string
}

func newResult(label, bin string, o *Options) *Result {
	r := &Result{Label: label, Binary: bin, N: o.N, Regress: o.Regress, Live: nan, Elections: nan, SchedOver10ms: nan, SchedOver117ms: nan}
	for _, p := range []*float64{&r.ConnectSeconds, &r.RSSPerAgent, &r.HeapPerAgent, &r.CPUIdleAll, &r.CPUIdleLeader, &r.CPUIdleSim,
		&r.Heartbeats, &r.HeartbeatRate, &r.HeartbeatCPU, &r.LeaderCPUPerAgent, &r.CreateRolloutSeconds, &r.FirstP50, &r.FirstP99, &r.FirstMax, &r.FirstIn2s, &r.FirstCallP99,
		&r.TurnP50, &r.TurnP99, &r.BeforeAck, &r.RollbackP50, &r.RollbackP99, &r.ReportsAccepted, &r.ReportsRejected, &r.ReportErrors,
		&r.ReportsPerSecond, &r.RaftBytesPerReport, &r.RaftEntriesPerReport, &r.RaftBytesPerEntry, &r.ReportsPerEntry, &r.RolloutBytes, &r.EndSeconds} {
		*p = nan
	}
	return r
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Compare runs rounds rounds of newBin, each after a run of refBin when refBin is set (ref,
// new, ref, new, ...), every run on a fresh controller group and fresh agents.
func Compare(ctx context.Context, o Options, newBin, refBin string, rounds int) (news, refs []*Result, err error) {
	if err := o.defaults(); err != nil {
		return nil, nil, err
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fleetsim-"); err != nil {
			return nil, nil, err
		}
		if !o.Keep {
			defer os.RemoveAll(dir)
		}
	}
	for i := range max(rounds, 1) {
		for _, side := range []struct{ label, bin string }{{"ref", refBin}, {"new", newBin}} {
			if side.bin == "" {
				continue
			}
			ro := o
			ro.Dir = filepath.Join(dir, fmt.Sprintf("%s-%d", side.label, i+1))
			fmt.Fprintf(o.Log, "fleetsim: round %d, %s (%s), %d agents, in %s\n", i+1, side.label, side.bin, o.N, ro.Dir)
			r, err := Run(ctx, ro, side.label, side.bin)
			if err != nil {
				return news, refs, fmt.Errorf("round %d, %s: %w", i+1, side.label, err)
			}
			if side.label == "ref" {
				refs = append(refs, r)
			} else {
				news = append(news, r)
			}
		}
	}
	return news, refs, nil
}

// Run is one run of bin: the group, the agents, the modes, then everything stopped. It fails
// only when the group or the agents cannot start; a mode that does not finish is in the
// result's notes and figures (what it reached).
func Run(ctx context.Context, o Options, label, bin string) (_ *Result, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "fleetsim-"); err != nil {
			return nil, err
		}
		if !o.Keep {
			defer os.RemoveAll(o.Dir)
		}
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	r := newResult(label, bin, &o)
	g, err := startGroup(ctx, bin, o.Dir, 3, o.HeartbeatInterval, o.ControllerLogLevel, o.ControllerFlags)
	if err != nil {
		return nil, err
	}
	defer g.stop()
	for _, n := range g.nodes {
		r.Nodes = append(r.Nodes, n.ID)
	}
	fmt.Fprintf(o.Log, "fleetsim: controllers up: %s (logs in %s)\n", strings.Join(g.urls(), " "), filepath.Join(o.Dir, "logs"))

	rollouts := o.has(ModeWave) || o.has(ModeRollback)
	if rollouts {
		if err := createProfile(ctx, g); err != nil {
			return nil, err
		}
	}
	before, heapBefore := g.sample(ctx)
	termBefore := g.term(ctx)

	logf, err := os.Create(filepath.Join(o.Dir, "logs", "agents.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	alog := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := agentConfig{n: o.N, samples: o.Samples, regress: regressing(o.N, o.Regress), regressPhase: o.RegressPhase,
		seed: o.Seed, stepDelay: o.StepDelay, connectRate: o.ConnectRate}
	start := time.Now()
	f, err := startAgents(ctx, g.urls(), cfg, alog)
	if err != nil {
		return nil, err
	}
	defer f.stopAll()
	err = poll(ctx, o.ConnectTimeout, fmt.Sprintf("%d agents registered and connected", o.N), func(context.Context) bool {
		return (f.registered.Load() == int64(o.N) && f.connected.Load() == int64(o.N)) || g.exited() != nil
	})
	r.Registered, r.Connected = int(f.registered.Load()), int(f.connected.Load())
	if gerr := g.exited(); gerr != nil {
		return nil, gerr
	}
	if err != nil {
		r.note("%v (registered %d, connected %d)", err, r.Registered, r.Connected)
	} else {
		r.ConnectSeconds = time.Since(start).Seconds()
	}
	fmt.Fprintf(o.Log, "fleetsim: %d agents registered, %d connected after %s\n", r.Registered, r.Connected, time.Since(start).Round(time.Millisecond))

	if o.has(ModeIdle) {
		if err := idle(ctx, g, f, &o, r, before, heapBefore); err != nil {
			return nil, err
		}
	}
	if rollouts {
		if err := wave(ctx, g, f, &o, r); err != nil {
			return nil, err
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r.Elections = g.term(sctx) - termBefore
	if _, st, err := g.leader(sctx); err == nil {
		r.Live = float64(st.GetLiveAgents())
	} else {
		r.note("live agents at the end: %v", err)
	}
	return r, nil
}

// term is the highest Raft term the nodes report (NaN when none answers).
func (g *group) term(ctx context.Context) float64 {
	t := nan
	for _, n := range g.nodes {
		if ss, err := g.scrape(ctx, n); err == nil {
			if v := metricValue(ss, "ebbflow_raft_term"); !math.IsNaN(v) && (math.IsNaN(t) || v > t) {
				t = v
			}
		}
	}
	return t
}

// sample reads every node's RSS (/proc) and Go heap in use (/metrics; NaN when not exposed).
func (g *group) sample(ctx context.Context) (rss, heap []float64) {
	for _, n := range g.nodes {
		st, err := readProc(n.PID)
		v := st.RSS
		if err != nil {
			v = nan
		}
		rss = append(rss, v)
		h := nan
		if ss, err := g.scrape(ctx, n); err == nil {
			h = metricValue(ss, "go_memstats_heap_inuse_bytes")
		}
		heap = append(heap, h)
	}
	return rss, heap
}

// idle measures the connected, idle fleet for the idle window.
func idle(ctx context.Context, g *group, f *fleet, o *Options, r *Result, rssBefore, heapBefore []float64) error {
	leader, _, err := g.leader(ctx)
	if err != nil {
		return err
	}
	r.Leader = leader.ID
	cpu0, err := g.cpu()
	if err != nil {
		return err
	}
	sim0, _ := readProc(os.Getpid())
	hb0, t0 := f.heartbeats.Load(), time.Now()
	fmt.Fprintf(o.Log, "fleetsim: idle window of %s (leader %s)\n", o.IdleWindow, leader.ID)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.IdleWindow):
	}
	cpu1, err := g.cpu()
	if err != nil {
		return err
	}
	sim1, _ := readProc(os.Getpid())
	window := time.Since(t0)
	hb := float64(f.heartbeats.Load() - hb0)
	r.RSSBefore, r.HeapBefore = rssBefore, heapBefore
	r.RSSIdle, r.HeapIdle = g.sample(ctx)
	r.RSSPerAgentNode, r.RSSPerAgent = perAgent(rssBefore, r.RSSIdle, r.Connected)
	r.HeapPerAgentNode, r.HeapPerAgent = perAgent(heapBefore, r.HeapIdle, r.Connected)
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / window.Seconds() }
	var all time.Duration
	for i, n := range g.nodes {
		all += cpu1[i] - cpu0[i]
		if n == leader {
			r.CPUIdleLeader = pct(cpu1[i] - cpu0[i])
			if r.Connected > 0 {
				r.LeaderCPUPerAgent = (cpu1[i] - cpu0[i]).Seconds() / window.Seconds() / float64(r.Connected)
			}
			if hb > 0 {
				r.HeartbeatCPU = (cpu1[i] - cpu0[i]).Seconds() / hb
			}
		}
	}
	r.CPUIdleAll, r.CPUIdleSim = pct(all), pct(sim1.CPU-sim0.CPU)
	r.Heartbeats, r.HeartbeatRate = hb, hb/window.Seconds()
	return nil
}

func (g *group) cpu() ([]time.Duration, error) {
	var out []time.Duration
	for _, n := range g.nodes {
		st, err := readProc(n.PID)
		if err != nil {
			return nil, fmt.Errorf("fleetsim: controller %s: %w", n.ID, err)
		}
		out = append(out, st.CPU)
	}
	return out, nil
}

// perAgent is (after - before) / n per node, and summed over the nodes.
func perAgent(before, after []float64, n int) ([]float64, float64) {
	if n == 0 || len(before) != len(after) {
		return nil, nan
	}
	out := make([]float64, len(before))
	sum := 0.0
	for i := range before {
		out[i] = (after[i] - before[i]) / float64(n)
		sum += out[i]
	}
	return out, sum
}

// simProfile is the demo's profile (e2e/demo-profile.yaml): baseline, l7 visibility,
// kube-proxy replacement with DSR, Maglev and eBPF host routing, then XDP.
const simProfile = `apiVersion: ebbflow.io/v1
kind: Profile
metadata:
  name: sim-tuning
spec:
  description: The fleet simulator's profile (the demo's tuning); its clusters are simulated.
  platform: bare-metal
  chart:
    repository: ./deploy/testdata/charts/cilium
    name: cilium
    version: ">=1.18.0-0 <1.19.0"
  baseline: {}
  l7:
    values:
      l7Proxy: true
      hubbleEnabled: true
    namespaces: [default]
    policies:
      - apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: ebbflow-l7-visibility
          namespace: default
        spec:
          endpointSelector: {}
          ingress:
            - fromEntities: [all]
  kpr:
    mode: cluster-wide
    parkDaemonSets:
      - namespace: kube-system
        name: kube-proxy
    values:
      kubeProxyReplacement: true
      routingMode: native
      autoDirectNodeRoutes: true
      ipv4NativeRoutingCidr: 10.0.0.0/8
      bpfMasquerade: true
      bpfHostLegacyRouting: false
      loadBalancerMode: dsr
      loadBalancerAlgorithm: maglev
      maglevTableSize: 16381
  xdp:
    values:
      loadBalancerAcceleration: native
`

func createProfile(ctx context.Context, g *group) error {
	name, spec, err := profile.DecodeYAML([]byte(simProfile))
	if err != nil {
		return fmt.Errorf("fleetsim: the simulator's profile: %w", err)
	}
	leader, _, err := g.leader(ctx)
	if err != nil {
		return err
	}
	profiles, _ := g.clients(leader)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := profiles.CreateProfile(cctx, connect.NewRequest(&ebbflowv1.CreateProfileRequest{Name: name, Spec: spec})); err != nil {
		return fmt.Errorf("fleetsim: create profile %s: %w", name, err)
	}
	return nil
}

// rolloutSpec is one wave of every simulated cluster (sim=1): no concurrency limit, no soak,
// the regressing clusters tolerated as failures (each is rolled back), and a budget a 3x
// slowdown breaks and the synthetic noise does not.
func rolloutSpec(o *Options) *ebbflowv1.RolloutSpec {
	return &ebbflowv1.RolloutSpec{
		Profile: "sim-tuning", ClusterSelector: "sim=1", Description: "fleetsim: one wave of every simulated cluster",
		Waves: &ebbflowv1.RolloutSpec_Explicit{Explicit: &ebbflowv1.ExplicitWaves{Waves: []*ebbflowv1.WaveSpec{{
			Name: "all", Selector: "sim=1",
			Gates: &ebbflowv1.WaveGates{
				MaxFailures: &ebbflowv1.WaveGates_MaxFailuresCount{MaxFailuresCount: int32(o.Regress)},
				SoakTime:    durationpb.New(0),
			},
		}}}},
		Budgets: []*ebbflowv1.RegressionBudget{{
			MaxP50IncreasePercent: 50, MaxP99IncreasePercent: 300, Alpha: 0.01, MinSamples: o.minSamples(),
		}},
		FailurePolicy: ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_FAILED_CLUSTERS,
		PhaseTimeout:  durationpb.New(o.WaveTimeout),
		Probes: &ebbflowv1.ProbeSettings{Windows: 3, Warmup: durationpb.New(200 * time.Millisecond), Probes: []*ebbflowv1.ProbeSpec{{
			Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://echo.sim:8080/", Rate: 100, Duration: durationpb.New(time.Second),
		}}},
	}
}

// raftCounters are the proposal counters of every node (bytes, entries and commands, summed
// by kind); a map is nil when the binary does not expose its counter.
type raftCounters struct{ bytes, entries, commands map[string]float64 }

func (g *group) raftCounters(ctx context.Context) raftCounters {
	var rc raftCounters
	add := func(m *map[string]float64, ss []metricSample, name string) {
		for k, v := range byKind(ss, name) {
			if *m == nil {
				*m = map[string]float64{}
			}
			(*m)[k] += v
		}
	}
	for _, n := range g.nodes {
		ss, err := g.scrape(ctx, n)
		if err != nil {
			continue
		}
		add(&rc.bytes, ss, "ebbflow_store_proposed_bytes_total")
		add(&rc.entries, ss, "ebbflow_store_proposed_entries_total")
		add(&rc.commands, ss, "ebbflow_store_proposed_commands_total")
	}
	return rc
}

// wave runs the rollout of every simulated cluster and reads its figures.
func wave(ctx context.Context, g *group, f *fleet, o *Options, r *Result) error {
	leader, st0, err := g.leader(ctx)
	if err != nil {
		return err
	}
	_, rollouts := g.clients(leader)
	raft0 := g.raftCounters(ctx)
	sched0 := g.schedLatencies(ctx)
	accepted0, rejected0, errors0 := f.accepted.Load(), f.rejected.Load(), f.reportErrors.Load()

	cctx, cancel := context.WithTimeout(ctx, o.WaveTimeout)
	defer cancel()
	t0 := time.Now()
	res, err := rollouts.CreateRollout(cctx, connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "sim-wave", Spec: rolloutSpec(o)}))
	ack := time.Now()
	if err != nil {
		return fmt.Errorf("fleetsim: CreateRollout of %d clusters: %w", o.N, err)
	}
	r.CreateRolloutSeconds = ack.Sub(t0).Seconds()
	fmt.Fprintf(o.Log, "fleetsim: CreateRollout returned after %s; waiting for the rollout (at most %s)\n", ack.Sub(t0).Round(time.Millisecond), o.WaveTimeout)
	id := res.Msg.GetRollout().GetId()

	// Wait until every agent is through (its last phase measured, or rolled back) and the
	// rollout ended; every 60 s (every 2 s once every agent is through) read the rollout, so a rollout that ends
	// otherwise (failed, clusters unknown) is seen too. The read is stale (the answering
	// node's replica, not forwarded): a whole rollout of 10,000 clusters is ~28 MB, and the
	// measurement must not load the leader it measures.
	var last *ebbflowv1.Rollout
	get := func(ctx context.Context) *ebbflowv1.Rollout {
		res, err := rollouts.GetRollout(ctx, connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: id,
			Read: &ebbflowv1.ReadOptions{Consistency: ebbflowv1.Consistency_CONSISTENCY_STALE}}))
		if err != nil {
			return nil
		}
		last = res.Msg.GetRollout()
		return last
	}
	var asked time.Time
	err = poll(ctx, o.WaveTimeout-time.Since(ack), "rollout "+id+" to end", func(ctx context.Context) bool {
		if g.exited() != nil {
			return true
		}
		every := time.Minute
		if f.done.Load() >= int64(o.N) {
			every = 2 * time.Second // every agent is through: the end is near
		}
		if time.Since(asked) < every {
			return false
		}
		asked = time.Now()
		if rr := get(ctx); rr != nil && rollout.Terminal(rr.GetState()) {
			return true
		}
		return false
	})
	end := time.Now()
	if gerr := g.exited(); gerr != nil {
		return gerr
	}
	r.SchedOver10ms, r.SchedOver117ms = schedFigures(sched0, g.schedLatencies(ctx))
	if err != nil {
		r.TimedOut = true
		r.note("%v", err)
		fctx, fcancel := context.WithTimeout(ctx, 2*time.Minute)
		get(fctx)
		fcancel()
	}
	if last != nil {
		r.EndState, r.EndMessage = last.GetState(), last.GetMessage()
		r.RolloutBytes = float64(proto.Size(last))
		r.ClusterEnds = map[string]ebbflowv1.ClusterRolloutState{}
		for _, w := range last.GetWaves() {
			for _, c := range w.GetClusters() {
				r.ClusterEnds[c.GetCluster()] = c.GetState()
			}
		}
		if t := last.GetEndTime(); t != nil && !r.TimedOut {
			end = t.AsTime()
		}
	}
	r.EndSeconds = end.Sub(ack).Seconds()

	r.ReportsAccepted = float64(f.accepted.Load() - accepted0)
	r.ReportsRejected = float64(f.rejected.Load() - rejected0)
	r.ReportErrors = float64(f.reportErrors.Load() - errors0)
	if lastAccept := time.Unix(0, f.lastAccept.Load()); lastAccept.After(ack) && r.ReportsAccepted > 0 {
		r.ReportsPerSecond = r.ReportsAccepted / lastAccept.Sub(ack).Seconds()
	}
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	if _, st1, err := g.leader(sctx); err == nil && r.ReportsAccepted > 0 {
		r.RaftEntriesPerReport = float64(st1.GetCommitIndex()-st0.GetCommitIndex()) / r.ReportsAccepted
	}
	raftBytes(raft0, g.raftCounters(sctx), r)
	waveTimes(f, t0, ack, r)
	return nil
}

// raftBytes reads the proposals of the wave: bytes per log entry of the kinds naming reports
// when there are any (else of every kind), and bytes per report: per command of those kinds
// when the binary counts commands, else per accepted report.
func raftBytes(before, after raftCounters, r *Result) {
	if after.bytes == nil || after.entries == nil {
		r.RaftBytesKinds = "not exposed"
		return
	}
	var kinds []string
	for k := range after.bytes {
		if strings.Contains(k, "report") {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	r.RaftBytesKinds = "kinds " + strings.Join(kinds, ",")
	if len(kinds) == 0 {
		for k := range after.bytes {
			kinds = append(kinds, k)
		}
		r.RaftBytesKinds = "every kind"
	}
	var b, e, c float64
	for _, k := range kinds {
		b += after.bytes[k] - before.bytes[k]
		e += after.entries[k] - before.entries[k]
		c += after.commands[k] - before.commands[k]
	}
	if e > 0 {
		r.RaftBytesPerEntry = b / e
	}
	switch {
	case after.commands != nil && c > 0:
		r.RaftBytesPerReport, r.ReportsPerEntry = b/c, c/max(e, 1)
	case r.ReportsAccepted > 0:
		r.RaftBytesPerReport = b / r.ReportsAccepted
		r.RaftBytesKinds += " (per accepted report: no command counter)"
	}
}

// waveTimes reads the agents' timestamps: first APPLY after the acknowledgement of
// CreateRollout, MEASURED acknowledged to the next phase's APPLY, and a regressing phase's
// MEASURED acknowledged to the ROLLBACK. An assignment that arrived before the
// acknowledgement it is timed from counts as 0 (and in BeforeAck).
func waveTimes(f *fleet, call, ack time.Time, r *Result) {
	phases := []ebbflowv1.Phase{ebbflowv1.Phase_PHASE_BASELINE, ebbflowv1.Phase_PHASE_L7, ebbflowv1.Phase_PHASE_KPR, ebbflowv1.Phase_PHASE_XDP}
	var first, fromCall, turn, back []float64
	within, early, timed := 0, 0, 0
	since := func(from, to time.Time) float64 {
		timed++
		if to.Before(from) {
			early++
			return 0
		}
		return to.Sub(from).Seconds()
	}
	for _, a := range f.agents {
		a.mu.Lock()
		var firstAt time.Time
		for _, t := range a.applyAt {
			if firstAt.IsZero() || t.Before(firstAt) {
				firstAt = t
			}
		}
		if !firstAt.IsZero() {
			d := since(ack, firstAt)
			first = append(first, d)
			fromCall = append(fromCall, firstAt.Sub(call).Seconds())
			if d <= 2 {
				within++
			}
		}
		for i, p := range phases[:len(phases)-1] {
			acked, ok := a.measuredAck[p]
			if !ok {
				continue
			}
			if next, ok := a.applyAt[phases[i+1]]; ok {
				turn = append(turn, since(acked, next))
			}
		}
		if acked, ok := a.measuredAck[a.regressPhase]; ok && a.regress && !a.rollbackAt.IsZero() {
			back = append(back, since(acked, a.rollbackAt))
		}
		a.mu.Unlock()
	}
	r.FirstAssigned, r.Turnarounds, r.Rollbacks = len(first), len(turn), len(back)
	if timed > 0 {
		r.BeforeAck = float64(early) / float64(timed)
	}
	if len(f.agents) > 0 {
		r.FirstIn2s = float64(within) / float64(len(f.agents))
	}
	r.FirstP50, r.FirstP99, r.FirstMax = quantiles(first, 0.5), quantiles(first, 0.99), quantiles(first, 1)
	r.FirstCallP99 = quantiles(fromCall, 0.99)
	r.TurnP50, r.TurnP99 = quantiles(turn, 0.5), quantiles(turn, 0.99)
	r.RollbackP50, r.RollbackP99 = quantiles(back, 0.5), quantiles(back, 0.99)
}

// quantiles is the q-quantile of xs (unsorted; NaN when empty).
func quantiles(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return nan
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return quantile(s, q)
}

// quantile is the q-quantile of sorted s by linear interpolation between ranks.
func quantile(s []float64, q float64) float64 {
	if len(s) == 0 {
		return nan
	}
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
}
