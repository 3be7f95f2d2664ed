package nodeproxy

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/nodeproxy/netnstest"
)

// The traffic-path test's addresses: all of them exist only inside its
// namespaces. Pods a1 (this node, zone-a), b1 (node-b, zone-b) and b2
// (node-b, zone-a) run Go backends on 8080 that report the client address
// they saw; "client" is a pod of the cluster, ext and ext2 are clients
// outside it (ext inside the LoadBalancer source ranges, ext2 outside).
var (
	pathNodeIP  = netip.MustParseAddr("192.0.2.10")
	pathNodeIP2 = netip.MustParseAddr("192.0.2.11") // not a --nodeport-addresses address
	pathNodeIP6 = netip.MustParseAddr("fd00:192::10")
	pathA1      = netip.MustParseAddr("10.244.1.10")
	pathA1v6    = netip.MustParseAddr("fd00:10:244:1::10")
	pathB1      = netip.MustParseAddr("10.244.2.10")
	pathB1v6    = netip.MustParseAddr("fd00:10:244:2::10")
	pathB2      = netip.MustParseAddr("10.244.3.10")
	pathClient  = netip.MustParseAddr("10.244.9.9")
	pathClient6 = netip.MustParseAddr("fd00:10:244:9::9")
	pathExt     = netip.MustParseAddr("203.0.113.7")
	pathExt6    = netip.MustParseAddr("2001:db8:7::7")
	pathExt2    = netip.MustParseAddr("198.51.100.7")
	// pathMasqAddr is the source a masqueraded packet gets: the node's
	// address on the pods' veths.
	pathMasqAddr = netnstest.GatewayIP.String()
)

// pathCluster is the traffic-path test's cluster: one service per path.
func pathCluster() string {
	var b strings.Builder
	svc := func(name, spec, status string) {
		port := fmt.Sprintf("{name: http, protocol: TCP, port: 80, targetPort: 8080%s}", nodePortOf(spec))
		if name == "sctp" {
			port = "{name: sig, protocol: SCTP, port: 3868}"
		}
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: apps}\nspec:\n%s  ports:\n  - %s\n%s",
			name, spec, port, status)
	}
	type ep struct {
		ip               netip.Addr
		node, zone, hint string
		ready, serving   bool
		terminating      bool
	}
	slice := func(name, svcName, family string, eps ...ep) {
		fmt.Fprintf(&b, "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s\n  namespace: apps\n  labels: {kubernetes.io/service-name: %s}\naddressType: %s\nports:\n- {name: http, protocol: TCP, port: 8080}\nendpoints:\n",
			name, svcName, family)
		for _, e := range eps {
			fmt.Fprintf(&b, "- addresses: [%q]\n  nodeName: %s\n  zone: %s\n  conditions: {ready: %v, serving: %v, terminating: %v}\n",
				e.ip, e.node, e.zone, e.ready, e.serving, e.terminating)
			if e.hint != "" {
				fmt.Fprintf(&b, "  hints: {forZones: [{name: %s}]}\n", e.hint)
			}
		}
	}
	a1 := ep{ip: pathA1, node: "node-a", zone: "zone-a", ready: true, serving: true}
	b1 := ep{ip: pathB1, node: "node-b", zone: "zone-b", ready: true, serving: true}
	b2 := ep{ip: pathB2, node: "node-b", zone: "zone-a", ready: true, serving: true}
	a1v6 := ep{ip: pathA1v6, node: "node-a", zone: "zone-a", ready: true, serving: true}
	b1v6 := ep{ip: pathB1v6, node: "node-b", zone: "zone-b", ready: true, serving: true}

	// LoadBalancer, policy Cluster, dual-stack, no node ports.
	svc("lb", "  type: LoadBalancer\n  allocateLoadBalancerNodePorts: false\n  clusterIPs: [10.96.0.10, \"fd00:96::10\"]\n"+
		"  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n  externalIPs: [198.18.0.50, \"fd00:18::50\"]\n"+
		"  loadBalancerSourceRanges: [203.0.113.0/24, nonsense, \"2001:db8:7::/48\"]\n",
		"status:\n  loadBalancer:\n    ingress:\n    - {ip: 198.18.0.10}\n    - {ip: 198.18.0.11, ipMode: Proxy}\n    - {ip: \"fd00:18::10\"}\n    - {ip: nonsense}\n")
	slice("lb-v4", "lb", "IPv4", a1, b1)
	slice("lb-v6", "lb", "IPv6", a1v6, b1v6)
	// NodePort, dual-stack.
	svc("web6", "  type: NodePort\n  clusterIPs: [10.96.0.12, \"fd00:96::12\"]\n  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n  # nodePort 30031\n", "")
	slice("web6-v6", "web6", "IPv6", a1v6, b1v6)
	slice("web6-v4", "web6", "IPv4", a1, b1)
	// externalTrafficPolicy Local with an endpoint here.
	svc("local-lb", "  type: LoadBalancer\n  clusterIP: 10.96.0.11\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 30012\n  externalIPs: [198.18.0.51]\n  # nodePort 30011\n",
		"status:\n  loadBalancer:\n    ingress:\n    - {ip: 198.18.0.20}\n")
	slice("local-lb-1", "local-lb", "IPv4", a1, b1)
	// externalTrafficPolicy Local without one.
	svc("local-none", "  type: LoadBalancer\n  clusterIP: 10.96.0.13\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 30022\n  # nodePort 30021\n",
		"status:\n  loadBalancer:\n    ingress:\n    - {ip: 198.18.0.30}\n")
	slice("local-none-1", "local-none", "IPv4", b1)
	// internalTrafficPolicy Local, with and without an endpoint here.
	svc("itp", "  clusterIP: 10.96.0.40\n  internalTrafficPolicy: Local\n", "")
	slice("itp-1", "itp", "IPv4", a1, b1)
	svc("itp-none", "  clusterIP: 10.96.0.41\n  internalTrafficPolicy: Local\n", "")
	slice("itp-none-1", "itp-none", "IPv4", b1)
	// Terminating endpoints as the fallback, for both policies.
	termA1 := a1
	termA1.ready, termA1.serving, termA1.terminating = false, true, true
	goneB1 := b1
	goneB1.ready, goneB1.serving, goneB1.terminating = false, false, true
	svc("draining", "  clusterIP: 10.96.0.50\n", "")
	slice("draining-1", "draining", "IPv4", termA1, goneB1)
	svc("draining-local", "  type: LoadBalancer\n  clusterIP: 10.96.0.51\n  externalTrafficPolicy: Local\n  allocateLoadBalancerNodePorts: false\n",
		"status:\n  loadBalancer:\n    ingress:\n    - {ip: 198.18.0.60}\n")
	slice("draining-local-1", "draining-local", "IPv4", termA1, b1)
	// SCTP (carries traffic only where the kernel has SCTP).
	svc("sctp", "  clusterIP: 10.96.0.80\n", "")
	b.WriteString("---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: sctp-1\n  namespace: apps\n  labels: {kubernetes.io/service-name: sctp}\naddressType: IPv4\nports:\n- {name: sig, protocol: SCTP, port: 3868}\nendpoints:\n- addresses: [\"10.244.1.10\"]\n  nodeName: node-a\n")
	// Topology: zone hints for every endpoint, and for only some.
	ha1, hb1, hb2 := a1, b1, b2
	ha1.hint, hb1.hint, hb2.hint = "zone-a", "zone-b", "zone-a"
	svc("zoned", "  clusterIP: 10.96.0.70\n  trafficDistribution: PreferClose\n", "")
	slice("zoned-1", "zoned", "IPv4", ha1, hb1, hb2)
	svc("zoned-partial", "  clusterIP: 10.96.0.71\n  trafficDistribution: PreferClose\n", "")
	slice("zoned-partial-1", "zoned-partial", "IPv4", ha1, b1)
	return b.String()
}

// nodePortOf turns a "# nodePort N" line of a spec into the port's field.
func nodePortOf(spec string) string {
	_, rest, ok := strings.Cut(spec, "# nodePort ")
	if !ok {
		return ""
	}
	return ", nodePort: " + strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0])
}

type pathEnv struct {
	topo              *netnstest.Topology
	client, ext, ext2 *netnstest.Pod
	proxy             *netnstest.Process
}

// startPaths builds the topology, starts the backends and nodeproxy, and
// waits for the rules.
func startPaths(t *testing.T) *pathEnv {
	t.Helper()
	netnstest.Require(t, "nft", "curl")
	bin := buildNodeProxy(t)
	tp := netnstest.New(t, pathNodeIP)
	tp.MustRun("ip", "-n", tp.Node, "addr", "add", pathNodeIP2.String()+"/32", "dev", "lo")
	tp.EnableIPv6(pathNodeIP6)
	// Unknown destinations vanish; only the proxy's rules reach the pods.
	tp.AddSink()
	e := &pathEnv{topo: tp}
	a1, b1, b2 := tp.AddPod("a1", pathA1), tp.AddPod("b1", pathB1), tp.AddPod("b2", pathB2)
	e.client, e.ext, e.ext2 = tp.AddPod("client", pathClient), tp.AddPod("ext", pathExt), tp.AddPod("ext2", pathExt2)
	tp.AddIPv6(a1, pathA1v6)
	tp.AddIPv6(b1, pathB1v6)
	tp.AddIPv6(e.client, pathClient6)
	tp.AddIPv6(e.ext, pathExt6)
	for _, p := range []*netnstest.Pod{a1, b1, b2} {
		tp.StartGoHTTP(p, p.Name, 8080)
	}
	if ok, _ := netnstest.SCTPSupported(); ok {
		tp.StartSCTP(a1, "a1", 3868)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte(pathCluster()), 0o644); err != nil {
		t.Fatal(err)
	}
	e.proxy = tp.Start(tp.Node, nil, bin, "--zones-dir", dir, "--node-name", "node-a", "--node-zone", "zone-a",
		"--cluster-cidr", "10.244.0.0/16,fd00:10:244::/48",
		"--nodeport-addresses", pathNodeIP.String()+"/32,"+pathNodeIP6.String()+"/128",
		"--healthz-addr", "127.0.0.1:10256", "--metrics-addr", "127.0.0.1:9309", "--log-level", "debug")
	t.Cleanup(func() {
		if out, err := tp.Run(tp.Node, bin, "--cleanup"); err != nil {
			t.Errorf("nodeproxy --cleanup: %v %s", err, out)
		}
	})
	for _, p := range []*netnstest.Pod{a1, b1, b2} {
		tp.WaitHTTP(tp.Node, fmt.Sprintf("http://%s:8080%s", p.IP, netnstest.HealthzPath), 20*time.Second)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := tp.Run(tp.Node, "nft", "list", "table", "inet", DefaultTable)
		if strings.Contains(out, "198.18.0.60 . tcp . 80") {
			break
		}
		if time.Now().After(deadline) || e.proxy.Exited() {
			t.Fatalf("rules not written (nodeproxy exited: %v):\n%s\n%s", e.proxy.Exited(), out, e.proxy.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return e
}

// gets makes n requests to url from namespace ns and returns the answering
// backends with how often each answered, and the client addresses seen.
func (e *pathEnv) gets(t *testing.T, ns, url string, n int) (backends map[string]int, clients []string) {
	t.Helper()
	backends = map[string]int{}
	for _, a := range e.topo.HTTPGetsWho(ns, url, n) {
		if a.Err != "" {
			t.Errorf("GET %s from %s: %s", url, ns, a.Err)
			continue
		}
		backends[a.Backend]++
		if !slices.Contains(clients, a.Client) {
			clients = append(clients, a.Client)
		}
	}
	t.Logf("%d GETs of %s from %s: backends %v, client addresses seen %v", n, url, ns, backends, clients)
	return backends, clients
}

// expect checks that exactly the backends in want answered (each at least
// once) and that every answer saw the client address client.
func (e *pathEnv) expect(t *testing.T, ns, url string, want []string, client string) {
	t.Helper()
	got, clients := e.gets(t, ns, url, 40)
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("%s from %s answered by %v, want exactly %v", url, ns, got, want)
	}
	if client != "" && !slices.Equal(clients, []string{client}) {
		t.Errorf("%s from %s: backends saw client addresses %v, want only %s", url, ns, clients, client)
	}
}

// curlFails checks that a connection to url from ns fails with curl exit
// code want: 7 refused (rejected), 28 timed out (dropped).
func (e *pathEnv) curlFails(t *testing.T, ns, url string, want int) {
	t.Helper()
	out, err := e.topo.Run(ns, "curl", "-sS", "--max-time", "1", url)
	if code := exitCode(err); code != want {
		t.Errorf("curl %s from %s: exit %d (%v) %q, want %d", url, ns, code, err, out, want)
	}
}

func url(addr string, port int) string {
	a := netip.MustParseAddr(addr)
	return "http://" + netip.AddrPortFrom(a, uint16(port)).String() + netnstest.HealthzPath
}

// TestE2ETrafficPaths drives real traffic through every path of issue 16
// and checks who answered and which source address the backend saw.
func TestE2ETrafficPaths(t *testing.T) {
	e := startPaths(t)
	tp := e.topo
	ext, ext2, client, node := e.ext.NS, e.ext2.NS, e.client.NS, tp.Node
	both := []string{"a1", "b1"}

	t.Run("LoadBalancer IP, policy Cluster: every endpoint, masqueraded", func(t *testing.T) {
		e.expect(t, ext, url("198.18.0.10", 80), both, pathMasqAddr)
	})
	t.Run("LoadBalancer source ranges drop other clients", func(t *testing.T) {
		e.curlFails(t, ext2, url("198.18.0.10", 80), 28)
	})
	t.Run("LoadBalancer ingress with ipMode Proxy is left alone", func(t *testing.T) {
		e.curlFails(t, ext, url("198.18.0.11", 80), 28)
		if rs, _ := tp.Run(node, "nft", "list", "table", "inet", DefaultTable); strings.Contains(rs, "198.18.0.11") {
			t.Errorf("rules mention the Proxy-mode ingress:\n%s", rs)
		}
	})
	t.Run("LoadBalancer IPv6", func(t *testing.T) {
		got, clients := e.gets(t, ext, url("fd00:18::10", 80), 20)
		if got["a1"]+got["b1"] != 20 {
			t.Errorf("answers %v", got)
		}
		if slices.Contains(clients, pathExt6.String()) {
			t.Errorf("policy Cluster over IPv6 not masqueraded: backends saw %v", clients)
		}
	})
	t.Run("externalIP from outside and from the node", func(t *testing.T) {
		e.expect(t, ext, url("198.18.0.50", 80), both, pathMasqAddr)
		e.expect(t, node, url("198.18.0.50", 80), both, pathMasqAddr)
		got, _ := e.gets(t, ext, url("fd00:18::50", 80), 10)
		if got["a1"]+got["b1"] != 10 {
			t.Errorf("IPv6 externalIP answers %v", got)
		}
	})
	t.Run("IPv6 ClusterIP and NodePort", func(t *testing.T) {
		e.expect(t, client, url("fd00:96::10", 80), both, pathClient6.String())
		e.expect(t, ext, url(pathNodeIP6.String(), 30031), both, "")
	})
	t.Run("externalTrafficPolicy Local: this node's endpoint, client address kept", func(t *testing.T) {
		e.expect(t, ext, url("198.18.0.20", 80), []string{"a1"}, pathExt.String())
		e.expect(t, ext, url(pathNodeIP.String(), 30011), []string{"a1"}, pathExt.String())
		e.expect(t, ext, url("198.18.0.51", 80), []string{"a1"}, pathExt.String())
	})
	t.Run("externalTrafficPolicy Local: pods and the node use every endpoint", func(t *testing.T) {
		e.expect(t, client, url("198.18.0.20", 80), both, pathClient.String())
		e.expect(t, node, url("198.18.0.51", 80), both, pathMasqAddr)
	})
	t.Run("externalTrafficPolicy Local without a local endpoint drops", func(t *testing.T) {
		e.curlFails(t, ext, url("198.18.0.30", 80), 28)
		e.curlFails(t, ext, url(pathNodeIP.String(), 30021), 28)
		e.expect(t, client, url("198.18.0.30", 80), []string{"b1"}, pathClient.String())
	})
	t.Run("health-check node ports", func(t *testing.T) {
		check := func(port, wantCode, wantLocal int, name string) {
			out, err := tp.Run(ext, "curl", "-sS", "--max-time", "2", "-w", "\n%{http_code}", fmt.Sprintf("http://%s:%d/", pathNodeIP, port))
			if err != nil {
				t.Fatalf("health check %d: %v", port, err)
			}
			i := strings.LastIndex(out, "\n")
			body, code := out[:max(i, 0)], out[i+1:]
			var h struct {
				Service             struct{ Namespace, Name string }
				LocalEndpoints      int  `json:"localEndpoints"`
				ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
			}
			if err := json.Unmarshal([]byte(body), &h); err != nil {
				t.Fatalf("health check %d: %v in %q", port, err, out)
			}
			if code != fmt.Sprint(wantCode) || h.Service.Namespace != "apps" || h.Service.Name != name ||
				h.LocalEndpoints != wantLocal || !h.ServiceProxyHealthy {
				t.Errorf("health check %d: %s %+v, want %d for apps/%s with %d local endpoints", port, code, h, wantCode, name, wantLocal)
			}
			t.Logf("health check %d: %s %s", port, code, strings.Join(strings.Fields(body), " "))
		}
		check(30012, 200, 1, "local-lb")
		check(30022, 503, 0, "local-none")
	})
	t.Run("internalTrafficPolicy Local", func(t *testing.T) {
		e.expect(t, client, url("10.96.0.40", 80), []string{"a1"}, pathClient.String())
		e.curlFails(t, client, url("10.96.0.41", 80), 28)
	})
	t.Run("terminating endpoints when none is ready", func(t *testing.T) {
		e.expect(t, client, url("10.96.0.50", 80), []string{"a1"}, pathClient.String())
		e.expect(t, ext, url("198.18.0.60", 80), []string{"a1"}, pathExt.String())
	})
	t.Run("topology: zone hints", func(t *testing.T) {
		e.expect(t, client, url("10.96.0.70", 80), []string{"a1", "b2"}, pathClient.String())
		e.expect(t, client, url("10.96.0.71", 80), both, pathClient.String())
	})
	t.Run("SCTP ClusterIP", func(t *testing.T) {
		if rs, _ := tp.Run(node, "nft", "list", "map", "inet", DefaultTable, "endpoints-v4-sctp"); !strings.Contains(rs, "10.96.0.80 . 3868 . 0 : 10.244.1.10 . 3868") {
			t.Errorf("no SCTP endpoint rule:\n%s", rs)
		}
		if ok, why := netnstest.SCTPSupported(); !ok {
			t.Skipf("SCTP traffic not tried: %s (its rules are checked above)", why)
		}
		got, err := tp.SCTPAsk(e.client, "10.96.0.80:3868")
		if err != nil || got != "a1" {
			t.Errorf("SCTP through the ClusterIP: %q %v, want a1", got, err)
		}
	})
	t.Run("--nodeport-addresses", func(t *testing.T) {
		e.expect(t, ext, url(pathNodeIP.String(), 30031), both, "")
		e.curlFails(t, ext, url(pathNodeIP2.String(), 30031), 7)
	})
	t.Run("healthz, livez and kube-proxy metrics", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/livez"} {
			out, err := tp.Run(node, "curl", "-sS", "-w", " %{http_code}", "http://127.0.0.1:10256"+path)
			if err != nil || !strings.HasSuffix(out, " 200") || !strings.Contains(out, `"lastUpdated"`) {
				t.Errorf("%s: %v %q", path, err, out)
			}
		}
		out, err := tp.Run(node, "curl", "-sf", "http://127.0.0.1:9309/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{
			"kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.001\"}",
			"kubeproxy_sync_full_proxy_rules_duration_seconds_count",
			"kubeproxy_sync_partial_proxy_rules_duration_seconds_bucket",
			"kubeproxy_sync_proxy_rules_last_timestamp_seconds",
			"kubeproxy_network_programming_duration_seconds_bucket{le=\"0.25\"}",
			"kubeproxy_sync_proxy_rules_endpoint_changes_total",
			"kubeproxy_sync_proxy_rules_service_changes_total",
			"kubeproxy_sync_proxy_rules_nftables_sync_failures_total 0",
		} {
			if !strings.Contains(out, m) {
				t.Errorf("metrics lack %s", m)
			}
		}
	})
	t.Run("skipped entries are logged", func(t *testing.T) {
		out := e.proxy.Output()
		for _, want := range []string{`loadBalancerSourceRanges: \"nonsense\" is not a CIDR`, `ingress: \"nonsense\" is not an IP address`} {
			if !strings.Contains(out, want) {
				t.Errorf("nodeproxy log lacks %s", want)
			}
		}
	})
}
