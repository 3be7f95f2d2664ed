package server

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// The spelling of names in answers. One rule for every record kind: in
// every name of an answer (owners, and the names inside SRV, CNAME, NS,
// PTR, MX and SOA data), the longest run of whole labels it shares at its
// end with the question name, compared case-insensitively, is spelled as
// the question spells it; the labels before that run are spelled as the
// data has them (lower case for cluster names). So the answers to a name
// echo its spelling, a SRV target `cassandra-0.<svc>` asked as
// `_CQL._TCP.Cassandra.Data.SVC.Cluster.Local.` is
// `cassandra-0.Cassandra.Data.SVC.Cluster.Local.`, and a target and the
// Additional record for it are always the same bytes. Prepared answers get
// this from name compression against the question (prepared.go), answers
// written at query time copy the question's bytes (srv.go) or point at
// them (writeNegative's SOA), and the slow paths packed with miekg/dns go
// through spellAsAsked.

// spellAsAsked applies the rule to a reply built with miekg/dns (alias
// chasing, autopath, hosts) before it is packed.
func spellAsAsked(m *dns.Msg) {
	if len(m.Question) == 0 {
		return
	}
	q := m.Question[0].Name
	fix := func(s *string) { *s = spellLike(*s, q) }
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			fix(&rr.Header().Name)
			switch r := rr.(type) {
			case *dns.CNAME:
				fix(&r.Target)
			case *dns.SRV:
				fix(&r.Target)
			case *dns.NS:
				fix(&r.Ns)
			case *dns.PTR:
				fix(&r.Ptr)
			case *dns.MX:
				fix(&r.Mx)
			case *dns.SOA:
				fix(&r.Ns)
				fix(&r.Mbox)
			}
		}
	}
}

// spellLike returns name with the labels it shares at its end with q
// (case-insensitively) spelled as in q.
func spellLike(name, q string) string {
	k := dns.CompareDomainName(name, q)
	if k == 0 {
		return name
	}
	ni, qi := dns.Split(name), dns.Split(q)
	if k > len(ni) || k > len(qi) {
		return name
	}
	return name[:ni[len(ni)-k]] + q[qi[len(qi)-k]:]
}

// soaTail packs a zone's SOA record for negative answers: from its type to
// the end of its data, the owner left to the caller (a pointer to the
// zone's origin in the question). Names of the SOA data under the origin
// end in a pointer placeholder (as the origin itself is one); ptrs are the
// offsets of those placeholders, which writeNegative fills with the same
// pointer as the owner, so the names share the question's spelling.
func soaTail(z *zone, soa *dns.SOA) (tail []byte, ptrs []int, err error) {
	ttl := min(soa.Hdr.Ttl, soa.Minttl) // RFC 2308 §3
	tail = binary.BigEndian.AppendUint16(nil, dns.TypeSOA)
	tail = binary.BigEndian.AppendUint16(tail, dns.ClassINET)
	tail = binary.BigEndian.AppendUint32(tail, ttl)
	tail = append(tail, 0, 0) // RDLENGTH, below
	for _, name := range []string{soa.Ns, soa.Mbox} {
		w, err := nameToWire(name)
		if err != nil {
			return nil, nil, fmt.Errorf("SOA name %q: %w", name, err)
		}
		if !strings.HasSuffix(w, z.wire) || !labelBoundary(w, len(w)-len(z.wire)) {
			tail = append(tail, w...)
			continue
		}
		// The labels before the origin, as the data spells them.
		orig, _ := dnsWireSpelled(name)
		tail = append(tail, orig[:len(w)-len(z.wire)]...)
		ptrs = append(ptrs, len(tail))
		tail = append(tail, 0xC0, 0)
	}
	for _, v := range []uint32{soa.Serial, soa.Refresh, soa.Retry, soa.Expire, soa.Minttl} {
		tail = binary.BigEndian.AppendUint32(tail, v)
	}
	binary.BigEndian.PutUint16(tail[8:], uint16(len(tail)-10))
	return tail, ptrs, nil
}

// labelBoundary reports whether offset at of wire name w starts a label.
func labelBoundary(w string, at int) bool {
	for off := 0; off < len(w); off += int(w[off]) + 1 {
		if off == at {
			return true
		}
		if w[off] == 0 {
			break
		}
	}
	return false
}

// dnsWireSpelled packs a name in wire form keeping its case.
func dnsWireSpelled(name string) (string, error) {
	buf := make([]byte, maxNameWire+1)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
