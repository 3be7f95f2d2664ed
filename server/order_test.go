package server

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
	"github.com/clusterdns/clusterdns/resolver"
)

func firstAddrs(t *testing.T, h *Handler, name string, qtype uint16, queries int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	var want []string
	for i := range queries {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r := askFrom(t, h, m, "127.0.0.1:4000")
		var got []string
		for _, rr := range r.Answer {
			switch a := rr.(type) {
			case *dns.A:
				got = append(got, a.A.String())
			case *dns.AAAA:
				got = append(got, a.AAAA.String())
			}
		}
		if len(got) == 0 {
			t.Fatalf("no addresses: %v", r)
		}
		counts[got[0]]++
		slices.Sort(got)
		if i == 0 {
			want = got
		} else if !slices.Equal(got, want) {
			t.Fatalf("query %d: the set changed: %v, want %v", i, got, want)
		}
	}
	return counts
}

func TestRoundRobinRotatesHeadlessAnswers(t *testing.T) {
	h := headlessHandler(t, 10)
	counts := firstAddrs(t, h, "big.default.svc.cluster.local.", dns.TypeA, 50)
	if len(counts) != 10 {
		t.Fatalf("first addresses %v: want each of the 10 endpoints first 5 times", counts)
	}
	for a, n := range counts {
		if n != 5 {
			t.Fatalf("%s first %d times in 50 queries, want 5 (round robin)", a, n)
		}
	}
}

func TestRandomOrderSpreadsFirstAddress(t *testing.T) {
	hh, err := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5, AnswerOrder: "random"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := headlessHandler(t, 4)
	if err := hh.Update(src.cluster.Load().snap); err != nil {
		t.Fatal(err)
	}
	counts := firstAddrs(t, hh, "big.default.svc.cluster.local.", dns.TypeA, 400)
	// Each of 4 addresses is first with p = 1/4: 100 expected; the bounds
	// are more than 6 standard deviations (8.7) wide.
	for a, n := range counts {
		if n < 45 || n > 155 {
			t.Fatalf("%s first %d times in 400, want about 100: %v", a, n, counts)
		}
	}
	if len(counts) != 4 {
		t.Fatalf("first addresses %v, want all 4", counts)
	}
}

func TestOrderOffKeepsTheOrder(t *testing.T) {
	hh, err := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5, AnswerOrder: "off"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := hh.Update(headlessHandler(t, 5).cluster.Load().snap); err != nil {
		t.Fatal(err)
	}
	if counts := firstAddrs(t, hh, "big.default.svc.cluster.local.", dns.TypeA, 20); len(counts) != 1 {
		t.Fatalf("order off: first addresses %v, want always the same", counts)
	}
}

func TestForwardedAnswersRotateAfterTheCNAME(t *testing.T) {
	up := testdns.Start(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300}, Target: "lb.example.net."})
		for i := 1; i <= 3; i++ {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "lb.example.net.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, byte(i))})
		}
		w.WriteMsg(m)
	})
	f, err := resolver.New(resolver.Options{Upstreams: []string{up.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	h := exampleHandler(t, func(o *Options) {
		o.Fallback = f
		o.RecursionFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	seen := map[string]bool{}
	for range 6 {
		m := new(dns.Msg)
		m.SetQuestion("www.example.com.", dns.TypeA)
		r := askFrom(t, h, m, "127.0.0.1:4000")
		if len(r.Answer) != 4 || r.Answer[0].Header().Rrtype != dns.TypeCNAME {
			t.Fatalf("answer %v", r.Answer)
		}
		seen[r.Answer[1].(*dns.A).A.String()] = true
	}
	if len(seen) != 3 {
		t.Fatalf("first address after the CNAME over 6 queries: %v, want all 3", seen)
	}
}

func TestRotationDoesNotAllocate(t *testing.T) {
	h := headlessHandler(t, 10)
	m := new(dns.Msg)
	m.SetQuestion("big.default.svc.cluster.local.", dns.TypeA)
	req, _ := m.Pack()
	out := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { h.Respond(req, out, client, false, nil) }); n != 0 {
		t.Fatalf("%v allocations per rotated answer", n)
	}
}
