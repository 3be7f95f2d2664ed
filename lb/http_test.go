package lb

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/lb/lbtest"
)

// cluster is a DNS server, n HTTP backends on 127.a.b.1..n, and a Pool and
// RoundTripper pointed at them.
type cluster struct {
	dns      *lbtest.DNS
	backends []*lbtest.Backend
	pool     *Pool
	rt       *RoundTripper
	client   *http.Client
	url      string
	dials    sync.Map // address → *atomic.Int64 (connection attempts)
}

func newCluster(t *testing.T, n int, ttl uint32, cfg Config) *cluster {
	t.Helper()
	c := &cluster{dns: lbtest.StartDNS(t), backends: lbtest.StartBackends(t, n)}
	c.dns.SetAddrs(svcName, ttl, lbtest.Addrs(c.backends)...)
	cfg.Resolver.Server = c.dns.Addr
	cfg.Resolver.Timeout = 500 * time.Millisecond
	cfg.Dialer = &net.Dialer{Timeout: 2 * time.Second, ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
		v, _ := c.dials.LoadOrStore(address, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		return nil
	}}
	pool, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.pool = pool
	c.rt = NewRoundTripper(pool, nil)
	c.client = &http.Client{Transport: c.rt, Timeout: 10 * time.Second}
	c.url = fmt.Sprintf("http://%s:%d/api/v1/healthz", svcName, c.backends[0].Addr.Port())
	t.Cleanup(func() {
		c.rt.Close()
		c.pool.Close()
	})
	return c
}

func (c *cluster) dialCount(b *lbtest.Backend) int64 {
	v, ok := c.dials.Load(b.Addr.String())
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// get sends one request and returns the address of the backend that answered.
func get(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return strings.TrimSpace(string(body)), nil
}

// run sends n requests from `workers` goroutines; it returns the answering
// backends' counts and the errors.
func run(ctx context.Context, client *http.Client, url string, n, workers int) (map[string]int, []error) {
	var mu sync.Mutex
	got := make(map[string]int)
	var errs []error
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				addr, err := get(ctx, client, url)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					got[addr]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return got, errs
}

func hitsOf(bs []*lbtest.Backend) []int {
	out := make([]int, len(bs))
	for i, b := range bs {
		out[i] = int(b.Hits())
	}
	return out
}

// TestRoundTripperSpreadsRequests: requests through the RoundTripper spread
// evenly with the policies that promise it. LeastRequest runs sequentially
// here (every pick then ties). P2C is left out: it follows the backends'
// measured latencies by design, so equal backends get uneven shares from
// noise (TestP2CAvoidsSlowEndpoint).
func TestRoundTripperSpreadsRequests(t *testing.T) {
	t.Parallel()
	for _, pw := range []struct {
		p       Policy
		workers int
	}{{LeastRequest(), 1}, {Random(), 4}, {RoundRobin(), 4}} {
		p := pw.p
		c := newCluster(t, 5, 5, Config{Balancer: BalancerConfig{Policy: p}})
		got, errs := run(context.Background(), c.client, c.url, 1000, pw.workers)
		if len(errs) > 0 {
			t.Fatalf("%s: %d errors, first %v", p.Name(), len(errs), errs[0])
		}
		assertFits(t, "RoundTripper "+p.Name(), hitsOf(c.backends), equal(5))
		if len(got) != 5 {
			t.Fatalf("answers from %v", got)
		}
	}
}

// TestDialContextBalancesConnectionsOnly measures the difference between the
// two integrations: with one shared http.Transport and a balancing DialContext,
// sequential requests reuse one keep-alive connection and all reach one
// endpoint; the RoundTripper spreads them.
func TestDialContextBalancesConnectionsOnly(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, 5, Config{Balancer: BalancerConfig{Policy: RoundRobin()}})
	tr := &http.Transport{DialContext: c.pool.DialContext, MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	got, errs := run(context.Background(), client, c.url, 300, 1)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	t.Logf("DialContext + one http.Transport, 300 sequential requests: %v", got)
	if len(got) != 1 {
		t.Errorf("sequential keep-alive requests reached %d endpoints, want 1 (connection-level balancing)", len(got))
	}
	before := hitsOf(c.backends)
	got, errs = run(context.Background(), c.client, c.url, 300, 1)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	t.Logf("RoundTripper, 300 sequential requests: %v", got)
	for i, h := range hitsOf(c.backends) {
		if h-before[i] != 100 {
			t.Errorf("round robin through the RoundTripper: backend %d got %d, want 100", i, h-before[i])
		}
	}
	// Connections: one per endpoint, reused (keep-alive still works).
	for _, b := range c.backends {
		if n := c.dialCount(b); n > 2 {
			t.Errorf("%d connections to %s for 100 sequential requests", n, b.Addr)
		}
	}
}

func TestSRVWeightsAndPriorities(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 4, 5, Config{
		PortName:    "http",
		MaxAttempts: 4,
		Balancer:    BalancerConfig{Outlier: OutlierConfig{ConsecutiveFailures: 1, MaxEjectionPercent: 100, BaseEjection: time.Minute}},
	})
	port := c.backends[0].Addr.Port()
	var srvs []lbtest.SRV
	for i, pw := range [][2]uint16{{10, 60}, {10, 30}, {10, 10}, {20, 100}} {
		host := fmt.Sprintf("web-%d.%s", i, svcName)
		c.dns.SetAddrs(host, 5, c.backends[i].Addr.Addr())
		srvs = append(srvs, lbtest.SRV{Priority: pw[0], Weight: pw[1], Port: port, Target: host})
	}
	c.dns.SetSRV("_http._tcp."+svcName, 5, srvs...)
	// The URL's port is irrelevant in SRV mode.
	url := "http://" + svcName + "/api/v1/healthz"
	if _, errs := run(context.Background(), c.client, url, 2000, 4); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	h := hitsOf(c.backends)
	if h[3] != 0 {
		t.Fatalf("priority-20 backend got %d requests while priority 10 is up: %v", h[3], h)
	}
	assertFits(t, "SRV weights 60/30/10", h[:3], []float64{60, 30, 10})
	// Priority 10 dies: after one failure each they are ejected, requests are
	// retried, and priority 20 takes everything with no failed request.
	for _, b := range c.backends[:3] {
		b.Stop()
	}
	if _, errs := run(context.Background(), c.client, url, 200, 4); len(errs) > 0 {
		t.Fatalf("%d failed requests, first %v", len(errs), errs[0])
	}
	if got := c.backends[3].Hits(); got != 200 {
		t.Fatalf("backup got %d of 200", got)
	}
}

func TestDeadEndpointIsEjected(t *testing.T) {
	t.Parallel()
	const threshold = 3
	c := newCluster(t, 3, 5, Config{Balancer: BalancerConfig{
		Policy:  RoundRobin(),
		Outlier: OutlierConfig{ConsecutiveFailures: threshold, BaseEjection: time.Minute},
	}})
	if _, errs := run(context.Background(), c.client, c.url, 30, 3); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	dead := c.backends[0]
	dead.Stop() // connections closed, new ones refused
	dialsBefore := c.dialCount(dead)
	got, errs := run(context.Background(), c.client, c.url, 600, 4)
	// Dial failures are retried on another endpoint: no request fails, not even
	// the ones that detected the failure.
	if len(errs) > 0 {
		t.Fatalf("%d failed requests, first: %v", len(errs), errs[0])
	}
	attempts := c.dialCount(dead) - dialsBefore
	t.Logf("after the stop: %v; %d connection attempts to the dead endpoint", got, attempts)
	if attempts > threshold+4 { // threshold, plus picks already under way (4 workers)
		t.Errorf("%d connection attempts to the dead endpoint, want about %d", attempts, threshold)
	}
	var ejected bool
	b, _ := c.pool.Balancer(Target{Name: svcName, Port: dead.Addr.Port(), Proto: "tcp"})
	for _, e := range b.Endpoints() {
		if e.AddrPort() == dead.Addr {
			ejected = e.Ejected()
		}
	}
	if !ejected {
		t.Error("dead endpoint not ejected")
	}
	assertFits(t, "survivors", []int{got[c.backends[1].Addr.String()], got[c.backends[2].Addr.String()]}, equal(2))
}

// TestRemovedEndpointDrains: an endpoint removed from DNS gets no new request
// within one TTL, and its request in flight finishes.
func TestRemovedEndpointDrains(t *testing.T) {
	t.Parallel()
	const ttl = 1
	c := newCluster(t, 3, ttl, Config{Balancer: BalancerConfig{Policy: RoundRobin()}})
	leaving := c.backends[2]
	entered := leaving.Hold()
	inflight := make(chan error, 3)
	for range 3 { // round robin: one of the three reaches the leaving backend
		go func() {
			_, err := get(context.Background(), c.client, strings.TrimSuffix(c.url, "/healthz")+"/hold")
			inflight <- err
		}()
	}
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the held backend")
	}
	for range 2 {
		if err := <-inflight; err != nil {
			t.Fatal(err)
		}
	}
	removed := time.Now()
	c.dns.SetAddrs(svcName, ttl, lbtest.Addrs(c.backends[:2])...)
	// last: when the last request that reached the removed endpoint started
	// (it was picked after that).
	var last time.Time
	hits := leaving.Hits()
	for time.Since(removed) < (ttl+2)*time.Second {
		start := time.Now()
		if _, err := get(context.Background(), c.client, c.url); err != nil {
			t.Fatal(err)
		}
		if h := leaving.Hits(); h != hits {
			hits, last = h, start
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !last.IsZero() {
		t.Logf("last request to the removed endpoint started %v after the DNS change", last.Sub(removed))
	}
	// Re-resolution happens when the TTL runs out; allow a second for the query
	// and scheduling on a loaded machine.
	if d := last.Sub(removed); d > (ttl+1)*time.Second {
		t.Errorf("removed endpoint still got requests %v after the change (TTL %ds)", d, ttl)
	}
	if got, errs := run(context.Background(), c.client, c.url, 100, 2); len(errs) > 0 || got[leaving.Addr.String()] != 0 {
		t.Fatalf("after removal: %v %v", got, errs)
	}
	leaving.Release()
	select {
	case err := <-inflight:
		if err != nil {
			t.Fatalf("request in flight on the removed endpoint failed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request in flight never finished")
	}
}

func TestP2CAvoidsSlowEndpoint(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, 5, Config{})
	slow := c.backends[0]
	slow.SetDelay(100 * time.Millisecond)
	got, errs := run(context.Background(), c.client, c.url, 300, 4)
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	share := float64(got[slow.Addr.String()]) / 300
	t.Logf("P2C, one backend 100ms slower, 4 workers: %v (slow share %.3f; random would give 1/3)", got, share)
	if share > 1.0/6 {
		t.Errorf("slow backend got %.3f of the requests, want well under 1/3", share)
	}
}

func TestConsistentHashingOverHTTP(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 5, 1, Config{Balancer: BalancerConfig{Policy: Maglev(), ResolveFloor: 200 * time.Millisecond}})
	c.dns.SetAddrs(svcName, 1, lbtest.Addrs(c.backends[:4])...)
	const keys = 200
	where := func() []string {
		out := make([]string, keys)
		for k := range keys {
			ctx := WithHashKey(context.Background(), fmt.Sprint("user-", k))
			for i := range 2 {
				addr, err := get(ctx, c.client, c.url)
				if err != nil {
					t.Fatal(err)
				}
				if i > 0 && addr != out[k] {
					t.Fatalf("key %d went to %s then %s", k, out[k], addr)
				}
				out[k] = addr
			}
		}
		return out
	}
	before := where()
	perBackend := make([]int, 4)
	for _, a := range before {
		for i, b := range c.backends[:4] {
			if a == b.Addr.String() {
				perBackend[i]++
			}
		}
	}
	assertFits(t, "keys over 4 endpoints", perBackend, equal(4))
	c.dns.SetAddrs(svcName, 1, lbtest.Addrs(c.backends)...)
	b, _ := c.pool.Balancer(Target{Name: svcName, Port: c.backends[0].Addr.Port(), Proto: "tcp"})
	waitFor(t, 10*time.Second, "the fifth endpoint", func() bool { return len(b.Endpoints()) == 5 })
	after := where()
	moved, toNew := 0, 0
	for k := range keys {
		if before[k] != after[k] {
			moved++
			if after[k] == c.backends[4].Addr.String() {
				toNew++
			}
		}
	}
	t.Logf("adding a fifth endpoint moved %d of %d keys (%d to it); ideal 1/5 = %d", moved, keys, toNew, keys/5)
	// Binomial(200, 0.2): mean 40, sd 5.7; Maglev moves a few more.
	if moved < 15 || moved > 75 || toNew < moved*3/4 {
		t.Errorf("moved %d keys (%d to the new endpoint), want about %d", moved, toNew, keys/5)
	}
}

func TestZonePreferenceFromTXT(t *testing.T) {
	t.Parallel()
	for _, srv := range []bool{false, true} {
		t.Run(fmt.Sprint("srv=", srv), func(t *testing.T) {
			cfg := Config{Balancer: BalancerConfig{Policy: RoundRobin(), Zone: "zone-a", ResolveFloor: 200 * time.Millisecond}}
			if srv {
				cfg.PortName = "http"
			}
			c := newCluster(t, 4, 1, cfg)
			zones := []string{"zone-a", "zone-a", "zone-b", "zone-b"}
			var srvs []lbtest.SRV
			for i, b := range c.backends {
				host := fmt.Sprintf("web-%d.%s", i, svcName)
				c.dns.SetAddrs(host, 1, b.Addr.Addr())
				srvs = append(srvs, lbtest.SRV{Weight: 1, Port: b.Addr.Port(), Target: host})
				if srv { // per-endpoint records
					c.dns.SetTXT(host, 1, []string{"zone=" + zones[i]})
				}
			}
			c.dns.SetSRV("_http._tcp."+svcName, 1, srvs...)
			if !srv { // per-service record
				c.dns.SetTXT("_zones."+svcName, 1,
					[]string{"zone=zone-a", c.backends[0].Addr.Addr().String(), c.backends[1].Addr.Addr().String()},
					[]string{"zone=zone-b", c.backends[2].Addr.Addr().String(), c.backends[3].Addr.Addr().String()})
			}
			got, errs := run(context.Background(), c.client, c.url, 100, 2)
			if len(errs) > 0 {
				t.Fatal(errs[0])
			}
			if h := hitsOf(c.backends); h[0] != 50 || h[1] != 50 {
				t.Fatalf("want zone-a only, got %v", got)
			}
			// Without zone records every endpoint is zone-less: all are used.
			c.dns.Delete("_zones." + svcName)
			for i := range c.backends {
				c.dns.SetTXT(fmt.Sprintf("web-%d.%s", i, svcName), 1)
			}
			before := hitsOf(c.backends)
			waitFor(t, 10*time.Second, "zone-less fallback", func() bool {
				run(context.Background(), c.client, c.url, 8, 1)
				h := hitsOf(c.backends)
				return h[2] > before[2] && h[3] > before[3]
			})
		})
	}
}

// TestDialContextDrain: with DialContext under one http.Transport, a removed
// endpoint's kept-alive connection refuses the next request, which the
// transport retries on a new connection to another endpoint.
func TestDialContextDrain(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, 1, Config{Balancer: BalancerConfig{Policy: RoundRobin(), ResolveFloor: 200 * time.Millisecond}})
	tr := &http.Transport{DialContext: c.pool.DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	first, err := get(context.Background(), client, c.url)
	if err != nil {
		t.Fatal(err)
	}
	var keep netip.Addr
	for _, b := range c.backends {
		if b.Addr.String() != first {
			keep = b.Addr.Addr()
		}
	}
	c.dns.SetAddrs(svcName, 1, keep)
	b, _ := c.pool.Balancer(Target{Name: svcName, Port: c.backends[0].Addr.Port(), Proto: "tcp"})
	waitFor(t, 10*time.Second, "the removal", func() bool { return len(b.Endpoints()) == 1 })
	for range 20 {
		addr, err := get(context.Background(), client, c.url)
		if err != nil {
			t.Fatalf("request after the removal failed: %v", err)
		}
		if addr == first {
			t.Fatalf("request reached the removed endpoint %s over its kept-alive connection", first)
		}
	}
}

func TestUnbalancedNamesPassThrough(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, 5, Config{})
	addr, err := get(context.Background(), c.client, "http://"+c.backends[0].Addr.String()+"/x")
	if err != nil || addr != c.backends[0].Addr.String() {
		t.Fatalf("direct request: %q %v", addr, err)
	}
	conn, err := c.pool.DialContext(context.Background(), "tcp", c.backends[0].Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	for host, want := range map[string]bool{
		"web.default.svc.cluster.local":         true,
		"WEB.Default.svc.cluster.local.":        true,
		"web.default.svc.cluster.local.example": false,
		"a.web.default.svc.cluster.local":       false,
		"default.svc.cluster.local":             false,
		"example.com":                           false,
	} {
		if got := IsServiceName(host, "cluster.local"); got != want {
			t.Errorf("IsServiceName(%q) = %v", host, got)
		}
	}
}

// TestServiceKeepsWorkingWhileDNSFails: requests keep succeeding on the last
// good set while the DNS server fails in every way.
func TestServiceKeepsWorkingWhileDNSFails(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, 1, Config{Balancer: BalancerConfig{Policy: RoundRobin(), ResolveFloor: 100 * time.Millisecond, BackoffMax: 300 * time.Millisecond}})
	if _, errs := run(context.Background(), c.client, c.url, 30, 2); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	for _, f := range []lbtest.Failure{lbtest.ServFail, lbtest.Empty, lbtest.NXDomain, lbtest.Drop} {
		c.dns.SetFailure(f)
		q := c.dns.Queries()
		waitFor(t, 10*time.Second, "failed resolutions", func() bool {
			if _, errs := run(context.Background(), c.client, c.url, 9, 3); len(errs) > 0 {
				t.Fatalf("failure mode %d: %v", f, errs[0])
			}
			return c.dns.Queries() >= q+4
		})
		before := hitsOf(c.backends)
		if _, errs := run(context.Background(), c.client, c.url, 30, 1); len(errs) > 0 {
			t.Fatal(errs[0])
		}
		for i, h := range hitsOf(c.backends) {
			if h-before[i] != 10 {
				t.Fatalf("failure mode %d: backend %d got %d of 30 round-robin requests", f, i, h-before[i])
			}
		}
	}
}
