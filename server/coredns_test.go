package server

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/clusterdns/clusterdns/internal/promtest"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// histogram returns the histogram with exactly these labels, or nil.
func histogram(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	return promtest.Find(t, reg, name, labels).GetHistogram()
}

// The coredns_dns_* metrics carry CoreDNS's labels: server, zone ".", an
// empty view, proto and family from the transport, the type folded to
// CoreDNS's set, the plugin that would have answered, and sizes as sent.
func TestCoreDNSMetrics(t *testing.T) {
	h := exampleHandler(t, nil)
	h.Metrics().SetServer(":53")
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Metrics())

	var reqBytes, respBytes [2]float64 // by proto: udp, tcp
	q := func(name string, qtype uint16, tcp bool, from string, mutate func(*dns.Msg)) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		if mutate != nil {
			mutate(m)
		}
		req, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		out := h.Respond(req, make([]byte, 0, 65535), netip.MustParseAddrPort(from), tcp, nil)
		if out == nil {
			t.Fatalf("no answer to %s", name)
		}
		p := 0
		if tcp {
			p = 1
		}
		reqBytes[p] += float64(len(req))
		respBytes[p] += float64(len(out))
		r := new(dns.Msg)
		if err := r.Unpack(out); err != nil {
			t.Fatal(err)
		}
		return r
	}
	const v4, v6 = "127.0.0.1:5000", "[::1]:5000"
	web := "web-server-service.default.svc.cluster.local."
	q(web, dns.TypeA, false, v4, nil)
	q(web, dns.TypeA, false, v4, nil)
	q("nothere.default.svc.cluster.local.", dns.TypeA, true, v6, nil)
	q("100.0.96.10.in-addr.arpa.", dns.TypePTR, false, "[::ffff:127.0.0.1]:5000", nil) // v4-mapped: family 1
	q("www.example.test.", dns.TypeAAAA, true, v6, nil)
	q(web, dns.TypeDS, false, v4, func(m *dns.Msg) { m.SetEdns0(1232, true) })
	q(web, dns.TypeNULL, false, v4, nil)
	q("www.example.org.", dns.TypeA, false, v4, nil) // no fallback: REFUSED by the server itself
	if r := q(web, dns.TypeA, false, v4, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }); r.Rcode != dns.RcodeBadVers {
		t.Fatalf("EDNS version 1: rcode %s, want BADVERS", dns.RcodeToString[r.Rcode])
	}

	base := map[string]string{"server": "dns://:53", "zone": ".", "view": ""}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"coredns_dns_requests_total", with("proto", "udp", "family", "1", "type", "A"), 4},
		{"coredns_dns_requests_total", with("proto", "tcp", "family", "2", "type", "A"), 1},
		{"coredns_dns_requests_total", with("proto", "udp", "family", "1", "type", "PTR"), 1},
		{"coredns_dns_requests_total", with("proto", "tcp", "family", "2", "type", "AAAA"), 1},
		{"coredns_dns_requests_total", with("proto", "udp", "family", "1", "type", "DS"), 1},
		{"coredns_dns_requests_total", with("proto", "udp", "family", "1", "type", "other"), 1},
		{"coredns_dns_responses_total", with("rcode", "NOERROR", "plugin", "kubernetes"), 5}, // 2 A, PTR, DS and NULL (NODATA)
		{"coredns_dns_responses_total", with("rcode", "NXDOMAIN", "plugin", "kubernetes"), 1},
		{"coredns_dns_responses_total", with("rcode", "NOERROR", "plugin", "file"), 1},
		{"coredns_dns_responses_total", with("rcode", "REFUSED", "plugin", ""), 1},
		{"coredns_dns_responses_total", with("rcode", "BADVERS", "plugin", ""), 1},
		{"coredns_dns_request_duration_seconds", with("type", "A"), 5}, // and the REFUSED and BADVERS ones
		{"coredns_dns_request_duration_seconds", with("type", "other"), 1},
		{"coredns_panics_total", map[string]string{}, 0},
		{"coredns_dns_do_requests_total", base, 1},
	} {
		if got := counter(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for p, proto := range []string{"udp", "tcp"} {
		for _, c := range []struct {
			name string
			sum  float64
		}{{"coredns_dns_request_size_bytes", reqBytes[p]}, {"coredns_dns_response_size_bytes", respBytes[p]}} {
			hist := histogram(t, reg, c.name, with("proto", proto))
			if hist == nil || hist.GetSampleSum() != c.sum {
				t.Errorf("%s{proto=%s}: %v, want sum %v", c.name, proto, hist, c.sum)
				continue
			}
			if b := hist.GetBucket(); len(b) != len(sizeBuckets) || b[5].GetUpperBound() != 511 || b[len(b)-1].GetUpperBound() != 64e3 {
				t.Errorf("%s buckets %v, want CoreDNS's", c.name, b)
			}
		}
	}
	d := histogram(t, reg, "coredns_dns_request_duration_seconds", with("type", "A"))
	if b := d.GetBucket(); len(b) != 16 || b[0].GetUpperBound() != 0.00025 || b[15].GetUpperBound() != 8.192 {
		t.Errorf("duration buckets %v, want 0.25 ms doubling to 8.192 s", b)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var info []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() == "coredns_build_info" {
			info = mf.GetMetric()
		}
	}
	if len(info) != 1 || info[0].GetGauge().GetValue() != 1 || len(info[0].GetLabel()) != 3 || info[0].GetLabel()[0].GetName() != "goversion" || info[0].GetLabel()[0].GetValue() != runtime.Version() {
		t.Errorf("coredns_build_info = %v, want one series of 1 with version, revision and goversion %s", info, runtime.Version())
	}
	// The clusterdns_* names stay (zone categories CoreDNS has not).
	if got := counter(t, reg, "clusterdns_requests_total", map[string]string{"zone": "cluster", "type": "other", "rcode": "NOERROR"}); got != 2 {
		t.Errorf("clusterdns_requests_total{zone=cluster,type=other} = %v, want 2 (DS and NULL)", got)
	}
}
