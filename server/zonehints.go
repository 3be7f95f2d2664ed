package server

import (
	"encoding/binary"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/registry"
)

// Zone hints for client-side balancing: the TXT answer at _zones.<svc>.

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
