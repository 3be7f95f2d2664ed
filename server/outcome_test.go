package server

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
)

// Handle says what became of each kind of request, and its Msg agrees.
func TestHandleOutcomes(t *testing.T) {
	up := testdns.Start(t, testdns.AnswerA("192.0.2.10", 60))
	h := forwardingHandler(t, up.Addr, false)
	local, outsider := netip.MustParseAddrPort("127.0.0.1:4000"), netip.MustParseAddrPort("192.0.2.1:4000")
	pack := func(name string, qtype uint16, edit func(*dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		if edit != nil {
			edit(m)
		}
		req, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	for _, c := range []struct {
		name    string
		req     []byte
		client  netip.AddrPort
		outcome Outcome
		rcode   int
		zone    string
	}{
		{"ClusterIP A", pack("web-server-service.default.svc.cluster.local.", dns.TypeA, nil), local, Success, dns.RcodeSuccess, "cluster"},
		{"headless A (live)", pack("cassandra.data.svc.cluster.local.", dns.TypeA, nil), local, Success, dns.RcodeSuccess, "cluster"},
		{"NODATA", pack("web-server-service.default.svc.cluster.local.", dns.TypeTXT, nil), local, NoData, dns.RcodeSuccess, "cluster"},
		{"NXDOMAIN", pack("nothere.default.svc.cluster.local.", dns.TypeA, nil), local, NameError, dns.RcodeNameError, "cluster"},
		{"PTR", pack("100.0.96.10.in-addr.arpa.", dns.TypePTR, nil), local, Success, dns.RcodeSuccess, "reverse"},
		{"zone file", pack("www.example.test.", dns.TypeA, nil), local, Success, dns.RcodeSuccess, "zonefile"},
		{"zone file NXDOMAIN", pack("nothere.example.test.", dns.TypeA, nil), local, NameError, dns.RcodeNameError, "zonefile"},
		{"outside, no recursion for this client", pack("www.example.com.", dns.TypeA, nil), outsider, Refused, dns.RcodeRefused, "refused"},
		{"class CH", pack("web-server-service.default.svc.cluster.local.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), local, Refused, dns.RcodeRefused, "other"},
		{"opcode NOTIFY", pack("cluster.local.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), local, Failed, dns.RcodeNotImplemented, "other"},
		{"EDNS version 1", pack("cluster.local.", dns.TypeSOA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), local, Failed, dns.RcodeBadVers, "other"},
		{"malformed", []byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1}, local, Failed, dns.RcodeFormatError, "other"},
		{"shorter than a header", []byte{0, 1, 2}, local, Dropped, 0, "other"},
	} {
		r := h.Handle(c.req, nil, c.client, false, func(netip.AddrPort, []byte) { t.Errorf("%s: deferred answer", c.name) })
		if r.Outcome != c.outcome || r.Rcode != c.rcode || r.Zone.String() != c.zone {
			t.Errorf("%s: %v rcode %d zone %v, want %v rcode %d zone %s", c.name, r.Outcome, r.Rcode, r.Zone, c.outcome, c.rcode, c.zone)
		}
		if c.outcome == Dropped {
			if r.Msg != nil {
				t.Errorf("%s: dropped with a response %x", c.name, r.Msg)
			}
			continue
		}
		var m dns.Msg
		if err := m.Unpack(r.Msg); err != nil {
			t.Fatalf("%s: response does not parse: %v", c.name, err)
		}
		if m.Rcode != c.rcode {
			t.Errorf("%s: response rcode %d, result says %d", c.name, m.Rcode, c.rcode)
		}
		if (len(m.Answer) > 0) != (c.outcome == Success) {
			t.Errorf("%s: %d answers for outcome %v", c.name, len(m.Answer), c.outcome)
		}
	}

	// A question for the upstream: Forwarded with nothing to send now, the
	// answer later through send; then a cache hit answered at once.
	req := pack("www.example.com.", dns.TypeA, nil)
	sent := make(chan []byte, 1)
	r := h.Handle(req, nil, local, false, func(_ netip.AddrPort, b []byte) { sent <- append([]byte(nil), b...) })
	if r.Outcome != Forwarded || r.Msg != nil || r.Zone.String() != "forward" {
		t.Fatalf("forwarded question: %v zone %v msg %x, want forwarded, no message", r.Outcome, r.Zone, r.Msg)
	}
	select {
	case b := <-sent:
		var m dns.Msg
		if err := m.Unpack(b); err != nil || len(m.Answer) != 1 {
			t.Fatalf("deferred answer %v (%v)", m.Answer, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no deferred answer")
	}
	if r := h.Handle(req, nil, local, false, nil); r.Outcome != Success || r.Zone.String() != "forward" || r.Msg == nil {
		t.Errorf("cached question: %v zone %v, want success from forward", r.Outcome, r.Zone)
	}
}

// Truncation keeps the result's rcode and authority: a NXDOMAIN too large
// for the client is TC=1, NXDOMAIN, AA; a forwarded one is not AA.
func TestTruncationKeepsRcodeAndAuthority(t *testing.T) {
	h := exampleHandler(t, nil)
	var q query
	m := new(dns.Msg)
	m.SetQuestion("nothere.default.svc.cluster.local.", dns.TypeA)
	req, _ := m.Pack()
	if err := parseQuery(req, &q); err != nil {
		t.Fatal(err)
	}
	r, ok := h.answer(nil, &q, req)
	if !ok || r.Outcome != NameError {
		t.Fatalf("answer: %v %v", r.Outcome, ok)
	}
	q.truncAt = len(r.Msg) - 1
	for _, c := range []struct {
		zone Zone
		aa   bool
	}{{zoneCluster, true}, {zoneForward, false}} {
		r.Zone = c.zone
		var got dns.Msg
		if err := got.Unpack(finish(r, &q, req)); err != nil {
			t.Fatal(err)
		}
		if !got.Truncated || got.Rcode != dns.RcodeNameError || got.Authoritative != c.aa || len(got.Ns) != 0 {
			t.Errorf("zone %v: TC %v rcode %d AA %v, %d authority records; want TC, NXDOMAIN, AA %v, none",
				c.zone, got.Truncated, got.Rcode, got.Authoritative, len(got.Ns), c.aa)
		}
	}
}
