package judge_test

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/ebbflow/ebbflow/rollout/judge"
)

// The package documentation's "Percentile tests: worked example": an
// idealised log-normal baseline of 2,000 requests (median 2 ms, sigma 0.5),
// and candidates whose slowest 5% are 2x, then 1.25x slower.
func ExampleCompareQuantiles() {
	const n = 2000
	base := make([]float64, n)
	for i := range base {
		base[i] = 2 * math.Exp(0.5*distuv.UnitNormal.Quantile((float64(i)+0.5)/n))
	}
	slowestTail := func(factor float64) []float64 {
		out := make([]float64, n)
		for i, v := range base {
			out[i] = v
			if i >= n*95/100 {
				out[i] = v * factor
			}
		}
		return out
	}

	// Each side's interval at sqrt(0.95) = 97.47%: at most 1.27% in each tail
	// of K ~ Binomial(2000, 0.99).
	lo, hi := judge.OrderStatisticRanks(n, 0.99, math.Sqrt(0.95))
	k := distuv.Binomial{N: n, P: 0.99}
	fmt.Printf("p99: ranks %d and %d of %d; P(K < %d) = %.2f%%, P(K >= %d) = %.2f%%\n",
		lo, hi, n, lo, 100*k.CDF(float64(lo-1)), hi, 100*(1-k.CDF(float64(hi-1))))
	for _, factor := range []float64{2, 1.25} {
		cand := slowestTail(factor)
		v := judge.CompareQuantiles(base, cand, 0.99, 20, 0.95)
		fmt.Printf("x%v: baseline %.2f [%.2f, %.2f] ms, candidate %.2f [%.2f, %.2f] ms\n", factor,
			v.BaselineQ, v.BaselineLo, v.BaselineHi, v.CandidateQ, v.CandidateLo, v.CandidateHi)
		fmt.Println("  ", v.Decision, "-", v.Reason)
		r := judge.Judge(judge.Sample{LatencyMs: base}, judge.Sample{LatencyMs: cand}, judge.BudgetFrom(nil))
		fmt.Println("   Judge:", r.Verdict, "-", r.Reason)
	}
	// Output:
	// p99: ranks 1969 and 1990 of 2000; P(K < 1969) = 0.78%, P(K >= 1990) = 1.05%
	// x2: baseline 6.37 [5.86, 7.19] ms, candidate 12.74 [11.72, 14.38] ms
	//    REGRESSION - p99 +100.0% [+63.1%, +145.3%] > budget 20%
	//    Judge: VERDICT_INCONCLUSIVE - p99 +100.0% > budget 20% but not significant (p=0.4465, alpha 0.05)
	// x1.25: baseline 6.37 [5.86, 7.19] ms, candidate 7.96 [7.33, 8.99] ms
	//    UNDECIDED - p99 +25.0% [+1.9%, +53.3%] straddles budget 20%
	//    Judge: VERDICT_INCONCLUSIVE - p99 +25.0% > budget 20% but not significant (p=0.4638, alpha 0.05)
}
