package lb_test

// Tests of the client library against the real clusterdns server (the file
// source, a cluster manifest in a temp folder, the server's UDP/TCP
// listener) and real HTTP backends on loopback addresses.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/internal/dirwatch"
	"github.com/clusterdns/clusterdns/lb"
	"github.com/clusterdns/clusterdns/lb/lbtest"
	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
	"github.com/clusterdns/clusterdns/server"
)

// clusterFile is a headless service "web" in "default" whose endpoints are
// the backends, with zones a, a, b, b, b.
func clusterFile(bs []*lbtest.Backend, skip map[int]bool) string {
	var eps strings.Builder
	for i, b := range bs {
		if skip[i] {
			continue
		}
		zone := "zone-b"
		if i < 2 {
			zone = "zone-a"
		}
		fmt.Fprintf(&eps, "- addresses: [%s]\n  hostname: web-%d\n  zone: %s\n  conditions: {ready: true}\n", b.Addr.Addr(), i, zone)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, protocol: TCP, port: %[1]d}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: %[1]d}]
endpoints:
%[2]s`, bs[0].Addr.Port(), eps.String())
}

// startClusterDNS serves dir with TTL 1 and follows its changes.
func startClusterDNS(t *testing.T, dir string) string {
	t.Helper()
	h, err := server.NewHandler(server.Options{Domains: []string{"cluster.local"}, TTL: 1, NegativeTTL: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := registrytest.New(t).Feed(h.Update)
	src := registry.NewFileSource(os.DirFS(dir), dir, store.Store, nil)
	if err := src.Load(); err != nil {
		t.Fatal(err)
	}
	l, err := server.Listen(h, server.ListenOptions{Addr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go l.Serve()
	go dirwatch.Watch(ctx, nil, dir, 20*time.Millisecond, 0, func() { src.Load() })
	t.Cleanup(func() { cancel(); l.Close() })
	return l.Addr().String()
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

// chiSquare is Pearson's statistic of observed counts against equal shares.
func chiSquare(counts []int64) float64 {
	var total float64
	for _, c := range counts {
		total += float64(c)
	}
	exp := total / float64(len(counts))
	var x float64
	for _, c := range counts {
		x += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	return x
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
		if x := chiSquare(counts); x > 23.5 {
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
