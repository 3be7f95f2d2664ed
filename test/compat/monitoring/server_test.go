package monitoring

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/clusterdns/clusterdns/internal/testbin"
	"github.com/clusterdns/clusterdns/internal/testdns"
	"github.com/clusterdns/clusterdns/internal/testenv"
)

// coreDNSMetrics are the CoreDNS metrics a clusterdns serves (issue 17).
var coreDNSMetrics = []string{
	"coredns_dns_requests_total", "coredns_dns_responses_total", "coredns_dns_request_duration_seconds",
	"coredns_dns_request_size_bytes", "coredns_dns_response_size_bytes", "coredns_cache_entries",
	"coredns_cache_hits_total", "coredns_cache_misses_total", "coredns_cache_requests_total",
	"coredns_forward_requests_total", "coredns_forward_responses_total", "coredns_forward_request_duration_seconds",
	"coredns_forward_healthcheck_failures_total", "coredns_panics_total", "coredns_build_info",
	"coredns_kubernetes_dns_programming_duration_seconds", "coredns_health_request_duration_seconds",
}

// addrs are the addresses a clusterdns started with port 0 logged.
type addrs struct{ dns, metrics, health string }

// logAddrs reads the addresses from the server's JSON log lines.
func logAddrs(out string) addrs {
	var a addrs
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch l.Msg {
		case "serving":
			a.dns = l.Addr
		case "metrics":
			a.metrics = l.Addr
		case "health endpoints":
			a.health = l.Addr
		}
	}
	return a
}

// scrape reads /metrics as Prometheus does.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// series lists the sample names of a scrape with the label names of each
// (a histogram X is X_bucket with le, X_sum and X_count).
func series(mfs map[string]*dto.MetricFamily) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	add := func(name string, labels []*dto.LabelPair, extra ...string) {
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range labels {
			out[name][l.GetName()] = true
		}
		for _, l := range extra {
			out[name][l] = true
		}
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(name+"_bucket", m.GetLabel(), "le")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			case dto.MetricType_SUMMARY:
				add(name, m.GetLabel(), "quantile")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			default:
				add(name, m.GetLabel())
			}
		}
	}
	return out
}

// TestMetricsExportedByServer starts clusterdns against a real
// kube-apiserver with a loopback upstream and a dead one, asks it questions
// of every kind, and checks that each metric the dashboard and the rules
// read is on its /metrics, with the labels they use.
func TestMetricsExportedByServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and clusterdns")
	}
	_, ruleSels := ruleSelectors(t)
	_, dashSels := dashboardSelectors(t)

	api := testenv.StartAPIServer(t)
	bin, cleanup, err := testbin.BuildServer(repoRoot(t), "clusterdns-monitoring-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	up := testdns.Start(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if strings.HasPrefix(r.Question[0].Name, "nx.") {
			m.Rcode = dns.RcodeNameError
			m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
				Ns: "ns.example.com.", Mbox: "h.example.com.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60}}
		} else if r.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)}}
		}
		w.WriteMsg(m)
	})
	dead := testdns.Start(t, func(w dns.ResponseWriter, r *dns.Msg) {})
	dead.Stop() // nothing answers there: forwarding to it fails, its probes fail

	proc, err := testbin.StartProcess("", bin, []string{
		"--source", "kubernetes", "--kubeconfig", api.Kubeconfig,
		"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0",
		"--log-format", "json", "--upstreams", up.Addr, "--stub-domains", "dead.test=" + dead.Addr,
		"--forward-timeout", "200ms",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("clusterdns output:\n%s", proc.Out.String())
		}
	})
	var a addrs
	waitFor(t, 30*time.Second, "clusterdns to log its addresses and be ready", func() bool {
		select {
		case <-proc.Done():
			t.Fatalf("clusterdns exited: %v\n%s", proc.Err(), proc.Out.String())
		default:
		}
		a = logAddrs(proc.Out.String())
		if a.dns == "" || a.metrics == "" || a.health == "" {
			return false
		}
		resp, err := http.Get("http://" + a.health + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// A headless service with a selector and its EndpointSlice as the
	// controller writes it (this apiserver runs no controllers): the
	// change's trigger time is now.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := api.Client()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"},
			Ports: []corev1.ServicePort{{Name: "pg", Port: 5432, Protocol: corev1.ProtocolTCP}}}}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "db-abcde", Namespace: "default",
			Labels:      map[string]string{discoveryv1.LabelServiceName: "db", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
			Annotations: map[string]string{corev1.EndpointsLastChangeTriggerTime: time.Now().UTC().Format(time.RFC3339Nano)}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.5"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ask := func(netw, name string, qtype uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, _, err := (&dns.Client{Net: netw, Timeout: 5 * time.Second}).Exchange(m, a.dns)
		if err != nil {
			t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], netw, err)
		}
		return r
	}
	waitFor(t, 30*time.Second, "db.default.svc.cluster.local to answer the new endpoint", func() bool {
		r := ask("udp", "db.default.svc.cluster.local.", dns.TypeA)
		return len(r.Answer) == 1
	})
	ask("tcp", "db.default.svc.cluster.local.", dns.TypeA)
	// And one from dig, as an operator would ask.
	if _, err := exec.LookPath("dig"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dig not found: install dnsutils (hack/install-test-deps.sh)")
		}
		t.Log("dig not found (install dnsutils): asking with Go only")
	} else {
		host, port, _ := net.SplitHostPort(a.dns)
		out, err := exec.Command("dig", "@"+host, "-p", port, "+tcp", "+short", "db.default.svc.cluster.local", "A").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "10.244.0.5" {
			t.Fatalf("dig db.default.svc.cluster.local: %v %q, want 10.244.0.5", err, out)
		}
	}
	ask("udp", "_pg._tcp.db.default.svc.cluster.local.", dns.TypeSRV)
	ask("udp", "kubernetes.default.svc.cluster.local.", dns.TypeAAAA)
	ask("tcp", "nothere.default.svc.cluster.local.", dns.TypeA)
	for range 2 {
		if r := ask("udp", "www.example.com.", dns.TypeA); len(r.Answer) != 1 { // forwarded, then cached
			t.Fatalf("forwarded answer: %v", r)
		}
		ask("udp", "nx.example.com.", dns.TypeA) // a denial, cached
		if r := ask("udp", "x.dead.test.", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
			t.Fatalf("through a dead upstream: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
		}
	}

	// The health self-check runs once a second and the dead upstream is
	// probed once a second: wait for every name rather than sleep.
	var got map[string]map[string]bool
	var missing []string
	want := map[string]bool{}
	for _, s := range append(ruleSels, dashSels...) {
		if !prometheusOwn[s.metric] {
			want[s.metric] = true
		}
	}
	for _, m := range coreDNSMetrics {
		want[m] = true
	}
	waitFor(t, 20*time.Second, "every metric on /metrics", func() bool {
		mfs := scrape(t, a.metrics)
		got = series(mfs)
		for name := range mfs {
			if got[name] == nil { // a histogram's family name (the list names them so)
				got[name] = got[name+"_count"]
			}
		}
		missing = missing[:0]
		for m := range want {
			if got[m] == nil {
				missing = append(missing, m)
			}
		}
		return len(missing) == 0
	})
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("not on /metrics: %v", missing)
	}
	for _, s := range append(ruleSels, dashSels...) {
		if prometheusOwn[s.metric] {
			continue
		}
		for _, l := range s.labels {
			if !got[s.metric][l] {
				t.Errorf("%s reads %s by label %q, which its series do not have (%v)", s.where, s.metric, l, keys(got[s.metric]))
			}
		}
	}
	// A few values the scenario fixes.
	mfs := scrape(t, a.metrics)
	if v := value(mfs, "coredns_forward_responses_total", map[string]string{"to": up.Addr, "rcode": "NOERROR"}); v != 1 {
		t.Errorf("coredns_forward_responses_total{to=%s,rcode=NOERROR} = %v, want 1 (the second query was cached)", up.Addr, v)
	}
	if v := value(mfs, "coredns_cache_hits_total", map[string]string{"type": "success"}); v != 1 {
		t.Errorf("coredns_cache_hits_total{type=success} = %v, want 1", v)
	}
	if v := value(mfs, "coredns_kubernetes_dns_programming_duration_seconds", map[string]string{"service_kind": "headless_with_selector"}); v != 1 {
		t.Errorf("dns programming samples = %v, want 1 (the one slice change)", v)
	}
	// The server label is the configured listen address, as CoreDNS names a
	// server block by its bind address.
	wantTCP := 2.0 // db over TCP from Go; nothere over TCP
	if _, err := exec.LookPath("dig"); err == nil {
		wantTCP++ // and dig's
	}
	if v := value(mfs, "coredns_dns_requests_total", map[string]string{"proto": "tcp", "family": "1", "type": "A", "zone": ".", "view": "", "server": "dns://127.0.0.1:0"}); v != wantTCP {
		t.Errorf("coredns_dns_requests_total{proto=tcp,type=A} = %v, want %v", v, wantTCP)
	}
}

// value sums the counters (or histogram sample counts) of name whose labels
// include these.
func value(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	var sum float64
	mf := mfs[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if hv, ok := have[k]; !ok || hv != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// waitFor polls cond every 50 ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
