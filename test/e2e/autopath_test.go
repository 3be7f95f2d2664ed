package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// podIP is the address of web-server-6d4cf56db6-abcde (namespace default)
// in the example cluster: the client of this test takes it, so the server
// knows which namespace the questions come from.
const podIP = "10.244.1.10"

var queryLine = regexp.MustCompile(`msg=query .*name=(\S+) type=(\S+)`)

// queriedNames returns the distinct names of the query log lines in out
// that are name itself or name followed by a search suffix: the log also
// holds the harness's readiness probes and the test's log marks.
func queriedNames(out, name string) []string {
	var names []string
	for _, m := range queryLine.FindAllStringSubmatch(out, -1) {
		n := strings.ToLower(m[1])
		if !strings.HasPrefix(n, name+".") || slices.Contains(names, n) {
			continue
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// logMark asks s, from inside netns ns, for a name of its own and waits
// until the server has logged it. The server logs each query before it
// answers and its log is one ordered stream, so every query answered
// before the mark is in the log once the mark is.
func logMark(t *testing.T, s *server, ns string, n int) {
	t.Helper()
	mark := fmt.Sprintf("log-mark-%d.invalid", n)
	if out, code, err := runCmd(30*time.Second, "ip", "netns", "exec", ns, "dig", "@"+s.host, "-p", strconv.Itoa(s.port),
		"+time=2", "+tries=1", mark, "TXT"); err != nil || code != 0 {
		t.Fatalf("dig %s in %s: exit %d, %v: %s", mark, ns, code, err, out)
	}
	eventually(t, 5*time.Second, "the log mark "+mark+" logged", func() (bool, string) {
		return strings.Contains(s.stderr(), "name="+mark), tail(s.stderr(), 2<<10)
	})
}

// TestSearchPathCompletion resolves names outside the cluster through glibc
// with a pod's resolv.conf (ndots:5), from a pod's address, and counts the
// names that reach the server: with autopath off glibc walks its search
// path (4 names), with it on the first question is answered (1 name).
// One name is served by a zone file here; the other by an upstream server
// (a second clusterdns on 127.0.0.2:53 in the same namespace).
func TestSearchPathCompletion(t *testing.T) {
	requireTools(t, "dig", "ip", "getent")
	requireRoot(t)
	ns := newNetNS(t)
	if out, code, err := runCmd(30*time.Second, "ip", "netns", "exec", ns, "ip", "addr", "add", podIP+"/32", "dev", "lo"); err != nil || code != 0 {
		t.Fatalf("add %s in %s: exit %d %v %s", podIP, ns, code, err, out)
	}
	resolv := strings.Replace(podResolvConf, "nameserver 127.0.0.1", "nameserver "+podIP, 1)
	if err := os.WriteFile(filepath.Join("/etc/netns", ns, "resolv.conf"), []byte(resolv), 0o644); err != nil {
		t.Fatal(err)
	}

	// The upstream: a zone upstream.test only.
	upDir := t.TempDir()
	zone := "$ORIGIN upstream.test.\n@ 60 IN SOA ns h 1 2 3 4 60\nwww 60 IN A 192.0.2.77\n"
	if err := os.WriteFile(filepath.Join(upDir, "upstream.test.zone"), []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	launch(t, launchOpts{dir: upDir, netns: ns, host: "127.0.0.2", args: func(port int) ([]string, []string) {
		return []string{"--listen", "127.0.0.2:53", noForwarding, "--zones-dir", upDir, "--log-level", "warn"}, nil
	}})

	marks := 0
	for _, autopath := range []bool{false, true} {
		dir := copyZones(t)
		s := launch(t, launchOpts{dir: dir, netns: ns, host: podIP, args: func(port int) ([]string, []string) {
			args := []string{"--listen", podIP + ":53", "--upstreams", "127.0.0.2:53", "--zones-dir", dir,
				"--query-log", "--log-level", "info"}
			if autopath {
				args = append(args, "--autopath")
			}
			return args, nil
		}})
		for _, c := range []struct{ name, addr string }{
			{"www.example.test", "127.0.0.80"},  // a zone file of this server
			{"www.upstream.test", "192.0.2.77"}, // forwarded
		} {
			off := s.logOffset()
			lines := getent(t, ns, "ahostsv4", c.name)
			if len(lines) == 0 || strings.Fields(lines[0])[0] != c.addr {
				t.Fatalf("autopath=%v: getent ahostsv4 %s: %q, want %s", autopath, c.name, lines, c.addr)
			}
			marks++
			logMark(t, s, ns, marks)
			names := queriedNames(s.logSince(off), c.name)
			t.Logf("autopath=%v getent ahostsv4 %s: names asked %q", autopath, c.name, names)
			if autopath && len(names) != 1 {
				t.Errorf("autopath on: %d names reached the server for %s, want 1: %q", len(names), c.name, names)
			}
			if !autopath && len(names) < 4 {
				t.Errorf("autopath off: %d names reached the server for %s, want the whole search (4): %q", len(names), c.name, names)
			}
		}
		s.Stop(0)
	}
}
