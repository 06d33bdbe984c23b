package rollout

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// FeatureAfterHeld is the preflight feature that holds every phase after a held one.
const FeatureAfterHeld = "after-held-phase"

var (
	// ErrProfileMismatch: the profile given to Plan is not the one the rollout names.
	ErrProfileMismatch = errors.New("profile does not match the rollout spec")
)

// Phases returns the phases a rollout runs, in order: spec.phases, or all four when empty.
func Phases(spec *ebbflowv1.RolloutSpec) []ebbflowv1.Phase {
	if len(spec.GetPhases()) == 0 {
		return profile.AllPhases()
	}
	return slices.Clone(spec.GetPhases())
}

// PlannedWave is one wave of a plan: its clusters in rollout order and its gates.
type PlannedWave struct {
	// Index counts from 0.
	Index    int
	Name     string
	Clusters []*ebbflowv1.Cluster
	Gates    *ebbflowv1.WaveGates
}

// PlanWaves cuts the clusters in scope (those spec.clusterSelector matches) into waves.
// Cordoned clusters, clusters matching no explicit wave, and clusters an explicit wave lists but
// that are not registered or not in scope come back as skipped, with the reason, sorted by name.
//
// Explicit waves are taken in order; a cluster goes in the first wave whose selector matches it
// or that lists it by name. A wave may end up empty; it stays in the plan so indexes match the
// spec.
//
// Automatic waves: clusters are ordered (see below), the first canaryCount form the "canary"
// wave, and the rest are cut into "wave-1", "wave-2", ... of waveSize clusters, or of
// wavePercent of the rest rounded up (at least one). For example 23 clusters, canaryCount 3,
// wavePercent 25: canary 3, then 20 left, 25% = 5 per wave: wave-1..wave-4 of 5 each. With 10
// left and 25%: ceil(2.5) = 3, so waves of 3, 3, 3, 1.
//
// Order, in every wave and before cutting automatic waves: by the value of spec.sortLabel
// (numerically when both values are integers, clusters without the label last), then by name.
// The input order never matters.
func PlanWaves(spec Spec, clusters []*ebbflowv1.Cluster) ([]PlannedWave, []*ebbflowv1.SkippedCluster, error) {
	scope, err := ParseSelector(spec.GetClusterSelector())
	if err != nil {
		return nil, nil, err
	}
	sk := &skips{seen: map[string]bool{}}
	byName := map[string]*ebbflowv1.Cluster{}
	var eligible []*ebbflowv1.Cluster
	for _, c := range sortedByName(clusters) {
		if _, dup := byName[c.GetName()]; dup {
			sk.add(c.GetName(), "registered twice; the first registration is used")
			continue
		}
		byName[c.GetName()] = c
		switch {
		case !selects(scope, c):
		case c.GetCordoned():
			sk.add(c.GetName(), "cordoned: "+cmp.Or(c.GetCordonReason(), "no reason given"))
		default:
			eligible = append(eligible, c)
		}
	}
	var waves []PlannedWave
	switch w := spec.GetWaves().(type) {
	case *ebbflowv1.RolloutSpec_Explicit:
		waves = explicitWaves(w.Explicit, eligible, byName, scope, sk)
	case *ebbflowv1.RolloutSpec_Automatic:
		waves = automaticWaves(w.Automatic, sortClusters(eligible, spec.GetSortLabel()))
	}
	for i := range waves {
		waves[i].Clusters = sortClusters(waves[i].Clusters, spec.GetSortLabel())
	}
	slices.SortStableFunc(sk.list, func(a, b *ebbflowv1.SkippedCluster) int { return cmp.Compare(a.GetCluster(), b.GetCluster()) })
	return waves, sk.list, nil
}

// skips collects skipped clusters, one entry per name.
type skips struct {
	list []*ebbflowv1.SkippedCluster
	seen map[string]bool
}

func (s *skips) add(name, reason string) {
	if s.seen[name] {
		return
	}
	s.seen[name] = true
	s.list = append(s.list, &ebbflowv1.SkippedCluster{Cluster: name, Reason: reason})
}

func waveName(w *ebbflowv1.WaveSpec, i int) string {
	return cmp.Or(w.GetName(), "wave-"+strconv.Itoa(i+1))
}

func explicitWaves(e *ebbflowv1.ExplicitWaves, eligible []*ebbflowv1.Cluster, byName map[string]*ebbflowv1.Cluster, scope labels.Selector, sk *skips) []PlannedWave {
	specs := e.GetWaves()
	waves := make([]PlannedWave, len(specs))
	sels := make([]labels.Selector, len(specs))
	listed := make([]map[string]bool, len(specs))
	for i, w := range specs {
		waves[i] = PlannedWave{Index: i, Name: waveName(w, i), Gates: w.GetGates()}
		if w.GetSelector() != "" {
			sels[i], _ = ParseSelector(w.GetSelector()) // validated
		}
		listed[i] = map[string]bool{}
		for _, n := range w.GetClusters() {
			listed[i][n] = true
		}
	}
	for _, c := range eligible {
		placed := false
		for i := range specs {
			if listed[i][c.GetName()] || (sels[i] != nil && selects(sels[i], c)) {
				waves[i].Clusters = append(waves[i].Clusters, c)
				placed = true
				break
			}
		}
		if !placed {
			sk.add(c.GetName(), "matches no wave")
		}
	}
	// Names a wave lists that cannot be rolled: say why rather than drop them.
	for i, w := range specs {
		for _, n := range w.GetClusters() {
			c, ok := byName[n]
			switch {
			case !ok:
				sk.add(n, fmt.Sprintf("listed in wave %s but not registered", waves[i].Name))
			case !selects(scope, c):
				sk.add(n, fmt.Sprintf("listed in wave %s but outside the rollout's cluster selector", waves[i].Name))
			}
		}
	}
	return waves
}

func automaticWaves(a *ebbflowv1.AutomaticWaves, ordered []*ebbflowv1.Cluster) []PlannedWave {
	var waves []PlannedWave
	canary := min(int(a.GetCanaryCount()), len(ordered))
	if canary > 0 {
		waves = append(waves, PlannedWave{Index: 0, Name: "canary", Clusters: ordered[:canary], Gates: cmpGates(a.GetCanaryGates(), a.GetGates())})
	}
	rest := ordered[canary:]
	size := int(a.GetWaveSize())
	if p := int(a.GetWavePercent()); p > 0 {
		size = (len(rest)*p + 99) / 100
	}
	size = max(size, 1)
	for n := 1; len(rest) > 0; n++ {
		k := min(size, len(rest))
		waves = append(waves, PlannedWave{Index: len(waves), Name: "wave-" + strconv.Itoa(n), Clusters: rest[:k:k], Gates: a.GetGates()})
		rest = rest[k:]
	}
	return waves
}

func cmpGates(g, fallback *ebbflowv1.WaveGates) *ebbflowv1.WaveGates {
	if g != nil {
		return g
	}
	return fallback
}

func sortedByName(cs []*ebbflowv1.Cluster) []*ebbflowv1.Cluster {
	out := slices.Clone(cs)
	out = slices.DeleteFunc(out, func(c *ebbflowv1.Cluster) bool { return c == nil })
	slices.SortStableFunc(out, func(a, b *ebbflowv1.Cluster) int { return cmp.Compare(a.GetName(), b.GetName()) })
	return out
}

// sortClusters orders clusters by the sort label's value (numerically when both are integers,
// missing last), then by name. It returns a new slice.
func sortClusters(cs []*ebbflowv1.Cluster, label string) []*ebbflowv1.Cluster {
	out := slices.Clone(cs)
	slices.SortStableFunc(out, func(a, b *ebbflowv1.Cluster) int {
		if label != "" {
			if c := compareLabel(a.GetLabels(), b.GetLabels(), label); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.GetName(), b.GetName())
	})
	return out
}

func compareLabel(a, b map[string]string, label string) int {
	va, oka := a[label]
	vb, okb := b[label]
	switch {
	case oka != okb:
		if oka {
			return -1
		}
		return 1
	case !oka:
		return 0
	}
	na, erra := strconv.ParseInt(va, 10, 64)
	nb, errb := strconv.ParseInt(vb, 10, 64)
	if erra == nil && errb == nil {
		return cmp.Compare(na, nb)
	}
	return cmp.Compare(va, vb)
}

// RolloutPlan is a dry run of a rollout: its waves with each cluster's preflight, the clusters
// it skips, and warnings.
type RolloutPlan struct {
	ProfileRevision uint64
	Waves           []WavePlan
	Skipped         []*ebbflowv1.SkippedCluster
	Warnings        []*ebbflowv1.ValidationIssue
}

// WavePlan is one wave of a plan: PlanWaves' wave with each cluster's preflight.
type WavePlan struct {
	Index    int
	Name     string
	Gates    *ebbflowv1.WaveGates
	Clusters []*ebbflowv1.ClusterPlan
}

// Plan is a dry run of a rollout: which clusters, in which wave, and for each cluster which
// phases pass preflight (ClusterPlan.phases, in order) and which are held (held_phases): a phase
// is held when a check fails or is unknown, and every phase after a held phase is held too, with
// an after-held-phase check saying so. In a node-by-node kpr phase a node failing kpr's checks
// holds only itself: the phase is held when no node is eligible, and otherwise
// ClusterPlan.kpr_batches lists its node batches, with the nodes left out. Checks where every node passes a feature are folded into
// one cluster-wide check per feature and phase; failing and unknown checks stay per node. The
// warnings are the profile's plus each planned cluster's inventory warnings.
//
// The profile must be the one the spec names (and the pinned revision when set) and must
// validate.
func Plan(spec Spec, prof *ebbflowv1.Profile, clusters []*ebbflowv1.Cluster) (*RolloutPlan, error) {
	if prof == nil || prof.GetSpec() == nil {
		return nil, fmt.Errorf("%w: no profile", ErrProfileMismatch)
	}
	if spec.GetProfile() != "" && spec.GetProfile() != prof.GetName() {
		return nil, fmt.Errorf("%w: the rollout names %q, got %q", ErrProfileMismatch, spec.GetProfile(), prof.GetName())
	}
	if r := spec.GetProfileRevision(); r != 0 && r != prof.GetRevision() {
		return nil, fmt.Errorf("%w: the rollout pins revision %d, got %d", ErrProfileMismatch, r, prof.GetRevision())
	}
	res := profile.Validate(prof.GetName(), prof.GetSpec())
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("profile %s revision %d: %w", prof.GetName(), prof.GetRevision(), err)
	}
	waves, skipped, err := PlanWaves(spec, clusters)
	if err != nil {
		return nil, err
	}
	phases := Phases(spec.RolloutSpec)
	out := &RolloutPlan{
		ProfileRevision: prof.GetRevision(),
		Skipped:         skipped,
		Warnings:        slices.Clone(res.Warnings),
	}
	pf := profile.NewPreflighter(prof.GetSpec())
	for _, w := range waves {
		wp := WavePlan{Index: w.Index, Name: w.Name, Gates: w.Gates}
		for _, c := range w.Clusters {
			wp.Clusters = append(wp.Clusters, planCluster(pf, phases, c, w.Index))
			out.Warnings = append(out.Warnings, pf.Warnings(c.GetName(), c.GetInventory())...)
		}
		out.Waves = append(out.Waves, wp)
	}
	return out, nil
}

func planCluster(pf *profile.Preflighter, phases []ebbflowv1.Phase, c *ebbflowv1.Cluster, wave int) *ebbflowv1.ClusterPlan {
	cp := &ebbflowv1.ClusterPlan{Cluster: c.GetName(), Wave: int32(wave)}
	held := ebbflowv1.Phase_PHASE_UNSPECIFIED
	for _, p := range phases {
		checks := pf.Check(p, c.GetInventory())
		ok, _ := pf.Passes(checks) // node by node, a node failing kpr's checks holds only itself
		switch {
		case held != ebbflowv1.Phase_PHASE_UNSPECIFIED:
			checks = append(checks, &ebbflowv1.PreflightCheck{
				Phase: p, Feature: FeatureAfterHeld, Result: ebbflowv1.PreflightResult_PREFLIGHT_RESULT_FAIL,
				Reason: "after held phase " + profile.PhaseName(held),
			})
			cp.HeldPhases = append(cp.HeldPhases, p)
		case !ok:
			held = p
			cp.HeldPhases = append(cp.HeldPhases, p)
		default:
			cp.Phases = append(cp.Phases, p)
		}
		cp.Checks = append(cp.Checks, foldPassing(checks)...)
	}
	if slices.Contains(cp.Phases, ebbflowv1.Phase_PHASE_KPR) {
		cp.KprBatches = pf.KprBatchPlan(c.GetInventory()) // nil unless node by node
	}
	return cp
}

// foldPassing replaces the per-node checks of a feature where every node passes with one
// cluster-wide PASS check; a feature with any failing or unknown node keeps all its checks.
func foldPassing(checks []*ebbflowv1.PreflightCheck) []*ebbflowv1.PreflightCheck {
	type group struct {
		list   []*ebbflowv1.PreflightCheck
		allOK  bool
		nodes  int
		reason []string
	}
	var order []string
	groups := map[string]*group{}
	for _, c := range checks {
		g, ok := groups[c.GetFeature()]
		if !ok {
			g = &group{allOK: true}
			groups[c.GetFeature()] = g
			order = append(order, c.GetFeature())
		}
		g.list = append(g.list, c)
		if c.GetNode() != "" {
			g.nodes++
		}
		if c.GetResult() != ebbflowv1.PreflightResult_PREFLIGHT_RESULT_PASS {
			g.allOK = false
		}
		if !slices.Contains(g.reason, c.GetReason()) {
			g.reason = append(g.reason, c.GetReason())
		}
	}
	var out []*ebbflowv1.PreflightCheck
	for _, f := range order {
		g := groups[f]
		if !g.allOK || g.nodes < 2 || g.nodes != len(g.list) {
			out = append(out, g.list...)
			continue
		}
		reasons := g.reason
		more := ""
		if len(reasons) > 3 {
			more = fmt.Sprintf(" (and %d more)", len(reasons)-3)
			reasons = reasons[:3]
		}
		out = append(out, &ebbflowv1.PreflightCheck{
			Phase: g.list[0].GetPhase(), Feature: f, Result: ebbflowv1.PreflightResult_PREFLIGHT_RESULT_PASS,
			Reason: fmt.Sprintf("all %d nodes pass: %s%s", g.nodes, strings.Join(reasons, "; "), more),
		})
	}
	return out
}
