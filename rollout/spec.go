package rollout

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/apimachinery/pkg/util/validation"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/probespec"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

// Limits on a rollout spec.
const (
	MaxWaves           = 1000
	MaxClustersPerWave = 10000
	MaxBudgets         = 16
	// MaxWindows is the most measurement windows a budget may give a phase.
	MaxWindows   = 10
	MaxProbes    = 16
	maxTextBytes = 4 << 10
)

type issues = profile.Issues

func idx(base string, i int) string { return base + "[" + strconv.Itoa(i) + "]" }

// Spec is a rollout spec that passed ValidateSpec. CheckSpec is the only way to make one, so a
// spec is validated once, where it enters (the API's handler), and planning never sees an
// invalid one.
type Spec struct{ *ebbflowv1.RolloutSpec }

// CheckSpec validates spec: a Spec, or a *profile.ValidationError naming every problem.
func CheckSpec(spec *ebbflowv1.RolloutSpec) (Spec, error) {
	if is := ValidateSpec(spec); len(is) > 0 {
		return Spec{}, &profile.ValidationError{What: "rollout spec", Issues: is}
	}
	return Spec{spec}, nil
}

// ValidateSpec checks a rollout spec and returns every problem, each naming its field (JSON
// names, e.g. spec.automatic.canaryCount) and a stable rule id. Nil means valid.
func ValidateSpec(spec *ebbflowv1.RolloutSpec) []*ebbflowv1.ValidationIssue {
	var v issues
	if spec == nil {
		v.Add("spec", "required", "must be set")
		return v
	}
	switch {
	case spec.GetProfile() == "":
		v.Add("spec.profile", "required", "must name a profile")
	default:
		if errs := validation.IsDNS1123Label(spec.GetProfile()); len(errs) > 0 {
			v.Add("spec.profile", "dns-label", "%q is not a profile name: %s", clip(spec.GetProfile()), strings.Join(errs, "; "))
		}
	}
	selector(&v, "spec.clusterSelector", spec.GetClusterSelector())
	switch w := spec.GetWaves().(type) {
	case *ebbflowv1.RolloutSpec_Explicit:
		explicit(&v, w.Explicit)
	case *ebbflowv1.RolloutSpec_Automatic:
		automatic(&v, w.Automatic)
	default:
		v.Add("spec.waves", "waves-required", "set explicit waves or automatic waves")
	}
	phases(&v, spec.GetPhases())
	budgets(&v, spec.GetBudgets())
	if !knownEnum(spec.GetFailurePolicy()) {
		v.Add("spec.failurePolicy", "enum", "unknown value %d", spec.GetFailurePolicy())
	}
	duration(&v, "spec.progressDeadline", spec.GetProgressDeadline())
	if l := spec.GetSortLabel(); l != "" {
		if errs := validation.IsQualifiedName(l); len(errs) > 0 {
			v.Add("spec.sortLabel", "label-key", "%q is not a label key: %s", clip(l), strings.Join(errs, "; "))
		}
	}
	probes(&v, spec.GetProbes())
	measuringFits(&v, spec)
	if n := len(spec.GetDescription()); n > maxTextBytes {
		v.Add("spec.description", "max-length", "at most %d bytes, got %d", maxTextBytes, n)
	}
	return v
}

func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:61] + "..."
}

func selector(v *issues, field, s string) {
	if len(s) > maxTextBytes {
		v.Add(field, "max-length", "at most %d bytes, got %d", maxTextBytes, len(s))
		return
	}
	if _, err := ParseSelector(s); err != nil {
		v.Add(field, "selector", "%v", err)
	}
}

func explicit(v *issues, e *ebbflowv1.ExplicitWaves) {
	waves := e.GetWaves()
	switch {
	case len(waves) == 0:
		v.Add("spec.explicit.waves", "waves-required", "list at least one wave")
		return
	case len(waves) > MaxWaves:
		v.Add("spec.explicit.waves", "max-items", "at most %d waves, got %d", MaxWaves, len(waves))
	}
	names := map[string]bool{}
	for i, w := range waves {
		path := idx("spec.explicit.waves", i)
		if n := w.GetName(); n != "" {
			if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
				v.Add(path+".name", "dns-label", "%q is not a wave name: %s", clip(n), strings.Join(errs, "; "))
			}
			if names[n] {
				v.Add(path+".name", "duplicate", "wave %q is named twice", clip(n))
			}
			names[n] = true
		}
		if w.GetSelector() == "" && len(w.GetClusters()) == 0 {
			v.Add(path, "wave-target", "set selector or clusters")
		}
		if w.GetSelector() != "" {
			selector(v, path+".selector", w.GetSelector())
		}
		if len(w.GetClusters()) > MaxClustersPerWave {
			v.Add(path+".clusters", "max-items", "at most %d clusters, got %d", MaxClustersPerWave, len(w.GetClusters()))
		}
		seen := map[string]bool{}
		for j, c := range w.GetClusters() {
			cpath := idx(path+".clusters", j)
			if errs := validation.IsDNS1123Label(c); len(errs) > 0 {
				v.Add(cpath, "dns-label", "%q is not a cluster name: %s", clip(c), strings.Join(errs, "; "))
			}
			if seen[c] {
				v.Add(cpath, "duplicate", "cluster %q is listed twice", clip(c))
			}
			seen[c] = true
		}
		gates(v, path+".gates", w.GetGates())
	}
}

func automatic(v *issues, a *ebbflowv1.AutomaticWaves) {
	if a.GetCanaryCount() < 0 {
		v.Add("spec.automatic.canaryCount", "range", "must not be negative, got %d", a.GetCanaryCount())
	}
	switch s := a.GetSize().(type) {
	case *ebbflowv1.AutomaticWaves_WaveSize:
		if s.WaveSize < 1 {
			v.Add("spec.automatic.waveSize", "range", "must be at least 1, got %d", s.WaveSize)
		}
	case *ebbflowv1.AutomaticWaves_WavePercent:
		if s.WavePercent < 1 || s.WavePercent > 100 {
			v.Add("spec.automatic.wavePercent", "range", "must be 1..100, got %d", s.WavePercent)
		}
	default:
		v.Add("spec.automatic.waveSize", "wave-size-required", "set waveSize or wavePercent")
	}
	gates(v, "spec.automatic.canaryGates", a.GetCanaryGates())
	gates(v, "spec.automatic.gates", a.GetGates())
}

func gates(v *issues, path string, g *ebbflowv1.WaveGates) {
	if g == nil {
		return
	}
	if g.GetMaxConcurrency() < 0 {
		v.Add(path+".maxConcurrency", "range", "must not be negative, got %d", g.GetMaxConcurrency())
	}
	switch m := g.GetMaxFailures().(type) {
	case *ebbflowv1.WaveGates_MaxFailuresCount:
		if m.MaxFailuresCount < 0 {
			v.Add(path+".maxFailuresCount", "range", "must not be negative, got %d", m.MaxFailuresCount)
		}
	case *ebbflowv1.WaveGates_MaxFailuresPercent:
		if m.MaxFailuresPercent < 0 || m.MaxFailuresPercent > 100 {
			v.Add(path+".maxFailuresPercent", "range", "must be 0..100, got %d", m.MaxFailuresPercent)
		}
	}
	duration(v, path+".soakTime", g.GetSoakTime())
	duration(v, path+".progressDeadline", g.GetProgressDeadline())
}

func duration(v *issues, field string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		v.Add(field, "duration", "not a valid duration: %v", err)
		return
	}
	if d.AsDuration() < 0 {
		v.Add(field, "duration", "must not be negative, got %s", d.AsDuration())
	}
}

func phases(v *issues, ps []ebbflowv1.Phase) {
	last := ebbflowv1.Phase_PHASE_UNSPECIFIED
	for i, p := range ps {
		field := idx("spec.phases", i)
		switch {
		case p <= ebbflowv1.Phase_PHASE_UNSPECIFIED || p > ebbflowv1.Phase_PHASE_XDP:
			v.Add(field, "enum", "unknown phase %d; want baseline, l7, kpr or xdp", p)
			continue
		case p == last:
			v.Add(field, "duplicate", "phase %s is listed twice", profile.PhaseName(p))
		case p < last:
			v.Add(field, "phase-order", "phase %s comes after %s; phases run in the order baseline, l7, kpr, xdp", profile.PhaseName(p), profile.PhaseName(last))
		}
		last = max(last, p)
	}
}

func budgets(v *issues, bs []*ebbflowv1.RegressionBudget) {
	if len(bs) > MaxBudgets {
		v.Add("spec.budgets", "max-items", "at most %d budgets, got %d", MaxBudgets, len(bs))
	}
	seen := map[ebbflowv1.Phase]bool{}
	for i, b := range bs {
		path := idx("spec.budgets", i)
		// An unspecified phase is the budget for every phase without its own.
		if p := b.GetPhase(); p < ebbflowv1.Phase_PHASE_UNSPECIFIED || p > ebbflowv1.Phase_PHASE_XDP {
			v.Add(path+".phase", "enum", "unknown phase %d", p)
		} else if seen[p] {
			v.Add(path+".phase", "duplicate", "a second budget for phase %s", profile.PhaseName(p))
		}
		seen[b.GetPhase()] = true
		nonNegative(v, path+".maxP50IncreasePercent", b.GetMaxP50IncreasePercent(), math.Inf(1))
		nonNegative(v, path+".maxP99IncreasePercent", b.GetMaxP99IncreasePercent(), math.Inf(1))
		nonNegative(v, path+".maxThroughputDecreasePercent", b.GetMaxThroughputDecreasePercent(), 100)
		nonNegative(v, path+".maxP999IncreasePercent", b.GetMaxP999IncreasePercent(), math.Inf(1))
		if w := b.GetMaxWindows(); w < 0 || w > MaxWindows {
			v.Add(path+".maxWindows", "range", "must be 0..%d (0 means 3), got %d", MaxWindows, w)
		}
		if a := b.GetAlpha(); !(a > 0 && a < 1) {
			v.Add(path+".alpha", "range", "must be between 0 and 1 (exclusive), e.g. 0.05; got %v", a)
		}
		if b.GetMinSamples() < 0 {
			v.Add(path+".minSamples", "range", "must not be negative, got %d", b.GetMinSamples())
		}
		if !knownEnum(b.GetOnInconclusive()) {
			v.Add(path+".onInconclusive", "enum", "unknown value %d", b.GetOnInconclusive())
		}
	}
}

func nonNegative(v *issues, field string, x, maxV float64) {
	if math.IsNaN(x) || x < 0 || x > maxV || math.IsInf(x, 0) {
		if math.IsInf(maxV, 1) {
			v.Add(field, "range", "must be a finite number >= 0, got %v", x)
		} else {
			v.Add(field, "range", "must be 0..%v, got %v", maxV, x)
		}
	}
}

func probes(v *issues, p *ebbflowv1.ProbeSettings) {
	if p == nil {
		return
	}
	if len(p.GetProbes()) > MaxProbes {
		v.Add("spec.probes.probes", "max-items", "at most %d probes, got %d", MaxProbes, len(p.GetProbes()))
		return
	}
	for i, pr := range p.GetProbes() {
		if len(pr.GetTarget()) > maxTextBytes || len(pr.GetQuery()) > maxTextBytes {
			v.Add(idx("spec.probes.probes", i), "max-length", "target and query are at most %d bytes", maxTextBytes)
			return
		}
	}
	// What the agents' probes can run: a probe they would refuse is refused here, not after
	// every cluster's phase has started.
	var perr *probespec.Error
	if err := probespec.ValidateSettings(p); errors.As(err, &perr) {
		v.Add("spec.probes."+perr.Field, "probe", "%s", perr.Reason)
	}
}

// measuringFits refuses a phase timeout no longer than the probes take to measure a phase:
// the agent reports nothing while it measures, so every cluster would turn UNKNOWN (a failure)
// before it could report its measurements.
func measuringFits(v *issues, spec *ebbflowv1.RolloutSpec) {
	p := spec.GetProbes()
	if len(p.GetProbes()) == 0 || len(p.GetProbes()) > MaxProbes || probespec.ValidateSettings(p) != nil {
		return
	}
	measuring, timeout := probespec.MeasuringTime(p), phaseTimeout(spec)
	if measuring < timeout {
		return
	}
	what := timeout.String()
	if spec.GetPhaseTimeout().AsDuration() == 0 {
		what += " (the default)"
	}
	v.Add("spec.phaseTimeout", "covers-measuring",
		"%s is not longer than the probes take to measure one phase, %s (each probe's warm-up and its windows, one probe after the other), during which the agent sends no report: every cluster would turn UNKNOWN; raise phaseTimeout or shorten the probes", what, measuring)
}

// knownEnum reports whether an enum value is defined (UNSPECIFIED included).
func knownEnum(e protoreflect.Enum) bool {
	return e.Descriptor().Values().ByNumber(e.Number()) != nil
}
