package policy

import (
	"math"
	"sync/atomic"
	"time"
)

// DefaultLatencyDecay is the time constant of a PeakEWMA made with decay 0:
// an observation's weight falls to 1/e after 1 s. Finagle and Linkerd use
// 10 s; here the estimate also moves by a minimum share per answer (see
// peakGain), so it needs no long memory to be stable, and a long one costs:
// an estimate is only corrected by answers, and an endpoint that lost every
// comparison after one slow answer (its first, on a cold connection) waits
// decay × ln(its estimate / the others') for its next call, during which an
// equal endpoint gets nothing (seconds with 10 s, measured in
// TestDNSDownKeepsLastSet). A 10× slower endpoint is tried again every
// decay × ln 10 ≈ 2.3 s, for one or a few calls.
const DefaultLatencyDecay = time.Second

// PeakEWMA is a peak-sensitive, exponentially weighted moving average of one
// candidate's latency, decaying over time rather than per observation: a
// latency above the estimate replaces it at once (the candidate just got
// slower, believe it), one below pulls the estimate towards it by
// 1-exp(-Δt/decay), Δt being the time since the previous observation, so the
// estimate forgets the past at the same rate whatever the call rate. Reading
// it decays it the same way towards 0, so a candidate that gets no traffic
// (because it looked slow) looks better and better until it is tried again.
//
// Its owner (lb's Endpoint) calls Observe when a call finishes; the P2C
// Selector reads it on every pick. Both are lock-free (atomics) and never
// allocate. Make it with NewPeakEWMA.
type PeakEWMA struct {
	base  time.Time     // monotonic origin of stamp
	decay float64       // time constant, in nanoseconds
	est   atomic.Uint64 // math.Float64bits of the estimate in ns; 0 until the first observation
	stamp atomic.Int64  // ns since base of the last observation
}

// NewPeakEWMA returns an estimator with time constant decay
// (DefaultLatencyDecay if decay ≤ 0) and no observation yet.
func NewPeakEWMA(decay time.Duration) *PeakEWMA {
	if decay <= 0 {
		decay = DefaultLatencyDecay
	}
	return &PeakEWMA{base: time.Now(), decay: float64(decay)}
}

// Observe adds one call's latency. It is safe for concurrent use, lock-free,
// and does not allocate.
func (p *PeakEWMA) Observe(latency time.Duration) {
	p.observeAt(time.Since(p.base), latency)
}

// How an observation moves the estimate, whatever the time since the last
// one: at least peakGain of the way up (twice fallGain: slower answers are
// believed faster than faster ones), at least fallGain of the way down, and
// never more than peakCap × the estimate up in one answer. So a real
// slowdown (1 ms to 20 ms) is past 10 ms in four answers, while one call
// caught in a stall (a GC pause, a descheduled process: every call in flight
// then takes hundreds of milliseconds) raises a fast endpoint's estimate by
// at most 1.75×, not above a 10× slower endpoint's. With Finagle's full
// jump to the peak, estimates on a loaded test machine sat at 100-450 ms for
// every endpoint, and the slow one got 6-10% of the calls.
const (
	peakGain = 1.0 / 4
	fallGain = 1.0 / 8
	peakCap  = 4
)

// observeAt is Observe at time now (since p.base).
func (p *PeakEWMA) observeAt(now, latency time.Duration) {
	rtt := float64(max(latency, 1)) // 0 means "never observed"
	prev := p.stamp.Swap(int64(now))
	// The weight of the time since the previous observation; concurrent
	// observers each count their own slice of it.
	tw := 1 - math.Exp(-float64(max(int64(now)-prev, 0))/p.decay)
	for {
		old := p.est.Load()
		est := math.Float64frombits(old)
		next := rtt
		switch {
		case est == 0: // the first observation
		case rtt > est:
			next = est + max(tw, peakGain)*(min(rtt, peakCap*est)-est)
		default:
			next = est + max(tw, fallGain)*(rtt-est)
		}
		if p.est.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// Estimate returns the current estimate, decayed to now, and false if there
// has been no observation yet.
func (p *PeakEWMA) Estimate() (time.Duration, bool) {
	est, ok := p.estimateAt(time.Since(p.base))
	return time.Duration(est), ok
}

// estimateAt returns the estimate in ns decayed to now (since p.base).
func (p *PeakEWMA) estimateAt(now time.Duration) (float64, bool) {
	est := math.Float64frombits(p.est.Load())
	if est == 0 {
		return 0, false
	}
	if d := int64(now) - p.stamp.Load(); d > 0 {
		est *= math.Exp(-float64(d) / p.decay)
	}
	return est, true
}

// untriedPenalty is the cost of a candidate with no latency yet and calls
// already outstanding: it waits for its first answer before more calls go
// there (Finagle's rule), unless every other choice is in the same state.
const untriedPenalty = 1e18

// cost is what P2C minimises: the expected latency of one more call, the
// latency estimate × (outstanding + 1). A candidate that has never answered
// costs 0 while idle, so that new endpoints (a scale-up) get a first call at
// once, and untriedPenalty + outstanding while that call is out. Without an
// estimator the cost is the outstanding count alone.
func cost(load *atomic.Int64, lat *PeakEWMA, now time.Time) float64 {
	n := float64(load.Load())
	if lat == nil {
		return n
	}
	est, ok := lat.estimateAt(now.Sub(lat.base))
	switch {
	case ok:
		return est * (n + 1)
	case n == 0:
		return 0
	}
	return untriedPenalty + n
}
