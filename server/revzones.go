package server

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Reverse zones (Options.ReverseZones): the in-addr.arpa and ip6.arpa
// zones clusterdns is authoritative for. Inside one, the apex answers SOA
// and NS, a reverse name with cluster addresses below it and no PTR of its
// own answers NODATA, and every other name NXDOMAIN with the zone's SOA;
// reverse names outside every configured zone that are not cluster
// addresses go to the fallback (CoreDNS's `fallthrough in-addr.arpa
// ip6.arpa`).

// ReverseZones turns reverse_zones entries into zone origins (lower-case,
// absolute, no duplicates, in the order given). An entry is a CIDR or a
// reverse zone name (`in-addr.arpa`, `96.10.in-addr.arpa`, `ip6.arpa`). A
// CIDR that is not on an octet (IPv4) or nibble (IPv6) boundary becomes the
// zones one label longer that together cover exactly its addresses:
// 10.96.0.0/12 is 96.10.in-addr.arpa … 111.10.in-addr.arpa (16 zones), as
// CoreDNS names the reverse zones of such a CIDR. NewHandler and the
// configuration parser call it.
func ReverseZones(entries []string) ([]string, error) {
	var out []string
	for _, e := range entries {
		e = strings.TrimSpace(e)
		var zs []string
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("reverse zone %q: %w", e, err)
			}
			zs = prefixZones(p.Masked())
		} else {
			origin := dns.CanonicalName(e)
			w, err := nameToWire(origin)
			if err != nil {
				return nil, fmt.Errorf("reverse zone %q: %w", e, err)
			}
			if _, ok := reversePrefix([]byte(w)); !ok {
				return nil, fmt.Errorf("reverse zone %q: not a CIDR nor a name under in-addr.arpa or ip6.arpa with octet/nibble labels", e)
			}
			zs = []string{origin}
		}
		for _, z := range zs {
			if !slices.Contains(out, z) {
				out = append(out, z)
			}
		}
	}
	return out, nil
}

// prefixZones lists the reverse zones that cover exactly the addresses of
// p (masked): one when its length is a multiple of 8 (IPv4) or 4 (IPv6),
// otherwise 2^k zones of the next such length.
func prefixZones(p netip.Prefix) []string {
	unit := 4
	if p.Addr().Is4() {
		unit = 8
	}
	bits := p.Bits()
	rounded := (bits + unit - 1) / unit * unit
	var out []string
	for i := range 1 << (rounded - bits) {
		b := p.Addr().AsSlice()
		if rounded > bits {
			// The extra bits are the low bits of the last unit of the
			// rounded prefix.
			shift := len(b)*8 - rounded
			b[len(b)-1-shift/8] |= byte(i << (shift % 8))
		}
		a, _ := netip.AddrFromSlice(b)
		out = append(out, prefixName(netip.PrefixFrom(a, rounded)))
	}
	return out
}

// prefixName is the reverse zone name of a prefix whose length is a
// multiple of 8 (IPv4) or 4 (IPv6).
func prefixName(p netip.Prefix) string {
	var sb strings.Builder
	b := p.Addr().AsSlice()
	if p.Addr().Is4() {
		for i := p.Bits()/8 - 1; i >= 0; i-- {
			sb.WriteString(strconv.Itoa(int(b[i])))
			sb.WriteByte('.')
		}
		sb.WriteString("in-addr.arpa.")
		return sb.String()
	}
	for i := p.Bits()/4 - 1; i >= 0; i-- {
		nib := b[i/2] >> 4
		if i%2 == 1 {
			nib = b[i/2] & 0xF
		}
		sb.WriteByte("0123456789abcdef"[nib])
		sb.WriteByte('.')
	}
	sb.WriteString("ip6.arpa.")
	return sb.String()
}

// reversePrefix reads a reverse name (lower-case wire form) as the prefix
// it names: up to 4 decimal octets before in-addr.arpa, up to 32 hex
// nibbles before ip6.arpa. ok is false for any other name.
func reversePrefix(key []byte) (p netip.Prefix, ok bool) {
	var labels [32][]byte
	n, off := 0, 0
	for off < len(key) && key[off] != 0 {
		if string(key[off:]) == string(inAddrArpa) || string(key[off:]) == string(ip6Arpa) {
			break
		}
		l := int(key[off])
		if n == len(labels) || off+1+l > len(key) {
			return p, false
		}
		labels[n] = key[off+1 : off+1+l]
		n++
		off += 1 + l
	}
	switch {
	case bytes.Equal(key[off:], inAddrArpa):
		if n > 4 {
			return p, false
		}
		var b [4]byte
		for i := range n {
			l := labels[n-1-i]
			v, err := strconv.ParseUint(string(l), 10, 8)
			if err != nil || len(l) == 0 || (len(l) > 1 && l[0] == '0') || l[0] == '+' {
				return p, false
			}
			b[i] = byte(v)
		}
		return netip.PrefixFrom(netip.AddrFrom4(b), 8*n), true
	case bytes.Equal(key[off:], ip6Arpa):
		var b [16]byte
		for i := range n {
			l := labels[n-1-i]
			if len(l) != 1 {
				return p, false
			}
			v := strings.IndexByte("0123456789abcdef", l[0])
			if v < 0 {
				return p, false
			}
			if i%2 == 0 {
				b[i/2] |= byte(v) << 4
			} else {
				b[i/2] |= byte(v)
			}
		}
		return netip.PrefixFrom(netip.AddrFrom16(b), 4*n), true
	}
	return p, false
}

// reverseZoneOf returns the position in the index's zones of the most
// specific configured reverse zone that key (lower-case wire form) falls
// in; ok is false when it falls in none.
func (h *Handler) reverseZoneOf(key []byte) (z uint8, ok bool) {
	if len(h.revZones) == 0 {
		return 0, false
	}
	for off := 0; off < len(key) && key[off] != 0; off += int(key[off]) + 1 {
		if z, ok := h.revZones[string(key[off:])]; ok {
			return z, true
		}
	}
	return 0, false
}

// reverseName answers a name of reverse zone z that is not the reverse
// name of a cluster address: NODATA when cluster addresses lie below it
// (an empty non-terminal, RFC 8020), otherwise NXDOMAIN; SERVFAIL before
// the first snapshot.
func (h *Handler) reverseName(out []byte, q *query, req []byte, cidx *clusterIndex, key []byte, z uint8) []byte {
	if cidx == nil {
		return writeEmpty(out, q, req, dns.RcodeServerFailure, false)
	}
	rcode := dns.RcodeNameError
	if p, ok := reversePrefix(key); ok && p.Bits() < p.Addr().BitLen() && cidx.ptrs.anyIn(p) {
		rcode = dns.RcodeSuccess
	}
	return writeNegative(out, q, req, cidx.zones[z], rcode)
}

// maxZones bounds the zones of a cluster index (nodes name theirs in a byte).
const maxZones = 255

// setReverseZones records the configured reverse zones: in-addr.arpa. and
// ip6.arpa. are the index's zones rev4 and rev6, the others follow them.
func (h *Handler) setReverseZones(entries []string) error {
	origins, err := ReverseZones(entries)
	if err != nil {
		return err
	}
	if len(h.iopt.domains)+2+len(origins) > maxZones {
		return fmt.Errorf("reverse zones: %d zones, at most %d with the cluster domains", len(origins), maxZones-2-len(h.iopt.domains))
	}
	h.revZones = map[string]uint8{}
	for _, origin := range origins {
		var z uint8
		switch origin {
		case "in-addr.arpa.":
			z = h.iopt.rev4()
		case "ip6.arpa.":
			z = h.iopt.rev6()
		default:
			z = h.iopt.rev6() + 1 + uint8(len(h.iopt.reverse))
			h.iopt.reverse = append(h.iopt.reverse, origin)
		}
		w, err := nameToWire(origin)
		if err != nil {
			return fmt.Errorf("reverse zone %s: %w", origin, err)
		}
		h.revZones[w] = z
		h.iopt.revApex = append(h.iopt.revApex, z)
	}
	return nil
}
