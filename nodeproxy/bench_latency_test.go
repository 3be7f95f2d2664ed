package nodeproxy

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/nodeproxy/netnstest"
)

// The benchmarks in bench_latency_test.go and bench_kubeproxy_test.go run
// real processes in network namespaces for minutes, so they are tests that
// run only with CLUSTERDNS_BENCH=1 (bench/nodeproxy.sh sets it). They print
// their results as lines starting with "nodeproxy-bench:".

// EnvBench turns the end-to-end benchmarks on.
const EnvBench = "CLUSTERDNS_BENCH"

func requireBench(t *testing.T) {
	t.Helper()
	if os.Getenv(EnvBench) != "1" {
		t.Skipf("benchmark: runs only with %s=1 (bench/nodeproxy.sh)", EnvBench)
	}
}

// benchEnvInt reads a positive integer from the environment.
func benchEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: not a positive integer", name, s)
	}
	return n
}

// report prints one result line (and logs it).
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	fmt.Printf("nodeproxy-bench: %s\n", line)
}

var (
	latNodeIP    = netip.MustParseAddr("192.0.2.10")
	latBackendIP = netip.MustParseAddr("10.244.1.10")
	latClientIP  = netip.MustParseAddr("10.244.9.9")
)

const latVIP = "10.96.0.100"

// TestBenchConnectLatency measures what the VIP costs a connection: TCP
// connects and whole small HTTP GETs from a client pod to a Go backend in
// another pod, through its ClusterIP (DNATed by nodeproxy in the node
// namespace) and straight to its pod IP, interleaved one for one. Before
// nodeproxy starts, the same direct connections are timed once more with
// no nftables table (and so no conntrack) in the node namespace.
//
//	CLUSTERDNS_BENCH=1 go test -run TestBenchConnectLatency -v ./nodeproxy/
//
// CLUSTERDNS_BENCH_CONNECTS sets the connections per kind (2000).
func TestBenchConnectLatency(t *testing.T) {
	requireBench(t)
	netnstest.Require(t, "nft")
	rounds := benchEnvInt(t, "CLUSTERDNS_BENCH_CONNECTS", 2000)
	bin := buildNodeProxy(t)
	tp := netnstest.New(t, latNodeIP)
	backend := tp.AddPod("backend", latBackendIP)
	client := tp.AddPod("client", latClientIP)
	tp.StartGoHTTP(backend, "go", 8080)
	vip := latVIP + ":80"
	direct := latBackendIP.String() + ":8080"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := netnstest.WaitConnect(ctx, client.NS, direct, true, 20*time.Millisecond, time.Second); err != nil {
		t.Fatal(err)
	}

	// Without the node proxy: no table, no conntrack in the node.
	if _, err := netnstest.TimeConnects(client.NS, []string{direct}, 200, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	bare, err := netnstest.TimeConnects(client.NS, []string{direct}, rounds, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bareGet, err := netnstest.TimeHTTPGets(client.NS, []string{direct}, netnstest.HealthzPath, rounds, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cluster := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: bench}
spec:
  clusterIP: %s
  ports:
  - {name: http, protocol: TCP, port: 80, targetPort: 8080}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: bench
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, protocol: TCP, port: 8080}
endpoints:
- addresses: [%s]
  conditions: {ready: true, serving: true, terminating: false}
`, latVIP, latBackendIP)
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte(cluster), 0o644); err != nil {
		t.Fatal(err)
	}
	proxy := tp.Start(tp.Node, nil, bin, "--zones-dir", dir, "--node-name", "node-a", "--log-level", "warn")
	if _, err := netnstest.WaitConnect(ctx, client.NS, vip, true, 20*time.Millisecond, time.Second); err != nil {
		t.Fatalf("%v\nnodeproxy: %s", err, proxy.Output())
	}

	addrs := []string{vip, direct}
	if _, err := netnstest.TimeConnects(client.NS, addrs, 200, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	conn, err := netnstest.TimeConnects(client.NS, addrs, rounds, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	get, err := netnstest.TimeHTTPGets(client.NS, addrs, netnstest.HealthzPath, rounds, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	report(t, "connect latency, client pod -> node -> Go backend pod, %d sequential connections each (interleaved):", rounds)
	report(t, "  TCP connect  via ClusterIP %-15s %v", vip, conn[0])
	report(t, "  TCP connect  direct        %-15s %v", direct, conn[1])
	report(t, "  TCP connect  direct, no proxy table  %v", bare[0])
	report(t, "  TCP connect  VIP - direct: p50 %+v  p99 %+v  mean %+v",
		netnstest.Round(conn[0].Percentile(50)-conn[1].Percentile(50)),
		netnstest.Round(conn[0].Percentile(99)-conn[1].Percentile(99)),
		netnstest.Round(conn[0].Mean()-conn[1].Mean()))
	report(t, "  HTTP GET     via ClusterIP %-15s %v", vip, get[0])
	report(t, "  HTTP GET     direct        %-15s %v", direct, get[1])
	report(t, "  HTTP GET     direct, no proxy table  %v", bareGet[0])
	report(t, "  HTTP GET     VIP - direct: p50 %+v  p99 %+v  mean %+v",
		netnstest.Round(get[0].Percentile(50)-get[1].Percentile(50)),
		netnstest.Round(get[0].Percentile(99)-get[1].Percentile(99)),
		netnstest.Round(get[0].Mean()-get[1].Mean()))
}
