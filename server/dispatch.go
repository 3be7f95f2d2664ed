package server

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/cow"
)

// The query path: a request is parsed, dispatched by kind, answered from
// the served zones (answer) or handed to the fallback (forward.go), and
// finished for its transport (truncate.go); the Result says what became of
// it.

// Handle answers one request into out (reusing its storage). The Result
// says what became of it: a response to send now (Msg), or none because
// the packet was too short to answer (Dropped) or the question went to the
// fallback (Forwarded), which calls send(client, response) itself, later
// and from another goroutine. send gets the client so that a listener can
// pass one function for all its queries instead of making one per query.
// tcp selects the size limit: 65535 over TCP, the client's EDNS size or
// 512 over UDP. It never blocks and, for answers from the served zones,
// allocates nothing.
func (h *Handler) Handle(req, out []byte, client netip.AddrPort, tcp bool, send func(netip.AddrPort, []byte)) Result {
	if h.opt.Rewrite != nil {
		if r, ok := h.rewriteHandle(req, out, client, tcp, send); ok {
			return r
		}
	}
	return h.handle(req, out, client, tcp, send)
}

// handle is Handle after question rewriting.
func (h *Handler) handle(req, out []byte, client netip.AddrPort, tcp bool, send func(netip.AddrPort, []byte)) Result {
	start := time.Now()
	var q query
	if err := parseQuery(req, &q); err != nil {
		h.metrics.malformed.Add(1)
		if len(req) < headerLen {
			return Result{Outcome: Dropped, Zone: zoneOther} // nothing to answer to
		}
		return Result{Msg: formErr(out, req), Outcome: Failed, Rcode: dns.RcodeFormatError, Zone: zoneOther}
	}
	q.truncAt, q.tcp = truncationSize(&q, tcp), tcp
	r := h.dispatch(out, &q, req, client, send, start)
	if h.opt.QueryLog != nil {
		h.logQuery(&q, req, client, tcp, r)
	}
	if r.Outcome == Forwarded {
		return r // counted when the answer comes
	}
	if r.Rcode == dns.RcodeBadVers {
		r.Msg = appendOPT(r.Msg, ednsSize, q.do, dns.RcodeBadVers>>4)
	} else {
		r.Msg = finish(r, &q, req)
	}
	h.metrics.observe(r, &q, client, len(req), len(r.Msg), start) // the sizes as sent
	return r
}

// Respond is Handle's response alone: nil when nothing is to be sent now
// (Handle's Result says why). Tests and fuzzers call it.
func (h *Handler) Respond(req, out []byte, client netip.AddrPort, tcp bool, send func(netip.AddrPort, []byte)) []byte {
	return h.Handle(req, out, client, tcp, send).Msg
}

// dispatch answers a parsed request: the unsupported kinds of request at
// once, questions from the served zones, the others through the fallback
// when this client may recurse.
func (h *Handler) dispatch(out []byte, q *query, req []byte, client netip.AddrPort, send func(netip.AddrPort, []byte), start time.Time) Result {
	switch {
	case q.opcode != dns.OpcodeQuery:
		return answered(writeEmpty(out, q, req, dns.RcodeNotImplemented, false), zoneOther)
	case q.edns && q.version > 0:
		r := answered(writeEmpty(out, q, req, dns.RcodeBadVers&0xF, false), zoneOther)
		r.Outcome, r.Rcode = Failed, dns.RcodeBadVers // the high bits go in the OPT
		return r
	case q.qclass != dns.ClassINET && q.qclass != dns.ClassANY:
		return answered(writeEmpty(out, q, req, dns.RcodeRefused, false), zoneOther)
	case q.qtype == dns.TypeAXFR || q.qtype == dns.TypeIXFR:
		rcode := dns.RcodeRefused
		if inPrefixes(h.opt.TransferFrom, client.Addr()) {
			rcode = dns.RcodeNotImplemented
		}
		return answered(writeEmpty(out, q, req, rcode, false), zoneOther)
	}
	if h.opt.Hosts != nil {
		if msg := h.hostsAnswer(out, q, req); msg != nil {
			return answered(msg, zoneFile)
		}
	}
	if r, ok := h.answer(out, q, req); ok {
		if r.Outcome == NameError && h.opt.Autopath {
			if ar, ok := h.autopath(out, q, req, client, send, r, start); ok {
				return ar
			}
		}
		return r
	}
	if h.opt.Fallback == nil || !h.recursionAllowed(client.Addr()) {
		return answered(writeEmpty(out, q, req, dns.RcodeRefused, false), zoneRefused)
	}
	rq := h.fallbackQuestion(q)
	if c := h.opt.Fallback.Cached(&rq, out); c != nil {
		return answered(h.patchForwarded(c, q, req), zoneCached)
	}
	h.forward(rq, q, req, client, send, nil, start)
	return Result{Outcome: Forwarded, Zone: zoneForward}
}

// logQuery writes the query log's line for a query and what became of it.
func (h *Handler) logQuery(q *query, req []byte, client netip.AddrPort, tcp bool, r Result) {
	if n := h.opt.QueryLogSample; n > 1 && h.logged.Add(1)%n != 0 {
		return
	}
	name, _, _ := dns.UnpackDomainName(req, headerLen)
	proto := "udp"
	if tcp {
		proto = "tcp"
	}
	h.opt.QueryLog.Info("query", "client", client.String(), "name", name, "type", dns.Type(q.qtype).String(), "proto", proto,
		"outcome", r.Outcome.String(), "zone", r.Zone.String())
}

// formErr answers a malformed request: its header with QR and FORMERR,
// and no sections (the question may be what is broken).
func formErr(out, req []byte) []byte {
	out = append(out[:0], req[:headerLen]...)
	flags := binary.BigEndian.Uint16(req[2:])
	flags = flags&(0xF<<11|flagRD|flagCD) | flagQR | dns.RcodeFormatError
	binary.BigEndian.PutUint16(out[2:], flags)
	for i := 4; i < headerLen; i++ {
		out[i] = 0
	}
	return out
}

// answer looks the question up in the served zones. ok is false when the
// name is outside them (or an unknown reverse name): the fallback's job.
func (h *Handler) answer(out []byte, q *query, req []byte) (r Result, ok bool) {
	key := q.lowerName()
	cidx := h.cluster.Load()
	if cidx != nil {
		if n, ok := cow.GetBytes(cidx.names, key); ok {
			zone := zoneCluster
			if int(n.zone) >= len(h.clusterZones) && (h.csWire == "" || n.zone != h.iopt.csZone()) {
				zone = zoneReverse
			}
			return answered(h.answerNode(out, q, req, n, cidx.zones), zone), true
		}
	}
	sidx := h.static.Load()
	if n := sidx.names[string(key)]; n != nil {
		return answered(h.answerNode(out, q, req, n, sidx.list), zoneFile), true
	}
	if cidx != nil {
		if resp := h.ptrAnswer(out, q, req, cidx, key); resp != nil {
			return answered(resp, zoneReverse), true
		}
	}
	// Not a known name: find the zone it falls in, if any.
	for off := 0; off < len(key) && key[off] != 0; off += int(key[off]) + 1 {
		suffix := key[off:]
		if z := sidx.zones[string(suffix)]; z != nil {
			return answered(writeNegative(out, q, req, z, dns.RcodeNameError), zoneFile), true
		}
		for i, cz := range h.clusterZones {
			if string(suffix) == cz {
				return answered(h.clusterName(out, q, req, cidx, key, off, i), zoneCluster), true
			}
		}
		if h.csWire != "" && string(suffix) == h.csWire {
			if cidx == nil {
				return answered(writeEmpty(out, q, req, dns.RcodeServerFailure, false), zoneCluster), true
			}
			return answered(writeNegative(out, q, req, cidx.zones[h.iopt.csZone()], dns.RcodeNameError), zoneCluster), true
		}
		if len(h.revZones) > 0 {
			if z, ok := h.revZones[string(suffix)]; ok {
				return answered(h.reverseName(out, q, req, cidx, key, z), zoneReverse), true
			}
		}
	}
	return Result{}, false
}

// clusterName answers a name of cluster zone i (starting at off of key)
// that has no node of its own: an endpoint name, a pod name, or NXDOMAIN;
// SERVFAIL before the first snapshot.
func (h *Handler) clusterName(out []byte, q *query, req []byte, cidx *clusterIndex, key []byte, off, i int) []byte {
	if cidx == nil {
		return writeEmpty(out, q, req, dns.RcodeServerFailure, false)
	}
	z := cidx.zones[i]
	if resp := h.hostAnswer(out, q, req, cidx, key); resp != nil {
		return resp
	}
	if h.iopt.podsEnabled {
		if resp := h.podRecord(out, q, req, cidx, key[:off], z); resp != nil {
			return resp
		}
	}
	return writeNegative(out, q, req, z, dns.RcodeNameError)
}

// answerNode answers q at node n (its zone one of zones): the rrset of the
// asked type (for ANY the first, A when there is one), else its alias
// chased, else NODATA.
func (h *Handler) answerNode(out []byte, q *query, req []byte, n *node, zones []*zone) []byte {
	qtype := q.qtype
	if qtype == dns.TypeANY && len(n.rrsets) > 0 {
		// RFC 8482: one RRset, not everything.
		qtype = n.rrsets[0].qtype
		if n.find(dns.TypeA) != nil {
			qtype = dns.TypeA
		}
	}
	if rs := n.find(qtype); rs != nil {
		return rs.write(out, q, req, h.opt.TTL)
	}
	if n.cname != nil {
		return h.chase(out, q, req, n)
	}
	return writeNegative(out, q, req, zones[n.zone], dns.RcodeSuccess)
}
