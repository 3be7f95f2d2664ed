package server

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/cow"
	"github.com/clusterdns/clusterdns/lb"
	"github.com/clusterdns/clusterdns/registry"
)

// clusterIndex is every name of the cluster zones (and the reverse names of
// cluster addresses) with its prepared answers, built from one registry
// snapshot. It is immutable once built; the handler swaps it atomically.
// An update for a few changed services copies only the map shards that
// their names fall in (see cowMap), so its cost follows the change, not the
// cluster.
type clusterIndex struct {
	snap *registry.Snapshot
	// zones are the cluster domains in configured order, then in-addr.arpa.
	// and ip6.arpa. (for negative answers at known reverse names). Nodes
	// refer to them by position so that a new serial needs no node rebuilt.
	zones []*zone
	names *cow.Map[*node]
	// ptrs lists, per reverse name (wire), the services that contribute a
	// PTR to it (an address can be an endpoint of several services).
	ptrs *cow.Map[[]ptrRec]
}

// indexOptions are the parts of the configuration the index depends on.
type indexOptions struct {
	domains     []string // lower-case, absolute
	ttl         uint32
	negativeTTL uint32
	dnsService  registry.Key // its ClusterIP is the glue of ns.dns.<zone>
	podsEnabled bool
	order       lb.Policy // answer ordering of the cluster zones; nil: off
}

func (o *indexOptions) rev4() uint8 { return uint8(len(o.domains)) }
func (o *indexOptions) rev6() uint8 { return uint8(len(o.domains) + 1) }

// ptrRec is one PTR that a service contributes to a reverse name.
type ptrRec struct {
	svc    registry.Key
	name   string // reverse name, presentation form
	target string
}

// recSet accumulates records per (name, type) before they are packed.
type recSet struct {
	opt   *indexOptions
	order []string
	zone  map[string]uint8
	recs  map[string]map[uint16][]dns.RR
	extra map[string]map[uint16][]dns.RR
	ptrs  []ptrRec
}

func newRecSet(opt *indexOptions) *recSet {
	return &recSet{opt: opt, zone: map[string]uint8{}, recs: map[string]map[uint16][]dns.RR{}, extra: map[string]map[uint16][]dns.RR{}}
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

// pack builds the node of one name of the set.
func (r *recSet) pack(name string) (string, *node, error) {
	key, err := nameToWire(name)
	if err != nil {
		return "", nil, fmt.Errorf("name %q: %w", name, err)
	}
	n := &node{zone: r.zone[name]}
	types := r.recs[name]
	for _, t := range slices.Sorted(maps.Keys(types)) {
		rrs := types[t]
		if t == dns.TypeCNAME {
			n.cname = rrs[0].(*dns.CNAME)
		}
		p, err := prepare(name, t, rrs, dedupRR(r.extra[name][t]), dns.RcodeSuccess)
		if err != nil {
			return "", nil, err
		}
		p.rot = newRotation(p.wire, r.opt.order)
		n.rrsets = append(n.rrsets, rrset{qtype: t, ans: p})
	}
	return key, n, nil
}

// zoneRecords are the names every cluster domain has: apex SOA and NS (with
// the DNS service's addresses as glue), dns-version, svc/pod and the
// namespaces' empty non-terminals.
func zoneRecords(opt *indexOptions, snap *registry.Snapshot, zones []*zone, namespaces bool) *recSet {
	r := newRecSet(opt)
	var dnsIPs []netip.Addr
	if e := snap.Service(opt.dnsService); e != nil {
		dnsIPs = e.ClusterIPs
	}
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
		if opt.podsEnabled {
			r.ent(z, "pod."+d)
		}
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
func serviceRecords(opt *indexOptions, e *registry.ServiceEntry) *recSet {
	r := newRecSet(opt)
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
	srvPort := func(p registry.EndpointPort, target string, addrs []dns.RR) {
		srv := &dns.SRV{Hdr: r.hdr(name, dns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(p.Port), Target: target}
		if !slices.ContainsFunc(r.recs[name][dns.TypeSRV], func(x dns.RR) bool { return dns.IsDuplicate(x, srv) }) {
			r.add(z, srv)
			r.addExtra(name, dns.TypeSRV, addrs...)
		}
		if p.Name == "" {
			return
		}
		proto := "_" + strings.ToLower(string(p.Protocol)) + "." + name
		r.ent(z, proto)
		named := *srv
		named.Hdr.Name = "_" + strings.ToLower(p.Name) + "." + proto
		r.add(z, &named)
		r.addExtra(named.Hdr.Name, dns.TypeSRV, addrs...)
	}
	switch e.Kind {
	case registry.KindExternalName:
		r.add(z, &dns.CNAME{Hdr: r.hdr(name, dns.TypeCNAME), Target: dns.Fqdn(e.ExternalName)})
	case registry.KindClusterIP:
		addrs := r.addrRecords(name, e.ClusterIPs)
		for _, rr := range addrs {
			r.add(z, rr)
		}
		for _, p := range e.Ports {
			srvPort(registry.EndpointPort{Name: p.Name, Protocol: p.Protocol, Port: p.Port}, name, addrs)
		}
		if ptr {
			for _, ip := range e.ClusterIPs {
				r.addPTR(e.Key, ip, name)
			}
		}
	case registry.KindHeadless:
		zones := map[string][]string{} // topology zone → addresses, for _zones TXT
		var zoneOrder []string
		for i := range e.Endpoints {
			ep := &e.Endpoints[i]
			if !e.Published(ep) {
				continue
			}
			host := ep.DNSName + "." + name
			hostAddr := r.addrRecords(host, []netip.Addr{ep.Address})
			r.add(z, r.addrRecords(name, []netip.Addr{ep.Address})[0])
			r.add(z, hostAddr[0])
			if ep.Zone != "" {
				// Zone hints for client-side balancing (lb.TXTZones): per
				// endpoint, and per service under _zones.
				r.add(z, &dns.TXT{Hdr: r.hdr(host, dns.TypeTXT), Txt: []string{"zone=" + ep.Zone}})
				if _, ok := zones[ep.Zone]; !ok {
					zoneOrder = append(zoneOrder, ep.Zone)
				}
				zones[ep.Zone] = append(zones[ep.Zone], ep.Address.String())
			}
			if ptr {
				r.addPTR(e.Key, ep.Address, host)
			}
			for _, p := range ep.Ports {
				srvPort(p, host, hostAddr)
			}
		}
		for _, zn := range zoneOrder {
			r.add(z, &dns.TXT{Hdr: r.hdr("_zones."+name, dns.TypeTXT), Txt: append([]string{"zone=" + zn}, zones[zn]...)})
		}
		// A headless service with no published endpoint has no names at
		// all: NXDOMAIN, as the specification says.
	}
}

func (r *recSet) addPTR(svc registry.Key, ip netip.Addr, target string) {
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return
	}
	r.ptrs = append(r.ptrs, ptrRec{svc: svc, name: rev, target: target})
}

// ptrNode packs a reverse name from all the services that point at it.
func ptrNode(opt *indexOptions, recs []ptrRec) (string, *node, error) {
	r := newRecSet(opt)
	z := opt.rev4()
	if strings.HasSuffix(recs[0].name, ".ip6.arpa.") {
		z = opt.rev6()
	}
	for _, p := range recs {
		r.add(z, &dns.PTR{Hdr: r.hdr(p.name, dns.TypePTR), Ptr: p.target})
	}
	return r.pack(recs[0].name)
}

// newZones returns the SOA-bearing zones of the index for a serial.
func newZones(opt *indexOptions, serial uint32) ([]*zone, error) {
	var out []*zone
	for _, origin := range append(slices.Clone(opt.domains), "in-addr.arpa.", "ip6.arpa.") {
		z, err := newZone(&dns.SOA{
			Hdr:     dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: opt.negativeTTL},
			Ns:      "ns.dns." + opt.domains[0],
			Mbox:    "hostmaster." + opt.domains[0],
			Serial:  serial,
			Refresh: 7200, Retry: 1800, Expire: 86400,
			Minttl: opt.negativeTTL,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, z)
	}
	return out, nil
}

// buildClusterIndex indexes a snapshot. With prev (the index of the
// snapshot before it) and a snapshot that is not Full, only the changed
// services are re-packed; otherwise everything is.
func buildClusterIndex(prev *clusterIndex, snap *registry.Snapshot, opt *indexOptions) (*clusterIndex, error) {
	zones, err := newZones(opt, snap.Serial)
	if err != nil {
		return nil, err
	}
	idx := &clusterIndex{snap: snap, zones: zones}
	incremental := prev != nil && !snap.Full
	var names *cow.Editor[*node]
	var ptrs *cow.Editor[[]ptrRec]
	if incremental {
		names, ptrs = prev.names.Edit(), prev.ptrs.Edit()
	} else {
		names, ptrs = cow.New[*node]().Edit(), cow.New[[]ptrRec]().Edit()
	}
	set := func(r *recSet) error {
		for _, name := range r.order {
			key, n, err := r.pack(name)
			if err != nil {
				return err
			}
			names.Set(key, n)
		}
		return nil
	}
	if err := set(zoneRecords(opt, snap, zones, !incremental)); err != nil {
		return nil, err
	}
	touched := map[string][]ptrRec{} // reverse names to re-pack: key → presentation name only
	if !incremental {
		for e := range snap.Services() {
			r := serviceRecords(opt, e)
			if err := set(r); err != nil {
				return nil, err
			}
			for _, p := range r.ptrs {
				touched[p.name] = append(touched[p.name], p)
			}
		}
	} else {
		for _, k := range snap.Changed {
			oldR := serviceRecords(opt, prev.snap.Service(k))
			newR := serviceRecords(opt, snap.Service(k))
			for _, name := range oldR.order {
				if _, still := newR.zone[name]; !still {
					key, err := nameToWire(name)
					if err != nil {
						return nil, err
					}
					names.Delete(key)
				}
			}
			if err := set(newR); err != nil {
				return nil, err
			}
			// Reverse names: drop this service's old PTRs, add its new ones.
			mine := map[string]bool{}
			for _, p := range oldR.ptrs {
				mine[p.name] = true
			}
			for _, p := range newR.ptrs {
				mine[p.name] = true
			}
			for name := range mine {
				touched[name] = nil
				key, err := nameToWire(name)
				if err != nil {
					return nil, err
				}
				cur, _ := ptrs.Get(key)
				kept := slices.DeleteFunc(slices.Clone(cur), func(p ptrRec) bool { return p.svc == k })
				for _, p := range newR.ptrs {
					if p.name == name {
						kept = append(kept, p)
					}
				}
				if len(kept) == 0 {
					ptrs.Delete(key)
				} else {
					ptrs.Set(key, kept)
				}
			}
		}
		// Re-pack below from the owner lists now in ptrs.
		for name := range touched {
			key, _ := nameToWire(name)
			touched[name], _ = ptrs.Get(key)
		}
	}
	for name, recs := range touched {
		if len(recs) == 0 {
			key, err := nameToWire(name)
			if err != nil {
				return nil, err
			}
			names.Delete(key)
			continue
		}
		slices.SortFunc(recs, func(a, b ptrRec) int {
			return cmp.Or(cmp.Compare(a.svc.Namespace, b.svc.Namespace), cmp.Compare(a.svc.Name, b.svc.Name), cmp.Compare(a.target, b.target))
		})
		key, n, err := ptrNode(opt, recs)
		if err != nil {
			return nil, err
		}
		if !incremental {
			ptrs.Set(key, recs)
		}
		names.Set(key, n)
	}
	idx.names, idx.ptrs = names.Done(), ptrs.Done()
	return idx, nil
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
