package resolver

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the forwarder's work. One Metrics outlives the forwarders
// that a configuration reload replaces (pass it in Options.Metrics), so
// counters never go backwards. It is a prometheus.Collector.
type Metrics struct {
	cacheHits, cacheMisses, staleServed, prefetches atomic.Uint64
	refusedInFlight                                 atomic.Uint64

	upstreamRTT *prometheus.HistogramVec // by upstream and outcome
	current     atomic.Pointer[Forwarder]

	descCache, descStale, descPrefetch, descEntries, descUp, descInFlight *prometheus.Desc
}

// NewMetrics returns zeroed forwarder metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		upstreamRTT: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "clusterdns_upstream_request_duration_seconds",
			Help:    "Exchanges with upstream servers, by upstream and outcome (ok or error).",
			Buckets: []float64{100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5},
		}, []string{"upstream", "outcome"}),
		descCache:    prometheus.NewDesc("clusterdns_cache_requests_total", "Forwarded questions looked up in the cache, by result (hit or miss).", []string{"result"}, nil),
		descStale:    prometheus.NewDesc("clusterdns_cache_stale_served_total", "Expired answers served because every upstream failed (RFC 8767).", nil, nil),
		descPrefetch: prometheus.NewDesc("clusterdns_cache_prefetches_total", "Popular entries refreshed before expiry.", nil, nil),
		descEntries:  prometheus.NewDesc("clusterdns_cache_entries", "Entries in the forwarder's cache.", nil, nil),
		descUp:       prometheus.NewDesc("clusterdns_upstream_healthy", "1 while an upstream answers, 0 while it is marked down.", []string{"upstream", "domain"}, nil),
		descInFlight: prometheus.NewDesc("clusterdns_forward_refused_in_flight_total", "Questions answered SERVFAIL because too many were already being forwarded.", nil, nil),
	}
}

// Set makes f the forwarder whose cache and upstreams are reported.
func (m *Metrics) Set(f *Forwarder) { m.current.Store(f) }

func (m *Metrics) observe(upstream string, start time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.upstreamRTT.WithLabelValues(upstream, outcome).Observe(time.Since(start).Seconds())
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.upstreamRTT.Describe(ch)
	for _, d := range []*prometheus.Desc{m.descCache, m.descStale, m.descPrefetch, m.descEntries, m.descUp, m.descInFlight} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.upstreamRTT.Collect(ch)
	ch <- prometheus.MustNewConstMetric(m.descCache, prometheus.CounterValue, float64(m.cacheHits.Load()), "hit")
	ch <- prometheus.MustNewConstMetric(m.descCache, prometheus.CounterValue, float64(m.cacheMisses.Load()), "miss")
	ch <- prometheus.MustNewConstMetric(m.descStale, prometheus.CounterValue, float64(m.staleServed.Load()))
	ch <- prometheus.MustNewConstMetric(m.descPrefetch, prometheus.CounterValue, float64(m.prefetches.Load()))
	ch <- prometheus.MustNewConstMetric(m.descInFlight, prometheus.CounterValue, float64(m.refusedInFlight.Load()))
	f := m.current.Load()
	if f == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(m.descEntries, prometheus.GaugeValue, float64(f.cache.Len()))
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
