package server

import (
	"bytes"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Pod records: a-b-c-d.<ns>.pod.<zone> when pods are insecure or
// verified.

// podRecord answers a-b-c-d.<ns>.pod.<zone> (or the dashed IPv6 form) when
// pod records are on; nil when the name is not of that shape.
func (h *Handler) podRecord(out []byte, q *query, req []byte, idx *clusterIndex, rel []byte, z *zone) []byte {
	// rel is "<ip>.<ns>.pod." in wire form (labels before the zone).
	if !bytes.HasSuffix(rel, []byte("\x03pod")) {
		return nil // not a pod name: no allocation on the NXDOMAIN path
	}
	labels := splitWire(rel)
	if len(labels) != 3 || labels[2] != "pod" {
		return nil
	}
	ipLabel, ns := labels[0], labels[1]
	var ip netip.Addr
	var err error
	if strings.Count(ipLabel, "-") == 3 {
		ip, err = netip.ParseAddr(strings.ReplaceAll(ipLabel, "-", "."))
	} else {
		ip, err = netip.ParseAddr(strings.ReplaceAll(ipLabel, "-", ":"))
	}
	if err != nil {
		return nil
	}
	if h.opt.Pods == PodsVerified {
		found := false
		for _, p := range idx.snap.PodsByIP(ip) {
			if p.Namespace == ns {
				found = true
			}
		}
		if !found {
			return nil
		}
	} else if !idx.snap.HasNamespace(ns) {
		return nil
	}
	want := uint16(dns.TypeA)
	if ip.Is6() {
		want = dns.TypeAAAA
	}
	if q.qtype != want && q.qtype != dns.TypeANY {
		return writeNegative(out, q, req, z, dns.RcodeSuccess)
	}
	name, _, err := dns.UnpackDomainName(req, headerLen)
	if err != nil {
		return nil
	}
	hdr := dns.RR_Header{Name: name, Rrtype: want, Class: dns.ClassINET, Ttl: h.opt.TTL}
	var rr dns.RR = &dns.A{Hdr: hdr, A: ip.AsSlice()}
	if ip.Is6() {
		rr = &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()}
	}
	p, err := prepare(name, q.qtype, []dns.RR{rr}, nil, dns.RcodeSuccess)
	if err != nil {
		return nil
	}
	return writePrepared(out, &p, q, req)
}

// splitWire returns the labels of a wire-format name fragment.
func splitWire(b []byte) []string {
	var out []string
	for off := 0; off < len(b) && b[off] != 0; off += int(b[off]) + 1 {
		end := off + 1 + int(b[off])
		if end > len(b) {
			return nil
		}
		out = append(out, string(b[off+1:end]))
	}
	return out
}
