// Package judge decides whether a phase's latency regressed against the
// baseline. Pure: no I/O, no clock.
//
// JudgeWindow is the judge the rollout engine uses (v2). It tests each
// budgeted latency percentile, p50, p99 and, with enough samples, p999, on
// its own, with a distribution-free interval of its relative change ("Percentile
// tests" below), and spends the budget's alpha across the phase's measurement
// windows ("Sequential windows"), so that a phase the data cannot decide yet is
// measured again instead of failed. Judge, the first judge (a Mann-Whitney U
// test plus percentile deltas), is kept: BenchmarkJudgeOperatingCharacteristics
// compares the two, and JudgeWindow reports the U test's p-value for
// information.
//
// # Decision rule of JudgeWindow
//
// The baseline Sample is measured once, before the rollout touched the
// cluster; the candidate Sample holds all the phase's windows so far, pooled,
// and window counts them (1-based, at most Budget.MaxWindows).
//
//  1. Input: a NaN, infinite or negative latency on either side, a baseline
//     with fewer than MinSamples latencies (none at all included), a window
//     outside 1..MaxWindows or an unusable budget is INCONCLUSIVE with a
//     reason naming the side or the field; none of it is retried. A candidate
//     with fewer than MinSamples latencies is undecided: another window may
//     bring them.
//  2. Percentiles: each is compared with its budget B (MaxP50IncreasePct,
//     MaxP99IncreasePct, MaxP999IncreasePct) through an interval of its change
//     at the two-sided level 1 - WindowAlpha(Alpha, window, MaxWindows): PASS
//     when the upper bound is at most B, REGRESSION when the lower bound is
//     above B, undecided otherwise. p999 is judged only when both sides hold
//     DefaultP999MinTailSamples*1000 samples (75,000). At the last window
//     (window = MaxWindows) a percentile whose interval still straddles B is
//     decided by its point estimate: REGRESSION when the estimate is above B
//     and the lower bound above 0, PASS when the estimate is at most B and the
//     upper bound below 2B, undecided otherwise ("Sequential windows: the last
//     window").
//  3. Throughput: as Judge's rules 3 and 4 (mean over windows, no test; a
//     decrease beyond MaxThroughputDecreasePct is REGRESSION on its own; a
//     baseline throughput without a candidate one is INCONCLUSIVE).
//  4. Verdict: REGRESSION when any percentile or the throughput regressed;
//     PASS when every judged percentile passed and the throughput is within
//     budget or not measured; INCONCLUSIVE otherwise. When it is
//     INCONCLUSIVE with a percentile undecided (or too few candidate samples)
//     and window < MaxWindows, MeasureAgain asks for another window; after the
//     last, the rollout's on_inconclusive applies.
//
// Reasons list the percentiles in order, joined with "; ", each like
// "p99 +12.1% [+4.0%, +20.9%] > budget 10%" ("<= budget" for PASS,
// "straddles budget" for undecided), then the throughput; an undecided verdict
// starts with "undecided after window 1/3: " (", the last" added at the cap).
// At the last window a straddling percentile's reason names the rule that
// decided it, e.g. "p99 +17.0% [+13.1%, +20.9%] straddles budget 20%: PASS at
// the last window, estimate within budget and upper bound below 2x budget 40%",
// or why it could not ("...: undecided at the last window, estimate within
// budget but upper bound not below 2x budget 40%").
//
// # Judge (v1)
//
// Judge compares whole distributions with a one-sided Mann-Whitney U test and
// checks p50's and p99's point estimates against the budget. Its blind spot is
// the tail (rule 7 below), and a noisy phase's point estimate crosses a budget
// by chance, so it is no longer the engine's judge.
//
// # Judge (v1): worked example
//
// Budget p50 +10%, p99 +20%, alpha 0.05; a baseline of 100 requests at 10.0, 10.1, ... 19.9 ms.
//
//   - A candidate 30% slower on every request: p50 and p99 are both +30%, over budget, and the
//     U test sees the whole distribution shift (p < 0.0001): REGRESSION, "p50 +30.0% > budget
//     10% (p<0.0001); p99 +30.0% > budget 20% (p<0.0001)".
//   - A candidate equal to the baseline except its slowest 3 requests, 2x slower: p50 is
//     unchanged, p99 is +100%, but 3 of 200 ranks moved and the U test gives p = 0.4961:
//     INCONCLUSIVE, "p99 +100.0% > budget 20% but not significant". That is rule 7's blind
//     spot for tail-only regressions.
//
// (Example in example_test.go prints both verdicts, so this text is checked by go test.)
//
// # Judge (v1): rules
//
// Judge compares a candidate Sample (measured after a phase was applied) with
// the baseline Sample (measured before the rollout touched the cluster):
//
//  1. Percentiles: p50 and p99 of both sides use the same definition,
//     Percentile's linear interpolation (Hyndman and Fan 7). Deltas are
//     relative to the baseline, in percent; positive means slower.
//  2. Significance: MannWhitneyU with the one-sided alternative "the
//     candidate's latency is stochastically greater than the baseline's". The
//     slowdown is significant when p < Alpha (strictly).
//  3. Throughput is one number per measurement window, and a phase has only a
//     handful of windows: with 3 a side no rank test can reach p < 0.05 (the
//     smallest exact one-sided p is 1/20). So the criterion is the mean over
//     the windows, without a significance test: a decrease of the candidate's
//     mean throughput beyond MaxThroughputDecreasePct is a regression on its
//     own. It applies only when the baseline has a throughput; a baseline with
//     a throughput and a candidate without one is inconclusive.
//  4. A throughput regression makes the verdict REGRESSION whatever the
//     latency says, even with too few latency samples.
//  5. Otherwise, fewer than MinSamples latency samples on either side is
//     INCONCLUSIVE.
//  6. p50 delta > MaxP50IncreasePct or p99 delta > MaxP99IncreasePct, and the
//     U test significant: REGRESSION.
//  7. Either latency delta over budget but the U test not significant:
//     INCONCLUSIVE; the data cannot tell a real slowdown from noise. A rank
//     test barely sees a change confined to the tail: a random few percent of
//     requests slowed down shift the ranks a little (significant only with
//     enough samples), and the slowest few percent slowed further shift them
//     hardly at all, at any sample size. Such a tail regression is
//     INCONCLUSIVE and the rollout's on_inconclusive policy decides.
//  8. Everything within budget: PASS, significant or not. A significant
//     slowdown within budget is a real but allowed cost.
//
// Reasons read like "p99 +23.4% > budget 20% (p=0.0003)".
package judge

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Default budget values, used by BudgetFrom for fields the rollout leaves unset.
const (
	DefaultMaxP50IncreasePct        = 10
	DefaultMaxP99IncreasePct        = 20
	DefaultMaxThroughputDecreasePct = 10
	DefaultAlpha                    = 0.05
	DefaultMinSamples               = 30
	// DefaultMaxWindows is how many measurement windows a phase gets by
	// default before an undecided verdict becomes INCONCLUSIVE.
	DefaultMaxWindows = 3
	// MaxMaxWindows is the most windows a budget may allow.
	MaxMaxWindows = 10
)

// Budget is what a phase may cost against the baseline. Percentages are in
// percent of the baseline value (10 means 10%).
type Budget struct {
	// MaxP50IncreasePct, MaxP99IncreasePct and MaxP999IncreasePct bound the
	// latency percentiles' increase (Judge uses the first two only).
	MaxP50IncreasePct, MaxP99IncreasePct, MaxP999IncreasePct float64
	// MaxThroughputDecreasePct bounds the mean throughput's decrease.
	MaxThroughputDecreasePct float64
	// Alpha is, for JudgeWindow, the error level of each percentile's verdict
	// over all of a phase's windows together (spent across them, see
	// WindowAlpha); for Judge, the significance level of the one-sided
	// Mann-Whitney U test.
	Alpha float64
	// MinSamples is the fewest latency samples per side that Judge and
	// JudgeWindow will test; values below 1 count as 1.
	MinSamples int
	// MaxWindows is the most measurement windows JudgeWindow spends alpha
	// over; values below 1 count as 1.
	MaxWindows int
}

// BudgetFrom converts a rollout's regression budget. Unset fields (zero, or
// for robustness negative or NaN; and an alpha of 1 or more, which is no
// significance level) take the defaults: p50 10%, p99 20%, p999 50%,
// throughput 10%, alpha 0.05, 30 samples, 3 windows. max_windows above
// MaxMaxWindows counts as MaxMaxWindows. A nil budget is all defaults.
func BudgetFrom(b *ebbflowv1.RegressionBudget) Budget {
	orDefault := func(v, def float64) float64 {
		if !(v > 0) || math.IsInf(v, 0) {
			return def
		}
		return v
	}
	out := Budget{
		MaxP50IncreasePct:        orDefault(b.GetMaxP50IncreasePercent(), DefaultMaxP50IncreasePct),
		MaxP99IncreasePct:        orDefault(b.GetMaxP99IncreasePercent(), DefaultMaxP99IncreasePct),
		MaxP999IncreasePct:       orDefault(b.GetMaxP999IncreasePercent(), DefaultMaxP999IncreasePct),
		MaxThroughputDecreasePct: orDefault(b.GetMaxThroughputDecreasePercent(), DefaultMaxThroughputDecreasePct),
		Alpha:                    orDefault(b.GetAlpha(), DefaultAlpha),
		MinSamples:               int(b.GetMinSamples()),
		MaxWindows:               int(b.GetMaxWindows()),
	}
	if out.Alpha >= 1 {
		out.Alpha = DefaultAlpha
	}
	if out.MinSamples <= 0 {
		out.MinSamples = DefaultMinSamples
	}
	switch {
	case out.MaxWindows <= 0:
		out.MaxWindows = DefaultMaxWindows
	case out.MaxWindows > MaxMaxWindows:
		out.MaxWindows = MaxMaxWindows
	}
	return out
}

// Result is a verdict with the figures behind it. Deltas are in percent of the
// baseline (positive: the candidate is higher); latencies in milliseconds.
// Percentiles of a side without samples are 0, and so are the deltas when
// either side has none. PValue is the one-sided Mann-Whitney p-value, 1 when
// either side has no samples.
type Result struct {
	Verdict                                              ebbflowv1.Verdict
	P50DeltaPct, P99DeltaPct, ThroughputDeltaPct, PValue float64
	BaselineP50, BaselineP99, CandidateP50, CandidateP99 float64
	// P999DeltaPct, BaselineP999 and CandidateP999 are p999's figures, filled
	// by JudgeWindow whether or not p999 is judged.
	P999DeltaPct, BaselineP999, CandidateP999 float64
	Reason                                    string

	// Percentiles holds JudgeWindow's test of each budgeted percentile: p50,
	// p99 and, when both sides have enough samples, p999; nil when the
	// samples could not be tested (and always for Judge).
	Percentiles []QuantileVerdict
	// Window is the 1-based measurement window JudgeWindow judged, MaxWindows
	// the budget's cap (at least 1); both 0 for Judge.
	Window, MaxWindows int
	// MeasureAgain is set by JudgeWindow when the verdict is INCONCLUSIVE, a
	// percentile is undecided or the candidate has too few samples, and
	// Window < MaxWindows: another window of the candidate may decide.
	MeasureAgain bool
}

// Judge decides whether candidate regressed against baseline under budget b,
// by the rules in the package documentation. NaN and infinite latencies are
// ignored. The inputs are not modified. Time is O(n log n) in the sample counts.
func Judge(baseline, candidate Sample, b Budget) Result {
	bs := finiteSorted(baseline.LatencyMs)
	cs := finiteSorted(candidate.LatencyMs)

	r := Result{PValue: 1}
	if len(bs) > 0 {
		r.BaselineP50, r.BaselineP99 = Percentile(bs, 0.50), Percentile(bs, 0.99)
	}
	if len(cs) > 0 {
		r.CandidateP50, r.CandidateP99 = Percentile(cs, 0.50), Percentile(cs, 0.99)
	}
	if len(bs) > 0 && len(cs) > 0 {
		r.P50DeltaPct = deltaPct(r.BaselineP50, r.CandidateP50)
		r.P99DeltaPct = deltaPct(r.BaselineP99, r.CandidateP99)
		_, r.PValue = mannWhitneySorted(bs, cs)
	}

	// Throughput (rules 3 and 4).
	var regressions, doubts []string
	thrRegression, thrDoubt, thrMeasured := judgeThroughput(baseline, candidate, b, &r)
	if thrRegression != "" {
		regressions = append(regressions, thrRegression)
	}
	if thrDoubt != "" {
		doubts = append(doubts, thrDoubt)
	}

	// Sample counts (rule 5).
	minN := max(b.MinSamples, 1)
	if len(bs) < minN || len(cs) < minN {
		few := fmt.Sprintf("too few latency samples: baseline %d, candidate %d (need %d each)", len(bs), len(cs), minN)
		if len(regressions) > 0 {
			return r.with(ebbflowv1.Verdict_VERDICT_REGRESSION, append(regressions, few))
		}
		return r.with(ebbflowv1.Verdict_VERDICT_INCONCLUSIVE, append([]string{few}, doubts...))
	}

	// Latency (rules 6 to 8).
	significant := r.PValue < b.Alpha
	var over []string
	if r.P50DeltaPct > b.MaxP50IncreasePct {
		over = append(over, fmt.Sprintf("p50 %+.1f%% > budget %g%%", r.P50DeltaPct, b.MaxP50IncreasePct))
	}
	if r.P99DeltaPct > b.MaxP99IncreasePct {
		over = append(over, fmt.Sprintf("p99 %+.1f%% > budget %g%%", r.P99DeltaPct, b.MaxP99IncreasePct))
	}
	if len(over) > 0 {
		if significant {
			for _, o := range over {
				regressions = append(regressions, fmt.Sprintf("%s (%s)", o, formatP(r.PValue)))
			}
		} else {
			doubts = append(doubts, fmt.Sprintf("%s but not significant (%s, alpha %g)",
				strings.Join(over, ", "), formatP(r.PValue), b.Alpha))
		}
	}

	switch {
	case len(regressions) > 0:
		return r.with(ebbflowv1.Verdict_VERDICT_REGRESSION, append(regressions, doubts...))
	case len(doubts) > 0:
		return r.with(ebbflowv1.Verdict_VERDICT_INCONCLUSIVE, doubts)
	}
	pass := fmt.Sprintf("within budget: p50 %+.1f%% (max %g%%), p99 %+.1f%% (max %g%%)",
		r.P50DeltaPct, b.MaxP50IncreasePct, r.P99DeltaPct, b.MaxP99IncreasePct)
	if thrMeasured {
		pass += fmt.Sprintf(", throughput %+.1f%% (max -%g%%)", r.ThroughputDeltaPct, b.MaxThroughputDecreasePct)
	}
	if significant {
		pass += fmt.Sprintf("; significantly slower (%s) but the budget allows it", formatP(r.PValue))
	} else {
		pass += fmt.Sprintf(" (%s)", formatP(r.PValue))
	}
	return r.with(ebbflowv1.Verdict_VERDICT_PASS, []string{pass})
}

// judgeThroughput applies rules 3 and 4: it sets r.ThroughputDeltaPct and
// returns the throughput's regression and doubt ("" for none), and whether
// both sides had a throughput to compare.
func judgeThroughput(baseline, candidate Sample, b Budget, r *Result) (regression, doubt string, measured bool) {
	switch bt, ct := baseline.ThroughputBps, candidate.ThroughputBps; {
	case !positive(bt):
		// No baseline throughput: nothing to compare against.
	case !positive(ct):
		doubt = fmt.Sprintf("candidate throughput missing (baseline %.4g B/s)", bt)
	default:
		measured = true
		r.ThroughputDeltaPct = deltaPct(bt, ct)
		if -r.ThroughputDeltaPct > b.MaxThroughputDecreasePct {
			regression = fmt.Sprintf("throughput %+.1f%% > budget %g%% decrease (mean of windows)",
				r.ThroughputDeltaPct, b.MaxThroughputDecreasePct)
		}
	}
	return regression, doubt, measured
}

func (r Result) with(v ebbflowv1.Verdict, reasons []string) Result {
	r.Verdict = v
	r.Reason = strings.Join(reasons, "; ")
	return r
}

// deltaPct is the change from base to cand in percent of base. A zero base
// gives 0 when cand is also zero and an infinity of cand's sign otherwise.
func deltaPct(base, cand float64) float64 {
	if base == 0 {
		switch {
		case cand > 0:
			return math.Inf(1)
		case cand < 0:
			return math.Inf(-1)
		}
		return 0
	}
	return (cand - base) / math.Abs(base) * 100
}

func positive(v float64) bool { return v > 0 && !math.IsInf(v, 1) }

// formatP renders a p-value as "p=0.0003", or "p<0.0001" below that.
func formatP(p float64) string {
	if p < 0.0001 {
		return "p<0.0001"
	}
	s := strconv.FormatFloat(p, 'f', 4, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return "p=" + s
}
