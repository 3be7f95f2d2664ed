package server

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
	"github.com/clusterdns/clusterdns/resolver"
)

// udpRaw sends one packet from a fresh socket and returns the raw reply.
func udpRaw(t *testing.T, addr netip.AddrPort, req []byte) []byte {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	return buf[:n]
}

// No amplification: a small UDP query without EDNS never gets more than
// 512 bytes back, with EDNS size S never more than S (below 512: 512), for
// the biggest answers there are: a headless service of 300 endpoints (A,
// SRV, ANY), the zone apex (ANY), a forwarded answer of 100 TXT records.
// ANY is answered with one RRset (RFC 8482). Over TCP the whole answer
// comes back.
func TestNoAmplificationOverUDP(t *testing.T) {
	up := testdns.Start(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for i := range 100 {
			rr, _ := dns.NewRR(fmt.Sprintf("%s 60 IN TXT \"record %03d of a large forwarded answer\"", r.Question[0].Name, i))
			m.Answer = append(m.Answer, rr)
		}
		if w.RemoteAddr().Network() == "udp" {
			size := 512
			if opt := r.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(size) // a real upstream: TC=1, the forwarder retries over TCP
		}
		w.WriteMsg(m)
	})
	fwd, err := resolver.New(resolver.Options{Upstreams: []string{up.Addr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5, Fallback: fwd,
		RecursionFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		DNSService:    registry.Key{Namespace: "kube-system", Name: "kube-dns"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := registrytest.New(t).Feed(h.Update)
	sl := &registry.EndpointSlice{Key: registry.Key{Namespace: "default", Name: "big-1"}, Service: "big",
		Ports: []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 80}, {Name: "grpc", Protocol: registry.TCP, Port: 9090}}}
	for i := range 300 {
		sl.Endpoints = append(sl.Endpoints, registry.Endpoint{Address: netip.MustParseAddr(fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)), Ready: true})
	}
	store.UpsertService(&registry.Service{Key: registry.Key{Namespace: "default", Name: "big"}, Kind: registry.KindHeadless})
	store.UpsertEndpointSlice(sl)
	mid := &registry.EndpointSlice{Key: registry.Key{Namespace: "default", Name: "mid-1"}, Service: "mid"}
	for i := range 60 {
		mid.Endpoints = append(mid.Endpoints, registry.Endpoint{Address: netip.MustParseAddr(fmt.Sprintf("10.2.0.%d", i+1)), Ready: true})
	}
	store.UpsertService(&registry.Service{Key: registry.Key{Namespace: "default", Name: "mid"}, Kind: registry.KindHeadless})
	store.UpsertEndpointSlice(mid)
	store.Publish()
	l := startListener(t, h, ListenOptions{UDPSockets: 1}, nil)

	questions := []struct {
		name  string
		qtype uint16
	}{
		{"big.default.svc.cluster.local.", dns.TypeA},
		{"mid.default.svc.cluster.local.", dns.TypeA},
		{"big.default.svc.cluster.local.", dns.TypeANY},
		{"_http._tcp.big.default.svc.cluster.local.", dns.TypeSRV},
		{"cluster.local.", dns.TypeANY},
		{"large.example.org.", dns.TypeTXT},
	}
	for _, q := range questions {
		for _, size := range []uint16{0, 100, 512, 1232, 4096} {
			m := new(dns.Msg)
			m.SetQuestion(q.name, q.qtype)
			limit := 512
			if size > 0 {
				m.SetEdns0(size, false)
				limit = max(int(size), 512)
			}
			req, _ := m.Pack()
			resp := udpRaw(t, l.Addr(), req)
			var r dns.Msg
			if err := r.Unpack(resp); err != nil {
				t.Fatalf("%s %s EDNS %d: %v", q.name, dns.TypeToString[q.qtype], size, err)
			}
			if len(resp) > limit {
				t.Errorf("%s %s EDNS %d: %d-byte query got %d bytes, limit %d", q.name, dns.TypeToString[q.qtype], size, len(req), len(resp), limit)
			}
			if q.name == "mid.default.svc.cluster.local." && size >= 1232 && (r.Truncated || len(r.Answer) != 60) {
				t.Errorf("60 endpoints fit in %d bytes: TC=%v, %d answers", size, r.Truncated, len(r.Answer))
			}
			if q.qtype == dns.TypeANY && !r.Truncated {
				types := map[uint16]bool{}
				for _, rr := range r.Answer {
					types[rr.Header().Rrtype] = true
				}
				if len(types) > 1 {
					t.Errorf("ANY %s answered with %d RRsets, want one (RFC 8482): %v", q.name, len(types), r.Answer)
				}
			}
			t.Logf("%-45s %-4s EDNS %4d: query %d bytes, reply %4d bytes, %s TC=%v, %d answers", q.name, dns.TypeToString[q.qtype], size, len(req), len(resp), dns.RcodeToString[r.Rcode], r.Truncated, len(r.Answer))
		}
	}
	// TCP carries the whole answer.
	tcp := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("big.default.svc.cluster.local.", dns.TypeA)
	r, _, err := tcp.Exchange(m, l.Addr().String())
	if err != nil || len(r.Answer) != 300 || r.Truncated {
		t.Fatalf("TCP: %d answers, TC=%v, %v", len(r.Answer), r.Truncated, err)
	}
	// ANY of a cluster service: one RRset.
	m.SetQuestion("big.default.svc.cluster.local.", dns.TypeANY)
	r, _, err = tcp.Exchange(m, l.Addr().String())
	if err != nil || len(r.Answer) != 300 || r.Answer[0].Header().Rrtype != dns.TypeA {
		t.Fatalf("TCP ANY: %v %v", r, err)
	}
}
