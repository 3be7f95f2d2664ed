package nodeproxy

import "net/netip"

// hairpinRefs counts, per endpoint address, the ports that use it: an
// address is in the hairpin sets while its count is positive. IPv4 keys
// take 4 bytes, not the 16 of a mapped address: at 100,000 endpoints the
// map is about a third of the size.
type hairpinRefs struct {
	v4 map[[4]byte]int32
	v6 map[[16]byte]int32
}

func newHairpinRefs() hairpinRefs {
	return hairpinRefs{v4: map[[4]byte]int32{}, v6: map[[16]byte]int32{}}
}

// add adds delta to the counts of the endpoint addresses of p (each
// address once, whichever of its lists it is in).
func (h hairpinRefs) add(p *servicePort, delta int32) {
	seen := map[netip.Addr]bool{}
	for _, list := range [][]netip.AddrPort{p.Endpoints, p.ClusterEndpoints, p.LocalEndpoints} {
		for _, ep := range list {
			a := ep.Addr().Unmap()
			if seen[a] {
				continue
			}
			seen[a] = true
			if a.Is4() {
				h.v4[a.As4()] += delta
			} else {
				h.v6[a.As16()] += delta
			}
		}
	}
}

// changes lists the addresses that delta brings into the hairpin sets and
// takes out of them (countChanges); with full, h counts as empty.
func (h hairpinRefs) changes(delta hairpinRefs, full bool) (added, removed []netip.Addr) {
	a4, r4 := countChanges(h.v4, delta.v4, full)
	a6, r6 := countChanges(h.v6, delta.v6, full)
	added = make([]netip.Addr, 0, len(a4)+len(a6))
	for _, k := range a4 {
		added = append(added, netip.AddrFrom4(k))
	}
	for _, k := range a6 {
		added = append(added, netip.AddrFrom16(k))
	}
	for _, k := range r4 {
		removed = append(removed, netip.AddrFrom4(k))
	}
	for _, k := range r6 {
		removed = append(removed, netip.AddrFrom16(k))
	}
	return added, removed
}

// apply returns the counts after adding delta (applyDelta).
func (h hairpinRefs) apply(delta hairpinRefs, full bool) hairpinRefs {
	return hairpinRefs{v4: applyDelta(h.v4, delta.v4, full), v6: applyDelta(h.v6, delta.v6, full)}
}
