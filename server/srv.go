package server

import (
	"encoding/binary"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/registry"
)

// SRV answers at a service's name and its _<port>._<proto> names, written
// at query time from the service.

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
// are written out in full (RFC 2782: no compression in SRV data): the
// endpoint's label, then the service name as the question spells it
// (spelling.go). A message that would exceed 65,535 bytes keeps the records that
// fit, answers first (and no Additional when not every answer fits).
func (s *srvSource) write(out []byte, q *query, req []byte, ttl uint32) []byte {
	e := s.entry
	out = startAnswer(out, q, req, 0)
	svc, svcOff := q.qname, headerLen // the service name as asked (spelling.go)
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
// the question in out: svc is the service name as asked, at offset svcOff
// of the question; the Additional owners point at it, the targets copy it.
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
