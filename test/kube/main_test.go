// Package kube holds the integration tests and benchmarks of clusterdns
// against a real kube-apiserver (internal/testenv): the built binary,
// started with --kubeconfig, queried with real dig, while the tests write
// Services, EndpointSlices, Namespaces and Pods with client-go.
//
// The tests skip when the apiserver binaries are missing (they fail under
// CI=true); build them with `bash test/apiserver/build.sh`. The benchmarks
// run only with CLUSTERDNS_BENCH=1 (see bench_test.go).
package kube

import (
	"context"
	"flag"
	"fmt"
	"github.com/clusterdns/clusterdns/internal/testbin"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testenv"
)

var (
	buildOnce sync.Once
	cleanBin  func() // removes the binary's folder; called by TestMain
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Start building the server while the first API server starts: the
	// build is the slowest step on a busy machine. Not when the tests will
	// skip for lack of an API server.
	if _, err := testenv.Binary("kube-apiserver"); err == nil && !testing.Short() {
		go buildOnce.Do(buildServer)
	}
	code := m.Run()
	buildOnce.Do(func() {}) // waits for a build still running
	if cleanBin != nil {
		cleanBin()
	}
	os.Exit(code)
}

// serverBinary builds ./cmd/clusterdns once per test binary (lazily, so
// that tests skipped for lack of an apiserver cost nothing) and returns its
// path.
func serverBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(buildServer)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// buildServer builds ./cmd/clusterdns into a temporary folder (buildOnce).
func buildServer() {
	root, err := testbin.RepoRoot()
	if err != nil {
		buildErr = err
		return
	}
	binPath, cleanBin, buildErr = testbin.BuildServer(root, "clusterdns-kube-bin-")
}

// repoRoot is the module's root folder.
func repoRoot() (string, error) { return testbin.RepoRoot() }

// requireDig skips (or fails under CI=true) when dig is missing.
func requireDig(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("dig"); err != nil {
		msg := "dig not found in PATH: install dnsutils (bind9-dnsutils)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// dualStackArgs make the apiserver allocate ClusterIPs of both families.
var dualStackArgs = []string{"--service-cluster-ip-range=" + testenv.ServiceCIDR + ",fd00:10:96::/112"}

// startAPI starts etcd and kube-apiserver for the test (skipping when the
// binaries are missing) and requires dig.
func startAPI(t *testing.T, extraArgs ...string) *testenv.APIServer {
	t.Helper()
	requireDig(t)
	return testenv.StartAPIServerWithOptions(t, testenv.Options{ExtraArgs: extraArgs})
}

// ---- the server under test --------------------------------------------------

// server is a running clusterdns binary.
type server struct {
	t      testing.TB
	port   int
	health string // http://127.0.0.1:<port>
	*testbin.Process
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// kubeArgs is the command line of a server reading the API server's
// kubeconfig, with forwarding off so that no query leaves loopback.
func kubeArgs(api *testenv.APIServer, extra ...string) []string {
	return append([]string{"--source", "kubernetes", "--kubeconfig", api.Kubeconfig}, extra...)
}

// startServer starts clusterdns with args plus a free DNS port, a free
// health port, forwarding off and debug logs, and waits until it answers
// DNS (SERVFAIL counts: it is up). It is stopped when the test ends, and its
// log is printed when the test failed.
func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	return startServerBin(t, serverBinary(t), args...)
}

// startServerBin is startServer with another clusterdns binary (the scale
// benchmark compares this tree's with an older build).
func startServerBin(t testing.TB, bin string, args ...string) *server {
	t.Helper()
	for attempt := 0; ; attempt++ {
		s := &server{t: t, port: freeDNSPort(t)}
		hp := freeTCPPort(t)
		s.health = fmt.Sprintf("http://127.0.0.1:%d", hp)
		argv := append([]string{
			"--listen", s.addr(),
			"--health-listen", fmt.Sprintf("127.0.0.1:%d", hp),
			"--upstreams=",
			"--log-level", "debug",
		}, args...)
		p, err := testbin.StartProcess("", bin, argv, nil)
		if err != nil {
			t.Fatalf("start clusterdns: %v", err)
		}
		s.Process = p
		err = s.waitUp(20 * time.Second)
		if err == nil {
			t.Cleanup(func() {
				s.stop()
				if t.Failed() {
					t.Logf("clusterdns %s log:\n%s", strings.Join(argv, " "), tail(s.Out.String(), 200))
				}
			})
			return s
		}
		s.stop()
		if attempt < 2 && strings.Contains(s.Out.String(), "address already in use") {
			continue // a port was taken between freePort and the bind
		}
		t.Fatalf("clusterdns did not come up: %v\n%s", err, s.Out.String())
	}
}

// waitUp polls until the server answers a DNS query, whatever the rcode.
func (s *server) waitUp(timeout time.Duration) error {
	c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("cluster.local.", dns.TypeSOA)
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.Done():
			return fmt.Errorf("clusterdns exited")
		default:
		}
		if _, _, err := c.Exchange(m, s.addr()); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no DNS answer on %s within %v", s.addr(), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM, then SIGKILL after 5 s, and waits.
func (s *server) stop() { s.Stop(5 * time.Second) }

// ready returns the status code of GET /ready (0 when it cannot connect).
func (s *server) ready() int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(s.health + "/ready")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady polls /ready until 200.
func (s *server) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.ready() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("/ready not 200 within %v (last %d)", timeout, s.ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLog waits until the server's log contains substr.
func (s *server) waitLog(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(s.Out.String(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("log line %q not seen within %v", substr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeDNSPort returns a port free on 127.0.0.1 for both UDP and TCP.
var freeDNSPort = testbin.FreeDNSPort

func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ---- dig --------------------------------------------------------------------

// answer is dig's reply, parsed from its output.
type answer struct {
	raw        string
	status     string // NOERROR, NXDOMAIN, SERVFAIL, ...
	flags      []string
	answer     []dns.RR
	authority  []dns.RR
	additional []dns.RR
}

// rdata returns the answer section's data fields ("10.96.0.1",
// "0 100 80 web.ns.svc.cluster.local."), sorted.
func (a *answer) rdata() []string {
	var out []string
	for _, rr := range a.answer {
		out = append(out, rrData(rr))
	}
	slices.Sort(out)
	return out
}

func rrData(rr dns.RR) string {
	s := rr.String()
	h := rr.Header().String()
	return strings.TrimPrefix(s, h)
}

// digArgs are the options of every dig run: the whole message in text.
var digArgs = []string{"+time=2", "+tries=2", "+noall", "+comments", "+answer", "+authority", "+additional", "+nocookie"}

// dig asks s for name and type with real dig (UDP, with EDNS).
func (s *server) dig(t testing.TB, name, qtype string, extra ...string) *answer {
	t.Helper()
	a, err := s.digTry(name, qtype, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (s *server) digTry(name, qtype string, extra ...string) (*answer, error) {
	argv := append([]string{"@127.0.0.1", "-p", strconv.Itoa(s.port)}, digArgs...)
	argv = append(argv, extra...)
	argv = append(argv, name, qtype)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dig", argv...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	a, err := parseDig(string(out))
	if err != nil {
		return nil, fmt.Errorf("dig %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return a, nil
}

// digBatch asks s every query in one dig process (batch mode, -f), which
// costs far less than a process per query; the replies come in order. A
// query without a reply (dig gave up) is an error. dir holds the query file.
func (s *server) digBatch(dir string, qs []query) ([]*answer, error) {
	var lines []string
	for _, q := range qs {
		lines = append(lines, strings.Join(append([]string{q.name, q.qtype}, q.opts...), " "))
	}
	file, err := os.CreateTemp(dir, "queries-")
	if err != nil {
		return nil, err
	}
	defer file.Close()
	if _, err := file.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		return nil, err
	}
	argv := append([]string{"@127.0.0.1", "-p", strconv.Itoa(s.port)}, digArgs...)
	argv = append(argv, "-f", file.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dig", argv...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dig %s: %w\n%s", strings.Join(argv, " "), err, tail(string(out), 40))
	}
	parts := strings.Split(string(out), ";; Got answer:")
	if len(parts)-1 != len(qs) {
		return nil, fmt.Errorf("dig -f: %d replies for %d queries\n%s", len(parts)-1, len(qs), tail(string(out), 40))
	}
	var res []*answer
	for i, part := range parts[1:] {
		a, err := parseDig(";; Got answer:" + part)
		if err != nil {
			return nil, fmt.Errorf("reply %d (%s): %w", i, lines[i], err)
		}
		res = append(res, a)
	}
	return res, nil
}

func parseDig(out string) (*answer, error) {
	a := &answer{raw: out}
	var section *[]dns.RR
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			if i := strings.Index(line, "status: "); i >= 0 {
				a.status = strings.TrimSuffix(strings.Fields(line[i+len("status: "):])[0], ",")
			}
		case strings.HasPrefix(line, ";; flags:"):
			f, _, _ := strings.Cut(strings.TrimPrefix(line, ";; flags:"), ";")
			a.flags = strings.Fields(f)
		case strings.HasPrefix(line, ";; ANSWER SECTION"):
			section = &a.answer
		case strings.HasPrefix(line, ";; AUTHORITY SECTION"):
			section = &a.authority
		case strings.HasPrefix(line, ";; ADDITIONAL SECTION"):
			section = &a.additional
		case strings.HasPrefix(line, ";"):
			continue
		default:
			if section == nil {
				continue
			}
			rr, err := dns.NewRR(line)
			if err != nil {
				return nil, fmt.Errorf("record %q: %w", line, err)
			}
			if rr != nil {
				*section = append(*section, rr)
			}
		}
	}
	if a.status == "" {
		return nil, fmt.Errorf("no status in dig's output")
	}
	return a, nil
}

// waitDig polls s with dig until ok accepts the answer, for up to timeout;
// it fails the test with the last answer otherwise.
func (s *server) waitDig(t testing.TB, timeout time.Duration, name, qtype, what string, ok func(*answer) bool) *answer {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		a, err := s.digTry(name, qtype)
		if err == nil && ok(a) {
			return a
		}
		if time.Now().After(deadline) {
			last := "(no answer)"
			if a != nil {
				last = a.raw
			} else if err != nil {
				last = err.Error()
			}
			t.Fatalf("%s %s: not %s within %v; last reply:\n%s", name, qtype, what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// propagate is the deadline of a change to reach DNS: generous for a
// loaded 2-core machine (the benchmarks measure the real latency).
const propagate = 15 * time.Second

// waitData waits for a NOERROR answer whose data are want (any order).
func (s *server) waitData(t testing.TB, name, qtype string, want ...string) *answer {
	t.Helper()
	slices.Sort(want)
	return s.waitDig(t, propagate, name, qtype, fmt.Sprintf("NOERROR %v", want), func(a *answer) bool {
		return a.status == "NOERROR" && slices.Equal(a.rdata(), want)
	})
}

// waitStatus waits for an answer with that rcode and no answer records.
func (s *server) waitStatus(t testing.TB, name, qtype, status string) *answer {
	t.Helper()
	return s.waitDig(t, propagate, name, qtype, status+" without records", func(a *answer) bool {
		return a.status == status && len(a.answer) == 0
	})
}

// waitNoRecord waits for an answer without records, whatever its rcode: a
// reverse name clusterdns does not know goes to the fallback (REFUSED with
// forwarding off).
func (s *server) waitNoRecord(t testing.TB, name, qtype string) *answer {
	t.Helper()
	return s.waitDig(t, propagate, name, qtype, "without records", func(a *answer) bool {
		return len(a.answer) == 0
	})
}

// ---- small helpers ----------------------------------------------------------

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"[... earlier lines cut ...]"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
