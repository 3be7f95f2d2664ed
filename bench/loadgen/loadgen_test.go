package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startServer runs a real miekg/dns server on a kernel-chosen loopback
// port: names under ok. answer NOERROR with one A record, others
// NXDOMAIN; it never answers drop.test. (so those queries are lost) and
// answers wrong.test. with another question. It returns the address and
// the number of queries it saw.
func startServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int64
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		seen.Add(1)
		q := r.Question[0]
		m := new(dns.Msg)
		m.SetReply(r)
		switch {
		case q.Name == "drop.test.":
			return
		case q.Name == "wrong.test.":
			m.Question[0].Name = "other.test."
		case strings.HasSuffix(q.Name, ".ok."):
			rr, _ := dns.NewRR(q.Name + " 5 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String(), &seen
}

func writeQueries(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "queries.txt")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// field returns the first number after label in the report.
func field(t *testing.T, report, label string) float64 {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(label) + `\s*([0-9.]+)`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("no %q in the report:\n%s", label, report)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLoadgenCountsAnswersByCode(t *testing.T) {
	addr, seen := startServer(t)
	qf := writeQueries(t, "a.ok A", "# a comment", "", "b.missing A", "c.ok AAAA", "d.missing SRV")
	var out bytes.Buffer
	err := run([]string{"-s", addr, "-d", qf, "-l", "300ms", "-sockets", "2", "-q", "8", "-t", "1s", "-pid", strconv.Itoa(os.Getpid())}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	r := out.String()
	sent, done := field(t, r, "Queries sent:"), field(t, r, "Queries completed:")
	if sent == 0 || done != sent || field(t, r, "Queries lost:") != 0 {
		t.Fatalf("want every query answered:\n%s", r)
	}
	if int64(sent) != seen.Load() {
		t.Fatalf("the report says %v sent, the server saw %d", sent, seen.Load())
	}
	// Two of the four names are NXDOMAIN and the sockets walk the file in
	// order, so the codes split about evenly.
	noerr := field(t, r, "NOERROR")
	nx := field(t, r, "NXDOMAIN")
	if noerr+nx != done || noerr < done/2-4 || noerr > done/2+4 {
		t.Fatalf("want half NOERROR, half NXDOMAIN:\n%s", r)
	}
	if field(t, r, "p50") <= 0 || field(t, r, "Queries per second:") <= 0 {
		t.Fatalf("want a positive latency and rate:\n%s", r)
	}
	if !strings.Contains(r, "CPU pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("want the watched pid's CPU:\n%s", r)
	}
}

func TestLoadgenCountsUnansweredAsLost(t *testing.T) {
	addr, _ := startServer(t)
	qf := writeQueries(t, "a.ok A", "drop.test A")
	var out bytes.Buffer
	start := time.Now()
	err := run([]string{"-s", addr, "-d", qf, "-l", "200ms", "-sockets", "1", "-q", "4", "-t", "300ms"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	r := out.String()
	lost, done, sent := field(t, r, "Queries lost:"), field(t, r, "Queries completed:"), field(t, r, "Queries sent:")
	if lost == 0 || done == 0 || lost+done != sent {
		t.Fatalf("want some lost, some answered, together all sent:\n%s", r)
	}
	if time.Since(start) > 200*time.Millisecond+300*time.Millisecond+3*time.Second {
		t.Fatalf("the run outlasted its length plus the timeout: %v", time.Since(start))
	}
}

func TestLoadgenFailsOnAMismatchedAnswer(t *testing.T) {
	addr, _ := startServer(t)
	qf := writeQueries(t, "wrong.test A")
	var out bytes.Buffer
	err := run([]string{"-s", addr, "-d", qf, "-l", "100ms", "-sockets", "1", "-q", "2"}, &out)
	if err == nil || !strings.Contains(err.Error(), "did not repeat their query") {
		t.Fatalf("want a mismatch error, got %v\n%s", err, out.String())
	}
}

func TestLoadgenKeepsAFixedRate(t *testing.T) {
	addr, _ := startServer(t)
	qf := writeQueries(t, "a.ok A")
	var out bytes.Buffer
	if err := run([]string{"-s", addr, "-d", qf, "-l", "500ms", "-sockets", "2", "-Q", "1000"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	// Never faster than 1,000 a second (plus the first query of each
	// socket), where the window alone would allow thousands; a process the
	// shared machine stalls may send fewer, so the lower bound is loose.
	r := out.String()
	sent, secs := field(t, r, "Queries sent:"), field(t, r, "Run time (s):")
	if sent > 1000*secs+2 || sent < 50 {
		t.Fatalf("want at most %.0f and about 500 sent at -Q 1000 for %.3fs, got %v:\n%s", 1000*secs+2, secs, sent, r)
	}
}

func TestLoadQueriesRejectsBadLines(t *testing.T) {
	for _, in := range []string{"a.ok", "a.ok A extra", "a.ok NOTATYPE", "", "# only a comment"} {
		if _, err := loadQueries(strings.NewReader(in), 0); err == nil {
			t.Errorf("%q: want an error", in)
		}
	}
	qs, err := loadQueries(strings.NewReader("x.ok a\n"), 1232)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(qs[0].wire); err != nil || m.IsEdns0() == nil || m.IsEdns0().UDPSize() != 1232 || m.Question[0].Qtype != dns.TypeA {
		t.Fatalf("want an A query with EDNS 1232, got %v (%v)", m, err)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	h := newHist()
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	h.add(50 * time.Millisecond)
	if q := h.quantile(0.5); q != 500*time.Microsecond && q != 501*time.Microsecond {
		t.Errorf("p50 = %v, want 500µs", q)
	}
	if q := h.quantile(1); q < 49*time.Millisecond || q > 50*time.Millisecond {
		t.Errorf("p100 = %v, want within 2%% below 50ms", q)
	}
	for us := uint64(0); us < 1<<30; us = us*3/2 + 1 {
		if lo := lower(bucket(us)); lo > us || float64(us-lo) > 0.016*float64(us) {
			t.Fatalf("bucket of %dµs starts at %dµs", us, lo)
		}
	}
}
