package server

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/cow"
	"github.com/clusterdns/clusterdns/lb/policy"
	"github.com/clusterdns/clusterdns/registry"
)

// Answers written at query time, without prepared messages: endpoint names
// of headless services and reverse (PTR) names of cluster addresses. There
// are as many of them as endpoints, so they are not indexed as names of
// their own; each answer is a handful of records packed by hand into the
// response buffer, without allocation.

var (
	inAddrArpa = []byte("\x07in-addr\x04arpa\x00")
	ip6Arpa    = []byte("\x03ip6\x04arpa\x00")
)

// startAnswer copies the question and sets an authoritative NOERROR
// header with ancount records to follow.
func startAnswer(out []byte, q *query, req []byte, ancount int) []byte {
	out = append(out[:0], req[:q.qend]...)
	binary.BigEndian.PutUint16(out[2:], q.flags&(flagRD|flagCD)|flagQR|flagAA)
	binary.BigEndian.PutUint16(out[4:], 1)
	binary.BigEndian.PutUint16(out[6:], uint16(ancount))
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	return out
}

// appendRRHeader appends a record owned by the question name (a pointer to
// offset 12) up to its RDLENGTH.
func appendRRHeader(out []byte, rrtype uint16, ttl uint32, rdlen int) []byte {
	return append(out, 0xC0, headerLen, byte(rrtype>>8), byte(rrtype), 0, 1,
		byte(ttl>>24), byte(ttl>>16), byte(ttl>>8), byte(ttl), byte(rdlen>>8), byte(rdlen))
}

// hostAnswer answers <label>.<svc>.<ns>.svc.<zone> from the service's
// endpoints with that label: their addresses of the asked family, or the
// zone hint as TXT; other types are NODATA. nil when the name is not one.
func (h *Handler) hostAnswer(out []byte, q *query, req []byte, idx *clusterIndex, key []byte) []byte {
	l := int(key[0])
	if l == 0 || 1+l >= len(key) {
		return nil
	}
	n, ok := cow.GetBytes(idx.names, key[1+l:])
	if !ok || n.hosts == nil {
		return nil
	}
	eps := n.hosts.lookup(key[1 : 1+l])
	if len(eps) == 0 {
		return nil
	}
	e := n.hosts.entry
	count := 0
	for _, i := range eps {
		if hostRecord(q.qtype, e.Endpoints[i].Endpoint) {
			count++
		}
	}
	if count == 0 {
		return writeNegative(out, q, req, idx.zones[n.zone], dns.RcodeSuccess)
	}
	out = startAnswer(out, q, req, count)
	for _, i := range eps {
		ep := e.Endpoints[i].Endpoint
		if !hostRecord(q.qtype, ep) {
			continue
		}
		switch {
		case q.qtype == dns.TypeTXT:
			zn := ep.Zone()
			out = appendRRHeader(out, dns.TypeTXT, h.opt.TTL, 1+len("zone=")+len(zn))
			out = append(out, byte(len("zone=")+len(zn)))
			out = append(append(out, "zone="...), zn...)
		case ep.Address.Is4():
			a := ep.Address.As4()
			out = append(appendRRHeader(out, dns.TypeA, h.opt.TTL, 4), a[:]...)
		default:
			a := ep.Address.As16()
			out = append(appendRRHeader(out, dns.TypeAAAA, h.opt.TTL, 16), a[:]...)
		}
	}
	return out
}

// hostRecord reports whether an endpoint has a record of qtype at its name.
func hostRecord(qtype uint16, ep *registry.Endpoint) bool {
	switch qtype {
	case dns.TypeA:
		return ep.Address.Is4()
	case dns.TypeAAAA:
		return ep.Address.Is6()
	case dns.TypeTXT:
		return ep.Zone() != ""
	case dns.TypeANY:
		return true
	}
	return false
}

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

// writtenAt answers (name, qtype) as a whole message, for the slow paths
// that add its records to their own (alias chasing, search-path
// completion): from live when given (the live answer found at name), else
// from the names that have no node of their own (endpoint names, reverse
// names of the current cluster index). ok is false when there is no such
// answer.
func (h *Handler) writtenAt(name string, qtype uint16, live liveAnswer) (m *dns.Msg, ok bool) {
	idx := h.cluster.Load()
	if live == nil && idx == nil {
		return nil, false
	}
	req, err := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype).Pack()
	if err != nil {
		return nil, false
	}
	var q query
	if parseQuery(req, &q) != nil {
		return nil, false
	}
	var resp []byte
	if live != nil {
		resp = live.write(nil, &q, req, h.opt.TTL)
	} else if resp = h.hostAnswer(nil, &q, req, idx, q.lowerName()); resp == nil {
		resp = h.ptrAnswer(nil, &q, req, idx, q.lowerName())
	}
	if resp == nil {
		return nil, false
	}
	m = new(dns.Msg)
	if m.Unpack(resp) != nil {
		return nil, false
	}
	return m, true
}

// srvSource is the SRV answer at a service's name or one of its
// _<port>._<proto> names, written at query time. For a headless service:
// one record per published endpoint and port, target the endpoint's name,
// its address in Additional. For a ClusterIP service: one record per port,
// target the service name, its ClusterIPs in Additional. At the service
// name itself (port empty) every port counts, a record repeating an earlier
// one (same port and target) once; at _<port>._<proto>.<svc> the ports of
// that name and protocol do.
type srvSource struct {
	entry       *registry.ServiceEntry
	port, proto string // lower-case; empty at the service name
	// sharedLabels is set when endpoints share a DNS label (hostnames that
	// repeat): only then can two endpoints' records be the same.
	sharedLabels bool
}

// matches reports whether an endpoint port has a record at this name.
func (s *srvSource) matches(p *registry.EndpointPort) bool {
	return s.port == "" || (strings.EqualFold(p.Name, s.port) && strings.EqualFold(string(p.Protocol), s.proto))
}

// repeats reports whether the record of endpoint i's port j at the service
// name repeats an earlier record of that answer (same port and target).
func (s *srvSource) repeats(i, j int) bool {
	if s.port != "" {
		return false // every matching port is answered, as the API lists them
	}
	e := s.entry
	ep := &e.Endpoints[i]
	ports := ep.Ports()
	port := ports[j].Port
	for _, p := range ports[:j] {
		if p.Port == port {
			return true
		}
	}
	if !s.sharedLabels {
		return false
	}
	for k := range e.Endpoints[:i] {
		o := &e.Endpoints[k]
		if o.DNSName == ep.DNSName && e.Published(o) && slices.ContainsFunc(o.Ports(), func(p registry.EndpointPort) bool { return p.Port == port }) {
			return true
		}
	}
	return false
}

// srvRecordLen is the size of one SRV record of the answer: owner pointer,
// type to RDLENGTH, priority, weight, port, and the target written out
// (label, then the service name of svcLen bytes).
func srvRecordLen(label string, svcLen int) int { return 2 + 10 + 6 + 1 + len(label) + svcLen }

// write writes the SRV answer of a headless service name: the records
// in endpoint and port order, then each endpoint's address once in
// Additional, its owner a pointer to the endpoint's first target. Targets
// are written out in full (RFC 2782: no compression in SRV data), in lower
// case. A message that would exceed 65,535 bytes keeps the records that
// fit, answers first (and no Additional when not every answer fits).
func (s *srvSource) write(out []byte, q *query, req []byte, ttl uint32) []byte {
	e := s.entry
	out = startAnswer(out, q, req, 0)
	svc, svcOff := q.lowerName(), headerLen
	if s.port != "" {
		skip := 2 + len(s.port) + 2 + len(s.proto) // the labels _<port> and _<proto>
		svc, svcOff = svc[skip:], svcOff+skip
	}
	if e.Kind != registry.KindHeadless {
		return s.clusterIP(out, svc, svcOff, ttl)
	}
	an, ar := 0, 0
	cut := false // not every record fits: no Additional then
answers:
	for i := range e.Endpoints {
		ep := &e.Endpoints[i]
		if !e.Published(ep) {
			continue
		}
		ports := ep.Ports()
		for j := range ports {
			p := &ports[j]
			if !s.matches(p) || s.repeats(i, j) {
				continue
			}
			if len(out)+srvRecordLen(ep.DNSName, len(svc)) > dns.MaxMsgSize {
				cut = true
				break answers
			}
			if q.truncAt > 0 && len(out) > q.truncAt {
				return out // sent truncated whatever follows
			}
			out = appendRRHeader(out, dns.TypeSRV, ttl, 6+1+len(ep.DNSName)+len(svc))
			out = append(out, 0, 0, 0, 100, byte(p.Port>>8), byte(p.Port))
			out = append(append(out, byte(len(ep.DNSName))), ep.DNSName...)
			out = append(out, svc...)
			an++
		}
	}
	// Additional: each endpoint's address once, found by walking the
	// records written above in the same order, its owner a pointer to the
	// endpoint's first target.
	off := q.qend // the first record
	walked, last := 0, -1
additional:
	for i := range e.Endpoints {
		if cut {
			break
		}
		ep := &e.Endpoints[i]
		if !e.Published(ep) {
			continue
		}
		ports := ep.Ports()
		for j := range ports {
			if walked == an {
				break additional
			}
			if !s.matches(&ports[j]) || s.repeats(i, j) {
				continue
			}
			target := off + 2 + 10 + 6
			off += srvRecordLen(ep.DNSName, len(svc))
			walked++
			if last == i {
				continue
			}
			last = i
			t, rdlen := uint16(dns.TypeA), 4
			if ep.Address.Is6() {
				t, rdlen = dns.TypeAAAA, 16
			}
			owner := 2
			if target > 0x3FFF { // beyond a pointer's reach: the label, then a pointer to the service name
				owner = 1 + len(ep.DNSName) + 2
			}
			if len(out)+owner+10+rdlen > dns.MaxMsgSize {
				break additional
			}
			if owner == 2 {
				out = append(out, 0xC0|byte(target>>8), byte(target))
			} else {
				out = append(append(out, byte(len(ep.DNSName))), ep.DNSName...)
				out = append(out, 0xC0|byte(svcOff>>8), byte(svcOff))
			}
			out = append(out, byte(t>>8), byte(t), 0, 1, byte(ttl>>24), byte(ttl>>16), byte(ttl>>8), byte(ttl), 0, byte(rdlen))
			if rdlen == 4 {
				a := ep.Address.As4()
				out = append(out, a[:]...)
			} else {
				a := ep.Address.As16()
				out = append(out, a[:]...)
			}
			ar++
		}
	}
	binary.BigEndian.PutUint16(out[6:], uint16(an))
	binary.BigEndian.PutUint16(out[10:], uint16(ar))
	return out
}

// clusterIP writes the records of a ClusterIP service's SRV answer after
// the question in out: svc is the service name (lower case), at offset
// svcOff of the question.
func (s *srvSource) clusterIP(out []byte, svc []byte, svcOff int, ttl uint32) []byte {
	e := s.entry
	an := 0
	for j := range e.Ports {
		p := &e.Ports[j]
		if s.port != "" {
			if !strings.EqualFold(p.Name, s.port) || !strings.EqualFold(string(p.Protocol), s.proto) {
				continue
			}
		} else if repeatsPort(e.Ports[:j], p.Port) {
			continue
		}
		out = appendRRHeader(out, dns.TypeSRV, ttl, 6+len(svc))
		out = append(out, 0, 0, 0, 100, byte(p.Port>>8), byte(p.Port))
		out = append(out, svc...) // written out, as RFC 2782 asks
		an++
	}
	ar := 0
	for _, ip := range e.ClusterIPs {
		if an == 0 {
			break
		}
		out = append(out, 0xC0|byte(svcOff>>8), byte(svcOff))
		if ip.Is4() {
			a := ip.As4()
			out = append(out, 0, byte(dns.TypeA), 0, 1, byte(ttl>>24), byte(ttl>>16), byte(ttl>>8), byte(ttl), 0, 4)
			out = append(out, a[:]...)
		} else {
			a := ip.As16()
			out = append(out, 0, byte(dns.TypeAAAA), 0, 1, byte(ttl>>24), byte(ttl>>16), byte(ttl>>8), byte(ttl), 0, 16)
			out = append(out, a[:]...)
		}
		ar++
	}
	binary.BigEndian.PutUint16(out[6:], uint16(an))
	binary.BigEndian.PutUint16(out[10:], uint16(ar))
	return out
}

func repeatsPort(ports []registry.ServicePort, port int32) bool {
	for _, p := range ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

// zonesSource is the TXT answer at _zones.<svc> of a headless service whose
// endpoints name their topology zone: one record per zone, in order of
// first appearance, "zone=<zone>" then the zone's published addresses
// (lb.TXTZones reads them).
type zonesSource struct {
	entry *registry.ServiceEntry
	zones []string
}

// write writes the answer of s. A record stops at 65,535 bytes of data,
// the message at 65,535 bytes.
func (s *zonesSource) write(out []byte, q *query, req []byte, ttl uint32) []byte {
	out = startAnswer(out, q, req, 0)
	e, an := s.entry, 0
zones:
	for _, zn := range s.zones {
		if len(out)+12+1+len("zone=")+len(zn) > dns.MaxMsgSize || q.truncAt > 0 && len(out) > q.truncAt {
			break
		}
		rec := len(out)
		out = appendRRHeader(out, dns.TypeTXT, ttl, 0)
		out = append(out, byte(len("zone=")+len(zn)))
		out = append(append(out, "zone="...), zn...)
		for i := range e.Endpoints {
			ep := &e.Endpoints[i]
			if ep.Zone() != zn || !e.Published(ep) {
				continue
			}
			if len(out)+1+len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") > min(dns.MaxMsgSize, rec+12+0xFFFF) {
				binary.BigEndian.PutUint16(out[rec+10:], uint16(len(out)-rec-12))
				an++
				break zones
			}
			at := len(out)
			out = ep.Address.AppendTo(append(out, 0))
			out[at] = byte(len(out) - at - 1)
		}
		binary.BigEndian.PutUint16(out[rec+10:], uint16(len(out)-rec-12))
		an++
	}
	binary.BigEndian.PutUint16(out[6:], uint16(an))
	return out
}

// addrSource is a headless service's A (or AAAA) answer, written at query
// time: the addresses of its published endpoints of that family, in
// endpoint order, rotated per query as prepared answers are (answer_order:
// the record the selector picks first, the others following in order).
type addrSource struct {
	entry *registry.ServiceEntry
	v6    bool
	n     int             // records
	sel   policy.Selector // nil: the order never changes
}

// write writes the answer of s: records owned by the question name (a
// pointer to it), as many as fit in 65,535 bytes.
func (s *addrSource) write(out []byte, q *query, req []byte, ttl uint32) []byte {
	out = startAnswer(out, q, req, 0)
	k := 0
	if s.sel != nil {
		if k = s.sel.Select(0); k < 0 || k >= s.n {
			k = 0
		}
	}
	limit := dns.MaxMsgSize
	if q.truncAt > 0 && q.truncAt < limit {
		limit = q.truncAt + 1 // beyond it the response is sent truncated: stop there
	}
	an := 0
	out, an, full := s.appendRecords(out, ttl, k, s.n, an, limit)
	if !full {
		out, an, _ = s.appendRecords(out, ttl, 0, k, an, limit)
	}
	binary.BigEndian.PutUint16(out[6:], uint16(an))
	return out
}

// appendRecords appends records from to to (positions among the answer's
// records); full reports that the message reached limit, where it stopped
// (a record that would pass 65,535 bytes is left out; past a smaller limit
// one more is written, so that the response is known to be too large).
func (s *addrSource) appendRecords(out []byte, ttl uint32, from, to, an, limit int) ([]byte, int, bool) {
	e := s.entry
	i := 0
	for j := range e.Endpoints {
		ep := &e.Endpoints[j]
		if !e.Published(ep) || ep.Address.Is4() == s.v6 {
			continue
		}
		if i >= to {
			break
		}
		if i >= from {
			if len(out) >= limit {
				return out, an, true
			}
			if s.v6 {
				if len(out)+12+16 > dns.MaxMsgSize {
					return out, an, true
				}
				a := ep.Address.As16()
				out = append(appendRRHeader(out, dns.TypeAAAA, ttl, 16), a[:]...)
			} else {
				if len(out)+12+4 > dns.MaxMsgSize {
					return out, an, true
				}
				a := ep.Address.As4()
				out = append(appendRRHeader(out, dns.TypeA, ttl, 4), a[:]...)
			}
			an++
		}
		i++
	}
	return out, an, false
}
