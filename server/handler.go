package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/cow"
	"github.com/clusterdns/clusterdns/internal/dnswire"
	"github.com/clusterdns/clusterdns/lb/policy"
	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/resolver"
)

// PodMode selects how a-b-c-d.<ns>.pod.<zone> names are answered.
type PodMode string

// The pod record modes (CoreDNS `pods`).
const (
	PodsDisabled PodMode = "disabled" // NXDOMAIN
	PodsInsecure PodMode = "insecure" // any well-formed name answers its IP
	PodsVerified PodMode = "verified" // only when a pod with that IP is in that namespace
)

// Options configure the answers. Domains are the cluster domains served
// (the first one names PTR targets); TTL applies to cluster records and
// NegativeTTL to the SOA of negative answers.
type Options struct {
	Domains     []string
	TTL         uint32
	NegativeTTL uint32
	Pods        PodMode
	// DNSService is the service whose ClusterIP is the glue of the zones'
	// NS name (kube-system/kube-dns by default).
	DNSService registry.Key
	// Fallback answers names outside every served zone; nil answers REFUSED.
	Fallback Fallback
	// RecursionFrom lists the client networks whose questions outside the
	// served zones go to Fallback; others get REFUSED (not an open resolver).
	RecursionFrom []netip.Prefix
	// TransferFrom lists the client networks allowed to ask for zone
	// transfers (AXFR, IXFR). Transfers are not implemented: those clients
	// get NOTIMP, every other client REFUSED.
	TransferFrom []netip.Prefix
	// Autopath completes a pod's search path on the server (CoreDNS
	// autopath): needs pods known by IP (pods: verified, or pods in files).
	Autopath bool
	// QueryLog, when set, receives one line per query received (client,
	// name, type, transport); QueryLogSample logs one query in N (0 or 1:
	// every query).
	QueryLog       *slog.Logger
	QueryLogSample uint32
	// AnswerOrder is how the A/AAAA records of a name are ordered per query:
	// "off", "round_robin" (the default) or "random". ZoneOrder overrides
	// it per zone (origin → policy); the zone "." stands for forwarded
	// answers.
	AnswerOrder string
	ZoneOrder   map[string]string
	// Metrics receives the handler's counts; nil makes new ones. Handlers
	// that replace one another on a configuration reload share one.
	Metrics *Metrics
}

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

// Handler turns requests into responses from the current cluster index and
// static zones. Respond is safe for concurrent use and never blocks; data
// updates (from the registry's publisher goroutine and the zone file
// watcher) swap immutable indexes atomically.
type Handler struct {
	opt     Options
	iopt    indexOptions
	log     *slog.Logger
	cluster atomic.Pointer[clusterIndex]
	static  atomic.Pointer[staticIndex]
	// clusterZones lists the cluster domains in wire format, known before
	// the first snapshot so that their names answer SERVFAIL until then.
	clusterZones []string
	logged       atomic.Uint32 // queries seen by the sampling query log
	metrics      *Metrics
	orders       map[string]policy.Policy // zone origin (canonical) → policy; "" the default
	fwdSel       [maxRotate + 1]policy.Selector
}

// maxRotate bounds the forwarded answers that are reordered (records).
const maxRotate = 64

// orderFor returns the answer ordering policy of a zone, nil when off.
func (h *Handler) orderFor(origin string) policy.Policy {
	if p, ok := h.orders[dns.CanonicalName(origin)]; ok {
		return p
	}
	return h.orders[""]
}

// NewHandler validates the options and returns a handler that answers
// SERVFAIL for cluster names until the first snapshot arrives.
func NewHandler(opt Options, log *slog.Logger) (*Handler, error) {
	if log == nil {
		log = slog.Default()
	}
	if len(opt.Domains) == 0 {
		return nil, fmt.Errorf("no cluster domain")
	}
	h := &Handler{opt: opt, log: log, orders: map[string]policy.Policy{}}
	h.metrics = opt.Metrics
	if h.metrics == nil {
		h.metrics = NewMetrics()
	}
	if opt.AnswerOrder == "" {
		opt.AnswerOrder = "round_robin"
	}
	def, err := orderPolicy(opt.AnswerOrder)
	if err != nil {
		return nil, err
	}
	h.orders[""] = def
	for zone, name := range opt.ZoneOrder {
		p, err := orderPolicy(name)
		if err != nil {
			return nil, fmt.Errorf("zone %s: %w", zone, err)
		}
		h.orders[dns.CanonicalName(zone)] = p
	}
	if p := h.orderFor("."); p != nil {
		for n := 2; n <= maxRotate; n++ {
			h.fwdSel[n] = p.Build(make([]policy.Candidate, n))
		}
	}
	for _, d := range opt.Domains {
		w, err := nameToWire(d)
		if err != nil || d == "" || d == "." {
			return nil, fmt.Errorf("cluster domain %q: not a domain name", d)
		}
		h.clusterZones = append(h.clusterZones, w)
		h.iopt.domains = append(h.iopt.domains, dns.CanonicalName(d))
	}
	switch opt.Pods {
	case "", PodsDisabled:
	case PodsInsecure, PodsVerified:
		h.iopt.podsEnabled = true
	default:
		return nil, fmt.Errorf("pods %q: want disabled, insecure or verified", opt.Pods)
	}
	h.iopt.ttl, h.iopt.negativeTTL, h.iopt.dnsService = opt.TTL, opt.NegativeTTL, opt.DNSService
	h.iopt.order = h.orderFor(h.iopt.domains[0])
	h.static.Store(&staticIndex{zones: map[string]*zone{}, names: map[string]*node{}})
	return h, nil
}

// Update rebuilds the cluster index from a snapshot and swaps it in. The
// registry's publisher calls it (Store.Subscribe); queries in flight keep
// the index they started with.
func (h *Handler) Update(snap *registry.Snapshot) error {
	start := time.Now()
	idx, err := buildClusterIndex(h.cluster.Load(), snap, &h.iopt)
	if err != nil {
		return fmt.Errorf("index snapshot %d: %w", snap.Serial, err)
	}
	h.cluster.Store(idx)
	h.metrics.indexBuild.Store(int64(time.Since(start)))
	h.metrics.serial.Store(snap.Serial)
	h.metrics.indexCount.Add(1)
	return nil
}

// Metrics returns the handler's metrics, a prometheus.Collector to
// register where metrics are served.
func (h *Handler) Metrics() *Metrics { return h.metrics }

// Serial returns the cluster zones' SOA serial, 0 before the first snapshot.
func (h *Handler) Serial() uint32 {
	if idx := h.cluster.Load(); idx != nil {
		return idx.snap.Serial
	}
	return 0
}

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
	start := time.Now()
	var q query
	if err := parseQuery(req, &q); err != nil {
		h.metrics.malformed.Add(1)
		if len(req) < headerLen {
			return Result{Outcome: Dropped, Zone: zoneOther} // nothing to answer to
		}
		return Result{Msg: formErr(out, req), Outcome: Failed, Rcode: dns.RcodeFormatError, Zone: zoneOther}
	}
	q.truncAt = truncationSize(&q, tcp)
	r := h.dispatch(out, &q, req, client, send, start)
	if h.opt.QueryLog != nil {
		h.logQuery(&q, req, client, tcp, r)
	}
	if r.Outcome == Forwarded {
		return r // counted when the answer comes
	}
	h.metrics.observe(r, q.qtype, start)
	if r.Rcode == dns.RcodeBadVers {
		r.Msg = appendOPT(r.Msg, ednsSize, q.do, dns.RcodeBadVers>>4)
		return r
	}
	r.Msg = finish(r, &q, req)
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
		return answered(h.patchForwarded(c, q, req), zoneForward)
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
		h.metrics.observe(res, qc.qtype, start)
		send(client, finish(res, &qc, reqc))
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

// ednsSize is the UDP payload size clusterdns advertises (DNS flag day 2020).
const ednsSize = 1232

// truncationSize is the size of a response (without OPT) beyond which
// finish sends it truncated.
func truncationSize(q *query, tcp bool) int {
	limit := dns.MaxMsgSize
	if !tcp {
		limit = 512
		if q.edns {
			limit = int(q.udpSize)
		}
	}
	if q.edns {
		limit -= 11 // the OPT record finish appends
	}
	return limit
}

// finish returns r's response with the OPT record when the client sent
// one, truncated when longer than q.truncAt: TC=1 with the question only,
// and r's rcode and authority.
func finish(r Result, q *query, req []byte) []byte {
	resp := r.Msg
	if len(resp) > q.truncAt {
		resp = writeEmpty(resp, q, req, r.Rcode, r.authoritative())
		binary.BigEndian.PutUint16(resp[2:], binary.BigEndian.Uint16(resp[2:])|flagTC)
	}
	if q.edns {
		resp = appendOPT(resp, ednsSize, q.do, 0)
	}
	return resp
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
			if int(n.zone) >= len(h.clusterZones) {
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
	}
	return nil
}

// podRecord answers a-b-c-d.<ns>.pod.<zone> (or the dashed IPv6 form) when
// pod records are on; nil when the name is not of that shape.
func (h *Handler) podRecord(out []byte, q *query, req []byte, idx *clusterIndex, rel []byte, z *zone) []byte {
	// rel is "<ip>.<ns>.pod." in wire form (labels before the zone).
	if !bytes.HasSuffix(rel, []byte("\x03pod")) {
		return nil // not a pod name: no allocation on the NXDOMAIN path
	}
	labels := splitWire(rel)
	if len(labels) != 3 || labels[2] != "pod" {
		return nil
	}
	ipLabel, ns := labels[0], labels[1]
	var ip netip.Addr
	var err error
	if strings.Count(ipLabel, "-") == 3 {
		ip, err = netip.ParseAddr(strings.ReplaceAll(ipLabel, "-", "."))
	} else {
		ip, err = netip.ParseAddr(strings.ReplaceAll(ipLabel, "-", ":"))
	}
	if err != nil {
		return nil
	}
	if h.opt.Pods == PodsVerified {
		found := false
		for _, p := range idx.snap.PodsByIP(ip) {
			if p.Namespace == ns {
				found = true
			}
		}
		if !found {
			return nil
		}
	} else if !idx.snap.HasNamespace(ns) {
		return nil
	}
	want := uint16(dns.TypeA)
	if ip.Is6() {
		want = dns.TypeAAAA
	}
	if q.qtype != want && q.qtype != dns.TypeANY {
		return writeNegative(out, q, req, z, dns.RcodeSuccess)
	}
	name, _, err := dns.UnpackDomainName(req, headerLen)
	if err != nil {
		return nil
	}
	hdr := dns.RR_Header{Name: name, Rrtype: want, Class: dns.ClassINET, Ttl: h.opt.TTL}
	var rr dns.RR = &dns.A{Hdr: hdr, A: ip.AsSlice()}
	if ip.Is6() {
		rr = &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()}
	}
	p, err := prepare(name, q.qtype, []dns.RR{rr}, nil, dns.RcodeSuccess)
	if err != nil {
		return nil
	}
	return writePrepared(out, &p, q, req)
}

// splitWire returns the labels of a wire-format name fragment.
func splitWire(b []byte) []string {
	var out []string
	for off := 0; off < len(b) && b[off] != 0; off += int(b[off]) + 1 {
		end := off + 1 + int(b[off])
		if end > len(b) {
			return nil
		}
		out = append(out, string(b[off+1:end]))
	}
	return out
}
