package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testbin"
)

// clientEnv, when set, makes the test binary a one-shot DNS client (see
// clientMain): "net server name type [edns-size]".
const clientEnv = "FAULTS_DNS_CLIENT"

// clientMain asks one question and prints "rcode=R answers=N types=T
// size=S tc=0|1 ra=0|1 first=<first answer's data>"; exit status 1 when no
// response arrived.
func clientMain(spec string) int {
	f := strings.Fields(spec)
	if len(f) < 4 {
		fmt.Fprintln(os.Stderr, "want: net server name type [edns]")
		return 2
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(f[2]), dns.StringToType[f[3]])
	if len(f) > 4 {
		size, _ := strconv.Atoi(f[4])
		m.SetEdns0(uint16(size), false)
	}
	c := &dns.Client{Net: f[0], Timeout: 3 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, f[1])
	if err != nil || r == nil {
		fmt.Println("error:", err)
		return 1
	}
	wire, _ := r.Pack()
	var types []string
	for _, rr := range r.Answer {
		if t := dns.TypeToString[rr.Header().Rrtype]; !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	first := ""
	if len(r.Answer) > 0 {
		first = strings.ReplaceAll(strings.TrimPrefix(r.Answer[0].String(), r.Answer[0].Header().String()), " ", "_")
	}
	b := func(v bool) int {
		if v {
			return 1
		}
		return 0
	}
	fmt.Printf("rcode=%s answers=%d types=%s size=%d tc=%d ra=%d first=%s\n", dns.RcodeToString[r.Rcode], len(r.Answer),
		strings.Join(types, ","), len(wire), b(r.Truncated), b(r.RecursionAvailable), first)
	return 0
}

// nsAsk runs the client inside netns and returns its fields.
func nsAsk(t *testing.T, netns, spec string) map[string]string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", netns, self)
	cmd.Env = append(testbin.CleanEnv(), clientEnv+"="+spec)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return map[string]string{"error": strings.TrimSpace(string(out)) + " " + err.Error()}
	}
	fields := map[string]string{}
	for _, kv := range strings.Fields(string(out)) {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	return fields
}

func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
}

// netnsPair makes two namespaces joined by a veth pair: the server side
// 198.51.100.1/24, the client side 198.51.100.2/24 (TEST-NET-2), both with
// loopback up. They are deleted when the test ends.
func netnsPair(t *testing.T) (srv, cli string) {
	t.Helper()
	id := os.Getpid() % 100000
	srv, cli = fmt.Sprintf("cdf-srv-%d", id), fmt.Sprintf("cdf-cli-%d", id)
	vs, vc := fmt.Sprintf("cdfs%d", id), fmt.Sprintf("cdfc%d", id)
	for _, ns := range []string{srv, cli} {
		if _, err := runCmd(10*time.Second, "ip", "netns", "add", ns); err != nil {
			t.Skipf("cannot create a network namespace: %v", err)
		}
		t.Cleanup(func() { runCmd(10*time.Second, "ip", "netns", "del", ns) })
	}
	steps := [][]string{
		{"ip", "link", "add", vs, "netns", srv, "type", "veth", "peer", "name", vc, "netns", cli},
		{"ip", "-n", srv, "addr", "add", "198.51.100.1/24", "dev", vs},
		{"ip", "-n", cli, "addr", "add", "198.51.100.2/24", "dev", vc},
		{"ip", "-n", srv, "link", "set", vs, "up"},
		{"ip", "-n", cli, "link", "set", vc, "up"},
		{"ip", "-n", srv, "link", "set", "lo", "up"},
		{"ip", "-n", cli, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if _, err := runCmd(10*time.Second, s[0], s[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	return srv, cli
}

// waitNS waits until a question asked inside netns is answered NOERROR.
func waitNS(t *testing.T, netns, spec string, p *proc) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if r := nsAsk(t, netns, spec); r["rcode"] == "NOERROR" && r["answers"] != "0" {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("clusterdns exited:\n%s", p.Out.String())
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("%q not answered in %s:\n%s", spec, netns, p.Out.String())
		}
	}
}

// Security defaults seen from a client outside loopback (198.51.100.2, in
// a namespace of its own, reaching the server over a veth pair): with
// recursion_from 127.0.0.0/8 its questions outside the served zones are
// REFUSED while the server's own loopback clients get them forwarded;
// cluster names are answered to everyone; ANY gets one RRset (RFC 8482);
// zone transfers are refused (transfer_from allows 127.0.0.0/8 only, and
// answers them NOTIMP); a query without EDNS never gets more than 512
// bytes back.
func TestACLsFromOutsideLoopback(t *testing.T) {
	requireNetns(t)
	srv, cli := netnsPair(t)
	base := t.TempDir()
	upDir, mainDir := filepath.Join(base, "up"), filepath.Join(base, "main")
	for _, d := range []string{upDir, mainDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	zone, _ := os.ReadFile(filepath.Join(repoRoot, "zones", "example.test.zone"))
	cluster, _ := os.ReadFile(filepath.Join(repoRoot, "zones", "cluster.yaml"))
	os.WriteFile(filepath.Join(upDir, "example.test.zone"), zone, 0o644)
	os.WriteFile(filepath.Join(mainDir, "cluster.yaml"), cluster, 0o644)

	// The upstream: a clusterdns serving example.test on the server
	// namespace's loopback.
	up := launch(t, srv, "127.0.0.1:5300", []string{"--listen", "127.0.0.1:5300", "--zones-dir", upDir, "--upstreams=",
		"--domains", "upstream.invalid", "--health-listen=", "--metrics-listen="})
	waitNS(t, srv, "udp 127.0.0.1:5300 www.example.test A", up)
	main := launch(t, srv, "0.0.0.0:53", []string{"--listen", "0.0.0.0:53", "--zones-dir", mainDir,
		"--upstreams", "127.0.0.1:5300", "--recursion-from", "127.0.0.0/8", "--transfer-from", "127.0.0.0/8",
		"--health-listen=", "--metrics-listen="})
	waitNS(t, srv, "udp 127.0.0.1:53 web-server-service.default.svc.cluster.local A", main)

	const server = "198.51.100.1:53"
	check := func(netns, spec string, want map[string]string) map[string]string {
		t.Helper()
		got := nsAsk(t, netns, spec)
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%s in %s: %s=%q, want %q (%v)", spec, netns, k, got[k], v, got)
			}
		}
		t.Logf("%-4s %-70s %v", netns[4:7], spec, got)
		return got
	}
	// Loopback inside the server's namespace: forwarded.
	check(srv, "udp 127.0.0.1:53 www.example.test A", map[string]string{"rcode": "NOERROR", "answers": "1", "first": "127.0.0.80"})
	// From outside: refused, for every transport.
	check(cli, "udp "+server+" www.example.test A", map[string]string{"rcode": "REFUSED", "answers": "0"})
	check(cli, "tcp "+server+" www.example.test A", map[string]string{"rcode": "REFUSED", "answers": "0"})
	check(cli, "udp "+server+" 1.2.0.192.in-addr.arpa PTR", map[string]string{"rcode": "REFUSED"})
	// Cluster names: answered.
	check(cli, "udp "+server+" web-server-service.default.svc.cluster.local A", map[string]string{"rcode": "NOERROR", "answers": "1", "first": "10.96.0.100"})
	check(cli, "udp "+server+" 100.0.96.10.in-addr.arpa PTR", map[string]string{"rcode": "NOERROR", "answers": "1"})
	check(cli, "udp "+server+" nothere.default.svc.cluster.local A", map[string]string{"rcode": "NXDOMAIN"})
	// ANY: one RRset.
	check(cli, "udp "+server+" web-server-service.default.svc.cluster.local ANY", map[string]string{"rcode": "NOERROR", "types": "A"})
	apex := check(cli, "udp "+server+" cluster.local ANY", map[string]string{"rcode": "NOERROR"})
	if strings.Contains(apex["types"], ",") {
		t.Fatalf("ANY at the apex answered with several RRsets: %v", apex)
	}
	check(cli, "udp "+server+" cassandra.data.svc.cluster.local ANY", map[string]string{"rcode": "NOERROR", "types": "A"})
	// Zone transfers: REFUSED outside transfer_from, NOTIMP inside.
	check(cli, "tcp "+server+" cluster.local AXFR", map[string]string{"rcode": "REFUSED", "answers": "0"})
	check(cli, "tcp "+server+" cluster.local IXFR", map[string]string{"rcode": "REFUSED", "answers": "0"})
	check(srv, "tcp 127.0.0.1:53 cluster.local AXFR", map[string]string{"rcode": "NOTIMP", "answers": "0"})
	// No amplification without EDNS, over the wire.
	for _, spec := range []string{"cassandra.data.svc.cluster.local ANY", "_cql._tcp.cassandra.data.svc.cluster.local SRV", "cluster.local NS", "www.example.test ANY"} {
		got := check(cli, "udp "+server+" "+spec, map[string]string{})
		if n, _ := strconv.Atoi(got["size"]); n == 0 || n > 512 {
			t.Fatalf("%s: %d bytes without EDNS", spec, n)
		}
	}
}
