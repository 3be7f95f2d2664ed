package lb

import (
	"math/bits"
	"math/rand/v2"
)

// Maglev returns the consistent-hashing policy (Eisenbud et al., "Maglev: A Fast
// and Reliable Software Network Load Balancer", NSDI 2016). A request key (see
// HashKey, Balancer.PickKey, WithHashKey) always maps to the same candidate while
// the set is unchanged; when a candidate is added or removed only about 1/N of
// the keys move. Without a key a pick is random.
//
// Why Maglev rather than a ring hash: a pick is one table lookup
// whatever the number of endpoints (a ring needs a binary search over
// N×replicas points, and its balance depends on the replica count); every
// candidate owns M/N ± 1 slots, so load is even without tuning; the table is one
// []uint32 of M ≈ 100·N entries (400 bytes per endpoint, at least 256 KiB).
// The price: a key moves slightly more often than the theoretical minimum, and a
// rebuild costs O(M log M) (tens of milliseconds at 10,000 endpoints), paid by
// the goroutine that changes the set, never by Pick. Weights are ignored.
//
// Two processes given the same candidate names build the same table, so
// different clients send a key to the same endpoint.
func Maglev() Policy { return maglevPolicy{} }

type maglevPolicy struct{}

func (maglevPolicy) Name() string { return "maglev" }

const maglevEmpty = ^uint32(0)

func (maglevPolicy) Build(cands []Candidate) Selector {
	n := len(cands)
	if n == 0 {
		return &maglev{}
	}
	m := nextPrime(max(uint64(n)*100, 65521))
	table := make([]uint32, m)
	for i := range table {
		table[i] = maglevEmpty
	}
	pos := make([]uint64, n)  // current position in each candidate's permutation
	skip := make([]uint64, n) // permutation step
	for i, c := range cands {
		h := fnv1a(c.Name)
		pos[i] = mix64(h^0x9e3779b97f4a7c15) % m
		skip[i] = mix64(h^0xc2b2ae3d27d4eb4f)%(m-1) + 1
	}
	filled := uint64(0)
	for {
		for i := range n {
			p := pos[i]
			for table[p] != maglevEmpty {
				if p += skip[i]; p >= m {
					p -= m
				}
			}
			table[p] = uint32(i)
			if p += skip[i]; p >= m {
				p -= m
			}
			pos[i] = p
			if filled++; filled == m {
				return &maglev{table: table}
			}
		}
	}
}

type maglev struct{ table []uint32 }

func (s *maglev) Select(key uint64) int {
	m := uint64(len(s.table))
	if m == 0 {
		return -1
	}
	if key == 0 {
		key = rand.Uint64()
	}
	// The high word of key×m is an index in [0, m) without a division; mix64
	// spreads keys that are small integers.
	hi, _ := bits.Mul64(mix64(key), m)
	return int(s.table[hi])
}

// HashKey turns a request key (a user id, a session cookie) into the key given to
// Balancer.PickKey and Selector.Select. It is deterministic across processes
// (FNV-1a followed by a 64-bit finaliser), never returns 0 (which means "no
// key"), and does not allocate.
func HashKey(s string) uint64 {
	if h := mix64(fnv1a(s)); h != 0 {
		return h
	}
	return 1
}

func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is the splitmix64 finaliser: a bijection that spreads every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func nextPrime(n uint64) uint64 {
	if n <= 2 {
		return 2
	}
	if n%2 == 0 {
		n++
	}
	for ; ; n += 2 {
		prime := true
		for d := uint64(3); d*d <= n; d += 2 {
			if n%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			return n
		}
	}
}
