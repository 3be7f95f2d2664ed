package server

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Where a query was answered, for the requests metric.
const (
	zoneCluster Zone = iota // a cluster domain
	zoneReverse             // in-addr.arpa / ip6.arpa names of cluster addresses
	zoneFile                // a zone file
	zoneForward             // forwarded (or answered from the cache)
	zoneRefused             // outside every zone, not forwarded
	zoneOther               // malformed, unsupported opcode or class
	zoneCats
)

var zoneNames = [zoneCats]string{"cluster", "reverse", "zonefile", "forward", "refused", "other"}

// The query types counted by name; the rest count as "other". An array, so
// that its length sizes the counters.
var metricTypes = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeTXT, dns.TypeCNAME,
	dns.TypeSOA, dns.TypeNS, dns.TypeMX, dns.TypeANY, dns.TypeHTTPS}

// typeCats is the number of query type categories: each of metricTypes,
// then "other".
const typeCats = len(metricTypes) + 1

func typeIndex(t uint16) int {
	for i, mt := range metricTypes {
		if mt == t {
			return i
		}
	}
	return len(metricTypes)
}

// latencyBuckets are the upper bounds of the latency histogram, seconds.
var latencyBuckets = [...]float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5}

// Metrics counts the handler's work with plain atomics on the query path
// and turns them into Prometheus metrics only when scraped (it is a
// prometheus.Collector): counting a query costs a few atomic adds.
type Metrics struct {
	requests   [zoneCats][typeCats][16]atomic.Uint64
	latency    [len(latencyBuckets) + 1]atomic.Uint64
	latencySum atomic.Uint64 // nanoseconds
	malformed  atomic.Uint64
	indexBuild atomic.Int64 // nanoseconds of the last cluster index update
	indexCount atomic.Uint64
	serial     atomic.Uint32

	descRequests, descLatency, descMalformed, descBuild, descBuilds, descSerial *prometheus.Desc
}

// NewMetrics returns zeroed metrics to pass in Options.Metrics (or leave
// nil and take Handler.Metrics).
func NewMetrics() *Metrics {
	return &Metrics{
		descRequests:  prometheus.NewDesc("clusterdns_requests_total", "DNS queries answered, by where they were answered, query type and rcode.", []string{"zone", "type", "rcode"}, nil),
		descLatency:   prometheus.NewDesc("clusterdns_request_duration_seconds", "Time from a parsed query to its response (forwarded ones included).", nil, nil),
		descMalformed: prometheus.NewDesc("clusterdns_malformed_requests_total", "Packets that were not a well-formed query (answered FORMERR or dropped).", nil, nil),
		descBuild:     prometheus.NewDesc("clusterdns_index_update_seconds", "Duration of the last update of the cluster answer index.", nil, nil),
		descBuilds:    prometheus.NewDesc("clusterdns_index_updates_total", "Updates of the cluster answer index (one per published snapshot).", nil, nil),
		descSerial:    prometheus.NewDesc("clusterdns_snapshot_serial", "SOA serial of the cluster zones (moves with every change).", nil, nil),
	}
}

// observe counts one answered query: where and how r answered it.
func (m *Metrics) observe(r Result, qtype uint16, start time.Time) {
	m.requests[r.Zone][typeIndex(qtype)][r.Rcode&0xF].Add(1)
	d := time.Since(start)
	m.latencySum.Add(uint64(d))
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	m.latency[i].Add(1)
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.descRequests, m.descLatency, m.descMalformed, m.descBuild, m.descBuilds, m.descSerial} {
		ch <- d
	}
}

// Collect implements prometheus.Collector; the registry calls it on scrape.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for z := range zoneCats {
		for t := range typeCats {
			for rc := range 16 {
				n := m.requests[z][t][rc].Load()
				if n == 0 {
					continue
				}
				tname := "other"
				if t < len(metricTypes) {
					tname = dns.TypeToString[metricTypes[t]]
				}
				rname, ok := dns.RcodeToString[rc]
				if !ok {
					rname = strconv.Itoa(rc)
				}
				ch <- prometheus.MustNewConstMetric(m.descRequests, prometheus.CounterValue, float64(n), zoneNames[z], tname, rname)
			}
		}
	}
	buckets := map[float64]uint64{}
	var cum uint64
	for i, b := range latencyBuckets {
		cum += m.latency[i].Load()
		buckets[b] = cum
	}
	cum += m.latency[len(latencyBuckets)].Load()
	ch <- prometheus.MustNewConstHistogram(m.descLatency, cum, float64(m.latencySum.Load())/1e9, buckets)
	ch <- prometheus.MustNewConstMetric(m.descMalformed, prometheus.CounterValue, float64(m.malformed.Load()))
	ch <- prometheus.MustNewConstMetric(m.descBuild, prometheus.GaugeValue, float64(m.indexBuild.Load())/1e9)
	ch <- prometheus.MustNewConstMetric(m.descBuilds, prometheus.CounterValue, float64(m.indexCount.Load()))
	ch <- prometheus.MustNewConstMetric(m.descSerial, prometheus.GaugeValue, float64(m.serial.Load()))
}
