package resolver

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testtls"
)

// countingListener counts the connections a test upstream accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// tlsUpstreamServer is a miekg/dns server speaking DNS over TLS on
// 127.0.0.1:0 with a certificate for "dns.test" from ca.
func tlsUpstreamServer(t testing.TB, ca *testtls.CA, h dns.HandlerFunc) (string, *countingListener) {
	return tlsUpstreamServerMax(t, ca, h, -1)
}

// tlsUpstreamServerMax is tlsUpstreamServer closing each connection after
// maxQueries queries (-1: never).
func tlsUpstreamServerMax(t testing.TB, ca *testtls.CA, h dns.HandlerFunc, maxQueries int) (string, *countingListener) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig(t, "dns.test"))
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	started := make(chan struct{})
	srv := &dns.Server{Net: "tcp-tls", Listener: cl, Handler: h, MaxTCPQueries: maxQueries, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String(), cl
}

func TestTLSUpstreamReusesOneConnectionForConcurrentQueries(t *testing.T) {
	ca := testtls.NewCA(t)
	addr, ln := tlsUpstreamServer(t, ca, answerA("192.0.2.53", 60))
	f := newForwarder(t, Options{Upstreams: []string{"tls://" + addr + "#dns.test"}, TLSRootCAs: ca.Pool()})
	// One query first, so that the connection exists; then many at once.
	if r := resolveSync(t, f, question(t, "first.example", dns.TypeA)); r == nil || r.Answer[0].(*dns.A).A.String() != "192.0.2.53" {
		t.Fatalf("answer over TLS: %v", r)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("n%d.example", i)
			r := resolveSync(t, f, question(t, name, dns.TypeA))
			if r == nil || len(r.Answer) != 1 || r.Answer[0].Header().Name != name+"." {
				t.Errorf("%s: %v", name, r)
			}
		}()
	}
	wg.Wait()
	if n := ln.accepted.Load(); n != 1 {
		t.Fatalf("upstream accepted %d connections for 51 queries, want 1 (reused)", n)
	}
}

// TestTLSUpstreamMatchesOutOfOrderAnswersByID uses a raw TLS server that
// reads two queries on one connection and answers the second first.
func TestTLSUpstreamMatchesOutOfOrderAnswersByID(t *testing.T) {
	ca := testtls.NewCA(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig(t, "dns.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var qs []*dns.Msg
		for range 2 {
			var hdr [2]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			q := new(dns.Msg)
			q.Unpack(b)
			qs = append(qs, q)
		}
		for _, q := range []*dns.Msg{qs[1], qs[0]} {
			m := new(dns.Msg)
			m.SetReply(q)
			ip := "192.0.2.1"
			if strings.HasPrefix(q.Question[0].Name, "two") {
				ip = "192.0.2.2"
			}
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A " + ip)
			m.Answer = append(m.Answer, rr)
			b, _ := m.Pack()
			c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b))))
			c.Write(b)
		}
		io.Copy(io.Discard, c)
	}()
	tu, hp, err := parseTLSUpstream(ln.Addr().String()+"#dns.test", ca.Pool())
	if err != nil {
		t.Fatal(err)
	}
	tu.addr = hp
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Dial first so both queries share the connection.
	if _, _, err := tu.get(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"one.example.": "192.0.2.1", "two.example.": "192.0.2.2"}
	var wg sync.WaitGroup
	for name, ip := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := new(dns.Msg)
			req.SetQuestion(name, dns.TypeA)
			req.Id = 4242
			m, err := tu.exchange(ctx, req)
			if err != nil || m.Id != 4242 || m.Answer[0].(*dns.A).A.String() != ip {
				t.Errorf("%s: %v %v, want %s with the query's ID", name, m, err, ip)
			}
		}()
	}
	wg.Wait()
	if n := tu.dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
}

func TestTLSUpstreamFailover(t *testing.T) {
	ca := testtls.NewCA(t)
	live, _ := tlsUpstreamServer(t, ca, answerA("192.0.2.9", 60))
	// A port nothing listens on, and a server whose certificate does not
	// name the server name asked for.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := closed.Addr().String()
	closed.Close()
	f := newForwarder(t, Options{Upstreams: []string{
		"tls://" + deadAddr + "#dns.test", "tls://" + live + "#other.name", "tls://" + live + "#dns.test",
	}, Policy: Sequential, TLSRootCAs: ca.Pool(), Timeout: time.Second, MaxFails: 1})
	r := resolveSync(t, f, question(t, "a.example.com", dns.TypeA))
	if r == nil || r.Answer[0].(*dns.A).A.String() != "192.0.2.9" {
		t.Fatalf("no failover: %v", r)
	}
	ups := f.def.upstreams
	if !ups[0].down.Load() || !ups[1].down.Load() || ups[2].down.Load() {
		t.Fatalf("down: refused %v, wrong name %v, live %v; want true true false", ups[0].down.Load(), ups[1].down.Load(), ups[2].down.Load())
	}
}

func TestTLSUpstreamSyntax(t *testing.T) {
	for _, bad := range []string{"tls://127.0.0.1:853", "tls://127.0.0.1#", "tls://dns.example#x"} {
		if _, err := New(Options{Upstreams: []string{bad}}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	f := newForwarder(t, Options{Upstreams: []string{"tls://10.0.0.1#dns.example"}})
	if u := f.def.upstreams[0]; u.addr != "10.0.0.1:853" || u.tls.cfg.ServerName != "dns.example" {
		t.Fatalf("parsed as %s %s, want 10.0.0.1:853 dns.example", u.addr, u.tls.cfg.ServerName)
	}
}

// BenchmarkTLSUpstreamReuse is forwarded queries over one reused,
// pipelined TLS connection (each name distinct, so nothing is cached).
func BenchmarkTLSUpstreamReuse(b *testing.B) {
	ca := testtls.NewCA(b)
	addr, ln := tlsUpstreamServer(b, ca, answerA("192.0.2.53", 60))
	f, err := New(Options{Upstreams: []string{"tls://" + addr + "#dns.test"}, TLSRootCAs: ca.Pool()})
	if err != nil {
		b.Fatal(err)
	}
	req := new(dns.Msg)
	req.SetQuestion("bench.example.", dns.TypeA)
	u := f.def.upstreams[0]
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			m, err := f.exchangeOne(ctx, u, req)
			cancel()
			if err != nil || len(m.Answer) != 1 {
				b.Fatal(m, err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "qps")
	b.ReportMetric(float64(ln.accepted.Load()), "conns")
}

// TestTLSUpstreamRedialsAfterServerClose: an upstream that closes each
// connection after two queries costs a new connection, not a failure.
func TestTLSUpstreamRedialsAfterServerClose(t *testing.T) {
	ca := testtls.NewCA(t)
	addr, ln := tlsUpstreamServerMax(t, ca, answerA("192.0.2.53", 60), 2)
	f := newForwarder(t, Options{StubDomains: map[string][]string{"example": {"tls://" + addr + "#dns.test"}},
		Upstreams: []string{"127.0.0.1:9"}, TLSRootCAs: ca.Pool(), MaxFails: 1})
	for i := range 6 {
		r := resolveSync(t, f, question(t, fmt.Sprintf("r%d.example", i), dns.TypeA))
		if r == nil || len(r.Answer) != 1 {
			t.Fatalf("query %d: %v", i, r)
		}
	}
	if u := f.stubs[0].upstreams[0]; u.down.Load() || u.fails.Load() != 0 {
		t.Fatalf("the upstream was counted as failing (down %v, fails %d)", u.down.Load(), u.fails.Load())
	}
	if n := ln.accepted.Load(); n < 3 {
		t.Fatalf("%d connections for 6 queries at 2 per connection, want at least 3", n)
	}
}
