package server

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
)

var client = netip.MustParseAddrPort("127.0.0.1:5000")

func TestCaseIsEchoed(t *testing.T) {
	h := exampleHandler(t, nil)
	m := new(dns.Msg)
	m.SetQuestion("WeB-SeRvEr-SeRvIcE.DeFaUlT.SVC.cluster.LOCAL.", dns.TypeA)
	r := ask(t, h, m, false)
	if r.Question[0].Name != m.Question[0].Name {
		t.Fatalf("question %q, want %q", r.Question[0].Name, m.Question[0].Name)
	}
	if len(r.Answer) != 1 || r.Answer[0].Header().Name != m.Question[0].Name {
		t.Fatalf("answer owner not echoed: %v", r.Answer)
	}
	if r.Id != m.Id || !r.RecursionDesired {
		t.Fatalf("id/rd not copied: %v", r.MsgHdr)
	}
}

// headlessHandler serves one headless service with n ready endpoints.
func headlessHandler(t testing.TB, n int) *Handler {
	t.Helper()
	h, err := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := registrytest.New(t).Feed(h.Update)
	sl := &registry.EndpointSlice{Key: registry.Key{Namespace: "default", Name: "big-1"}, Service: "big",
		Ports: []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 80}}}
	for i := range n {
		sl.Endpoints = append(sl.Endpoints, registry.Endpoint{
			Address: netip.MustParseAddr(fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)), Ready: true})
	}
	store.UpsertService(&registry.Service{Key: registry.Key{Namespace: "default", Name: "big"}, Kind: registry.KindHeadless})
	store.UpsertEndpointSlice(sl)
	store.Publish()
	return h
}

func TestTruncationAndEDNS(t *testing.T) {
	h := headlessHandler(t, 300)
	m := new(dns.Msg)
	m.SetQuestion("big.default.svc.cluster.local.", dns.TypeA)

	// No EDNS: 512 bytes, truncated, no records.
	r := ask(t, h, m, false)
	if !r.Truncated || len(r.Answer) != 0 || r.IsEdns0() != nil {
		t.Fatalf("plain UDP: TC=%v answers=%d opt=%v", r.Truncated, len(r.Answer), r.IsEdns0())
	}
	// EDNS 1232: still too big (300 × 16 bytes); OPT echoed with our size.
	m.SetEdns0(1232, true)
	r = ask(t, h, m, false)
	if !r.Truncated || r.IsEdns0() == nil || r.IsEdns0().UDPSize() != ednsSize || !r.IsEdns0().Do() {
		t.Fatalf("EDNS UDP: TC=%v opt=%v", r.Truncated, r.IsEdns0())
	}
	// A client buffer of 8192 gets everything over UDP.
	m.Extra = nil
	m.SetEdns0(8192, false)
	r = ask(t, h, m, false)
	if r.Truncated || len(r.Answer) != 300 {
		t.Fatalf("EDNS 8192: TC=%v answers=%d", r.Truncated, len(r.Answer))
	}
	// TCP: everything.
	m.Extra = nil
	r = ask(t, h, m, true)
	if r.Truncated || len(r.Answer) != 300 {
		t.Fatalf("TCP: TC=%v answers=%d", r.Truncated, len(r.Answer))
	}
	// A small answer fits in 512 and is not truncated.
	small := headlessHandler(t, 3)
	m.Extra = nil
	r = ask(t, small, m, false)
	if r.Truncated || len(r.Answer) != 3 {
		t.Fatalf("small: TC=%v answers=%d", r.Truncated, len(r.Answer))
	}
}

func TestBadVersionNotImpAndClass(t *testing.T) {
	h := exampleHandler(t, nil)
	m := new(dns.Msg)
	m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	if r := ask(t, h, m, false); r.Rcode != dns.RcodeBadVers {
		t.Fatalf("EDNS version 1: rcode %s, want BADVERS", dns.RcodeToString[r.Rcode])
	}
	m = new(dns.Msg)
	m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	m.Opcode = dns.OpcodeStatus
	if r := ask(t, h, m, false); r.Rcode != dns.RcodeNotImplemented {
		t.Fatalf("opcode STATUS: rcode %s", dns.RcodeToString[r.Rcode])
	}
	m = new(dns.Msg)
	m.SetQuestion("version.bind.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	if r := ask(t, h, m, false); r.Rcode != dns.RcodeRefused {
		t.Fatalf("CHAOS: rcode %s", dns.RcodeToString[r.Rcode])
	}
	m = new(dns.Msg)
	m.SetQuestion("cluster.local.", dns.TypeAXFR)
	if r := ask(t, h, m, true); r.Rcode != dns.RcodeRefused {
		t.Fatalf("AXFR: rcode %s", dns.RcodeToString[r.Rcode])
	}
}

func TestMalformedGetsFormErr(t *testing.T) {
	h := exampleHandler(t, nil)
	good, _ := (&dns.Msg{MsgHdr: dns.MsgHdr{Id: 7}, Question: []dns.Question{{Name: "a.cluster.local.", Qtype: 1, Qclass: 1}}}).Pack()
	cases := map[string][]byte{
		"two questions":    append(append([]byte{0, 7, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0}, good[12:]...), good[12:]...),
		"truncated name":   good[:15],
		"label past end":   append(append([]byte(nil), good[:12]...), 60, 'a'),
		"pointer in qname": append(append([]byte(nil), good[:12]...), 0xC0, 12, 0, 1, 0, 1),
		"trailing garbage": append(append([]byte(nil), good...), 1, 2, 3),
		"response bit set": append([]byte{0, 7, 0x80, 0}, good[4:]...),
		"no question":      {0, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"bad opt rdlength": append(append([]byte{0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1}, good[12:]...), 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 9),
	}
	for name, req := range cases {
		out := h.Respond(req, nil, client, false, nil)
		var r dns.Msg
		if err := r.Unpack(out); err != nil {
			t.Fatalf("%s: response does not parse: %v", name, err)
		}
		if r.Rcode != dns.RcodeFormatError || r.Id != 7 || !r.Response {
			t.Errorf("%s: got %s id %d", name, dns.RcodeToString[r.Rcode], r.Id)
		}
	}
	if out := h.Respond([]byte{1, 2, 3}, nil, client, false, nil); out != nil {
		t.Errorf("a packet shorter than a header must be dropped, got %x", out)
	}
}

func TestServfailBeforeFirstSnapshot(t *testing.T) {
	h, err := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	if r := ask(t, h, m, false); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("before sync: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

func TestSerialMovesWithData(t *testing.T) {
	h, _ := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5}, nil)
	store := registrytest.New(t).Feed(h.Update)
	store.Publish()
	first := h.Serial()
	store.UpsertService(&registry.Service{Key: registry.Key{Namespace: "x", Name: "y"}, Kind: registry.KindClusterIP,
		ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.5.5")}})
	store.Flush()
	if h.Serial() <= first {
		t.Fatalf("serial %d did not grow from %d", h.Serial(), first)
	}
	m := new(dns.Msg)
	m.SetQuestion("cluster.local.", dns.TypeSOA)
	r := ask(t, h, m, false)
	if r.Answer[0].(*dns.SOA).Serial != h.Serial() {
		t.Fatalf("SOA serial %d, want %d", r.Answer[0].(*dns.SOA).Serial, h.Serial())
	}
}

func benchQuery(b *testing.B, h *Handler, name string, qtype uint16) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	req, _ := m.Pack()
	out := make([]byte, 0, 65535)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if h.Respond(req, out, client, false, nil) == nil {
			b.Fatal("no answer")
		}
	}
}

// The lookup path: request bytes in, response bytes out (no sockets).
func BenchmarkRespondA(b *testing.B) {
	benchQuery(b, exampleHandler(b, nil), "web-server-service.default.svc.cluster.local.", dns.TypeA)
}
func BenchmarkRespondSRV(b *testing.B) {
	benchQuery(b, exampleHandler(b, nil), "_cql._tcp.cassandra.data.svc.cluster.local.", dns.TypeSRV)
}
func BenchmarkRespondNXDOMAIN(b *testing.B) {
	benchQuery(b, exampleHandler(b, nil), "nothere.default.svc.cluster.local.", dns.TypeA)
}
func BenchmarkRespondNODATA(b *testing.B) {
	benchQuery(b, exampleHandler(b, nil), "web-server-service.default.svc.cluster.local.", dns.TypeAAAA)
}

// The cluster answer path allocates nothing (a regression guard: a pointer
// to the parsed query that escapes moves every query to the heap).
func TestClusterAnswerDoesNotAllocate(t *testing.T) {
	h := exampleHandler(t, func(o *Options) { o.Autopath = true; o.Pods = PodsVerified })
	for _, name := range []string{"web-server-service.default.svc.cluster.local.", "nothere.default.svc.cluster.local."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.SetEdns0(1232, false)
		req, _ := m.Pack()
		out := make([]byte, 0, 4096)
		if n := testing.AllocsPerRun(100, func() { h.Respond(req, out, client, false, nil) }); n != 0 {
			t.Errorf("%s: %v allocations per query, want 0", name, n)
		}
	}
}

func TestEndpointsSharingAHostname(t *testing.T) {
	h, _ := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5}, nil)
	store := registrytest.New(t).Feed(h.Update)
	store.UpsertService(&registry.Service{Key: registry.Key{Namespace: "ns", Name: "db"}, Kind: registry.KindHeadless})
	var eps []registry.Endpoint
	for i, host := range []string{"x", "y", "x", "x"} {
		eps = append(eps, registry.Endpoint{Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), Hostname: host, Ready: true})
	}
	store.UpsertEndpointSlice(&registry.EndpointSlice{Key: registry.Key{Namespace: "ns", Name: "db-1"}, Service: "db", Endpoints: eps})
	store.Publish()
	for name, want := range map[string]int{"x.db.ns.svc.cluster.local.": 3, "y.db.ns.svc.cluster.local.": 1} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		if r := ask(t, h, m, false); len(r.Answer) != want {
			t.Errorf("%s: %d records, want %d: %v", name, len(r.Answer), want, r.Answer)
		}
	}
}
