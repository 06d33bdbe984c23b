package controller

// This file is over 500 lines on purpose: the rollout metrics are one derivation from stored
// state (what is counted, how ended rollouts are read once, how reports are timed), read top to
// bottom; splitting it would part the counters from the rules that keep them from counting
// twice.

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/types/known/timestamppb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout"
	"github.com/ebbflow/ebbflow/store"
)

// Rollout metrics, served by every node from its own replica, so any node answers (the same,
// within its replication lag):
//
//	ebbflow_rollouts{state}                        gauge: rollouts by state
//	ebbflow_rollout_clusters{rollout,state}        gauge: clusters by state, per active rollout
//	ebbflow_cluster_rollbacks_total{reason}        counter: clusters rolled back
//	ebbflow_phase_verdicts_total{phase,verdict}    counter: phase verdicts recorded
//	ebbflow_phase_latency_delta_percent{rollout,phase,quantile}
//	                                               gauge: latest judged p50/p99 change, per active rollout
//	ebbflow_agent_report_lag_seconds               histogram: agent's report time to this node's apply
//
// (The counters' instruments are ebbflow_cluster_rollbacks and ebbflow_phase_verdicts; the
// Prometheus exporter adds _total.)
//
// Where they come from. A scrape takes one snapshot of the store's index (every active
// rollout as of one applied entry, its records shared, nothing decoded) and adds the rollouts
// that ended, which never change again: each is read once with a stale read, when this node
// sees it end (or by a full scan on the first scrape and after a Resync), and kept as counts.
// A rollout that starts and ends between two scrapes is counted one scrape late.
//
// The two counters are derived from that stored state, not incremented where the leader
// applies a decision: a verdict is written once per rollout, cluster and phase and never
// cleared, and a cluster's rollback stays visible in its record (state, action, reason), so a
// total over the records cannot count a decision twice however often the engine re-evaluates,
// needs no hook in the engine's or the reports' write paths, survives restarts and leader
// changes, and is the same on every node (aggregate nodes with max, not sum). A rollback is
// counted once per cluster and rollout: a second, manual rollback of a cluster whose first one
// failed is not counted again. A reported total never goes down (a rollout that ended between
// the index snapshot and the read of its final state is missing from one scrape's total, which
// then stays at its previous value).
//
// The report lag is the one metric timed as things happen: a watcher follows the store's
// changes (see watch). Each node times its own apply.
//
// Cost: a scrape is the active rollouts' records (pointer work) plus the rollouts that ended
// since the last one; the first scrape decodes every stored rollout once.
// BenchmarkRolloutMetrics measures both (500 ended rollouts of 20 clusters and an active one
// of 5,000: about 30 ms for the first scrape, 0.13 ms for the next ones).

const (
	// maxRolloutSeries bounds the per-rollout series (ebbflow_rollout_clusters and
	// ebbflow_phase_latency_delta_percent): only rollouts that have not ended, and of those
	// the 50 created last. Ended rollouts are counted in ebbflow_rollouts only.
	maxRolloutSeries = 50
	// reportLagWindow is the least time between two looks of the report-lag watcher at the
	// rollouts that changed. A change after a quiet window is looked at as it is applied; in a
	// burst, a report is timed at the end of the window (late by up to this much), and a
	// cluster reporting twice within one window is timed once.
	reportLagWindow = 50 * time.Millisecond
	// metricsScanPage is how many rollouts a full scan decodes at a time.
	metricsScanPage = 64
)

// Rollback reasons: the label values of ebbflow_cluster_rollbacks_total.
const (
	rollbackRegression   = "regression"   // a phase's verdict was a regression
	rollbackInconclusive = "inconclusive" // an inconclusive verdict failed the cluster
	rollbackFailure      = "failure"      // the agent reported the phase failed
	rollbackWave         = "wave"         // its wave failed under the rollbackWave policy
	rollbackManual       = "manual"       // RollbackRollout
	rollbackAgent        = "agent"        // the agent rolled back by itself
	rollbackUnknown      = "unknown"      // the record no longer says (its rollback failed or timed out)
)

var rollbackReasons = []string{rollbackRegression, rollbackInconclusive, rollbackFailure, rollbackWave, rollbackManual, rollbackAgent, rollbackUnknown}

// reportLagBuckets are the bucket bounds of ebbflow_agent_report_lag_seconds.
var reportLagBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

type verdictKey struct {
	phase   ebbflowv1.Phase
	verdict ebbflowv1.Verdict
}

// rolloutCounts are the counts a set of rollouts contributes.
type rolloutCounts struct {
	states    map[ebbflowv1.RolloutState]int64
	verdicts  map[verdictKey]int64
	rollbacks map[string]int64
}

func newRolloutCounts() rolloutCounts {
	return rolloutCounts{states: map[ebbflowv1.RolloutState]int64{}, verdicts: map[verdictKey]int64{}, rollbacks: map[string]int64{}}
}

// rolloutMetrics computes the rollout metrics of one node.
type rolloutMetrics struct {
	store Reader
	log   *slog.Logger
	now   func() time.Time

	rollouts, clusters  metric.Int64ObservableGauge
	rollbacks, verdicts metric.Int64ObservableCounter
	latency             metric.Float64ObservableGauge
	lag                 metric.Float64Histogram
	start               sync.Once

	// seenMu guards what the watcher hands to collect. It is never held across a read of the
	// store, so the watcher keeps up with the store's changes whatever a scrape costs.
	seenMu sync.Mutex
	seen   map[string]struct{} // rollouts changed since the last scrape
	rescan bool                // changes were lost (a Resync): scan every stored rollout

	mu sync.Mutex // collect's state, below
	// ended: the rollouts that ended and are counted in endedCounts.
	ended       map[string]struct{}
	endedCounts rolloutCounts
	// active: the ids of the active rollouts at the last scrape (one that is gone has ended).
	active map[string]struct{}
	// sticky: rollout -> cluster -> rollback reason, for the active rollouts' clusters seen
	// rolled back: a cluster stays counted with the reason first seen, though a failed rollback
	// overwrites its record's reason.
	sticky map[string]map[string]string
	// shown: the counters' last reported values; a total never goes below them.
	shownVerdicts  map[verdictKey]int64
	shownRollbacks map[string]int64
}

// registerRolloutMetrics registers the rollout metrics on m. Nothing runs until the first
// collection: a node whose metrics are never read pays nothing.
func (s *Server) registerRolloutMetrics(m metric.Meter) error {
	rm := &rolloutMetrics{
		store: s.store, log: s.log, now: s.now,
		ended: map[string]struct{}{}, endedCounts: newRolloutCounts(), active: map[string]struct{}{},
		sticky: map[string]map[string]string{}, shownVerdicts: map[verdictKey]int64{}, shownRollbacks: map[string]int64{},
	}
	var err error
	if rm.rollouts, err = m.Int64ObservableGauge("ebbflow_rollouts",
		metric.WithDescription("Rollouts by state, as this node's replica has them.")); err != nil {
		return err
	}
	if rm.clusters, err = m.Int64ObservableGauge("ebbflow_rollout_clusters",
		metric.WithDescription("Clusters by state in each rollout that has not ended (the 50 created last).")); err != nil {
		return err
	}
	if rm.rollbacks, err = m.Int64ObservableCounter("ebbflow_cluster_rollbacks",
		metric.WithDescription("Clusters rolled back, by reason (derived from the stored rollouts: the same on every node).")); err != nil {
		return err
	}
	if rm.verdicts, err = m.Int64ObservableCounter("ebbflow_phase_verdicts",
		metric.WithDescription("Phase verdicts recorded, by phase and verdict (derived from the stored rollouts: the same on every node).")); err != nil {
		return err
	}
	if rm.latency, err = m.Float64ObservableGauge("ebbflow_phase_latency_delta_percent",
		metric.WithDescription("Latency change against the baseline of the latest judged cluster, per phase of each rollout that has not ended (the 50 created last).")); err != nil {
		return err
	}
	if rm.lag, err = m.Float64Histogram("ebbflow_agent_report_lag_seconds",
		metric.WithDescription("Time from an agent's report (its own clock) to this node applying it; 0 when the agent's clock is ahead."),
		metric.WithExplicitBucketBoundaries(reportLagBuckets...)); err != nil {
		return err
	}
	_, err = m.RegisterCallback(rm.collect, rm.rollouts, rm.clusters, rm.rollbacks, rm.verdicts, rm.latency)
	return err
}

// collect observes the rollout metrics.
func (m *rolloutMetrics) collect(ctx context.Context, o metric.Observer) error {
	m.start.Do(m.startWatching)
	m.mu.Lock()
	defer m.mu.Unlock()
	seen, rescan := m.takeSeen()
	// One snapshot of the index: every active rollout as of one applied entry.
	active := m.store.ActiveRollouts()
	live := make(map[string]struct{}, len(active))
	for _, r := range active {
		live[r.GetId()] = struct{}{}
	}
	for id := range m.active {
		seen[id] = struct{}{} // active at the last scrape: it may have ended since
	}
	if err := m.countEnded(ctx, live, seen, rescan); err != nil {
		m.log.Debug("rollout metrics: reading ended rollouts", "err", err)
	}
	m.active = live

	cur := newRolloutCounts() // the active rollouts'
	for _, r := range active {
		m.countActive(r, cur)
	}
	for st := range enumValues(ebbflowv1.RolloutState_name) {
		state := ebbflowv1.RolloutState(st)
		o.ObserveInt64(m.rollouts, m.endedCounts.states[state]+cur.states[state], attrs(attribute.String("state", enumLabel(state, "ROLLOUT_STATE_"))))
	}
	for ph := range enumValues(ebbflowv1.Phase_name) {
		for v := range enumValues(ebbflowv1.Verdict_name) {
			k := verdictKey{ebbflowv1.Phase(ph), ebbflowv1.Verdict(v)}
			n := max(m.shownVerdicts[k], m.endedCounts.verdicts[k]+cur.verdicts[k])
			m.shownVerdicts[k] = n
			o.ObserveInt64(m.verdicts, n, attrs(attribute.String("phase", enumLabel(k.phase, "PHASE_")), attribute.String("verdict", enumLabel(k.verdict, "VERDICT_"))))
		}
	}
	for _, reason := range rollbackReasons {
		n := max(m.shownRollbacks[reason], m.endedCounts.rollbacks[reason]+cur.rollbacks[reason])
		m.shownRollbacks[reason] = n
		o.ObserveInt64(m.rollbacks, n, attrs(attribute.String("reason", reason)))
	}

	// The per-rollout series: the active rollouts created last.
	slices.SortFunc(active, func(a, b *ebbflowv1.Rollout) int {
		return cmp.Or(b.GetCreateTime().AsTime().Compare(a.GetCreateTime().AsTime()), strings.Compare(a.GetId(), b.GetId()))
	})
	for _, r := range active[:min(len(active), maxRolloutSeries)] {
		m.observeRollout(o, r)
	}
	return nil
}

// observeRollout observes the per-rollout series of an active rollout.
func (m *rolloutMetrics) observeRollout(o metric.Observer, r *ebbflowv1.Rollout) {
	id := attribute.String("rollout", r.GetId())
	states := map[ebbflowv1.ClusterRolloutState]int64{}
	// latest: per phase, the judged result with the latest report time.
	latest := map[ebbflowv1.Phase]*ebbflowv1.PhaseResult{}
	for _, wv := range r.GetWaves() {
		for _, c := range wv.GetClusters() {
			states[c.GetState()]++
			for _, res := range c.GetResults() {
				if !hasDelta(res) {
					continue
				}
				if l := latest[res.GetPhase()]; l == nil || !res.GetReportTime().AsTime().Before(l.GetReportTime().AsTime()) {
					latest[res.GetPhase()] = res
				}
			}
		}
	}
	for st := range enumValues(ebbflowv1.ClusterRolloutState_name) {
		state := ebbflowv1.ClusterRolloutState(st)
		o.ObserveInt64(m.clusters, states[state], attrs(id, attribute.String("state", enumLabel(state, "CLUSTER_ROLLOUT_STATE_"))))
	}
	for ph := range enumValues(ebbflowv1.Phase_name) {
		res := latest[ebbflowv1.Phase(ph)]
		if res == nil {
			continue
		}
		phase := attribute.String("phase", enumLabel(res.GetPhase(), "PHASE_"))
		o.ObserveFloat64(m.latency, res.GetP50DeltaPercent(), attrs(id, phase, attribute.String("quantile", "p50")))
		o.ObserveFloat64(m.latency, res.GetP99DeltaPercent(), attrs(id, phase, attribute.String("quantile", "p99")))
		for _, pv := range res.GetPercentiles() {
			if pv.GetName() == "p999" { // judged only with enough samples: the series exists then
				o.ObserveFloat64(m.latency, res.GetP999DeltaPercent(), attrs(id, phase, attribute.String("quantile", "p999")))
			}
		}
	}
}

// hasDelta: res is a phase judged against the baseline on valid measurements (the baseline
// itself has no delta; an invalid measurement is judged inconclusive with none).
func hasDelta(res *ebbflowv1.PhaseResult) bool {
	return res.GetPhase() != ebbflowv1.Phase_PHASE_BASELINE && res.GetVerdict() != ebbflowv1.Verdict_VERDICT_UNSPECIFIED &&
		!strings.HasPrefix(res.GetReason(), "invalid ")
}

// countActive adds an active rollout to c, noting its clusters' rollbacks in sticky.
func (m *rolloutMetrics) countActive(r *ebbflowv1.Rollout, c rolloutCounts) {
	c.states[r.GetState()]++
	sticky := m.sticky[r.GetId()]
	for _, wv := range r.GetWaves() {
		for _, rec := range wv.GetClusters() {
			countVerdicts(rec, c)
			if _, ok := sticky[rec.GetCluster()]; ok {
				continue
			}
			if reason, ok := rollbackOf(rec, wv); ok {
				if sticky == nil {
					sticky = map[string]string{}
					m.sticky[r.GetId()] = sticky
				}
				sticky[rec.GetCluster()] = reason
			}
		}
	}
	for _, reason := range sticky {
		c.rollbacks[reason]++
	}
}

// addEnded counts a rollout that ended, once.
func (m *rolloutMetrics) addEnded(r *ebbflowv1.Rollout) {
	id := r.GetId()
	if _, ok := m.ended[id]; ok {
		return
	}
	m.ended[id] = struct{}{}
	c := m.endedCounts
	c.states[r.GetState()]++
	sticky := m.sticky[id]
	delete(m.sticky, id)
	for _, wv := range r.GetWaves() {
		for _, rec := range wv.GetClusters() {
			countVerdicts(rec, c)
			if reason, ok := sticky[rec.GetCluster()]; ok {
				c.rollbacks[reason]++
			} else if reason, ok := rollbackOf(rec, wv); ok {
				c.rollbacks[reason]++
			}
		}
	}
}

func countVerdicts(rec *ebbflowv1.RolloutCluster, c rolloutCounts) {
	for _, res := range rec.GetResults() {
		if res.GetVerdict() != ebbflowv1.Verdict_VERDICT_UNSPECIFIED {
			c.verdicts[verdictKey{res.GetPhase(), res.GetVerdict()}]++
		}
	}
}

// rollbackOf says whether a rollback of rec's cluster was decided (or done by its agent), and
// why, from the record: its state, action and reason, and its current phase's verdict.
func rollbackOf(rec *ebbflowv1.RolloutCluster, wv *ebbflowv1.Wave) (string, bool) {
	reason := rec.GetReason()
	switch rec.GetState() {
	case ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLING_BACK, ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_ROLLED_BACK:
	case ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_FAILED:
		if !strings.HasPrefix(reason, "rollback failed") {
			return "", false
		}
	case ebbflowv1.ClusterRolloutState_CLUSTER_ROLLOUT_STATE_UNKNOWN:
		if !strings.Contains(reason, " on rollback (") { // silent past the deadline while rolling back
			return "", false
		}
	default:
		if rec.GetAction() != ebbflowv1.AssignmentAction_ASSIGNMENT_ACTION_ROLLBACK {
			return "", false
		}
	}
	switch {
	case strings.HasPrefix(reason, "rollback by "):
		return rollbackManual, true
	case strings.HasPrefix(reason, "the agent rolled back"):
		return rollbackAgent, true
	}
	for _, res := range rec.GetResults() {
		if res.GetPhase() != rec.GetPhase() {
			continue
		}
		switch res.GetVerdict() {
		case ebbflowv1.Verdict_VERDICT_REGRESSION:
			return rollbackRegression, true
		case ebbflowv1.Verdict_VERDICT_INCONCLUSIVE:
			return rollbackInconclusive, true
		}
	}
	switch {
	case strings.HasPrefix(reason, "phase ") && strings.Contains(reason, " failed"):
		return rollbackFailure, true
	case wv.GetState() == ebbflowv1.WaveState_WAVE_STATE_FAILED, wv.GetState() == ebbflowv1.WaveState_WAVE_STATE_ROLLED_BACK:
		return rollbackWave, true
	}
	return rollbackUnknown, true
}

// countEnded counts the rollouts that ended since the last scrape: those among seen that are
// not live (in the index snapshot the scrape reports) and not counted yet, or, after a Resync
// and on the first scrape, every stored rollout. A rollout read that has not ended (created
// after the snapshot) waits for the next scrape.
func (m *rolloutMetrics) countEnded(ctx context.Context, live, seen map[string]struct{}, rescan bool) error {
	if rescan {
		err := m.store.View(ctx, store.Stale, func(tx *store.Tx) error {
			for after := ""; ; {
				rs, err := tx.Rollouts(after, metricsScanPage, true)
				if err != nil {
					return err
				}
				for _, r := range rs {
					if _, ok := live[r.GetId()]; !ok && rollout.Terminal(r.GetState()) {
						m.addEnded(r)
					}
				}
				if len(rs) < metricsScanPage {
					return nil
				}
				after = rs[len(rs)-1].GetId()
			}
		})
		if err != nil {
			m.handBack(seen, true)
			return err
		}
	}
	var todo []string
	for id := range seen {
		_, isLive := live[id]
		_, done := m.ended[id]
		if !isLive && !done {
			todo = append(todo, id)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	later := map[string]struct{}{}
	err := m.store.View(ctx, store.Stale, func(tx *store.Tx) error {
		for _, id := range todo {
			r, err := tx.Rollout(id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				delete(m.sticky, id)
			case err != nil:
				return err
			case rollout.Terminal(r.GetState()):
				m.addEnded(r)
			default:
				later[id] = struct{}{}
			}
		}
		return nil
	})
	if err != nil {
		for _, id := range todo {
			later[id] = struct{}{}
		}
	}
	m.handBack(later, false)
	return err
}

// takeSeen returns (and resets) the rollouts changed since the last call, and whether a full
// scan is owed.
func (m *rolloutMetrics) takeSeen() (map[string]struct{}, bool) {
	m.seenMu.Lock()
	defer m.seenMu.Unlock()
	seen, rescan := m.seen, m.rescan
	m.seen, m.rescan = map[string]struct{}{}, false
	if seen == nil {
		seen = map[string]struct{}{}
	}
	return seen, rescan
}

// handBack returns rollouts to look at again at the next scrape.
func (m *rolloutMetrics) handBack(ids map[string]struct{}, rescan bool) {
	m.seenMu.Lock()
	defer m.seenMu.Unlock()
	for id := range ids {
		m.seen[id] = struct{}{}
	}
	m.rescan = m.rescan || rescan
}

// startWatching subscribes to the store's changes (before the first scrape reads anything, so
// no change falls between them) and starts the watcher. The first scrape scans every rollout.
func (m *rolloutMetrics) startWatching() {
	m.seenMu.Lock()
	m.seen, m.rescan = map[string]struct{}{}, true
	m.seenMu.Unlock()
	sub := m.store.Subscribe()
	if sub == nil {
		return
	}
	go m.watch(sub)
}

// watch follows the store's changes until the store closes: it notes the rollouts that changed
// (a scrape looks for the ones that ended among them) and times agents' reports. A report is
// seen as a record whose last_report_time (the agent's clock, set by every accepted report
// that carries one) moved; at most every reportLagWindow the watcher compares the records of
// the rollouts that changed with those it saw before (pointers first: the index replaces a
// record when it changes), so its cost is the changed rollouts' records, at a bounded rate.
func (m *rolloutMetrics) watch(sub *store.Subscription) {
	prev := map[string][]*ebbflowv1.RolloutCluster{}
	seed := func() {
		clear(prev)
		for _, r := range m.store.ActiveRollouts() {
			prev[r.GetId()] = records(r)
		}
	}
	seed()
	dirty := map[string]time.Time{} // rollout -> when its last change was applied
	var (
		tick    <-chan time.Time
		lastRun time.Time
	)
	run := func() {
		tick, lastRun = nil, time.Now()
		for id, at := range dirty {
			m.timeReports(id, at, prev)
		}
		clear(dirty)
	}
	for {
		select {
		case ch, ok := <-sub.C:
			if !ok {
				return
			}
			if ch.Resync {
				m.handBack(nil, true)
				clear(dirty)
				seed()
				continue
			}
			if ch.Kind != store.KindRollout {
				continue
			}
			m.seenMu.Lock()
			m.seen[ch.Key] = struct{}{}
			m.seenMu.Unlock()
			dirty[ch.Key] = m.now()
			switch wait := reportLagWindow - time.Since(lastRun); {
			case tick != nil:
			case wait <= 0:
				run() // the first change after a quiet window: at once
			default:
				tick = time.After(wait)
			}
		case <-tick:
			run()
		}
	}
}

// timeReports records the lag of the reports applied to rollout id since prev, at time at.
func (m *rolloutMetrics) timeReports(id string, at time.Time, prev map[string][]*ebbflowv1.RolloutCluster) {
	r, ok := m.store.ActiveRollout(id)
	if !ok {
		delete(prev, id)
		return
	}
	recs := records(r)
	old, known := prev[id]
	prev[id] = recs
	if known && len(old) != len(recs) {
		return // not the same rollout (never happens: a rollout's clusters are fixed)
	}
	for i, rec := range recs {
		var was *timestamppb.Timestamp
		if known {
			if old[i] == rec {
				continue
			}
			was = old[i].GetLastReportTime()
		}
		t := rec.GetLastReportTime()
		if t == nil || (was != nil && !t.AsTime().After(was.AsTime())) {
			continue
		}
		m.lag.Record(context.Background(), max(at.Sub(t.AsTime()).Seconds(), 0))
	}
}

// records lists a rollout's cluster records in wave order.
func records(r *ebbflowv1.Rollout) []*ebbflowv1.RolloutCluster {
	var out []*ebbflowv1.RolloutCluster
	for _, wv := range r.GetWaves() {
		out = append(out, wv.GetClusters()...)
	}
	return out
}

// enumValues yields an enum's values but the unspecified 0, in order.
func enumValues(names map[int32]string) func(yield func(int32) bool) {
	return func(yield func(int32) bool) {
		vs := make([]int32, 0, len(names))
		for v := range names {
			if v != 0 {
				vs = append(vs, v)
			}
		}
		slices.Sort(vs)
		for _, v := range vs {
			if !yield(v) {
				return
			}
		}
	}
}

// enumLabel is an enum value's name without prefix, in lower case: "waiting_for_approval".
func enumLabel(v interface{ String() string }, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(v.String(), prefix))
}

func attrs(kv ...attribute.KeyValue) metric.ObserveOption {
	return metric.WithAttributeSet(attribute.NewSet(kv...))
}
