package judge_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/rollout/judge"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

const (
	pass         = ebbflowv1.Verdict_VERDICT_PASS
	regression   = ebbflowv1.Verdict_VERDICT_REGRESSION
	inconclusive = ebbflowv1.Verdict_VERDICT_INCONCLUSIVE
)

// latencies draws n log-normal latencies with the given median (ms) and log
// standard deviation, each multiplied by scale, from a PCG seeded with seed.
func latencies(seed uint64, n int, median, sigma, scale float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]float64, n)
	for i := range out {
		out[i] = median * math.Exp(sigma*rng.NormFloat64()) * scale
	}
	return out
}

// randomTail multiplies a random frac of the samples by factor.
func randomTail(seed uint64, v []float64, frac, factor float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 0x7a11))
	out := slices.Clone(v)
	for i := range out {
		if rng.Float64() < frac {
			out[i] *= factor
		}
	}
	return out
}

// slowestTail multiplies the slowest frac of the samples by factor, leaving
// every other sample, and so the median, as it was.
func slowestTail(v []float64, frac, factor float64) []float64 {
	out := slices.Clone(v)
	cut := judge.Percentile(sortedCopy(v), 1-frac)
	for i := range out {
		if out[i] > cut {
			out[i] *= factor
		}
	}
	return out
}

func sortedCopy(v []float64) []float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

func lat(v []float64) judge.Sample { return judge.Sample{LatencyMs: v} }

func TestJudge(t *testing.T) {
	def := judge.BudgetFrom(nil) // p50 10%, p99 20%, throughput 10%, alpha 0.05, 30 samples
	const n = 2000
	base := latencies(1, n, 2, 0.3, 1)
	tests := []struct {
		name      string
		baseline  judge.Sample
		candidate judge.Sample
		budget    judge.Budget
		want      ebbflowv1.Verdict
		// significant: whether the U test must come out below alpha (nil: not checked).
		significant *bool
		reason      []string // substrings of Reason
	}{
		{
			name:     "identical distributions",
			baseline: lat(base), candidate: lat(latencies(2, n, 2, 0.3, 1)),
			budget: def, want: pass, significant: ptr(false), reason: []string{"within budget"},
		},
		{
			name:     "same samples",
			baseline: lat(base), candidate: lat(slices.Clone(base)),
			budget: def, want: pass, significant: ptr(false),
		},
		{
			// A real 5% slowdown: the U test sees it, the budget allows it (rule 8).
			name:     "shifted 5% within budget 10%",
			baseline: lat(base), candidate: lat(latencies(2, n, 2, 0.3, 1.05)),
			budget: def, want: pass, significant: ptr(true), reason: []string{"significantly slower", "budget allows it"},
		},
		{
			name:     "shifted 20% over budget 10%",
			baseline: lat(base), candidate: lat(latencies(2, n, 2, 0.3, 1.20)),
			budget: def, want: regression, significant: ptr(true),
			reason: []string{"p50 +", "> budget 10% (p<0.0001)", "p99 +", "> budget 20% (p<0.0001)"},
		},
		{
			// 5% of requests, picked at random, take 10x: the median moves about
			// 3%, p99 about +500%. Those requests now outrank nearly every baseline
			// request, which lifts P(candidate > baseline) from 0.5 to about 0.525;
			// with 2000 per side that is expected to be about 2.7 standard errors;
			// with this seed p50 is +3.1%, p99 +525%, p=4e-5: REGRESSION (rule 6).
			name:     "heavy tail: random 5% of requests 10x, 2000 per side",
			baseline: lat(base), candidate: lat(randomTail(3, latencies(2, n, 2, 0.3, 1), 0.05, 10)),
			budget: def, want: regression, significant: ptr(true), reason: []string{"p99 +", "> budget 20% (p<0.0001)"},
		},
		{
			// The same kind of tail with 60 per side: the expected rank shift is
			// about half a standard error. With this seed p99 is +600% and p=0.40:
			// over budget, not significant: INCONCLUSIVE (rule 7).
			name:     "heavy tail: random 5% of requests 10x, 60 per side",
			baseline: lat(base[:60]), candidate: lat(randomTail(3, latencies(2, 60, 2, 0.3, 1), 0.05, 10)),
			budget: def, want: inconclusive, significant: ptr(false), reason: []string{"p99 +", "but not significant"},
		},
		{
			// Only the slowest 5% take 10x, so the median and all ranks below the
			// 95th percentile are unchanged: the rank test sees almost nothing
			// (only the 0.25% of pairs between the two tails change), whatever the
			// sample size. p99 is far over budget (+914% with this seed) but a rank
			// test cannot tell it from noise (p=0.16): INCONCLUSIVE (rule 7).
			name:     "heavy tail: slowest 5% 10x, median unchanged",
			baseline: lat(base), candidate: lat(slowestTail(latencies(2, n, 2, 0.3, 1), 0.05, 10)),
			budget: def, want: inconclusive, significant: ptr(false),
			reason: []string{"p99 +", "> budget 20% but not significant (p="},
		},
		{
			name:     "too few baseline samples",
			baseline: lat(base[:20]), candidate: lat(latencies(2, n, 2, 0.3, 1.5)),
			budget: def, want: inconclusive, reason: []string{"too few latency samples: baseline 20, candidate 2000 (need 30 each)"},
		},
		{
			name:     "too few candidate samples",
			baseline: lat(base), candidate: lat(latencies(2, 29, 2, 0.3, 1)),
			budget: def, want: inconclusive, reason: []string{"baseline 2000, candidate 29"},
		},
		{
			name:     "no samples at all",
			baseline: judge.Sample{}, candidate: judge.Sample{},
			budget: def, want: inconclusive, reason: []string{"baseline 0, candidate 0"},
		},
		{
			name:     "faster candidate",
			baseline: lat(base), candidate: lat(latencies(2, n, 2, 0.3, 0.8)),
			budget: def, want: pass, significant: ptr(false),
		},
		{
			// 100 per side, log sd 0.8 (very noisy), a true 3% slowdown: p99 of
			// 100 samples is about the second largest and swings by tens of
			// percent, and the U test cannot see 3%. With this seed p50 is +6.7%,
			// p99 +23.7% (over the 20% budget), p=0.066: INCONCLUSIVE (rule 7).
			name:     "noisy small shift within noise, 100 per side",
			baseline: lat(latencies(4, 100, 2, 0.8, 1)), candidate: lat(latencies(5, 100, 2, 0.8, 1.03)),
			budget: def, want: inconclusive, significant: ptr(false),
			reason: []string{"p99 +23.7% > budget 20% but not significant (p=0.066, alpha 0.05)"},
		},
		{
			// The same 3% under less noise (log sd 0.5) with 1000 per side: the
			// percentile estimates settle within budget and the U test still cannot
			// tell 3% from noise. With this seed p50 is +2.0%, p99 -1.4%, p=0.25:
			// PASS.
			name:     "noisy small shift within noise, 1000 per side",
			baseline: lat(latencies(4, 1000, 2, 0.5, 1)), candidate: lat(latencies(5, 1000, 2, 0.5, 1.03)),
			budget: def, want: pass,
		},
		{
			name:     "throughput down 15% over budget 10%, latency unchanged",
			baseline: judge.Sample{LatencyMs: base, ThroughputBps: 1e9}, candidate: judge.Sample{LatencyMs: base, ThroughputBps: 0.85e9},
			budget: def, want: regression, reason: []string{"throughput -15.0% > budget 10% decrease (mean of windows)"},
		},
		{
			name:     "throughput down 5% within budget",
			baseline: judge.Sample{LatencyMs: base, ThroughputBps: 1e9}, candidate: judge.Sample{LatencyMs: base, ThroughputBps: 0.95e9},
			budget: def, want: pass, reason: []string{"throughput -5.0% (max -10%)"},
		},
		{
			name:     "throughput up",
			baseline: judge.Sample{LatencyMs: base, ThroughputBps: 1e9}, candidate: judge.Sample{LatencyMs: base, ThroughputBps: 1.3e9},
			budget: def, want: pass,
		},
		{
			name:     "throughput regression with too few latency samples",
			baseline: judge.Sample{ThroughputBps: 1e9}, candidate: judge.Sample{ThroughputBps: 0.5e9},
			budget: def, want: regression, reason: []string{"throughput -50.0%", "too few latency samples"},
		},
		{
			name:     "candidate throughput missing",
			baseline: judge.Sample{LatencyMs: base, ThroughputBps: 1e9}, candidate: judge.Sample{LatencyMs: base},
			budget: def, want: inconclusive, reason: []string{"candidate throughput missing"},
		},
		{
			name:     "no baseline throughput: criterion skipped",
			baseline: lat(base), candidate: judge.Sample{LatencyMs: base, ThroughputBps: 1e9},
			budget: def, want: pass,
		},
		{
			// Significant and p99 over a tight budget, p50 within a loose one.
			name:     "custom budget: p99 only over",
			baseline: lat(base), candidate: lat(latencies(2, n, 2, 0.3, 1.08)),
			budget: judge.Budget{MaxP50IncreasePct: 50, MaxP99IncreasePct: 5, MaxThroughputDecreasePct: 10, Alpha: 0.05, MinSamples: 30},
			want:   regression, significant: ptr(true), reason: []string{"p99 +", "> budget 5% (p<0.0001)"},
		},
		{
			// alpha 0 makes nothing significant: over budget is then inconclusive.
			name:     "alpha 0",
			baseline: lat(base), candidate: lat(latencies(2, n, 2, 0.3, 1.2)),
			budget: judge.Budget{MaxP50IncreasePct: 10, MaxP99IncreasePct: 20, MaxThroughputDecreasePct: 10, Alpha: 0, MinSamples: 30},
			want:   inconclusive, reason: []string{"but not significant"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bCopy, cCopy := slices.Clone(tt.baseline.LatencyMs), slices.Clone(tt.candidate.LatencyMs)
			r := judge.Judge(tt.baseline, tt.candidate, tt.budget)
			t.Logf("%v: p50 %.3f -> %.3f (%+.1f%%), p99 %.3f -> %.3f (%+.1f%%), thr %+.1f%%, p=%.3g: %s",
				r.Verdict, r.BaselineP50, r.CandidateP50, r.P50DeltaPct, r.BaselineP99, r.CandidateP99,
				r.P99DeltaPct, r.ThroughputDeltaPct, r.PValue, r.Reason)
			if r.Verdict != tt.want {
				t.Errorf("verdict %v, want %v (reason %q)", r.Verdict, tt.want, r.Reason)
			}
			if tt.significant != nil && (r.PValue < tt.budget.Alpha) != *tt.significant {
				t.Errorf("p = %.4g, want significant at %g: %v", r.PValue, tt.budget.Alpha, *tt.significant)
			}
			for _, s := range tt.reason {
				if !strings.Contains(r.Reason, s) {
					t.Errorf("reason %q lacks %q", r.Reason, s)
				}
			}
			if !slices.Equal(bCopy, tt.baseline.LatencyMs) || !slices.Equal(cCopy, tt.candidate.LatencyMs) {
				t.Error("Judge modified its input")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// A deterministic input with exact figures, to pin the reason format and the
// Result fields.
func TestJudgeExactFigures(t *testing.T) {
	baseline := seq(1, 100) // p50 50.5, p99 99.01
	candidate := make([]float64, len(baseline))
	for i, v := range baseline {
		candidate[i] = v * 1.3
	}
	r := judge.Judge(lat(baseline), lat(candidate), judge.BudgetFrom(nil))
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("BaselineP50", r.BaselineP50, 50.5)
	near("BaselineP99", r.BaselineP99, 99.01)
	near("CandidateP50", r.CandidateP50, 65.65)
	near("CandidateP99", r.CandidateP99, 128.713)
	near("P50DeltaPct", r.P50DeltaPct, 30)
	near("P99DeltaPct", r.P99DeltaPct, 30)
	_, wantP := judge.MannWhitneyU(baseline, candidate)
	near("PValue", r.PValue, wantP)
	if r.Verdict != regression {
		t.Errorf("verdict %v, want REGRESSION", r.Verdict)
	}
	// p = 0.0022 here: the samples overlap a lot (1..100 against 1.3..130).
	want := "p50 +30.0% > budget 10% (p=0.0022); p99 +30.0% > budget 20% (p=0.0022)"
	if r.Reason != want {
		t.Errorf("reason %q, want %q", r.Reason, want)
	}
}

func TestBudgetFrom(t *testing.T) {
	def := judge.Budget{MaxP50IncreasePct: 10, MaxP99IncreasePct: 20, MaxP999IncreasePct: 50, MaxThroughputDecreasePct: 10,
		Alpha: 0.05, MinSamples: 30, MaxWindows: 3}
	with := func(f func(*judge.Budget)) judge.Budget { b := def; f(&b); return b }
	tests := []struct {
		name string
		in   *ebbflowv1.RegressionBudget
		want judge.Budget
	}{
		{"nil", nil, def},
		{"zero", &ebbflowv1.RegressionBudget{}, def},
		{"all set", &ebbflowv1.RegressionBudget{
			MaxP50IncreasePercent: 5, MaxP99IncreasePercent: 15, MaxThroughputDecreasePercent: 3, Alpha: 0.01, MinSamples: 100,
			MaxP999IncreasePercent: 30, MaxWindows: 5,
		}, judge.Budget{MaxP50IncreasePct: 5, MaxP99IncreasePct: 15, MaxP999IncreasePct: 30, MaxThroughputDecreasePct: 3,
			Alpha: 0.01, MinSamples: 100, MaxWindows: 5}},
		{"partly set", &ebbflowv1.RegressionBudget{MaxP99IncreasePercent: 50},
			with(func(b *judge.Budget) { b.MaxP99IncreasePct = 50 })},
		{"one window", &ebbflowv1.RegressionBudget{MaxWindows: 1}, with(func(b *judge.Budget) { b.MaxWindows = 1 })},
		{"windows capped", &ebbflowv1.RegressionBudget{MaxWindows: 11}, with(func(b *judge.Budget) { b.MaxWindows = judge.MaxMaxWindows })},
		{"nonsense falls back", &ebbflowv1.RegressionBudget{
			MaxP50IncreasePercent: -1, MaxP99IncreasePercent: math.NaN(), MaxThroughputDecreasePercent: math.Inf(1), Alpha: 1, MinSamples: -5,
			MaxP999IncreasePercent: math.Inf(1), MaxWindows: -2,
		}, def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := judge.BudgetFrom(tt.in); got != tt.want {
				t.Errorf("BudgetFrom = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func BenchmarkJudge(b *testing.B) {
	baseline := lat(latencies(1, 10_000, 2, 0.3, 1))
	candidate := lat(latencies(2, 10_000, 2, 0.3, 1.05))
	budget := judge.BudgetFrom(nil)
	b.ReportAllocs()
	for b.Loop() {
		judge.Judge(baseline, candidate, budget)
	}
}
