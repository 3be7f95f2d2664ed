package server

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/registry"
)

// clusterIndex is every name of the cluster zones (and the reverse names of
// cluster addresses) with its prepared answers, built from one registry
// snapshot. It is immutable once built; the handler swaps it atomically.
type clusterIndex struct {
	snap  *registry.Snapshot
	zones []*zone // one per cluster domain, in configured order
	names map[string]*node
	// reverse zones: negative answers for PTR names we know.
	rev4, rev6 *zone
}

// indexOptions are the parts of the configuration the index depends on.
type indexOptions struct {
	domains     []string // lower-case, absolute
	ttl         uint32
	negativeTTL uint32
	dnsService  registry.Key // its ClusterIP is the glue of ns.dns.<zone>
	podsEnabled bool
}

// indexBuilder accumulates records per (name, type) before packing.
type indexBuilder struct {
	opt   indexOptions
	idx   *clusterIndex
	recs  map[string]map[uint16][]dns.RR // name → type → answer records
	extra map[string]map[uint16][]dns.RR // name → type → additional records
	zone  map[string]*zone
	order []string
}

// buildClusterIndex packs every answer of the snapshot. Its cost is that of
// the whole cluster.
func buildClusterIndex(snap *registry.Snapshot, opt indexOptions) (*clusterIndex, error) {
	b := &indexBuilder{
		opt:   opt,
		idx:   &clusterIndex{snap: snap, names: map[string]*node{}},
		recs:  map[string]map[uint16][]dns.RR{},
		extra: map[string]map[uint16][]dns.RR{},
		zone:  map[string]*zone{},
	}
	mkSOA := func(origin string) *dns.SOA {
		return &dns.SOA{
			Hdr:     dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: opt.negativeTTL},
			Ns:      "ns.dns." + opt.domains[0],
			Mbox:    "hostmaster." + opt.domains[0],
			Serial:  snap.Serial,
			Refresh: 7200, Retry: 1800, Expire: 86400,
			Minttl: opt.negativeTTL,
		}
	}
	var err error
	if b.idx.rev4, err = newZone(mkSOA("in-addr.arpa.")); err != nil {
		return nil, err
	}
	if b.idx.rev6, err = newZone(mkSOA("ip6.arpa.")); err != nil {
		return nil, err
	}
	var dnsIPs []netip.Addr
	if e := snap.Service(opt.dnsService); e != nil {
		dnsIPs = e.ClusterIPs
	}
	for _, d := range opt.domains {
		z, err := newZone(mkSOA(d))
		if err != nil {
			return nil, err
		}
		b.idx.zones = append(b.idx.zones, z)
		b.addZone(z, dnsIPs)
		for ns := range snap.Namespaces() {
			b.ent(z, ns+".svc."+d)
			if opt.podsEnabled {
				b.ent(z, ns+".pod."+d)
			}
		}
		for e := range snap.Services() {
			b.addService(z, e, d == opt.domains[0])
		}
	}
	return b.finish()
}

func (b *indexBuilder) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: b.opt.ttl}
}

// ent makes sure a name exists (an empty non-terminal unless records come).
func (b *indexBuilder) ent(z *zone, name string) {
	if _, ok := b.zone[name]; !ok {
		b.zone[name] = z
		b.order = append(b.order, name)
		b.recs[name] = map[uint16][]dns.RR{}
	}
}

func (b *indexBuilder) add(z *zone, rr dns.RR) {
	name := rr.Header().Name
	b.ent(z, name)
	b.recs[name][rr.Header().Rrtype] = append(b.recs[name][rr.Header().Rrtype], rr)
}

func (b *indexBuilder) addExtra(name string, t uint16, rrs ...dns.RR) {
	m := b.extra[name]
	if m == nil {
		m = map[uint16][]dns.RR{}
		b.extra[name] = m
	}
	m[t] = append(m[t], rrs...)
}

func (b *indexBuilder) addZone(z *zone, dnsIPs []netip.Addr) {
	d := z.origin
	b.add(z, z.soa)
	nsName := "ns.dns." + d
	b.add(z, &dns.NS{Hdr: b.hdr(d, dns.TypeNS), Ns: nsName})
	b.ent(z, "dns."+d)
	b.ent(z, nsName)
	glue := b.addrRecords(nsName, dnsIPs)
	for _, rr := range glue {
		b.add(z, rr)
	}
	b.addExtra(d, dns.TypeNS, glue...)
	b.add(z, &dns.TXT{Hdr: b.hdr("dns-version."+d, dns.TypeTXT), Txt: []string{"1.1.0"}})
	b.ent(z, "svc."+d)
	if b.opt.podsEnabled {
		b.ent(z, "pod."+d)
	}
}

func (b *indexBuilder) addrRecords(name string, ips []netip.Addr) []dns.RR {
	var out []dns.RR
	for _, ip := range ips {
		if ip.Is4() {
			out = append(out, &dns.A{Hdr: b.hdr(name, dns.TypeA), A: ip.AsSlice()})
		} else {
			out = append(out, &dns.AAAA{Hdr: b.hdr(name, dns.TypeAAAA), AAAA: ip.AsSlice()})
		}
	}
	return out
}

func (b *indexBuilder) addService(z *zone, e *registry.ServiceEntry, first bool) {
	name := e.Name + "." + e.Namespace + ".svc." + z.origin
	switch e.Kind {
	case registry.KindExternalName:
		b.add(z, &dns.CNAME{Hdr: b.hdr(name, dns.TypeCNAME), Target: dns.Fqdn(e.ExternalName)})
	case registry.KindClusterIP:
		addrs := b.addrRecords(name, e.ClusterIPs)
		for _, rr := range addrs {
			b.add(z, rr)
		}
		for _, p := range e.Ports {
			srv := &dns.SRV{Hdr: b.hdr(name, dns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(p.Port), Target: name}
			b.add(z, srv)
			b.addExtra(name, dns.TypeSRV, addrs...)
			if p.Name == "" {
				continue
			}
			proto := "_" + strings.ToLower(string(p.Protocol)) + "." + name
			b.ent(z, proto)
			named := *srv
			named.Hdr.Name = "_" + strings.ToLower(p.Name) + "." + proto
			b.add(z, &named)
			b.addExtra(named.Hdr.Name, dns.TypeSRV, addrs...)
		}
		if first {
			for _, ip := range e.ClusterIPs {
				b.addPTR(ip, name)
			}
		}
	case registry.KindHeadless:
		var published []*registry.MergedEndpoint
		for i := range e.Endpoints {
			if e.Published(&e.Endpoints[i]) {
				published = append(published, &e.Endpoints[i])
			}
		}
		if len(published) == 0 {
			return // spec: a headless service with no ready endpoint does not exist
		}
		dedup := map[string]bool{}
		for _, ep := range published {
			host := ep.DNSName + "." + name
			addr := b.addrRecords(name, []netip.Addr{ep.Address})
			hostAddr := b.addrRecords(host, []netip.Addr{ep.Address})
			b.add(z, addr[0])
			b.add(z, hostAddr[0])
			if first {
				b.addPTR(ep.Address, host)
			}
			for _, p := range ep.Ports {
				srv := &dns.SRV{Hdr: b.hdr(name, dns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(p.Port), Target: host}
				key := fmt.Sprint(p.Port, host)
				if !dedup[key] {
					dedup[key] = true
					b.add(z, srv)
					b.addExtra(name, dns.TypeSRV, hostAddr...)
				}
				if p.Name == "" {
					continue
				}
				proto := "_" + strings.ToLower(string(p.Protocol)) + "." + name
				b.ent(z, proto)
				named := *srv
				named.Hdr.Name = "_" + strings.ToLower(p.Name) + "." + proto
				b.add(z, &named)
				b.addExtra(named.Hdr.Name, dns.TypeSRV, hostAddr...)
			}
		}
	}
}

func (b *indexBuilder) addPTR(ip netip.Addr, target string) {
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return
	}
	z := b.idx.rev4
	if ip.Is6() {
		z = b.idx.rev6
	}
	b.add(z, &dns.PTR{Hdr: b.hdr(rev, dns.TypePTR), Ptr: target})
}

// finish packs every (name, type) once and fills the name map.
func (b *indexBuilder) finish() (*clusterIndex, error) {
	for _, name := range b.order {
		key, err := nameToWire(name)
		if err != nil {
			return nil, fmt.Errorf("name %q: %w", name, err)
		}
		n := &node{zone: b.zone[name]}
		types := b.recs[name]
		keys := make([]uint16, 0, len(types))
		for t := range types {
			keys = append(keys, t)
		}
		slices.Sort(keys)
		for _, t := range keys {
			rrs := types[t]
			if t == dns.TypeCNAME {
				n.cname = rrs[0].(*dns.CNAME)
			}
			p, err := prepare(name, t, rrs, dedupRR(b.extra[name][t]), dns.RcodeSuccess)
			if err != nil {
				return nil, err
			}
			n.rrsets = append(n.rrsets, rrset{qtype: t, ans: p})
		}
		b.idx.names[key] = n
	}
	return b.idx, nil
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
