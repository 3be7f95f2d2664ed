package server

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/lb/policy"
	"github.com/clusterdns/clusterdns/registry"
)

// Handler turns requests into responses from the current cluster index and
// static zones. Handle (dispatch.go) is safe for concurrent use and never
// blocks; data updates (from the registry's publisher goroutine and the
// zone file watcher) swap immutable indexes atomically.
type Handler struct {
	opt     Options
	iopt    indexOptions
	log     *slog.Logger
	cluster atomic.Pointer[clusterIndex]
	static  atomic.Pointer[staticIndex]
	// clusterZones lists the cluster domains in wire format, known before
	// the first snapshot so that their names answer SERVFAIL until then.
	clusterZones []string
	// csWire is the clusterset zone in wire format, "" when off.
	csWire string
	// revZones maps the configured reverse zones (wire format) to their
	// position in the cluster index's zones (revzones.go).
	revZones map[string]uint8
	logged   atomic.Uint32 // queries seen by the sampling query log
	metrics  *Metrics
	orders   map[string]policy.Policy // zone origin (canonical) → policy; "" the default
	fwdSel   [maxRotate + 1]policy.Selector
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
	if cs := opt.ClusterSetZone; cs != "" {
		w, err := nameToWire(cs)
		if err != nil || cs == "." {
			return nil, fmt.Errorf("clusterset zone %q: not a domain name", cs)
		}
		for _, d := range h.iopt.domains {
			if dns.CanonicalName(cs) == d {
				return nil, fmt.Errorf("clusterset zone %q is also a cluster domain", cs)
			}
		}
		h.csWire, h.iopt.clusterset = w, dns.CanonicalName(cs)
	}
	if opt.Pods == "" {
		opt.Pods = PodsDisabled
	}
	if err := opt.Pods.Validate(); err != nil {
		return nil, err
	}
	h.iopt.podsEnabled = opt.Pods == PodsInsecure || opt.Pods == PodsVerified
	h.iopt.ttl, h.iopt.negativeTTL, h.iopt.dnsService = opt.TTL, opt.NegativeTTL, opt.DNSService
	h.iopt.order = h.orderFor(h.iopt.domains[0])
	if err := h.setReverseZones(opt.ReverseZones); err != nil {
		return nil, err
	}
	h.static.Store(&staticIndex{zones: map[string]*zone{}, names: map[string]*node{}})
	return h, nil
}

// Update rebuilds the cluster index from a snapshot and swaps it in. The
// registry's builder goroutine calls it (Store.Follow); queries in flight keep
// the index they started with.
func (h *Handler) Update(snap *registry.Snapshot) error {
	start := time.Now()
	idx, err := buildClusterIndex(h.cluster.Load(), snap, &h.iopt)
	if err != nil {
		return fmt.Errorf("index snapshot %d: %w", snap.Serial, err)
	}
	h.cluster.Store(idx)
	h.metrics.programmed(snap)
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
