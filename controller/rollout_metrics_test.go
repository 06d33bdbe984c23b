package controller_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/ebbflow/ebbflow/controller"
	"github.com/ebbflow/ebbflow/controller/controllertest"
	"github.com/ebbflow/ebbflow/internal/telemetry"
	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// promSamples is a scrape of /metrics: value by series, the series written name{k="v",...}
// with its labels sorted and the otel_scope_* labels left out.
type promSamples map[string]float64

func series(name string, kv ...string) string {
	var labels []string
	for i := 0; i+1 < len(kv); i += 2 {
		labels = append(labels, kv[i]+"="+strconv.Quote(kv[i+1]))
	}
	slices.Sort(labels)
	return name + "{" + strings.Join(labels, ",") + "}"
}

func (p promSamples) get(name string, kv ...string) (float64, bool) {
	v, ok := p[series(name, kv...)]
	return v, ok
}

func (p promSamples) value(name string, kv ...string) float64 {
	v, _ := p.get(name, kv...)
	return v
}

// parseProm reads the Prometheus text format (the subset /metrics writes).
func parseProm(t *testing.T, body string) promSamples {
	t.Helper()
	out := promSamples{}
	for line := range strings.SplitSeq(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q: %v", line, err)
		}
		name, rest, _ := strings.Cut(line[:sp], "{")
		rest = strings.TrimSuffix(rest, "}")
		var kv []string
		for rest != "" {
			k, r, _ := strings.Cut(rest, `="`)
			var val strings.Builder
			i := 0
			for ; i < len(r) && r[i] != '"'; i++ {
				if r[i] == '\\' && i+1 < len(r) {
					i++
				}
				val.WriteByte(r[i])
			}
			rest = strings.TrimPrefix(r[min(i+1, len(r)):], ",")
			if !strings.HasPrefix(k, "otel_scope_") {
				kv = append(kv, k, val.String())
			}
		}
		out[series(name, kv...)] = v
	}
	return out
}

func scrape(t *testing.T, url string) (promSamples, string) {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", res.StatusCode, err)
	}
	return parseProm(t, string(body)), string(body)
}

// rolloutExcerpt keeps the lines of the rollout metrics, otel_scope_* labels dropped.
func rolloutExcerpt(body string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(body, "\n") {
		for _, m := range []string{"ebbflow_rollout", "ebbflow_cluster_rollbacks", "ebbflow_phase_", "ebbflow_agent_report_lag"} {
			if strings.HasPrefix(line, m) || strings.HasPrefix(line, "# TYPE "+m) {
				for _, l := range []string{`otel_scope_name="github.com/ebbflow/ebbflow/controller",`, `otel_scope_schema_url="",`, `otel_scope_version="",`, `otel_scope_version=""`} {
					line = strings.Replace(line, l, "", 1)
				}
				b.WriteString(strings.Replace(line, "{}", "", 1) + "\n")
				break
			}
		}
	}
	return b.String()
}

var (
	allPhases   = []string{"baseline", "l7", "kpr", "xdp"}
	allVerdicts = []string{"pass", "regression", "inconclusive"}
)

// verdictsOf counts a rollout's recorded verdicts by "phase/verdict".
func verdictsOf(r *ebbflowv1.Rollout) map[string]float64 {
	out := map[string]float64{}
	for _, cs := range clusterState(r) {
		for _, res := range cs.GetResults() {
			if res.GetVerdict() != ebbflowv1.Verdict_VERDICT_UNSPECIFIED {
				out[strings.ToLower(strings.TrimPrefix(res.GetPhase().String(), "PHASE_"))+"/"+strings.ToLower(strings.TrimPrefix(res.GetVerdict().String(), "VERDICT_"))]++
			}
		}
	}
	return out
}

func checkVerdicts(t *testing.T, m promSamples, r *ebbflowv1.Rollout) {
	t.Helper()
	want := verdictsOf(r)
	for _, p := range allPhases {
		for _, v := range allVerdicts {
			got, ok := m.get("ebbflow_phase_verdicts_total", "phase", p, "verdict", v)
			if !ok || got != want[p+"/"+v] {
				t.Errorf("ebbflow_phase_verdicts_total{phase=%q,verdict=%q} = %v (present %v), the rollout has %v", p, v, got, ok, want[p+"/"+v])
			}
		}
	}
}

// metricsNode starts a node with its own meter and /metrics, and the bare-metal profile.
func metricsNode(t *testing.T) (*controllertest.Node, clients) {
	t.Helper()
	tel, err := telemetry.Setup(telemetry.Options{ServiceName: "fleet-controller"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	n := controllertest.Start(t, controllertest.Options{Config: func(c *controller.Config) {
		fastEngine(c)
		c.Meter, c.Metrics = tel.Meter, tel.MetricsHandler()
	}})
	c := newClients(n.URL)
	applyBareMetal(t, c)
	return n, c
}

// A real rollout (six clusters; c-05 regresses at kpr and is rolled back), its metrics scraped
// over HTTP: in the middle (the two canaries held before their kpr verdict) and after the end.
func TestRolloutMetrics(t *testing.T) {
	n, c := metricsNode(t)

	// No rollout yet: every state is there, at 0, and so is every verdict counter. (This first
	// scrape also starts the node's report watcher.)
	m, _ := scrape(t, n.URL)
	for _, st := range []string{"pending", "running", "paused", "waiting_for_approval", "succeeded", "failed", "aborted", "rolling_back", "rolled_back"} {
		if v, ok := m.get("ebbflow_rollouts", "state", st); !ok || v != 0 {
			t.Errorf("before: ebbflow_rollouts{state=%q} = %v, present %v", st, v, ok)
		}
	}
	for _, reason := range []string{"regression", "failure", "wave", "manual", "unknown"} {
		if v, ok := m.get("ebbflow_cluster_rollbacks_total", "reason", reason); !ok || v != 0 {
			t.Errorf("before: ebbflow_cluster_rollbacks_total{reason=%q} = %v, present %v", reason, v, ok)
		}
	}

	hold, reached := make(chan struct{}), make(chan string, 2)
	controllertest.StartFleet(t, []string{n.URL}, 6, map[string]ebbflowv1.Phase{"c-05": ebbflowv1.Phase_PHASE_KPR}, func(a *controllertest.Agent) {
		if a.Name == "c-00" || a.Name == "c-01" { // the canaries
			a.HoldAt, a.Hold, a.Reached = ebbflowv1.Phase_PHASE_KPR, hold, reached
		}
	})
	if _, err := c.rollouts.CreateRollout(context.Background(), connect.NewRequest(&ebbflowv1.CreateRolloutRequest{Id: "metrics", Spec: fleetSpec(0, 1)})); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-reached:
		case <-time.After(time.Minute):
			t.Fatal("the canaries did not reach kpr")
		}
	}

	// Held: the canaries measure kpr (baseline and l7 judged), the four others wait for wave 1.
	var (
		mid     *ebbflowv1.Rollout
		midBody string
	)
	controllertest.Eventually(t, 30*time.Second, "the held rollout's metrics", func() bool {
		res, err := c.rollouts.GetRollout(context.Background(), connect.NewRequest(&ebbflowv1.GetRolloutRequest{Id: "metrics"}))
		if err != nil {
			return false
		}
		mid = res.Msg.GetRollout()
		m, midBody = scrape(t, n.URL)
		_, l7 := m.get("ebbflow_phase_latency_delta_percent", "phase", "l7", "quantile", "p99", "rollout", "metrics")
		return m.value("ebbflow_rollouts", "state", "running") == 1 &&
			m.value("ebbflow_rollout_clusters", "rollout", "metrics", "state", "measuring") == 2 &&
			m.value("ebbflow_rollout_clusters", "rollout", "metrics", "state", "pending") == 4 && l7 &&
			m.value("ebbflow_phase_verdicts_total", "phase", "l7", "verdict", "pass") == 2 &&
			m.value("ebbflow_agent_report_lag_seconds_count") > 0
	})
	t.Logf("/metrics while the canaries are held (rollout metrics, otel_scope_* labels left out):\n%s", rolloutExcerpt(midBody))
	checkVerdicts(t, m, mid)
	timedMid := m.value("ebbflow_agent_report_lag_seconds_count")
	if _, ok := m.get("ebbflow_phase_latency_delta_percent", "phase", "kpr", "quantile", "p50", "rollout", "metrics"); ok {
		t.Error("a latency delta for kpr, which no cluster has been judged on")
	}
	close(hold)
	r := watchToEnd(t, c, "metrics")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED {
		t.Fatalf("rollout ended %v: %s", r.GetState(), r.GetMessage())
	}
	if cs := clusterState(r)["c-05"]; cs.GetState() != ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK {
		t.Fatalf("c-05: %v %q", cs.GetState(), cs.GetReason())
	}
	var body string
	controllertest.Eventually(t, 30*time.Second, "the ended rollout's metrics", func() bool {
		m, body = scrape(t, n.URL)
		return m.value("ebbflow_rollouts", "state", "succeeded") == 1
	})
	t.Logf("/metrics (rollout metrics, otel_scope_* labels left out):\n%s", rolloutExcerpt(body))
	if v := m.value("ebbflow_rollouts", "state", "running"); v != 0 {
		t.Errorf("ebbflow_rollouts{state=running} = %v after the end", v)
	}
	for s := range m {
		if strings.HasPrefix(s, "ebbflow_rollout_clusters{") || strings.HasPrefix(s, "ebbflow_phase_latency_delta_percent{") {
			t.Errorf("%s: a per-rollout series of an ended rollout", s)
		}
	}
	checkVerdicts(t, m, r)
	if v := m.value("ebbflow_phase_verdicts_total", "phase", "kpr", "verdict", "regression"); v != 1 {
		t.Errorf("kpr regressions %v, want 1 (c-05)", v)
	}
	for _, reason := range []string{"regression", "inconclusive", "failure", "wave", "manual", "agent", "unknown"} {
		want := 0.0
		if reason == "regression" {
			want = 1
		}
		if v, ok := m.get("ebbflow_cluster_rollbacks_total", "reason", reason); !ok || v != want {
			t.Errorf("ebbflow_cluster_rollbacks_total{reason=%q} = %v (present %v), want %v", reason, v, ok, want)
		}
	}
	// Every report of the scripted agents carries its time; the watcher times those it sees
	// (a cluster once per 50 ms burst): wave 1's too, and here, in the same process, well under
	// a second each.
	if count, sum := m.value("ebbflow_agent_report_lag_seconds_count"), m.value("ebbflow_agent_report_lag_seconds_sum"); count <= timedMid || sum < 0 || sum/count > 1 {
		t.Errorf("ebbflow_agent_report_lag_seconds: count %v (%v while held) sum %v; want more reports timed after the hold, under a second on average", count, timedMid, sum)
	}
	if !strings.Contains(body, "# TYPE ebbflow_phase_verdicts_total counter") || !strings.Contains(body, "# TYPE ebbflow_agent_report_lag_seconds histogram") {
		t.Error("/metrics lacks the counter or histogram types")
	}
}

// Under rollbackWave, c-05's regression fails its wave: c-05 is rolled back for the regression,
// the other clusters of the wave that changed anything for the wave.
func TestRolloutMetricsWaveRollback(t *testing.T) {
	n, c := metricsNode(t)
	controllertest.StartFleet(t, []string{n.URL}, 6, map[string]ebbflowv1.Phase{"c-05": ebbflowv1.Phase_PHASE_KPR}, nil)
	if _, err := c.rollouts.CreateRollout(context.Background(), connect.NewRequest(&ebbflowv1.CreateRolloutRequest{
		Id: "wave-back", Spec: fleetSpec(ebbflowv1.FailurePolicy_FAILURE_POLICY_ROLLBACK_WAVE, 0),
	})); err != nil {
		t.Fatal(err)
	}
	r := watchToEnd(t, c, "wave-back")
	if r.GetState() != ebbflowv1.RolloutState_ROLLOUT_STATE_ROLLED_BACK {
		t.Fatalf("rollout ended %v: %s", r.GetState(), r.GetMessage())
	}
	wave := 0.0
	for name, cs := range clusterState(r) {
		if name != "c-05" && cs.GetState() == ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK {
			wave++
		}
	}
	if wave == 0 {
		t.Fatal("no cluster but c-05 was rolled back")
	}
	var m promSamples
	controllertest.Eventually(t, 30*time.Second, "the rolled-back rollout's metrics", func() bool {
		m, _ = scrape(t, n.URL)
		return m.value("ebbflow_rollouts", "state", "rolled_back") == 1
	})
	checkVerdicts(t, m, r)
	for reason, want := range map[string]float64{"regression": 1, "wave": wave, "failure": 0, "manual": 0, "unknown": 0} {
		if v := m.value("ebbflow_cluster_rollbacks_total", "reason", reason); v != want {
			t.Errorf("ebbflow_cluster_rollbacks_total{reason=%q} = %v, want %v", reason, v, want)
		}
	}
}

// BenchmarkRolloutMetrics measures a collection of the rollout metrics over a store of 500
// ended rollouts of 20 clusters (each with a measured baseline of 300 samples and three judged
// phases) and one paused rollout of 5,000 clusters: the first collection of a node (a full
// scan, which decodes every rollout once) and the next ones (the active rollout from the index).
func BenchmarkRolloutMetrics(b *testing.B) {
	n := controllertest.Start(b, controllertest.Options{})
	ctx := context.Background()
	samples := make([]float64, 300)
	for i := range samples {
		samples[i] = 1 + float64(i%7)/100
	}
	rec := func(i int, state ebbflowv1.ClusterRolloutState, judged bool) *ebbflowv1.RolloutCluster {
		c := &ebbflowv1.RolloutCluster{Cluster: fmt.Sprintf("c-%05d", i), State: state, Phase: ebbflowv1.Phase_PHASE_XDP}
		if judged {
			c.Results = []*ebbflowv1.PhaseResult{
				{Phase: ebbflowv1.Phase_PHASE_BASELINE, Verdict: ebbflowv1.Verdict_VERDICT_PASS, Measurements: []*ebbflowv1.Measurement{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, SamplesMs: samples}}},
				{Phase: ebbflowv1.Phase_PHASE_L7, Verdict: ebbflowv1.Verdict_VERDICT_PASS, P50DeltaPercent: 1},
				{Phase: ebbflowv1.Phase_PHASE_KPR, Verdict: ebbflowv1.Verdict_VERDICT_PASS, P50DeltaPercent: -3},
				{Phase: ebbflowv1.Phase_PHASE_XDP, Verdict: ebbflowv1.Verdict_VERDICT_PASS, P50DeltaPercent: -5},
			}
		}
		return c
	}
	put := func(rs ...*ebbflowv1.Rollout) {
		var cmds []*storev1.Command
		for _, r := range rs {
			cmds = append(cmds, &storev1.Command{Actor: "bench", Body: &storev1.Command_PutRollout{PutRollout: &storev1.PutRollout{Rollout: r}}})
		}
		res, err := n.Store.ApplyBatch(ctx, cmds)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	var batch []*ebbflowv1.Rollout
	for i := range 500 {
		w := &ebbflowv1.Wave{Name: "all", State: ebbflowv1.WaveState_WAVE_STATE_SUCCEEDED}
		for j := range 20 {
			w.Clusters = append(w.Clusters, rec(j, ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_SUCCEEDED, true))
		}
		batch = append(batch, &ebbflowv1.Rollout{Id: fmt.Sprintf("ended-%04d", i), State: ebbflowv1.RolloutState_ROLLOUT_STATE_SUCCEEDED, Waves: []*ebbflowv1.Wave{w}})
		if len(batch) == 20 {
			put(batch...)
			batch = nil
		}
	}
	big := &ebbflowv1.Wave{Name: "all", State: ebbflowv1.WaveState_WAVE_STATE_PENDING}
	for j := range 5000 {
		big.Clusters = append(big.Clusters, rec(j, ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_PENDING, false))
	}
	put(&ebbflowv1.Rollout{Id: "active", State: ebbflowv1.RolloutState_ROLLOUT_STATE_PAUSED, Waves: []*ebbflowv1.Wave{big}})

	// A server of its own on the node's store, read through a manual reader.
	collector := func(b *testing.B) func() metricdata.ResourceMetrics {
		reader := sdkmetric.NewManualReader()
		s, err := controller.New(controller.Config{Store: n.Store, NodeID: n.ID, Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), Logger: controllertest.Logger(b)})
		if err != nil || s == nil {
			b.Fatal(err)
		}
		return func() metricdata.ResourceMetrics {
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(ctx, &rm); err != nil {
				b.Fatal(err)
			}
			return rm
		}
	}
	check := func(b *testing.B, rm metricdata.ResourceMetrics) {
		for _, sm := range rm.ScopeMetrics {
			for _, mt := range sm.Metrics {
				if mt.Name != "ebbflow_rollouts" {
					continue
				}
				for _, dp := range mt.Data.(metricdata.Gauge[int64]).DataPoints {
					if st, _ := dp.Attributes.Value("state"); st.AsString() == "succeeded" && dp.Value != 500 {
						b.Fatalf("succeeded rollouts %d, want 500", dp.Value)
					}
				}
				return
			}
		}
		b.Fatal("no ebbflow_rollouts")
	}
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			check(b, collector(b)())
		}
	})
	b.Run("next", func(b *testing.B) {
		collect := collector(b)
		collect()
		for b.Loop() {
			check(b, collect())
		}
	})
}
