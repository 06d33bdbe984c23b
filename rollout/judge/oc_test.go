package judge_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ebbflow/ebbflow/rollout/judge"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// ocWindowSamples is the latency samples of one measurement window with the
// README's example probe: HTTP at 500 requests/s for 30 s, over the probe's
// 3 windows. The baseline is one such window; each candidate window another.
const ocWindowSamples = 500 * 30 * 3

// ocModel draws request latencies: a log-normal body (median 2 ms, log
// standard deviation sigma) in which 5% of requests are slowed by a
// Pareto(2.5) factor (>= 1), so the tail beyond p95 is heavy (polynomial).
type ocModel struct{ sigma float64 }

func (m ocModel) draw(rng *rand.Rand) float64 {
	x := 2 * math.Exp(m.sigma*rng.NormFloat64())
	if rng.Float64() < 0.05 {
		x *= math.Pow(1-rng.Float64(), -1/2.5)
	}
	return x
}

var (
	ocBody  = ocModel{sigma: 0.35}
	ocNoisy = ocModel{sigma: 0.8}
)

// ocScenario is a candidate distribution: the model's draws passed through
// change (nil: unchanged), n samples a window, judged with the default budget
// or, when p50Budget is set, with that p50 budget.
type ocScenario struct {
	name      string
	model     ocModel
	n         int
	change    func(rng *rand.Rand, x float64) float64
	truth     string  // what a judge should say: see ocTruths
	p50Budget float64 // 0: the default budget's
}

// ocTruths explains the scenarios' truth column. The true changes of p50, p99
// and p999 follow from the change functions (checked with 2,000,000 draws a
// side): e.g. "bimodal: random 10% x3" moves p50 +5%, p99 +94% and p999 +51%.
const ocTruths = "truth: pass = every budgeted percentile within its budget, edge = one exactly at its budget,\n" +
	"regr = one over its budget, 2B = one at least twice its budget (the change a budget promises to catch).\n"

// ocQuantile is the model's q-quantile, from 1,000,000 seeded draws.
func ocQuantile(m ocModel, q float64) float64 {
	rng := rand.New(rand.NewPCG(0xb0d7, 95))
	ref := make([]float64, 1_000_000)
	for i := range ref {
		ref[i] = m.draw(rng)
	}
	slices.Sort(ref)
	return judge.Percentile(ref, q)
}

func ocScenarios() []ocScenario {
	const n = ocWindowSamples
	p95, p995 := ocQuantile(ocBody, 0.95), ocQuantile(ocBody, 0.995)
	uniform := func(f float64) func(*rand.Rand, float64) float64 {
		return func(_ *rand.Rand, x float64) float64 { return x * f }
	}
	above := func(cut, f float64) func(*rand.Rand, float64) float64 {
		return func(_ *rand.Rand, x float64) float64 {
			if x > cut {
				return x * f
			}
			return x
		}
	}
	return []ocScenario{
		{"identical", ocBody, n, nil, "pass", 0},
		{"identical, noisy (sigma 0.8)", ocNoisy, n, nil, "pass", 0},
		{"uniform x1.03", ocBody, n, uniform(1.03), "pass", 0},
		{"uniform x1.075 (3/4 p50 budget)", ocBody, n, uniform(1.075), "pass", 0},
		{"uniform x1.15, p50 budget 20%", ocBody, n, uniform(1.15), "pass", 20},
		{"uniform x1.10 (= p50 budget)", ocBody, n, uniform(1.10), "edge", 0},
		{"uniform x1.20 (= p99, 2x p50 bud.)", ocBody, n, uniform(1.20), "2B", 0},
		{"uniform x1.40 (2x p99 budget)", ocBody, n, uniform(1.40), "2B", 0},
		{"slowest 5% x1.1", ocBody, n, above(p95, 1.1), "pass", 0},
		{"slowest 5% x1.15", ocBody, n, above(p95, 1.15), "pass", 0},
		{"slowest 5% x1.2 (= p99 budget)", ocBody, n, above(p95, 1.2), "edge", 0},
		{"slowest 5% x1.3", ocBody, n, above(p95, 1.3), "regr", 0},
		{"slowest 5% x1.4 (2x p99 budget)", ocBody, n, above(p95, 1.4), "2B", 0},
		{"slowest 5% x1.6", ocBody, n, above(p95, 1.6), "2B", 0},
		{"slowest 5% x2", ocBody, n, above(p95, 2), "2B", 0},
		{"slowest 0.5% x2 (p999 only)", ocBody, n, above(p995, 2), "2B", 0},
		{"big probe: identical", ocBody, 2 * n, nil, "pass", 0},
		{"big probe: slowest 5% x1.1", ocBody, 2 * n, above(p95, 1.1), "pass", 0},
		{"big probe: slowest 0.5% x2", ocBody, 2 * n, above(p995, 2), "2B", 0},
		{"bimodal: random 10% x3", ocBody, n, func(rng *rand.Rand, x float64) float64 {
			if rng.Float64() < 0.10 {
				return 3 * x
			}
			return x
		}, "2B", 0},
		{"few samples: identical", ocBody, 2000, nil, "pass", 0},
		{"few samples: identical, noisy", ocNoisy, 2000, nil, "pass", 0},
		{"few samples: slowest 5% x1.15", ocBody, 2000, above(p95, 1.15), "pass", 0},
		{"few samples: uniform x1.4", ocBody, 2000, uniform(1.4), "2B", 0},
		{"few samples: noisy, uniform x1.4", ocNoisy, 2000, uniform(1.4), "2B", 0},
		{"improvement: uniform x0.8", ocBody, n, uniform(0.8), "pass", 0},
	}
}

// ocOutcome is one trial's verdicts.
type ocOutcome struct {
	seq     ebbflowv1.Verdict // JudgeWindow after its windows
	windows int               // windows JudgeWindow used
	v1      ebbflowv1.Verdict // Judge on the first window
	flagger ebbflowv1.Verdict // fixed threshold on the first window
}

// ocTrial runs one seeded trial of a scenario: a baseline window, then
// candidate windows judged by JudgeWindow until it stops asking for another.
func ocTrial(s ocScenario, seed1, seed2 uint64, budget judge.Budget) ocOutcome {
	rng := rand.New(rand.NewPCG(seed1, seed2))
	window := func() []float64 {
		v := make([]float64, s.n)
		for i := range v {
			v[i] = s.model.draw(rng)
		}
		return v
	}
	bs := window()
	slices.Sort(bs)
	candidateWindow := func() []float64 {
		v := make([]float64, s.n)
		for i := range v {
			v[i] = s.model.draw(rng)
			if s.change != nil {
				v[i] = s.change(rng, v[i])
			}
		}
		slices.Sort(v)
		return v
	}
	pooled := candidateWindow()
	var out ocOutcome
	out.v1 = judge.Judge(lat(bs), lat(pooled), budget).Verdict
	out.flagger = ebbflowv1.Verdict_VERDICT_PASS
	if judge.Percentile(pooled, 0.99) > judge.Percentile(bs, 0.99)*(1+budget.MaxP99IncreasePct/100) {
		out.flagger = ebbflowv1.Verdict_VERDICT_REGRESSION
	}
	for w := 1; ; w++ {
		r := judge.JudgeWindow(lat(bs), lat(pooled), budget, w)
		out.seq, out.windows = r.Verdict, w
		if !r.MeasureAgain {
			return out
		}
		pooled = mergeSorted(pooled, candidateWindow())
	}
}

// mergeSorted merges two ascending slices.
func mergeSorted(a, b []float64) []float64 {
	out := make([]float64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i] <= b[j] {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return append(append(out, a[i:]...), b[j:]...)
}

// ocTrials is the number of seeded trials per scenario: 1,000, or
// EBBFLOW_OC_TRIALS.
func ocTrials(b *testing.B) int {
	if s := os.Getenv("EBBFLOW_OC_TRIALS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("EBBFLOW_OC_TRIALS=%q: want a positive integer", s)
		}
		return n
	}
	return 1000
}

// ocCounts tallies a scenario's outcomes.
type ocCounts struct {
	seq, v1, flagger [3]int // PASS, REGRESSION, INCONCLUSIVE
	windows          int    // JudgeWindow's windows, summed
}

func verdictIndex(v ebbflowv1.Verdict) int {
	switch v {
	case ebbflowv1.Verdict_VERDICT_PASS:
		return 0
	case ebbflowv1.Verdict_VERDICT_REGRESSION:
		return 1
	}
	return 2
}

// ocRun runs trials of a scenario on all cores; each trial's seed depends on
// the scenario and the trial only, so the counts do not depend on scheduling.
func ocRun(si int, s ocScenario, trials int, budget judge.Budget) ocCounts {
	var (
		next  atomic.Int64
		mu    sync.Mutex
		total ocCounts
		wg    sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c ocCounts
			for {
				tr := int(next.Add(1)) - 1
				if tr >= trials {
					break
				}
				o := ocTrial(s, uint64(si)+1, uint64(tr), budget)
				c.seq[verdictIndex(o.seq)]++
				c.v1[verdictIndex(o.v1)]++
				c.flagger[verdictIndex(o.flagger)]++
				c.windows += o.windows
			}
			mu.Lock()
			defer mu.Unlock()
			for i := range 3 {
				total.seq[i] += c.seq[i]
				total.v1[i] += c.v1[i]
				total.flagger[i] += c.flagger[i]
			}
			total.windows += c.windows
		}()
	}
	wg.Wait()
	return total
}

var ocOnce sync.Once

// ocTally sums, for one judge, the rolled-back share of within-budget phases
// and the caught share of phases at 2B or more over the scenarios.
type ocTally struct {
	rolledBack, pass      int // rolled back (REGRESSION or INCONCLUSIVE) of pass trials
	caught, twoB          int // REGRESSION of 2B trials
	worstBack, worstCatch float64
	worstBackS, worstCatS string
}

func (t *ocTally) add(s ocScenario, c [3]int, trials int) {
	switch s.truth {
	case "pass":
		back := c[1] + c[2]
		t.rolledBack, t.pass = t.rolledBack+back, t.pass+trials
		if r := 100 * float64(back) / float64(trials); t.worstBackS == "" || r > t.worstBack {
			t.worstBack, t.worstBackS = r, s.name
		}
	case "2B":
		t.caught, t.twoB = t.caught+c[1], t.twoB+trials
		if r := 100 * float64(c[1]) / float64(trials); t.worstCatS == "" || r < t.worstCatch {
			t.worstCatch, t.worstCatS = r, s.name
		}
	}
}

func (t *ocTally) String() string {
	return fmt.Sprintf("false rollbacks %5.2f%% (worst %5.1f%%, %s); power %5.2f%% (worst %5.1f%%, %s)",
		100*float64(t.rolledBack)/float64(max(t.pass, 1)), t.worstBack, t.worstBackS,
		100*float64(t.caught)/float64(max(t.twoB, 1)), t.worstCatch, t.worstCatS)
}

// BenchmarkJudgeOperatingCharacteristics prints, for each scenario, the share
// of seeded trials each judge calls PASS, REGRESSION or INCONCLUSIVE, with the
// default budget (p50 +10%, p99 +20%, p999 +50%, alpha 0.05, 3 windows) unless
// the scenario sets its p50 budget: JudgeWindow run sequentially (a new
// candidate window drawn and pooled while it asks for one; INCONCLUSIVE is
// undecided after the cap), Judge (the U test) and a Flagger-style fixed
// threshold (REGRESSION when the candidate's p99 is above the baseline's times
// 1 + the p99 budget), the last two on the first window. Then, per judge, the
// false rollbacks (REGRESSION or INCONCLUSIVE, which the default
// on_inconclusive FAIL rolls back, over all trials of the scenarios within
// budget) and the power (REGRESSION over all trials of the scenarios at 2B or
// more), each with its worst scenario. The table is computed and printed once
// per process, whatever b.N; its ns/op means nothing. Trials run on all cores.
//
//	go test -run '^$' -bench BenchmarkJudgeOperatingCharacteristics -benchtime 1x ./rollout/judge/
func BenchmarkJudgeOperatingCharacteristics(b *testing.B) {
	ocOnce.Do(func() {
		trials := ocTrials(b)
		def := judge.BudgetFrom(nil)
		var out strings.Builder
		fmt.Fprintf(&out, "Operating characteristics: %d seeded trials per scenario; %% PASS / REGRESSION / INCONCLUSIVE.\n", trials)
		fmt.Fprintf(&out, "Default budget: p50 +%g%%, p99 +%g%%, p999 +%g%%, alpha %g, %d windows; samples a window: %d (HTTP 500/s x 30 s x 3),\n",
			def.MaxP50IncreasePct, def.MaxP99IncreasePct, def.MaxP999IncreasePct, def.Alpha, def.MaxWindows, ocWindowSamples)
		fmt.Fprintf(&out, "baseline one window. Latency: log-normal body (median 2 ms, sigma 0.35 or 0.8), 5%% of requests x Pareto(2.5).\n")
		fmt.Fprintf(&out, "JudgeWindow: sequential, I = undecided after the cap, win = mean windows measured. Judge and Flagger: first window.\n")
		fmt.Fprintf(&out, "INCONCLUSIVE is rolled back under the default on_inconclusive (FAIL).\n")
		fmt.Fprintf(&out, "%s\n", ocTruths)
		fmt.Fprintf(&out, "%-35s %6s %5s | %-23s | %-17s | %-11s\n", "scenario", "n/win", "truth", "JudgeWindow (seq.)", "Judge (U test)", "Flagger p99")
		fmt.Fprintf(&out, "%-35s %6s %5s | %5s %5s %5s %5s | %5s %5s %5s | %5s %5s\n", "", "", "", "P", "R", "I", "win", "P", "R", "I", "P", "R")
		var seq, v1, flagger ocTally
		for si, s := range ocScenarios() {
			budget := def
			if s.p50Budget != 0 {
				budget.MaxP50IncreasePct = s.p50Budget
			}
			c := ocRun(si, s, trials, budget)
			pct := func(k int) float64 { return 100 * float64(k) / float64(trials) }
			fmt.Fprintf(&out, "%-35s %6d %5s | %5.1f %5.1f %5.1f %5.2f | %5.1f %5.1f %5.1f | %5.1f %5.1f\n", s.name, s.n, s.truth,
				pct(c.seq[0]), pct(c.seq[1]), pct(c.seq[2]), float64(c.windows)/float64(trials),
				pct(c.v1[0]), pct(c.v1[1]), pct(c.v1[2]), pct(c.flagger[0]), pct(c.flagger[1]))
			seq.add(s, c.seq, trials)
			v1.add(s, c.v1, trials)
			flagger.add(s, c.flagger, trials)
		}
		fmt.Fprintf(&out, "\nFalse rollbacks: REGRESSION + INCONCLUSIVE (on_inconclusive FAIL) over the pass scenarios' trials;\n")
		fmt.Fprintf(&out, "power: REGRESSION over the 2B scenarios' trials.\n")
		fmt.Fprintf(&out, "  JudgeWindow: %s\n", &seq)
		fmt.Fprintf(&out, "  Judge:       %s\n", &v1)
		fmt.Fprintf(&out, "  Flagger p99: %s\n", &flagger)
		fmt.Print(out.String())
	})
}
