package faults

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
)

// clusterQueries is the load's query mix: every kind of cluster answer
// (ClusterIP, headless, SRV, PTR, NODATA, NXDOMAIN, an ExternalName alias
// chased inside the served zones) and the example zone file.
var clusterQueries = []string{
	"web-server-service.default.svc.cluster.local A",
	"web-server-service.default.svc.cluster.local A",
	"web-server-service.default.svc.cluster.local AAAA",
	"kube-dns.kube-system.svc.cluster.local A",
	"cassandra.data.svc.cluster.local A",
	"cassandra-0.cassandra.data.svc.cluster.local A",
	"_cql._tcp.cassandra.data.svc.cluster.local SRV",
	"_web-server._tcp.web-server-service.default.svc.cluster.local SRV",
	"100.0.96.10.in-addr.arpa PTR",
	"nothere.default.svc.cluster.local A",
	"kubernetes.default.svc.cluster.local A",
	"dns-version.cluster.local TXT",
	"cluster.local SOA",
	"www.example.test A",
	"api.example.test A",
	"nothere.example.test A",
}

// dnsperfResult is dnsperf's summary, and the latencies of the responses
// when it ran with -v.
type dnsperfResult struct {
	sent, completed, lost int64
	qps                   float64
	avg, min, max, stddev time.Duration
	perSecond             []float64       // -S 1 samples
	latencies             []time.Duration // -v: every response's
	rcodes                map[string]int64
	cmdline               string
}

var (
	reSent      = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	reCompleted = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	reLost      = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	reQPS       = regexp.MustCompile(`Queries per second:\s+([\d.]+)`)
	reAvg       = regexp.MustCompile(`Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)`)
	reStddev    = regexp.MustCompile(`Latency StdDev \(s\):\s+([\d.]+)`)
	reSample    = regexp.MustCompile(`^\d+\.\d+: ([\d.]+)$`)
)

func seconds(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Second))
}

// runDnsperf runs dnsperf against addr with the query file and extra
// arguments, streaming its output (-v lines are parsed, not kept).
func runDnsperf(t *testing.T, addr, queryFile string, args ...string) *dnsperfResult {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	argv := append([]string{"-s", host, "-p", port, "-d", queryFile}, args...)
	cmd := exec.Command("dnsperf", argv...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr logBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	res := &dnsperfResult{rcodes: map[string]int64{}, cmdline: "dnsperf " + strings.Join(argv, " ")}
	var summary strings.Builder
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "> "); ok {
			f := strings.Fields(rest)
			if len(f) >= 4 {
				res.rcodes[f[0]]++
				res.latencies = append(res.latencies, seconds(f[len(f)-1]))
			}
			continue
		}
		if m := reSample.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			res.perSecond = append(res.perSecond, v)
			continue
		}
		summary.WriteString(line + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s\n%s", res.cmdline, err, summary.String(), stderr.String())
	}
	s := summary.String()
	num := func(re *regexp.Regexp) int64 {
		m := re.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("dnsperf output without %s:\n%s", re, s)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	res.sent, res.completed, res.lost = num(reSent), num(reCompleted), num(reLost)
	if m := reQPS.FindStringSubmatch(s); m != nil {
		res.qps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reAvg.FindStringSubmatch(s); m != nil {
		res.avg, res.min, res.max = seconds(m[1]), seconds(m[2]), seconds(m[3])
	}
	if m := reStddev.FindStringSubmatch(s); m != nil {
		res.stddev = seconds(m[1])
	}
	return res
}

// percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func requireDnsperf(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dnsperf"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dnsperf not installed (make test-deps)")
		}
		t.Skip("dnsperf not installed (make test-deps)")
	}
}

func envDuration(t *testing.T, key string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, v, err)
	}
	return d
}

// TestLoad (CLUSTERDNS_LOAD=1, `make bench`): the maximum rate the server
// answers the example cluster on loopback (dnsperf, unlimited, 15 s), then
// 60 s at 80 % of it: no query may be lost, the rate must be held and the
// 99th percentile latency (every response's, from dnsperf -v) stay under
// CLUSTERDNS_LOAD_P99 (default 50ms: generous, the machine is shared and
// a descheduled server queues queries in its 4 MiB socket buffers).
func TestLoad(t *testing.T) {
	if os.Getenv("CLUSTERDNS_LOAD") != "1" {
		t.Skip("set CLUSTERDNS_LOAD=1 (make bench) to run the load test")
	}
	requireDnsperf(t)
	hold := envDuration(t, "CLUSTERDNS_LOAD_DURATION", 60*time.Second)
	p99Bound := envDuration(t, "CLUSTERDNS_LOAD_P99", 50*time.Millisecond)
	dir := filepath.Join(t.TempDir(), "zones")
	copyZones(t, dir)
	qf := filepath.Join(t.TempDir(), "queries.txt")
	if err := os.WriteFile(qf, []byte(strings.Join(clusterQueries, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startServer(t, "web-server-service.default.svc.cluster.local", "--zones-dir", dir, "--upstreams=")

	maxRun := runDnsperf(t, p.addr, qf, "-l", "15", "-c", "4", "-q", "200", "-t", "2", "-b", "4096")
	t.Logf("max: %s → %.0f QPS, %d sent, %d lost, latency avg %s max %s", maxRun.cmdline, maxRun.qps, maxRun.sent, maxRun.lost, maxRun.avg, maxRun.max)
	if maxRun.qps < 1000 {
		t.Fatalf("maximum rate %.0f QPS: the server is not answering", maxRun.qps)
	}
	target := int(maxRun.qps * 0.8)
	run := runDnsperf(t, p.addr, qf, "-l", strconv.Itoa(int(hold.Seconds())), "-Q", strconv.Itoa(target),
		"-c", "4", "-q", "1000", "-t", "2", "-b", "4096", "-S", "1", "-v")
	lat := slices.Clone(run.latencies)
	slices.Sort(lat)
	p50, p99, p999 := percentile(lat, 50), percentile(lat, 99), percentile(lat, 99.9)
	minSec, maxSec := math.Inf(1), 0.0
	inner := run.perSecond
	if len(inner) > 2 {
		inner = inner[1 : len(inner)-1] // the first and last intervals are partial
	}
	for _, v := range inner {
		minSec, maxSec = min(minSec, v), max(maxSec, v)
	}
	t.Logf("held: %s", run.cmdline)
	t.Logf("held: target %d QPS (80 %% of %.0f) for %s: %.0f QPS achieved (per second %.0f–%.0f), %d sent, %d completed, %d lost; rcodes %v",
		target, maxRun.qps, hold, run.qps, minSec, maxSec, run.sent, run.completed, run.lost, run.rcodes)
	t.Logf("held: latency p50 %s p99 %s p99.9 %s max %s (dnsperf: avg %s stddev %s)", p50, p99, p999, run.max, run.avg, run.stddev)
	fmt.Printf("LOAD max_qps=%.0f target_qps=%d achieved_qps=%.0f sent=%d lost=%d p50=%s p99=%s p999=%s max=%s\n",
		maxRun.qps, target, run.qps, run.sent, run.lost, p50, p99, p999, run.max)
	if run.lost != 0 || run.completed != run.sent {
		t.Errorf("%d of %d queries lost at %d QPS", run.lost, run.sent, target)
	}
	if run.qps < 0.95*float64(target) {
		t.Errorf("rate not held: %.0f QPS achieved, target %d", run.qps, target)
	}
	if p99 > p99Bound {
		t.Errorf("p99 latency %s above %s", p99, p99Bound)
	}
}

// metricsSample is one scrape of the soak test.
type metricsSample struct {
	at         time.Duration
	rss        float64
	goroutines float64
	heap       float64
}

// TestSoak (CLUSTERDNS_SOAK=1): 10 minutes (CLUSTERDNS_SOAK_DURATION) of
// steady load — cluster names, and forwarded names through a loopback
// upstream with short TTLs so the cache keeps expiring and refilling —
// while /metrics is scraped every 2 s. RSS and goroutines of the last
// minute must match the first minute's (after a 30 s warm-up) within a
// margin: nothing grows with time.
func TestSoak(t *testing.T) {
	if os.Getenv("CLUSTERDNS_SOAK") != "1" {
		t.Skip("set CLUSTERDNS_SOAK=1 to run the 10-minute soak test")
	}
	requireDnsperf(t)
	soak := envDuration(t, "CLUSTERDNS_SOAK_DURATION", 10*time.Minute)
	rate := 10000
	if v := os.Getenv("CLUSTERDNS_SOAK_QPS"); v != "" {
		rate, _ = strconv.Atoi(v)
	}
	up := testdns.Start(t, func(w dns.ResponseWriter, r *dns.Msg) {
		testdns.AnswerA("192.0.2.99", 5)(w, r)
	})
	dir := filepath.Join(t.TempDir(), "zones")
	copyZones(t, dir)
	// One forwarded name in 5 queries: 2,000 of them, twice the cache, so
	// the cache stays full and keeps turning over.
	var queries []string
	for i := range 2000 {
		for j := range 4 {
			queries = append(queries, clusterQueries[(4*i+j)%len(clusterQueries)])
		}
		queries = append(queries, fmt.Sprintf("host%d.soak.example.org A", i))
	}
	qf := filepath.Join(t.TempDir(), "queries.txt")
	if err := os.WriteFile(qf, []byte(strings.Join(queries, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startServer(t, "web-server-service.default.svc.cluster.local", "--zones-dir", dir,
		"--upstreams", up.Addr, "--cache-size", "1000", "--metrics-listen", metricsAddr)
	url := "http://" + metricsAddr + "/metrics"

	const warmup, every = 30 * time.Second, 2 * time.Second
	var samples []metricsSample
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for range tick.C {
			at := time.Since(start)
			if at > warmup+soak {
				return
			}
			if at < warmup {
				continue
			}
			rss, err1 := scrape(url, "process_resident_memory_bytes")
			gor, err2 := scrape(url, "go_goroutines")
			heap, err3 := scrape(url, "go_memstats_heap_inuse_bytes")
			if rss < 0 || gor < 0 || heap < 0 {
				t.Errorf("scrape at %s: %v %v %v", at, err1, err2, err3)
				continue
			}
			s := metricsSample{at: at - warmup, rss: rss, goroutines: gor, heap: heap}
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
		}
	}()
	run := runDnsperf(t, p.addr, qf, "-l", strconv.Itoa(int((warmup + soak).Seconds())), "-Q", strconv.Itoa(rate),
		"-c", "4", "-q", "500", "-t", "3", "-b", "4096")
	<-done
	mu.Lock()
	defer mu.Unlock()
	// Medians: a scrape that lands on a burst of forwarded queries (the
	// upstream's TTL of 5 s expires many names at once) counts hundreds of
	// goroutines for a moment; a leak moves the median.
	minute := func(from, to time.Duration) (rss, gor, heap float64) {
		var r, g, h []float64
		for _, s := range samples {
			if s.at >= from && s.at < to {
				r, g, h = append(r, s.rss), append(g, s.goroutines), append(h, s.heap)
			}
		}
		if len(r) == 0 {
			t.Fatalf("no samples between %s and %s", from, to)
		}
		med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
		return med(r), med(g), med(h)
	}
	window := min(time.Minute, soak/3)
	rss1, gor1, heap1 := minute(0, window)
	rssN, gorN, heapN := minute(soak-window, soak+every)
	for _, s := range samples {
		t.Logf("soak +%4.0fs: RSS %.1f MiB, heap in use %.1f MiB, goroutines %.0f", s.at.Seconds(), s.rss/(1<<20), s.heap/(1<<20), s.goroutines)
	}
	t.Logf("soak: %s", run.cmdline)
	t.Logf("soak: %s at %d QPS (%.0f achieved), %d sent, %d lost", soak, rate, run.qps, run.sent, run.lost)
	t.Logf("soak: first %s: RSS %.1f MiB, heap %.1f MiB, goroutines %.1f; last %s: RSS %.1f MiB, heap %.1f MiB, goroutines %.1f",
		window, rss1/(1<<20), heap1/(1<<20), gor1, window, rssN/(1<<20), heapN/(1<<20), gorN)
	fmt.Printf("SOAK duration=%s qps=%.0f lost=%d rss_first=%.1fMiB rss_last=%.1fMiB goroutines_first=%.1f goroutines_last=%.1f\n",
		soak, run.qps, run.lost, rss1/(1<<20), rssN/(1<<20), gor1, gorN)
	// Margins: RSS may wander with the GC (10 % + 8 MiB); goroutines with
	// the queries in flight at the moment of a scrape (+50 %, +50).
	if rssN > rss1*1.10+8<<20 {
		t.Errorf("RSS grew from %.1f MiB to %.1f MiB", rss1/(1<<20), rssN/(1<<20))
	}
	if gorN > gor1*1.5+50 {
		t.Errorf("goroutines grew from %.1f to %.1f", gor1, gorN)
	}
	if run.lost > run.sent/1000 {
		t.Errorf("%d of %d queries lost", run.lost, run.sent)
	}
}
