package server

// The clusterset zone (multi-cluster services, KEP-1645 DNS specification
// 1.0.0): the names of every ServiceImport of the snapshot, prepared like
// the cluster zones' so that answering them allocates nothing.
//
//	<svc>.<ns>.svc.<zone>                          A/AAAA: the ClusterSetIPs, or every ready endpoint of every cluster (Headless)
//	<hostname>.<clusterid>.<svc>.<ns>.svc.<zone>   A/AAAA: one endpoint (Headless)
//	_<port>._<proto>.<svc>.<ns>.svc.<zone>         SRV per named port (target the service, or each ready endpoint's name)
//	dns-version.<zone>                             TXT "1.0.0"
//
// <clusterid>.<svc>.<ns>.svc.<zone> has no records (the specification
// forbids targeting one cluster); it exists as an empty non-terminal.

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/registry"
)

// clustersetVersion is the version of the MCS DNS specification answered
// at dns-version.<clusterset zone>.
const clustersetVersion = "1.0.0"

// csZone returns the position of the clusterset zone in the index's zones
// (after the reverse zones); valid only when opt.clusterset is set.
func (o *indexOptions) csZone() uint8 { return uint8(len(o.domains) + 2 + len(o.reverse)) }

// clustersetApex adds the apex of the clusterset zone to r: SOA, NS (the
// first cluster domain's name server, with its glue) and dns-version.
func clustersetApex(r *recSet, opt *indexOptions, zones []*zone, dnsIPs []netip.Addr) {
	if opt.clusterset == "" {
		return
	}
	z, origin := opt.csZone(), opt.clusterset
	r.add(z, zones[z].soa)
	r.add(z, &dns.NS{Hdr: r.hdr(origin, dns.TypeNS), Ns: "ns.dns." + opt.domains[0]})
	r.addExtra(origin, dns.TypeNS, r.addrRecords("ns.dns."+opt.domains[0], dnsIPs)...)
	r.add(z, &dns.TXT{Hdr: r.hdr("dns-version."+origin, dns.TypeTXT), Txt: []string{clustersetVersion}})
	r.ent(z, "svc."+origin)
}

// clustersetRecords are the names of every imported service.
func clustersetRecords(opt *indexOptions, cs *registry.ClusterSet) *recSet {
	r := newRecSet(opt)
	if opt.clusterset == "" {
		return r
	}
	z := opt.csZone()
	for _, e := range cs.Entries() {
		nsName := e.Namespace + ".svc." + opt.clusterset
		name := e.Name + "." + nsName
		switch e.Type {
		case registry.ImportClusterSetIP:
			r.ent(z, nsName)
			r.ent(z, name)
			for _, rr := range r.addrRecords(name, e.IPs) {
				r.add(z, rr)
			}
			for _, p := range e.Ports {
				if p.Name == "" {
					continue // unnamed ports have no SRV record
				}
				owner := srvOwner(r, z, name, p.Name, p.Protocol)
				r.add(z, &dns.SRV{Hdr: r.hdr(owner, dns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(p.Port), Target: name})
				r.addExtra(owner, dns.TypeSRV, r.addrRecords(name, e.IPs)...)
			}
		case registry.ImportHeadless:
			seen := map[netip.Addr]bool{}
			for i := range e.Endpoints {
				ep := &e.Endpoints[i]
				if !ep.Ready {
					continue
				}
				r.ent(z, nsName)
				if !seen[ep.Address] {
					seen[ep.Address] = true
					for _, rr := range r.addrRecords(name, []netip.Addr{ep.Address}) {
						r.add(z, rr)
					}
				}
				host := ep.Hostname
				if host == "" {
					host = registry.DashedIP(ep.Address)
				}
				r.ent(z, ep.Cluster+"."+name)
				target := host + "." + ep.Cluster + "." + name
				for _, rr := range r.addrRecords(target, []netip.Addr{ep.Address}) {
					r.add(z, rr)
				}
				for _, p := range ep.Ports {
					if p.Name == "" {
						continue
					}
					owner := srvOwner(r, z, name, p.Name, p.Protocol)
					r.add(z, &dns.SRV{Hdr: r.hdr(owner, dns.TypeSRV), Priority: 0, Weight: 100, Port: uint16(p.Port), Target: target})
					r.addExtra(owner, dns.TypeSRV, r.addrRecords(target, []netip.Addr{ep.Address})...)
				}
			}
			// A headless import without a ready endpoint has no names:
			// NXDOMAIN, as the specification says.
		}
	}
	for _, types := range r.recs {
		if srvs := types[dns.TypeSRV]; len(srvs) > 1 {
			types[dns.TypeSRV] = dedupSRV(srvs)
		}
	}
	return r
}

// srvOwner makes _<port>._<proto>.<name> (and _<proto>.<name>) exist and
// returns it.
func srvOwner(r *recSet, z uint8, name, port string, proto registry.Protocol) string {
	p := "_" + strings.ToLower(string(proto)) + "." + name
	r.ent(z, p)
	owner := "_" + strings.ToLower(port) + "." + p
	r.ent(z, owner)
	return owner
}

// dedupSRV drops repeated SRV records (one endpoint in two slices of a
// cluster lists the same port twice).
func dedupSRV(rrs []dns.RR) []dns.RR {
	out := rrs[:0:0]
	seen := map[string]bool{}
	for _, rr := range rrs {
		if s := rr.String(); !seen[s] {
			seen[s] = true
			out = append(out, rr)
		}
	}
	return out
}

// clustersetPTRs are the PTR records the specification asks for: a
// ClusterSetIP, and each ready endpoint of a headless import, whose address
// has no cluster-local PTR (ptrs, the index's), points back at its
// clusterset name. The first import (by namespace and name) to claim an
// address keeps it. They are prepared at the reverse name, so an address
// that later gains a cluster-local PTR by an incremental update keeps the
// clusterset one until the next full build.
func clustersetPTRs(opt *indexOptions, cs *registry.ClusterSet, ptrs *revIndex) *recSet {
	r := newRecSet(opt)
	if opt.clusterset == "" {
		return r
	}
	claimed := map[netip.Addr]bool{}
	add := func(a netip.Addr, target string) {
		if claimed[a] || ptrs.lookup(a.As16()).len() > 0 {
			return
		}
		claimed[a] = true
		name, err := dns.ReverseAddr(a.String())
		if err != nil {
			return // not reachable: a is a valid address
		}
		z := opt.rev4()
		if a.Is6() {
			z = opt.rev6()
		}
		r.add(z, &dns.PTR{Hdr: r.hdr(name, dns.TypePTR), Ptr: target})
	}
	for _, e := range cs.Entries() {
		name := e.Name + "." + e.Namespace + ".svc." + opt.clusterset
		switch e.Type {
		case registry.ImportClusterSetIP:
			for _, ip := range e.IPs {
				add(ip, name)
			}
		case registry.ImportHeadless:
			for i := range e.Endpoints {
				ep := &e.Endpoints[i]
				if !ep.Ready {
					continue
				}
				host := ep.Hostname
				if host == "" {
					host = registry.DashedIP(ep.Address)
				}
				add(ep.Address, host+"."+ep.Cluster+"."+name)
			}
		}
	}
	return r
}
