package server

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
)

// referenceSRV is how the SRV answers of a headless service were packed
// before they were written at query time (miekg/dns, one prepared message
// per name, truncated to 64 KiB): the records srvAnswer must reproduce, in
// the same order.
func referenceSRV(e *registry.ServiceEntry, owner, port, proto string) (answer, extra []string) {
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 5}
	}
	svc := e.Name + "." + e.Namespace + ".svc.cluster.local."
	var ans, add []dns.RR
	for i := range e.Endpoints {
		ep := &e.Endpoints[i]
		if !e.Published(ep) {
			continue
		}
		host := ep.DNSName + "." + svc
		var a dns.RR = &dns.A{Hdr: hdr(host, dns.TypeA), A: ep.Address.AsSlice()}
		if ep.Address.Is6() {
			a = &dns.AAAA{Hdr: hdr(host, dns.TypeAAAA), AAAA: ep.Address.AsSlice()}
		}
		for _, p := range ep.Ports() {
			srv := &dns.SRV{Hdr: hdr(owner, dns.TypeSRV), Weight: 100, Port: uint16(p.Port), Target: host}
			if port == "" {
				if !slices.ContainsFunc(ans, func(x dns.RR) bool { return dns.IsDuplicate(x, srv) }) {
					ans = append(ans, srv)
					add = append(add, a)
				}
			} else if strings.EqualFold(p.Name, port) && strings.EqualFold(string(p.Protocol), proto) {
				ans = append(ans, srv)
				add = append(add, a)
			}
		}
	}
	p, err := prepare(owner, dns.TypeSRV, ans, dedupRR(add), dns.RcodeSuccess)
	if err != nil {
		panic(err)
	}
	var m dns.Msg
	if err := m.Unpack(p.wire); err != nil {
		panic(err)
	}
	for _, rr := range m.Answer {
		answer = append(answer, strings.ToLower(rr.String()))
	}
	for _, rr := range m.Extra {
		extra = append(extra, strings.ToLower(rr.String()))
	}
	return answer, extra
}

func TestHeadlessSRVAtQueryTime(t *testing.T) {
	tcp := func(name string, port int32) registry.EndpointPort {
		return registry.EndpointPort{Name: name, Protocol: registry.TCP, Port: port}
	}
	ep := func(addr, host string, ready bool) registry.Endpoint {
		return registry.Endpoint{Address: netip.MustParseAddr(addr), Hostname: host, Ready: ready}
	}
	many := func(n int, v6 bool) []registry.Endpoint {
		var out []registry.Endpoint
		for i := range n {
			a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
			if v6 {
				a = netip.AddrFrom16([16]byte{0xfd, 0, 14: byte(i >> 8), 15: byte(i)})
			}
			out = append(out, registry.Endpoint{Address: a, Ready: i%7 != 3})
		}
		return out
	}
	type slice struct {
		ports []registry.EndpointPort
		eps   []registry.Endpoint
	}
	cases := []struct {
		name     string
		notReady bool
		slices   []slice
	}{
		{name: "two named ports and an unnamed one", slices: []slice{{
			ports: []registry.EndpointPort{tcp("http", 80), tcp("grpc", 90), {Protocol: registry.UDP, Port: 53}},
			eps:   []registry.Endpoint{ep("10.0.0.1", "a", true), ep("10.0.0.2", "", true), ep("10.0.0.3", "c", false)},
		}}},
		{name: "not ready published", notReady: true, slices: []slice{{
			ports: []registry.EndpointPort{tcp("http", 80)},
			eps:   []registry.Endpoint{ep("10.0.0.1", "a", false), ep("fd00::2", "", true)},
		}}},
		{name: "shared hostnames and a port number under two names", slices: []slice{
			{ports: []registry.EndpointPort{tcp("http", 80), {Name: "http", Protocol: registry.UDP, Port: 80}},
				eps: []registry.Endpoint{ep("10.0.0.1", "same", true), ep("10.0.0.2", "same", true), ep("10.0.0.3", "other", true)}},
			{ports: []registry.EndpointPort{tcp("http", 80), tcp("admin", 81)},
				eps: []registry.Endpoint{ep("10.0.0.4", "same", true), ep("10.0.0.2", "same", true)}},
		}},
		{name: "1000 endpoints (targets beyond pointer reach)", slices: []slice{{
			ports: []registry.EndpointPort{tcp("http", 80)}, eps: many(1000, false)}}},
		{name: "700 IPv6 endpoints, two ports", slices: []slice{{
			ports: []registry.EndpointPort{tcp("http", 80), tcp("grpc", 90)}, eps: many(700, true)}}},
		{name: "3000 endpoints (over 64 KiB)", slices: []slice{{
			ports: []registry.EndpointPort{tcp("http", 80)}, eps: many(3000, false)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, st := storeHandler(t)
			k := registry.Key{Namespace: "ns", Name: "hl"}
			st.UpsertService(&registry.Service{Key: k, Kind: registry.KindHeadless, PublishNotReadyAddresses: c.notReady})
			for i, sl := range c.slices {
				st.UpsertEndpointSlice(&registry.EndpointSlice{Key: registry.Key{Namespace: "ns", Name: fmt.Sprintf("hl-%d", i)},
					Service: "hl", Ports: sl.ports, Endpoints: sl.eps})
			}
			st.MarkSynced()
			e := st.Flush().Service(k)
			owners := map[string][2]string{"hl.ns.svc.cluster.local.": {}}
			for _, sl := range c.slices {
				for _, p := range sl.ports {
					if p.Name != "" {
						owners["_"+p.Name+"._"+strings.ToLower(string(p.Protocol))+".hl.ns.svc.cluster.local."] = [2]string{p.Name, string(p.Protocol)}
					}
				}
			}
			// Every endpoint name answers the addresses of the endpoints
			// that have it (hostnames may repeat).
			byLabel := map[string][]string{}
			for i := range e.Endpoints {
				if ep := &e.Endpoints[i]; e.Published(ep) && ep.Address.Is4() {
					byLabel[ep.DNSName] = append(byLabel[ep.DNSName], ep.Address.String())
				}
			}
			for label, want := range byLabel {
				r := ask(t, h, new(dns.Msg).SetQuestion(label+".hl.ns.svc.cluster.local.", dns.TypeA), true)
				var gotIPs []string
				for _, rr := range r.Answer {
					gotIPs = append(gotIPs, rr.(*dns.A).A.String())
				}
				if !slices.Equal(gotIPs, want) {
					t.Fatalf("%s A: %q, want %q", label, gotIPs, want)
				}
			}
			for owner, pp := range owners {
				for _, asked := range []string{owner, strings.ToUpper(owner)} {
					r := ask(t, h, new(dns.Msg).SetQuestion(asked, dns.TypeSRV), true)
					if r.Rcode != dns.RcodeSuccess || !r.Authoritative || r.Question[0].Name != asked {
						t.Fatalf("%s: rcode %d aa %v question %s", asked, r.Rcode, r.Authoritative, r.Question[0].Name)
					}
					var gotA, gotX []string
					for _, rr := range r.Answer {
						gotA = append(gotA, strings.ToLower(rr.String()))
					}
					for _, rr := range r.Extra {
						gotX = append(gotX, strings.ToLower(rr.String()))
					}
					wantA, wantX := referenceSRV(e, owner, strings.ToLower(pp[0]), strings.ToLower(pp[1]))
					if !slices.Equal(gotA, wantA) || !slices.Equal(gotX, wantX) {
						t.Fatalf("%s:\nanswer %d %q\nwant   %d %q\nextra %d %q\nwant  %d %q", asked,
							len(gotA), head(gotA), len(wantA), head(wantA), len(gotX), head(gotX), len(wantX), head(wantX))
					}
				}
			}
		})
	}
}

func head(s []string) []string { return s[:min(len(s), 6)] }

// An alias to a headless service is chased into its SRV answer.
func TestHeadlessSRVThroughAlias(t *testing.T) {
	h, st := storeHandler(t)
	st.UpsertService(&registry.Service{Key: registry.Key{Namespace: "ns", Name: "hl"}, Kind: registry.KindHeadless})
	st.UpsertService(&registry.Service{Key: registry.Key{Namespace: "ns", Name: "alias"}, Kind: registry.KindExternalName,
		ExternalName: "_http._tcp.hl.ns.svc.cluster.local"})
	st.UpsertEndpointSlice(&registry.EndpointSlice{Key: registry.Key{Namespace: "ns", Name: "hl-1"}, Service: "hl",
		Ports:     []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 80}},
		Endpoints: []registry.Endpoint{{Address: netip.MustParseAddr("10.0.0.1"), Hostname: "a", Ready: true}}})
	st.Publish()
	r := ask(t, h, new(dns.Msg).SetQuestion("alias.ns.svc.cluster.local.", dns.TypeSRV), false)
	want := rrs(t, 0,
		"alias.ns.svc.cluster.local. 5 IN CNAME _http._tcp.hl.ns.svc.cluster.local.",
		"_http._tcp.hl.ns.svc.cluster.local. 5 IN SRV 0 100 80 a.hl.ns.svc.cluster.local.")
	if g := got(r.Answer); !slices.Equal(g, want) {
		t.Fatalf("answer %q, want %q", g, want)
	}
	if g, w := got(r.Extra), rrs(t, 0, "a.hl.ns.svc.cluster.local. 5 IN A 10.0.0.1"); !slices.Equal(g, w) {
		t.Fatalf("extra %q, want %q", g, w)
	}
}

// ClusterIP SRV answers written at query time match the old packing: one
// record per port (a port number once at the service name), target the
// service, its addresses in Additional.
func TestClusterIPSRVAtQueryTime(t *testing.T) {
	ports := []registry.ServicePort{
		{Name: "http", Protocol: registry.TCP, Port: 80}, {Name: "dns", Protocol: registry.UDP, Port: 53},
		{Name: "dns", Protocol: registry.TCP, Port: 53}, {Name: "http-alt", Protocol: registry.TCP, Port: 80},
		{Name: "http", Protocol: registry.TCP, Port: 81}, {Protocol: registry.TCP, Port: 8080},
	}
	for _, ips := range [][]string{{"10.96.0.10", "fd00::10"}, {"fd00::11"}, nil} {
		h, st := storeHandler(t)
		svc := &registry.Service{Key: registry.Key{Namespace: "ns", Name: "web"}, Kind: registry.KindClusterIP, Ports: ports}
		for _, ip := range ips {
			svc.ClusterIPs = append(svc.ClusterIPs, netip.MustParseAddr(ip))
		}
		st.UpsertService(svc)
		st.Publish()
		const name = "web.ns.svc.cluster.local."
		hdr := func(owner string, t uint16) dns.RR_Header {
			return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: 5}
		}
		var addrs []dns.RR
		for _, ip := range svc.ClusterIPs {
			if ip.Is4() {
				addrs = append(addrs, &dns.A{Hdr: hdr(name, dns.TypeA), A: ip.AsSlice()})
			} else {
				addrs = append(addrs, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: ip.AsSlice()})
			}
		}
		want := map[string][]dns.RR{}
		extra := map[string][]dns.RR{}
		for _, p := range ports { // the old srvPort
			srv := &dns.SRV{Hdr: hdr(name, dns.TypeSRV), Weight: 100, Port: uint16(p.Port), Target: name}
			if !slices.ContainsFunc(want[name], func(x dns.RR) bool { return dns.IsDuplicate(x, srv) }) {
				want[name] = append(want[name], srv)
				extra[name] = append(extra[name], addrs...)
			}
			if p.Name != "" {
				owner := "_" + p.Name + "._" + strings.ToLower(string(p.Protocol)) + "." + name
				named := *srv
				named.Hdr.Name = owner
				want[owner] = append(want[owner], &named)
				extra[owner] = append(extra[owner], addrs...)
			}
		}
		for owner, rrs := range want {
			p, err := prepare(owner, dns.TypeSRV, rrs, dedupRR(extra[owner]), dns.RcodeSuccess)
			if err != nil {
				t.Fatal(err)
			}
			var ref dns.Msg
			if err := ref.Unpack(p.wire); err != nil {
				t.Fatal(err)
			}
			for _, asked := range []string{owner, strings.ToUpper(owner)} {
				r := ask(t, h, new(dns.Msg).SetQuestion(asked, dns.TypeSRV), false)
				lower := func(rrs []dns.RR) (out []string) {
					for _, rr := range rrs {
						out = append(out, strings.ToLower(rr.String()))
					}
					return out
				}
				if g, w := lower(r.Answer), lower(ref.Answer); !slices.Equal(g, w) {
					t.Fatalf("%v %s answer %q, want %q", ips, asked, g, w)
				}
				if g, w := lower(r.Extra), lower(ref.Extra); !slices.Equal(g, w) {
					t.Fatalf("%v %s extra %q, want %q", ips, asked, g, w)
				}
			}
		}
	}
}

// A headless service's addresses are written at query time: its published
// endpoints of the asked family in endpoint order, rotated per query with
// answer ordering on; ANY answers the A records; an alias is chased to
// them.
func TestHeadlessAddressesAtQueryTime(t *testing.T) {
	for _, order := range []string{"off", "round_robin"} {
		h, err := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5, AnswerOrder: order}, nil)
		if err != nil {
			t.Fatal(err)
		}
		st := registrytest.New(t).Feed(h.Update)
		st.UpsertService(&registry.Service{Key: registry.Key{Namespace: "ns", Name: "hl"}, Kind: registry.KindHeadless})
		st.UpsertService(&registry.Service{Key: registry.Key{Namespace: "ns", Name: "alias"}, Kind: registry.KindExternalName,
			ExternalName: "hl.ns.svc.cluster.local"})
		var eps []registry.Endpoint
		var want4, want6 []string
		for i := range 7 {
			a4 := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
			a6 := netip.AddrFrom16([16]byte{0xfd, 15: byte(i + 1)})
			eps = append(eps, registry.Endpoint{Address: a4, Ready: i != 2}, registry.Endpoint{Address: a6, Ready: i != 4})
			if i != 2 {
				want4 = append(want4, a4.String())
			}
			if i != 4 {
				want6 = append(want6, a6.String())
			}
		}
		st.UpsertEndpointSlice(&registry.EndpointSlice{Key: registry.Key{Namespace: "ns", Name: "hl-1"}, Service: "hl", Endpoints: eps})
		st.Publish()
		addrs := func(name string, qtype uint16) []string {
			r := ask(t, h, new(dns.Msg).SetQuestion(name, qtype), false)
			var out []string
			for _, rr := range r.Answer {
				switch a := rr.(type) {
				case *dns.A:
					out = append(out, a.A.String())
				case *dns.AAAA:
					out = append(out, a.AAAA.String())
				}
			}
			return out
		}
		isRotation := func(got, want []string) bool {
			for k := range want {
				if slices.Equal(got, append(slices.Clone(want[k:]), want[:k]...)) {
					return true
				}
			}
			return false
		}
		for _, c := range []struct {
			name  string
			qtype uint16
			want  []string
		}{
			{"hl.ns.svc.cluster.local.", dns.TypeA, want4},
			{"HL.ns.svc.cluster.local.", dns.TypeAAAA, want6},
			{"hl.ns.svc.cluster.local.", dns.TypeANY, want4},
			{"alias.ns.svc.cluster.local.", dns.TypeA, want4},
		} {
			firsts := map[string]bool{}
			for range 20 {
				got := addrs(c.name, c.qtype)
				if order == "off" && !slices.Equal(got, c.want) || !isRotation(got, c.want) {
					t.Fatalf("order %s, %s %s: %q, want (a rotation of) %q", order, c.name, dns.TypeToString[c.qtype], got, c.want)
				}
				firsts[got[0]] = true
			}
			if order == "round_robin" && c.qtype != dns.TypeANY && len(firsts) < 2 {
				t.Errorf("%s %s: never rotated", c.name, dns.TypeToString[c.qtype])
			}
		}
	}
}

// Zone hints written at query time match the old packing: one TXT per zone
// in order of first appearance, "zone=<zone>" then its published addresses.
func TestZoneHintsAtQueryTime(t *testing.T) {
	h, st := storeHandler(t)
	st.UpsertService(&registry.Service{Key: registry.Key{Namespace: "ns", Name: "hl"}, Kind: registry.KindHeadless})
	var eps []registry.Endpoint
	zones := []string{"zone-b", "zone-a", "", "zone-c"}
	byZone := map[string][]string{}
	var order []string
	for i := range 40 {
		a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
		if i%5 == 1 {
			a = netip.AddrFrom16([16]byte{0xfd, 15: byte(i + 1)})
		}
		ep := registry.Endpoint{Address: a, Ready: i%7 != 0}
		if zn := zones[i%4]; zn != "" {
			ep.Place = &registry.Place{Zone: zn}
			if ep.Ready {
				if byZone[zn] == nil {
					order = append(order, zn)
				}
				byZone[zn] = append(byZone[zn], a.String())
			}
		}
		eps = append(eps, ep)
	}
	st.UpsertEndpointSlice(&registry.EndpointSlice{Key: registry.Key{Namespace: "ns", Name: "hl-1"}, Service: "hl", Endpoints: eps})
	st.Publish()
	const name = "_zones.hl.ns.svc.cluster.local."
	var want []string
	for _, z := range order {
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 5}, Txt: append([]string{"zone=" + z}, byZone[z]...)}
		want = append(want, rr.String())
	}
	r := ask(t, h, new(dns.Msg).SetQuestion(name, dns.TypeTXT), true)
	var got []string
	for _, rr := range r.Answer {
		got = append(got, rr.String())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("zone hints:\n%q\nwant\n%q", got, want)
	}
}

// A PTR reference that an endpoint change leaves in place answers the
// endpoint's current name.
func TestPTRFollowsEndpointChanges(t *testing.T) {
	h, st := storeHandler(t)
	st.UpsertService(&registry.Service{Key: registry.Key{Namespace: "ns", Name: "hl"}, Kind: registry.KindHeadless})
	put := func(host string, secondReady bool) {
		st.UpsertEndpointSlice(&registry.EndpointSlice{Key: registry.Key{Namespace: "ns", Name: "hl-1"}, Service: "hl",
			Endpoints: []registry.Endpoint{
				{Address: netip.MustParseAddr("10.0.0.1"), Hostname: host, Ready: true},
				{Address: netip.MustParseAddr("10.0.0.2"), Ready: secondReady},
			}})
		st.Flush()
	}
	ptr := func(name string) []string {
		return got(ask(t, h, new(dns.Msg).SetQuestion(name, dns.TypePTR), false).Answer)
	}
	st.MarkSynced()
	put("a", true)
	for _, step := range []struct {
		host        string
		secondReady bool
		want1       string
		want2       []string
	}{
		{"a", false, "a", nil},
		{"b", false, "b", nil},
		{"b", true, "b", rrs(t, 0, "2.0.0.10.in-addr.arpa. 5 IN PTR 10-0-0-2.hl.ns.svc.cluster.local.")},
		{"c", true, "c", rrs(t, 0, "2.0.0.10.in-addr.arpa. 5 IN PTR 10-0-0-2.hl.ns.svc.cluster.local.")},
	} {
		put(step.host, step.secondReady)
		if g, w := ptr("1.0.0.10.in-addr.arpa."), rrs(t, 0, "1.0.0.10.in-addr.arpa. 5 IN PTR "+step.want1+".hl.ns.svc.cluster.local."); !slices.Equal(g, w) {
			t.Fatalf("host %s: PTR %q, want %q", step.host, g, w)
		}
		if g := ptr("2.0.0.10.in-addr.arpa."); !slices.Equal(g, step.want2) {
			t.Fatalf("second ready %v: PTR %q, want %q", step.secondReady, g, step.want2)
		}
	}
}
