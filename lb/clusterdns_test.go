package lb_test

// Tests of the client library against the real clusterdns server (the file
// source, a cluster manifest in a temp folder, the server's UDP/TCP
// listener) and real HTTP backends on loopback addresses.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/lb"
	"github.com/clusterdns/clusterdns/lb/lbtest"
	"github.com/clusterdns/clusterdns/lb/lbtest/clusterdnstest"
)

// clusterFile is a headless service "web" in "default" whose endpoints are
// the backends, with zones a, a, b, b, b.
func clusterFile(bs []*lbtest.Backend, skip map[int]bool) string {
	var eps []clusterdnstest.Endpoint
	for i, b := range bs {
		if skip[i] {
			continue
		}
		zone := "zone-b"
		if i < 2 {
			zone = "zone-a"
		}
		eps = append(eps, clusterdnstest.Endpoint{Addr: b.Addr.Addr(), Hostname: fmt.Sprintf("web-%d", i), Zone: zone})
	}
	return clusterdnstest.Headless("web", "http", bs[0].Addr.Port(), eps)
}

// startClusterDNS serves dir with TTL 1 and follows its changes.
func startClusterDNS(t *testing.T, dir string) string {
	t.Helper()
	return clusterdnstest.Start(t, dir).Addr
}

func get(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
}

func TestThroughClusterDNS(t *testing.T) {
	bs := lbtest.StartBackends(t, 5)
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(file, []byte(clusterFile(bs, nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	dnsAddr := startClusterDNS(t, dir)
	url := fmt.Sprintf("http://web.default.svc.cluster.local:%d/api/v1/healthz", bs[0].Addr.Port())

	t.Run("requests spread evenly over the endpoints (A records)", func(t *testing.T) {
		pool, err := lb.NewPool(lb.Config{Resolver: lb.ResolverConfig{Server: dnsAddr}, Balancer: lb.BalancerConfig{Policy: lb.RoundRobin()}})
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		c := &http.Client{Transport: lb.NewRoundTripper(pool, nil)}
		before := make([]int64, len(bs))
		for i, b := range bs {
			before[i] = b.Hits()
		}
		for range 1000 {
			get(t, c, url)
		}
		counts := make([]int64, len(bs))
		for i, b := range bs {
			counts[i] = b.Hits() - before[i]
		}
		// df = 4: P(X > 23.5) ≈ 1e-4.
		if x := lbtest.ChiSquare(counts); x > 23.5 {
			t.Fatalf("counts %v: chi-square %.1f > 23.5", counts, x)
		}
	})

	t.Run("zone preference from the server's zone hints (SRV)", func(t *testing.T) {
		pool, err := lb.NewPool(lb.Config{Resolver: lb.ResolverConfig{Server: dnsAddr}, PortName: "http",
			Balancer: lb.BalancerConfig{Zone: "zone-a", MinZoneEndpoints: 2}})
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		c := &http.Client{Transport: lb.NewRoundTripper(pool, nil)}
		before := make([]int64, len(bs))
		for i, b := range bs {
			before[i] = b.Hits()
		}
		for range 200 {
			get(t, c, url)
		}
		for i, b := range bs {
			n := b.Hits() - before[i]
			if i < 2 && n == 0 {
				t.Errorf("zone-a endpoint %d got no request", i)
			}
			if i >= 2 && n != 0 {
				t.Errorf("zone-b endpoint %d got %d requests while zone-a has 2 endpoints", i, n)
			}
		}
	})

	t.Run("an endpoint removed from the cluster file stops receiving requests within one TTL", func(t *testing.T) {
		pool, err := lb.NewPool(lb.Config{Resolver: lb.ResolverConfig{Server: dnsAddr}})
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		c := &http.Client{Transport: lb.NewRoundTripper(pool, nil)}
		for range 50 {
			get(t, c, url)
		}
		if err := os.WriteFile(file, []byte(clusterFile(bs, map[int]bool{4: true})), 0o644); err != nil {
			t.Fatal(err)
		}
		// The server picks the file up (≤ 1 s), then the client's TTL (1 s)
		// and resolve floor (1 s) run out: after 4 s nothing may reach it.
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) {
			get(t, c, url)
			time.Sleep(5 * time.Millisecond)
		}
		removed := bs[4].Hits()
		for range 200 {
			get(t, c, url)
		}
		if n := bs[4].Hits() - removed; n != 0 {
			t.Fatalf("the removed endpoint got %d of 200 requests", n)
		}
	})
}
