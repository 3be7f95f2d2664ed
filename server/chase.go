package server

import "github.com/miekg/dns"

// Alias chasing: a CNAME followed into the served zones, the slow path,
// packed with miekg/dns (search-path completion, autopath.go, uses it too).

// chase answers a name that is an alias: the CNAME, then, while the target
// is in a served zone, the target's records (at most 8 links). It packs a
// message with miekg/dns: aliases are the slow path.
func (h *Handler) chase(out []byte, q *query, req []byte, n *node) []byte {
	m, name, err := newReply(q, req)
	if err != nil {
		return formErr(out, req)
	}
	h.follow(m, name, n, nil, q.qtype)
	return h.pack(out, m, q, req)
}

// newReply starts an authoritative reply to q with its question as asked.
func newReply(q *query, req []byte) (*dns.Msg, string, error) {
	name, _, err := dns.UnpackDomainName(req, headerLen)
	if err != nil {
		return nil, "", err
	}
	m := new(dns.Msg)
	m.Id = q.id
	m.Response, m.Authoritative = true, true
	m.RecursionDesired = q.flags&flagRD != 0
	m.CheckingDisabled = q.flags&flagCD != 0
	m.Compress = true
	m.Question = []dns.Question{{Name: name, Qtype: q.qtype, Qclass: q.qclass}}
	return m, name, nil
}

func (h *Handler) pack(out []byte, m *dns.Msg, q *query, req []byte) []byte {
	spellAsAsked(m)
	wire, err := m.PackBuffer(out[:0])
	if err != nil {
		h.log.Error("pack answer", "name", m.Question[0].Name, "err", err)
		return writeEmpty(out, q, req, dns.RcodeServerFailure, false)
	}
	return wire
}

// follow appends to m what a resolver finds at owner (node cur, in zones):
// its records of qtype, or its CNAME and then its target's, and NXDOMAIN or
// NODATA with the SOA where the chain ends in a served zone.
func (h *Handler) follow(m *dns.Msg, owner string, cur *node, zones []*zone, qtype uint16) {
	for hops := 0; hops < 8 && cur != nil; hops++ {
		if rs := cur.find(qtype); rs != nil && (qtype != dns.TypeCNAME || cur.cname != nil) {
			var t *dns.Msg
			ok := false
			if rs.live != nil {
				t, ok = h.writtenAt(owner, qtype, rs.live)
			} else {
				t = new(dns.Msg)
				ok = t.Unpack(rs.ans.wire) == nil // as stored: not rotated
			}
			if ok {
				for _, rr := range t.Answer {
					rr.Header().Name = owner
				}
				m.Answer = append(m.Answer, t.Answer...)
				m.Extra = append(m.Extra, t.Extra...)
			}
			return
		}
		if cur.cname == nil {
			m.Ns = append(m.Ns, negSOA(zones[cur.zone]))
			return
		}
		c := *cur.cname
		c.Hdr.Name = owner
		m.Answer = append(m.Answer, &c)
		owner = c.Target
		key, err := nameToWire(c.Target)
		if err != nil {
			return
		}
		cur, zones = h.lookupWire(key)
		if cur == nil {
			if r, ok := h.writtenAt(owner, qtype, nil); ok {
				m.Answer = append(m.Answer, r.Answer...)
				m.Ns = append(m.Ns, r.Ns...)
				return
			}
			if z := h.zoneOf(key); z != nil {
				m.Rcode = dns.RcodeNameError
				m.Ns = append(m.Ns, negSOA(z))
			}
			return
		}
	}
}

func negSOA(z *zone) dns.RR {
	s := *z.soa
	s.Hdr.Ttl = min(s.Hdr.Ttl, s.Minttl)
	return &s
}

// lookupWire finds a node by wire name, with the zone list it refers to.
func (h *Handler) lookupWire(key string) (*node, []*zone) {
	if idx := h.cluster.Load(); idx != nil {
		if n, ok := idx.names.Get(key); ok {
			return n, idx.zones
		}
	}
	s := h.static.Load()
	return s.names[key], s.list
}

// zoneOf returns the served zone (cluster or static) that holds the name.
func (h *Handler) zoneOf(key string) *zone {
	cidx := h.cluster.Load()
	for off := 0; off < len(key) && key[off] != 0; off += int(key[off]) + 1 {
		if z := h.static.Load().zones[key[off:]]; z != nil {
			return z
		}
		for i, cz := range h.clusterZones {
			if key[off:] == cz && cidx != nil {
				return cidx.zones[i]
			}
		}
		if h.csWire != "" && key[off:] == h.csWire && cidx != nil {
			return cidx.zones[h.iopt.csZone()]
		}
	}
	return nil
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
