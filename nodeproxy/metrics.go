package nodeproxy

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the node proxy's measurements of its own work. Create them
// with NewMetrics on the registry that the process serves; the Proxier and
// the Runner update them (a nil *Metrics records nothing).
type Metrics struct {
	syncDuration *prometheus.HistogramVec
	syncOps      *prometheus.HistogramVec
	syncs        *prometheus.CounterVec
	lastSync     prometheus.Gauge
	pending      prometheus.Gauge
	services     prometheus.Gauge

	// kube-proxy's names and buckets, so that its dashboards and alerts
	// read the node proxy.
	kpSync           prometheus.Histogram
	kpSyncFull       prometheus.Histogram
	kpSyncPartial    prometheus.Histogram
	kpLastSync       prometheus.Gauge
	kpNetProg        prometheus.Histogram
	kpEndpointChange prometheus.Counter
	kpServiceChange  prometheus.Counter
	kpSyncFailures   prometheus.Counter
}

// kubeProxySyncBuckets are kube-proxy's sync duration buckets: 1 ms
// doubling to about 16 s.
var kubeProxySyncBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

// networkProgrammingBuckets are kube-proxy's: 0, 0.25 s, 0.5 s, every
// second to 59 s, every 5 s to 115 s, every 30 s to 5 min.
func networkProgrammingBuckets() []float64 {
	b := []float64{0}
	for _, part := range [][]float64{
		prometheus.LinearBuckets(0.25, 0.25, 2),
		prometheus.LinearBuckets(1, 1, 59),
		prometheus.LinearBuckets(60, 5, 12),
		prometheus.LinearBuckets(120, 30, 7),
	} {
		b = append(b, part...)
	}
	return b
}

// NewMetrics creates the metrics and registers them on reg. It fails when
// reg already holds metrics of the same names.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "nodeproxy", Name: "sync_duration_seconds",
			Help:    "Time of one rule sync: building the transaction, nft, and conntrack cleanup.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"kind"}),
		syncOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "nodeproxy", Name: "sync_rules_written",
			Help:    "nftables operations (rules, elements, chains, sets) written by one sync.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 12),
		}, []string{"kind"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "nodeproxy", Name: "syncs_total",
			Help: "Rule syncs by kind (full, partial) and result (ok, error).",
		}, []string{"kind", "result"}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nodeproxy", Name: "last_sync_timestamp_seconds",
			Help: "Unix time at which the last successful sync finished.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nodeproxy", Name: "pending_changes",
			Help: "Services changed since the last sync and not yet written.",
		}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "nodeproxy", Name: "sync_services",
			Help: "Services looked at by the last sync.",
		}),
		kpSync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kubeproxy", Name: "sync_proxy_rules_duration_seconds",
			Help: "SyncProxyRules latency in seconds", Buckets: kubeProxySyncBuckets,
		}),
		kpSyncFull: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kubeproxy", Name: "sync_full_proxy_rules_duration_seconds",
			Help: "SyncProxyRules latency in seconds for full resyncs", Buckets: kubeProxySyncBuckets,
		}),
		kpSyncPartial: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kubeproxy", Name: "sync_partial_proxy_rules_duration_seconds",
			Help: "SyncProxyRules latency in seconds for partial resyncs", Buckets: kubeProxySyncBuckets,
		}),
		kpLastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kubeproxy", Name: "sync_proxy_rules_last_timestamp_seconds",
			Help: "The last time proxy rules were successfully synced",
		}),
		kpNetProg: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kubeproxy", Name: "network_programming_duration_seconds",
			Help:    "In Cluster Network Programming Latency in seconds",
			Buckets: networkProgrammingBuckets(),
		}),
		kpEndpointChange: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kubeproxy", Name: "sync_proxy_rules_endpoint_changes_total",
			Help: "Cumulative proxy rules Endpoint changes",
		}),
		kpServiceChange: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kubeproxy", Name: "sync_proxy_rules_service_changes_total",
			Help: "Cumulative proxy rules Service changes",
		}),
		kpSyncFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kubeproxy", Name: "sync_proxy_rules_nftables_sync_failures_total",
			Help: "Cumulative proxy nftables sync failures",
		}),
	}
	for _, c := range []prometheus.Collector{m.syncDuration, m.syncOps, m.syncs, m.lastSync, m.pending, m.services,
		m.kpSync, m.kpSyncFull, m.kpSyncPartial, m.kpLastSync, m.kpNetProg, m.kpEndpointChange, m.kpServiceChange, m.kpSyncFailures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register node proxy metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) observe(r SyncResult, err error) {
	if m == nil {
		return
	}
	kind := "partial"
	if r.Full {
		kind = "full"
	}
	if err != nil {
		m.syncs.WithLabelValues(kind, "error").Inc()
		m.kpSyncFailures.Inc()
		return
	}
	m.syncs.WithLabelValues(kind, "ok").Inc()
	m.kpSync.Observe(r.Took.Seconds())
	if r.Full {
		m.kpSyncFull.Observe(r.Took.Seconds())
	} else {
		m.kpSyncPartial.Observe(r.Took.Seconds())
	}
	m.kpLastSync.SetToCurrentTime()
	m.syncDuration.WithLabelValues(kind).Observe(r.Took.Seconds())
	m.syncOps.WithLabelValues(kind).Observe(float64(r.Operations))
	m.services.Set(float64(r.Services))
	m.lastSync.SetToCurrentTime()
}

// changes counts the service and endpoint changes the Tracker saw.
func (m *Metrics) changes(services, endpoints int) {
	if m != nil {
		m.kpServiceChange.Add(float64(services))
		m.kpEndpointChange.Add(float64(endpoints))
	}
}

// programmed observes the network programming latency of one change:
// from the trigger time its EndpointSlice carries to now.
func (m *Metrics) programmed(since time.Duration) {
	if m != nil && since >= 0 {
		m.kpNetProg.Observe(since.Seconds())
	}
}

func (m *Metrics) setPending(n int) {
	if m != nil {
		m.pending.Set(float64(n))
	}
}
