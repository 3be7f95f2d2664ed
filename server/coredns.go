package server

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/clusterdns/clusterdns/registry"
)

// CoreDNS's metrics (its prometheus plugin): the same names, label sets and
// buckets, so that dashboards and alerts written for CoreDNS find their
// series. clusterdns is one server block "." in CoreDNS's terms: the zone
// label is ".", the view label is empty, and the server label is
// "dns://<listen address>" (SetServer). The plugin label of the responses
// names what CoreDNS plugin would have written the answer: kubernetes
// (cluster and reverse names), file (zone files), forward, cache, or empty
// when the server itself answered (REFUSED, NOTIMP, BADVERS).

// coreTimeBuckets are CoreDNS's duration buckets (plugin.TimeBuckets):
// 0.25 ms doubling to 8.192 s.
var coreTimeBuckets = func() (b [16]float64) { copy(b[:], prometheus.ExponentialBuckets(0.00025, 2, len(b))); return b }()

// sizeBuckets are CoreDNS's request and response size buckets, bytes.
var sizeBuckets = [...]float64{0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3}

// pluginNames is the plugin label per zone category.
var pluginNames = [zoneCats]string{zoneCluster: "kubernetes", zoneReverse: "kubernetes", zoneFile: "file",
	zoneForward: "forward", zoneCached: "cache"}

var protoNames = [2]string{"udp", "tcp"}

// coreMetrics holds what the CoreDNS metrics need beyond Metrics.requests:
// durations by type and sizes by proto, counted with atomics.
type coreMetrics struct {
	server      atomic.Pointer[string]
	duration    [typeCats][len(coreTimeBuckets) + 1]atomic.Uint64
	durationSum [typeCats]atomic.Uint64 // nanoseconds
	reqSize     [2][len(sizeBuckets) + 1]atomic.Uint64
	respSize    [2][len(sizeBuckets) + 1]atomic.Uint64
	reqSizeSum  [2]atomic.Uint64
	respSizeSum [2]atomic.Uint64
	doRequests  atomic.Uint64 // queries with the DO bit
	build       [3]string     // version, revision, goversion
	// DNS programming latency of headless services (CoreDNS's kubernetes
	// plugin), and the serial of the last snapshot measured.
	programming    [len(programmingBuckets) + 1]atomic.Uint64
	programmingSum atomic.Uint64 // nanoseconds
	programmedAt   atomic.Uint32

	descRequests, descResponses, descDuration, descReqSize, descRespSize, descPanics, descBuild, descProgramming, descDO *prometheus.Desc
}

// programmingBuckets are the buckets of CoreDNS's
// coredns_kubernetes_dns_programming_duration_seconds: 1 ms doubling to
// about 17 minutes.
var programmingBuckets = func() (b [20]float64) { copy(b[:], prometheus.ExponentialBuckets(0.001, 2, len(b))); return b }()

// programmed measures, for each EndpointSlice change of a headless service
// that snap publishes, the time from the change that triggered it (the
// controller's annotation) to now, when the answers are in service: the
// Kubernetes DNS programming latency SLI, as CoreDNS measures it
// (service_kind "headless_with_selector"; the other kinds have no trigger
// time to measure from). Each snapshot is measured once, even when two
// handlers (a configuration reload) load it.
func (m *Metrics) programmed(snap *registry.Snapshot) {
	if len(snap.Triggers) == 0 {
		return
	}
	for {
		last := m.core.programmedAt.Load()
		if snap.Serial <= last {
			return
		}
		if m.core.programmedAt.CompareAndSwap(last, snap.Serial) {
			break
		}
	}
	for _, tr := range snap.Triggers {
		if e := snap.Service(tr.Service); e == nil || e.Kind != registry.KindHeadless {
			continue
		}
		d := max(time.Since(tr.At), 0) // clocks of the controller and of this node may differ
		m.core.programming[bucketOf(programmingBuckets[:], d.Seconds())].Add(1)
		m.core.programmingSum.Add(uint64(d))
	}
}

func (c *coreMetrics) init() {
	empty := ""
	c.server.Store(&empty)
	c.descRequests = prometheus.NewDesc("coredns_dns_requests_total", "Counter of DNS requests made per zone, protocol and family.",
		[]string{"server", "zone", "view", "proto", "family", "type"}, nil)
	c.descResponses = prometheus.NewDesc("coredns_dns_responses_total", "Counter of response status codes.",
		[]string{"server", "zone", "view", "rcode", "plugin"}, nil)
	c.descDuration = prometheus.NewDesc("coredns_dns_request_duration_seconds", "Histogram of the time (in seconds) each request took.",
		[]string{"server", "zone", "view", "type"}, nil)
	c.descReqSize = prometheus.NewDesc("coredns_dns_request_size_bytes", "Size of the request in bytes.",
		[]string{"server", "zone", "view", "proto"}, nil)
	c.descRespSize = prometheus.NewDesc("coredns_dns_response_size_bytes", "Size of the returned response in bytes.",
		[]string{"server", "zone", "view", "proto"}, nil)
	c.descDO = prometheus.NewDesc("coredns_dns_do_requests_total", "Counter of DNS requests with DO bit set per zone.",
		[]string{"server", "view", "zone"}, nil)
	c.descPanics = prometheus.NewDesc("coredns_panics_total", "Panics recovered while answering a query (the query is dropped).", nil, nil)
	c.descBuild = prometheus.NewDesc("coredns_build_info", "A metric with a constant '1' value labeled by version, revision, and goversion from which clusterdns was built.",
		[]string{"version", "revision", "goversion"}, nil)
	c.descProgramming = prometheus.NewDesc("coredns_kubernetes_dns_programming_duration_seconds", "Histogram of the time (in seconds) it took to program a dns instance.",
		[]string{"service_kind"}, nil)
	c.build = [3]string{"unknown", "unknown", runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			c.build[0] = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				c.build[1] = s.Value
			}
		}
	}
}

// SetServer sets the server label of the coredns_* metrics to
// "dns://<listen>", as CoreDNS names a server block by its address. Call it
// once at start; scrapes read it concurrently.
func (m *Metrics) SetServer(listen string) {
	s := "dns://" + listen
	m.core.server.Store(&s)
}

// CountPanics adds the panics that more reports (the forwarder's:
// resolver.Metrics.Panics) to coredns_panics_total. Call it once at start,
// before the metrics are registered; more is called on every scrape.
func (m *Metrics) CountPanics(more func() uint64) { m.morePanics = more }

// panicked counts a panic that a listener turned into a dropped
// query (coredns_panics_total).
func (m *Metrics) panicked() { m.panics.Add(1) }

// observe counts the duration and sizes of one query of type index t over
// proto index p (0 udp, 1 tcp), and whether it had the DO bit.
func (c *coreMetrics) observe(t, p int, do bool, d time.Duration, reqLen, respLen int) {
	if do {
		c.doRequests.Add(1)
	}
	c.duration[t][bucketOf(coreTimeBuckets[:], d.Seconds())].Add(1)
	c.durationSum[t].Add(uint64(d))
	c.reqSize[p][bucketOf(sizeBuckets[:], float64(reqLen))].Add(1)
	c.reqSizeSum[p].Add(uint64(reqLen))
	c.respSize[p][bucketOf(sizeBuckets[:], float64(respLen))].Add(1)
	c.respSizeSum[p].Add(uint64(respLen))
}

func (c *coreMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.descRequests, c.descResponses, c.descDuration, c.descReqSize, c.descRespSize, c.descPanics, c.descBuild, c.descProgramming, c.descDO} {
		ch <- d
	}
}

// collect sends the CoreDNS metrics, summing m.requests over the
// dimensions each one does not have.
func (c *coreMetrics) collect(ch chan<- prometheus.Metric, m *Metrics) {
	server := *c.server.Load()
	const zone, view = ".", ""
	var requests [typeCats][transports]uint64
	var responses [zoneCats][rcodeCats]uint64
	for z := range zoneCats {
		for t := range typeCats {
			for rc := range rcodeCats {
				for tr := range transports {
					n := m.requests[z][t][rc][tr].Load()
					requests[t][tr] += n
					responses[z][rc] += n
				}
			}
		}
	}
	for t := range typeCats {
		for tr, n := range requests[t] {
			if n == 0 {
				continue
			}
			family := "1"
			if tr&1 == 1 {
				family = "2"
			}
			ch <- prometheus.MustNewConstMetric(c.descRequests, prometheus.CounterValue, float64(n), server, zone, view, protoNames[tr>>1], family, typeName(t))
		}
	}
	type pr struct {
		plugin string
		rcode  int
	}
	byPlugin := map[pr]uint64{} // kubernetes gathers two categories
	for z := range zoneCats {
		for rc, n := range responses[z] {
			if n != 0 {
				byPlugin[pr{pluginNames[z], rc}] += n
			}
		}
	}
	for k, n := range byPlugin {
		ch <- prometheus.MustNewConstMetric(c.descResponses, prometheus.CounterValue, float64(n), server, zone, view, rcodeName(k.rcode), k.plugin)
	}
	for t := range typeCats {
		if sumCounts(c.duration[t][:]) == 0 {
			continue
		}
		ch <- constHistogram(c.descDuration, coreTimeBuckets[:], c.duration[t][:], float64(c.durationSum[t].Load())/1e9, server, zone, view, typeName(t))
	}
	for p := range protoNames {
		if sumCounts(c.reqSize[p][:]) == 0 {
			continue
		}
		ch <- constHistogram(c.descReqSize, sizeBuckets[:], c.reqSize[p][:], float64(c.reqSizeSum[p].Load()), server, zone, view, protoNames[p])
		ch <- constHistogram(c.descRespSize, sizeBuckets[:], c.respSize[p][:], float64(c.respSizeSum[p].Load()), server, zone, view, protoNames[p])
	}
	if sumCounts(c.programming[:]) != 0 {
		ch <- constHistogram(c.descProgramming, programmingBuckets[:], c.programming[:], float64(c.programmingSum.Load())/1e9, "headless_with_selector")
	}
	ch <- prometheus.MustNewConstMetric(c.descDO, prometheus.CounterValue, float64(c.doRequests.Load()), server, view, zone)
	panics := m.panics.Load()
	if m.morePanics != nil {
		panics += m.morePanics()
	}
	ch <- prometheus.MustNewConstMetric(c.descPanics, prometheus.CounterValue, float64(panics))
	ch <- prometheus.MustNewConstMetric(c.descBuild, prometheus.GaugeValue, 1, c.build[0], c.build[1], c.build[2])
}

func sumCounts(counts []atomic.Uint64) uint64 {
	var n uint64
	for i := range counts {
		n += counts[i].Load()
	}
	return n
}
