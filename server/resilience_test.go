package server

import (
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testbin"
	"github.com/clusterdns/clusterdns/internal/testdns"
	"github.com/clusterdns/clusterdns/resolver"
)

// panicFallback stands in for the forwarder and panics for one name: a bug
// reached by one query, on the listener's goroutine.
type panicFallback struct{ boom string }

func (p panicFallback) Cached(q *resolver.Question, out []byte) []byte {
	if strings.EqualFold(nameOf(q.Wire), p.boom) {
		panic("test: a bug reached by one query")
	}
	return nil
}

func (p panicFallback) Resolve(q resolver.Question, done func([]byte)) { done(nil) }

func nameOf(wire []byte) string {
	n, _, _ := dns.UnpackDomainName(wire, 0)
	return n
}

func startListener(t *testing.T, h *Handler, opt ListenOptions, log *slog.Logger) *Listener {
	t.Helper()
	opt.Addr = "127.0.0.1:0"
	l, err := Listen(h, opt, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { l.Serve(); close(done) }()
	t.Cleanup(func() { l.Close(); <-done })
	return l
}

// A panic while answering one query drops that query only: the same
// socket and the same TCP connection keep answering.
func TestPanicInOneQueryDropsOnlyThatQuery(t *testing.T) {
	logs := &testbin.LogBuffer{}
	h := exampleHandler(t, func(o *Options) {
		o.Fallback = panicFallback{boom: "boom.example."}
		o.RecursionFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	l := startListener(t, h, ListenOptions{UDPSockets: 1}, slog.New(slog.NewTextHandler(logs, nil)))
	boom, good := new(dns.Msg), new(dns.Msg)
	boom.SetQuestion("boom.example.", dns.TypeA)
	good.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)

	for _, netw := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: netw, Timeout: 200 * time.Millisecond}
		conn, err := c.Dial(l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if r, _, err := c.ExchangeWithConn(boom, conn); err == nil {
				t.Fatalf("%s: the panicking query was answered: %v", netw, r)
			}
			if netw == "tcp" {
				// A timed-out read leaves the connection with a deadline
				// in the past; the server side is still open: reuse it.
				conn.SetDeadline(time.Time{})
			}
			r, _, err := c.ExchangeWithConn(good, conn)
			if err != nil || len(r.Answer) != 1 {
				t.Fatalf("%s: after panic %d the next query on the same connection: %v %v", netw, i+1, r, err)
			}
		}
		conn.Close()
	}
	if n := strings.Count(logs.String(), "panic answering a query"); n != 10 {
		t.Fatalf("%d panics logged, want 10:\n%s", n, logs.String())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Metrics())
	if got := counter(t, reg, "coredns_panics_total", map[string]string{}); got != 10 {
		t.Errorf("coredns_panics_total = %v, want 10", got)
	}
	h.Metrics().CountPanics(func() uint64 { return 3 }) // the forwarder's
	if got := counter(t, reg, "coredns_panics_total", map[string]string{}); got != 13 {
		t.Errorf("coredns_panics_total with 3 forwarder panics = %v, want 13", got)
	}
}

// dialStall opens a TCP connection that sends one byte of a query's length
// and nothing more (slowloris).
func dialStall(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Slowloris: max_tcp_conns connections that send a byte and stall take
// every TCP slot, but only until the idle timeout; UDP is served
// throughout, and new TCP clients are served again once the stalled
// connections are cut. A client that drips a byte at a time is cut too:
// the timeout bounds a whole query, not the gap between bytes.
func TestSlowlorisIsCutAtTheIdleTimeout(t *testing.T) {
	const maxConns, idle = 8, 1500 * time.Millisecond
	h := exampleHandler(t, nil)
	l := startListener(t, h, ListenOptions{UDPSockets: 1, MaxTCPConns: maxConns, TCPIdleTimeout: idle}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	addr := l.Addr().String()
	q := new(dns.Msg)
	q.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	tcp := &dns.Client{Net: "tcp", Timeout: time.Second}
	udp := &dns.Client{Net: "udp", Timeout: time.Second}
	if r, _, err := tcp.Exchange(q, addr); err != nil || len(r.Answer) != 1 {
		t.Fatalf("TCP before the attack: %v %v", r, err)
	}

	start := time.Now()
	stalled := make([]net.Conn, 0, maxConns)
	for range maxConns - 1 {
		stalled = append(stalled, dialStall(t, addr))
	}
	// The last slot: a client dripping one byte every 200 ms.
	drip, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer drip.Close()
	dripDone := make(chan time.Duration, 1)
	go func() {
		msg, _ := q.Pack()
		frame := append([]byte{byte(len(msg) >> 8), byte(len(msg))}, msg...)
		// Writes start failing once the server has closed the connection
		// (the first one after the close draws a reset).
		for i := 0; ; i = (i + 1) % len(frame) {
			if _, err := drip.Write(frame[i : i+1]); err != nil {
				dripDone <- time.Since(start)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	// Wait until the server holds a slot for each of them.
	for deadline := time.Now().Add(10 * time.Second); len(l.sem) < maxConns; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d of %d connections after 10 s", len(l.sem), maxConns)
		}
	}

	// Every slot is taken: a new TCP client is closed at once.
	if r, _, err := tcp.Exchange(q, addr); err == nil {
		t.Fatalf("a TCP client was served with every slot taken: %v", r)
	}
	// UDP is served throughout.
	stopUDP := make(chan struct{})
	udpErr := make(chan error, 1)
	go func() {
		defer close(udpErr)
		for {
			select {
			case <-stopUDP:
				return
			default:
			}
			r, _, err := udp.Exchange(q, addr)
			if err != nil || len(r.Answer) != 1 {
				udpErr <- errors.Join(err, errors.New("UDP query failed during the attack"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// The stalled connections are closed by the server after the idle
	// timeout (their read returns EOF), and new clients are served.
	for _, c := range stalled {
		c.SetReadDeadline(time.Now().Add(idle + 5*time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a stalled connection received data")
		} else if isTimeout(err) {
			t.Fatalf("a stalled connection was not closed within %s of the idle timeout", 5*time.Second)
		}
	}
	cut := time.Since(start)
	if cut < idle-100*time.Millisecond {
		t.Fatalf("stalled connections cut after %s, before the idle timeout %s", cut, idle)
	}
	var served time.Duration
	for deadline := time.Now().Add(5 * time.Second); ; {
		if r, _, err := tcp.Exchange(q, addr); err == nil && len(r.Answer) == 1 {
			served = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new TCP clients not served after the stalled connections were cut")
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case d := <-dripDone:
		if d > idle+5*time.Second {
			t.Fatalf("the dripping client held its slot for %s", d)
		}
	case <-time.After(idle + 5*time.Second):
		t.Fatal("the dripping client was never cut")
	}
	close(stopUDP)
	if err := <-udpErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("stalled connections cut after %s, new TCP client served after %s (idle timeout %s)", cut, served, idle)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Identical forwarded questions asked at once share one upstream exchange;
// each client must still get its own ID and its own spelling of the name.
func TestConcurrentIdenticalForwardedQuestionsKeepTheirIDs(t *testing.T) {
	up := testdns.Start(t, func(w dns.ResponseWriter, r *dns.Msg) {
		time.Sleep(200 * time.Millisecond)
		testdns.AnswerA("192.0.2.7", 60)(w, r)
	})
	f, err := resolver.New(resolver.Options{Upstreams: []string{up.Addr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := exampleHandler(t, func(o *Options) {
		o.Fallback = f
		o.RecursionFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	const n = 16
	type result struct {
		id   uint16
		name string
		resp []byte
	}
	results := make(chan result, n)
	for i := range n {
		m := new(dns.Msg)
		name := []byte("same.example.org.")
		for j := range name {
			if i>>(j%4)&1 == 1 && name[j] >= 'a' && name[j] <= 'z' {
				name[j] -= 'a' - 'A'
			}
		}
		m.SetQuestion(string(name), dns.TypeA)
		m.Id = uint16(1000 + i)
		req, _ := m.Pack()
		id, qn := m.Id, string(name)
		out := h.Respond(req, nil, netip.MustParseAddrPort("127.0.0.1:4000"), false, func(_ netip.AddrPort, b []byte) {
			time.Sleep(time.Millisecond) // let the other callbacks run meanwhile
			results <- result{id, qn, append([]byte(nil), b...)}
		})
		if out != nil {
			t.Fatalf("query %d answered at once", i)
		}
	}
	for range n {
		select {
		case r := <-results:
			var m dns.Msg
			if err := m.Unpack(r.resp); err != nil {
				t.Fatal(err)
			}
			if m.Id != r.id || m.Question[0].Name != r.name || len(m.Answer) != 1 {
				t.Fatalf("client %d (%s) got ID %d, question %s, answer %v", r.id, r.name, m.Id, m.Question[0].Name, m.Answer)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("forwarded answers missing")
		}
	}
	if q := up.Queries.Load(); q != 1 {
		t.Logf("upstream asked %d times", q)
	}
}

// A panic on the deferred path — after the upstream answered, on the
// forwarder's goroutine (here: the listener's send) — drops that answer
// only; nothing there may end the process.
func TestPanicAnsweringAForwardedQueryDropsOnlyThatQuery(t *testing.T) {
	up := testdns.Start(t, testdns.AnswerA("192.0.2.8", 60))
	logs := &testbin.LogBuffer{}
	f, err := resolver.New(resolver.Options{Upstreams: []string{up.Addr}, Timeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := exampleHandler(t, func(o *Options) {
		o.Fallback = f
		o.RecursionFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	for i := range 3 {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("boom%d.example.org.", i), dns.TypeA)
		req, _ := m.Pack()
		if out := h.Respond(req, nil, netip.MustParseAddrPort("127.0.0.1:4000"), false, func(netip.AddrPort, []byte) {
			panic("test: a bug on the deferred path")
		}); out != nil {
			t.Fatal("answered at once")
		}
	}
	for deadline := time.Now().Add(10 * time.Second); strings.Count(logs.String(), "panic answering a forwarded query") < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("panics not logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := new(dns.Msg)
	m.SetQuestion("after.example.org.", dns.TypeA)
	if r := askFrom(t, h, m, "127.0.0.1:4000"); len(r.Answer) != 1 {
		t.Fatalf("after the panics: %v", r)
	}
}
