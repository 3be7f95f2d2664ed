package server

import (
	"encoding/binary"
	"fmt"

	"github.com/miekg/dns"
)

// prepared is a whole response packed once, when the data changes: the
// question is the owner name in lower case, and every copy of that name in
// the records is a compression pointer to it. Answering patches the ID,
// flags and the question's spelling in a copy, so the client's case is
// echoed everywhere the name appears.
type prepared struct {
	wire []byte
	rot  *rotation // nil: the order never changes
}

// rrset is the answer for one type at a name, of one of two kinds: live,
// when set, writes it at query time from the service; otherwise ans holds
// it, prepared.
type rrset struct {
	qtype uint16
	ans   prepared   // the answer when live is nil; empty otherwise
	live  liveAnswer // nil: a prepared answer
}

// write writes the rrset's answer to q into out. It switches on the live
// answer's type instead of calling through the interface: the compiler
// cannot tell that an interface call keeps no reference to q, and would
// move every query to the heap.
func (rs *rrset) write(out []byte, q *query, req []byte, ttl uint32) []byte {
	switch live := rs.live.(type) {
	case nil:
		return writePrepared(out, &rs.ans, q, req)
	case *srvSource:
		return live.write(out, q, req, ttl)
	case *addrSource:
		return live.write(out, q, req, ttl)
	case *zonesSource:
		return live.write(out, q, req, ttl)
	}
	panic(fmt.Sprintf("rrset: live answer of unknown type %T", rs.live))
}

// node is a name in a served zone. A node without rrsets is an empty
// non-terminal (NODATA for every type). A node with a cname answers it for
// every type but CNAME's own.
type node struct {
	zone   uint8 // position of its zone in the owning index's zone list
	rrsets []rrset
	cname  *dns.CNAME // also prepared in rrsets under TypeCNAME
	hosts  *hostIndex // a headless service's endpoints, by label
}

// find returns the answer for qtype, or nil.
func (n *node) find(qtype uint16) *rrset {
	for i := range n.rrsets {
		if n.rrsets[i].qtype == qtype {
			return &n.rrsets[i]
		}
	}
	return nil
}

// zone is one served zone's apex data: what negative answers carry.
type zone struct {
	origin  string // lower-case, absolute ("cluster.local.")
	wire    string // origin in wire format
	soa     *dns.SOA
	soaTail []byte // SOA RR from type to the end of rdata, for negative answers
	soaPtrs []int  // offsets in soaTail of pointers to the origin (spelling.go)
}

func newZone(soa *dns.SOA) (*zone, error) {
	w, err := nameToWire(soa.Hdr.Name)
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", soa.Hdr.Name, err)
	}
	z := &zone{origin: dns.CanonicalName(soa.Hdr.Name), wire: w, soa: soa}
	if z.soaTail, z.soaPtrs, err = soaTail(z, soa); err != nil {
		return nil, fmt.Errorf("zone %s SOA: %w", soa.Hdr.Name, err)
	}
	return z, nil
}

// prepare packs rrs as the answer to (name, qtype) with extra records in
// additional. The name must be lower-case.
func prepare(name string, qtype uint16, answer, additional []dns.RR, rcode int) (prepared, error) {
	wire, err := packAnswer(name, qtype, answer, additional, rcode)
	if err != nil {
		return prepared{}, err
	}
	// Pack sizes its buffer for the uncompressed message: keep only what
	// the compressed one uses (a third of it for SRV answers).
	return prepared{wire: append([]byte(nil), wire...)}, nil
}

// packAnswer is prepare's message, in a buffer larger than it and shared
// with nothing: the caller copies what it keeps.
func packAnswer(name string, qtype uint16, answer, additional []dns.RR, rcode int) ([]byte, error) {
	m := &dns.Msg{
		MsgHdr:   dns.MsgHdr{Response: true, Authoritative: true, Rcode: rcode},
		Question: []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}},
		Answer:   answer,
		Extra:    additional,
		Compress: true,
	}
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack %s %s: %w", name, dns.TypeToString[qtype], err)
	}
	if len(wire) > dns.MaxMsgSize {
		// Even TCP cannot carry it: keep the records that fit.
		m.Truncate(dns.MaxMsgSize)
		m.Truncated = false
		if wire, err = m.Pack(); err != nil {
			return nil, fmt.Errorf("pack %s: %w", name, err)
		}
	}
	return wire, nil
}

// writePrepared copies p into out as the answer to q. The question in p
// has the same length as q's (same name, other case), so only bytes move.
func writePrepared(out []byte, p *prepared, q *query, req []byte) []byte {
	out = append(out[:0], p.wire...)
	binary.BigEndian.PutUint16(out[0:], q.id)
	flags := binary.BigEndian.Uint16(out[2:])&0x000F | flagQR | flagAA | q.flags&(flagRD|flagCD)
	binary.BigEndian.PutUint16(out[2:], flags)
	copy(out[headerLen:], req[headerLen:q.qend]) // name, type and class as asked
	if r := p.rot; r != nil {
		rotate(out, r.start, r.size, r.n, r.sel.Select(0))
	}
	return out
}

// writeNegative builds NXDOMAIN or NODATA for q in zone z: the question as
// asked and the zone's SOA in authority, its owner a pointer into the
// question name (which ends with the zone's origin).
func writeNegative(out []byte, q *query, req []byte, z *zone, rcode int) []byte {
	out = append(out[:0], req[:q.qend]...)
	flags := q.flags&(flagRD|flagCD) | flagQR | flagAA | uint16(rcode&0xF)
	binary.BigEndian.PutUint16(out[2:], flags)
	binary.BigEndian.PutUint16(out[4:], 1)
	binary.BigEndian.PutUint16(out[6:], 0)
	binary.BigEndian.PutUint16(out[8:], 1)
	binary.BigEndian.PutUint16(out[10:], 0)
	ptr := headerLen + len(q.qname) - len(z.wire)
	out = append(out, 0xC0|byte(ptr>>8), byte(ptr))
	start := len(out)
	out = append(out, z.soaTail...)
	for _, p := range z.soaPtrs {
		out[start+p], out[start+p+1] = 0xC0|byte(ptr>>8), byte(ptr)
	}
	return out
}

// writeEmpty builds a response with the question and no records: rcode is
// SERVFAIL, REFUSED, NOTIMP or FORMERR; tc marks truncation.
func writeEmpty(out []byte, q *query, req []byte, rcode int, aa bool) []byte {
	out = append(out[:0], req[:q.qend]...)
	flags := q.flags&(flagRD|flagCD) | flagQR | uint16(rcode&0xF) | uint16(q.opcode)<<11
	if aa {
		flags |= flagAA
	}
	binary.BigEndian.PutUint16(out[2:], flags)
	binary.BigEndian.PutUint16(out[4:], 1)
	binary.BigEndian.PutUint16(out[6:], 0)
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	return out
}
