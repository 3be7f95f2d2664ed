package server

import (
	"slices"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/cow"
	"github.com/clusterdns/clusterdns/lb/policy"
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
	// and ip6.arpa. (for negative answers at known reverse names), then the
	// other configured reverse zones (indexOptions.reverse). Nodes
	// refer to them by position so that a new serial needs no node rebuilt.
	zones []*zone
	names *cow.Map[string, *node]
	// ptrs holds what points back at each address (PTR answers are
	// written from it at query time).
	ptrs *revIndex
}

// indexOptions are the parts of the configuration the index depends on.
type indexOptions struct {
	domains     []string // lower-case, absolute
	ttl         uint32
	negativeTTL uint32
	dnsService  registry.Key // its ClusterIP is the glue of ns.dns.<zone>
	podsEnabled bool
	order       policy.Policy // answer ordering of the cluster zones; nil: off
	// reverse are the configured reverse zones other than in-addr.arpa.
	// and ip6.arpa. (zones after rev6); revApex the positions of every
	// configured reverse zone, whose apex answers SOA and NS.
	reverse []string
	revApex []uint8
	// clusterset is the multi-cluster zone (lower-case, absolute), "" when
	// off; it comes after every reverse zone (csZone).
	clusterset string
}

func (o *indexOptions) rev4() uint8 { return uint8(len(o.domains)) }
func (o *indexOptions) rev6() uint8 { return uint8(len(o.domains) + 1) }

// newZones returns the SOA-bearing zones of the index for a serial.
func newZones(opt *indexOptions, serial uint32) ([]*zone, error) {
	var out []*zone
	origins := append(append(slices.Clone(opt.domains), "in-addr.arpa.", "ip6.arpa."), opt.reverse...)
	if opt.clusterset != "" {
		origins = append(origins, opt.clusterset)
	}
	for _, origin := range origins {
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
	var names *cow.Editor[string, *node]
	if incremental {
		names = prev.names.Edit()
	} else {
		names = cow.New[string, *node]().Edit()
	}
	var ar *arena // pieces of a full build come in blocks
	if !incremental {
		ar = &arena{}
	}
	set := func(r *recSet) error {
		for _, name := range r.order {
			key, n, err := r.pack(name, ar)
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
	if !incremental {
		// The clusterset changes only with a Full snapshot (registry).
		if err := set(clustersetRecords(opt, snap.ClusterSet())); err != nil {
			return nil, err
		}
		var ptrs revBuilder
		for e := range snap.Services() {
			if err := set(serviceRecords(opt, e, ar)); err != nil {
				return nil, err
			}
			for key, ref := range servicePTRs(e) {
				ptrs.add(key, ref)
			}
		}
		idx.ptrs = ptrs.done()
		if err := set(clustersetPTRs(opt, snap.ClusterSet(), idx.ptrs)); err != nil {
			return nil, err
		}
		idx.names = names.Done()
		return idx, nil
	}
	ptrs := prev.ptrs.edit()
	for _, k := range snap.Changed {
		oldE, newE := prev.snap.Service(k), snap.Service(k)
		oldR, newR := serviceRecords(opt, oldE, nil), serviceRecords(opt, newE, nil)
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
		// Reverse references: drop this service's, add its new ones.
		oldP, newP := servicePTRs(oldE), servicePTRs(newE)
		for key := range oldP {
			if _, still := newP[key]; !still {
				ptrs.replace(key, k, nil)
			}
		}
		for key, ref := range newP {
			if old, ok := oldP[key]; ok && old == ref {
				continue // unchanged: the new entry has the same endpoint there
			}
			ptrs.replace(key, k, &ref)
		}
	}
	idx.names, idx.ptrs = names.Done(), ptrs.done()
	return idx, nil
}
