package server

import (
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Where a query was answered, for the requests metrics.
const (
	zoneCluster Zone = iota // a cluster domain
	zoneReverse             // in-addr.arpa / ip6.arpa names of cluster addresses
	zoneFile                // a zone file
	zoneForward             // forwarded
	zoneRefused             // outside every zone, not forwarded
	zoneOther               // malformed, unsupported opcode or class
	zoneCached              // answered from the forwarder's cache ("forward" in clusterdns_requests_total)
	zoneCats
)

// zoneNames are the zone label values of clusterdns_requests_total.
var zoneNames = [zoneCats]string{"cluster", "reverse", "zonefile", "forward", "refused", "other", "forward"}

// countedTypes are the query types counted by name, CoreDNS's set (its
// metrics plugin's type label); every other type counts as "other".
// clusterdns_requests_total names a subset of them (clusterdnsType).
var countedTypes = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeDNSKEY, dns.TypeDS, dns.TypeMX,
	dns.TypeNSEC3, dns.TypeNSEC, dns.TypeNS, dns.TypePTR, dns.TypeRRSIG, dns.TypeSOA, dns.TypeSRV, dns.TypeTXT,
	dns.TypeHTTPS, dns.TypeIXFR, dns.TypeAXFR, dns.TypeANY}

const typeCats = len(countedTypes) + 1 // the last one is "other"

// typeIndexes maps a query type below 256 (every counted type is) to its
// index in countedTypes, 0 meaning "other" and i+1 countedTypes[i].
var typeIndexes = func() (t [256]uint8) {
	for i, qt := range countedTypes {
		t[qt] = uint8(i + 1)
	}
	return t
}()

func typeIndex(t uint16) int {
	if t < 256 {
		if i := typeIndexes[t]; i != 0 {
			return int(i - 1)
		}
	}
	return len(countedTypes)
}

// typeName is the type label of index i.
func typeName(i int) string {
	if i < len(countedTypes) {
		return dns.TypeToString[countedTypes[i]]
	}
	return "other"
}

// clusterdnsType is the type label of index i in clusterdns_requests_total,
// which names fewer types than CoreDNS's metrics (its label values are kept
// as they were).
func clusterdnsType(i int) string {
	if i < len(countedTypes) {
		switch countedTypes[i] {
		case dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeTXT, dns.TypeCNAME,
			dns.TypeSOA, dns.TypeNS, dns.TypeMX, dns.TypeANY, dns.TypeHTTPS:
			return typeName(i)
		}
	}
	return "other"
}

// rcodeCats counts rcodes 0-15 and BADVERS (16, the one extended rcode the
// server answers).
const rcodeCats = 17

func rcodeName(rc int) string {
	if rc == dns.RcodeBadVers {
		return "BADVERS"
	}
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}

// Transports: proto (udp, tcp) × address family (IPv4, IPv6).
const transports = 4

func transportIndex(tcp bool, client netip.AddrPort) int {
	i := 0
	if tcp {
		i = 2
	}
	if !client.Addr().Unmap().Is4() {
		i++
	}
	return i
}

// latencyBuckets are the upper bounds of clusterdns_request_duration_seconds.
var latencyBuckets = [...]float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5}

// Metrics counts the handler's work with plain atomics on the query path
// and turns them into Prometheus metrics only when scraped (it is a
// prometheus.Collector): counting a query costs a few atomic adds and no
// allocation. It exports the clusterdns_* metrics and, under CoreDNS's
// names, labels and buckets, the coredns_dns_* ones (coredns.go).
type Metrics struct {
	// requests is by where answered, type, rcode and transport: every
	// requests and responses counter is a sum over it.
	requests   [zoneCats][typeCats][rcodeCats][transports]atomic.Uint64
	latency    [len(latencyBuckets) + 1]atomic.Uint64
	malformed  atomic.Uint64
	indexBuild atomic.Int64 // nanoseconds of the last cluster index update
	indexCount atomic.Uint64
	serial     atomic.Uint32
	panics     atomic.Uint64
	morePanics func() uint64 // CountPanics

	core coreMetrics

	descRequests, descLatency, descMalformed, descBuild, descBuilds, descSerial *prometheus.Desc
}

// NewMetrics returns zeroed metrics to pass in Options.Metrics (or leave
// nil and take Handler.Metrics).
func NewMetrics() *Metrics {
	m := &Metrics{
		descRequests:  prometheus.NewDesc("clusterdns_requests_total", "DNS queries answered, by where they were answered, query type and rcode.", []string{"zone", "type", "rcode"}, nil),
		descLatency:   prometheus.NewDesc("clusterdns_request_duration_seconds", "Time from a parsed query to its response (forwarded ones included).", nil, nil),
		descMalformed: prometheus.NewDesc("clusterdns_malformed_requests_total", "Packets that were not a well-formed query (answered FORMERR or dropped).", nil, nil),
		descBuild:     prometheus.NewDesc("clusterdns_index_update_seconds", "Duration of the last update of the cluster answer index.", nil, nil),
		descBuilds:    prometheus.NewDesc("clusterdns_index_updates_total", "Updates of the cluster answer index (one per published snapshot).", nil, nil),
		descSerial:    prometheus.NewDesc("clusterdns_snapshot_serial", "SOA serial of the cluster zones (moves with every change).", nil, nil),
	}
	m.core.init()
	return m
}

// observe counts one answered query: where and how r answered it, its
// question and transport (q), the client, and the sizes of the request and
// of the response as sent. It never allocates.
func (m *Metrics) observe(r Result, q *query, client netip.AddrPort, reqLen, respLen int, start time.Time) {
	rcode := r.Rcode
	if rcode != dns.RcodeBadVers {
		rcode &= 0xF
	}
	t, tr := typeIndex(q.qtype), transportIndex(q.tcp, client)
	m.requests[r.Zone][t][rcode][tr].Add(1)
	d := time.Since(start)
	m.latency[bucketOf(latencyBuckets[:], d.Seconds())].Add(1)
	m.core.observe(t, tr>>1, q.do, d, reqLen, respLen)
}

// bucketOf is the index of the first bucket whose upper bound is at least
// v, len(bounds) for +Inf.
func bucketOf(bounds []float64, v float64) int {
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	return i
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.descRequests, m.descLatency, m.descMalformed, m.descBuild, m.descBuilds, m.descSerial} {
		ch <- d
	}
	m.core.describe(ch)
}

// Collect implements prometheus.Collector; the registry calls it on scrape.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		zone, typ string
		rcode     int
	}
	requests := map[key]uint64{}
	for z := range zoneCats {
		for t := range typeCats {
			for rc := range rcodeCats {
				for tr := range transports {
					if n := m.requests[z][t][rc][tr].Load(); n != 0 {
						requests[key{zoneNames[z], clusterdnsType(t), rc}] += n
					}
				}
			}
		}
	}
	for k, n := range requests {
		ch <- prometheus.MustNewConstMetric(m.descRequests, prometheus.CounterValue, float64(n), k.zone, k.typ, rcodeName(k.rcode))
	}
	var latencySum uint64 // the same durations as coredns_dns_request_duration_seconds, summed over types
	for t := range m.core.durationSum {
		latencySum += m.core.durationSum[t].Load()
	}
	ch <- constHistogram(m.descLatency, latencyBuckets[:], m.latency[:], float64(latencySum)/1e9)
	ch <- prometheus.MustNewConstMetric(m.descMalformed, prometheus.CounterValue, float64(m.malformed.Load()))
	ch <- prometheus.MustNewConstMetric(m.descBuild, prometheus.GaugeValue, float64(m.indexBuild.Load())/1e9)
	ch <- prometheus.MustNewConstMetric(m.descBuilds, prometheus.CounterValue, float64(m.indexCount.Load()))
	ch <- prometheus.MustNewConstMetric(m.descSerial, prometheus.GaugeValue, float64(m.serial.Load()))
	m.core.collect(ch, m)
}

// constHistogram makes a histogram from per-bucket counts (the last one is
// +Inf) and a sum.
func constHistogram(desc *prometheus.Desc, bounds []float64, counts []atomic.Uint64, sum float64, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, b := range bounds {
		cum += counts[i].Load()
		buckets[b] = cum
	}
	cum += counts[len(bounds)].Load()
	return prometheus.MustNewConstHistogram(desc, cum, sum, buckets, labels...)
}
