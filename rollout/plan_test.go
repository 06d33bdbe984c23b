package rollout

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
	"github.com/ebbflow/ebbflow/rollout/profile"
)

const (
	baseline = ebbflowv1.Phase_PHASE_BASELINE
	l7       = ebbflowv1.Phase_PHASE_L7
	kpr      = ebbflowv1.Phase_PHASE_KPR
	xdp      = ebbflowv1.Phase_PHASE_XDP
)

func validSpec() *ebbflowv1.RolloutSpec {
	return &ebbflowv1.RolloutSpec{
		Profile: "eks-performance",
		Waves:   &ebbflowv1.RolloutSpec_Automatic{Automatic: &ebbflowv1.AutomaticWaves{CanaryCount: 1, Size: &ebbflowv1.AutomaticWaves_WaveSize{WaveSize: 2}}},
	}
}

func explicitSpec(waves ...*ebbflowv1.WaveSpec) *ebbflowv1.RolloutSpec {
	s := validSpec()
	s.Waves = &ebbflowv1.RolloutSpec_Explicit{Explicit: &ebbflowv1.ExplicitWaves{Waves: waves}}
	return s
}

func automaticSpec(canary int32, size isSize) *ebbflowv1.RolloutSpec {
	s := validSpec()
	a := &ebbflowv1.AutomaticWaves{CanaryCount: canary}
	switch x := size.(type) {
	case waveSize:
		a.Size = &ebbflowv1.AutomaticWaves_WaveSize{WaveSize: int32(x)}
	case wavePercent:
		a.Size = &ebbflowv1.AutomaticWaves_WavePercent{WavePercent: int32(x)}
	}
	s.Waves = &ebbflowv1.RolloutSpec_Automatic{Automatic: a}
	return s
}

type (
	isSize      any
	waveSize    int
	wavePercent int
)

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// thirteenMinutes are probe settings that measure a phase for 13 minutes.
func thirteenMinutes() *ebbflowv1.ProbeSettings {
	p := &ebbflowv1.ProbeSpec{Kind: ebbflowv1.ProbeKind_PROBE_KIND_TCP_RR, Target: "echo:7", Duration: dur(2 * time.Minute)}
	return &ebbflowv1.ProbeSettings{Warmup: dur(30 * time.Second), Probes: []*ebbflowv1.ProbeSpec{p, p}}
}

func TestValidateSpec(t *testing.T) {
	edit := func(f func(s *ebbflowv1.RolloutSpec)) *ebbflowv1.RolloutSpec {
		s := validSpec()
		f(s)
		return s
	}
	auto := func(f func(a *ebbflowv1.AutomaticWaves)) *ebbflowv1.RolloutSpec {
		return edit(func(s *ebbflowv1.RolloutSpec) { f(s.GetAutomatic()) })
	}
	gates := func(g *ebbflowv1.WaveGates) *ebbflowv1.RolloutSpec {
		return auto(func(a *ebbflowv1.AutomaticWaves) { a.Gates = g })
	}
	budget := func(f func(b *ebbflowv1.RegressionBudget)) *ebbflowv1.RolloutSpec {
		return edit(func(s *ebbflowv1.RolloutSpec) {
			b := &ebbflowv1.RegressionBudget{Phase: kpr, MaxP50IncreasePercent: 5, MaxP99IncreasePercent: 10, Alpha: 0.05, MinSamples: 20}
			f(b)
			s.Budgets = append(s.Budgets, b)
		})
	}
	tests := []struct {
		name  string
		spec  *ebbflowv1.RolloutSpec
		field string // "" means valid
		rule  string
	}{
		{name: "valid automatic", spec: validSpec()},
		{name: "valid explicit", spec: explicitSpec(&ebbflowv1.WaveSpec{Name: "canary", Clusters: []string{"a"}}, &ebbflowv1.WaveSpec{Selector: "env=prod"})},
		{name: "nil", field: "spec", rule: "required"},
		{name: "profile missing", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Profile = "" }), field: "spec.profile", rule: "required"},
		{name: "profile bad", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Profile = "Not_A_Name" }), field: "spec.profile", rule: "dns-label"},
		{name: "cluster selector bad", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.ClusterSelector = "env in (prod" }), field: "spec.clusterSelector", rule: "selector"},
		{name: "cluster selector ok", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.ClusterSelector = "env=prod,!legacy" })},
		{name: "no waves", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Waves = nil }), field: "spec.waves", rule: "waves-required"},
		{name: "explicit empty", spec: explicitSpec(), field: "spec.explicit.waves", rule: "waves-required"},
		{name: "explicit wave without target", spec: explicitSpec(&ebbflowv1.WaveSpec{Name: "w"}), field: "spec.explicit.waves[0]", rule: "wave-target"},
		{name: "explicit wave selector bad", spec: explicitSpec(&ebbflowv1.WaveSpec{Selector: "a in (b"}), field: "spec.explicit.waves[0].selector", rule: "selector"},
		{name: "explicit wave name bad", spec: explicitSpec(&ebbflowv1.WaveSpec{Name: "Wave 1", Selector: "a"}), field: "spec.explicit.waves[0].name", rule: "dns-label"},
		{name: "explicit wave names twice", spec: explicitSpec(&ebbflowv1.WaveSpec{Name: "w", Selector: "a"}, &ebbflowv1.WaveSpec{Name: "w", Selector: "b"}), field: "spec.explicit.waves[1].name", rule: "duplicate"},
		{name: "explicit cluster bad", spec: explicitSpec(&ebbflowv1.WaveSpec{Clusters: []string{"ok", "NOT OK"}}), field: "spec.explicit.waves[0].clusters[1]", rule: "dns-label"},
		{name: "explicit cluster twice", spec: explicitSpec(&ebbflowv1.WaveSpec{Clusters: []string{"a", "a"}}), field: "spec.explicit.waves[0].clusters[1]", rule: "duplicate"},
		{name: "explicit gates bad", spec: explicitSpec(&ebbflowv1.WaveSpec{Selector: "a", Gates: &ebbflowv1.WaveGates{MaxConcurrency: -1}}), field: "spec.explicit.waves[0].gates.maxConcurrency", rule: "range"},
		{name: "canary negative", spec: auto(func(a *ebbflowv1.AutomaticWaves) { a.CanaryCount = -1 }), field: "spec.automatic.canaryCount", rule: "range"},
		{name: "canary zero", spec: auto(func(a *ebbflowv1.AutomaticWaves) { a.CanaryCount = 0 })},
		{name: "no wave size", spec: auto(func(a *ebbflowv1.AutomaticWaves) { a.Size = nil }), field: "spec.automatic.waveSize", rule: "wave-size-required"},
		{name: "wave size zero", spec: auto(func(a *ebbflowv1.AutomaticWaves) { a.Size = &ebbflowv1.AutomaticWaves_WaveSize{} }), field: "spec.automatic.waveSize", rule: "range"},
		{name: "wave percent 0", spec: auto(func(a *ebbflowv1.AutomaticWaves) { a.Size = &ebbflowv1.AutomaticWaves_WavePercent{} }), field: "spec.automatic.wavePercent", rule: "range"},
		{name: "wave percent 101", spec: auto(func(a *ebbflowv1.AutomaticWaves) { a.Size = &ebbflowv1.AutomaticWaves_WavePercent{WavePercent: 101} }), field: "spec.automatic.wavePercent", rule: "range"},
		{name: "wave percent 100", spec: auto(func(a *ebbflowv1.AutomaticWaves) { a.Size = &ebbflowv1.AutomaticWaves_WavePercent{WavePercent: 100} })},
		{name: "max failures percent 101", spec: gates(&ebbflowv1.WaveGates{MaxFailures: &ebbflowv1.WaveGates_MaxFailuresPercent{MaxFailuresPercent: 101}}), field: "spec.automatic.gates.maxFailuresPercent", rule: "range"},
		{name: "max failures percent -1", spec: gates(&ebbflowv1.WaveGates{MaxFailures: &ebbflowv1.WaveGates_MaxFailuresPercent{MaxFailuresPercent: -1}}), field: "spec.automatic.gates.maxFailuresPercent", rule: "range"},
		{name: "max failures percent 0 and 100", spec: auto(func(a *ebbflowv1.AutomaticWaves) {
			a.CanaryGates = &ebbflowv1.WaveGates{MaxFailures: &ebbflowv1.WaveGates_MaxFailuresPercent{MaxFailuresPercent: 0}}
			a.Gates = &ebbflowv1.WaveGates{MaxFailures: &ebbflowv1.WaveGates_MaxFailuresPercent{MaxFailuresPercent: 100}}
		})},
		{name: "max failures count negative", spec: gates(&ebbflowv1.WaveGates{MaxFailures: &ebbflowv1.WaveGates_MaxFailuresCount{MaxFailuresCount: -2}}), field: "spec.automatic.gates.maxFailuresCount", rule: "range"},
		{name: "soak negative", spec: gates(&ebbflowv1.WaveGates{SoakTime: dur(-time.Second)}), field: "spec.automatic.gates.soakTime", rule: "duration"},
		{name: "soak invalid", spec: gates(&ebbflowv1.WaveGates{SoakTime: &durationpb.Duration{Seconds: 1, Nanos: -1}}), field: "spec.automatic.gates.soakTime", rule: "duration"},
		{name: "canary deadline negative", spec: auto(func(a *ebbflowv1.AutomaticWaves) {
			a.CanaryGates = &ebbflowv1.WaveGates{ProgressDeadline: dur(-time.Minute)}
		}), field: "spec.automatic.canaryGates.progressDeadline", rule: "duration"},
		{name: "gates ok", spec: gates(&ebbflowv1.WaveGates{MaxConcurrency: 3, SoakTime: dur(10 * time.Minute), ProgressDeadline: dur(time.Hour), RequireApproval: true})},
		{name: "rollout deadline negative", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.ProgressDeadline = dur(-time.Hour) }), field: "spec.progressDeadline", rule: "duration"},
		{name: "phase unknown", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Phases = []ebbflowv1.Phase{baseline, 7} }), field: "spec.phases[1]", rule: "enum"},
		{name: "phase unspecified", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Phases = []ebbflowv1.Phase{0} }), field: "spec.phases[0]", rule: "enum"},
		{name: "phase twice", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Phases = []ebbflowv1.Phase{baseline, kpr, kpr} }), field: "spec.phases[2]", rule: "duplicate"},
		{name: "phases out of order", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Phases = []ebbflowv1.Phase{baseline, xdp, kpr} }), field: "spec.phases[2]", rule: "phase-order"},
		{name: "phases subset in order", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Phases = []ebbflowv1.Phase{baseline, kpr} })},
		{name: "budget ok", spec: budget(func(*ebbflowv1.RegressionBudget) {})},
		{name: "budget alpha zero", spec: budget(func(b *ebbflowv1.RegressionBudget) { b.Alpha = 0 }), field: "spec.budgets[0].alpha", rule: "range"},
		{name: "budget alpha one", spec: budget(func(b *ebbflowv1.RegressionBudget) { b.Alpha = 1 }), field: "spec.budgets[0].alpha", rule: "range"},
		{name: "budget alpha NaN", spec: budget(func(b *ebbflowv1.RegressionBudget) { b.Alpha = math.NaN() }), field: "spec.budgets[0].alpha", rule: "range"},
		{name: "budget p99 negative", spec: budget(func(b *ebbflowv1.RegressionBudget) { b.MaxP99IncreasePercent = -1 }), field: "spec.budgets[0].maxP99IncreasePercent", rule: "range"},
		{name: "budget p50 infinite", spec: budget(func(b *ebbflowv1.RegressionBudget) { b.MaxP50IncreasePercent = math.Inf(1) }), field: "spec.budgets[0].maxP50IncreasePercent", rule: "range"},
		{name: "budget throughput over 100", spec: budget(func(b *ebbflowv1.RegressionBudget) { b.MaxThroughputDecreasePercent = 150 }), field: "spec.budgets[0].maxThroughputDecreasePercent", rule: "range"},
		{name: "budget min samples negative", spec: budget(func(b *ebbflowv1.RegressionBudget) { b.MinSamples = -5 }), field: "spec.budgets[0].minSamples", rule: "range"},
		{name: "budget phase unknown", spec: budget(func(b *ebbflowv1.RegressionBudget) { b.Phase = 9 }), field: "spec.budgets[0].phase", rule: "enum"},
		{name: "budget inconclusive unknown", spec: budget(func(b *ebbflowv1.RegressionBudget) { b.OnInconclusive = 9 }), field: "spec.budgets[0].onInconclusive", rule: "enum"},
		{name: "budget twice for a phase", spec: edit(func(s *ebbflowv1.RolloutSpec) {
			s.Budgets = []*ebbflowv1.RegressionBudget{{Phase: kpr, Alpha: 0.05}, {Phase: kpr, Alpha: 0.01}}
		}), field: "spec.budgets[1].phase", rule: "duplicate"},
		{name: "failure policy unknown", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.FailurePolicy = 42 }), field: "spec.failurePolicy", rule: "enum"},
		{name: "sort label bad", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.SortLabel = "not a label" }), field: "spec.sortLabel", rule: "label-key"},
		{name: "sort label ok", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.SortLabel = "ebbflow.io/rank" })},
		{name: "probe windows negative", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Probes = &ebbflowv1.ProbeSettings{Windows: -1} }), field: "spec.probes.windows", rule: "probe"},
		{name: "probe warmup negative", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Probes = &ebbflowv1.ProbeSettings{Warmup: dur(-time.Second)} }), field: "spec.probes.warmup", rule: "probe"},
		{name: "probe duration negative", spec: edit(func(s *ebbflowv1.RolloutSpec) {
			s.Probes = &ebbflowv1.ProbeSettings{Probes: []*ebbflowv1.ProbeSpec{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://echo", Rate: 100, Duration: dur(-time.Second)}}}
		}), field: "spec.probes.probes[0].duration", rule: "probe"},
		{name: "probe rate negative", spec: edit(func(s *ebbflowv1.RolloutSpec) {
			s.Probes = &ebbflowv1.ProbeSettings{Probes: []*ebbflowv1.ProbeSpec{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://echo", Rate: -1}}}
		}), field: "spec.probes.probes[0].rate", rule: "probe"},
		// What the agent cannot run is refused at creation, not at every cluster's phase.
		{name: "probe http rate zero", spec: edit(func(s *ebbflowv1.RolloutSpec) {
			s.Probes = &ebbflowv1.ProbeSettings{Probes: []*ebbflowv1.ProbeSpec{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://echo", Duration: dur(time.Second)}}}
		}), field: "spec.probes.probes[0].rate", rule: "probe"},
		{name: "probe target not a URL", spec: edit(func(s *ebbflowv1.RolloutSpec) {
			s.Probes = &ebbflowv1.ProbeSettings{Probes: []*ebbflowv1.ProbeSpec{{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "echo:80", Rate: 10, Duration: dur(time.Second)}}}
		}), field: "spec.probes.probes[0].target", rule: "probe"},
		{name: "probe windows over the cap", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Probes = &ebbflowv1.ProbeSettings{Windows: 101} }), field: "spec.probes.windows", rule: "probe"},
		{name: "probes ok", spec: edit(func(s *ebbflowv1.RolloutSpec) {
			s.Probes = &ebbflowv1.ProbeSettings{Windows: 5, Warmup: dur(10 * time.Second), Probes: []*ebbflowv1.ProbeSpec{
				{Kind: ebbflowv1.ProbeKind_PROBE_KIND_HTTP, Target: "http://echo.bench:8080/", Rate: 1000, Duration: dur(time.Minute), Timeout: dur(time.Second)},
			}}
		})},
		// Two probes of 2m windows, 3 windows, 30s warm-up: 2 × (30s + 3 × 2m) = 13m of measuring
		// without a report.
		{name: "phase timeout default below measuring", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Probes = thirteenMinutes() }), field: "spec.phaseTimeout", rule: "covers-measuring"},
		{name: "phase timeout equal to measuring", spec: edit(func(s *ebbflowv1.RolloutSpec) {
			s.Probes, s.PhaseTimeout = thirteenMinutes(), dur(13*time.Minute)
		}), field: "spec.phaseTimeout", rule: "covers-measuring"},
		{name: "phase timeout above measuring", spec: edit(func(s *ebbflowv1.RolloutSpec) {
			s.Probes, s.PhaseTimeout = thirteenMinutes(), dur(15*time.Minute)
		})},
		{name: "description too long", spec: edit(func(s *ebbflowv1.RolloutSpec) { s.Description = strings.Repeat("x", 5000) }), field: "spec.description", rule: "max-length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ValidateSpec(tt.spec)
			if tt.field == "" {
				if len(got) > 0 {
					t.Fatalf("want valid, got %v", got)
				}
				return
			}
			for _, is := range got {
				if is.GetField() == tt.field && is.GetRule() == tt.rule {
					if is.GetMessage() == "" {
						t.Fatal("empty message")
					}
					return
				}
			}
			t.Fatalf("want %s at %s, got %v", tt.rule, tt.field, got)
		})
	}
}

func cluster(name string, labels ...string) *ebbflowv1.Cluster {
	c := &ebbflowv1.Cluster{Name: name, Labels: map[string]string{}}
	for i := 0; i+1 < len(labels); i += 2 {
		c.Labels[labels[i]] = labels[i+1]
	}
	return c
}

func cordoned(c *ebbflowv1.Cluster, reason string) *ebbflowv1.Cluster {
	c.Cordoned, c.CordonReason = true, reason
	return c
}

// render shows waves as "name:c1,c2 | name:..." and skipped as "c=reason; ...".
func render(waves []PlannedWave, skipped []*ebbflowv1.SkippedCluster) (string, string) {
	var ws []string
	for i, w := range waves {
		if w.Index != i {
			return fmt.Sprintf("bad index %d at %d", w.Index, i), ""
		}
		var names []string
		for _, c := range w.Clusters {
			names = append(names, c.GetName())
		}
		ws = append(ws, w.Name+":"+strings.Join(names, ","))
	}
	var sk []string
	for _, s := range skipped {
		sk = append(sk, s.GetCluster()+"="+s.GetReason())
	}
	return strings.Join(ws, " | "), strings.Join(sk, "; ")
}

func TestPlanWavesExplicit(t *testing.T) {
	fleet := []*ebbflowv1.Cluster{
		cluster("prod-us-2", "env", "prod", "region", "us"),
		cluster("prod-eu-1", "env", "prod", "region", "eu", "rank", "2"),
		cluster("prod-eu-2", "env", "prod", "region", "eu", "rank", "10"),
		cluster("prod-eu-3", "env", "prod", "region", "eu", "rank", "1"),
		cluster("prod-us-1", "env", "prod", "region", "us"),
		cluster("prod-ap-1", "env", "prod", "region", "ap"),
		cordoned(cluster("prod-us-3", "env", "prod", "region", "us"), "disk pressure"),
		cluster("dev-1", "env", "dev"),
	}
	tests := []struct {
		name    string
		spec    *ebbflowv1.RolloutSpec
		waves   string
		skipped string
	}{
		{
			name: "names first, then selectors; first match wins; sorted by name",
			spec: explicitSpec(
				&ebbflowv1.WaveSpec{Name: "canary", Clusters: []string{"prod-us-1"}},
				&ebbflowv1.WaveSpec{Name: "us", Selector: "region=us"},
				&ebbflowv1.WaveSpec{Name: "eu", Selector: "region=eu", Clusters: []string{"prod-us-1"}},
			),
			waves:   "canary:prod-us-1 | us:prod-us-2 | eu:prod-eu-1,prod-eu-2,prod-eu-3",
			skipped: "dev-1=matches no wave; prod-ap-1=matches no wave; prod-us-3=cordoned: disk pressure",
		},
		{
			name: "scope by cluster selector; listed names out of scope or unknown are skipped with reason",
			spec: func() *ebbflowv1.RolloutSpec {
				s := explicitSpec(
					&ebbflowv1.WaveSpec{Clusters: []string{"dev-1", "ghost", "prod-ap-1"}},
					&ebbflowv1.WaveSpec{Name: "rest", Selector: "env=prod"},
				)
				s.ClusterSelector = "env=prod"
				return s
			}(),
			waves:   "wave-1:prod-ap-1 | rest:prod-eu-1,prod-eu-2,prod-eu-3,prod-us-1,prod-us-2",
			skipped: "dev-1=listed in wave wave-1 but outside the rollout's cluster selector; ghost=listed in wave wave-1 but not registered; prod-us-3=cordoned: disk pressure",
		},
		{
			name: "sort label inside a wave, numerically, missing last",
			spec: func() *ebbflowv1.RolloutSpec {
				s := explicitSpec(&ebbflowv1.WaveSpec{Selector: "env=prod,region!=ap"})
				s.SortLabel = "rank"
				return s
			}(),
			waves:   "wave-1:prod-eu-3,prod-eu-1,prod-eu-2,prod-us-1,prod-us-2",
			skipped: "dev-1=matches no wave; prod-ap-1=matches no wave; prod-us-3=cordoned: disk pressure",
		},
		{
			name:    "empty wave kept so indexes match the spec",
			spec:    explicitSpec(&ebbflowv1.WaveSpec{Name: "none", Selector: "region=mars"}, &ebbflowv1.WaveSpec{Name: "all", Selector: "env"}),
			waves:   "none: | all:dev-1,prod-ap-1,prod-eu-1,prod-eu-2,prod-eu-3,prod-us-1,prod-us-2",
			skipped: "prod-us-3=cordoned: disk pressure",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waves, skipped, err := PlanWaves(mustSpec(t, tt.spec), fleet)
			if err != nil {
				t.Fatal(err)
			}
			w, s := render(waves, skipped)
			if w != tt.waves || s != tt.skipped {
				t.Fatalf("waves:   %s\nwant:    %s\nskipped: %s\nwant:    %s", w, tt.waves, s, tt.skipped)
			}
			// Input order never matters.
			rev := slices.Clone(fleet)
			slices.Reverse(rev)
			waves2, skipped2, _ := PlanWaves(mustSpec(t, tt.spec), rev)
			if w2, s2 := render(waves2, skipped2); w2 != w || s2 != s {
				t.Fatalf("order-dependent plan: %s / %s", w2, s2)
			}
		})
	}
}

func TestPlanWavesAutomatic(t *testing.T) {
	var fleet []*ebbflowv1.Cluster
	for i := 1; i <= 23; i++ {
		fleet = append(fleet, cluster(fmt.Sprintf("c%02d", i), "env", "prod"))
	}
	canaryGates := &ebbflowv1.WaveGates{RequireApproval: true}
	gates := &ebbflowv1.WaveGates{MaxConcurrency: 2}
	tests := []struct {
		name   string
		spec   *ebbflowv1.RolloutSpec
		fleet  []*ebbflowv1.Cluster
		sizes  []int
		first  string // first cluster of the first wave
		names  string
		gates0 *ebbflowv1.WaveGates
	}{
		{name: "canary then wave size", spec: automaticSpec(3, waveSize(5)), fleet: fleet, sizes: []int{3, 5, 5, 5, 5}, first: "c01", names: "canary,wave-1,wave-2,wave-3,wave-4"},
		{name: "percent of the rest: 25% of 20 = 5", spec: automaticSpec(3, wavePercent(25)), fleet: fleet, sizes: []int{3, 5, 5, 5, 5}, first: "c01"},
		{name: "percent rounds up: 25% of 10 = 3", spec: automaticSpec(13, wavePercent(25)), fleet: fleet, sizes: []int{13, 3, 3, 3, 1}, first: "c01"},
		{name: "small percent is at least one", spec: automaticSpec(20, wavePercent(1)), fleet: fleet, sizes: []int{20, 1, 1, 1}, first: "c01"},
		{name: "no canary", spec: automaticSpec(0, waveSize(10)), fleet: fleet, sizes: []int{10, 10, 3}, first: "c01", names: "wave-1,wave-2,wave-3"},
		{name: "canary larger than the fleet", spec: automaticSpec(50, waveSize(10)), fleet: fleet, sizes: []int{23}, first: "c01", names: "canary"},
		{name: "empty fleet", spec: automaticSpec(1, waveSize(10)), fleet: nil, sizes: nil},
		{name: "canary by sort label", spec: func() *ebbflowv1.RolloutSpec {
			s := automaticSpec(1, waveSize(30))
			s.SortLabel = "rank"
			return s
		}(), fleet: append(slices.Clone(fleet), cluster("z-canary", "rank", "0")), sizes: []int{1, 23}, first: "z-canary"},
		{name: "canary gates, falling back to gates", spec: func() *ebbflowv1.RolloutSpec {
			s := automaticSpec(1, waveSize(30))
			s.GetAutomatic().Gates = gates
			return s
		}(), fleet: fleet, sizes: []int{1, 22}, first: "c01", gates0: gates},
		{name: "canary gates", spec: func() *ebbflowv1.RolloutSpec {
			s := automaticSpec(1, waveSize(30))
			s.GetAutomatic().Gates = gates
			s.GetAutomatic().CanaryGates = canaryGates
			return s
		}(), fleet: fleet, sizes: []int{1, 22}, first: "c01", gates0: canaryGates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waves, skipped, err := PlanWaves(mustSpec(t, tt.spec), tt.fleet)
			if err != nil {
				t.Fatal(err)
			}
			if len(skipped) != 0 {
				t.Fatalf("skipped %v", skipped)
			}
			var sizes []int
			var names []string
			seen := map[string]bool{}
			for i, w := range waves {
				if w.Index != i {
					t.Fatalf("wave %d has index %d", i, w.Index)
				}
				sizes = append(sizes, len(w.Clusters))
				names = append(names, w.Name)
				for _, c := range w.Clusters {
					if seen[c.GetName()] {
						t.Fatalf("%s in two waves", c.GetName())
					}
					seen[c.GetName()] = true
				}
			}
			if !slices.Equal(sizes, tt.sizes) {
				t.Fatalf("sizes %v, want %v", sizes, tt.sizes)
			}
			if len(seen) != len(tt.fleet) {
				t.Fatalf("%d clusters planned, want %d", len(seen), len(tt.fleet))
			}
			if tt.first != "" && waves[0].Clusters[0].GetName() != tt.first {
				t.Fatalf("first cluster %s, want %s", waves[0].Clusters[0].GetName(), tt.first)
			}
			if tt.names != "" && strings.Join(names, ",") != tt.names {
				t.Fatalf("names %v, want %s", names, tt.names)
			}
			if tt.gates0 != nil && waves[0].Gates != tt.gates0 {
				t.Fatalf("canary gates %v, want %v", waves[0].Gates, tt.gates0)
			}
		})
	}
}

func TestCheckSpecRefusesAnInvalidSpec(t *testing.T) {
	_, err := CheckSpec(automaticSpec(-1, waveSize(1)))
	var ve *profile.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "spec.automatic.canaryCount") {
		t.Fatalf("err = %v", err)
	}
}

// mustSpec is spec checked, as the API's handler checks it before planning.
func mustSpec(t testing.TB, spec *ebbflowv1.RolloutSpec) Spec {
	t.Helper()
	s, err := CheckSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPhases(t *testing.T) {
	if got := Phases(&ebbflowv1.RolloutSpec{}); !slices.Equal(got, []ebbflowv1.Phase{baseline, l7, kpr, xdp}) {
		t.Fatalf("default phases %v", got)
	}
	s := &ebbflowv1.RolloutSpec{Phases: []ebbflowv1.Phase{baseline, kpr}}
	got := Phases(s)
	got[0] = xdp
	if s.Phases[0] != baseline {
		t.Fatal("Phases aliases the spec")
	}
}

// eksProfile loads the shipped EKS example profile.
func eksProfile(t *testing.T) *ebbflowv1.Profile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", "profiles", "eks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	name, spec, err := profile.DecodeYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	return &ebbflowv1.Profile{Name: name, Revision: 3, Spec: spec}
}

func withInventory(c *ebbflowv1.Cluster, host bool, nodes ...*ebbflowv1.NodeInfo) *ebbflowv1.Cluster {
	c.Inventory = &ebbflowv1.Inventory{Nodes: nodes, CloudProvider: "aws"}
	values := map[string]any{"kubeProxyReplacement": "false"}
	if host {
		values["k8sServiceHost"], values["k8sServicePort"] = "api.example.com", 443
	}
	v, err := structpb.NewStruct(values)
	if err != nil {
		panic(err)
	}
	c.Inventory.HelmValues = v
	return c
}

func nodes(n int, kernel, driver string) []*ebbflowv1.NodeInfo {
	var out []*ebbflowv1.NodeInfo
	for i := range n {
		out = append(out, &ebbflowv1.NodeInfo{Name: fmt.Sprintf("n%d", i), KernelVersion: kernel, NicDriver: driver, Ready: true})
	}
	return out
}

func TestPlan(t *testing.T) {
	prof := eksProfile(t)
	fleet := []*ebbflowv1.Cluster{
		// Everything passes: kernel 6.8, ena.
		withInventory(cluster("new", "env", "prod"), true, nodes(3, "6.8.0-45-generic", "ena")...),
		// AL2023 6.1: kpr passes, the xdp phase (BIG TCP 6.3, netkit 6.8) is held.
		withInventory(cluster("al2023", "env", "prod"), true, nodes(2, "6.1.112-124.190.amzn2023.x86_64", "ena")...),
		// Ubuntu 5.15: BBR needs 5.18, so kpr is held and xdp after it.
		withInventory(cluster("old", "env", "prod"), true, nodes(2, "5.15.0-1051-aws", "ena")...),
		// No k8sServiceHost anywhere: kpr fails on the cluster-wide check.
		withInventory(cluster("nohost", "env", "prod"), false, nodes(1, "6.8.0-45-generic", "ena")...),
		// No inventory yet: every phase unknown.
		cluster("silent", "env", "prod"),
		cordoned(cluster("cordoned", "env", "prod"), "maintenance"),
	}
	spec := automaticSpec(1, waveSize(10))
	spec.Profile = prof.GetName()
	resp, err := Plan(mustSpec(t, spec), prof, fleet)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProfileRevision != 3 {
		t.Fatalf("profile revision %d", resp.ProfileRevision)
	}
	type want struct {
		wave         int32
		phases, held []ebbflowv1.Phase
		reasonHas    string
	}
	wants := map[string]want{
		"al2023": {wave: 0, phases: []ebbflowv1.Phase{baseline, l7, kpr}, held: []ebbflowv1.Phase{xdp}, reasonHas: "does not meet 6.3"},
		"new":    {wave: 1, phases: []ebbflowv1.Phase{baseline, l7, kpr, xdp}},
		"nohost": {wave: 1, phases: []ebbflowv1.Phase{baseline, l7}, held: []ebbflowv1.Phase{kpr, xdp}, reasonHas: "agents would lose the API server"},
		"old":    {wave: 1, phases: []ebbflowv1.Phase{baseline, l7}, held: []ebbflowv1.Phase{kpr, xdp}, reasonHas: "does not meet 5.18"},
		"silent": {wave: 1, held: []ebbflowv1.Phase{baseline, l7, kpr, xdp}, reasonHas: "not reported an inventory"},
	}
	got := map[string]*ebbflowv1.ClusterPlan{}
	var order []string
	for _, w := range resp.Waves {
		for _, c := range w.Clusters {
			if int(c.GetWave()) != w.Index {
				t.Fatalf("%s: wave %d in wave plan %d", c.GetCluster(), c.GetWave(), w.Index)
			}
			got[c.GetCluster()] = c
			order = append(order, c.GetCluster())
		}
	}
	if strings.Join(order, ",") != "al2023,new,nohost,old,silent" {
		t.Fatalf("order %v", order)
	}
	for name, w := range wants {
		c := got[name]
		if c == nil {
			t.Fatalf("%s not planned", name)
		}
		if c.GetWave() != w.wave || !slices.Equal(c.GetPhases(), w.phases) || !slices.Equal(c.GetHeldPhases(), w.held) {
			t.Errorf("%s: wave %d phases %v held %v; want wave %d phases %v held %v", name, c.GetWave(), c.GetPhases(), c.GetHeldPhases(), w.wave, w.phases, w.held)
		}
		_, reasons := profile.PhasePasses(c.GetChecks())
		if w.reasonHas != "" && !strings.Contains(strings.Join(reasons, "\n"), w.reasonHas) {
			t.Errorf("%s: reasons %v lack %q", name, reasons, w.reasonHas)
		}
		// A phase after a held one says so.
		for i, p := range w.held {
			if i == 0 {
				continue
			}
			found := false
			for _, ch := range c.GetChecks() {
				if ch.GetPhase() == p && ch.GetFeature() == FeatureAfterHeld && strings.Contains(ch.GetReason(), "after held phase "+profile.PhaseName(w.held[0])) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no after-held-phase check for %s", name, profile.PhaseName(p))
			}
		}
	}
	// Passing checks across nodes fold into one per feature; the 3-node cluster's kpr check is
	// one line.
	for _, ch := range got["new"].GetChecks() {
		if ch.GetNode() != "" {
			t.Errorf("new: unfolded passing check %v", ch)
		}
	}
	if s := resp.Skipped; len(s) != 1 || s[0].GetCluster() != "cordoned" || s[0].GetReason() != "cordoned: maintenance" {
		t.Fatalf("skipped %v", s)
	}
	rules := map[string]int{}
	for _, w := range resp.Warnings {
		rules[w.GetRule()]++
	}
	// The profile's own warnings once, plus BIG TCP on ena for each of the four inventoried clusters.
	if rules["dsr-opt-cloud"] != 1 || rules["netkit-new-nodes"] != 1 || rules["big-tcp-nic"] != 1+4 {
		t.Fatalf("warnings %v", rules)
	}
}

func TestPlanPhasesSubset(t *testing.T) {
	prof := eksProfile(t)
	spec := automaticSpec(0, waveSize(10))
	spec.Profile = prof.GetName()
	spec.Phases = []ebbflowv1.Phase{baseline, kpr}
	resp, err := Plan(mustSpec(t, spec), prof, []*ebbflowv1.Cluster{withInventory(cluster("c"), true, nodes(1, "5.15.0-1051-aws", "ena")...)})
	if err != nil {
		t.Fatal(err)
	}
	c := resp.Waves[0].Clusters[0]
	if !slices.Equal(c.GetPhases(), []ebbflowv1.Phase{baseline}) || !slices.Equal(c.GetHeldPhases(), []ebbflowv1.Phase{kpr}) {
		t.Fatalf("phases %v held %v", c.GetPhases(), c.GetHeldPhases())
	}
	for _, ch := range c.GetChecks() {
		if ch.GetPhase() == l7 || ch.GetPhase() == xdp {
			t.Fatalf("check for a phase not in the rollout: %v", ch)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	prof := eksProfile(t)
	good := automaticSpec(1, waveSize(1))
	good.Profile = prof.GetName()
	bad := &ebbflowv1.Profile{Name: prof.GetName(), Revision: 1, Spec: &ebbflowv1.ProfileSpec{}}
	tests := []struct {
		name string
		spec *ebbflowv1.RolloutSpec
		prof *ebbflowv1.Profile
		want string
	}{
		{"no profile", good, nil, "no profile"},
		{"other profile", func() *ebbflowv1.RolloutSpec { s := automaticSpec(1, waveSize(1)); s.Profile = "other"; return s }(), prof, `names "other"`},
		{"other revision", func() *ebbflowv1.RolloutSpec {
			s := automaticSpec(1, waveSize(1))
			s.Profile = prof.GetName()
			s.ProfileRevision = 2
			return s
		}(), prof, "pins revision 2"},
		{"invalid profile", good, bad, "spec.chart.repository"},
		{"invalid spec", func() *ebbflowv1.RolloutSpec {
			s := automaticSpec(1, wavePercent(0))
			s.Profile = prof.GetName()
			return s
		}(), prof, "spec.automatic.wavePercent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := CheckSpec(tt.spec)
			if err == nil {
				_, err = Plan(spec, tt.prof, nil)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
