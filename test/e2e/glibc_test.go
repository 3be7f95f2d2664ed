package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// getentTimeout bounds one getent run: glibc waits 5 s per try by default.
const getentTimeout = 60 * time.Second

// podResolvConf is what the kubelet writes for a pod in namespace default.
const podResolvConf = `nameserver 127.0.0.1
search default.svc.cluster.local svc.cluster.local cluster.local
options ndots:5
`

// nsswitchHosts returns the hosts line of /etc/nsswitch.conf (without
// "hosts:"), or "" when there is none.
func nsswitchHosts(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/etc/nsswitch.conf")
	if err != nil {
		t.Logf("no /etc/nsswitch.conf (%v): glibc's default is hosts: dns files", err)
		return "dns files"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		if f := strings.Fields(l); len(f) > 0 && f[0] == "hosts:" {
			return strings.Join(f[1:], " ")
		}
	}
	return ""
}

// newNetNS creates a network namespace with lo up and a pod's resolv.conf
// in /etc/netns/<name>/, and removes both when the test ends.
func newNetNS(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	ns := "cdns-e2e-" + hex.EncodeToString(b)
	if out, code, err := runCmd(30*time.Second, "ip", "netns", "add", ns); err != nil || code != 0 {
		skipOrFail(t, "cannot create a network namespace (ip netns add %s: exit %d, %v): %s", ns, code, err, out)
	}
	t.Cleanup(func() {
		if out, code, err := runCmd(30*time.Second, "ip", "netns", "del", ns); err != nil || code != 0 {
			t.Errorf("ip netns del %s: exit %d, %v: %s", ns, code, err, out)
		}
	})
	if out, code, err := runCmd(30*time.Second, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"); err != nil || code != 0 {
		t.Fatalf("lo up in %s: exit %d, %v: %s", ns, code, err, out)
	}
	// ip netns exec bind-mounts /etc/netns/<ns>/* over /etc/*.
	etc := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(etc); err != nil {
			t.Errorf("remove %s: %v", etc, err)
		}
	})
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte(podResolvConf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code, err := runCmd(30*time.Second, "ip", "netns", "exec", ns, "cat", "/etc/resolv.conf")
	if err != nil || code != 0 || out != podResolvConf {
		t.Fatalf("resolv.conf inside %s is not the pod's (exit %d, %v):\n%s", ns, code, err, out)
	}
	return ns
}

// getent runs getent inside ns and returns its output lines; a failed
// lookup fails the test.
func getent(t *testing.T, ns string, args ...string) []string {
	t.Helper()
	out, code, err := runCmd(getentTimeout, "ip", append([]string{"netns", "exec", ns, "getent"}, args...)...)
	if err != nil || code != 0 {
		t.Fatalf("getent %s (in %s with a pod's resolv.conf): exit %d, %v\n%s", strings.Join(args, " "), ns, code, err, out)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// ahostsAddrs returns the distinct addresses of getent ahosts output and the
// canonical name (third field of the first line).
func ahostsAddrs(lines []string) (addrs []string, canon string) {
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if !slices.Contains(addrs, f[0]) {
			addrs = append(addrs, f[0])
		}
		if i == 0 && len(f) >= 3 {
			canon = f[2]
		}
	}
	slices.Sort(addrs)
	return addrs, canon
}

// TestGlibcResolver resolves cluster names the way a pod does: glibc's stub
// resolver with the kubelet's resolv.conf (search path, ndots:5) against the
// server on 127.0.0.1:53 inside a network namespace of the test's own.
func TestGlibcResolver(t *testing.T) {
	requireTools(t, "dig", "ip", "getent")
	requireRoot(t)
	hosts := nsswitchHosts(t)
	t.Logf("/etc/nsswitch.conf hosts: %s", hosts)
	if !slices.Contains(strings.Fields(hosts), "dns") {
		skipOrFail(t, "/etc/nsswitch.conf has no dns source on its hosts line (%q): glibc would not ask the server", hosts)
	}
	for _, p := range []string{"myhostname", "mdns", "mdns4", "mdns4_minimal", "mdns_minimal", "resolve"} {
		for _, f := range strings.Fields(hosts) {
			if f == p {
				t.Logf("note: nsswitch hosts has %s, which may answer or shadow names before dns", p)
			}
		}
	}

	ns := newNetNS(t)
	dir := copyZones(t)
	s := launch(t, launchOpts{dir: dir, netns: ns, args: func(port int) ([]string, []string) {
		return standardArgs(dir, port), nil
	}})

	t.Run("ahosts-short-name", func(t *testing.T) {
		// 0 dots < ndots:5: the first search domain completes it.
		addrs, canon := ahostsAddrs(getent(t, ns, "ahosts", "web-server-service"))
		if !slices.Equal(addrs, []string{"10.96.0.100"}) {
			t.Errorf("getent ahosts web-server-service: addresses %q, want [10.96.0.100]", addrs)
		}
		if canon != strings.TrimSuffix(webFQDN, ".") {
			t.Errorf("getent ahosts web-server-service: canonical name %q, want %s", canon, strings.TrimSuffix(webFQDN, "."))
		}
	})
	t.Run("ahosts-fqdn-without-dot", func(t *testing.T) {
		// 4 dots < ndots:5: three search-path NXDOMAINs first, then as is.
		addrs, _ := ahostsAddrs(getent(t, ns, "ahosts", "web-server-service.default.svc.cluster.local"))
		if !slices.Equal(addrs, []string{"10.96.0.100"}) {
			t.Errorf("getent ahosts web-server-service.default.svc.cluster.local: addresses %q, want [10.96.0.100]", addrs)
		}
	})
	t.Run("hosts-via-search-path", func(t *testing.T) {
		// cassandra-0.cassandra.data.default.svc.cluster.local is NXDOMAIN,
		// cassandra-0.cassandra.data.svc.cluster.local answers.
		lines := getent(t, ns, "hosts", "cassandra-0.cassandra.data")
		if len(lines) != 1 {
			t.Fatalf("getent hosts cassandra-0.cassandra.data: %q, want one line", lines)
		}
		f := strings.Fields(lines[0])
		if len(f) < 2 || f[0] != "10.244.1.20" || f[1] != "cassandra-0.cassandra.data.svc.cluster.local" {
			t.Errorf("getent hosts cassandra-0.cassandra.data: %q, want 10.244.1.20 cassandra-0.cassandra.data.svc.cluster.local", lines[0])
		}
	})
	t.Run("ahosts-dual-stack", func(t *testing.T) {
		// A and AAAA asked in parallel over one socket; both families back.
		addrs, _ := ahostsAddrs(getent(t, ns, "ahosts", "dual.apps"))
		if want := []string{"10.96.0.50", "fd00:10:96::50"}; !slices.Equal(addrs, want) {
			t.Errorf("getent ahosts dual.apps: addresses %q, want %q", addrs, want)
		}
	})
	t.Run("unknown-name-not-found", func(t *testing.T) {
		// NXDOMAIN through the whole search path, then REFUSED for the
		// bare name: getent must report "not found" (exit 2), not hang.
		out, code, err := runCmd(getentTimeout, "ip", "netns", "exec", ns, "getent", "ahosts", "nothere")
		if err != nil || code != 2 {
			t.Errorf("getent ahosts nothere: exit %d, %v, want 2 (not found)\n%s", code, err, out)
		}
	})
	if t.Failed() {
		t.Logf("dig in the namespace for comparison:\n%s", s.dig(t, "web-server-service.default.svc.cluster.local", "A"))
	}
}
