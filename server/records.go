package server

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/lb/policy"
	"github.com/clusterdns/clusterdns/registry"
)

// The records of the cluster zones before packing: what every zone and
// each service owns (recSet), packed into index nodes by buildClusterIndex
// (cluster.go).

// recSet accumulates records per (name, type) before they are packed.
type recSet struct {
	opt   *indexOptions
	order []string
	zone  map[string]uint8
	recs  map[string]map[uint16][]dns.RR
	extra map[string]map[uint16][]dns.RR
	hosts map[string]*hostIndex // service name → its endpoints by label
	srv   map[string]*srvSource // SRV answers written at query time
	addrs map[string][]*addrSource
	txt   map[string]*zonesSource

	scratch []rrset // pack's list of a name's rrsets, reused
	ar      *arena  // where a full build's pieces come from; nil: allocated one by one
}

func newRecSet(opt *indexOptions) *recSet {
	return &recSet{opt: opt, zone: map[string]uint8{}, recs: map[string]map[uint16][]dns.RR{}, extra: map[string]map[uint16][]dns.RR{}, hosts: map[string]*hostIndex{}, srv: map[string]*srvSource{}, addrs: map[string][]*addrSource{}, txt: map[string]*zonesSource{}}
}

func (r *recSet) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: r.opt.ttl}
}

// ent makes sure a name exists (an empty non-terminal unless records come).
func (r *recSet) ent(z uint8, name string) {
	if _, ok := r.zone[name]; !ok {
		r.zone[name] = z
		r.order = append(r.order, name)
		r.recs[name] = map[uint16][]dns.RR{}
	}
}

func (r *recSet) add(z uint8, rr dns.RR) {
	h := rr.Header()
	r.ent(z, h.Name)
	r.recs[h.Name][h.Rrtype] = append(r.recs[h.Name][h.Rrtype], rr)
}

func (r *recSet) addExtra(name string, t uint16, rrs ...dns.RR) {
	m := r.extra[name]
	if m == nil {
		m = map[uint16][]dns.RR{}
		r.extra[name] = m
	}
	m[t] = append(m[t], rrs...)
}

func (r *recSet) addrRecords(name string, ips []netip.Addr) []dns.RR {
	var out []dns.RR
	for _, ip := range ips {
		if ip.Is4() {
			out = append(out, &dns.A{Hdr: r.hdr(name, dns.TypeA), A: ip.AsSlice()})
		} else {
			out = append(out, &dns.AAAA{Hdr: r.hdr(name, dns.TypeAAAA), AAAA: ip.AsSlice()})
		}
	}
	return out
}

// pack builds the node of one name of the set, its pieces from ar.
func (r *recSet) pack(name string, ar *arena) (string, *node, error) {
	key, err := ar.wireName(name)
	if err != nil {
		return "", nil, fmt.Errorf("name %q: %w", name, err)
	}
	// A node answered live from a service entry (SRV, TXT, headless
	// addresses, endpoint names) comes on its own, not from a block: in a
	// block its old version would stay reachable after the service
	// changes, and keep the entry's endpoints and slices in memory.
	if r.srv[name] != nil || r.txt[name] != nil || len(r.addrs[name]) > 0 || r.hosts[name] != nil {
		ar = nil
	}
	n := ar.node()
	n.zone, n.hosts = r.zone[name], r.hosts[name]
	types := r.recs[name]
	list := r.scratch[:0]
	if src := r.srv[name]; src != nil {
		list = append(list, rrset{qtype: dns.TypeSRV, live: src})
	}
	if src := r.txt[name]; src != nil {
		list = append(list, rrset{qtype: dns.TypeTXT, live: src})
	}
	for _, src := range r.addrs[name] {
		t := uint16(dns.TypeA)
		if src.v6 {
			t = dns.TypeAAAA
		}
		list = append(list, rrset{qtype: t, live: src})
	}
	for _, t := range slices.Sorted(maps.Keys(types)) {
		rrs := types[t]
		if t == dns.TypeCNAME {
			n.cname = rrs[0].(*dns.CNAME)
		}
		wire, err := packAnswer(name, t, rrs, dedupRR(r.extra[name][t]), dns.RcodeSuccess)
		if err != nil {
			return "", nil, err
		}
		p := prepared{wire: ar.copyBytes(wire)}
		p.rot = newRotation(p.wire, r.opt.order)
		list = append(list, rrset{qtype: t, ans: p})
	}
	// By type, as ANY answers the first one (A when there is one).
	slices.SortFunc(list, func(a, b rrset) int { return int(a.qtype) - int(b.qtype) })
	if len(list) > 0 {
		n.rrsets = ar.rrsetList(list)
	}
	r.scratch = list[:0]
	return key, n, nil
}

// zoneRecords are the names every cluster domain has: apex SOA and NS (with
// the DNS service's addresses as glue), dns-version, svc/pod and the
// namespaces' empty non-terminals, and the apex SOA and NS of each
// configured reverse zone.
func zoneRecords(opt *indexOptions, snap *registry.Snapshot, zones []*zone, namespaces bool) *recSet {
	r := newRecSet(opt)
	var dnsIPs []netip.Addr
	if e := snap.Service(opt.dnsService); e != nil {
		dnsIPs = e.ClusterIPs
	}
	// The apex of each configured reverse zone: SOA, and NS with the
	// first domain's name server and its glue.
	for _, z := range opt.revApex {
		origin := zones[z].origin
		r.add(z, zones[z].soa)
		r.add(z, &dns.NS{Hdr: r.hdr(origin, dns.TypeNS), Ns: "ns.dns." + opt.domains[0]})
		r.addExtra(origin, dns.TypeNS, r.addrRecords("ns.dns."+opt.domains[0], dnsIPs)...)
	}
	clustersetApex(r, opt, zones, dnsIPs)
	for i, d := range opt.domains {
		z := uint8(i)
		r.add(z, zones[i].soa)
		nsName := "ns.dns." + d
		r.add(z, &dns.NS{Hdr: r.hdr(d, dns.TypeNS), Ns: nsName})
		r.ent(z, "dns."+d)
		r.ent(z, nsName)
		glue := r.addrRecords(nsName, dnsIPs)
		for _, rr := range glue {
			r.add(z, rr)
		}
		r.addExtra(d, dns.TypeNS, glue...)
		r.add(z, &dns.TXT{Hdr: r.hdr("dns-version."+d, dns.TypeTXT), Txt: []string{"1.1.0"}})
		r.ent(z, "svc."+d)
		// pod.<zone> is NODATA even with pod records off (as CoreDNS
		// answers it); the names below it exist only with them on.
		r.ent(z, "pod."+d)
		for ns := range snap.Namespaces() {
			if !namespaces {
				break // unchanged since the previous index, which has them
			}
			r.ent(z, ns+".svc."+d)
			if opt.podsEnabled {
				r.ent(z, ns+".pod."+d)
			}
		}
	}
	return r
}

// serviceRecords are the names one service owns in every cluster domain,
// and the PTRs it contributes. No two services own the same name.
func serviceRecords(opt *indexOptions, e *registry.ServiceEntry, ar *arena) *recSet {
	r := newRecSet(opt)
	r.ar = ar
	if e == nil {
		return r
	}
	for i, d := range opt.domains {
		r.addService(uint8(i), d, e, i == 0)
	}
	return r
}

func (r *recSet) addService(z uint8, domain string, e *registry.ServiceEntry, ptr bool) {
	name := e.Name + "." + e.Namespace + ".svc." + domain
	// SRV answers are written at query time from the service (srvSource):
	// only their names are indexed here.
	var srvs []*srvSource
	addSRV := func(owner, port, proto string) {
		if r.srv[owner] == nil {
			r.ent(z, owner)
			src := r.ar.srvSource()
			src.entry, src.port, src.proto = e, port, proto
			r.srv[owner] = src
			srvs = append(srvs, src)
		}
	}
	// srvPort indexes the SRV names of a port: the service name, and
	// _<port>._<proto> under it for a named port.
	srvPort := func(portName string, protocol registry.Protocol) {
		addSRV(name, "", "")
		if portName != "" {
			port, proto := strings.ToLower(portName), strings.ToLower(string(protocol))
			r.ent(z, "_"+proto+"."+name)
			addSRV("_"+port+"._"+proto+"."+name, port, proto)
		}
	}
	switch e.Kind {
	case registry.KindExternalName:
		r.add(z, &dns.CNAME{Hdr: r.hdr(name, dns.TypeCNAME), Target: dns.Fqdn(e.ExternalName)})
	case registry.KindClusterIP:
		for _, rr := range r.addrRecords(name, e.ClusterIPs) {
			r.add(z, rr)
		}
		for _, p := range e.Ports {
			srvPort(p.Name, p.Protocol)
		}
	case registry.KindHeadless:
		var zoneOrder []string // topology zones, for _zones TXT
		var published []int32
		seenPorts := map[registry.EndpointPort]bool{}
		n4, n6 := 0, 0
		for i := range e.Endpoints {
			ep := &e.Endpoints[i]
			if !e.Published(ep) {
				continue
			}
			if ep.Address.Is4() {
				n4++
			} else {
				n6++
			}
			published = append(published, int32(i))
			if zn := ep.Zone(); zn != "" {
				if !slices.Contains(zoneOrder, zn) {
					zoneOrder = append(zoneOrder, zn)
				}
			}
			for _, p := range ep.Ports() {
				if seenPorts[p] {
					continue
				}
				seenPorts[p] = true
				srvPort(p.Name, p.Protocol)
			}
		}
		// The service's addresses are written at query time as well.
		for _, f := range []struct {
			v6 bool
			n  int
		}{{false, n4}, {true, n6}} {
			if f.n == 0 {
				continue
			}
			src := r.ar.addrSource()
			src.entry, src.v6, src.n = e, f.v6, f.n
			if r.opt.order != nil && f.n > 1 {
				src.sel = r.opt.order.Build(make([]policy.Candidate, f.n))
			}
			r.ent(z, name)
			r.addrs[name] = append(r.addrs[name], src)
		}
		if len(published) > 0 {
			hi := newHostIndex(r.ar, e, slices.Clone(published))
			r.hosts[name] = hi
			for _, s := range srvs {
				s.sharedLabels = hi.shared
			}
		}
		// Zone hints for client-side balancing (lb.TXTZones), one record per
		// zone under _zones (per endpoint they are written at query time).
		if len(zoneOrder) > 0 {
			zname := "_zones." + name
			r.ent(z, zname)
			r.txt[zname] = &zonesSource{entry: e, zones: slices.Clip(zoneOrder)}
		}
		// A headless service with no published endpoint has no names at
		// all: NXDOMAIN, as the specification says.
	}
}

func dedupRR(rrs []dns.RR) []dns.RR {
	if len(rrs) < 2 {
		return rrs
	}
	out := rrs[:0:0]
	seen := map[string]bool{}
	for _, rr := range rrs {
		s := rr.String()
		if !seen[s] {
			seen[s] = true
			out = append(out, rr)
		}
	}
	return out
}
