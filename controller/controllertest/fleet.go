package controllertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/proto/ebbflow/v1/ebbflowv1connect"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// Agent is a scripted agent for the in-process rollout tests: it speaks the real agent API
// (register, watch the assignment stream, report measurements and status) and answers every
// APPLY with latency samples drawn from its distribution, and every ROLLBACK with ROLLED_BACK.
type Agent struct {
	Name    string
	urls    []string        // controller nodes; the agent moves to the next one when a call fails
	SlowAt  ebbflowv1.Phase // phases from this one on are 40% slower (0: never)
	mu      sync.Mutex
	next    int
	applied map[string]int // phase (and kpr node batch: "PHASE_KPR batch 2") -> APPLY assignments received
	seen    map[string]bool
	// HoldAt, when set, makes the agent wait on Hold before reporting that phase measured
	// (after sending its name to Reached), so a test can act in the middle of a wave.
	HoldAt  ebbflowv1.Phase
	Hold    chan struct{}
	Reached chan string
	// inv is the inventory the agent registered; a node-by-node kpr phase's batches come from it.
	inv *ebbflowv1.Inventory
	// http calls the controller: HTTPClient() (h2c, no credentials) unless the fleet is secure,
	// then a TLS client presenting the cluster's certificate.
	http *http.Client
}

// client returns the clients of the current node; failover moves to the next one.
func (a *Agent) client() ebbflowv1connect.AgentServiceClient {
	a.mu.Lock()
	defer a.mu.Unlock()
	return ebbflowv1connect.NewAgentServiceClient(a.http, a.urls[a.next%len(a.urls)])
}

func (a *Agent) failover() {
	a.mu.Lock()
	a.next++
	a.mu.Unlock()
}

func (a *Agent) samples(phase ebbflowv1.Phase, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]float64, 300)
	for i := range out {
		v := 1.0 + r.NormFloat64()*0.05
		if a.SlowAt != 0 && phase >= a.SlowAt {
			v *= 1.4
		}
		out[i] = v
	}
	return out
}

func (a *Agent) run(ctx context.Context) {
	for ctx.Err() == nil {
		a.watch(ctx)
		a.failover()
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *Agent) watch(ctx context.Context) {
	stream, err := a.client().WatchAssignment(ctx, connect.NewRequest(&ebbflowv1.WatchAssignmentRequest{Cluster: a.Name}))
	if err != nil {
		return
	}
	defer func() { _ = stream.Close() }()
	for stream.Receive() {
		as := stream.Msg().GetAssignment()
		if as.GetId() == "" {
			continue
		}
		a.mu.Lock()
		dup := a.seen[as.GetId()]
		a.seen[as.GetId()] = true
		if !dup && as.GetAction() == ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY {
			key := as.GetPhase().String()
			if k := as.GetKprBatch(); k > 0 {
				key += fmt.Sprintf(" batch %d", k)
			}
			a.applied[key]++
		}
		a.mu.Unlock()
		if dup {
			continue
		}
		go a.execute(ctx, as)
	}
}

func (a *Agent) execute(ctx context.Context, as *ebbflowv1.Assignment) {
	ref := &ebbflowv1.ReportRef{Cluster: a.Name, AssignmentId: as.GetId(), ProfileRevision: as.GetProfileRevision(), Phase: as.GetPhase()}
	// A node-by-node kpr APPLY reports its batch, as the batch plan of the agent's inventory
	// has it.
	var batch *ebbflowv1.KprBatchStatus
	if k := int(as.GetKprBatch()); k > 0 && as.GetAction() == ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY {
		if plan := profile.NewPreflighter(as.GetProfile()).KprBatchPlan(a.inv); k <= len(plan) {
			batch = plan[k-1]
		}
	}
	status := func(st ebbflowv1.PhaseStatus, before, after int32) {
		// Reports are retried until the leader accepts or refuses them (a leader may change).
		for ctx.Err() == nil {
			_, err := a.client().ReportPhaseStatus(ctx, connect.NewRequest(&ebbflowv1.ReportPhaseStatusRequest{
				Ref: ref, Status: st, ReportTime: timestamppb.Now(), HelmRevisionBefore: before, HelmRevisionAfter: after,
				KprBatch: batch,
			}))
			if err == nil {
				return
			}
			a.failover()
			time.Sleep(50 * time.Millisecond)
		}
	}
	rev := int32(as.GetPhase())
	switch as.GetAction() {
	case ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK:
		status(ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED, rev, rev)
		status(ebbflowv1.PhaseStatus_PHASE_STATUS_ROLLED_BACK, rev, as.GetRollbackToHelmRevision())
	case ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_APPLY:
		status(ebbflowv1.PhaseStatus_PHASE_STATUS_STARTED, rev, rev)
		status(ebbflowv1.PhaseStatus_PHASE_STATUS_VERIFIED, rev, rev+1)
		for ctx.Err() == nil {
			_, err := a.client().ReportMeasurement(ctx, connect.NewRequest(&ebbflowv1.ReportMeasurementRequest{
				Ref: ref, ReportTime: timestamppb.Now(),
				Measurements: []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://target", SamplesMs: a.samples(as.GetPhase(), uint64(len(a.Name))*31+uint64(as.GetPhase()))}},
			}))
			if err == nil {
				break
			}
			a.failover()
			time.Sleep(50 * time.Millisecond)
		}
		if a.Hold != nil && as.GetPhase() == a.HoldAt {
			a.Reached <- a.Name
			select {
			case <-a.Hold:
			case <-ctx.Done():
				return
			}
		}
		status(ebbflowv1.PhaseStatus_PHASE_STATUS_MEASURED, rev, rev+1)
	}
}

// StartFleet registers n clusters (c-00, c-01, ...) with modern inventories (kernel 6.8, mlx5)
// and starts their scripted agents against urls. slow names the clusters that regress and from
// which phase; setup adjusts each agent before it starts.
func StartFleet(t testing.TB, urls []string, n int, slow map[string]ebbflowv1.Phase, setup func(*Agent)) map[string]*Agent {
	t.Helper()
	return startFleet(t, nil, urls, n, slow, setup)
}

// StartSecureFleet is StartFleet against nodes started with sec: each cluster first joins
// (a join token from the admin, a certificate for its key) and its agent then calls with that
// certificate, as fleet-agent does.
func StartSecureFleet(t testing.TB, sec *Security, urls []string, n int, slow map[string]ebbflowv1.Phase, setup func(*Agent)) map[string]*Agent {
	t.Helper()
	return startFleet(t, sec, urls, n, slow, setup)
}

func startFleet(t testing.TB, sec *Security, urls []string, n int, slow map[string]ebbflowv1.Phase, setup func(*Agent)) map[string]*Agent {
	t.Helper()
	values, _ := structpb.NewStruct(map[string]any{"k8sServiceHost": "10.0.0.1", "k8sServicePort": 6443})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	agents := map[string]*Agent{}
	for i := range n {
		name := fmt.Sprintf("c-%02d", i)
		hc := HTTPClient()
		if sec != nil {
			cert := sec.Join(t, urls[0], name)
			hc = sec.Client(&cert)
		}
		c := ebbflowv1connect.NewAgentServiceClient(hc, urls[0])
		inv := &ebbflowv1.Inventory{KubernetesVersion: "v1.34.3", HelmValues: values, KubeProxyPresent: true, Nodes: []*ebbflowv1.NodeInfo{
			{Name: "n1", KernelVersion: "6.8.0-45-generic", NicDriver: "mlx5", Ready: true},
			{Name: "n2", KernelVersion: "6.8.0-45-generic", NicDriver: "mlx5", Ready: true},
		}}
		if _, err := c.RegisterAgent(ctx, connect.NewRequest(&ebbflowv1.RegisterAgentRequest{
			Cluster: name, Labels: map[string]string{"env": "prod", "order": fmt.Sprintf("%02d", i)}, Inventory: inv,
		})); err != nil {
			t.Fatal(err)
		}
		a := &Agent{Name: name, urls: urls, SlowAt: slow[name], applied: map[string]int{}, seen: map[string]bool{}, inv: inv, http: hc}
		if setup != nil {
			setup(a)
		}
		agents[name] = a
		go a.run(ctx)
	}
	return agents
}

// Applied counts the APPLY assignments the agent received, by phase (a node-by-node kpr
// phase by batch: "PHASE_KPR batch 2").
func (a *Agent) Applied() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.applied))
	for k, v := range a.applied {
		out[k] = v
	}
	return out
}
