package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ebbflow/ebbflow/agent"
	"github.com/ebbflow/ebbflow/agent/cluster"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// The simulated cluster: what every agent registers, and the latency it "measures".
const (
	simKernel    = "6.8.0-1015-aws" // meets every phase's kernel minimum (netkit's 6.8 included)
	simNICDriver = "ena"            // native XDP from 5.6
	simNodes     = 2
	// baseLatencyMs and latencySigma shape the lognormal latency samples: median 1 ms.
	baseLatencyMs = 1.0
	latencySigma  = 0.25
	// regressFactor is how much slower a regressing cluster measures its regressing phase.
	regressFactor = 3.0
)

// fleet is the simulated agents of one run and what they saw, with the times the figures are
// computed from.
type fleet struct {
	agents []*simAgent
	log    *slog.Logger

	heartbeats, registered, connected atomic.Int64
	accepted, rejected, reportErrors  atomic.Int64
	done                              atomic.Int64
	lastAccept                        atomic.Int64 // unix nanoseconds of the latest accepted report

	wg    sync.WaitGroup
	stop  context.CancelFunc
	conns []*agent.Conn
	mu    sync.Mutex
}

// simAgent is one simulated cluster: a real agent.Loop over its own connection, with a
// simulated driver behind OnAssignment.
type simAgent struct {
	f       *fleet
	idx     int
	name    string
	regress bool
	// regressPhase is the phase a regressing cluster measures regressFactor slower.
	regressPhase ebbflowv1.Phase
	lastPhase    ebbflowv1.Phase
	samples      int
	seed         uint64
	stepDelay    time.Duration

	mu           sync.Mutex
	registeredAt time.Time
	connectedAt  time.Time
	applyAt      map[ebbflowv1.Phase]time.Time // first receipt of the APPLY of a phase
	measuredAck  map[ebbflowv1.Phase]time.Time // acknowledgement of the accepted MEASURED of a phase
	rollbackAt   time.Time                     // first receipt of a ROLLBACK
	finished     bool
	helm         int32
	lastID       string
	run          *simRun
}

// simRun is one assignment the simulated driver runs, as agent/cluster's Handler runs them:
// never overlapping, a newer run waits for the one before it, a ROLLBACK cancels it. Unlike
// the Handler, the cancellation stops a run between its steps, not during a report: the
// controller decides the rollback in the same write that accepts the MEASURED report, so the
// ROLLBACK often arrives on the stream before that report's acknowledgement, which the
// rollback figure is timed from.
type simRun struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}
}

// agentConfig is what every simulated agent of a run shares.
type agentConfig struct {
	n, samples   int
	regress      []int // indexes of the regressing clusters
	regressPhase ebbflowv1.Phase
	seed         uint64
	stepDelay    time.Duration
	connectRate  float64
}

// clusterName is the simulated cluster's id: sim-00042 (as wide as N needs).
func clusterName(i, n int) string {
	return fmt.Sprintf("sim-%0*d", len(strconv.Itoa(max(n-1, 0))), i)
}

// regressing picks k of n clusters spread evenly over the fleet.
func regressing(n, k int) []int {
	k = min(max(k, 0), n)
	out := make([]int, k)
	for i := range k {
		out[i] = (2*i + 1) * n / (2 * k)
	}
	return out
}

// startAgents starts cfg.n simulated agents against urls, at most cfg.connectRate a second,
// each with its own agent.Dial connection. They run until stopAll.
func startAgents(ctx context.Context, urls []string, cfg agentConfig, log *slog.Logger) (*fleet, error) {
	actx, cancel := context.WithCancel(context.Background())
	f := &fleet{log: log, stop: cancel}
	interval := time.Duration(float64(time.Second) / max(cfg.connectRate, 1))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range cfg.n {
		a := &simAgent{
			f: f, idx: i, name: clusterName(i, cfg.n), regress: slices.Contains(cfg.regress, i),
			regressPhase: cfg.regressPhase, lastPhase: ebbflowv1.Phase_PHASE_XDP, samples: cfg.samples,
			seed: cfg.seed, stepDelay: cfg.stepDelay, helm: 1,
			applyAt: map[ebbflowv1.Phase]time.Time{}, measuredAck: map[ebbflowv1.Phase]time.Time{},
		}
		conn, client, err := agent.Dial(urls, nil)
		if err != nil {
			f.stopAll()
			return nil, fmt.Errorf("fleetsim: dial the controllers for %s: %w", a.name, err)
		}
		labels := map[string]string{"sim": "1", "idx": strconv.Itoa(i)}
		if a.regress {
			labels["regress"] = "1"
		}
		counted := &countingClient{AgentServiceClient: client, a: a}
		loop := agent.New(agent.Config{
			Cluster: a.name, Labels: labels, Version: "fleetsim", Client: counted, Logger: log,
			Inventory: a.inventory, OnAssignment: a.onAssignment(actx, cluster.NewGRPCReporter(counted)),
		})
		f.mu.Lock()
		f.agents, f.conns = append(f.agents, a), append(f.conns, conn)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if err := loop.Run(actx); err != nil {
				log.Error("agent loop ended", "cluster", a.name, "err", err)
			}
		}()
		if i < cfg.n-1 {
			select {
			case <-ctx.Done():
				f.stopAll()
				return nil, fmt.Errorf("fleetsim: starting agents (%d of %d started): %w", i+1, cfg.n, ctx.Err())
			case <-tick.C:
			}
		}
	}
	return f, nil
}

// stopAll ends every agent loop and run and closes the connections.
func (f *fleet) stopAll() {
	f.stop()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
}

// inventory is a cluster that passes preflight for every phase: nodes on a 6.8 kernel with a
// native-XDP NIC driver, and the API server's address in the Cilium release's values (which
// kube-proxy replacement needs).
func (a *simAgent) inventory(context.Context) (*ebbflowv1.Inventory, error) {
	hv, err := structpb.NewStruct(map[string]any{"k8sServiceHost": "10.96.0.1", "k8sServicePort": 443})
	if err != nil {
		return nil, err
	}
	inv := &ebbflowv1.Inventory{
		KubernetesVersion: "v1.33.2", CiliumChartVersion: "1.18.0", CiliumImageVersion: "v1.18.0",
		HelmValues: hv, HelmRevision: 1, KubeProxyPresent: true,
		CiliumConfig: map[string]string{"kube-proxy-replacement": "false", "routing-mode": "tunnel"},
	}
	for i := range simNodes {
		inv.Nodes = append(inv.Nodes, &ebbflowv1.NodeInfo{
			Name: fmt.Sprintf("%s-n%d", a.name, i+1), KernelVersion: simKernel, OsImage: "Ubuntu 24.04 LTS",
			NicDriver: simNICDriver, Ready: true,
		})
	}
	return inv, nil
}

// onAssignment records when each assignment arrived and hands APPLY and ROLLBACK to a run of
// the simulated driver, the way agent/cluster's Handler does.
func (a *simAgent) onAssignment(base context.Context, rep cluster.Reporter) func(context.Context, *ebbflowv1.Assignment) {
	return func(_ context.Context, as *ebbflowv1.Assignment) {
		now := time.Now()
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.connectedAt.IsZero() {
			a.connectedAt = now
			a.f.connected.Add(1)
		}
		switch as.GetAction() {
		case ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY:
			if _, ok := a.applyAt[as.GetPhase()]; !ok {
				a.applyAt[as.GetPhase()] = now
			}
		case ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK:
			if a.rollbackAt.IsZero() {
				a.rollbackAt = now
			}
		default:
			return
		}
		if as.GetId() == "" || as.GetId() == a.lastID {
			return // the stream re-sends the current assignment on every reconnect
		}
		a.lastID = as.GetId()
		prev := a.run
		if prev != nil && as.GetAction() == ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK {
			prev.cancel()
		}
		ctx, cancel := context.WithCancel(base)
		run := &simRun{id: as.GetId(), cancel: cancel, done: make(chan struct{})}
		a.run = run
		a.f.wg.Add(1)
		go func() {
			defer a.f.wg.Done()
			defer close(run.done)
			defer cancel()
			if prev != nil {
				select {
				case <-prev.done:
				case <-ctx.Done():
					return
				}
			}
			a.mu.Lock()
			superseded := a.run != run
			a.mu.Unlock()
			if superseded {
				return
			}
			if as.GetAction() == ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK {
				a.rollback(ctx, base, as, rep)
			} else {
				a.apply(ctx, base, as, rep)
			}
		}()
	}
}

// apply sends what agent/cluster's execute.go sends for an APPLY: STARTED, APPLIED and
// VERIFIED with the Helm revisions around the step, the measurements, then MEASURED. ctx
// ends the run between steps; the reports are sent on rctx, the agent's.
func (a *simAgent) apply(ctx, rctx context.Context, as *ebbflowv1.Assignment, rep cluster.Reporter) {
	ref := &ebbflowv1.ReportRef{Cluster: a.name, AssignmentId: as.GetId(), ProfileRevision: as.GetProfileRevision(), Phase: as.GetPhase()}
	a.status(rctx, rep, ref, ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED, "", 0, 0)
	a.mu.Lock()
	before := a.helm
	if as.GetPhase() != ebbflowv1.Phase_PHASE_BASELINE { // the baseline's values change nothing: no upgrade
		a.helm++
	}
	after := a.helm
	a.mu.Unlock()
	if !a.pause(ctx) {
		return
	}
	a.status(rctx, rep, ref, ebbflowv1.PhaseStatus_PHASE_STATUS_APPLIED, fmt.Sprintf("Helm revision %d -> %d", before, after), before, after)
	if !a.pause(ctx) {
		return
	}
	a.status(rctx, rep, ref, ebbflowv1.PhaseStatus_PHASE_STATUS_VERIFIED, "cilium-config verified and the cilium DaemonSet rolled out", before, after)
	if !a.pause(ctx) {
		return
	}
	if err := rep.Measurements(rctx, ref, []*ebbflowv1.Measurement{a.measurement(as)}); err != nil {
		a.reportFailed("measurements", err)
	}
	msg := fmt.Sprintf("verified and measured with %d probes", len(as.GetProbes().GetProbes()))
	a.status(rctx, rep, ref, ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED, msg, before, after)
}

// rollback sends what execute.go sends for a ROLLBACK: STARTED, then ROLLED_BACK with the
// revision the rollback created.
func (a *simAgent) rollback(ctx, rctx context.Context, as *ebbflowv1.Assignment, rep cluster.Reporter) {
	target := as.GetRollbackToHelmRevision()
	if target <= 0 {
		target = 1
	}
	ref := &ebbflowv1.ReportRef{Cluster: a.name, AssignmentId: as.GetId(), ProfileRevision: as.GetProfileRevision(), Phase: as.GetPhase()}
	a.status(rctx, rep, ref, ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED, fmt.Sprintf("rolling back to Helm revision %d", target), 0, 0)
	if !a.pause(ctx) {
		return
	}
	a.mu.Lock()
	before := a.helm
	a.helm++
	after := a.helm
	a.mu.Unlock()
	a.status(rctx, rep, ref, ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK, fmt.Sprintf("rolled back to Helm revision %d", target), before, after)
}

func (a *simAgent) status(ctx context.Context, rep cluster.Reporter, ref *ebbflowv1.ReportRef, st ebbflowv1.PhaseStatus, msg string, before, after int32) {
	if err := rep.Status(ctx, ref, cluster.StatusReport{Status: st, Message: msg, HelmBefore: before, HelmAfter: after}); err != nil {
		a.reportFailed(st.String(), err)
	}
}

func (a *simAgent) reportFailed(what string, err error) {
	if errors.Is(err, cluster.ErrReportRejected) {
		return // counted by countingClient
	}
	a.f.reportErrors.Add(1)
	a.f.log.Warn("report failed", "cluster", a.name, "report", what, "err", err)
}

// pause waits a random part of the step delay (none by default): the time a real step takes.
func (a *simAgent) pause(ctx context.Context) bool {
	if a.stepDelay <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(rand.N(a.stepDelay))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// measurement is the phase's synthetic latency: samples from a lognormal seeded by the
// cluster and the phase, regressFactor slower in a regressing cluster's regressing phase.
func (a *simAgent) measurement(as *ebbflowv1.Assignment) *ebbflowv1.Measurement {
	scale := 1.0
	if a.regress && as.GetPhase() == a.regressPhase {
		scale = regressFactor
	}
	rng := rand.New(rand.NewPCG(a.seed^uint64(a.idx), uint64(as.GetPhase())))
	samples := make([]float64, a.samples)
	for i := range samples {
		samples[i] = baseLatencyMs * scale * math.Exp(latencySigma*rng.NormFloat64())
	}
	target := "http://echo.sim:8080/"
	if ps := as.GetProbes().GetProbes(); len(ps) > 0 {
		target = ps[0].GetTarget()
	}
	end := time.Now()
	return &ebbflowv1.Measurement{
		Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: target, Latency: summarize(samples), SamplesMs: samples,
		StartTime: timestamppb.New(end.Add(-3 * time.Second)), EndTime: timestamppb.New(end),
		Windows: max(as.GetProbes().GetWindows(), 1),
	}
}

func summarize(samples []float64) *ebbflowv1.LatencySummary {
	s := slices.Clone(samples)
	slices.Sort(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	return &ebbflowv1.LatencySummary{
		P50Ms: quantile(s, 0.5), P90Ms: quantile(s, 0.9), P99Ms: quantile(s, 0.99), P999Ms: quantile(s, 0.999),
		MeanMs: sum / float64(len(s)), MinMs: s[0], MaxMs: s[len(s)-1], Count: int64(len(s)),
	}
}

// countingClient is the agent's client with the simulator's instruments: it counts
// heartbeats and accepted reports and stamps the acknowledgements the figures start from.
type countingClient struct {
	ebbflowv1.AgentServiceClient
	a *simAgent
}

func (c *countingClient) RegisterAgent(ctx context.Context, in *ebbflowv1.RegisterAgentRequest, opts ...grpc.CallOption) (*ebbflowv1.RegisterAgentResponse, error) {
	res, err := c.AgentServiceClient.RegisterAgent(ctx, in, opts...)
	if err == nil {
		c.a.mu.Lock()
		if c.a.registeredAt.IsZero() {
			c.a.registeredAt = time.Now()
			c.a.f.registered.Add(1)
		}
		c.a.mu.Unlock()
	}
	return res, err
}

func (c *countingClient) Heartbeat(ctx context.Context, in *ebbflowv1.HeartbeatRequest, opts ...grpc.CallOption) (*ebbflowv1.HeartbeatResponse, error) {
	res, err := c.AgentServiceClient.Heartbeat(ctx, in, opts...)
	if err == nil {
		c.a.f.heartbeats.Add(1)
	}
	return res, err
}

func (c *countingClient) ReportPhaseStatus(ctx context.Context, in *ebbflowv1.ReportPhaseStatusRequest, opts ...grpc.CallOption) (*ebbflowv1.ReportPhaseStatusResponse, error) {
	res, err := c.AgentServiceClient.ReportPhaseStatus(ctx, in, opts...)
	now := time.Now()
	if err != nil || !c.count(res.GetAccepted(), res.GetReason(), now) {
		return res, err
	}
	a, phase := c.a, in.GetRef().GetPhase()
	a.mu.Lock()
	defer a.mu.Unlock()
	switch in.GetStatus() {
	case ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED:
		if _, ok := a.measuredAck[phase]; !ok {
			a.measuredAck[phase] = now
		}
		if phase == a.lastPhase && !a.regress {
			a.finish()
		}
	case ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK:
		a.finish()
	}
	return res, err
}

func (c *countingClient) ReportMeasurement(ctx context.Context, in *ebbflowv1.ReportMeasurementRequest, opts ...grpc.CallOption) (*ebbflowv1.ReportMeasurementResponse, error) {
	res, err := c.AgentServiceClient.ReportMeasurement(ctx, in, opts...)
	if err == nil {
		c.count(res.GetAccepted(), res.GetReason(), time.Now())
	}
	return res, err
}

func (c *countingClient) count(accepted bool, reason string, now time.Time) bool {
	if !accepted {
		if c.a.f.rejected.Add(1) <= 5 {
			c.a.f.log.Warn("report not accepted", "cluster", c.a.name, "reason", reason)
		}
		return false
	}
	c.a.f.accepted.Add(1)
	for {
		last := c.a.f.lastAccept.Load()
		if now.UnixNano() <= last || c.a.f.lastAccept.CompareAndSwap(last, now.UnixNano()) {
			return true
		}
	}
}

// finish marks the agent through with the rollout (a.mu held).
func (a *simAgent) finish() {
	if !a.finished {
		a.finished = true
		a.f.done.Add(1)
	}
}
