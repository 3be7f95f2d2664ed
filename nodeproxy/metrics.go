package nodeproxy

import (
	"fmt"

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
	}
	for _, c := range []prometheus.Collector{m.syncDuration, m.syncOps, m.syncs, m.lastSync, m.pending, m.services} {
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
		return
	}
	m.syncs.WithLabelValues(kind, "ok").Inc()
	m.syncDuration.WithLabelValues(kind).Observe(r.Took.Seconds())
	m.syncOps.WithLabelValues(kind).Observe(float64(r.Operations))
	m.services.Set(float64(r.Services))
	m.lastSync.SetToCurrentTime()
}

func (m *Metrics) setPending(n int) {
	if m != nil {
		m.pending.Set(float64(n))
	}
}
