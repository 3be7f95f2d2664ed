package policy

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const ms = float64(time.Millisecond)

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > want*1e-9 {
		t.Errorf("%s = %.6f ms, want %.6f ms", what, got/ms, want/ms)
	}
}

func estimate(t *testing.T, p *PeakEWMA, now time.Duration) float64 {
	t.Helper()
	est, ok := p.estimateAt(now)
	if !ok {
		t.Fatal("no estimate after an observation")
	}
	return est
}

func TestPeakEWMAFirstObservation(t *testing.T) {
	p := NewPeakEWMA(time.Second)
	if _, ok := p.Estimate(); ok {
		t.Fatal("an estimate before any observation")
	}
	p.observeAt(0, 7*time.Millisecond)
	near(t, "after one observation", estimate(t, p, 0), 7*ms)
}

// TestPeakEWMADecay: the estimate forgets with time, not with the number of
// observations: exp(-Δt/τ) of it is kept.
func TestPeakEWMADecay(t *testing.T) {
	tau := time.Second
	p := NewPeakEWMA(tau)
	p.observeAt(0, 10*time.Millisecond)
	// Reading decays towards 0: one τ later, 1/e is left.
	near(t, "read one τ later", estimate(t, p, tau), 10*ms/math.E)
	near(t, "read at once", estimate(t, p, 0), 10*ms)
	// A lower latency one τ later moves the estimate 1-1/e of the way.
	p.observeAt(tau, time.Millisecond)
	want := 10*ms/math.E + ms*(1-1/math.E)
	near(t, "lower latency one τ later", estimate(t, p, tau), want)
	// Ten τ of 1 ms answers, one every τ/100: back to about 1 ms, whatever
	// the count.
	for i := 1; i <= 1000; i++ {
		p.observeAt(tau+time.Duration(i)*tau/100, time.Millisecond)
	}
	if got := estimate(t, p, 11*tau); got > 1.001*ms {
		t.Errorf("after 10τ of 1 ms answers: %.4f ms, want ≈ 1 ms", got/ms)
	}
	// A quick answer right after the previous one still moves the
	// estimate by at least fallGain.
	q := NewPeakEWMA(time.Hour)
	q.observeAt(0, 9*time.Millisecond)
	q.observeAt(time.Microsecond, time.Millisecond)
	near(t, "fast fall", estimate(t, q, time.Microsecond), 9*ms-fallGain*8*ms)
}

// TestPeakEWMAPeakSensitivity: a slower answer is believed at once (peakGain
// of the way in one call, with no time passing), a real slowdown is tracked
// within a few calls, and a single stall moves the estimate by at most
// 1 + peakGain × (peakCap - 1).
func TestPeakEWMAPeakSensitivity(t *testing.T) {
	p := NewPeakEWMA(10 * time.Second)
	now := time.Duration(0)
	p.observeAt(now, time.Millisecond)
	p.observeAt(now, 3*time.Millisecond)
	near(t, "one slower answer", estimate(t, p, now), ms+peakGain*2*ms)

	// A stall: one answer 500× the estimate.
	s := NewPeakEWMA(10 * time.Second)
	s.observeAt(0, 2*time.Millisecond)
	s.observeAt(0, time.Second)
	near(t, "one stalled answer", estimate(t, s, 0), 2*ms+peakGain*(peakCap*2*ms-2*ms))
	// ... is forgotten within a few dozen ordinary answers.
	for range 30 {
		s.observeAt(0, 2*time.Millisecond)
	}
	if got := estimate(t, s, 0); got > 2.1*ms {
		t.Errorf("30 answers after a stall: %.3f ms, want < 2.1 ms", got/ms)
	}

	// A real slowdown from 1.5 ms to 20 ms, answers 1 ms apart: above 10 ms
	// after 4 answers, 15 ms after 7, while a plain EWMA with τ = 10 s would
	// take seconds.
	for i := 1; i <= 7; i++ {
		now += time.Millisecond
		p.observeAt(now, 20*time.Millisecond)
		if got := estimate(t, p, now); i == 4 && got < 10*ms || i == 7 && got < 15*ms {
			t.Errorf("after %d answers of 20 ms: %.2f ms", i, got/ms)
		}
	}
	// A stall never lifts a 1 ms estimate above 1.75 ms in one answer.
	q := NewPeakEWMA(10 * time.Second)
	q.observeAt(0, time.Millisecond)
	q.observeAt(0, 10*time.Second)
	if got := estimate(t, q, 0); got > 1.75*ms+1 {
		t.Errorf("one 10 s answer lifted 1 ms to %.3f ms", got/ms)
	}
}

// TestPeakEWMAConcurrent: concurrent observers (run with -race) leave an
// estimate within the range of what they observed.
func TestPeakEWMAConcurrent(t *testing.T) {
	p := NewPeakEWMA(time.Second)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				p.Observe(time.Duration(1+(g+i)%5) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	if est, ok := p.Estimate(); !ok || est < 0 || est > 5*time.Millisecond {
		t.Fatalf("estimate %v (%v) after observations of 1-5 ms", est, ok)
	}
}

// p2cCands returns n candidates with estimators whose decay is long enough
// that reading them in a test does not change them.
func p2cCands(n int) []Candidate {
	cs := make([]Candidate, n)
	for i := range cs {
		cs[i] = Candidate{Load: new(atomic.Int64), Latency: NewPeakEWMA(time.Hour)}
	}
	return cs
}

func picks(sel Selector, n, k int) []int {
	c := make([]int, n)
	for range k {
		c[sel.Select(0)]++
	}
	return c
}

// TestP2CSlowEndpointLosesShare: equal outstanding counts (the tie that
// least_request breaks at random) no longer hide a slow endpoint; it gets
// calls only once the fast ones are loaded enough to be slower.
func TestP2CSlowEndpointLosesShare(t *testing.T) {
	cs := p2cCands(4)
	for i, c := range cs {
		d := time.Millisecond
		if i == 3 {
			d = 10 * time.Millisecond
		}
		c.Latency.Observe(d)
	}
	const k = 20000
	if c := picks(P2C().Build(cs), 4, k); c[3] != 0 {
		t.Errorf("idle: the 10× slower endpoint got %d of %d picks: %v", c[3], k, c)
	}
	if c := picks(LeastRequest().Build(cs), 4, k); c[3] < k/5 {
		t.Errorf("least_request ignores latency, yet the slow endpoint got only %d of %d picks: %v", c[3], k, c)
	}
	// 5 outstanding on each fast one: cost 6 ms < 10 ms, still avoided.
	for _, c := range cs[:3] {
		c.Load.Store(5)
	}
	if c := picks(P2C().Build(cs), 4, k); c[3] != 0 {
		t.Errorf("fast ones at 5 outstanding: the slow one got %d picks: %v", c[3], c)
	}
	// 10 outstanding: 11 ms > 10 ms, the slow one wins every pair it is in
	// (half of the draws).
	for _, c := range cs[:3] {
		c.Load.Store(10)
	}
	c := picks(P2C().Build(cs), 4, k)
	if c[3] < k*4/10 || c[3] > k*6/10 {
		t.Errorf("fast ones at 10 outstanding: the slow one got %d of %d picks, want about half: %v", c[3], k, c)
	}
}

// TestP2CUntriedEndpoint: an endpoint that has not answered yet takes a call
// while idle (so a scale-up's new endpoints get traffic at once), then waits
// for its answer.
func TestP2CUntriedEndpoint(t *testing.T) {
	cs := p2cCands(3)
	cs[0].Latency.Observe(time.Millisecond)
	cs[1].Latency.Observe(time.Millisecond)
	sel := P2C().Build(cs)
	const k = 3000
	c := picks(sel, 3, k)
	// Every draw with the new one in it (2/3) picks it.
	if c[2] < k*6/10 || c[2] > k*72/100 {
		t.Errorf("idle untried endpoint got %d of %d picks, want about 2/3: %v", c[2], k, c)
	}
	cs[2].Load.Store(1)
	if c := picks(sel, 3, k); c[2] != 0 {
		t.Errorf("untried endpoint with a call out got %d picks: %v", c[2], c)
	}
	// Without estimators P2C is least-loaded P2C.
	plain := []Candidate{{Load: new(atomic.Int64)}, {Load: new(atomic.Int64)}}
	plain[0].Load.Store(2)
	if c := picks(P2C().Build(plain), 2, 100); c[0] != 0 {
		t.Errorf("without Latency the loaded candidate got %d picks", c[0])
	}
}
