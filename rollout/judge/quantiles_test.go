package judge_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/ebbflow/ebbflow/rollout/judge"
)

// binomialTails returns P(K <= k) and P(K >= k) for K ~ Binomial(n, q), summed
// term by term in log space: an implementation independent of the package's.
func binomialTails(n, k int, q float64) (le, ge float64) {
	for i := 0; i <= n; i++ {
		lg1, _ := math.Lgamma(float64(n + 1))
		lg2, _ := math.Lgamma(float64(i + 1))
		lg3, _ := math.Lgamma(float64(n - i + 1))
		p := math.Exp(lg1 - lg2 - lg3 + float64(i)*math.Log(q) + float64(n-i)*math.Log1p(-q))
		if i <= k {
			le += p
		}
		if i >= k {
			ge += p
		}
	}
	return le, ge
}

func TestOrderStatisticRanksKnownValues(t *testing.T) {
	tests := []struct {
		n              int
		q, confidence  float64
		wantLo, wantHi int
	}{
		// Conover's table of the median: n=20 at 95% is [x(6), x(15)]
		// (coverage 95.86%), n=100 is [x(40), x(61)].
		{20, 0.5, 0.95, 6, 15},
		{100, 0.5, 0.95, 40, 61},
		// The package documentation's worked example: p99 of 2,000 at the
		// per-side level of 95% overall (Šidák, sqrt(0.95) = 97.47%).
		{2000, 0.99, math.Sqrt(0.95), 1969, 1990},
		{2000, 0.50, math.Sqrt(0.95), 950, 1051},
		{10_000, 0.999, math.Sqrt(0.95), 9982, 9997},
		// The upper bound needs q^n <= 1.27%: 435 samples for p99.
		{435, 0.99, math.Sqrt(0.95), 425, 435},
		{434, 0.99, math.Sqrt(0.95), 424, 435},
		// Too few for either bound of the median.
		{5, 0.5, 0.95, 0, 6},
		// Invalid arguments: no bounds.
		{0, 0.5, 0.95, 0, 1},
		{10, 0, 0.95, 0, 11},
		{10, 1, 0.95, 0, 11},
		{10, 0.5, 1, 0, 11},
		{10, math.NaN(), 0.95, 0, 11},
	}
	for _, tt := range tests {
		lo, hi := judge.OrderStatisticRanks(tt.n, tt.q, tt.confidence)
		if lo != tt.wantLo || hi != tt.wantHi {
			t.Errorf("OrderStatisticRanks(%d, %v, %v) = %d, %d; want %d, %d",
				tt.n, tt.q, tt.confidence, lo, hi, tt.wantLo, tt.wantHi)
		}
	}
}

// The ranks are the extreme ones whose binomial tails stay within
// (1-confidence)/2, checked against a term-by-term sum.
func TestOrderStatisticRanksMatchBinomialTails(t *testing.T) {
	for _, n := range []int{1, 2, 7, 30, 59, 200, 437} {
		for _, q := range []float64{0.01, 0.25, 0.5, 0.9, 0.99} {
			for _, conf := range []float64{0.9, 0.95, math.Sqrt(0.95)} {
				tail := (1 - conf) / 2
				lo, hi := judge.OrderStatisticRanks(n, q, conf)
				name := fmt.Sprintf("n=%d q=%v conf=%.4f: lo=%d hi=%d", n, q, conf, lo, hi)
				// P(K < lo) <= tail, and lo+1 would break it.
				if lo >= 1 {
					if le, _ := binomialTails(n, lo-1, q); le > tail*(1+1e-9) {
						t.Errorf("%s: P(K < lo) = %g > %g", name, le, tail)
					}
				}
				if lo < n {
					if le, _ := binomialTails(n, lo, q); le <= tail*(1-1e-9) {
						t.Errorf("%s: lo+1 also has P(K < lo+1) = %g <= %g", name, le, tail)
					}
				}
				// P(K >= hi) <= tail, and hi-1 would break it.
				if hi <= n {
					if _, ge := binomialTails(n, hi, q); ge > tail*(1+1e-9) {
						t.Errorf("%s: P(K >= hi) = %g > %g", name, ge, tail)
					}
				}
				if hi > 1 {
					if _, ge := binomialTails(n, hi-1, q); ge <= tail*(1-1e-9) {
						t.Errorf("%s: hi-1 also has P(K >= hi-1) = %g <= %g", name, ge, tail)
					}
				}
			}
		}
	}
}

func TestMinSamplesToBound(t *testing.T) {
	side := math.Sqrt(judge.DefaultConfidence)
	for _, tt := range []struct {
		q, conf float64
		want    int
	}{
		{0.99, side, 435},
		{0.999, side, 4368},
		{0.5, 0.95, 6},
		{0.01, side, 435},
		{1.5, 0.95, 0},
	} {
		if got := judge.MinSamplesToBound(tt.q, tt.conf); got != tt.want {
			t.Errorf("MinSamplesToBound(%v, %v) = %d, want %d", tt.q, tt.conf, got, tt.want)
		}
	}
}

func TestCompareQuantilesDecisions(t *testing.T) {
	base := latencies(1, 5000, 2, 0.3, 1)
	same := latencies(2, 5000, 2, 0.3, 1)
	tests := []struct {
		name              string
		candidate         []float64
		baseline          []float64
		q, budget         float64
		want              judge.Decision
		reason            string // a substring of Reason
		estLo, estHi      float64
		intervalContained bool // the true change (estLo) must be inside [LoPct, HiPct]
	}{
		{name: "same distribution, p50", baseline: base, candidate: same, q: 0.5, budget: 10,
			want: judge.DecisionPass, reason: "<= budget 10%", estLo: -3, estHi: 3},
		{name: "same distribution, p99", baseline: base, candidate: same, q: 0.99, budget: 20,
			want: judge.DecisionPass, reason: "<= budget 20%", estLo: -8, estHi: 8},
		{name: "2x slower, p99", baseline: base, candidate: latencies(3, 5000, 2, 0.3, 2), q: 0.99, budget: 20,
			want: judge.DecisionRegression, reason: "> budget 20%", estLo: 90, estHi: 110},
		{name: "slowest 5% 2x slower, p99", baseline: base, candidate: slowestTail(same, 0.05, 2), q: 0.99, budget: 20,
			want: judge.DecisionRegression, reason: "> budget 20%", estLo: 90, estHi: 110},
		{name: "slowest 5% 2x slower, p50 unchanged", baseline: base, candidate: slowestTail(same, 0.05, 2), q: 0.5, budget: 10,
			want: judge.DecisionPass, estLo: -3, estHi: 3},
		{name: "20% faster", baseline: base, candidate: latencies(4, 5000, 2, 0.3, 0.8), q: 0.99, budget: 20,
			want: judge.DecisionPass, estLo: -25, estHi: -15},
		{name: "too few samples for p99", baseline: base[:200], candidate: same[:200], q: 0.99, budget: 20,
			want: judge.DecisionUndecided, reason: "too few samples to bound p99: baseline 200, candidate 200, need 435 each",
			estLo: -20, estHi: 20},
		{name: "at the budget's edge", baseline: base, candidate: latencies(5, 5000, 2, 0.3, 1.1), q: 0.5, budget: 10,
			want: judge.DecisionUndecided, reason: "straddles budget 10%", estLo: 7, estHi: 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge.CompareQuantiles(tt.baseline, tt.candidate, tt.q, tt.budget, 0)
			t.Log(v.Reason)
			if v.Decision != tt.want {
				t.Errorf("Decision = %v, want %v (%s)", v.Decision, tt.want, v.Reason)
			}
			if !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("Reason %q does not contain %q", v.Reason, tt.reason)
			}
			if v.DeltaPct < tt.estLo || v.DeltaPct > tt.estHi {
				t.Errorf("DeltaPct = %.2f, want in [%v, %v]", v.DeltaPct, tt.estLo, tt.estHi)
			}
			if !(v.LoPct <= v.DeltaPct && v.DeltaPct <= v.HiPct) {
				t.Errorf("interval [%v, %v] does not contain the estimate %v", v.LoPct, v.HiPct, v.DeltaPct)
			}
			if v.Confidence != judge.DefaultConfidence || v.SideConfidence != math.Sqrt(judge.DefaultConfidence) {
				t.Errorf("Confidence %v, SideConfidence %v; want the defaults", v.Confidence, v.SideConfidence)
			}
		})
	}
}

func TestCompareQuantilesReasonFormat(t *testing.T) {
	// The worked example's numbers; ExampleCompareQuantiles prints them too.
	const n = 2000
	base := make([]float64, n)
	for i := range base {
		base[i] = 2 * math.Exp(0.5*distuv.UnitNormal.Quantile((float64(i)+0.5)/n))
	}
	cand := slices.Clone(base)
	for i := n * 95 / 100; i < n; i++ {
		cand[i] *= 2
	}
	v := judge.CompareQuantiles(base, cand, 0.99, 20, 0.95)
	if want := "p99 +100.0% [+63.1%, +145.3%] > budget 20%"; v.Reason != want {
		t.Errorf("Reason = %q, want %q", v.Reason, want)
	}
	if v.Name != "p99" || v.Quantile != 0.99 || v.BaselineN != n || v.CandidateN != n {
		t.Errorf("Name %q Quantile %v N %d/%d", v.Name, v.Quantile, v.BaselineN, v.CandidateN)
	}
	// The per-side intervals are the 1,969th and 1,990th order statistics.
	sorted := slices.Clone(base)
	slices.Sort(sorted)
	if v.BaselineLo != sorted[1968] || v.BaselineHi != sorted[1989] {
		t.Errorf("baseline interval [%v, %v], want [%v, %v]", v.BaselineLo, v.BaselineHi, sorted[1968], sorted[1989])
	}
	if got, want := v.LoPct, (v.CandidateLo/v.BaselineHi-1)*100; got != want {
		t.Errorf("LoPct = %v, want cand_lo/base_hi-1 = %v", got, want)
	}
	if got, want := v.HiPct, (v.CandidateHi/v.BaselineLo-1)*100; got != want {
		t.Errorf("HiPct = %v, want cand_hi/base_lo-1 = %v", got, want)
	}
}

func TestCompareQuantilesZerosAndInfiniteBounds(t *testing.T) {
	zeros := make([]float64, 1000)
	if v := judge.CompareQuantiles(zeros, zeros, 0.5, 10, 0); v.Decision != judge.DecisionPass || v.DeltaPct != 0 {
		t.Errorf("all zeros: %v %v (%s)", v.Decision, v.DeltaPct, v.Reason)
	}
	ones := slices.Repeat([]float64{1}, 1000)
	if v := judge.CompareQuantiles(zeros, ones, 0.5, 10, 0); v.Decision != judge.DecisionRegression || !math.IsInf(v.DeltaPct, 1) {
		t.Errorf("0 -> 1 ms: %v %v (%s)", v.Decision, v.DeltaPct, v.Reason)
	}
	if v := judge.CompareQuantiles(ones, zeros, 0.5, 10, 0); v.Decision != judge.DecisionPass || v.DeltaPct != -100 {
		t.Errorf("1 -> 0 ms: %v %v (%s)", v.Decision, v.DeltaPct, v.Reason)
	}
	// One sample a side: no bound at all, so the change is in [-100%, +Inf%].
	v := judge.CompareQuantiles([]float64{3}, []float64{3}, 0.99, 20, 0)
	if v.Decision != judge.DecisionUndecided || v.LoPct != -100 || !math.IsInf(v.HiPct, 1) {
		t.Errorf("one sample a side: %v [%v, %v] (%s)", v.Decision, v.LoPct, v.HiPct, v.Reason)
	}
	if !strings.Contains(v.Reason, "[-100.0%, +Inf%]") {
		t.Errorf("Reason %q", v.Reason)
	}
}

func TestCompareQuantilesInvalid(t *testing.T) {
	good := latencies(1, 100, 2, 0.3, 1)
	with := func(v float64) []float64 { s := slices.Clone(good); s[7] = v; return s }
	tests := []struct {
		name                  string
		baseline, candidate   []float64
		q, budget, confidence float64
		reason                string
		// percentiles: ComparePercentiles (default budgets, this confidence) is invalid too.
		percentiles bool
	}{
		{"empty baseline", nil, good, 0.99, 20, 0, "baseline has no latency samples", true},
		{"empty candidate", good, []float64{}, 0.99, 20, 0, "candidate has no latency samples", true},
		{"NaN", good, with(math.NaN()), 0.99, 20, 0, "candidate has 1 invalid latency sample(s), the first at index 7: NaN", true},
		{"+Inf", with(math.Inf(1)), good, 0.99, 20, 0, "baseline has 1 invalid latency sample(s), the first at index 7: +Inf", true},
		{"-Inf", with(math.Inf(-1)), good, 0.99, 20, 0, "index 7: -Inf", true},
		{"negative", good, with(-1), 0.99, 20, 0, "index 7: -1 (latencies must be finite and >= 0 ms)", true},
		{"q 0", good, good, 0, 20, 0, "quantile 0 outside (0, 1)", false},
		{"q 1", good, good, 1, 20, 0, "quantile 1 outside (0, 1)", false},
		{"q NaN", good, good, math.NaN(), 20, 0, "quantile NaN outside (0, 1)", false},
		{"confidence 1", good, good, 0.5, 20, 1, "confidence 1 outside (0, 1)", true},
		{"confidence negative", good, good, 0.5, 20, -0.5, "confidence -0.5 outside (0, 1)", true},
		{"budget negative", good, good, 0.5, -1, 0, "budget -1% is not a finite non-negative percentage", false},
		{"budget NaN", good, good, 0.5, math.NaN(), 0, "budget NaN%", false},
		{"budget +Inf", good, good, 0.5, math.Inf(1), 0, "budget +Inf%", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge.CompareQuantiles(tt.baseline, tt.candidate, tt.q, tt.budget, tt.confidence)
			if v.Decision != judge.DecisionInvalid {
				t.Errorf("Decision = %v, want INVALID", v.Decision)
			}
			if !strings.Contains(v.Reason, tt.reason) || !strings.Contains(v.Reason, "not judged") {
				t.Errorf("Reason %q does not contain %q", v.Reason, tt.reason)
			}
			if !math.IsNaN(v.DeltaPct) || !math.IsNaN(v.LoPct) || !math.IsNaN(v.HiPct) {
				t.Errorf("figures of an invalid verdict should be NaN: %v [%v, %v]", v.DeltaPct, v.LoPct, v.HiPct)
			}
			p := judge.ComparePercentiles(tt.baseline, tt.candidate, judge.BudgetFrom(nil), judge.PercentileOptions{Confidence: tt.confidence})
			if invalid := p.Decision == judge.DecisionInvalid; invalid != tt.percentiles {
				t.Errorf("ComparePercentiles: %v (%s)", p.Decision, p.Reason)
			} else if invalid && (!strings.Contains(p.Reason, tt.reason) || p.Quantiles != nil) {
				t.Errorf("ComparePercentiles: Reason %q, Quantiles %v", p.Reason, p.Quantiles)
			}
		})
	}
	if p := judge.ComparePercentiles(good, good, judge.Budget{MaxP50IncreasePct: -5, MaxP99IncreasePct: 20}, judge.PercentileOptions{}); p.Decision != judge.DecisionInvalid ||
		!strings.Contains(p.Reason, "p50 budget -5%") {
		t.Errorf("negative p50 budget: %v %q", p.Decision, p.Reason)
	}
}

func TestCompareQuantilesDoesNotModifyInput(t *testing.T) {
	b := latencies(1, 500, 2, 0.3, 1)
	c := latencies(2, 500, 2, 0.3, 1)
	b0, c0 := slices.Clone(b), slices.Clone(c)
	judge.CompareQuantiles(b, c, 0.99, 20, 0)
	judge.ComparePercentiles(b, c, judge.BudgetFrom(nil), judge.PercentileOptions{})
	if !slices.Equal(b, b0) || !slices.Equal(c, c0) {
		t.Error("inputs modified")
	}
}

func TestComparePercentiles(t *testing.T) {
	def := judge.BudgetFrom(nil) // p50 10%, p99 20%
	base := latencies(1, 5000, 2, 0.3, 1)
	same := latencies(2, 5000, 2, 0.3, 1)
	tests := []struct {
		name      string
		candidate []float64
		want      judge.Decision
		decisions []judge.Decision // p50, p99
	}{
		{"identical", same, judge.DecisionPass, []judge.Decision{judge.DecisionPass, judge.DecisionPass}},
		{"tail only", slowestTail(same, 0.05, 2), judge.DecisionRegression,
			[]judge.Decision{judge.DecisionPass, judge.DecisionRegression}},
		{"uniform 30%", latencies(3, 5000, 2, 0.3, 1.3), judge.DecisionRegression,
			[]judge.Decision{judge.DecisionRegression, judge.DecisionRegression}},
		{"p50 at its budget", latencies(5, 5000, 2, 0.3, 1.1), judge.DecisionUndecided,
			[]judge.Decision{judge.DecisionUndecided, judge.DecisionPass}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge.ComparePercentiles(base, tt.candidate, def, judge.PercentileOptions{})
			t.Log(v.Reason)
			if v.Decision != tt.want {
				t.Errorf("Decision = %v, want %v", v.Decision, tt.want)
			}
			if len(v.Quantiles) != 2 {
				t.Fatalf("%d quantiles, want p50 and p99 only (p999 needs 75,000 samples a side)", len(v.Quantiles))
			}
			for i, q := range v.Quantiles {
				if q.Decision != tt.decisions[i] {
					t.Errorf("%s: %v, want %v", q.Name, q.Decision, tt.decisions[i])
				}
			}
			if !strings.HasPrefix(v.Reason, "p50 ") || !strings.Contains(v.Reason, "; p99 ") {
				t.Errorf("Reason %q: want p50's then p99's", v.Reason)
			}
		})
	}

	// p999 is judged from P999MinTailSamples samples beyond it, here 5 (5,000 a side).
	opt := judge.PercentileOptions{P999MinTailSamples: 5, MaxP999IncreasePct: 30}
	v := judge.ComparePercentiles(base, slowestTail(same, 0.005, 3), def, opt)
	if len(v.Quantiles) != 3 || v.Quantiles[2].Name != "p999" || v.Quantiles[2].BudgetPct != 30 {
		t.Fatalf("quantiles %+v", v.Quantiles)
	}
	if v.Decision != judge.DecisionRegression || v.Quantiles[2].Decision != judge.DecisionRegression ||
		v.Quantiles[1].Decision != judge.DecisionPass {
		t.Errorf("slowest 0.5%% 3x slower: %v (%s)", v.Decision, v.Reason)
	}
	if v := judge.ComparePercentiles(base[:4999], same, def, opt); len(v.Quantiles) != 2 {
		t.Errorf("4,999 baseline samples: p999 judged (%s)", v.Reason)
	}
}

// The intervals cover: over seeded trials, the ratio interval contains the
// true change in at least the nominal share of them. (The method is
// conservative, so the observed coverage is well above it.)
func TestCompareQuantilesCoverage(t *testing.T) {
	const trials = 300
	for _, tc := range []struct {
		q, scale float64
		n        int
	}{{0.5, 1, 300}, {0.99, 1.3, 1000}, {0.9, 0.7, 500}} {
		covered := 0
		for i := range trials {
			b := latencies(uint64(2*i), tc.n, 2, 0.5, 1)
			c := latencies(uint64(2*i+1), tc.n, 2, 0.5, tc.scale)
			v := judge.CompareQuantiles(b, c, tc.q, 1000, 0.95)
			if truth := (tc.scale - 1) * 100; v.LoPct <= truth && truth <= v.HiPct {
				covered++
			}
		}
		if share := float64(covered) / trials; share < 0.95 {
			t.Errorf("q %v, x%v, n %d: coverage %.3f < 0.95", tc.q, tc.scale, tc.n, share)
		}
	}
}

func TestDecisionString(t *testing.T) {
	for d, want := range map[judge.Decision]string{
		judge.DecisionInvalid: "INVALID", judge.DecisionUndecided: "UNDECIDED",
		judge.DecisionPass: "PASS", judge.DecisionRegression: "REGRESSION", 9: "Decision(9)",
	} {
		if d.String() != want {
			t.Errorf("%d: %q, want %q", int(d), d.String(), want)
		}
	}
	for q, want := range map[float64]string{0.5: "p50", 0.99: "p99", 0.999: "p999", 0.9999: "p9999", 0.9: "p90", 0.125: "p12.5"} {
		if got := judge.CompareQuantiles([]float64{1}, []float64{1}, q, 0, 0).Name; got != want {
			t.Errorf("name of %v: %q, want %q", q, got, want)
		}
	}
}

// fuzzFloats decodes fuzz bytes into latencies: when the first byte is even,
// as raw float64 bits (NaN, infinities, negatives, subnormals, anything);
// otherwise as 16-bit integers in 1/64 ms, so valid inputs with ties are
// common.
func fuzzFloats(data []byte) []float64 {
	if len(data) == 0 {
		return nil
	}
	raw := data[0]%2 == 0
	data = data[1:]
	var out []float64
	if raw {
		for len(data) >= 8 {
			out = append(out, math.Float64frombits(binary.LittleEndian.Uint64(data)))
			data = data[8:]
		}
		return out
	}
	for len(data) >= 2 {
		out = append(out, float64(binary.LittleEndian.Uint16(data))/64)
		data = data[2:]
	}
	return out
}

func FuzzCompareQuantiles(f *testing.F) {
	f.Add([]byte{1, 1, 0, 2, 0, 3, 0}, []byte{1, 2, 0, 2, 0, 9, 0}, 0.5, 10.0, 0.95)
	f.Add([]byte{}, []byte{1, 1, 0}, 0.99, 20.0, 0.0)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f}, []byte{1, 1, 0}, 0.99, 20.0, 0.0) // NaN
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0xf0, 0xff}, []byte{1, 1, 0}, 0.99, 20.0, 0.0) // -Inf
	f.Add(slices.Repeat([]byte{1, 0}, 300), slices.Repeat([]byte{3, 1}, 300), 0.99, 0.0, 0.5)
	long := make([]byte, 1+2*3000)
	for i := range long {
		long[i] = byte(i * 7919 >> 3)
	}
	long[0] = 1
	f.Add(long, long[:2001], 0.999, 50.0, 0.9)
	f.Fuzz(func(t *testing.T, bData, cData []byte, q, budget, conf float64) {
		b, c := fuzzFloats(bData), fuzzFloats(cData)
		b0, c0 := slices.Clone(b), slices.Clone(c)
		v := judge.CompareQuantiles(b, c, q, budget, conf)
		if !sameBits(b, b0) || !sameBits(c, c0) {
			t.Fatal("inputs modified")
		}
		checkVerdict(t, v)
		if v.Decision == judge.DecisionInvalid {
			return
		}
		p := judge.ComparePercentiles(b, c, judge.Budget{MaxP50IncreasePct: budget, MaxP99IncreasePct: budget},
			judge.PercentileOptions{Confidence: conf, P999MinTailSamples: 1})
		if p.Decision == judge.DecisionInvalid {
			t.Fatalf("ComparePercentiles invalid on input CompareQuantiles accepted: %s", p.Reason)
		}
		want, reasons := judge.DecisionPass, []string{}
		for _, qv := range p.Quantiles {
			checkVerdict(t, qv)
			reasons = append(reasons, qv.Reason)
			switch {
			case qv.Decision == judge.DecisionRegression:
				want = judge.DecisionRegression
			case qv.Decision == judge.DecisionUndecided && want == judge.DecisionPass:
				want = judge.DecisionUndecided
			}
		}
		if p.Decision != want || p.Reason != strings.Join(reasons, "; ") {
			t.Fatalf("combined %v %q; want %v", p.Decision, p.Reason, want)
		}
	})
}

func sameBits(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
}

// checkVerdict checks a verdict's invariants: an interval that contains the
// estimate and agrees with the decision (or, decided by JudgeWindow's
// last-window rule, straddles the budget and agrees with the rule), or a
// reason for an invalid input.
func checkVerdict(t *testing.T, v judge.QuantileVerdict) {
	t.Helper()
	if v.Reason == "" {
		t.Fatal("empty reason")
	}
	if v.Decision == judge.DecisionInvalid {
		if !strings.Contains(v.Reason, "not judged: ") {
			t.Fatalf("invalid without a reason: %q", v.Reason)
		}
		return
	}
	if strings.Contains(v.Reason, "(point estimate: ") {
		// JudgeWindow's point verdict: no interval, the estimate against the budget decides.
		if !math.IsInf(v.HiPct, 1) || v.LoPct != -100 || (v.Decision == judge.DecisionPass) != (v.DeltaPct <= v.BudgetPct) {
			t.Fatalf("point verdict %v with estimate %v, budget %v, [%v, %v]: %s", v.Decision, v.DeltaPct, v.BudgetPct, v.LoPct, v.HiPct, v.Reason)
		}
		return
	}
	if !(v.LoPct <= v.DeltaPct && v.DeltaPct <= v.HiPct) || v.LoPct < -100 {
		t.Fatalf("interval [%v, %v] does not contain the estimate %v (%s)", v.LoPct, v.HiPct, v.DeltaPct, v.Reason)
	}
	if !(v.BaselineLo <= v.BaselineQ && v.BaselineQ <= v.BaselineHi && v.CandidateLo <= v.CandidateQ && v.CandidateQ <= v.CandidateHi) {
		t.Fatalf("side intervals: %+v", v)
	}
	var ok bool
	switch {
	case v.LastWindowRule:
		// JudgeWindow's last-window rule: the interval straddles the budget, the estimate
		// decides, with the increase significant for REGRESSION and below 2B for PASS.
		straddles := v.LoPct <= v.BudgetPct && v.BudgetPct < v.HiPct
		ok = straddles && strings.Contains(v.Reason, " at the last window, ") &&
			(v.Decision == judge.DecisionRegression && v.DeltaPct > v.BudgetPct && v.LoPct > 0 ||
				v.Decision == judge.DecisionPass && v.DeltaPct <= v.BudgetPct && v.HiPct < 2*v.BudgetPct)
	case v.Decision == judge.DecisionRegression:
		ok = v.LoPct > v.BudgetPct
	case v.Decision == judge.DecisionPass:
		ok = v.HiPct <= v.BudgetPct
	case v.Decision == judge.DecisionUndecided:
		ok = v.LoPct <= v.BudgetPct && v.BudgetPct < v.HiPct
	}
	if !ok {
		t.Fatalf("decision %v disagrees with [%v, %v] and budget %v", v.Decision, v.LoPct, v.HiPct, v.BudgetPct)
	}
}

func BenchmarkCompareQuantiles10k(b *testing.B) {
	base := latencies(1, 10_000, 2, 0.3, 1)
	cand := latencies(2, 10_000, 2, 0.3, 1.05)
	b.Run("p99", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			judge.CompareQuantiles(base, cand, 0.99, 20, 0)
		}
	})
	b.Run("ComparePercentiles", func(b *testing.B) {
		budget := judge.BudgetFrom(nil)
		b.ReportAllocs()
		for b.Loop() {
			judge.ComparePercentiles(base, cand, budget, judge.PercentileOptions{})
		}
	})
}
