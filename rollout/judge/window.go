// # Sequential windows
//
// A phase whose percentiles cannot be told from their budgets yet is measured
// again: each window adds the probes' full run to the candidate, and
// JudgeWindow decides again on all windows so far against the same baseline.
// Looking repeatedly at growing data and stopping at the first decision would
// add up the looks' errors, so the budget's alpha is spent across the windows
// (alpha spending, Lan and DeMets): window k of K = MaxWindows gets
//
//	alpha_k = s(k/K) - s((k-1)/K),  s(t) = alpha * t^rho,  rho = SpendingPower = 3,
//
// the power family of spending functions (Kim and DeMets), and each
// percentile's interval at window k has the two-sided level 1 - alpha_k. By
// the union bound (Bonferroni over the windows) all of a percentile's
// intervals, at every window, contain its true change together with
// probability at least 1 - (alpha_1 + ... + alpha_K) = 1 - alpha: they are
// repeated confidence intervals (Jennison and Turnbull, chapter 9), valid
// whichever window the phase stops at. The bound needs no assumption about
// how the looks are correlated (they share the baseline and the earlier
// windows): the classical group-sequential boundaries compute that
// correlation to spend alpha less conservatively, which distribution-free
// quantile intervals do not offer.
//
// What is guaranteed, per percentile, over all windows together and for any
// latency distribution: a REGRESSION when the true change is 0 or less, and a
// PASS when it is 2B or more (twice the budget, the change a budget promises
// to catch), each have probability at most alpha; in fact about alpha/2, since
// each needs one end of an interval on the wrong side of the true change.
// Before the last window a REGRESSION needs the lower bound above B and a
// PASS the upper bound at most B, so a verdict there also places the change
// on its side of B at that window's level; at the last window (below) a
// REGRESSION needs the lower bound above 0 and a PASS the upper bound below
// 2B. Between 0 and 2B lies the indifference zone, where the last window's
// point estimate may decide. Each percentile has its own alpha (three
// percentiles: at most 3 alpha together).
//
// rho 3 spends little early (1/27 of alpha at the first of 3 windows, 7/27 at
// the second, 19/27 at the last), close to O'Brien and Fleming's boundaries:
// a first window decides only clear cases, and the last, with the most
// samples, keeps most of alpha. In BenchmarkJudgeOperatingCharacteristics
// (200 trials a scenario) rho 1 (equal parts), 2 and 3 all met the targets
// at the default probe's 45,000 samples a window; with 2,000 samples a window
// identical phases ended undecided after 3 windows in 66%, 58% and 49% of
// trials, and at 45,000 with p999 judged, phases whose slowest 5% were 1.1x
// slower (within budget) in 12%, 7.5% and 6.5%. Hence 3, at the cost of more
// windows on average in that run (1.54 against 1.23 for identical phases).
//
// References: K. K. G. Lan and D. L. DeMets, "Discrete sequential boundaries
// for clinical trials", Biometrika 70(3), 1983; K. Kim and D. L. DeMets,
// "Design and analysis of group sequential tests based on the type I error
// spending rate function", Biometrika 74(1), 1987; C. Jennison and B. W.
// Turnbull, Group Sequential Methods with Applications to Clinical Trials,
// Chapman and Hall/CRC 2000, chapter 7.
//
// # Sequential windows: the last window
//
// An interval that still straddles B at the last window will not be narrowed:
// left open there, the design hands a phase within budget but close to it to
// on_inconclusive, whose default FAIL rolls it back (37% of the phases whose
// slowest 5% were 1.15x slower, p99 +15% against 20%, at 45,000 samples a
// window). Group-sequential designs instead close at their last analysis: the
// boundaries meet there and every outcome is a decision (Jennison and
// Turnbull, chapter 4, one-sided tests of "no effect" against "the effect to
// detect", and chapter 7 for their error spending form). The two hypotheses
// here are no increase (a true change of 0 or less) and the change to catch
// (2B or more); the changes between are an indifference zone in Bechhofer's
// sense, where either verdict is acceptable. B is its midpoint, so a
// straddling percentile at the last window is decided by its point estimate
// against B, as the closing boundary of a symmetric design is, but only where
// its interval keeps the guarantees above:
//
//   - REGRESSION when the estimate is above B and the lower bound above 0:
//     the increase is significant at the window's level;
//   - PASS when the estimate is at most B and the upper bound below 2B: the
//     change is below the one to catch, at the window's level;
//   - otherwise undecided: the interval reaches 0 with the estimate over B, or
//     2B with the estimate within it, too few samples even for the
//     indifference zone; the phase is INCONCLUSIVE and on_inconclusive
//     applies.
//
// The price is inside the zone: a phase within budget may be REGRESSION at the
// last window, and one over budget but under 2B PASS, with a probability of up
// to about one half when the true change is B itself, falling as it moves
// away from B and as samples grow. Under the default on_inconclusive FAIL no
// phase is rolled back that was not before (an undecided one was too); under
// WAIT_FOR_APPROVAL a phase whose estimate is over budget is now rolled back
// instead of waiting for a person, and one whose estimate is within budget
// proceeds. The earlier windows' rules are unchanged, and a percentile judged
// by its point estimate because the baseline cannot bound it (below) has no
// interval: this rule does not apply to it.
//
// References: R. E. Bechhofer, "A single-sample multiple decision procedure
// for ranking means of normal populations with known variances", Ann. Math.
// Statist. 25(1), 1954 (the indifference zone); Jennison and Turnbull, cited
// above, chapters 4, 7 and 9.
//
// # Sequential windows: worked example
//
// The default budget (p50 +10%, p99 +20%, alpha 0.05, 3 windows) and the
// README's example probe, 45,000 requests a window. alpha_k is 0.00185,
// 0.01296 and 0.03519: intervals at 99.81%, 98.70% and 96.48%, each side at
// the square root (99.907%, 99.350%, 98.225%). The baseline's p99 lies
// between its 44,478th and 44,619th smallest of 45,000 at the first window,
// between the 44,499th and 44,600th at the last; the candidate's, pooled, of
// 135,000 at the last window, between the 133,563rd and 133,737th.
//
// An idealised log-normal baseline (median 2 ms, sigma 0.5) and a candidate
// whose slowest 5% are 1.25x slower, p99 +25% against a budget of 20%, every
// window alike:
//
//   - window 1: "undecided after window 1/3: p50 +0.0% [-1.9%, +2.0%] <=
//     budget 10%; p99 +25.0% [+17.8%, +32.6%] straddles budget 20%": measure
//     again;
//   - window 2: p99 +25.0% [+19.9%, +30.2%], still undecided;
//   - window 3: "p50 +0.0% [-1.1%, +1.1%] <= budget 10%; p99 +25.0%
//     [+20.9%, +29.2%] > budget 20%": REGRESSION.
//
// One look with all of alpha (95%, CompareQuantiles' default) would say
// REGRESSION at the first window, p99 [+20.1%, +30.1%], but a phase it left
// undecided would have no second chance: spending buys the later windows with
// a stricter first one.
//
// Closer to the budget, the intervals still straddle it at the last window
// and the last-window rule decides:
//
//   - slowest 5% 1.17x slower: p99 +17.0% [+10.3%, +24.1%], [+12.2%, +21.9%],
//     then "p99 +17.0% [+13.1%, +20.9%] straddles budget 20%: PASS at the last
//     window, estimate within budget and upper bound below 2x budget 40%";
//   - 1.22x slower: [+15.0%, +29.4%], [+17.0%, +27.1%], then "p99 +22.0%
//     [+18.0%, +26.1%] straddles budget 20%: REGRESSION at the last window,
//     estimate over budget and lower bound above 0".
//
// (ExampleJudgeWindow prints the figures above, so go test checks them.)
//
// # Defaults
//
// Alpha 0.05 per percentile over all windows, 3 windows, p50 +10%, p99 +20%,
// p999 +50% (judged from 75,000 samples a side). From the operating
// characteristics at the default probe (45,000 samples a window, 1,000 trials
// a scenario, see BenchmarkJudgeOperatingCharacteristics):
//
//   - identical phases, quiet or noisy (sigma 0.8): PASS in 100%, after one
//     window;
//   - a true increase of twice a budget, uniform or in the slowest 5% only
//     (p99 +40%): REGRESSION in 100% (Judge: 100% and 14.3%); the slowest 5%
//     2x slower: 100% (Judge 12.7%);
//   - within budget but close to it, the last-window rule decides what was
//     left undecided before (and rolled back by the default FAIL): the
//     slowest 5% 1.15x slower (p99 +15% against 20%) PASS in 100% (36.8%
//     undecided without the rule; the Flagger-style threshold rolls back
//     0.1%), uniform x1.075 (p50 +7.5% against 10%) and uniform x1.15 with a
//     p50 budget of 20% PASS in 100% (the threshold: 0% and 0.4%); within
//     budget at 45,000 samples or more a window, no phase is rolled back;
//   - exactly at a budget the estimate decides, about half each way: 52.2%
//     REGRESSION at p50's, 49.2% at p99's (the threshold: 45.3% at p99's);
//   - with 2,000 samples a window the intervals stay wide: identical phases
//     PASS in 99.7% (0.3% undecided; the threshold rolls back 0.6%), noisy
//     ones in 84.5% (15.5% undecided: the upper bound does not get below 2B;
//     the threshold 3.1%), the slowest 5% 1.15x slower in 56.6% (7.7%
//     REGRESSION, 35.7% undecided; the threshold 27.0%), while twice the
//     budget, quiet or noisy, is REGRESSION in 100% (the threshold 98.9% and
//     94.3%).
//
// Summed over the benchmark's scenarios, phases within budget are rolled
// back (REGRESSION, or INCONCLUSIVE under FAIL) in 4.55% of trials against
// the threshold's 2.40%, all of the difference in the 2,000-sample
// scenarios, and those at twice a budget or more are caught in 90.0% against
// 74.2% (the threshold never above JudgeWindow in any of them; a p999-only
// regression at 45,000 samples a window, where p999 is not judged, is missed
// by both).
//
// So a budget means, with the defaults and 45,000 samples a window: a true
// increase of 2B is caught in at least 95% of phases, identical distributions
// are rolled back in at most 1%, and a phase within budget is no longer
// rolled back for being close to it. Probes should give at least that many
// samples; where an undecided phase must not be rolled back, on_inconclusive
// WAIT_FOR_APPROVAL hands it to a person.
package judge

import (
	"fmt"
	"math"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// SpendingPower is rho of the alpha-spending function alpha*(k/K)^rho that
// WindowAlpha spends a budget's alpha with over its K windows.
const SpendingPower = 3

// WindowAlpha is the part of alpha that window k of maxWindows spends: with
// the power-family spending function s(t) = alpha*t^SpendingPower (Lan and
// DeMets 1983; Kim and DeMets 1987), s(k/K) - s((k-1)/K). The parts add up to
// alpha over the K windows. It is 0 for arguments outside 0 < alpha < 1,
// 1 <= k <= maxWindows.
func WindowAlpha(alpha float64, window, maxWindows int) float64 {
	if !(alpha > 0 && alpha < 1) || maxWindows < 1 || window < 1 || window > maxWindows {
		return 0
	}
	spent := func(k int) float64 {
		return alpha * math.Pow(float64(k)/float64(maxWindows), SpendingPower)
	}
	if window == maxWindows {
		// Exactly what is left, whatever the rounding.
		return alpha - spent(window-1)
	}
	return spent(window) - spent(window-1)
}

// JudgeWindow is the v2 judge: it decides whether candidate regressed against
// baseline under budget b after measurement window window (1-based) of
// b.MaxWindows, candidate holding all the windows so far pooled, by the rules
// in the package documentation. The inputs are not modified; the result never
// panics on bad input but says what is wrong in an INCONCLUSIVE Reason. Time
// is O(n log n) in the sample counts.
func JudgeWindow(baseline, candidate Sample, b Budget, window int) Result {
	r := Result{PValue: 1, Window: window, MaxWindows: max(b.MaxWindows, 1)}

	bs, bBad := checkedSorted("baseline", baseline.LatencyMs)
	cs, cBad := checkedSorted("candidate", candidate.LatencyMs)
	if len(bs) > 0 {
		r.BaselineP50, r.BaselineP99, r.BaselineP999 = Percentile(bs, 0.50), Percentile(bs, 0.99), Percentile(bs, 0.999)
	}
	if len(cs) > 0 {
		r.CandidateP50, r.CandidateP99, r.CandidateP999 = Percentile(cs, 0.50), Percentile(cs, 0.99), Percentile(cs, 0.999)
	}
	if len(bs) > 0 && len(cs) > 0 {
		r.P50DeltaPct = deltaPct(r.BaselineP50, r.CandidateP50)
		r.P99DeltaPct = deltaPct(r.BaselineP99, r.CandidateP99)
		r.P999DeltaPct = deltaPct(r.BaselineP999, r.CandidateP999)
		_, r.PValue = mannWhitneySorted(bs, cs)
	}

	thrRegression, thrDoubt, thrMeasured := judgeThroughput(baseline, candidate, b, &r)
	var (
		reasons   []string // the percentiles' reasons, or why they were not tested
		regressed bool     // a percentile's interval is above its budget
		undecided bool     // another window of the candidate may decide
		minN      = max(b.MinSamples, 1)
	)
	switch {
	case budgetProblem(b) != "":
		reasons = append(reasons, "budget: "+budgetProblem(b))
	case window < 1 || window > r.MaxWindows:
		reasons = append(reasons, fmt.Sprintf("window %d outside 1..%d (max_windows)", window, r.MaxWindows))
	case bBad != "":
		reasons = append(reasons, bBad)
	case cBad != "":
		reasons = append(reasons, cBad)
	case len(bs) == 0:
		reasons = append(reasons, "baseline has no latency samples")
	case len(bs) < minN:
		reasons = append(reasons, fmt.Sprintf("baseline has too few latency samples: %d (need %d)", len(bs), minN))
	case len(cs) == 0:
		reasons = append(reasons, "candidate has no latency samples")
		undecided = true
	case len(cs) < minN:
		reasons = append(reasons, fmt.Sprintf("candidate has too few latency samples: %d (need %d)", len(cs), minN))
		undecided = true
	default:
		alphaK := WindowAlpha(b.Alpha, window, r.MaxWindows)
		r.Percentiles = percentileVerdicts(bs, cs, b, 1-alphaK)
		// A baseline too small to bound a percentile even at the last window's level never
		// will be (the baseline does not grow): that percentile is judged as Judge does.
		lastSide := sideConfidence(1 - WindowAlpha(b.Alpha, r.MaxWindows, r.MaxWindows))
		for i, v := range r.Percentiles {
			switch need := MinSamplesToBound(v.Quantile, lastSide); {
			case len(bs) < need:
				r.Percentiles[i] = pointVerdict(v, need, r.PValue, alphaK)
			case window == r.MaxWindows:
				r.Percentiles[i] = lastWindowVerdict(v)
			}
		}
		for _, v := range r.Percentiles {
			reasons = append(reasons, v.Reason)
			regressed = regressed || v.Decision == DecisionRegression
			undecided = undecided || v.Decision == DecisionUndecided
		}
	}
	switch {
	case thrRegression != "":
		reasons = append(reasons, thrRegression)
	case thrMeasured:
		reasons = append(reasons, fmt.Sprintf("throughput %+.1f%% (max -%g%%)", r.ThroughputDeltaPct, b.MaxThroughputDecreasePct))
	case thrDoubt != "":
		reasons = append(reasons, thrDoubt)
	}

	switch {
	case regressed || thrRegression != "":
		return r.with(ebbflowv1.Verdict_VERDICT_REGRESSION, reasons)
	case r.Percentiles != nil && !undecided && thrDoubt == "":
		return r.with(ebbflowv1.Verdict_VERDICT_PASS, reasons)
	}
	if undecided {
		r.MeasureAgain = r.Window < r.MaxWindows
		last := ", the last"
		if r.MeasureAgain {
			last = ""
		}
		reasons[0] = fmt.Sprintf("undecided after window %d/%d%s: %s", r.Window, r.MaxWindows, last, reasons[0])
	}
	return r.with(ebbflowv1.Verdict_VERDICT_INCONCLUSIVE, reasons)
}

// percentileVerdicts tests p50, p99 and, when both sides have
// DefaultP999MinTailSamples samples beyond it, p999, each against its budget
// with an interval of the given two-sided confidence.
func percentileVerdicts(bs, cs []float64, b Budget, confidence float64) []QuantileVerdict {
	out := []QuantileVerdict{
		compareSorted(bs, cs, 0.50, b.MaxP50IncreasePct, confidence),
		compareSorted(bs, cs, 0.99, b.MaxP99IncreasePct, confidence),
	}
	if p999Judged(len(bs), len(cs), DefaultP999MinTailSamples) {
		out = append(out, compareSorted(bs, cs, 0.999, b.MaxP999IncreasePct, confidence))
	}
	return out
}

// pointVerdict re-decides v, whose baseline has fewer than need samples and so
// no interval of the percentile at any window, by the point estimate and the U
// test's p-value, as Judge does (rules 6 to 8): over budget and p < alpha is
// REGRESSION, over budget otherwise UNDECIDED, within budget PASS. The interval
// is reported unbounded ([-100%, +Inf]) and the reason says why, e.g. "p99
// +3.1% <= budget 20% (point estimate: 300 baseline samples cannot bound p99,
// 471 needed)".
func pointVerdict(v QuantileVerdict, need int, pValue, alpha float64) QuantileVerdict {
	v.LoPct, v.HiPct = -100, math.Inf(1)
	why := fmt.Sprintf("point estimate: %d baseline samples cannot bound %s, %d needed", v.BaselineN, v.Name, need)
	switch {
	case v.DeltaPct <= v.BudgetPct:
		v.Decision = DecisionPass
		v.Reason = fmt.Sprintf("%s %s <= budget %g%% (%s)", v.Name, formatPct(v.DeltaPct), v.BudgetPct, why)
	case pValue < alpha:
		v.Decision = DecisionRegression
		v.Reason = fmt.Sprintf("%s %s > budget %g%% (%s; U test %s)", v.Name, formatPct(v.DeltaPct), v.BudgetPct, why, formatP(pValue))
	default:
		v.Decision = DecisionUndecided
		v.Reason = fmt.Sprintf("%s %s > budget %g%% but not significant (%s; U test %s, alpha %.3g)", v.Name, formatPct(v.DeltaPct), v.BudgetPct, why, formatP(pValue), alpha)
	}
	return v
}

// lastWindowVerdict closes the design at the last window: a percentile whose
// interval still straddles its budget B is REGRESSION when the point estimate
// is above B and the lower bound above 0 (the increase is significant at the
// window's level), PASS when the estimate is at most B and the upper bound
// below 2B (the change the budget promises to catch), and stays undecided
// otherwise; see "Sequential windows: the last window". Other verdicts are
// returned as they are. The reason keeps the interval and names the rule, e.g.
// "p99 +17.0% [+13.1%, +21.0%] straddles budget 20%: PASS at the last window,
// estimate within budget and upper bound below 2x budget 40%".
func lastWindowVerdict(v QuantileVerdict) QuantileVerdict {
	if v.Decision != DecisionUndecided {
		return v
	}
	b, power := v.BudgetPct, 2*v.BudgetPct
	interval := fmt.Sprintf("%s %s [%s, %s] straddles budget %g%%", v.Name, formatPct(v.DeltaPct), formatPct(v.LoPct), formatPct(v.HiPct), b)
	switch {
	case v.DeltaPct > b && v.LoPct > 0:
		v.Decision, v.LastWindowRule = DecisionRegression, true
		v.Reason = interval + ": REGRESSION at the last window, estimate over budget and lower bound above 0"
	case v.DeltaPct <= b && v.HiPct < power:
		v.Decision, v.LastWindowRule = DecisionPass, true
		v.Reason = fmt.Sprintf("%s: PASS at the last window, estimate within budget and upper bound below 2x budget %g%%", interval, power)
	case v.DeltaPct > b:
		v.Reason += ": undecided at the last window, estimate over budget but lower bound not above 0"
	default:
		v.Reason += fmt.Sprintf(": undecided at the last window, estimate within budget but upper bound not below 2x budget %g%%", power)
	}
	return v
}

// p999Judged reports whether both sides have at least minTail samples beyond
// p999: n*(1-0.999) >= minTail, in integers n/1000 >= minTail.
func p999Judged(nb, nc, minTail int) bool { return min(nb, nc)/1000 >= minTail }

// budgetProblem returns why b cannot be used by JudgeWindow, or "".
func budgetProblem(b Budget) string {
	if !(b.Alpha > 0 && b.Alpha < 1) {
		return fmt.Sprintf("alpha %v outside (0, 1)", b.Alpha)
	}
	for _, p := range []struct {
		name   string
		budget float64
	}{{"p50", b.MaxP50IncreasePct}, {"p99", b.MaxP99IncreasePct}, {"p999", b.MaxP999IncreasePct}} {
		if msg := checkQuantileArgs(0.5, p.budget, 0.5); msg != "" {
			return p.name + " " + msg
		}
	}
	return ""
}

// Verdict maps a percentile's decision to the API's verdict: UNDECIDED and
// INVALID are INCONCLUSIVE.
func (d Decision) Verdict() ebbflowv1.Verdict {
	switch d {
	case DecisionPass:
		return ebbflowv1.Verdict_VERDICT_PASS
	case DecisionRegression:
		return ebbflowv1.Verdict_VERDICT_REGRESSION
	}
	return ebbflowv1.Verdict_VERDICT_INCONCLUSIVE
}

// Proto is the API's form of the verdict. An unbounded interval keeps its
// infinite bound (+Inf upper, JSON "Infinity"); the figures of an INVALID
// verdict are NaN.
func (q QuantileVerdict) Proto() *ebbflowv1.PercentileVerdict {
	return &ebbflowv1.PercentileVerdict{
		Name:           q.Name,
		Quantile:       q.Quantile,
		Verdict:        q.Decision.Verdict(),
		DeltaPercent:   q.DeltaPct,
		LowerPercent:   q.LoPct,
		UpperPercent:   q.HiPct,
		BudgetPercent:  q.BudgetPct,
		Confidence:     q.Confidence,
		BaselineMs:     q.BaselineQ,
		CandidateMs:    q.CandidateQ,
		BaselineCount:  int64(q.BaselineN),
		CandidateCount: int64(q.CandidateN),
	}
}

// PercentilesProto converts verdicts with Proto, in order; nil for none.
func PercentilesProto(vs []QuantileVerdict) []*ebbflowv1.PercentileVerdict {
	if len(vs) == 0 {
		return nil
	}
	out := make([]*ebbflowv1.PercentileVerdict, len(vs))
	for i, v := range vs {
		out[i] = v.Proto()
	}
	return out
}
