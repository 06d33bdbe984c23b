package judge

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// MannWhitneyU runs a one-sided Mann-Whitney U test of the alternative "y is
// stochastically greater than x" (for the judge: the candidate's latency tends
// to be higher than the baseline's) and returns U and the p-value.
//
// U is the statistic of y: the number of pairs (x[i], y[j]) with y[j] > x[i],
// ties counting one half, computed from the rank sum of y in the pooled sample
// with tied values given their average rank. It ranges from 0 to
// len(x)*len(y); its mean under the null hypothesis is len(x)*len(y)/2.
//
// The p-value uses the normal approximation with the tie-corrected variance
//
//	sigma^2 = n1*n2/12 * ((N+1) - sum(t^3-t)/(N*(N-1)))
//
// (t ranging over the sizes of the groups of tied values, N = n1+n2) and a
// continuity correction of 0.5: z = (U - n1*n2/2 - 0.5)/sigma, p = P(Z >= z).
// The exact distribution of U is not computed: above about 20 samples per side
// the approximation is accurate to well within the precision that matters for
// a significance level such as 0.05, and the judge requires Budget.MinSamples
// (30 by default) per side before it tests anything. For smaller inputs the
// p-value is still the approximation and should be read as such.
//
// NaN and infinite values are ignored. If either side is then empty, U is 0
// and p is 1 (no evidence). If every value is tied, p is 1. The inputs are not
// modified. Time is O(n log n), dominated by sorting copies of the inputs.
func MannWhitneyU(x, y []float64) (u, p float64) {
	return mannWhitneySorted(finiteSorted(x), finiteSorted(y))
}

// mannWhitneySorted is MannWhitneyU on sorted, finite inputs. It walks both
// slices once, merging them, so each group of tied values is seen whole.
func mannWhitneySorted(xs, ys []float64) (u, p float64) {
	n1, n2 := len(xs), len(ys)
	if n1 == 0 || n2 == 0 {
		return 0, 1
	}
	var (
		rankSumY float64 // sum of the (average) ranks of y in the pooled sample
		tieSum   float64 // sum over tie groups of t^3 - t
		pos      int     // number of pooled values already ranked
		i, j     int
	)
	for i < n1 || j < n2 {
		var v float64
		switch {
		case i == n1:
			v = ys[j]
		case j == n2:
			v = xs[i]
		default:
			v = min(xs[i], ys[j])
		}
		cx := 0
		for i < n1 && xs[i] == v {
			i++
			cx++
		}
		cy := 0
		for j < n2 && ys[j] == v {
			j++
			cy++
		}
		t := cx + cy
		// The group occupies ranks pos+1 .. pos+t; each gets their mean.
		avgRank := float64(pos) + float64(t+1)/2
		rankSumY += float64(cy) * avgRank
		if t > 1 {
			ft := float64(t)
			tieSum += ft*ft*ft - ft
		}
		pos += t
	}

	fn1, fn2, n := float64(n1), float64(n2), float64(n1+n2)
	u = rankSumY - fn2*(fn2+1)/2
	mean := fn1 * fn2 / 2
	variance := fn1 * fn2 / 12 * ((n + 1) - tieSum/(n*(n-1)))
	if variance <= 0 {
		// Every value is tied: the samples carry no evidence of a difference.
		return u, 1
	}
	z := (u - mean - 0.5) / math.Sqrt(variance)
	return u, distuv.UnitNormal.Survival(z)
}

// Percentile returns the q-quantile (q in [0, 1]; 0.99 for p99) of an
// ascending slice by linear interpolation between the closest ranks: with
// h = (n-1)*q, the result is sorted[floor(h)] plus the fraction h-floor(h) of
// the gap to the next value. This is Hyndman and Fan's definition 7, the
// default of NumPy and R. q is clamped to [0, 1]. An empty slice or a NaN q
// gives NaN. The slice must be sorted; it is not checked.
func Percentile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	q = min(max(q, 0), 1)
	h := float64(n-1) * q
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return sorted[n-1]
	}
	frac := h - float64(lo)
	if frac == 0 {
		return sorted[lo]
	}
	return sorted[lo] + frac*(sorted[lo+1]-sorted[lo])
}

// finiteSorted returns an ascending copy of v without NaN and infinite values.
func finiteSorted(v []float64) []float64 {
	out := make([]float64, 0, len(v))
	for _, f := range v {
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}
