package judge_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ebbflow/ebbflow/rollout/judge"
)

// upperNormalTail is P(Z >= z) for a standard normal Z, written independently
// of the package's use of gonum.
func upperNormalTail(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }

func seq(from, to float64) []float64 {
	var out []float64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

func TestMannWhitneyUKnownValues(t *testing.T) {
	tests := []struct {
		name  string
		x, y  []float64
		wantU float64
		wantP float64
	}{
		{
			// Pooled and sorted: 1x 2x 2x 2y 3x 3y 4y. Ranks: 1; the three 2s
			// share (2+3+4)/3 = 3; the two 3s share (5+6)/2 = 5.5; 4 is 7.
			// R_y = 3 + 5.5 + 7 = 15.5, U = R_y - 3*4/2 = 9.5 (pairs: y=2 beats
			// 1 and ties two 2s: 2; y=3: 3.5; y=4: 4). Mean 6. Ties: t=3 and
			// t=2, sum(t^3-t) = 24+6 = 30, N = 7: var = 12/12*(8 - 30/42)
			// = 7.2857142857, z = (9.5-6-0.5)/sqrt(var) = 1.1114378605.
			name: "hand-computed with ties", x: []float64{1, 2, 2, 3}, y: []float64{2, 3, 4},
			wantU: 9.5, wantP: upperNormalTail(3 / math.Sqrt(8-30.0/42)),
		},
		{
			// 1..5 only in x, 6..10 in both (five ties of 2), 11..15 only in y.
			// R_y = (6.5+8.5+10.5+12.5+14.5) + (16+...+20) = 142.5, U = 87.5.
			// var = 100/12*(21 - 30/380) = 174.3421, z = 37/sqrt(var) = 2.8022094.
			// SciPy: mannwhitneyu(y, x, alternative="greater") gives 0.0025377.
			name: "x=1..10 y=6..15", x: seq(1, 10), y: seq(6, 15),
			wantU: 87.5, wantP: upperNormalTail(37 / math.Sqrt(100.0/12*(21-30.0/380))),
		},
		{
			name: "x=6..15 y=1..10 (y smaller)", x: seq(6, 15), y: seq(1, 10),
			wantU: 12.5, wantP: upperNormalTail(-38 / math.Sqrt(100.0/12*(21-30.0/380))),
		},
		{
			// No ties: U = 100 (every y above every x), var = 100/12*21 = 175.
			name: "disjoint", x: seq(1, 10), y: seq(11, 20),
			wantU: 100, wantP: upperNormalTail(49.5 / math.Sqrt(175)),
		},
		{name: "all tied", x: []float64{5, 5, 5}, y: []float64{5, 5}, wantU: 3, wantP: 1},
		{name: "empty x", x: nil, y: []float64{1, 2}, wantU: 0, wantP: 1},
		{name: "empty y", x: []float64{1, 2}, y: nil, wantU: 0, wantP: 1},
		{
			name: "NaN and Inf ignored", x: append(seq(1, 10), math.NaN(), math.Inf(1)),
			y: append(seq(6, 15), math.Inf(-1)), wantU: 87.5,
			wantP: upperNormalTail(37 / math.Sqrt(100.0/12*(21-30.0/380))),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, p := judge.MannWhitneyU(tt.x, tt.y)
			if u != tt.wantU {
				t.Errorf("U = %v, want %v", u, tt.wantU)
			}
			if math.Abs(p-tt.wantP) > 1e-12 {
				t.Errorf("p = %.12g, want %.12g", p, tt.wantP)
			}
		})
	}
	// The literal figures, so a wrong formula in both places cannot pass.
	if _, p := judge.MannWhitneyU(seq(1, 10), seq(6, 15)); math.Abs(p-0.0025376962) > 1e-9 {
		t.Errorf("x=1..10 y=6..15: p = %.10f, want 0.0025376962", p)
	}
	if _, p := judge.MannWhitneyU([]float64{1, 2, 2, 3}, []float64{2, 3, 4}); math.Abs(p-0.1331899617) > 1e-9 {
		t.Errorf("hand example: p = %.10f, want 0.1331899617", p)
	}
}

// U must equal the pair count with ties as halves, and U_xy + U_yx = n1*n2.
func TestMannWhitneyUMatchesPairCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []struct{ n1, n2 int }{{1, 1}, {3, 7}, {40, 25}, {200, 300}} {
		x := make([]float64, size.n1)
		y := make([]float64, size.n2)
		for i := range x {
			x[i] = math.Round(rng.NormFloat64() * 3) // coarse: many ties
		}
		for i := range y {
			y[i] = math.Round(rng.NormFloat64()*3 + 1)
		}
		var pairs float64
		for _, a := range x {
			for _, b := range y {
				switch {
				case b > a:
					pairs++
				case b == a:
					pairs += 0.5
				}
			}
		}
		u, _ := judge.MannWhitneyU(x, y)
		if u != pairs {
			t.Errorf("n=%d/%d: U = %v, pair count %v", size.n1, size.n2, u, pairs)
		}
		uRev, _ := judge.MannWhitneyU(y, x)
		if u+uRev != float64(size.n1*size.n2) {
			t.Errorf("n=%d/%d: U + U' = %v, want %d", size.n1, size.n2, u+uRev, size.n1*size.n2)
		}
	}
}

func TestMannWhitneyUDoesNotModifyInput(t *testing.T) {
	x := []float64{3, 1, 2}
	y := []float64{9, 7, 8}
	judge.MannWhitneyU(x, y)
	if !slices.Equal(x, []float64{3, 1, 2}) || !slices.Equal(y, []float64{9, 7, 8}) {
		t.Errorf("inputs modified: %v %v", x, y)
	}
}

func TestPercentile(t *testing.T) {
	oneTo100 := seq(1, 100)
	tests := []struct {
		name   string
		sorted []float64
		q      float64
		want   float64
	}{
		{"empty", nil, 0.5, math.NaN()},
		{"NaN q", oneTo100, math.NaN(), math.NaN()},
		{"single", []float64{7}, 0.99, 7},
		{"min", oneTo100, 0, 1},
		{"max", oneTo100, 1, 100},
		{"below 0 clamps", oneTo100, -1, 1},
		{"above 1 clamps", oneTo100, 2, 100},
		{"median even count interpolates", []float64{1, 2, 3, 4}, 0.5, 2.5},
		{"median odd count", []float64{1, 2, 3, 4, 5}, 0.5, 3},
		{"p50 of 1..100", oneTo100, 0.5, 50.5},
		{"p99 of 1..100", oneTo100, 0.99, 99.01},
		{"p90 of 10,20,30", []float64{10, 20, 30}, 0.9, 28},
		{"exact rank", []float64{0, 10, 20, 30, 40}, 0.25, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := judge.Percentile(tt.sorted, tt.q)
			if math.IsNaN(tt.want) {
				if !math.IsNaN(got) {
					t.Errorf("Percentile = %v, want NaN", got)
				}
				return
			}
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Percentile = %v, want %v", got, tt.want)
			}
		})
	}
}
