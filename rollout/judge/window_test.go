package judge_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/ebbflow/ebbflow/rollout/judge"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

func TestWindowAlpha(t *testing.T) {
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-12 }
	// The power family with rho 3 over 3 windows: 1/27, 7/27 and 19/27 of alpha.
	for k, want := range []float64{0.05 / 27, 0.05 * 7 / 27, 0.05 * 19 / 27} {
		if got := judge.WindowAlpha(0.05, k+1, 3); !near(got, want) {
			t.Errorf("WindowAlpha(0.05, %d, 3) = %v, want %v", k+1, got, want)
		}
	}
	for _, maxW := range []int{1, 2, 3, 7, 10} {
		sum := 0.0
		for k := 1; k <= maxW; k++ {
			a := judge.WindowAlpha(0.05, k, maxW)
			if !(a > 0) {
				t.Errorf("WindowAlpha(0.05, %d, %d) = %v, want > 0", k, maxW, a)
			}
			sum += a
		}
		if !near(sum, 0.05) {
			t.Errorf("max %d windows: spent %v, want 0.05", maxW, sum)
		}
	}
	for _, tt := range []struct {
		alpha       float64
		window, max int
	}{{0, 1, 3}, {1, 1, 3}, {math.NaN(), 1, 3}, {0.05, 0, 3}, {0.05, 4, 3}, {0.05, 1, 0}} {
		if got := judge.WindowAlpha(tt.alpha, tt.window, tt.max); got != 0 {
			t.Errorf("WindowAlpha(%v, %d, %d) = %v, want 0", tt.alpha, tt.window, tt.max, got)
		}
	}
}

func TestJudgeWindow(t *testing.T) {
	def := judge.BudgetFrom(nil) // p50 10%, p99 20%, p999 50%, alpha 0.05, 30 samples, 3 windows
	const n = 5000
	base := latencies(1, n, 2, 0.3, 1)
	same := latencies(2, n, 2, 0.3, 1)
	withThr := func(v []float64, thr float64) judge.Sample { return judge.Sample{LatencyMs: v, ThroughputBps: thr} }
	bad := func(v []float64, i int, x float64) []float64 { s := slices.Clone(v); s[i] = x; return s }
	tight := def
	tight.MaxP50IncreasePct = 2
	tests := []struct {
		name                string
		baseline, candidate judge.Sample
		budget              judge.Budget
		window              int
		want                ebbflowv1.Verdict
		again               bool
		percentiles         []judge.Decision // nil: not tested
		reason              []string         // substrings of Reason
		prefix              string           // Reason's prefix
	}{
		{name: "identical", baseline: lat(base), candidate: lat(same), budget: def, window: 1, want: pass,
			percentiles: []judge.Decision{judge.DecisionPass, judge.DecisionPass}, prefix: "p50 ", reason: []string{"<= budget 10%; p99 ", "<= budget 20%"}},
		{name: "slowest 5% 2x slower", baseline: lat(base), candidate: lat(slowestTail(same, 0.05, 2)), budget: def, window: 1, want: regression,
			percentiles: []judge.Decision{judge.DecisionPass, judge.DecisionRegression}, reason: []string{"; p99 +", "> budget 20%"}},
		{name: "uniform 30% slower", baseline: lat(base), candidate: lat(latencies(3, n, 2, 0.3, 1.3)), budget: def, window: 2, want: regression,
			percentiles: []judge.Decision{judge.DecisionRegression, judge.DecisionRegression}},
		{name: "p50 at its budget: measure again", baseline: lat(base), candidate: lat(latencies(5, n, 2, 0.3, 1.1)), budget: def, window: 1,
			want: inconclusive, again: true, percentiles: []judge.Decision{judge.DecisionUndecided, judge.DecisionPass},
			prefix: "undecided after window 1/3: p50 +", reason: []string{"straddles budget 10%"}},
		// The last window closes: p50 +11.0% [+8.4%, +13.8%] straddles 10%, the estimate is over it
		// and the lower bound above 0.
		{name: "p50 at its budget, last window: the estimate decides", baseline: lat(base), candidate: lat(latencies(5, n, 2, 0.3, 1.1)),
			budget: def, window: 3, want: regression, percentiles: []judge.Decision{judge.DecisionRegression, judge.DecisionPass},
			prefix: "p50 +11.0% [+8.4%, +13.8%] straddles budget 10%: REGRESSION at the last window, estimate over budget and lower bound above 0; p99 "},
		// p50 +9.0% [+6.0%, +12.1%] at window 2, [+6.4%, +11.8%] at the last: within budget by the
		// estimate and below 2x budget 20%.
		{name: "p50 just within its budget, window 2: measure again", baseline: lat(base), candidate: lat(latencies(5, n, 2, 0.3, 1.08)),
			budget: def, window: 2, want: inconclusive, again: true, percentiles: []judge.Decision{judge.DecisionUndecided, judge.DecisionPass},
			prefix: "undecided after window 2/3: p50 +9.0% [+6.0%, +12.1%] straddles budget 10%; p99 "},
		{name: "p50 just within its budget, last window: PASS", baseline: lat(base), candidate: lat(latencies(5, n, 2, 0.3, 1.08)),
			budget: def, window: 3, want: pass, percentiles: []judge.Decision{judge.DecisionPass, judge.DecisionPass},
			prefix: "p50 +9.0% [+6.4%, +11.8%] straddles budget 10%: PASS at the last window, estimate within budget and upper bound below 2x budget 20%; p99 "},
		{name: "one window allowed: it is the last", baseline: lat(base), candidate: lat(latencies(5, n, 2, 0.3, 1.1)),
			budget: judge.Budget{MaxP50IncreasePct: 10, MaxP99IncreasePct: 20, MaxP999IncreasePct: 50, Alpha: 0.05}, window: 1,
			want: regression, percentiles: []judge.Decision{judge.DecisionRegression, judge.DecisionPass},
			prefix: "p50 +11.0% [", reason: []string{"straddles budget 10%: REGRESSION at the last window"}},
		// 500 samples a side and a p50 budget of 2%: intervals too wide for the last-window rule.
		{name: "last window, estimate within budget, upper bound not below 2B", baseline: lat(latencies(1, 500, 2, 0.3, 1)),
			candidate: lat(latencies(5, 500, 2, 0.3, 1)), budget: tight, window: 3,
			want: inconclusive, percentiles: []judge.Decision{judge.DecisionUndecided, judge.DecisionUndecided},
			prefix: "undecided after window 3/3, the last: p50 +1.7% [-6.5%, +11.2%] straddles budget 2%: undecided at the last window, estimate within budget but upper bound not below 2x budget 4%; p99 "},
		{name: "last window, estimate over budget, lower bound not above 0", baseline: lat(latencies(1, 500, 2, 0.3, 1)),
			candidate: lat(latencies(5, 500, 2, 0.3, 1.06)), budget: tight, window: 3,
			want: inconclusive, percentiles: []judge.Decision{judge.DecisionUndecided, judge.DecisionUndecided},
			prefix: "undecided after window 3/3, the last: p50 +7.9% [-0.9%, +17.9%] straddles budget 2%: undecided at the last window, estimate over budget but lower bound not above 0; p99 "},
		// A baseline of 300 cannot bound p99: its point estimate and the U test decide at every
		// window, the last-window rule does not apply to it (p50 still has an interval).
		{name: "small baseline, last window: p99 by the point estimate", baseline: lat(latencies(1, 300, 2, 0.3, 1)),
			candidate: lat(latencies(5, 900, 2, 0.3, 1)), budget: def, window: 3, want: pass,
			percentiles: []judge.Decision{judge.DecisionPass, judge.DecisionPass},
			reason:      []string{"<= budget 20% (point estimate: 300 baseline samples cannot bound p99, 471 needed)"}},
		{name: "small baseline, last window: tail over budget but not significant", baseline: lat(latencies(1, 300, 2, 0.3, 1)),
			candidate: lat(slowestTail(latencies(5, 900, 2, 0.3, 1), 0.05, 2)), budget: def, window: 3, want: inconclusive,
			percentiles: []judge.Decision{judge.DecisionPass, judge.DecisionUndecided},
			prefix:      "undecided after window 3/3, the last: p50 ", reason: []string{"> budget 20% but not significant (point estimate: 300 baseline samples cannot bound p99, 471 needed; U test p="}},
		{name: "throughput down 15%", baseline: withThr(base, 1e9), candidate: withThr(same, 0.85e9), budget: def, window: 1, want: regression,
			percentiles: []judge.Decision{judge.DecisionPass, judge.DecisionPass}, reason: []string{"<= budget 20%; throughput -15.0% > budget 10% decrease"}},
		{name: "throughput within budget", baseline: withThr(base, 1e9), candidate: withThr(same, 0.95e9), budget: def, window: 1, want: pass,
			percentiles: []judge.Decision{judge.DecisionPass, judge.DecisionPass}, reason: []string{"; throughput -5.0% (max -10%)"}},
		{name: "candidate throughput missing", baseline: withThr(base, 1e9), candidate: lat(same), budget: def, window: 1, want: inconclusive,
			percentiles: []judge.Decision{judge.DecisionPass, judge.DecisionPass}, reason: []string{"candidate throughput missing"}},
		{name: "throughput regression without latency", baseline: withThr(nil, 1e9), candidate: withThr(nil, 0.5e9), budget: def, window: 1,
			want: regression, reason: []string{"baseline has no latency samples; throughput -50.0%"}},
		{name: "too few candidate samples: measure again", baseline: lat(base), candidate: lat(same[:29]), budget: def, window: 2,
			want: inconclusive, again: true, prefix: "undecided after window 2/3: candidate has too few latency samples: 29 (need 30)"},
		{name: "no candidate samples: measure again", baseline: lat(base), candidate: judge.Sample{}, budget: def, window: 1,
			want: inconclusive, again: true, prefix: "undecided after window 1/3: candidate has no latency samples"},
		{name: "too few baseline samples: another window cannot help", baseline: lat(base[:10]), candidate: lat(same), budget: def, window: 1,
			want: inconclusive, prefix: "baseline has too few latency samples: 10 (need 30)"},
		{name: "no baseline samples", baseline: judge.Sample{}, candidate: lat(same), budget: def, window: 1,
			want: inconclusive, prefix: "baseline has no latency samples"},
		{name: "NaN in the candidate", baseline: lat(base), candidate: lat(bad(same, 3, math.NaN())), budget: def, window: 1,
			want: inconclusive, prefix: "candidate has 1 invalid latency sample(s), the first at index 3: NaN"},
		{name: "+Inf in the candidate", baseline: lat(base), candidate: lat(bad(same, 4, math.Inf(1))), budget: def, window: 1,
			want: inconclusive, prefix: "candidate has 1 invalid latency sample(s), the first at index 4: +Inf"},
		{name: "negative baseline sample", baseline: lat(bad(base, 0, -2)), candidate: lat(same), budget: def, window: 1,
			want: inconclusive, prefix: "baseline has 1 invalid latency sample(s), the first at index 0: -2"},
		{name: "window 0", baseline: lat(base), candidate: lat(same), budget: def, window: 0,
			want: inconclusive, prefix: "window 0 outside 1..3 (max_windows)"},
		{name: "window past the cap", baseline: lat(base), candidate: lat(same), budget: def, window: 4,
			want: inconclusive, prefix: "window 4 outside 1..3"},
		{name: "alpha 0", baseline: lat(base), candidate: lat(same), budget: judge.Budget{MaxWindows: 3}, window: 1,
			want: inconclusive, prefix: "budget: alpha 0 outside (0, 1)"},
		{name: "NaN p999 budget", baseline: lat(base), candidate: lat(same),
			budget: judge.Budget{Alpha: 0.05, MaxP999IncreasePct: math.NaN()}, window: 1,
			want: inconclusive, prefix: "budget: p999 budget NaN%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b0, c0 := slices.Clone(tt.baseline.LatencyMs), slices.Clone(tt.candidate.LatencyMs)
			r := judge.JudgeWindow(tt.baseline, tt.candidate, tt.budget, tt.window)
			t.Logf("%v again=%v: %s", r.Verdict, r.MeasureAgain, r.Reason)
			if r.Verdict != tt.want || r.MeasureAgain != tt.again {
				t.Errorf("verdict %v, measure again %v; want %v, %v", r.Verdict, r.MeasureAgain, tt.want, tt.again)
			}
			if r.Window != tt.window || r.MaxWindows != max(tt.budget.MaxWindows, 1) {
				t.Errorf("window %d/%d", r.Window, r.MaxWindows)
			}
			got := make([]judge.Decision, len(r.Percentiles))
			for i, v := range r.Percentiles {
				got[i] = v.Decision
			}
			if !slices.Equal(got, tt.percentiles) {
				t.Errorf("percentiles %v, want %v", got, tt.percentiles)
			}
			if !strings.HasPrefix(r.Reason, tt.prefix) {
				t.Errorf("reason %q does not start with %q", r.Reason, tt.prefix)
			}
			for _, s := range tt.reason {
				if !strings.Contains(r.Reason, s) {
					t.Errorf("reason %q lacks %q", r.Reason, s)
				}
			}
			if !sameBits(b0, tt.baseline.LatencyMs) || !sameBits(c0, tt.candidate.LatencyMs) {
				t.Error("JudgeWindow modified its input")
			}
		})
	}
}

// The last-window rule against CompareQuantiles at the same level: before the
// last window JudgeWindow's percentiles are exactly the interval test's; at the
// last, a straddling interval (unchanged) is decided by the estimate, PASS when
// it is within budget and the upper bound below 2B, REGRESSION when it is over
// budget and the lower bound above 0, and stays undecided otherwise.
func TestJudgeWindowLastWindowRule(t *testing.T) {
	const n = 3000
	b := judge.BudgetFrom(nil)
	base := latencies(1, n, 2, 0.3, 1)
	decided := map[judge.Decision]int{}
	for seed := uint64(10); seed < 16; seed++ {
		for scale := 1.0; scale <= 1.2; scale += 0.01 {
			cand := latencies(seed, n, 2, 0.3, scale)
			for w := 1; w <= b.MaxWindows; w++ {
				r := judge.JudgeWindow(lat(base), lat(cand), b, w)
				conf := 1 - judge.WindowAlpha(b.Alpha, w, b.MaxWindows)
				for _, v := range r.Percentiles {
					checkVerdict(t, v)
					q := judge.CompareQuantiles(base, cand, v.Quantile, v.BudgetPct, conf)
					if v.LoPct != q.LoPct || v.HiPct != q.HiPct || v.DeltaPct != q.DeltaPct {
						t.Fatalf("window %d: %s, CompareQuantiles %s", w, v.Reason, q.Reason)
					}
					straddles := q.Decision == judge.DecisionUndecided
					last := w == b.MaxWindows
					want := q.Decision
					switch {
					case last && straddles && v.DeltaPct > v.BudgetPct && v.LoPct > 0:
						want = judge.DecisionRegression
					case last && straddles && v.DeltaPct <= v.BudgetPct && v.HiPct < 2*v.BudgetPct:
						want = judge.DecisionPass
					}
					if v.Decision != want || v.LastWindowRule != (last && straddles && want != judge.DecisionUndecided) {
						t.Fatalf("window %d/%d: %v (last-window rule %v), want %v: %s", w, b.MaxWindows, v.Decision, v.LastWindowRule, want, v.Reason)
					}
					if wantText := last && straddles; strings.Contains(v.Reason, " at the last window, ") != wantText {
						t.Fatalf("window %d/%d: reason %q", w, b.MaxWindows, v.Reason)
					}
					if v.LastWindowRule {
						decided[v.Decision]++
					}
				}
			}
		}
	}
	// The data must exercise both outcomes of the rule.
	if decided[judge.DecisionPass] == 0 || decided[judge.DecisionRegression] == 0 {
		t.Errorf("the last-window rule decided %v: the test's data miss a case", decided)
	}
}

// The figures: point estimates as Percentile gives them, the percentiles'
// confidence from the spending function, p999 from 75,000 samples a side.
func TestJudgeWindowFigures(t *testing.T) {
	const n = 75_000
	base := latencies(1, n, 2, 0.3, 1)
	cand := latencies(2, n, 2, 0.3, 1.02)
	b := judge.BudgetFrom(nil)
	r := judge.JudgeWindow(lat(base), lat(cand), b, 2)
	bs, cs := sortedCopy(base), sortedCopy(cand)
	for _, f := range []struct {
		name      string
		got, want float64
	}{
		{"BaselineP50", r.BaselineP50, judge.Percentile(bs, 0.5)},
		{"CandidateP99", r.CandidateP99, judge.Percentile(cs, 0.99)},
		{"BaselineP999", r.BaselineP999, judge.Percentile(bs, 0.999)},
		{"CandidateP999", r.CandidateP999, judge.Percentile(cs, 0.999)},
		{"P999DeltaPct", r.P999DeltaPct, (judge.Percentile(cs, 0.999)/judge.Percentile(bs, 0.999) - 1) * 100},
	} {
		if math.Abs(f.got-f.want) > 1e-9*math.Abs(f.want) {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
	if _, p := judge.MannWhitneyU(base, cand); r.PValue != p {
		t.Errorf("PValue %v, want the U test's %v", r.PValue, p)
	}
	if r.Verdict != pass || len(r.Percentiles) != 3 {
		t.Fatalf("%v with %d percentiles: %s", r.Verdict, len(r.Percentiles), r.Reason)
	}
	want := 1 - judge.WindowAlpha(0.05, 2, 3)
	for i, name := range []string{"p50", "p99", "p999"} {
		v := r.Percentiles[i]
		if v.Name != name || v.Confidence != want || v.BaselineN != n || v.CandidateN != n {
			t.Errorf("percentile %d: %s at %v, %d/%d samples", i, v.Name, v.Confidence, v.BaselineN, v.CandidateN)
		}
	}
	if got := judge.JudgeWindow(lat(base[:n-1]), lat(cand), b, 1); len(got.Percentiles) != 2 {
		t.Errorf("74,999 baseline samples: %d percentiles judged, want p50 and p99 only", len(got.Percentiles))
	}
}

func TestQuantileVerdictProto(t *testing.T) {
	v := judge.CompareQuantiles([]float64{3}, []float64{3}, 0.99, 20, 0) // no bounds: undecided
	p := v.Proto()
	if p.GetVerdict() != inconclusive || p.GetName() != "p99" || p.GetQuantile() != 0.99 ||
		p.GetLowerPercent() != -100 || !math.IsInf(p.GetUpperPercent(), 1) || p.GetBudgetPercent() != 20 ||
		p.GetConfidence() != judge.DefaultConfidence || p.GetBaselineMs() != 3 || p.GetCandidateMs() != 3 ||
		p.GetBaselineCount() != 1 || p.GetCandidateCount() != 1 {
		t.Errorf("undecided: %v", p)
	}
	base := latencies(1, 5000, 2, 0.3, 1)
	r := judge.JudgeWindow(lat(base), lat(slowestTail(latencies(2, 5000, 2, 0.3, 1), 0.05, 2)), judge.BudgetFrom(nil), 1)
	ps := judge.PercentilesProto(r.Percentiles)
	if len(ps) != 2 || ps[0].GetVerdict() != pass || ps[1].GetVerdict() != regression ||
		ps[1].GetDeltaPercent() != r.Percentiles[1].DeltaPct || ps[1].GetUpperPercent() != r.Percentiles[1].HiPct {
		t.Errorf("PercentilesProto: %v", ps)
	}
	if judge.PercentilesProto(nil) != nil {
		t.Error("PercentilesProto(nil) is not nil")
	}
	for d, want := range map[judge.Decision]ebbflowv1.Verdict{
		judge.DecisionPass: pass, judge.DecisionRegression: regression,
		judge.DecisionUndecided: inconclusive, judge.DecisionInvalid: inconclusive,
	} {
		if got := d.Verdict(); got != want {
			t.Errorf("%v.Verdict() = %v, want %v", d, got, want)
		}
	}
}

func FuzzJudgeWindow(f *testing.F) {
	f.Add([]byte{1, 1, 0, 2, 0, 3, 0}, []byte{1, 2, 0, 2, 0, 9, 0}, 1, 0.0, 0.0, 30, 3)
	f.Add([]byte{}, []byte{1, 1, 0}, 2, 1e9, 0.5e9, 1, 3)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f}, []byte{1, 1, 0}, 1, 0.0, 0.0, 1, 1)                 // NaN
	f.Add([]byte{1, 1, 0}, []byte{0, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f}, 1, math.NaN(), math.Inf(1), 1, 10) // +Inf
	f.Add(slices.Repeat([]byte{1, 0}, 300), slices.Repeat([]byte{3, 1}, 300), 3, 5.0, 4.0, 0, 3)
	long := make([]byte, 1+2*3000)
	for i := range long {
		long[i] = byte(i * 7919 >> 3)
	}
	long[0] = 1
	f.Add(long, long[:2001], 2, 0.0, 0.0, 30, 0)
	f.Fuzz(func(t *testing.T, bData, cData []byte, window int, bThr, cThr float64, minSamples, maxWindows int) {
		b, c := fuzzFloats(bData), fuzzFloats(cData)
		b0, c0 := slices.Clone(b), slices.Clone(c)
		budget := judge.BudgetFrom(&ebbflowv1.RegressionBudget{MinSamples: int32(minSamples % 100), MaxWindows: int32(maxWindows % 12)})
		r := judge.JudgeWindow(judge.Sample{LatencyMs: b, ThroughputBps: bThr}, judge.Sample{LatencyMs: c, ThroughputBps: cThr}, budget, window)
		if !sameBits(b, b0) || !sameBits(c, c0) {
			t.Fatal("inputs modified")
		}
		if r.Reason == "" {
			t.Fatal("empty reason")
		}
		if r.MeasureAgain && (r.Verdict != inconclusive || r.Window >= r.MaxWindows || !strings.HasPrefix(r.Reason, "undecided after window ")) {
			t.Fatalf("measure again with %v at window %d/%d: %s", r.Verdict, r.Window, r.MaxWindows, r.Reason)
		}
		regressed, undecided := false, false
		for _, v := range r.Percentiles {
			checkVerdict(t, v)
			if v.LastWindowRule && window != r.MaxWindows {
				t.Fatalf("last-window rule at window %d/%d: %s", window, r.MaxWindows, v.Reason)
			}
			if v.Decision == judge.DecisionInvalid {
				t.Fatalf("invalid percentile in a tested result: %s", v.Reason)
			}
			if !strings.Contains(r.Reason, v.Reason) {
				t.Fatalf("reason %q lacks %q", r.Reason, v.Reason)
			}
			regressed = regressed || v.Decision == judge.DecisionRegression
			undecided = undecided || v.Decision == judge.DecisionUndecided
		}
		switch r.Verdict {
		case pass:
			if r.Percentiles == nil || regressed || undecided {
				t.Fatalf("PASS with percentiles %v: %s", r.Percentiles, r.Reason)
			}
		case regression:
			if !regressed && !strings.Contains(r.Reason, "decrease (mean of windows)") {
				t.Fatalf("REGRESSION without a cause: %s", r.Reason)
			}
		case inconclusive:
			if regressed {
				t.Fatalf("INCONCLUSIVE with a percentile regressed: %s", r.Reason)
			}
			if undecided && window >= 1 && window < r.MaxWindows && !r.MeasureAgain {
				t.Fatalf("undecided at window %d/%d without measuring again: %s", window, r.MaxWindows, r.Reason)
			}
		default:
			t.Fatalf("verdict %v", r.Verdict)
		}
	})
}

// One verdict on 10,000 against 10,000 samples; the bound is 5 ms.
func BenchmarkJudgeWindow10k(b *testing.B) {
	baseline := lat(latencies(1, 10_000, 2, 0.3, 1))
	candidate := lat(latencies(2, 10_000, 2, 0.3, 1.05))
	budget := judge.BudgetFrom(nil)
	b.ReportAllocs()
	for b.Loop() {
		judge.JudgeWindow(baseline, candidate, budget, 1)
	}
}
