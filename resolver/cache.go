package resolver

import (
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	gocache "github.com/patrickmn/go-cache"
)

// CacheOptions bound the cache.
type CacheOptions struct {
	MaxEntries  int           // entries kept at most (0: 10,000)
	MaxTTL      time.Duration // positive answers are kept at most this long (0: 1 h)
	MaxNegTTL   time.Duration // negative answers at most this long (0: 30 min)
	StaleFor    time.Duration // serve-stale window after expiry (RFC 8767; 0: off)
	StaleTTL    uint32        // TTL of a stale answer (0: 30 s)
	PrefetchPct int           // refresh a popular entry in its last N % of TTL (0: off)
	PrefetchMin int32         // hits before an entry is popular (0: 3)
}

// entry is one cached response: packed without OPT, with the offsets of
// its TTL fields so that a hit is a copy and a few byte patches.
type entry struct {
	wire    []byte
	ttlOffs []int
	ttls    []uint32
	stored  time.Time
	expires time.Time
	hits    atomic.Int32
	pending atomic.Bool // a prefetch is under way
	denial  bool        // NXDOMAIN or NODATA (CoreDNS's cache metrics count them apart)
}

// Cache is the forwarder's answer cache on github.com/patrickmn/go-cache,
// keyed by lower-case name, type, class and the DO and CD bits. Safe for
// concurrent use; Get never blocks on the network.
type Cache struct {
	opt CacheOptions
	c   *gocache.Cache
	now func() time.Time
	// putMu makes "count, then add" one step, so concurrent misses cannot
	// grow the cache past MaxEntries (lookups never take it).
	putMu sync.Mutex
}

// NewCache returns an empty cache.
func NewCache(opt CacheOptions) *Cache {
	if opt.MaxEntries <= 0 {
		opt.MaxEntries = 10000
	}
	if opt.MaxTTL <= 0 {
		opt.MaxTTL = time.Hour
	}
	if opt.MaxNegTTL <= 0 {
		opt.MaxNegTTL = 30 * time.Minute
	}
	if opt.StaleTTL == 0 {
		opt.StaleTTL = 30
	}
	if opt.PrefetchMin <= 0 {
		opt.PrefetchMin = 3
	}
	return &Cache{opt: opt, c: gocache.New(gocache.NoExpiration, time.Minute), now: time.Now}
}

// Len returns the number of entries (expired ones included until the
// janitor runs).
func (c *Cache) Len() int { return c.c.ItemCount() }

// kinds counts the entries (unexpired, or within the serve-stale window)
// that are answers (success) and denials (NXDOMAIN, NODATA). It copies the
// cache's index: the metrics call it once per scrape.
func (c *Cache) kinds() (success, denial int) {
	for _, it := range c.c.Items() {
		if it.Object.(*entry).denial {
			denial++
		} else {
			success++
		}
	}
	return success, denial
}

// cacheKey is the key of a question in the cache: its name (lower-case
// wire form), type, class and the DO and CD bits.
func cacheKey(name []byte, qtype, qclass uint16, do, cd bool) string {
	b := make([]byte, 0, len(name)+8)
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, qclass)
	var f byte
	if do {
		f |= 1
	}
	if cd {
		f |= 2
	}
	return string(append(b, f))
}

// ttlOf is how long a response may be cached (at most MaxTTL, or MaxNegTTL
// for a negative one): the smallest TTL of its answer and authority records
// for an answer, the SOA's negative TTL (RFC 2308) for NXDOMAIN and NODATA.
// ok is false for what must not be cached (errors, negative answers
// without SOA, TTL 0).
func (c *Cache) ttlOf(m *dns.Msg) (time.Duration, bool) {
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		minTTL := uint32(1<<31 - 1)
		for _, rr := range append(append([]dns.RR(nil), m.Answer...), m.Ns...) {
			minTTL = min(minTTL, rr.Header().Ttl)
		}
		d := min(time.Duration(minTTL)*time.Second, c.opt.MaxTTL)
		return d, d > 0
	case m.Rcode == dns.RcodeNameError || m.Rcode == dns.RcodeSuccess:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				d := min(time.Duration(min(soa.Hdr.Ttl, soa.Minttl))*time.Second, c.opt.MaxNegTTL)
				return d, d > 0
			}
		}
	}
	return 0, false
}

// Put stores a response (OPT already removed). It reports whether it was
// stored: not when uncachable, nor when the cache is full.
func (c *Cache) Put(key string, m *dns.Msg) bool {
	ttl, ok := c.ttlOf(m)
	if !ok {
		return false
	}
	c.putMu.Lock()
	defer c.putMu.Unlock()
	if _, ok := c.c.Get(key); !ok && c.c.ItemCount() >= c.opt.MaxEntries {
		c.c.DeleteExpired()
		if c.c.ItemCount() >= c.opt.MaxEntries {
			return false
		}
	}
	m.Compress = true
	wire, err := packChecked(m)
	if err != nil {
		return false
	}
	offs, err := ttlOffsets(wire)
	if err != nil {
		return false
	}
	e := &entry{wire: wire, ttlOffs: offs, stored: c.now(), denial: isDenial(wire)}
	e.expires = e.stored.Add(ttl)
	for _, o := range offs {
		e.ttls = append(e.ttls, min(binary.BigEndian.Uint32(wire[o:]), uint32(ttl/time.Second)))
	}
	c.c.Set(key, e, ttl+c.opt.StaleFor)
	return true
}

// Hit is what Get found.
type Hit int

// The outcomes of a cache lookup.
const (
	Miss     Hit = iota
	Fresh        // within its TTL
	Prefetch     // fresh, popular and near expiry: refresh it in the background
	Stale        // expired but within the serve-stale window
)

// Get copies a cached response into out with its TTLs counted down (a
// stale one with the stale TTL). It never blocks.
func (c *Cache) Get(key string, out []byte) ([]byte, Hit) {
	v, ok := c.c.Get(key)
	if !ok {
		return nil, Miss
	}
	e := v.(*entry)
	now := c.now()
	out = append(out[:0], e.wire...)
	if now.After(e.expires) {
		for _, o := range e.ttlOffs {
			binary.BigEndian.PutUint32(out[o:], c.opt.StaleTTL)
		}
		return out, Stale
	}
	elapsed := uint32(now.Sub(e.stored) / time.Second)
	for i, o := range e.ttlOffs {
		ttl := uint32(0)
		if e.ttls[i] > elapsed {
			ttl = e.ttls[i] - elapsed
		}
		binary.BigEndian.PutUint32(out[o:], ttl)
	}
	hits := e.hits.Add(1)
	if c.opt.PrefetchPct > 0 && hits >= c.opt.PrefetchMin {
		left := e.expires.Sub(now)
		if left*100 < e.expires.Sub(e.stored)*time.Duration(c.opt.PrefetchPct) && e.pending.CompareAndSwap(false, true) {
			return out, Prefetch
		}
	}
	return out, Fresh
}

// keyString names a question (name and type) for logs.
func keyString(name string, qtype uint16) string {
	if s, ok := dns.TypeToString[qtype]; ok {
		return name + " " + s
	}
	return name + " TYPE" + strconv.Itoa(int(qtype))
}
