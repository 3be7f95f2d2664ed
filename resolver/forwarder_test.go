package resolver

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
)

func startUpstream(t *testing.T, h func(w dns.ResponseWriter, r *dns.Msg)) *testdns.Server {
	return testdns.Start(t, h)
}

func answerA(ip string, ttl uint32) func(w dns.ResponseWriter, r *dns.Msg) {
	return testdns.AnswerA(ip, ttl)
}

func itoa(n uint32) string { return strconv.Itoa(int(n)) }

func question(t *testing.T, name string, qtype uint16) Question {
	t.Helper()
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	return Question{Wire: buf[:n], Key: buf[:n], Type: qtype, Class: dns.ClassINET}
}

// resolveSync forwards q and waits for the answer.
func resolveSync(t *testing.T, f *Forwarder, q Question) *dns.Msg {
	t.Helper()
	if r := f.Cached(&q, nil); r != nil {
		return unpack(t, r)
	}
	ch := make(chan []byte, 1)
	f.Resolve(q, func(r []byte) { ch <- r })
	select {
	case r := <-ch:
		if r == nil {
			return nil
		}
		return unpack(t, r)
	case <-time.After(20 * time.Second):
		t.Fatal("no answer within 20 s")
	}
	return nil
}

func unpack(t *testing.T, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return m
}

func newForwarder(t *testing.T, opt Options) *Forwarder {
	t.Helper()
	f, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestForwardsAndCaches(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.1", 60))
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}})
	for range 3 {
		r := resolveSync(t, f, question(t, "www.example.com", dns.TypeA))
		if r == nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
			t.Fatalf("answer: %v", r)
		}
	}
	if n := up.Queries.Load(); n != 1 {
		t.Fatalf("upstream asked %d times, want 1 (then cached)", n)
	}
}

func TestStubDomains(t *testing.T) {
	def := startUpstream(t, answerA("192.0.2.1", 60))
	corp := startUpstream(t, answerA("10.0.0.7", 60))
	f := newForwarder(t, Options{Upstreams: []string{def.Addr}, StubDomains: map[string][]string{"corp.example": {corp.Addr}}})
	if r := resolveSync(t, f, question(t, "db.corp.example", dns.TypeA)); r.Answer[0].(*dns.A).A.String() != "10.0.0.7" {
		t.Fatalf("stub domain not used: %v", r)
	}
	if r := resolveSync(t, f, question(t, "www.example.com", dns.TypeA)); r.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
		t.Fatalf("default upstream not used: %v", r)
	}
	if corp.Queries.Load() != 1 || def.Queries.Load() != 1 {
		t.Fatalf("queries: corp %d default %d", corp.Queries.Load(), def.Queries.Load())
	}
}

func TestTruncatedRetriesOverTCP(t *testing.T) {
	var tcpQueries atomic.Int64
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if w.LocalAddr().Network() == "udp" {
			m.Truncated = true
		} else {
			tcpQueries.Add(1)
			for i := range 100 {
				rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 192.0.2." + itoa(uint32(i+1)))
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	})
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}})
	r := resolveSync(t, f, question(t, "big.example.com", dns.TypeA))
	if r == nil || len(r.Answer) != 100 || tcpQueries.Load() != 1 {
		t.Fatalf("want 100 records over TCP, got %v (tcp queries %d)", r, tcpQueries.Load())
	}
	onlyTCP := newForwarder(t, Options{Upstreams: []string{"tcp://" + up.Addr}})
	if r := resolveSync(t, onlyTCP, question(t, "big2.example.com", dns.TypeA)); len(r.Answer) != 100 || tcpQueries.Load() != 2 {
		t.Fatalf("tcp-only upstream: %d records, tcp queries %d", len(r.Answer), tcpQueries.Load())
	}
}

func TestFailoverToLiveUpstream(t *testing.T) {
	// A server that never answers: its queries time out.
	dead := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {})
	live := startUpstream(t, answerA("192.0.2.9", 60))
	f := newForwarder(t, Options{Upstreams: []string{dead.Addr, live.Addr}, Policy: Sequential, Timeout: 300 * time.Millisecond})
	start := time.Now()
	r := resolveSync(t, f, question(t, "a.example.com", dns.TypeA))
	if r == nil || r.Answer[0].(*dns.A).A.String() != "192.0.2.9" {
		t.Fatalf("no failover: %v", r)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("failover took %v", time.Since(start))
	}
	// After MaxFails the dead one is skipped: no new query reaches it.
	resolveSync(t, f, question(t, "b.example.com", dns.TypeA))
	before := dead.Queries.Load()
	for _, n := range []string{"c", "d", "e"} {
		resolveSync(t, f, question(t, n+".example.com", dns.TypeA))
	}
	if dead.Queries.Load() != before {
		t.Fatalf("a down upstream kept receiving queries (%d → %d)", before, dead.Queries.Load())
	}
}

func TestServeStaleWhenAllUpstreamsFail(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.5", 1))
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}, Timeout: 200 * time.Millisecond,
		Cache: CacheOptions{StaleFor: time.Hour, StaleTTL: 30}})
	now := time.Now()
	f.cache.now = func() time.Time { return now }
	resolveSync(t, f, question(t, "s.example.com", dns.TypeA))
	up.Stop()
	now = now.Add(5 * time.Second) // expired
	r := resolveSync(t, f, question(t, "s.example.com", dns.TypeA))
	if r == nil || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
		t.Fatalf("want the stale answer with TTL 30, got %v", r)
	}
	// Without serve-stale, SERVFAIL (nil).
	g := newForwarder(t, Options{Upstreams: []string{up.Addr}, Timeout: 200 * time.Millisecond})
	if r := resolveSync(t, g, question(t, "s.example.com", dns.TypeA)); r != nil {
		t.Fatalf("want SERVFAIL, got %v", r)
	}
}

func TestNegativeCachingUsesSOA(t *testing.T) {
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		soa, _ := dns.NewRR("example.com. 3600 IN SOA ns. host. 1 7200 900 1209600 7")
		m.Ns = append(m.Ns, soa)
		w.WriteMsg(m)
	})
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}})
	now := time.Now()
	f.cache.now = func() time.Time { return now }
	q := question(t, "nope.example.com", dns.TypeA)
	if r := resolveSync(t, f, q); r.Rcode != dns.RcodeNameError {
		t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	now = now.Add(6 * time.Second)
	if r := f.Cached(&q, nil); r == nil || unpack(t, r).Ns[0].Header().Ttl != 1 {
		t.Fatalf("within the SOA minimum (7 s) the NXDOMAIN is cached with its TTL counting down")
	}
	now = now.Add(2 * time.Second)
	if r := f.Cached(&q, nil); r != nil {
		t.Fatalf("after 8 s the negative answer must have expired")
	}
}

func TestIdenticalConcurrentQuestionsAskOnce(t *testing.T) {
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		time.Sleep(300 * time.Millisecond)
		answerA("192.0.2.3", 60)(w, r)
	})
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}})
	var wg sync.WaitGroup
	var answered atomic.Int64
	for range 20 {
		wg.Add(1)
		f.Resolve(question(t, "same.example.com", dns.TypeA), func(r []byte) {
			if r != nil {
				answered.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if answered.Load() != 20 || up.Queries.Load() != 1 {
		t.Fatalf("answered %d, upstream queries %d (want 20, 1)", answered.Load(), up.Queries.Load())
	}
}

func TestTTLCountsDown(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.4", 100))
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}})
	now := time.Now()
	f.cache.now = func() time.Time { return now }
	q := question(t, "ttl.example.com", dns.TypeA)
	resolveSync(t, f, q)
	now = now.Add(40 * time.Second)
	r := f.Cached(&q, nil)
	if r == nil || unpack(t, r).Answer[0].Header().Ttl != 60 {
		t.Fatalf("TTL after 40 s: %v", r)
	}
}

func TestMaxTTLClamp(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.4", 86400))
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}, Cache: CacheOptions{MaxTTL: 10 * time.Second}})
	q := question(t, "long.example.com", dns.TypeA)
	resolveSync(t, f, q)
	if r := f.Cached(&q, nil); r == nil || unpack(t, r).Answer[0].Header().Ttl > 10 {
		t.Fatalf("TTL not clamped to 10 s: %v", r)
	}
}

func TestBoundedCache(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.4", 300))
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}, Cache: CacheOptions{MaxEntries: 5}})
	for i := range 20 {
		resolveSync(t, f, question(t, "n"+itoa(uint32(i))+".example.com", dns.TypeA))
	}
	if n := f.Cache().Len(); n > 5 {
		t.Fatalf("cache holds %d entries, bound 5", n)
	}
}

func TestPrefetchRefreshesPopularEntries(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.4", 10))
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}, Cache: CacheOptions{PrefetchPct: 20, PrefetchMin: 2}})
	now := time.Now()
	f.cache.now = func() time.Time { return now }
	q := question(t, "hot.example.com", dns.TypeA)
	resolveSync(t, f, q)
	f.Cached(&q, nil)
	f.Cached(&q, nil)
	if up.Queries.Load() != 1 {
		t.Fatalf("no prefetch expected yet")
	}
	now = now.Add(9 * time.Second) // last 10 % of the TTL
	if f.Cached(&q, nil) == nil {
		t.Fatal("the entry is still fresh")
	}
	deadline := time.Now().Add(10 * time.Second)
	for up.Queries.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if up.Queries.Load() != 2 {
		t.Fatalf("popular entry not refreshed before expiry (upstream queries %d)", up.Queries.Load())
	}
}
