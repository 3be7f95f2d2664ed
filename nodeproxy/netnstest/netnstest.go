// Package netnstest builds throw-away network topologies for end-to-end
// tests of the node proxy (and of anything that needs pods behind a node):
// a "node" network namespace that routes, and "pod" namespaces connected to
// it by veth pairs, point to point (each pod's default route goes via
// 169.254.1.1 on the node side of its veth, Calico style). Everything it
// creates is removed in t.Cleanup. It needs root and the ip tool; tests
// call Require first, which skips (or fails with CI=true) without them.
//
// Processes run inside a namespace through `ip netns exec`; Start keeps
// them running until the test ends. Backend helpers start the HTTP
// backends in Go (the test binary itself, see RunRoleIfRequested), Python
// and Node.js, each answering GET /api/v1/healthz with
// {"status":{"code":0,"msg":"success"},"data":"success","backend":NAME}.
package netnstest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/internal/testbin"
)

// GatewayIP is the node-side address of every pod's veth: the pods'
// default gateway.
var GatewayIP = netip.MustParseAddr("169.254.1.1")

var counter atomic.Int32

// Require skips t unless it runs as root with the given tools on PATH
// (ip always); with CI=true it fails instead.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("end-to-end test needs %s (CI=true: failing instead of skipping)", strings.Join(missing, ", "))
	}
	t.Skipf("end-to-end test needs %s", strings.Join(missing, ", "))
}

// Topology is one node namespace and its pods.
type Topology struct {
	t      testing.TB
	prefix string
	// Node is the name of the node's network namespace.
	Node string
	// NodeIP is the node's own address (a /32 on its lo), where
	// NodePorts are reached from the pods.
	NodeIP netip.Addr
	pods   int
}

// Pod is a namespace routed through the node.
type Pod struct {
	Name string     // the test's name for it
	NS   string     // its network namespace
	IP   netip.Addr // its address (a /32 on eth0)
	IP6  netip.Addr // its IPv6 address (a /128 on eth0) after AddIPv6
	host string     // the node's end of its veth
}

// GatewayIP6 is the node-side link-local address of every pod's veth once
// the pod has an IPv6 address: its IPv6 default gateway.
var GatewayIP6 = netip.MustParseAddr("fe80::1")

// EnableIPv6 turns on IPv6 forwarding in the node and adds ip (a /128 on
// its lo) as the node's IPv6 address.
func (tp *Topology) EnableIPv6(ip netip.Addr) {
	tp.t.Helper()
	tp.MustRun("ip", "netns", "exec", tp.Node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	tp.MustRun("ip", "-n", tp.Node, "addr", "add", ip.String()+"/128", "dev", "lo")
}

// AddSink gives the node default routes (IPv4 and IPv6) into a namespace
// that neither answers nor forwards: packets to unknown destinations
// leave and vanish, as on a node whose uplink drops them, while the node
// can still open connections to any address (needed for node-originated
// traffic that the proxy's output rules DNAT).
func (tp *Topology) AddSink() {
	tp.t.Helper()
	p := tp.AddPod("sink", netip.MustParseAddr("192.0.0.254"))
	tp.MustRun("ip", "-n", tp.Node, "route", "add", "default", "dev", p.host)
	tp.MustRun("ip", "-n", tp.Node, "-6", "route", "add", "default", "dev", p.host)
}

// AddIPv6 gives pod p the IPv6 address ip, routed through the node like
// its IPv4 one (default route via fe80::1 on the node's end of the veth).
// Call EnableIPv6 first.
func (tp *Topology) AddIPv6(p *Pod, ip netip.Addr) {
	tp.t.Helper()
	p.IP6 = ip
	tp.MustRun("ip", "-n", tp.Node, "addr", "add", GatewayIP6.String()+"/64", "dev", p.host, "nodad")
	tp.MustRun("ip", "-n", tp.Node, "route", "add", ip.String()+"/128", "dev", p.host)
	tp.MustRun("ip", "-n", p.NS, "addr", "add", ip.String()+"/128", "dev", "eth0", "nodad")
	tp.MustRun("ip", "-n", p.NS, "-6", "route", "add", "default", "via", GatewayIP6.String(), "dev", "eth0")
}

// New creates the node namespace (forwarding on, rp_filter off, lo up,
// nodeIP on lo). Names are unique per process and call.
func New(t testing.TB, nodeIP netip.Addr) *Topology {
	t.Helper()
	tp := &Topology{t: t, prefix: fmt.Sprintf("npt%d-%d", os.Getpid(), counter.Add(1)), NodeIP: nodeIP}
	tp.Node = tp.prefix + "-node"
	tp.addNetns(tp.Node)
	tp.MustRun("ip", "-n", tp.Node, "link", "set", "lo", "up")
	tp.MustRun("ip", "-n", tp.Node, "addr", "add", nodeIP.String()+"/32", "dev", "lo")
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"} {
		tp.MustRun("ip", "netns", "exec", tp.Node, "sysctl", "-qw", kv)
	}
	return tp
}

func (tp *Topology) addNetns(name string) {
	tp.MustRun("ip", "netns", "add", name)
	tp.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tp.t.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
}

// AddPod creates a pod namespace with address ip, connected to the node.
func (tp *Topology) AddPod(name string, ip netip.Addr) *Pod {
	tp.t.Helper()
	tp.pods++
	host := fmt.Sprintf("vp%d", tp.pods)
	p := &Pod{Name: name, NS: fmt.Sprintf("%s-%s", tp.prefix, name), IP: ip, host: host}
	tp.addNetns(p.NS)
	gw := GatewayIP.String()
	tp.MustRun("ip", "-n", tp.Node, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", p.NS)
	tp.MustRun("ip", "-n", tp.Node, "addr", "add", gw+"/32", "dev", host)
	tp.MustRun("ip", "-n", tp.Node, "link", "set", host, "up")
	tp.MustRun("ip", "-n", tp.Node, "route", "add", ip.String()+"/32", "dev", host)
	tp.MustRun("ip", "-n", p.NS, "link", "set", "lo", "up")
	tp.MustRun("ip", "-n", p.NS, "addr", "add", ip.String()+"/32", "dev", "eth0")
	tp.MustRun("ip", "-n", p.NS, "link", "set", "eth0", "up")
	tp.MustRun("ip", "-n", p.NS, "route", "add", gw, "dev", "eth0")
	tp.MustRun("ip", "-n", p.NS, "route", "add", "default", "via", gw, "dev", "eth0")
	return p
}

// Command returns a command that runs inside namespace ns.
func Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// Run runs a command inside ns and returns its combined output.
func (tp *Topology) Run(ns, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := Command(ctx, ns, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), ns, err, out)
	}
	return string(out), nil
}

// MustRun runs a command (in the caller's namespace) and fails the test
// on error.
func (tp *Topology) MustRun(name string, args ...string) string {
	tp.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tp.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Process is a command started by Start.
type Process struct {
	Cmd  *exec.Cmd
	out  *testbin.LogBuffer
	done chan struct{}
}

// Output returns what the process wrote so far (stdout and stderr).
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start starts a long-running command inside ns; it is killed (with its
// process group) when the test ends, and its output logged if the test
// failed.
func (tp *Topology) Start(ns string, env []string, name string, args ...string) *Process {
	tp.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := Command(ctx, ns, name, args...)
	cmd.Env = append(os.Environ(), env...)
	w := &testbin.LogBuffer{}
	p := &Process{Cmd: cmd, out: w, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		cancel()
		tp.t.Fatalf("start %s in %s: %v", name, ns, err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	tp.t.Cleanup(func() {
		cancel()
		<-p.done
		if tp.t.Failed() {
			tp.t.Logf("output of %s %s in %s:\n%s", filepath.Base(name), strings.Join(args, " "), ns, w.String())
		}
	})
	return p
}

// WaitHTTP polls url from namespace ns with curl until it answers 200 or
// the timeout passes.
func (tp *Topology) WaitHTTP(ns, url string, timeout time.Duration) {
	tp.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := tp.Run(ns, "curl", "-sf", "--max-time", "1", url)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tp.t.Fatalf("%s not answering from %s after %v: %v %s", url, ns, timeout, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
