package resolver

import (
	"context"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/internal/promtest"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// value is the value of the one series of name with these labels (a
// histogram's sample count), and whether there is one.
func value(t *testing.T, c prometheus.Collector, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	return promtest.Value(promtest.Find(t, promtest.Collect(c), name, labels))
}

// The coredns_cache_* and coredns_forward_* metrics count what CoreDNS's
// cache and forward plugins count, with their labels.
func TestCoreDNSCacheAndForwardMetrics(t *testing.T) {
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		switch r.Question[0].Name {
		case "www.example.com.":
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}})
		case "nx.example.com.":
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
				Ns: "ns.example.com.", Mbox: "h.example.com.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60})
		default:
			m.Rcode = dns.RcodeServerFailure
		}
		w.WriteMsg(m)
	})
	met := NewMetrics()
	met.SetServer(":53")
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}, Metrics: met, MaxFails: 100})
	met.Set(f)
	for range 3 {
		resolveSync(t, f, question(t, "www.example.com", dns.TypeA))
	}
	for range 2 {
		resolveSync(t, f, question(t, "nx.example.com", dns.TypeA))
	}
	resolveSync(t, f, question(t, "fail.example.com", dns.TypeA))

	cache := func(kv ...string) map[string]string {
		m := map[string]string{"server": "dns://:53", "zones": ".", "view": ""}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	to := up.Addr
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"coredns_cache_hits_total", cache("type", "success"), 2},
		{"coredns_cache_hits_total", cache("type", "denial"), 1},
		{"coredns_cache_misses_total", cache(), 3},
		{"coredns_cache_requests_total", cache(), 6},
		{"coredns_cache_entries", cache("type", "success"), 1},
		{"coredns_cache_entries", cache("type", "denial"), 1},
		{"coredns_forward_requests_total", map[string]string{"to": to}, 3},
		{"coredns_forward_responses_total", map[string]string{"to": to, "rcode": "NOERROR"}, 1},
		{"coredns_forward_responses_total", map[string]string{"to": to, "rcode": "NXDOMAIN"}, 1},
		{"coredns_forward_responses_total", map[string]string{"to": to, "rcode": "SERVFAIL"}, 1},
		{"coredns_forward_request_duration_seconds", map[string]string{"to": to, "rcode": "NOERROR"}, 1},
	} {
		if got, _ := value(t, met, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The forward histogram has CoreDNS's buckets.
	reg := prometheus.NewRegistry()
	reg.MustRegister(met)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "coredns_forward_request_duration_seconds" {
			b := mf.GetMetric()[0].GetHistogram().GetBucket()
			if len(b) != 16 || b[0].GetUpperBound() != 0.00025 || b[15].GetUpperBound() != 8.192 {
				t.Errorf("forward duration buckets %v, want 0.25 ms doubling to 8.192 s", b)
			}
		}
	}
}

// A down upstream is probed; each failed probe is a
// coredns_forward_healthcheck_failures_total{to} and not a forward request.
func TestCoreDNSHealthcheckFailures(t *testing.T) {
	dead := startUpstream(t, answerA("192.0.2.1", 60))
	dead.Stop()
	met := NewMetrics()
	f := newForwarder(t, Options{Upstreams: []string{dead.Addr}, Metrics: met, MaxFails: 1,
		HealthInterval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if r := resolveSync(t, f, question(t, "www.example.com", dns.TypeA)); r != nil {
		t.Fatalf("answered through a dead upstream: %v", r)
	}
	requests, _ := value(t, met, "coredns_forward_requests_total", map[string]string{"to": dead.Addr})
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := value(t, met, "coredns_forward_healthcheck_failures_total", map[string]string{"to": dead.Addr})
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthcheck failures = %v after 10 s of probing a dead upstream every 10 ms", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after, _ := value(t, met, "coredns_forward_requests_total", map[string]string{"to": dead.Addr}); after != requests || requests == 0 {
		t.Errorf("forward requests %v → %v while only probes were sent, want unchanged and > 0", requests, after)
	}
}

// A panic on a forwarder goroutine (here in the caller's callback) drops
// that query and is counted for coredns_panics_total.
func TestForwarderPanicsAreCounted(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.1", 60))
	met := NewMetrics()
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}, Metrics: met})
	f.Resolve(question(t, "www.example.com", dns.TypeA), func([]byte) { panic("test: a bug in the callback") })
	deadline := time.Now().Add(10 * time.Second)
	for met.Panics() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("panics = %d after 10 s, want 1", met.Panics())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The forwarder still answers.
	if r := resolveSync(t, f, question(t, "www.example.org", dns.TypeA)); r == nil || len(r.Answer) != 1 {
		t.Fatalf("after a panic: %v", r)
	}
}
