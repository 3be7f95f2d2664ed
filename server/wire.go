package server

import (
	"encoding/binary"
	"errors"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/dnswire"
)

// maxNameWire is the longest wire-format name (RFC 1035).
const maxNameWire = 255

// headerLen is the size of the DNS header.
const headerLen = 12

// Header flag bits (second 16-bit word of the header).
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagRA = 1 << 7
	flagCD = 1 << 4
)

// errFormat marks a request that is not a well-formed DNS query.
var errFormat = errors.New("malformed query")

// query is a parsed request: the question as wire bytes (the client's
// spelling, and a lower-cased copy for lookups) and the EDNS0 parameters.
// It lives on the listener's stack; parsing allocates nothing.
type query struct {
	id           uint16
	flags        uint16
	qname        []byte // slice of the request: the question name as sent
	lower        [maxNameWire]byte
	qtype        uint16
	qclass       uint16
	opcode       int
	qend         int // offset just past the question in the request
	edns         bool
	udpSize      uint16
	do           bool
	version      uint8
	ecsOrOptions bool // the OPT carried options (ignored, never echoed)
	// truncAt is the response size beyond which the response is sent
	// truncated (TC=1, no records), set by Respond from the transport and
	// the client's EDNS size: finish truncates there and answers written
	// at query time stop there. 0 (a query not from Respond): no limit but
	// the message's.
	truncAt int
	tcp     bool // the query came over TCP (for the metrics)
}

// lowerName returns the lower-cased question name.
func (q *query) lowerName() []byte { return q.lower[:len(q.qname)] }

// parseQuery reads a request. The common shape (one question, no answer or
// authority, at most an OPT in additional) is parsed by hand without
// allocating; anything else is checked with miekg/dns, and errFormat means
// FORMERR. The header must be readable (len >= 12) for an answer at all:
// the caller drops shorter packets.
func parseQuery(req []byte, q *query) error {
	if len(req) < headerLen {
		return errFormat
	}
	q.id = binary.BigEndian.Uint16(req[0:])
	q.flags = binary.BigEndian.Uint16(req[2:])
	q.opcode = int(q.flags>>11) & 0xF
	if q.flags&flagQR != 0 {
		return errFormat
	}
	qd := binary.BigEndian.Uint16(req[4:])
	an := binary.BigEndian.Uint16(req[6:])
	ns := binary.BigEndian.Uint16(req[8:])
	ar := binary.BigEndian.Uint16(req[10:])
	if qd != 1 {
		return errFormat
	}
	// The question name: uncompressed labels (a pointer in the first name of
	// a message can only point backwards into the header: malformed).
	off := headerLen
	for {
		if off >= len(req) {
			return errFormat
		}
		l := int(req[off])
		if l&0xC0 != 0 {
			return errFormat
		}
		if off+1+l > len(req) || off+1+l-headerLen > maxNameWire {
			return errFormat
		}
		off += 1 + l
		if l == 0 {
			break
		}
	}
	q.qname = req[headerLen:off]
	dnswire.AppendLower(q.lower[:0], q.qname) // fits: at most maxNameWire bytes
	if off+4 > len(req) {
		return errFormat
	}
	q.qtype = binary.BigEndian.Uint16(req[off:])
	q.qclass = binary.BigEndian.Uint16(req[off+2:])
	q.qend = off + 4
	q.edns, q.udpSize, q.do, q.version, q.ecsOrOptions = false, 0, false, 0, false
	rest := req[q.qend:]
	if an == 0 && ns == 0 && ar <= 1 {
		if ar == 0 {
			if len(rest) != 0 {
				return errFormat
			}
			return nil
		}
		// One additional record: accept an OPT (root owner, type 41).
		if len(rest) >= 11 && rest[0] == 0 && binary.BigEndian.Uint16(rest[1:]) == dns.TypeOPT {
			rdlen := int(binary.BigEndian.Uint16(rest[9:]))
			if 11+rdlen != len(rest) {
				return errFormat
			}
			q.setOPT(binary.BigEndian.Uint16(rest[3:]), binary.BigEndian.Uint32(rest[5:]), rdlen > 0)
			return nil
		}
	}
	// Unusual shape (TSIG, records in answer/authority, ...): let miekg/dns
	// decide whether it is well formed, and take the OPT from it.
	m := new(dns.Msg)
	if err := m.Unpack(req); err != nil {
		return errFormat
	}
	if opt := m.IsEdns0(); opt != nil {
		q.setOPT(opt.UDPSize(), opt.Hdr.Ttl, len(opt.Option) > 0)
	}
	return nil
}

func (q *query) setOPT(size uint16, ttl uint32, options bool) {
	q.edns = true
	q.udpSize = max(size, 512)
	q.version = uint8(ttl >> 16)
	q.do = ttl&0x8000 != 0
	q.ecsOrOptions = options
}

// appendOPT appends our OPT record (advertised size, the client's DO bit,
// extended rcode high bits) to a response and bumps ARCOUNT.
func appendOPT(out []byte, size uint16, do bool, extRcode uint8) []byte {
	var ttl uint32 = uint32(extRcode) << 24
	if do {
		ttl |= 0x8000
	}
	out = append(out, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(size>>8), byte(size),
		byte(ttl>>24), byte(ttl>>16), byte(ttl>>8), byte(ttl), 0, 0)
	binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
	return out
}

// nameToWire packs a presentation name (absolute or not) into lower-case
// wire format, for index keys.
func nameToWire(name string) (string, error) {
	buf := make([]byte, maxNameWire+1)
	n, err := dns.PackDomainName(dns.Fqdn(dnswire.LowerString(name)), buf, 0, nil, false)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
