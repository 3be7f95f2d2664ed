package server

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
	"github.com/clusterdns/clusterdns/resolver"
)

// forwardingHandler serves the example cluster and forwards the rest to a
// real upstream on loopback.
func forwardingHandler(t *testing.T, upstream string, autopath bool) *Handler {
	t.Helper()
	f, err := resolver.New(resolver.Options{Upstreams: []string{upstream}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return exampleHandler(t, func(o *Options) {
		o.Fallback = f
		o.RecursionFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
		o.Autopath = autopath
	})
}

// askFrom sends m as client and waits for the (possibly deferred) answer.
func askFrom(t *testing.T, h *Handler, m *dns.Msg, client string) *dns.Msg {
	t.Helper()
	req, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan []byte, 1)
	out := h.Respond(req, nil, netip.MustParseAddrPort(client), false, func(_ netip.AddrPort, b []byte) { ch <- append([]byte(nil), b...) })
	if out == nil {
		select {
		case out = <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no deferred answer")
		}
	}
	r := new(dns.Msg)
	if err := r.Unpack(out); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestForwardedAnswerIsPatchedForTheClient(t *testing.T) {
	up := testdns.Start(t, testdns.AnswerA("192.0.2.10", 60))
	h := forwardingHandler(t, up.Addr, false)
	for i, name := range []string{"WWW.Example.COM.", "www.example.com."} { // the second comes from the cache
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.SetEdns0(1232, true)
		r := askFrom(t, h, m, "127.0.0.1:4000")
		if r.Id != m.Id || r.Question[0].Name != name || !r.RecursionAvailable || r.Authoritative {
			t.Fatalf("query %d: header/question not patched: %v", i, r)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.10" {
			t.Fatalf("query %d: answer %v", i, r.Answer)
		}
		if opt := r.IsEdns0(); opt == nil || !opt.Do() {
			t.Fatalf("query %d: OPT with DO not echoed", i)
		}
	}
	if up.Queries.Load() != 1 {
		t.Fatalf("upstream asked %d times, want 1", up.Queries.Load())
	}
}

func TestRecursionOnlyForAllowedClients(t *testing.T) {
	up := testdns.Start(t, testdns.AnswerA("192.0.2.10", 60))
	h := forwardingHandler(t, up.Addr, false)
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	if r := askFrom(t, h, m, "203.0.113.7:4000"); r.Rcode != dns.RcodeRefused {
		t.Fatalf("outside client: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	if r := askFrom(t, h, m, "203.0.113.7:4000"); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("outside client still gets authoritative answers: %v", r)
	}
	if up.Queries.Load() != 0 {
		t.Fatal("a refused client's question reached upstream")
	}
}

func TestAutopath(t *testing.T) {
	// The upstream knows only the bare name the search path ends on.
	up := testdns.Start(t, func(w dns.ResponseWriter, r *dns.Msg) {
		if r.Question[0].Name != "api.upstream.example." {
			m := new(dns.Msg)
			w.WriteMsg(m.SetRcode(r, dns.RcodeNameError))
			return
		}
		testdns.AnswerA("192.0.2.20", 60)(w, r)
	})
	h := forwardingHandler(t, up.Addr, true)
	pod := "10.244.1.10:5000" // web-server-6d4cf56db6-abcde in namespace default

	// A cluster name found on the second search domain.
	m := new(dns.Msg)
	m.SetQuestion("cassandra.data.default.svc.cluster.local.", dns.TypeA)
	r := askFrom(t, h, m, pod)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 3 || r.Answer[0].(*dns.CNAME).Target != "cassandra.data.svc.cluster.local." {
		t.Fatalf("cluster hit: %v", r)
	}
	// A zone-file name: the bare name is served here.
	m.SetQuestion("www.example.test.default.svc.cluster.local.", dns.TypeA)
	r = askFrom(t, h, m, pod)
	if len(r.Answer) != 2 || r.Answer[0].(*dns.CNAME).Target != "www.example.test." || r.Answer[1].(*dns.A).A.String() != "127.0.0.80" {
		t.Fatalf("zone file hit: %v", r)
	}
	// An outside name: one upstream query, answered as a CNAME chain.
	m.SetQuestion("api.upstream.example.default.svc.cluster.local.", dns.TypeA)
	r = askFrom(t, h, m, pod)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 || r.Answer[1].(*dns.A).A.String() != "192.0.2.20" ||
		r.Question[0].Name != m.Question[0].Name || r.Answer[0].Header().Name != m.Question[0].Name {
		t.Fatalf("upstream hit: %v", r)
	}
	// Not from a pod (unknown client): the plain NXDOMAIN.
	r = askFrom(t, h, m, "127.0.0.1:5000")
	if r.Rcode != dns.RcodeNameError {
		t.Fatalf("unknown client: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	// Another namespace's search domain: not this pod's first expansion.
	m.SetQuestion("api.upstream.example.data.svc.cluster.local.", dns.TypeA)
	if r = askFrom(t, h, m, pod); r.Rcode != dns.RcodeNameError {
		t.Fatalf("other namespace: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
}

// BenchmarkForwardCached: a forwarded name answered from the cache, request
// bytes to response bytes.
func BenchmarkForwardCached(b *testing.B) {
	up := testdns.Start(b, testdns.AnswerA("192.0.2.10", 3600))
	f, err := resolver.New(resolver.Options{Upstreams: []string{up.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	h := exampleHandler(b, func(o *Options) {
		o.Fallback = f
		o.RecursionFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	req, _ := m.Pack()
	client := netip.MustParseAddrPort("127.0.0.1:4000")
	done := make(chan struct{}, 1)
	if h.Respond(req, nil, client, false, func(netip.AddrPort, []byte) { done <- struct{}{} }) == nil {
		<-done
	}
	out := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if h.Respond(req, out, client, false, nil) == nil {
			b.Fatal("not cached")
		}
	}
}

// BenchmarkForwardMiss: every question is new, so each one goes to a real
// upstream on loopback (UDP) and back.
func BenchmarkForwardMiss(b *testing.B) {
	up := testdns.Start(b, testdns.AnswerA("192.0.2.10", 3600))
	f, err := resolver.New(resolver.Options{Upstreams: []string{up.Addr}, Cache: resolver.CacheOptions{MaxEntries: 1}})
	if err != nil {
		b.Fatal(err)
	}
	h := exampleHandler(b, func(o *Options) {
		o.Fallback = f
		o.RecursionFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	client := netip.MustParseAddrPort("127.0.0.1:4000")
	done := make(chan struct{}, 1)
	send := func(netip.AddrPort, []byte) { done <- struct{}{} }
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("n%d.example.com.", i), dns.TypeA)
		req, _ := m.Pack()
		if h.Respond(req, nil, client, false, send) == nil {
			<-done
		}
	}
}

func TestAutopathFindsEndpointNames(t *testing.T) {
	up := testdns.Start(t, testdns.AnswerA("192.0.2.99", 60))
	h := forwardingHandler(t, up.Addr, true)
	m := new(dns.Msg)
	m.SetQuestion("cassandra-0.cassandra.data.default.svc.cluster.local.", dns.TypeA)
	r := askFrom(t, h, m, "10.244.1.10:5000")
	if len(r.Answer) != 2 || r.Answer[1].(*dns.A).A.String() != "10.244.1.20" {
		t.Fatalf("endpoint name through the search path: %v", r)
	}
	if up.Queries.Load() != 0 {
		t.Fatal("a cluster endpoint name was forwarded")
	}
}
