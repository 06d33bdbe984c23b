package judge_test

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/ebbflow/ebbflow/rollout/judge"
)

// The package documentation's "Sequential windows: worked example": alpha
// 0.05 spent over 3 windows, an idealised log-normal baseline of 45,000
// requests (median 2 ms, sigma 0.5) and candidates whose slowest 5% are 1.25x,
// 1.17x and 1.22x slower, every window alike; the last two are decided by the
// last-window rule.
func ExampleJudgeWindow() {
	const n = 45_000
	b := judge.BudgetFrom(nil)
	for k := 1; k <= b.MaxWindows; k++ {
		a := judge.WindowAlpha(b.Alpha, k, b.MaxWindows)
		side := math.Sqrt(1 - a)
		bLo, bHi := judge.OrderStatisticRanks(n, 0.99, side)
		cLo, cHi := judge.OrderStatisticRanks(k*n, 0.99, side)
		fmt.Printf("window %d: alpha %.5f, interval %.2f%%, each side %.3f%%; p99 ranks: baseline %d..%d of %d, candidate %d..%d of %d\n",
			k, a, 100*(1-a), 100*side, bLo, bHi, n, cLo, cHi, k*n)
	}

	base := make([]float64, n)
	for i := range base {
		base[i] = 2 * math.Exp(0.5*distuv.UnitNormal.Quantile((float64(i)+0.5)/n))
	}
	for _, factor := range []float64{1.25, 1.17, 1.22} {
		fmt.Printf("slowest 5%% x%g:\n", factor)
		window := make([]float64, n)
		for i := range window {
			window[i] = base[i]
			if i >= n*95/100 {
				window[i] *= factor
			}
		}
		var pooled []float64
		for k := 1; ; k++ {
			pooled = append(pooled, window...)
			r := judge.JudgeWindow(judge.Sample{LatencyMs: base}, judge.Sample{LatencyMs: pooled}, b, k)
			fmt.Printf("%v (measure again: %v): %s\n", r.Verdict, r.MeasureAgain, r.Reason)
			if !r.MeasureAgain {
				break
			}
		}
	}
	// Output:
	// window 1: alpha 0.00185, interval 99.81%, each side 99.907%; p99 ranks: baseline 44478..44619 of 45000, candidate 44478..44619 of 45000
	// window 2: alpha 0.01296, interval 98.70%, each side 99.350%; p99 ranks: baseline 44492..44607 of 45000, candidate 89018..89181 of 90000
	// window 3: alpha 0.03519, interval 96.48%, each side 98.225%; p99 ranks: baseline 44499..44600 of 45000, candidate 133563..133737 of 135000
	// slowest 5% x1.25:
	// VERDICT_INCONCLUSIVE (measure again: true): undecided after window 1/3: p50 +0.0% [-1.9%, +2.0%] <= budget 10%; p99 +25.0% [+17.8%, +32.6%] straddles budget 20%
	// VERDICT_INCONCLUSIVE (measure again: true): undecided after window 2/3: p50 +0.0% [-1.4%, +1.4%] <= budget 10%; p99 +25.0% [+19.9%, +30.2%] straddles budget 20%
	// VERDICT_REGRESSION (measure again: false): p50 +0.0% [-1.1%, +1.1%] <= budget 10%; p99 +25.0% [+20.9%, +29.2%] > budget 20%
	// slowest 5% x1.17:
	// VERDICT_INCONCLUSIVE (measure again: true): undecided after window 1/3: p50 +0.0% [-1.9%, +2.0%] <= budget 10%; p99 +17.0% [+10.3%, +24.1%] straddles budget 20%
	// VERDICT_INCONCLUSIVE (measure again: true): undecided after window 2/3: p50 +0.0% [-1.4%, +1.4%] <= budget 10%; p99 +17.0% [+12.2%, +21.9%] straddles budget 20%
	// VERDICT_PASS (measure again: false): p50 +0.0% [-1.1%, +1.1%] <= budget 10%; p99 +17.0% [+13.1%, +20.9%] straddles budget 20%: PASS at the last window, estimate within budget and upper bound below 2x budget 40%
	// slowest 5% x1.22:
	// VERDICT_INCONCLUSIVE (measure again: true): undecided after window 1/3: p50 +0.0% [-1.9%, +2.0%] <= budget 10%; p99 +22.0% [+15.0%, +29.4%] straddles budget 20%
	// VERDICT_INCONCLUSIVE (measure again: true): undecided after window 2/3: p50 +0.0% [-1.4%, +1.4%] <= budget 10%; p99 +22.0% [+17.0%, +27.1%] straddles budget 20%
	// VERDICT_REGRESSION (measure again: false): p50 +0.0% [-1.1%, +1.1%] <= budget 10%; p99 +22.0% [+18.0%, +26.1%] straddles budget 20%: REGRESSION at the last window, estimate over budget and lower bound above 0
}
