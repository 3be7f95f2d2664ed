package e2e

// Running clusterdns as a cluster add-on (issue 7): Prometheus metrics and
// pprof, the health endpoints, lame-duck shutdown, live configuration
// reload (file watch and SIGHUP) and the query log, against the real
// binary.

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
)

const (
	cassandraName = "cassandra.data.svc.cluster.local"
	// configDeadline bounds the wait for a configuration change to be
	// served (the file watch is fsnotify: immediate on an idle machine).
	configDeadline = 3 * time.Second
)

// malformedQuery is a header asking one question followed by a label that
// runs past the end of the packet, with random bytes for the ID and the
// label: no parser can read a question from it.
func malformedQuery(t *testing.T) []byte {
	t.Helper()
	p := make([]byte, 16)
	if _, err := rand.Read(p); err != nil {
		t.Fatal(err)
	}
	p[2], p[3] = 0x01, 0x00 // a standard query, RD
	p[4], p[5] = 0, 1       // QDCOUNT 1
	for i := 6; i < 12; i++ {
		p[i] = 0 // no other records
	}
	p[12] = 63 // a 63-byte label, of which 3 bytes follow
	return p
}

// sendMalformed sends a malformed query over UDP and returns the reply
// (nil when none came within a second).
func sendMalformed(t *testing.T, s *server) (query, reply []byte) {
	t.Helper()
	query = malformedQuery(t)
	c, err := net.Dial("udp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(query); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return query, nil
	}
	return query, buf[:n]
}

// TestOpsMetrics counts real queries in /metrics, the forwarder's cache and
// upstream health, and checks that pprof is served only when asked for.
func TestOpsMetrics(t *testing.T) {
	requireTools(t, "dig")

	t.Run("requests", func(t *testing.T) {
		s := startOpsServer(t, copyZones(t), opsOpts{metrics: true})
		reqA := []string{"rcode", "NOERROR", "type", "A", "zone", "cluster"}
		reqNX := []string{"rcode", "NXDOMAIN", "type", "A", "zone", "cluster"}
		const durCount = "clusterdns_request_duration_seconds_count"
		before := scrape(t, s.metricsAddr)

		for i := 0; i < 3; i++ {
			s.dig(t, webName, "A").wantStatus(t, "NOERROR")
		}
		s.dig(t, "nothere.default.svc.cluster.local", "A").wantStatus(t, "NXDOMAIN")
		q, reply := sendMalformed(t, s.server)
		switch {
		case reply == nil:
			t.Errorf("malformed query %x: no reply within 1 s, want FORMERR", q)
			time.Sleep(200 * time.Millisecond) // give the counter a moment anyway
		case len(reply) < 12 || reply[0] != q[0] || reply[1] != q[1] || reply[2]&0x80 == 0 || reply[3]&0xF != dns.RcodeFormatError:
			t.Errorf("malformed query %x: reply %x, want its ID with QR and FORMERR", q, reply)
		}

		after := scrape(t, s.metricsAddr)
		if d := after.value("clusterdns_requests_total", reqA...) - before.value("clusterdns_requests_total", reqA...); d != 3 {
			t.Errorf("clusterdns_requests_total{rcode=NOERROR,type=A,zone=cluster} moved by %v after 3 queries, want 3\n%s",
				d, after.lines("clusterdns_requests_total"))
		}
		if d := after.value("clusterdns_requests_total", reqNX...) - before.value("clusterdns_requests_total", reqNX...); d != 1 {
			t.Errorf("clusterdns_requests_total{rcode=NXDOMAIN,type=A,zone=cluster} moved by %v after 1 query, want 1\n%s",
				d, after.lines("clusterdns_requests_total"))
		}
		if d := after.value("clusterdns_malformed_requests_total") - before.value("clusterdns_malformed_requests_total"); d != 1 {
			t.Errorf("clusterdns_malformed_requests_total moved by %v after 1 malformed packet, want 1\n%s",
				d, after.lines("clusterdns_malformed"))
		}
		if _, ok := after.get(durCount); !ok {
			t.Errorf("no %s in /metrics\n%s", durCount, after.lines("clusterdns_request_duration"))
		} else if d := after.value(durCount) - before.value(durCount); d < 4 {
			t.Errorf("%s grew by %v after 4 answered queries, want at least 4", durCount, d)
		}
		serial := s.soaSerial(t, "cluster.local")
		if v, ok := after.get("clusterdns_snapshot_serial"); !ok || v != float64(serial) {
			t.Errorf("clusterdns_snapshot_serial %v (present: %v), want the SOA serial dig sees, %d", v, ok, serial)
		}
		if v, ok := after.get("go_goroutines"); !ok || v <= 0 {
			t.Errorf("go_goroutines %v (present: %v), want the Go collector's gauge", v, ok)
		}

		// Without --pprof the metrics port serves no profiles.
		code, body, err := httpGet("http://" + s.metricsAddr + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusNotFound {
			t.Errorf("GET /debug/pprof/ without --pprof: status %d, want 404\n%.300s", code, body)
		}
	})

	t.Run("forwarding-and-pprof", func(t *testing.T) {
		up := testdns.Start(t, testdns.AnswerA("192.0.2.1", 60))
		s := startOpsServer(t, copyZones(t), opsOpts{metrics: true, upstream: up.Addr, extra: []string{"--pprof"}})
		const fwdName = "www.example.org"
		before := scrape(t, s.metricsAddr)
		for i := 0; i < 2; i++ {
			r := s.dig(t, fwdName, "A")
			r.wantStatus(t, "NOERROR")
			r.wantContains(t, "answer", fwdName+". 60 IN A 192.0.2.1")
		}
		if n := up.Queries.Load(); n != 1 {
			t.Errorf("the upstream got %d queries for a name asked twice within its TTL, want 1", n)
		}
		after := scrape(t, s.metricsAddr)
		for _, c := range []struct {
			result string
			want   float64
		}{{"miss", 1}, {"hit", 1}} {
			d := after.value("clusterdns_cache_requests_total", "result", c.result) - before.value("clusterdns_cache_requests_total", "result", c.result)
			if d != c.want {
				t.Errorf("clusterdns_cache_requests_total{result=%q} moved by %v, want %v\n%s",
					c.result, d, c.want, after.lines("clusterdns_cache"))
			}
		}
		fwd := []string{"rcode", "NOERROR", "type", "A", "zone", "forward"}
		if d := after.value("clusterdns_requests_total", fwd...) - before.value("clusterdns_requests_total", fwd...); d != 2 {
			t.Errorf("clusterdns_requests_total{rcode=NOERROR,type=A,zone=forward} moved by %v after 2 forwarded queries, want 2\n%s",
				d, after.lines("clusterdns_requests_total"))
		}
		if v, ok := after.get("clusterdns_upstream_healthy", "upstream", up.Addr, "domain", "."); !ok || v != 1 {
			t.Errorf("clusterdns_upstream_healthy{upstream=%q,domain=\".\"} = %v (present: %v), want 1\n%s",
				up.Addr, v, ok, after.lines("clusterdns_upstream_healthy"))
		}

		code, body, err := httpGet("http://" + s.metricsAddr + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusOK || !strings.Contains(body, "goroutine") {
			t.Errorf("GET /debug/pprof/ with --pprof: status %d, want 200 and the profile index\n%.300s", code, body)
		}
	})
}

// TestOpsHealth checks /ready and /healthz of a server with the file
// source: both 200 once it serves. (Not ready before the first sync is the
// Kubernetes source's business, tested with a real API server.)
func TestOpsHealth(t *testing.T) {
	s := startOpsServer(t, copyZones(t), opsOpts{health: true})
	took := eventually(t, 5*time.Second, "/ready is 200", func() (bool, string) {
		code, body, err := httpGet("http://" + s.healthAddr + "/ready")
		return err == nil && code == http.StatusOK, fmt.Sprintf("status %d %q, err %v", code, body, err)
	})
	t.Logf("/ready 200 %v after the server answered DNS", took.Round(time.Millisecond))
	code, body, err := httpGet("http://" + s.healthAddr + "/healthz")
	if err != nil || code != http.StatusOK {
		t.Errorf("/healthz: status %d %q, err %v; want 200", code, body, err)
	}
	code, _, err = httpGet("http://" + s.healthAddr + "/nothere")
	if err != nil || code != http.StatusNotFound {
		t.Errorf("/nothere: status %d, err %v; want 404", code, err)
	}
}

// TestOpsLameDuck sends SIGTERM to a server with --lame-duck 3s while a
// client asks every 20 ms: /ready fails at once, every query is still
// answered during the lame duck, a TCP connection opened before the signal
// can still be used, and the process exits soon after.
func TestOpsLameDuck(t *testing.T) {
	const lameDuck = 3 * time.Second
	s := startOpsServer(t, copyZones(t), opsOpts{health: true, extra: []string{"--lame-duck", lameDuck.String()}})
	readyURL := "http://" + s.healthAddr + "/ready"
	eventually(t, 5*time.Second, "/ready is 200 before SIGTERM", func() (bool, string) {
		code, body, err := httpGet(readyURL)
		return err == nil && code == http.StatusOK, fmt.Sprintf("status %d %q, err %v", code, body, err)
	})

	// A TCP connection opened (and used) before the signal.
	tcpClient := &dns.Client{Net: "tcp", Timeout: time.Second}
	conn, err := tcpClient.Dial(s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	askConn := func() error {
		m := new(dns.Msg).SetQuestion(dns.Fqdn(webName), dns.TypeA)
		r, _, err := tcpClient.ExchangeWithConn(m, conn)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			return fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		return nil
	}
	if err := askConn(); err != nil {
		t.Fatalf("TCP query before SIGTERM: %v", err)
	}

	q := startQuerier(s.server, webName, 20*time.Millisecond, time.Second)
	defer q.stop()
	time.Sleep(300 * time.Millisecond)

	t0 := time.Now()
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// /ready must fail at once.
	var readyAfter time.Duration
	var last string
	for {
		code, body, err := httpGet(readyURL)
		if err == nil && code == http.StatusServiceUnavailable {
			readyAfter = time.Since(t0)
			break
		}
		last = fmt.Sprintf("status %d %q, err %v", code, body, err)
		if time.Since(t0) > 2*time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	switch {
	case readyAfter == 0:
		t.Errorf("/ready did not return 503 within 2 s of SIGTERM; last: %s", last)
	case readyAfter > 500*time.Millisecond:
		t.Errorf("/ready returned 503 only %v after SIGTERM, want within 500 ms", readyAfter.Round(time.Millisecond))
	default:
		t.Logf("/ready 503 %v after SIGTERM", readyAfter.Round(time.Millisecond))
	}
	// The process is alive: liveness must not fail during the lame duck.
	if code, body, err := httpGet("http://" + s.healthAddr + "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz during the lame duck: status %d %q, err %v; want 200", code, body, err)
	}

	// The connection opened before the signal, and a new one, still work.
	for _, at := range []time.Duration{time.Second, 2300 * time.Millisecond} {
		time.Sleep(time.Until(t0.Add(at)))
		if err := askConn(); err != nil {
			t.Errorf("%v after SIGTERM: query on the TCP connection opened before it: %v", time.Since(t0).Round(time.Millisecond), err)
		}
		r, err := s.exchange("tcp", webName, dns.TypeA, time.Second)
		if err == nil && (r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1) {
			err = fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		if err != nil {
			t.Errorf("%v after SIGTERM: query on a new TCP connection: %v", time.Since(t0).Round(time.Millisecond), err)
		}
	}

	// The process ends after the lame duck.
	var exitAfter time.Duration
	select {
	case <-s.Done():
		exitAfter = time.Since(t0)
	case <-time.After(time.Until(t0.Add(lameDuck + 5*time.Second))):
		t.Errorf("the process still runs %v after SIGTERM, want it gone within lame_duck + 5 s", time.Since(t0).Round(time.Millisecond))
	}
	results := q.stop()
	if exitAfter != 0 {
		t.Logf("exited %v after SIGTERM (%v)", exitAfter.Round(time.Millisecond), s.Err())
		if exitAfter < lameDuck-500*time.Millisecond {
			t.Errorf("exited %v after SIGTERM, before the lame duck of %v ended", exitAfter.Round(time.Millisecond), lameDuck)
		}
		if s.Err() != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", s.Err())
		}
	}

	// No query sent before SIGTERM + 2.5 s failed.
	window := t0.Add(2500 * time.Millisecond)
	var inWindow, during int
	var failed []string
	for _, r := range results {
		if r.at.After(window) {
			continue
		}
		inWindow++
		if r.at.After(t0) {
			during++
		}
		if r.err != nil {
			failed = append(failed, fmt.Sprintf("sent at %+v after SIGTERM (took %v): %v",
				r.at.Sub(t0).Round(time.Millisecond), r.took.Round(time.Millisecond), r.err))
		}
	}
	t.Logf("%d UDP queries up to SIGTERM + 2.5 s, %d of them after SIGTERM; %d in all", inWindow, during, len(results))
	if during < 20 {
		t.Errorf("only %d queries sent during the first 2.5 s of the lame duck: the test did not exercise it", during)
	}
	if len(failed) > 0 {
		t.Errorf("%d queries failed before SIGTERM + 2.5 s (lame duck %v), want none:\n%s",
			len(failed), lameDuck, strings.Join(failed, "\n"))
	}
}

// opsConfig is the configuration file of the reload tests: everything is
// in the file (a flag would beat it), plus extra lines.
func opsConfig(port int, dir string, ttl string, extra ...string) string {
	lines := []string{
		fmt.Sprintf("listen: 127.0.0.1:%d", port),
		"zones_dir: " + dir,
		"domains: [cluster.local]",
		"upstreams: []",
		`health_listen: ""`,
		`metrics_listen: ""`,
		"negative_ttl: 3",
		"log_level: info",
		"ttl: " + ttl,
	}
	return strings.Join(append(lines, extra...), "\n") + "\n"
}

// ttlNow returns the TTL of the single A record of name, asked over UDP.
func (s *server) ttlNow(name string) (uint32, error) {
	r, err := s.exchange("udp", name, dns.TypeA, time.Second)
	if err != nil {
		return 0, err
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		return 0, fmt.Errorf("%s A: rcode %s, %d answers", name, dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return r.Answer[0].Header().Ttl, nil
}

// waitTTL polls until the A record of webName has the TTL want.
func (s *server) waitTTL(t *testing.T, want uint32) time.Duration {
	t.Helper()
	took := eventually(t, configDeadline, fmt.Sprintf("TTL of %s becomes %d", webName, want), func() (bool, string) {
		ttl, err := s.ttlNow(webName)
		if err != nil {
			return false, err.Error()
		}
		return ttl == want, fmt.Sprintf("TTL %d", ttl)
	})
	return took
}

var (
	reReloadedTTL = regexp.MustCompile(`msg="configuration reloaded".* ttl=(\d+)`)
	reRefused     = regexp.MustCompile(`configuration refused`)
)

// reloadedTTLs returns the TTLs of the configurations logged as reloaded
// in out, in order.
func reloadedTTLs(out string) []uint32 {
	var ttls []uint32
	for _, m := range reReloadedTTL.FindAllStringSubmatch(out, -1) {
		var n uint32
		fmt.Sscan(m[1], &n)
		ttls = append(ttls, n)
	}
	return ttls
}

// wantOnlyWritten checks that every configuration reloaded (as logged in
// out) was one written to the file: a reload must never apply the empty or
// half-written file an in-place write goes through (all defaults: TTL 5
// and forwarding to /etc/resolv.conf).
func wantOnlyWritten(t *testing.T, out string, written []uint32) {
	t.Helper()
	var bad []string
	for _, l := range strings.Split(out, "\n") {
		if ttls := reloadedTTLs(l); len(ttls) == 1 && !slices.Contains(written, ttls[0]) {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d reload(s) applied a configuration no file written had (TTLs written: %v): the server read the file mid-write:\n%s",
			len(bad), written, strings.Join(bad, "\n"))
	}
}

// TestOpsReloadConfig edits the --config file under a running server:
// valid changes apply (written in place or renamed over), invalid ones are
// refused with a log line naming the key while the running configuration
// stays, and a loop of reloads drops no query. A file written in place
// goes through an empty state (truncate, then write): the server must never
// apply it (it would be all defaults: TTL 5, forwarding to resolv.conf).
func TestOpsReloadConfig(t *testing.T) {
	requireTools(t, "dig")
	dir := copyZones(t)
	cfg := filepath.Join(t.TempDir(), "clusterdns.yaml")
	var port int
	s := launch(t, launchOpts{dir: dir, args: func(p int) ([]string, []string) {
		port = p
		writeInPlace(t, cfg, opsConfig(port, dir, "7"))
		return []string{"--config", cfg}, nil
	}})
	if ttl := answerTTL(t, s, webName); ttl != 7 {
		t.Fatalf("TTL %d, want 7 from the config file", ttl)
	}

	// applied writes the file with write, waits for the TTL and for the
	// log line of the reload.
	applied := func(t *testing.T, write func(*testing.T, string, string), ttl uint32) {
		t.Helper()
		off := s.logOffset()
		write(t, cfg, opsConfig(port, dir, fmt.Sprint(ttl)))
		took := s.waitTTL(t, ttl)
		re := regexp.MustCompile(`msg="configuration reloaded".* ttl=` + fmt.Sprint(ttl) + `\b`)
		line := s.waitLog(t, off, re, fmt.Sprintf(`"configuration reloaded" logged with ttl=%d`, ttl))
		t.Logf("TTL %d served %v after the write; logged: %s", ttl, took.Round(time.Millisecond), line)
		if got := answerTTL(t, s, webName); got != ttl {
			t.Errorf("dig: TTL %d, want %d", got, ttl)
		}
		wantOnlyWritten(t, s.logSince(off), []uint32{ttl})
	}
	t.Run("write-in-place", func(t *testing.T) { applied(t, writeInPlace, 8) })
	t.Run("rename-over", func(t *testing.T) { applied(t, writeAtomic, 9) })

	refused := []struct {
		name, text, key string
	}{
		{"ttl-not-a-number", opsConfig(port, dir, "nine"), "ttl"},
		{"unknown-key", opsConfig(port, dir, "9", "no_such_setting: 1"), "no_such_setting"},
	}
	for _, c := range refused {
		t.Run("refused-"+c.name, func(t *testing.T) {
			off := s.logOffset()
			writeAtomic(t, cfg, c.text)
			line := s.waitLog(t, off, reRefused, `"configuration refused" logged`)
			t.Logf("logged: %s", line)
			_, errText, _ := strings.Cut(line, "err=")
			if !regexp.MustCompile(`\b` + regexp.QuoteMeta(c.key) + `\b`).MatchString(errText) {
				t.Errorf("the refusal does not name %s: %s", c.key, line)
			}
			if got := answerTTL(t, s, webName); got != 9 {
				t.Errorf("TTL %d after a refused configuration, want the running 9", got)
			}
			if strings.Contains(s.logSince(off), "configuration reloaded") {
				t.Errorf("a broken file was reloaded:\n%s", s.logSince(off))
			}
		})
	}
	t.Run("fixed", func(t *testing.T) { applied(t, writeAtomic, 11) })

	// Ten reloads, each waited for, while a client asks every 10 ms: no
	// query fails, and every answer carries a TTL of one of the files
	// written (never the default of an empty or half-written file).
	t.Run("reload-loop", func(t *testing.T) {
		off := s.logOffset()
		q := startQuerier(s, webName, 10*time.Millisecond, time.Second)
		defer q.stop()
		written := []uint32{11}
		for i := 0; i < 10; i++ {
			ttl := uint32(20 + i)
			write := writeAtomic
			if i%2 == 1 {
				write = writeInPlace
			}
			write(t, cfg, opsConfig(port, dir, fmt.Sprint(ttl)))
			written = append(written, ttl)
			s.waitTTL(t, ttl)
		}
		time.Sleep(100 * time.Millisecond)
		results := q.stop()
		var failed, foreign []string
		for _, r := range results {
			switch {
			case r.err != nil:
				failed = append(failed, fmt.Sprintf("%s: %v", r.at.Format("15:04:05.000"), r.err))
			case !slices.Contains(written, r.ttl):
				foreign = append(foreign, fmt.Sprintf("%s: TTL %d", r.at.Format("15:04:05.000"), r.ttl))
			}
		}
		t.Logf("%d queries during 10 reloads", len(results))
		if len(results) < 20 {
			t.Errorf("only %d queries during the reloads", len(results))
		}
		if len(failed) > 0 {
			t.Errorf("%d of %d queries failed during the reloads, want none:\n%s", len(failed), len(results), strings.Join(failed, "\n"))
		}
		if len(foreign) > 0 {
			t.Errorf("%d answers carried a TTL no file written had (%v):\n%s", len(foreign), written, strings.Join(foreign, "\n"))
		}
		wantOnlyWritten(t, s.logSince(off), written)
		if got := reloadedTTLs(s.logSince(off)); len(got) < 10 {
			t.Errorf("%d reloads logged for 10 files written: %v", len(got), got)
		}
	})
}

// orderOf returns the addresses of name's A records in the order served.
func (s *server) orderOf(t *testing.T, name string) string {
	t.Helper()
	r, err := s.exchange("udp", name, dns.TypeA, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, a := range r.Answer {
		if a, ok := a.(*dns.A); ok {
			addrs = append(addrs, a.A.String())
		}
	}
	return strings.Join(addrs, ",")
}

// orders asks name n times and returns the distinct orders seen.
func (s *server) orders(t *testing.T, name string, n int) []string {
	t.Helper()
	var seen []string
	for i := 0; i < n; i++ {
		if o := s.orderOf(t, name); !slices.Contains(seen, o) {
			seen = append(seen, o)
		}
	}
	return seen
}

// TestOpsReloadSIGHUP edits the configuration where the file watch does not
// look (the --config path is a symlink into another folder, edited in
// place), then sends SIGHUP: the change applies, answer_order included.
func TestOpsReloadSIGHUP(t *testing.T) {
	dir := copyZones(t)
	target := filepath.Join(t.TempDir(), "real.yaml")
	cfg := filepath.Join(t.TempDir(), "clusterdns.yaml")
	if err := os.Symlink(target, cfg); err != nil {
		t.Fatal(err)
	}
	var port int
	s := launch(t, launchOpts{dir: dir, args: func(p int) ([]string, []string) {
		port = p
		writeInPlace(t, target, opsConfig(port, dir, "7", "answer_order: \"off\""))
		return []string{"--config", cfg}, nil
	}})
	if ttl, err := s.ttlNow(webName); err != nil || ttl != 7 {
		t.Fatalf("TTL %d (%v), want 7 from the config file", ttl, err)
	}
	if o := s.orders(t, cassandraName, 6); len(o) != 1 {
		t.Errorf("answer_order off: %s A came in %d orders over 6 queries, want one: %q", cassandraName, len(o), o)
	}

	off := s.logOffset()
	writeInPlace(t, target, opsConfig(port, dir, "8"))
	time.Sleep(300 * time.Millisecond)
	if ttl, err := s.ttlNow(webName); err == nil && ttl == 8 {
		t.Logf("note: the change applied before SIGHUP (the watch follows the symlink's target)")
	}
	if err := s.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	took := s.waitTTL(t, 8)
	line := s.waitLog(t, off, regexp.MustCompile(`configuration reloaded.*SIGHUP`), `"configuration reloaded" with trigger SIGHUP logged`)
	t.Logf("TTL 8 %v after SIGHUP; logged: %s", took.Round(time.Millisecond), line)
	if o := s.orders(t, cassandraName, 6); len(o) < 2 {
		t.Errorf("answer_order back to the default (round_robin) after SIGHUP: %s A came in one order over 6 queries: %q", cassandraName, o)
	}
	if s.exited() {
		t.Fatalf("the server exited on SIGHUP: %v", s.Err())
	}
}

// queryLines returns the query log lines in out as "name type" (name in
// lower case, without the final dot) for the names in own only: the server
// logs the harness's readiness probes (cluster.local SOA) too, and one of
// those may land after the test's log offset, so a test counts only the
// names it asked itself.
func queryLines(out string, own ...string) []string {
	var lines []string
	for _, m := range queryLine.FindAllStringSubmatch(out, -1) {
		name := strings.TrimSuffix(strings.ToLower(m[1]), ".")
		if slices.Contains(own, name) {
			lines = append(lines, name+" "+m[2])
		}
	}
	return lines
}

// TestOpsQueryLog checks --query-log: one line per query with its name and
// type, and one in N with --query-log-sample N.
func TestOpsQueryLog(t *testing.T) {
	t.Run("every-query", func(t *testing.T) {
		s := startOpsServer(t, copyZones(t), opsOpts{extra: []string{"--query-log", "--query-log-sample", "1"}})
		asked := []struct {
			name  string
			qtype uint16
		}{
			{webName, dns.TypeA},
			{webName, dns.TypeAAAA},
			{cassandraName, dns.TypeA},
			{"_http._tcp." + webName, dns.TypeSRV},
			{"nothere.default.svc.cluster.local", dns.TypeTXT},
		}
		off := s.logOffset()
		var want, names []string
		for _, a := range asked {
			names = append(names, a.name)
			if _, err := s.exchange("udp", a.name, a.qtype, time.Second); err != nil {
				t.Fatal(err)
			}
			want = append(want, a.name+" "+dns.TypeToString[a.qtype])
		}
		slices.Sort(want)
		eventually(t, 5*time.Second, "a query log line per query", func() (bool, string) {
			got := queryLines(s.logSince(off), names...)
			slices.Sort(got)
			return slices.Equal(got, want), fmt.Sprintf("lines %q, want %q; log:\n%s", got, want, tail(s.logSince(off), 4<<10))
		})
	})

	t.Run("sample-10", func(t *testing.T) {
		s := startOpsServer(t, copyZones(t), opsOpts{extra: []string{"--query-log", "--query-log-sample", "10"}})
		off := s.logOffset()
		for i := 0; i < 100; i++ {
			if _, err := s.exchange("udp", webName, dns.TypeA, time.Second); err != nil {
				t.Fatal(err)
			}
		}
		// The server logs before it answers, in one ordered stream, and
		// samples by a counter: exactly one of 10 marks asked after the 100
		// queries is logged, and once it is, every line of theirs is in the
		// log.
		for i := 0; i < 10; i++ {
			if _, err := s.exchange("udp", fmt.Sprintf("log-mark-%d.invalid", i), dns.TypeTXT, time.Second); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 5*time.Second, "one of 10 log marks logged", func() (bool, string) {
			return strings.Contains(s.logSince(off), "name=log-mark-"), tail(s.logSince(off), 2<<10)
		})
		n := len(queryLines(s.logSince(off), webName))
		t.Logf("%d query log lines for 100 queries with --query-log-sample 10", n)
		if n != 10 {
			t.Errorf("%d query log lines for 100 queries with --query-log-sample 10, want 10; log:\n%s",
				n, tail(s.logSince(off), 4<<10))
		}
	})
}
