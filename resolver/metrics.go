package resolver

import (
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the forwarder's work. One Metrics outlives the forwarders
// that a configuration reload replaces (pass it in Options.Metrics), so
// counters never go backwards. It is a prometheus.Collector and exports the
// clusterdns_cache_*, clusterdns_upstream_* metrics and, under CoreDNS's
// names, labels and buckets, its cache and forward plugins' metrics
// (coredns_cache_*, coredns_forward_*).
type Metrics struct {
	hitsSuccess, hitsDenial, cacheMisses, staleServed, prefetches atomic.Uint64
	refusedInFlight, panics                                       atomic.Uint64

	upstreamRTT *prometheus.HistogramVec // by upstream and outcome
	current     atomic.Pointer[Forwarder]
	server      atomic.Pointer[string]

	// CoreDNS's forward plugin: per upstream ("to").
	fwdRequests  *prometheus.CounterVec   // to
	fwdResponses *prometheus.CounterVec   // rcode, to
	fwdDuration  *prometheus.HistogramVec // to, rcode
	fwdHealth    *prometheus.CounterVec   // to

	descCache, descStale, descPrefetch, descEntries, descUp, descInFlight *prometheus.Desc
	// CoreDNS's cache plugin.
	descCoreEntries, descCoreHits, descCoreMisses, descCoreRequests, descCorePrefetch, descCoreStale, descCoreRejects *prometheus.Desc
}

// coreTimeBuckets are CoreDNS's duration buckets (plugin.TimeBuckets):
// 0.25 ms doubling to 8.192 s.
var coreTimeBuckets = prometheus.ExponentialBuckets(0.00025, 2, 16)

// NewMetrics returns zeroed forwarder metrics.
func NewMetrics() *Metrics {
	cacheLabels := []string{"server", "zones", "view"}
	m := &Metrics{
		upstreamRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "clusterdns_upstream_request_duration_seconds",
			Help:    "Exchanges with upstream servers, by upstream and outcome (ok or error).",
			Buckets: []float64{100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5},
		}, []string{"upstream", "outcome"}),
		fwdRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coredns_forward_requests_total", Help: "Counter of requests made per upstream.",
		}, []string{"to"}),
		fwdResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coredns_forward_responses_total", Help: "Counter of responses received per upstream.",
		}, []string{"rcode", "to"}),
		fwdDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "coredns_forward_request_duration_seconds", Help: "Histogram of the time each request took.",
			Buckets: coreTimeBuckets,
		}, []string{"to", "rcode"}),
		fwdHealth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coredns_forward_healthcheck_failures_total", Help: "Counter of the number of failed healthchecks.",
		}, []string{"to"}),
		descCache:    prometheus.NewDesc("clusterdns_cache_requests_total", "Forwarded questions looked up in the cache, by result (hit or miss).", []string{"result"}, nil),
		descStale:    prometheus.NewDesc("clusterdns_cache_stale_served_total", "Expired answers served because every upstream failed (RFC 8767).", nil, nil),
		descPrefetch: prometheus.NewDesc("clusterdns_cache_prefetches_total", "Popular entries refreshed before expiry.", nil, nil),
		descEntries:  prometheus.NewDesc("clusterdns_cache_entries", "Entries in the forwarder's cache.", nil, nil),
		descUp:       prometheus.NewDesc("clusterdns_upstream_healthy", "1 while an upstream answers, 0 while it is marked down.", []string{"upstream", "domain"}, nil),
		descInFlight: prometheus.NewDesc("clusterdns_forward_refused_in_flight_total", "Questions answered SERVFAIL because too many were already being forwarded.", nil, nil),

		descCoreEntries:  prometheus.NewDesc("coredns_cache_entries", "The number of elements in the cache.", []string{"server", "type", "zones", "view"}, nil),
		descCoreHits:     prometheus.NewDesc("coredns_cache_hits_total", "The count of cache hits.", []string{"server", "type", "zones", "view"}, nil),
		descCoreMisses:   prometheus.NewDesc("coredns_cache_misses_total", "The count of cache misses.", cacheLabels, nil),
		descCoreRequests: prometheus.NewDesc("coredns_cache_requests_total", "The count of cache requests.", cacheLabels, nil),
		descCorePrefetch: prometheus.NewDesc("coredns_cache_prefetch_total", "The number of times the cache has prefetched a cached item.", cacheLabels, nil),
		descCoreStale:    prometheus.NewDesc("coredns_cache_served_stale_total", "The number of requests served from stale cache entries.", cacheLabels, nil),
		descCoreRejects:  prometheus.NewDesc("coredns_forward_max_concurrent_rejects_total", "Counter of the number of queries rejected because the concurrent queries were at maximum.", nil, nil),
	}
	empty := ""
	m.server.Store(&empty)
	return m
}

// SetServer sets the server label of the coredns_cache_* metrics to
// "dns://<listen>" (as server.Metrics.SetServer does for coredns_dns_*).
// Call it once at start; scrapes read it concurrently.
func (m *Metrics) SetServer(listen string) {
	s := "dns://" + listen
	m.server.Store(&s)
}

// Panics returns how many panics the forwarders' goroutines recovered from
// (each dropped one forwarded query). server.Metrics.CountPanics adds them
// to coredns_panics_total.
func (m *Metrics) Panics() uint64 { return m.panics.Load() }

// Set makes f the forwarder whose cache and upstreams are reported.
func (m *Metrics) Set(f *Forwarder) { m.current.Store(f) }

func (m *Metrics) observe(upstream string, start time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.upstreamRTT.WithLabelValues(upstream, outcome).Observe(time.Since(start).Seconds())
}

// forwarded counts one query sent to upstream to (not a health probe) and,
// when it was answered, the answer's rcode and how long it took.
func (m *Metrics) forwarded(to string, start time.Time, resp *dns.Msg) {
	m.fwdRequests.WithLabelValues(to).Inc()
	if resp == nil {
		return
	}
	rcode := dns.RcodeToString[resp.Rcode]
	m.fwdResponses.WithLabelValues(rcode, to).Inc()
	m.fwdDuration.WithLabelValues(to, rcode).Observe(time.Since(start).Seconds())
}

// cacheHit counts a hit on a cached response: a denial (NXDOMAIN, NODATA)
// or a success, as CoreDNS's cache tells them apart.
func (m *Metrics) cacheHit(resp []byte) {
	if isDenial(resp) {
		m.hitsDenial.Add(1)
	} else {
		m.hitsSuccess.Add(1)
	}
}

// isDenial reports whether a packed response is NXDOMAIN or NODATA.
func isDenial(resp []byte) bool {
	if len(resp) < 12 {
		return false
	}
	rcode := resp[3] & 0xF
	return rcode == dns.RcodeNameError || rcode == dns.RcodeSuccess && resp[6] == 0 && resp[7] == 0
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.upstreamRTT.Describe(ch)
	m.fwdRequests.Describe(ch)
	m.fwdResponses.Describe(ch)
	m.fwdDuration.Describe(ch)
	m.fwdHealth.Describe(ch)
	for _, d := range []*prometheus.Desc{m.descCache, m.descStale, m.descPrefetch, m.descEntries, m.descUp, m.descInFlight,
		m.descCoreEntries, m.descCoreHits, m.descCoreMisses, m.descCoreRequests, m.descCorePrefetch, m.descCoreStale, m.descCoreRejects} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Counting the cache's entries by
// kind walks the cache (a copy of its map: once per scrape).
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.upstreamRTT.Collect(ch)
	m.fwdRequests.Collect(ch)
	m.fwdResponses.Collect(ch)
	m.fwdDuration.Collect(ch)
	m.fwdHealth.Collect(ch)
	success, denial, misses := m.hitsSuccess.Load(), m.hitsDenial.Load(), m.cacheMisses.Load()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(m.descCache, success+denial, "hit")
	counter(m.descCache, misses, "miss")
	counter(m.descStale, m.staleServed.Load())
	counter(m.descPrefetch, m.prefetches.Load())
	counter(m.descInFlight, m.refusedInFlight.Load())
	counter(m.descCoreRejects, m.refusedInFlight.Load())
	server := *m.server.Load()
	const zones, view = ".", ""
	counter(m.descCoreHits, success, server, "success", zones, view)
	counter(m.descCoreHits, denial, server, "denial", zones, view)
	counter(m.descCoreMisses, misses, server, zones, view)
	counter(m.descCoreRequests, success+denial+misses, server, zones, view)
	counter(m.descCorePrefetch, m.prefetches.Load(), server, zones, view)
	counter(m.descCoreStale, m.staleServed.Load(), server, zones, view)
	f := m.current.Load()
	if f == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(m.descEntries, prometheus.GaugeValue, float64(f.cache.Len()))
	s, d := f.cache.kinds()
	ch <- prometheus.MustNewConstMetric(m.descCoreEntries, prometheus.GaugeValue, float64(s), server, "success", zones, view)
	ch <- prometheus.MustNewConstMetric(m.descCoreEntries, prometheus.GaugeValue, float64(d), server, "denial", zones, view)
	for _, g := range append([]*group{f.def}, f.stubs...) {
		for _, u := range g.upstreams {
			up := 1.0
			if u.down.Load() {
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(m.descUp, prometheus.GaugeValue, up, u.addr, g.domain)
		}
	}
}
