package lb

import (
	"math"
	"testing"
)

// significance is the fixed level of every goodness-of-fit test in this
// package: a correct implementation fails one with probability 1e-5, so the
// suite (about ten such tests) is not flaky, while a real bias over thousands
// of samples still gives p-values far below it.
const significance = 1e-5

// chiSquareP returns the p-value of Pearson's chi-square statistic of observed
// counts against expected proportions (which need not be normalised).
func chiSquareP(observed []int, expected []float64) (stat, p float64) {
	var n, sum float64
	for i := range observed {
		n += float64(observed[i])
		sum += expected[i]
	}
	df := -1
	for i := range observed {
		e := n * expected[i] / sum
		if e == 0 {
			if observed[i] != 0 {
				return math.Inf(1), 0
			}
			continue
		}
		d := float64(observed[i]) - e
		stat += d * d / e
		df++
	}
	return stat, chiSquareSurvival(stat, df)
}

// chiSquareSurvival is P(X > x) for X chi-square with df degrees of freedom:
// 1 - P(df/2, x/2), with the lower regularised gamma P computed by its series.
func chiSquareSurvival(x float64, df int) float64 {
	if df <= 0 || x <= 0 {
		return 1
	}
	a, z := float64(df)/2, x/2
	lg, _ := math.Lgamma(a + 1)
	term := math.Exp(a*math.Log(z) - z - lg)
	sum := term
	for k := 1; k < 10000; k++ {
		term *= z / (a + float64(k))
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return max(0, 1-sum)
}

func assertFits(t *testing.T, what string, observed []int, expected []float64) {
	t.Helper()
	stat, p := chiSquareP(observed, expected)
	t.Logf("%s: counts %v, chi-square %.2f, p = %.3g", what, observed, stat, p)
	if p < significance {
		t.Errorf("%s: counts %v do not fit proportions %v (chi-square %.2f, p = %.3g < %g)", what, observed, expected, stat, p, significance)
	}
}

func TestChiSquareSurvival(t *testing.T) {
	// Table values: the 0.05 and 0.001 critical values.
	for _, c := range []struct {
		x  float64
		df int
		p  float64
	}{{3.841, 1, 0.05}, {5.991, 2, 0.05}, {13.816, 2, 0.001}, {18.467, 4, 0.001}, {29.588, 10, 0.001}} {
		if got := chiSquareSurvival(c.x, c.df); math.Abs(got-c.p) > c.p*0.01 {
			t.Errorf("survival(%v, %d) = %v, want %v", c.x, c.df, got, c.p)
		}
	}
}
