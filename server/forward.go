package server

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/dnswire"
	"github.com/clusterdns/clusterdns/resolver"
)

// Questions outside the served zones: the Fallback (the resolver's
// Forwarder) answers them from its cache at once or later, and its
// responses are made answers to the client's question.

// Fallback answers what the authoritative data does not cover (names
// outside the served zones, unknown reverse names): the resolver's
// Forwarder. Handler calls both methods on the listener's goroutine;
// neither may block. Cached copies a cached response into out or returns
// nil; Resolve answers later by calling done once, from any goroutine, with
// a response packed without OPT (nil for SERVFAIL).
type Fallback interface {
	Cached(q *resolver.Question, out []byte) []byte
	Resolve(q resolver.Question, done func(resp []byte))
}

// recursionAllowed reports whether a client may ask for names outside the
// served zones.
func (h *Handler) recursionAllowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range h.opt.RecursionFrom {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (h *Handler) fallbackQuestion(q *query) resolver.Question {
	// Key is copied: a slice of q would move every query to the heap.
	rq := resolver.Question{Wire: q.qname, Key: append([]byte(nil), q.lowerName()...), Type: q.qtype, Class: q.qclass, DO: q.do, CD: q.flags&flagCD != 0}
	if q.edns {
		rq.UDPSize = q.udpSize
	}
	return rq
}

// forward hands a question to the fallback; its answer is patched for the
// client (and passed through wrap, when given) and sent.
func (h *Handler) forward(rq resolver.Question, q *query, req []byte, client netip.AddrPort, send func(netip.AddrPort, []byte), wrap func(resp []byte) []byte, start time.Time) {
	qc := *q
	reqc := append([]byte(nil), req...)
	qc.qname = reqc[headerLen : headerLen+len(q.qname)]
	// The listener reuses its buffers: keep copies past this call.
	rq.Wire = append([]byte(nil), rq.Wire...)
	rq.Key = append([]byte(nil), rq.Key...)
	h.opt.Fallback.Resolve(rq, func(r []byte) {
		var resp []byte
		if wrap != nil && r != nil {
			r = wrap(r)
		}
		if r == nil {
			resp = writeEmpty(nil, &qc, reqc, dns.RcodeServerFailure, false)
		} else {
			resp = h.patchForwarded(r, &qc, reqc)
		}
		res := answered(resp, zoneForward)
		res.Msg = finish(res, &qc, reqc)
		h.metrics.observe(res, &qc, client, len(reqc), len(res.Msg), start)
		send(client, res.Msg)
	})
}

// patchForwarded makes a forwarded or cached response the answer to q: the
// client's ID, flags and question spelling, its addresses in the order the
// forwarded zone's policy picks. A response to another question is
// SERVFAIL.
func (h *Handler) patchForwarded(resp []byte, q *query, req []byte) []byte {
	if len(resp) < q.qend || !dnswire.EqualFold(resp[headerLen:q.qend], req[headerLen:q.qend]) {
		return writeEmpty(resp, q, req, dns.RcodeServerFailure, false)
	}
	binary.BigEndian.PutUint16(resp[0:], q.id)
	flags := binary.BigEndian.Uint16(resp[2:])
	flags = flags&(0xF|1<<5) | flagQR | flagRA | q.flags&(flagRD|flagCD) // keep rcode and AD
	binary.BigEndian.PutUint16(resp[2:], flags)
	copy(resp[headerLen:], req[headerLen:q.qend])
	if start, size, n, ok := findRun(resp); ok && n <= maxRotate && h.fwdSel[n] != nil {
		rotate(resp, start, size, n, h.fwdSel[n].Select(0))
	}
	return resp
}
