// Package policy holds the choice policies that the DNS server (answer
// ordering) and the client library lb (endpoint picking) share: the
// Candidate, Selector and Policy types, the policies that need nothing
// but the candidates (RoundRobin, Random, P2C, LeastRequest, Weighted), and
// PeakEWMA, the latency estimate P2C weighs. It imports no
// DNS, network or HTTP code, so the server does not depend on the client.
// lb re-exports every name here and adds Maglev, whose request keys belong
// to the Balancer.
package policy

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Candidate is what a Policy knows about one choice. Policies know nothing of DNS
// or HTTP: lb's Balancer passes its endpoints, but the DNS server (answer
// rotation) or the node proxy can pass any list.
type Candidate struct {
	// Name identifies the candidate for consistent hashing (lb.Maglev); it must be
	// stable and unique ("ip:port"). Other policies ignore it.
	Name string
	// Weight is the RFC 2782 SRV weight, used by Weighted only.
	Weight uint16
	// Load is the candidate's outstanding-request counter, read by P2C only.
	// The counter's owner updates it; a nil Load reads as 0.
	Load *atomic.Int64
	// Latency is the candidate's latency estimate, read by P2C only. Its
	// owner feeds it (PeakEWMA.Observe); nil means "unknown", and P2C then
	// compares outstanding counts alone.
	Latency *PeakEWMA
}

// Selector picks one of the candidates its Policy was built with. Select is
// called concurrently on the hot path: it never blocks and never allocates.
type Selector interface {
	// Select returns an index into the candidate slice given to Build, or -1 if
	// that slice was empty. key is a request key for consistent hashing (see
	// lb.HashKey); 0 means "no key". Policies other than lb.Maglev ignore it.
	Select(key uint64) int
}

// Policy builds Selectors. Build is called by lb's Balancer, under its lock, each
// time the eligible endpoint set changes (never on the pick path); it may
// allocate and take time proportional to the set. Build must not keep cands.
type Policy interface {
	// Name returns the policy's name as lb.PolicyByName accepts it.
	Name() string
	// Build returns a Selector over cands.
	Build(cands []Candidate) Selector
}

// uniform maps a 32-bit random value onto [0, n) without division (Lemire).
func uniform(r uint32, n uint32) uint32 { return uint32((uint64(r) * uint64(n)) >> 32) }

// RoundRobin returns the policy that cycles through the candidates in order.
// Each new Selector starts at a random position, so frequent rebuilds do not
// favour the first candidates. The DNS server can use it to rotate answers.
func RoundRobin() Policy { return roundRobinPolicy{} }

type roundRobinPolicy struct{}

func (roundRobinPolicy) Name() string { return "round_robin" }

func (roundRobinPolicy) Build(cands []Candidate) Selector {
	s := &roundRobin{n: uint64(len(cands))}
	s.next.Store(rand.Uint64())
	return s
}

type roundRobin struct {
	n    uint64
	next atomic.Uint64
}

func (s *roundRobin) Select(uint64) int {
	if s.n == 0 {
		return -1
	}
	return int(s.next.Add(1) % s.n)
}

// Random returns the policy that picks a candidate uniformly at random.
func Random() Policy { return randomPolicy{} }

type randomPolicy struct{}

func (randomPolicy) Name() string { return "random" }

func (randomPolicy) Build(cands []Candidate) Selector { return randomSel(len(cands)) }

type randomSel uint32

func (s randomSel) Select(uint64) int {
	if s == 0 {
		return -1
	}
	return int(uniform(rand.Uint32(), uint32(s)))
}

// P2C returns the power-of-two-choices policy: draw two distinct candidates at
// random and take the one with the lower cost, the first drawn on a tie. The
// cost is Finagle's and Linkerd's peak-EWMA one: the candidate's latency
// estimate (Candidate.Latency) × (outstanding requests (Candidate.Load) + 1),
// i.e. the expected wait of one more call, so a slow endpoint loses the
// comparison even when outstanding counts tie, and a loaded fast one loses to
// an idle one. A candidate that has not answered yet costs 0 while it has
// nothing outstanding (new endpoints get traffic at once) and a penalty while
// its first call is out; one without Latency is compared by outstanding count
// alone, which is plain least-loaded P2C (the DNS server's answer ordering
// passes neither and gets a random order). O(1) work per pick, no lock, no
// allocation, no shared state beyond the candidates' counters.
func P2C() Policy { return p2cPolicy{} }

type p2cPolicy struct{}

func (p2cPolicy) Name() string { return "p2c" }

func (p2cPolicy) Build(cands []Candidate) Selector {
	s := &p2c{loads: make([]*atomic.Int64, len(cands)), lats: make([]*PeakEWMA, len(cands))}
	for i, c := range cands {
		s.loads[i], s.lats[i] = c.Load, c.Latency
		if s.loads[i] == nil {
			s.loads[i] = new(atomic.Int64)
		}
		s.timed = s.timed || c.Latency != nil
	}
	return s
}

// LeastRequest returns P2C on outstanding requests alone (Envoy's
// least_request): the candidates' Latency is ignored, so equal endpoints share
// the traffic evenly however noisy their latencies, and the length of a call
// does not matter. It suits long-lived streams, whose "latency" is their
// lifetime; P2C suits request/response traffic.
func LeastRequest() Policy { return leastRequestPolicy{} }

type leastRequestPolicy struct{}

func (leastRequestPolicy) Name() string { return "least_request" }

func (leastRequestPolicy) Build(cands []Candidate) Selector {
	s := &p2c{loads: make([]*atomic.Int64, len(cands)), lats: make([]*PeakEWMA, len(cands))}
	for i, c := range cands {
		s.loads[i] = c.Load
		if s.loads[i] == nil {
			s.loads[i] = new(atomic.Int64)
		}
	}
	return s
}

type p2c struct {
	loads []*atomic.Int64
	lats  []*PeakEWMA
	timed bool // some candidate has a Latency: read the clock
}

func (s *p2c) Select(uint64) int {
	n := uint32(len(s.loads))
	switch n {
	case 0:
		return -1
	case 1:
		return 0
	}
	r := rand.Uint64()
	i := uniform(uint32(r), n)
	j := uniform(uint32(r>>32), n-1)
	if j >= i {
		j++
	}
	var now time.Time
	if s.timed {
		now = time.Now()
	}
	if cost(s.loads[j], s.lats[j], now) < cost(s.loads[i], s.lats[i], now) {
		return int(j)
	}
	return int(i)
}

// Weighted returns the RFC 2782 weighted-random policy: each candidate is chosen
// with probability proportional to its Weight. As the RFC asks, weight-0
// candidates have a very small chance when others have weight: together they get
// 1/(sum of weights + 1), shared equally; if every weight is 0 all are equally
// likely. Priority is not the policy's business: lb's Balancer only ever gives a
// policy the candidates of the lowest available priority.
func Weighted() Policy { return weightedPolicy{} }

type weightedPolicy struct{}

func (weightedPolicy) Name() string { return "weighted" }

func (weightedPolicy) Build(cands []Candidate) Selector {
	n := uint64(len(cands))
	if n == 0 {
		return &weighted{}
	}
	var sum, zeros uint64
	for _, c := range cands {
		sum += uint64(c.Weight)
		if c.Weight == 0 {
			zeros++
		}
	}
	// Effective weights: scale so that the zero-weight candidates share
	// 1/(sum+1) of the picks (RFC 2782's running-sum selection puts them first
	// and selects one when the random number is 0), each an equal part of it.
	w := make([]uint64, n)
	var total uint64
	for i, c := range cands {
		switch {
		case sum == 0 || c.Weight == 0:
			w[i] = 1
		case zeros > 0:
			w[i] = uint64(c.Weight) * zeros
		default:
			w[i] = uint64(c.Weight)
		}
		total += w[i]
	}
	// Vose's alias method in integers, so a pick is O(1) and exact: column i
	// keeps itself when a draw in [0, total) is below thr[i], else gives alias[i].
	// Column heights are w[i]·n against a full height of total.
	s := &weighted{thr: make([]uint64, n), alias: make([]uint32, n), total: total}
	var small, large []uint32
	for i := range w {
		w[i] *= n
		if w[i] < total {
			small = append(small, uint32(i))
		} else {
			large = append(large, uint32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		l, g := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		s.thr[l], s.alias[l] = w[l], g
		w[g] -= total - w[l]
		if w[g] < total {
			large = large[:len(large)-1]
			small = append(small, g)
		}
	}
	for _, i := range append(small, large...) { // full columns
		s.thr[i], s.alias[i] = total, i
	}
	return s
}

type weighted struct {
	thr   []uint64
	alias []uint32
	total uint64
}

func (s *weighted) Select(uint64) int {
	n := uint32(len(s.thr))
	if n == 0 {
		return -1
	}
	i := uniform(rand.Uint32(), n)
	if rand.Uint64N(s.total) < s.thr[i] {
		return int(i)
	}
	return int(s.alias[i])
}
