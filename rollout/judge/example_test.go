package judge_test

import (
	"fmt"

	"github.com/ebbflow/ebbflow/rollout/judge"
)

// The package comment's worked example: 100 requests a side; the candidate is 30% slower on
// every request, then only its slowest 3 requests are 2x slower.
func Example() {
	base := make([]float64, 100)
	for i := range base {
		base[i] = 10 + float64(i)/10 // 10.0 .. 19.9 ms
	}
	b := judge.Budget{MaxP50IncreasePct: 10, MaxP99IncreasePct: 20, Alpha: 0.05, MinSamples: 30}

	slower := make([]float64, len(base))
	for i, v := range base {
		slower[i] = v * 1.3
	}
	r := judge.Judge(judge.Sample{LatencyMs: base}, judge.Sample{LatencyMs: slower}, b)
	fmt.Println(r.Verdict, "-", r.Reason)

	tail := append([]float64(nil), base...)
	for i := 97; i < 100; i++ {
		tail[i] *= 2
	}
	r = judge.Judge(judge.Sample{LatencyMs: base}, judge.Sample{LatencyMs: tail}, b)
	fmt.Println(r.Verdict, "-", r.Reason)
	// Output:
	// VERDICT_REGRESSION - p50 +30.0% > budget 10% (p<0.0001); p99 +30.0% > budget 20% (p<0.0001)
	// VERDICT_INCONCLUSIVE - p99 +100.0% > budget 20% but not significant (p=0.4961, alpha 0.05)
}
