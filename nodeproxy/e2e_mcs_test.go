package nodeproxy

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/nodeproxy/netnstest"
)

// mcsCluster is the ClusterSetIP test's cluster: apps/pay imported from
// clusters east (pod e1 ready, one unready endpoint without a pod) and
// west (pod w1), and apps/gone whose only endpoint is not ready.
func mcsCluster(e1, e1Unready, w1 netip.Addr) string {
	var b strings.Builder
	imp := func(name, ip string) {
		fmt.Fprintf(&b, "---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceImport\nmetadata: {name: %s, namespace: apps}\n"+
			"spec:\n  type: ClusterSetIP\n  ips: [%s]\n  ports:\n  - {name: http, protocol: TCP, port: 80}\n", name, ip)
	}
	slice := func(name, svc, cluster string, ready map[netip.Addr]bool, order ...netip.Addr) {
		fmt.Fprintf(&b, "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s\n  namespace: apps\n"+
			"  labels: {multicluster.kubernetes.io/service-name: %s, multicluster.kubernetes.io/source-cluster: %s}\n"+
			"addressType: IPv4\nports:\n- {name: http, protocol: TCP, port: 8080}\nendpoints:\n", name, svc, cluster)
		for _, a := range order {
			fmt.Fprintf(&b, "- addresses: [%q]\n  conditions: {ready: %v}\n", a, ready[a])
		}
	}
	imp("pay", "10.112.0.20")
	slice("imported-pay-east", "pay", "east", map[netip.Addr]bool{e1: true}, e1, e1Unready)
	slice("imported-pay-west", "pay", "west", map[netip.Addr]bool{w1: true}, w1)
	imp("gone", "10.112.0.30")
	slice("imported-gone-east", "gone", "east", nil, e1)
	return b.String()
}

// TestE2EClusterSetIP drives real traffic to ClusterSetIPs: a pod
// connecting to an import's IP reaches the ready backends of both
// clusters (and only those), with its own address kept, and an import
// without a ready endpoint is rejected.
func TestE2EClusterSetIP(t *testing.T) {
	netnstest.Require(t, "nft", "curl")
	bin := buildNodeProxy(t)
	nodeIP := netip.MustParseAddr("192.0.2.20")
	e1, e1Unready := netip.MustParseAddr("10.245.1.10"), netip.MustParseAddr("10.245.1.11")
	w1, clientIP := netip.MustParseAddr("10.246.1.10"), netip.MustParseAddr("10.244.9.9")
	tp := netnstest.New(t, nodeIP)
	tp.AddSink()
	east, west := tp.AddPod("e1", e1), tp.AddPod("w1", w1)
	client := tp.AddPod("client", clientIP)
	tp.StartGoHTTP(east, "e1", 8080)
	tp.StartGoHTTP(west, "w1", 8080)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte(mcsCluster(e1, e1Unready, w1)), 0o644); err != nil {
		t.Fatal(err)
	}
	proxy := tp.Start(tp.Node, nil, bin, "--zones-dir", dir, "--node-name", "node-a",
		"--cluster-cidr", "10.244.0.0/14", "--healthz-addr", "127.0.0.1:0")
	t.Cleanup(func() {
		if out, err := tp.Run(tp.Node, bin, "--cleanup"); err != nil {
			t.Errorf("nodeproxy --cleanup: %v %s", err, out)
		}
	})
	for _, p := range []*netnstest.Pod{east, west} {
		tp.WaitHTTP(tp.Node, fmt.Sprintf("http://%s:8080%s", p.IP, netnstest.HealthzPath), 20*time.Second)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := tp.Run(tp.Node, "nft", "list", "table", "inet", DefaultTable)
		if strings.Contains(out, "10.112.0.20 . tcp . 80") && strings.Contains(out, "10.112.0.30 . tcp . 80") {
			break
		}
		if time.Now().After(deadline) || proxy.Exited() {
			t.Fatalf("rules not written (nodeproxy exited: %v):\n%s\n%s", proxy.Exited(), out, proxy.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	e := &pathEnv{topo: tp}
	t.Run("ClusterSetIP reaches the ready endpoints of every cluster", func(t *testing.T) {
		e.expect(t, client.NS, url("10.112.0.20", 80), []string{"e1", "w1"}, clientIP.String())
	})
	t.Run("ClusterSetIP without a ready endpoint is rejected", func(t *testing.T) {
		e.curlFails(t, client.NS, url("10.112.0.30", 80), 7)
	})
}
