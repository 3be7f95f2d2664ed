package server

import (
	"testing"

	"github.com/clusterdns/clusterdns/internal/promtest"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// counter returns the value of a metric with exactly these labels.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := promtest.Value(promtest.Find(t, reg, name, labels))
	return v
}

func TestMetricsMoveWithQueries(t *testing.T) {
	h := exampleHandler(t, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Metrics())
	q := func(name string, qtype uint16) {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		ask(t, h, m, false)
	}
	for range 3 {
		q("web-server-service.default.svc.cluster.local.", dns.TypeA)
	}
	q("nothere.default.svc.cluster.local.", dns.TypeA)
	q("100.0.96.10.in-addr.arpa.", dns.TypePTR)
	q("www.example.test.", dns.TypeAAAA)
	q("www.example.org.", dns.TypeA)
	h.Respond([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, nil, client, false, nil)

	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"zone": "cluster", "type": "A", "rcode": "NOERROR"}, 3},
		{map[string]string{"zone": "cluster", "type": "A", "rcode": "NXDOMAIN"}, 1},
		{map[string]string{"zone": "reverse", "type": "PTR", "rcode": "NOERROR"}, 1},
		{map[string]string{"zone": "zonefile", "type": "AAAA", "rcode": "NOERROR"}, 1},
		{map[string]string{"zone": "refused", "type": "A", "rcode": "REFUSED"}, 1},
	} {
		if got := counter(t, reg, "clusterdns_requests_total", c.labels); got != c.want {
			t.Errorf("requests %v = %v, want %v", c.labels, got, c.want)
		}
	}
	if got := counter(t, reg, "clusterdns_malformed_requests_total", map[string]string{}); got != 1 {
		t.Errorf("malformed = %v, want 1", got)
	}
	if got := counter(t, reg, "clusterdns_request_duration_seconds", map[string]string{}); got != 7 {
		t.Errorf("latency samples = %v, want 7", got)
	}
	if got := counter(t, reg, "clusterdns_snapshot_serial", map[string]string{}); got != float64(h.Serial()) || got == 0 {
		t.Errorf("serial = %v, want %d", got, h.Serial())
	}
}
