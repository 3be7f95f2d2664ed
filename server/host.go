package server

import (
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/cow"
	"github.com/clusterdns/clusterdns/registry"
)

// Endpoint names of headless services, <label>.<svc>.<ns>.svc.<zone>:
// found through the service node's hostIndex, written at query time.

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

// hostIndex finds a headless service's endpoints by their DNS label, so
// that <label>.<svc>.<ns>.svc.<zone> is answered from the service's node
// instead of a name of its own (100,000 endpoints would be 100,000 more
// names, and as many reverse names).
type hostIndex struct {
	entry *registry.ServiceEntry
	// byLabel holds the positions of the published endpoints, sorted by
	// DNS label, then position: a label is found by binary search (4 bytes
	// an endpoint rather than a map entry).
	byLabel []int32
	shared  bool // some label belongs to several endpoints (rare)
}

// newHostIndex indexes the given endpoint positions of e by label.
func newHostIndex(ar *arena, e *registry.ServiceEntry, positions []int32) *hostIndex {
	hi := ar.hostIndex()
	hi.entry, hi.byLabel = e, positions
	slices.SortFunc(hi.byLabel, func(a, b int32) int {
		if c := strings.Compare(e.Endpoints[a].DNSName, e.Endpoints[b].DNSName); c != 0 {
			return c
		}
		return int(a - b)
	})
	for i := 1; i < len(hi.byLabel); i++ {
		if e.Endpoints[hi.byLabel[i]].DNSName == e.Endpoints[hi.byLabel[i-1]].DNSName {
			hi.shared = true
		}
	}
	return hi
}

// lookup returns the positions of the endpoints with this label (lower
// case), in endpoint order.
func (hi *hostIndex) lookup(label []byte) []int32 {
	eps := hi.entry.Endpoints
	lo, hi2 := 0, len(hi.byLabel)
	for lo < hi2 {
		m := int(uint(lo+hi2) >> 1)
		if compareLabel(eps[hi.byLabel[m]].DNSName, label) < 0 {
			lo = m + 1
		} else {
			hi2 = m
		}
	}
	end := lo
	for end < len(hi.byLabel) && eps[hi.byLabel[end]].DNSName == string(label) {
		end++
	}
	return hi.byLabel[lo:end]
}

// compareLabel compares a string with a byte label like strings.Compare,
// without converting either.
func compareLabel(s string, b []byte) int {
	for i := 0; i < len(s) && i < len(b); i++ {
		if s[i] != b[i] {
			if s[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return len(s) - len(b)
}
