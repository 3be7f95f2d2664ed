package server

import (
	"bytes"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/registry"
)

// Reverse names of cluster addresses: what points back at each address is
// indexed (servicePTRs into revIndex), the PTR answer written at query
// time.

var (
	inAddrArpa = []byte("\x07in-addr\x04arpa\x00")
	ip6Arpa    = []byte("\x03ip6\x04arpa\x00")
)

// reverseAddr reads the address of a reverse name (lower-case wire form):
// d.c.b.a.in-addr.arpa or the 32 nibbles of ip6.arpa. ok is false for any
// other name, including partial reverse names.
func reverseAddr(key []byte) (a netip.Addr, v6, ok bool) {
	switch {
	case bytes.HasSuffix(key, inAddrArpa):
		var b [4]byte
		off := 0
		for i := 3; i >= 0; i-- {
			l := int(key[off])
			if l == 0 || l > 3 || off+1+l > len(key) {
				return a, false, false
			}
			n := 0
			for _, c := range key[off+1 : off+1+l] {
				if c < '0' || c > '9' {
					return a, false, false
				}
				n = n*10 + int(c-'0')
			}
			if n > 255 || (l > 1 && key[off+1] == '0') {
				return a, false, false
			}
			b[i] = byte(n)
			off += 1 + l
		}
		if off+len(inAddrArpa) != len(key) {
			return a, false, false
		}
		return netip.AddrFrom4(b), false, true
	case bytes.HasSuffix(key, ip6Arpa):
		if len(key) != 64+len(ip6Arpa) {
			return a, true, false
		}
		var b [16]byte
		for i := 0; i < 32; i++ {
			if key[2*i] != 1 {
				return a, true, false
			}
			c := key[2*i+1]
			var v byte
			switch {
			case '0' <= c && c <= '9':
				v = c - '0'
			case 'a' <= c && c <= 'f':
				v = c - 'a' + 10
			default:
				return a, true, false
			}
			// Nibbles come least significant first.
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= v << 4
			} else {
				b[pos/2] |= v
			}
		}
		return netip.AddrFrom16(b), true, true
	}
	return a, false, false
}

// ptrAnswer answers a reverse name of a cluster address: a PTR per name
// that points back at it (service names for ClusterIPs, endpoint names for
// headless endpoints), NODATA for other types. nil when the address is not
// the cluster's (the fallback's job).
func (h *Handler) ptrAnswer(out []byte, q *query, req []byte, idx *clusterIndex, key []byte) []byte {
	a, v6, ok := reverseAddr(key)
	if !ok {
		return nil
	}
	refs := idx.ptrs.lookup(a.As16())
	if refs.len() == 0 {
		return nil
	}
	if q.qtype != dns.TypePTR && q.qtype != dns.TypeANY {
		z := idx.zones[h.iopt.rev4()]
		if v6 {
			z = idx.zones[h.iopt.rev6()]
		}
		if rz, ok := h.reverseZoneOf(key); ok {
			z = idx.zones[rz]
		}
		return writeNegative(out, q, req, z, dns.RcodeSuccess)
	}
	out = startAnswer(out, q, req, refs.len())
	zone := h.clusterZones[0]
	for i := range refs.len() {
		r := refs.at(i)
		e := r.svc
		rdlen := 1 + len(e.Name) + 1 + len(e.Namespace) + 4 + len(zone)
		var host string
		if r.ep >= 0 {
			// The endpoint's name is read from the entry of the index's
			// snapshot: the reference may predate it (an unchanged one).
			if entry := idx.snap.Service(e.Key); entry != nil && int(r.ep) < len(entry.Endpoints) {
				host = entry.Endpoints[r.ep].DNSName
			}
			rdlen += 1 + len(host)
		}
		out = appendRRHeader(out, dns.TypePTR, h.opt.TTL, rdlen)
		if host != "" {
			out = append(append(out, byte(len(host))), host...)
		}
		out = append(append(out, byte(len(e.Name))), e.Name...)
		out = append(append(out, byte(len(e.Namespace))), e.Namespace...)
		out = append(append(out, 3), "svc"...)
		out = append(out, zone...)
	}
	return out
}

// ptrRef is one name that an address points back to: a service's
// ClusterIP (ep < 0) or one of its endpoints (index into the Endpoints of
// its entry in the index's snapshot). It holds the service, not its entry,
// which changes with every endpoint change: a reference that stays the
// same is not rewritten (its shard not copied).
type ptrRef struct {
	svc *registry.Service
	ep  int32
}

// addrKey is the key of an address in ptrs.
func addrKey(a netip.Addr) [16]byte { return a.As16() }

// servicePTRs lists the addresses that point back at a service: its
// ClusterIPs and its published endpoints.
func servicePTRs(e *registry.ServiceEntry) map[[16]byte]ptrRef {
	out := map[[16]byte]ptrRef{}
	if e == nil {
		return out
	}
	switch e.Kind {
	case registry.KindClusterIP:
		for _, ip := range e.ClusterIPs {
			out[addrKey(ip)] = ptrRef{svc: e.Service, ep: -1}
		}
	case registry.KindHeadless:
		for i := range e.Endpoints {
			if ep := &e.Endpoints[i]; e.Published(ep) {
				if _, dup := out[addrKey(ep.Address)]; !dup {
					out[addrKey(ep.Address)] = ptrRef{svc: e.Service, ep: int32(i)}
				}
			}
		}
	}
	return out
}
