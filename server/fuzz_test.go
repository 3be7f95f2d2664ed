package server

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
	"github.com/clusterdns/clusterdns/resolver"
)

// FuzzRespond feeds raw packets to the request path with the example
// cluster, zone files and a forwarder loaded. Every packet of 12 bytes or
// more must get a well-formed response (FORMERR at worst) or be handed to
// the forwarder; nothing may panic.
func FuzzRespond(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  bool
	}{
		{"web-server-service.default.svc.cluster.local.", dns.TypeA, true},
		{"_cql._tcp.cassandra.data.svc.cluster.local.", dns.TypeSRV, false},
		{"search.apps.svc.cluster.local.", dns.TypeA, true},
		{"10-244-1-10.default.pod.cluster.local.", dns.TypeA, false},
		{"100.0.96.10.in-addr.arpa.", dns.TypePTR, false},
		{"nothere.default.svc.cluster.local.", dns.TypeAAAA, true},
		{"www.example.test.default.svc.cluster.local.", dns.TypeA, false},
		{"api.example.test.", dns.TypeANY, true},
		{"outside.example.org.", dns.TypeA, false},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		if q.edns {
			m.SetEdns0(4096, true)
		}
		b, _ := m.Pack()
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1}, false)
	f.Add([]byte{0, 1, 0x28, 0, 0, 1, 0, 1, 0, 0, 0, 1}, true)

	up := testdns.Start(f, testdns.AnswerA("192.0.2.1", 60))
	fwd, err := resolver.New(resolver.Options{Upstreams: []string{up.Addr}, Timeout: 200 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	h := exampleHandler(f, func(o *Options) {
		o.Fallback = fwd
		o.RecursionFrom = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		o.Autopath = true
		o.Pods = PodsVerified
	})
	pod := netip.MustParseAddrPort("10.244.1.10:5000")
	f.Fuzz(func(t *testing.T, req []byte, tcp bool) {
		resp := h.Respond(req, make([]byte, 0, 512), pod, tcp, func(netip.AddrPort, []byte) {})
		if len(req) < headerLen {
			if resp != nil {
				t.Fatalf("answered a %d-byte packet", len(req))
			}
			return
		}
		if resp == nil {
			return // handed to the forwarder
		}
		var m dns.Msg
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("response does not parse: %v\nrequest %x\nresponse %x", err, req, resp)
		}
		if !m.Response || m.Id != uint16(req[0])<<8|uint16(req[1]) {
			t.Fatalf("response header wrong: %v", m.MsgHdr)
		}
		if !tcp && len(resp) > 4096 {
			t.Fatalf("UDP response of %d bytes exceeds every buffer a client can ask for", len(resp))
		}
	})
}
