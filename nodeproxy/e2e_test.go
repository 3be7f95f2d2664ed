package nodeproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/nodeproxy/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.RunRoleIfRequested()
	os.Exit(m.Run())
}

// E2E addresses: the pods' IPs, the services' ClusterIPs and the node's
// address. All of them exist only inside the test's namespaces.
var (
	e2eNodeIP   = netip.MustParseAddr("192.0.2.10")
	e2eGoIP     = netip.MustParseAddr("10.244.1.10")
	e2ePythonIP = netip.MustParseAddr("10.244.2.10")
	e2eNodeJSIP = netip.MustParseAddr("10.244.3.10")
	e2eClientIP = netip.MustParseAddr("10.244.9.9")
	// e2eDNSIP is an address of the node namespace itself (on lo),
	// the endpoint of kube-system/kube-dns, for a DNS server run there.
	e2eDNSIP = netip.MustParseAddr("10.244.0.2")
)

// The services of the end-to-end cluster.
const (
	e2eWebVIP    = "10.96.0.100" // apps/web: HTTP on 80 → 8080, NodePort 30080, three backends
	e2eEmptyVIP  = "10.96.0.102" // apps/empty: no endpoints
	e2eStickyVIP = "10.96.0.103" // apps/sticky: ClientIP affinity over the three backends
	e2eEchoVIP   = "10.96.0.53"  // apps/echo: UDP 53 → 5353, Go echo servers in two pods
	e2eDNSVIP    = "10.96.0.10"  // kube-system/kube-dns → e2eDNSIP:53
	e2eNodePort  = 30080
)

// E2ECluster is the cluster file the end-to-end test writes; its fields
// are what the tests change.
type E2ECluster struct {
	PythonReady bool     // the Python backend's ready condition in apps/web and apps/sticky
	EchoPods    []string // addresses of apps/echo's endpoints
}

func endpointYAML(ip netip.Addr, ready bool) string {
	return fmt.Sprintf("- addresses: [%s]\n  nodeName: node-a\n  conditions: {ready: %v, serving: %v, terminating: false}\n", ip, ready, ready)
}

// YAML renders the cluster as Kubernetes manifests.
func (c E2ECluster) YAML() string {
	var b strings.Builder
	svc := func(name, ns, spec string) {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec:\n%s", name, ns, spec)
	}
	slice := func(name, ns, svcName, ports string, eps ...string) {
		fmt.Fprintf(&b, "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s\n  namespace: %s\n  labels: {kubernetes.io/service-name: %s}\naddressType: IPv4\nports:\n%sendpoints:\n%s",
			name, ns, svcName, ports, strings.Join(eps, ""))
	}
	web := []string{endpointYAML(e2eGoIP, true), endpointYAML(e2ePythonIP, c.PythonReady), endpointYAML(e2eNodeJSIP, true)}
	httpPort := "- {name: http, protocol: TCP, port: 8080}\n"
	svc("web", "apps", "  type: NodePort\n  clusterIP: "+e2eWebVIP+"\n  ports:\n  - {name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080}\n")
	slice("web-1", "apps", "web", httpPort, web...)
	svc("empty", "apps", "  clusterIP: "+e2eEmptyVIP+"\n  ports:\n  - {name: http, protocol: TCP, port: 80}\n")
	svc("sticky", "apps", "  clusterIP: "+e2eStickyVIP+"\n  sessionAffinity: ClientIP\n  ports:\n  - {name: http, protocol: TCP, port: 80, targetPort: 8080}\n")
	slice("sticky-1", "apps", "sticky", httpPort, web...)
	svc("echo", "apps", "  clusterIP: "+e2eEchoVIP+"\n  ports:\n  - {name: echo, protocol: UDP, port: 53, targetPort: 5353}\n")
	var echo []string
	for _, ip := range c.EchoPods {
		echo = append(echo, endpointYAML(netip.MustParseAddr(ip), true))
	}
	if len(echo) > 0 {
		slice("echo-1", "apps", "echo", "- {name: echo, protocol: UDP, port: 5353}\n", echo...)
	}
	svc("kube-dns", "kube-system", "  clusterIP: "+e2eDNSVIP+"\n  ports:\n  - {name: dns, protocol: UDP, port: 53}\n  - {name: dns-tcp, protocol: TCP, port: 53}\n")
	slice("kube-dns-1", "kube-system", "kube-dns", "- {name: dns, protocol: UDP, port: 53}\n- {name: dns-tcp, protocol: TCP, port: 53}\n", endpointYAML(e2eDNSIP, true))
	return b.String()
}

// E2EEnv is a running node proxy in a node namespace with its pods: the
// reusable harness of the end-to-end tests (a DNS test can start a server
// in Topo.Node on E2EDNSIP and point Client's resolv.conf at the kube-dns
// ClusterIP).
type E2EEnv struct {
	Topo                       *netnstest.Topology
	Go, Python, NodeJS, Client *netnstest.Pod
	ZonesDir                   string // the folder nodeproxy watches
	Proxy                      *netnstest.Process
}

// WriteCluster replaces the cluster file atomically (rename), as an editor
// or a ConfigMap update would.
func (e *E2EEnv) WriteCluster(t testing.TB, c E2ECluster) {
	t.Helper()
	tmp := filepath.Join(e.ZonesDir, ".cluster.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(c.YAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.ZonesDir, "cluster.yaml")); err != nil {
		t.Fatal(err)
	}
}

// NFT runs nft inside the node namespace.
func (e *E2EEnv) NFT(t testing.TB, args ...string) string {
	t.Helper()
	out, err := e.Topo.Run(e.Topo.Node, "nft", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// StartClusterDNS builds cmd/clusterdns and runs it in the node namespace
// on the kube-dns endpoint (e2eDNSIP:53) over the same cluster files, and
// points the client pod's resolver at the kube-dns ClusterIP (search path
// of a pod in namespace apps, ndots:5) through /etc/netns/<ns>/resolv.conf.
// It skips when cmd/clusterdns does not build.
func (e *E2EEnv) StartClusterDNS(t *testing.T) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "clusterdns")
	if out, err := exec.Command(gobin, "build", "-o", bin, "github.com/clusterdns/clusterdns/cmd/clusterdns").CombinedOutput(); err != nil {
		t.Skipf("cmd/clusterdns does not build: %v\n%s", err, out)
	}
	e.Topo.Start(e.Topo.Node, nil, bin, "--listen", e2eDNSIP.String()+":53", "--zones-dir", e.ZonesDir, "--upstreams=")
	dir := filepath.Join("/etc/netns", e.Client.NS)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := "nameserver " + e2eDNSVIP + "\nsearch apps.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildNodeProxy builds cmd/nodeproxy once per test binary run.
func buildNodeProxy(t testing.TB) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "nodeproxy")
	out, err := exec.Command(gobin, "build", "-o", bin, "github.com/clusterdns/clusterdns/cmd/nodeproxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go build cmd/nodeproxy: %v\n%s", err, out)
	}
	return bin
}

// StartE2E builds the topology (node, Go/Python/Node.js backend pods, a
// client pod), starts the backends and nodeproxy over cluster, and waits
// until the rules are in. Skips without root, nft, curl, python3, node or
// conntrack (fails with CI=true).
func StartE2E(t *testing.T, cluster E2ECluster) *E2EEnv {
	t.Helper()
	netnstest.Require(t, "nft", "curl", "python3", "node", "conntrack")
	bin := buildNodeProxy(t)
	tp := netnstest.New(t, e2eNodeIP)
	tp.MustRun("ip", "-n", tp.Node, "addr", "add", e2eDNSIP.String()+"/32", "dev", "lo")
	// Unknown destinations are dropped silently, so that only the node
	// proxy's reject can make a connection fail fast.
	tp.MustRun("ip", "-n", tp.Node, "route", "add", "blackhole", "default")
	e := &E2EEnv{
		Topo:     tp,
		Go:       tp.AddPod("go", e2eGoIP),
		Python:   tp.AddPod("py", e2ePythonIP),
		NodeJS:   tp.AddPod("js", e2eNodeJSIP),
		Client:   tp.AddPod("client", e2eClientIP),
		ZonesDir: t.TempDir(),
	}
	tp.StartGoHTTP(e.Go, "go", 8080)
	tp.StartPythonHTTP(e.Python, "python", 8080)
	tp.StartNodeHTTP(e.NodeJS, "nodejs", 8080)
	tp.StartGoUDP(e.Go, "udp-go", 5353)
	tp.StartGoUDP(e.Python, "udp-py", 5353)
	e.WriteCluster(t, cluster)
	e.Proxy = tp.Start(tp.Node, nil, bin, "--zones-dir", e.ZonesDir, "--node-name", "node-a",
		"--metrics-addr", "127.0.0.1:9309", "--log-level", "debug")
	t.Cleanup(func() {
		// --cleanup must leave nothing behind.
		if out, err := tp.Run(tp.Node, bin, "--cleanup"); err != nil {
			t.Errorf("nodeproxy --cleanup: %v %s", err, out)
		}
		if out, _ := tp.Run(tp.Node, "nft", "list", "tables"); strings.Contains(out, DefaultTable) {
			t.Errorf("table left after --cleanup: %s", out)
		}
	})
	for _, p := range []*netnstest.Pod{e.Go, e.Python, e.NodeJS} {
		tp.WaitHTTP(tp.Node, fmt.Sprintf("http://%s:8080%s", p.IP, netnstest.HealthzPath), 20*time.Second)
	}
	e.waitFor(t, 10*time.Second, "rules for apps/web", func(ruleset string) bool {
		return strings.Contains(ruleset, e2eWebVIP+" . tcp . 80")
	})
	return e
}

// waitFor polls the node proxy's table until ok returns true, and returns
// how long that took.
func (e *E2EEnv) waitFor(t testing.TB, timeout time.Duration, what string, ok func(ruleset string) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		out, _ := e.Topo.Run(e.Topo.Node, "nft", "list", "table", "inet", DefaultTable)
		if ok(out) {
			return time.Since(start)
		}
		if time.Since(start) > timeout || e.Proxy.Exited() {
			t.Fatalf("%s: not in the rules after %v (nodeproxy exited: %v):\n%s\nnodeproxy output:\n%s",
				what, timeout, e.Proxy.Exited(), out, e.Proxy.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func count(lines []string) map[string]int {
	m := map[string]int{}
	for _, l := range lines {
		m[l]++
	}
	return m
}

func TestE2E(t *testing.T) {
	cluster := E2ECluster{PythonReady: true, EchoPods: []string{e2eGoIP.String(), e2ePythonIP.String()}}
	e := StartE2E(t, cluster)
	tp := e.Topo
	webURL := "http://" + e2eWebVIP + netnstest.HealthzPath

	t.Run("curl ClusterIP", func(t *testing.T) {
		out, err := tp.Run(e.Client.NS, "curl", "-sS", "--max-time", "5", webURL)
		if err != nil {
			t.Fatal(err)
		}
		var h netnstest.Healthz
		if err := json.Unmarshal([]byte(out), &h); err != nil || h.Status.Code != 0 || h.Status.Msg != "success" ||
			h.Data != "success" || h.Backend == "" {
			t.Errorf("unexpected answer %q (%v)", out, err)
		}
		t.Logf("curl %s: %s", webURL, out)
	})

	t.Run("fair balance over Go, Python and Node.js", func(t *testing.T) {
		got := count(tp.HTTPGets(e.Client, webURL, 300))
		chi2 := 0.0
		for _, b := range []string{"go", "python", "nodejs"} {
			d := float64(got[b]) - 100
			chi2 += d * d / 100
		}
		t.Logf("300 requests: %v, chi-square %.2f (df 2; p=0.001 critical value 13.82)", got, chi2)
		if got["go"]+got["python"]+got["nodejs"] != 300 {
			t.Errorf("not every request reached a backend: %v", got)
		}
		if chi2 > 13.82 {
			t.Errorf("unfair balance: %v (chi-square %.2f > 13.82)", got, chi2)
		}
	})

	t.Run("ClientIP affinity keeps one backend", func(t *testing.T) {
		got := count(tp.HTTPGets(e.Client, "http://"+e2eStickyVIP+netnstest.HealthzPath, 30))
		if len(got) != 1 {
			t.Errorf("affinity broken: %v", got)
		}
		t.Logf("30 requests with ClientIP affinity: %v", got)
	})

	t.Run("no endpoints refuses at once", func(t *testing.T) {
		start := time.Now()
		out, err := tp.Run(e.Client.NS, "curl", "-sS", "--max-time", "5", "http://"+e2eEmptyVIP+"/")
		took := time.Since(start)
		// curl exits 7 for a refused connection; with the node's blackhole
		// default route nothing but the reject can end it before --max-time.
		if code := exitCode(err); code != 7 {
			t.Errorf("curl to a service without endpoints: exit %d (%v) %q, want 7 (refused)", code, err, out)
		}
		if took > time.Second {
			t.Errorf("refusal took %v", took)
		}
		t.Logf("refused after %v: %s", took, strings.TrimSpace(out))
	})

	t.Run("NodePort from a pod", func(t *testing.T) {
		url := fmt.Sprintf("http://%s:%d%s", e2eNodeIP, e2eNodePort, netnstest.HealthzPath)
		got := count(tp.HTTPGets(e.Client, url, 30))
		if got["go"]+got["python"]+got["nodejs"] != 30 {
			t.Errorf("NodePort answers: %v", got)
		}
		t.Logf("30 requests to %s: %v", url, got)
	})

	t.Run("UDP service moves off a removed endpoint", func(t *testing.T) {
		addr, local := e2eEchoVIP+":53", ":40000"
		first, err := tp.UDPAsk(e.Client, addr, local)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 { // the conntrack entry keeps the flow on one backend
			if again, err := tp.UDPAsk(e.Client, addr, local); err != nil || again != first {
				t.Fatalf("UDP flow moved without a change: %q then %q (%v)", first, again, err)
			}
		}
		gone := e2eGoIP.String()
		if first == "udp-py" {
			gone = e2ePythonIP.String()
		}
		c := cluster
		c.EchoPods = []string{e2eGoIP.String(), e2ePythonIP.String()}
		c.EchoPods = slicesDelete(c.EchoPods, gone)
		e.WriteCluster(t, c)
		took := e.waitFor(t, 5*time.Second, "echo endpoint removal", func(rs string) bool {
			return strings.Contains(rs, e2eEchoVIP+" . udp . 53") && !strings.Contains(rs, e2eEchoVIP+" . 53 . 1")
		})
		var now string
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if now, err = tp.UDPAsk(e.Client, addr, local); err == nil && now != first {
				break
			}
		}
		if now == first {
			t.Errorf("UDP flow still answered by the removed endpoint (%s): stale conntrack entry", first)
		}
		t.Logf("removed %s (answered %q): rules changed after %v, now answered by %q", gone, first, took, now)
		e.WriteCluster(t, cluster)
	})

	t.Run("not-ready backend stops receiving within a second", func(t *testing.T) {
		c := cluster
		c.PythonReady = false
		written := time.Now()
		e.WriteCluster(t, c)
		took := e.waitFor(t, 5*time.Second, "python removal", func(rs string) bool {
			return !strings.Contains(rs, e2ePythonIP.String()+" . 8080")
		})
		t.Logf("python left the rules %v after the file was written", took)
		if took > time.Second {
			t.Errorf("not-ready backend still in the rules after %v", took)
		}
		time.Sleep(time.Until(written.Add(time.Second)))
		got := count(tp.HTTPGets(e.Client, webURL, 60))
		if got["python"] != 0 || got["go"]+got["nodejs"] != 60 {
			t.Errorf("after marking python not ready: %v", got)
		}
		t.Logf("60 requests one second after the change: %v", got)
		e.WriteCluster(t, cluster)
		e.waitFor(t, 5*time.Second, "python back", func(rs string) bool {
			return strings.Contains(rs, e2ePythonIP.String()+" . 8080")
		})
	})

	t.Run("curl by name through clusterdns", func(t *testing.T) {
		e.StartClusterDNS(t)
		url := "http://web" + netnstest.HealthzPath // web.apps.svc.cluster.local via the search path
		var out string
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if out, err = tp.Run(e.Client.NS, "curl", "-sS", "--max-time", "3", url); err == nil {
				break
			}
		}
		if err != nil || !strings.Contains(out, `"data":"success"`) && !strings.Contains(out, `"data": "success"`) {
			t.Fatalf("curl %s from the client pod: %v %s", url, err, out)
		}
		t.Logf("curl %s: %s", url, out)
	})

	t.Run("metrics", func(t *testing.T) {
		out, err := tp.Run(tp.Node, "curl", "-sf", "http://127.0.0.1:9309/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"nodeproxy_sync_duration_seconds_bucket", "nodeproxy_sync_rules_written_bucket",
			"nodeproxy_pending_changes", "nodeproxy_last_sync_timestamp_seconds", `nodeproxy_syncs_total{kind="partial",result="ok"}`} {
			if !strings.Contains(out, m) {
				t.Errorf("metrics lack %s", m)
			}
		}
	})
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func slicesDelete(s []string, v string) []string {
	var out []string
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}
