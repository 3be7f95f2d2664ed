package server

import (
	"encoding/binary"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/lb/policy"
	"github.com/clusterdns/clusterdns/registry"
)

// A headless service's A/AAAA answer, written at query time from its
// published endpoints.

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
