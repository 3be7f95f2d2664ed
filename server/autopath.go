package server

import (
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// autopath completes a pod's DNS search on the server (CoreDNS autopath).
// A pod in namespace ns searches <ns>.svc.<zone>, svc.<zone>, <zone>, then
// the bare name; its first question is X.<ns>.svc.<zone>. When that does
// not exist, the server walks the rest of the search itself and answers
// the first hit as a CNAME from the asked name, so `api.example.com` costs
// one round trip instead of four. Clients that are not known pods (unknown
// IPs, host-network pods) keep the normal answer nx: ok is false then. The
// result is Forwarded when the bare name went upstream and the answer will
// be sent later.
func (h *Handler) autopath(out []byte, q *query, req []byte, client netip.AddrPort, send func(netip.AddrPort, []byte), nx Result, start time.Time) (r Result, ok bool) {
	idx := h.cluster.Load()
	if idx == nil {
		return Result{}, false
	}
	ns := ""
	for _, p := range idx.snap.PodsByIP(client.Addr().Unmap()) {
		if !p.HostNetwork {
			ns = p.Namespace
			break
		}
	}
	if ns == "" {
		return Result{}, false
	}
	key := string(q.lowerName())
	for _, zw := range h.clusterZones {
		suffix := string([]byte{byte(len(ns))}) + ns + "\x03svc" + zw
		if !strings.HasSuffix(key, suffix) || len(key) == len(suffix) {
			continue
		}
		prefix := key[:len(key)-len(suffix)] // X's labels, without the root
		for _, cand := range []string{prefix + "\x03svc" + zw, prefix + zw, prefix + "\x00"} {
			n, zones := h.lookupWire(cand)
			var synth *dns.Msg
			if n == nil {
				var ok bool
				if synth, ok = h.writtenAt(wireToName(cand), q.qtype, nil); !ok {
					continue
				}
			}
			m, name, err := newReply(q, req)
			if err != nil {
				return Result{}, false
			}
			target := wireToName(cand)
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: h.opt.TTL}, Target: target})
			if synth != nil {
				m.Answer = append(m.Answer, synth.Answer...)
				m.Ns = append(m.Ns, synth.Ns...)
			} else {
				h.follow(m, target, n, zones, q.qtype)
			}
			return answered(h.pack(out, m, q, req), nx.Zone), true
		}
		bare := prefix + "\x00"
		if h.zoneOf(bare) != nil || h.opt.Fallback == nil || !h.recursionAllowed(client.Addr()) {
			return Result{}, false // not found in our zones: the normal NXDOMAIN
		}
		nxMsg := append([]byte(nil), nx.Msg...) // the answer if the bare name fails too
		rq := h.fallbackQuestion(q)
		rq.Wire = []byte(bare)
		rq.Key = []byte(bare)
		target := wireToName(bare)
		qname, _, _ := dns.UnpackDomainName(req, headerLen)
		qtype, qclass := q.qtype, q.qclass // the closure must not keep q (it would move every query to the heap)
		wrap := func(r []byte) []byte {
			var up dns.Msg
			if err := up.Unpack(r); err != nil || up.Rcode != dns.RcodeSuccess {
				return nxMsg
			}
			m := new(dns.Msg)
			m.Response, m.Compress = true, true
			m.Rcode = up.Rcode
			m.Question = []dns.Question{{Name: qname, Qtype: qtype, Qclass: qclass}}
			m.Answer = append([]dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: h.opt.TTL}, Target: target}}, up.Answer...)
			m.Ns, m.Extra = up.Ns, up.Extra
			w, err := m.Pack()
			if err != nil {
				return nil
			}
			return w
		}
		h.forward(rq, q, req, client, send, wrap, start)
		return Result{Outcome: Forwarded, Zone: zoneForward}, true
	}
	return Result{}, false
}

// wireToName turns a wire-format name into presentation form.
func wireToName(w string) string {
	name, _, err := dns.UnpackDomainName([]byte(w), 0)
	if err != nil {
		return "."
	}
	return name
}
