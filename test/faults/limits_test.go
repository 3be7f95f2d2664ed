package faults

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// metric reads one sample (name with its labels, as exposed) from a
// Prometheus text endpoint; -1 when absent.
func metric(t *testing.T, url, sample string) float64 {
	t.Helper()
	v, err := scrape(url, sample)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// scrape is metric without the test: -1 when absent or unreachable.
func scrape(url, sample string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return -1, fmt.Errorf("%s: %w", line, err)
			}
			return v, nil
		}
	}
	return -1, sc.Err()
}

// The limits as configured on the command line: max_tcp_conns and
// tcp_idle_timeout against stalled connections (slowloris), RRL on UDP
// only with its metric, transfer_from.
func TestLimitsFromTheCommandLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "zones")
	copyZones(t, dir)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	const idle = 1500 * time.Millisecond
	p := startServer(t, "web-server-service.default.svc.cluster.local", "--zones-dir", dir, "--upstreams=",
		"--max-tcp-conns", "4", "--tcp-idle-timeout", idle.String(),
		"--rrl-responses-per-second", "10", "--rrl-slip", "2", "--rrl-window", "1s",
		"--transfer-from", "127.0.0.2/32", "--metrics-listen", metricsAddr)
	// startServer passed --metrics-listen= first; the later flag wins.
	url := "http://" + metricsAddr + "/metrics"
	waitMetrics := time.Now().Add(10 * time.Second)
	for metric(t, url, `clusterdns_rrl_responses_total{action="sent"}`) < 0 {
		if time.Now().After(waitMetrics) {
			t.Fatal("no RRL metric on /metrics")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Slowloris: 4 connections that send one byte and stall.
	start := time.Now()
	for range 4 {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte{0}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if r, err := p.ask("web-server-service.default.svc.cluster.local", dns.TypeA, "tcp"); err == nil {
		t.Fatalf("TCP served with every connection slot stalled: %v", r)
	}
	if r, err := p.ask("kube-dns.kube-system.svc.cluster.local", dns.TypeA, "udp"); err != nil || len(r.Answer) == 0 {
		t.Fatalf("UDP during the stall: %v %v", r, err)
	}
	for {
		r, err := p.ask("web-server-service.default.svc.cluster.local", dns.TypeA, "tcp")
		if err == nil && len(r.Answer) == 1 {
			break
		}
		if time.Since(start) > idle+10*time.Second {
			t.Fatalf("TCP not served again %s after the stall began", time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("slowloris with max_tcp_conns 4, tcp_idle_timeout %s: TCP served again after %s", idle, time.Since(start).Round(time.Millisecond))

	// RRL: a burst of one answer over UDP is limited, TCP is not.
	c, err := net.Dial("udp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion("cassandra.data.svc.cluster.local.", dns.TypeA)
	for i := range 50 {
		m.Id = uint16(i)
		b, _ := m.Pack()
		c.Write(b)
	}
	got := 0
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			break
		}
		got++
	}
	dropped := metric(t, url, `clusterdns_rrl_responses_total{action="dropped"}`)
	slipped := metric(t, url, `clusterdns_rrl_responses_total{action="slipped"}`)
	if got >= 50 || dropped <= 0 || slipped <= 0 {
		t.Fatalf("RRL at 10/s: %d of 50 responses came back, dropped %v, slipped %v", got, dropped, slipped)
	}
	for range 5 {
		if r, err := p.ask("cassandra.data.svc.cluster.local", dns.TypeA, "tcp"); err != nil || len(r.Answer) == 0 {
			t.Fatalf("TCP during RRL: %v %v", r, err)
		}
	}
	t.Logf("RRL 10/s slip 2: %d of a 50-query burst answered (dropped %v, slipped %v); TCP unaffected", got, dropped, slipped)

	// transfer_from 127.0.0.2/32: 127.0.0.1 is refused, 127.0.0.2 is
	// allowed but transfers are not implemented (NOTIMP).
	for _, src := range []struct {
		ip    string
		rcode int
	}{{"127.0.0.1", dns.RcodeRefused}, {"127.0.0.2", dns.RcodeNotImplemented}} {
		for _, qt := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src.ip)}, Timeout: 2 * time.Second}
			conn, err := d.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			q := new(dns.Msg)
			q.SetQuestion("cluster.local.", qt)
			if qt == dns.TypeIXFR {
				soa, _ := dns.NewRR("cluster.local. 0 IN SOA ns. h. 1 0 0 0 0")
				q.Ns = []dns.RR{soa}
			}
			co := &dns.Conn{Conn: conn}
			co.SetDeadline(time.Now().Add(3 * time.Second))
			if err := co.WriteMsg(q); err != nil {
				t.Fatal(err)
			}
			r, err := co.ReadMsg()
			conn.Close()
			if err != nil || r.Rcode != src.rcode || len(r.Answer) != 0 {
				t.Fatalf("%s from %s: %v %v, want %s", dns.TypeToString[qt], src.ip, r, err, dns.RcodeToString[src.rcode])
			}
		}
	}
}
