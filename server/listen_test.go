package server

import (
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestListenerServesUDPAndTCPAndRefusesATakenPort(t *testing.T) {
	h := exampleHandler(t, nil)
	l, err := Listen(h, ListenOptions{Addr: "127.0.0.1:0", UDPSockets: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve()
	defer l.Close()
	for _, netw := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: netw}
		m := new(dns.Msg)
		m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
		r, _, err := c.Exchange(m, l.Addr().String())
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("%s: %v %v", netw, r, err)
		}
	}
	_, err = Listen(h, ListenOptions{Addr: l.Addr().String()}, nil)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("a second listener on a taken port: %v, want address already in use", err)
	}
}

// TestUDPBurstEveryQueryAnsweredOnce sends bursts of queries from several
// client sockets before reading any answer, so the server reads many per
// recvmmsg and sends them with one sendmmsg: every query must get exactly
// its own answer (ID, spelling, rcode, source port), over IPv4 and IPv6.
func TestUDPBurstEveryQueryAnsweredOnce(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			h := exampleHandler(t, nil)
			l, err := Listen(h, ListenOptions{Addr: addr, UDPSockets: 1}, nil)
			if err != nil {
				if strings.Contains(addr, "::1") {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			go l.Serve()
			defer l.Close()
			const clients, perClient = 4, 100
			conns := make([]*net.UDPConn, clients)
			for i := range conns {
				c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.Addr()))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetReadBuffer(1 << 20)
				conns[i] = c
			}
			names := []struct {
				name  string
				rcode int
			}{
				{"Web-Server-Service.default.svc.cluster.local.", dns.RcodeSuccess},
				{"nothing-here.default.svc.cluster.local.", dns.RcodeNameError},
			}
			for k := 0; k < perClient; k++ {
				for i, c := range conns {
					m := new(dns.Msg)
					m.SetQuestion(names[k%2].name, dns.TypeA)
					m.Id = uint16(i*perClient + k)
					b, _ := m.Pack()
					if _, err := c.Write(b); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, c := range conns {
				seen := map[uint16]bool{}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 65535)
				for len(seen) < perClient {
					n, err := c.Read(buf)
					if err != nil {
						t.Fatalf("client %d: %d of %d answers: %v", i, len(seen), perClient, err)
					}
					r := new(dns.Msg)
					if err := r.Unpack(buf[:n]); err != nil {
						t.Fatal(err)
					}
					k := int(r.Id) - i*perClient
					if k < 0 || k >= perClient || seen[r.Id] {
						t.Fatalf("client %d got answer ID %d: not one of its queries, or twice", i, r.Id)
					}
					seen[r.Id] = true
					want := names[k%2]
					if r.Question[0].Name != want.name || r.Rcode != want.rcode {
						t.Fatalf("answer %d: %s rcode %d, want %s rcode %d", r.Id, r.Question[0].Name, r.Rcode, want.name, want.rcode)
					}
				}
			}
		})
	}
}

// TestUDPOversizeQueryGetsFORMERR: a datagram longer than the server reads
// whole over UDP is answered FORMERR with its ID, and the socket goes on.
func TestUDPOversizeQueryGetsFORMERR(t *testing.T) {
	l := startListener(t, exampleHandler(t, nil), ListenOptions{UDPSockets: 1}, nil)
	m := new(dns.Msg)
	m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	m.Id = 4242
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232}}
	opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, 6000)})
	m.Extra = append(m.Extra, opt)
	big, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if r.Id != 4242 || r.Rcode != dns.RcodeFormatError {
		t.Fatalf("%d-byte query: answer ID %d rcode %s, want ID 4242 FORMERR", len(big), r.Id, dns.RcodeToString[r.Rcode])
	}
	// The same query without padding is answered.
	m.Extra = nil
	r, _, err = (&dns.Client{}).Exchange(m, l.Addr().String())
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("after the oversize query: %v %v", r, err)
	}
}

// TestUDPCloseStopsUnderFlood: Close stops the read loops even when the
// socket is never empty.
func TestUDPCloseStopsUnderFlood(t *testing.T) {
	l, err := Listen(exampleHandler(t, nil), ListenOptions{Addr: "127.0.0.1:0", UDPSockets: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { l.Serve(); close(served) }()
	c, b := dialExampleQuery(t, l)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				c.Write(b)
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	l.Close()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5 s of Close under a flood")
	}
}

// TestUDPAnswersAllocateNothing: the whole UDP path, the listener's loop
// included and not only Handler.Respond, answers without allocating per
// query (counted over the process while 2,000 queries are answered).
func TestUDPAnswersAllocateNothing(t *testing.T) {
	l := startListener(t, exampleHandler(t, nil), ListenOptions{UDPSockets: 1}, nil)
	c, q := dialExampleQuery(t, l)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	exchange := func(n int) {
		for range n {
			if _, err := c.Write(q); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	exchange(100)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 2000
	exchange(n)
	runtime.ReadMemStats(&after)
	if d := after.Mallocs - before.Mallocs; d > n/10 {
		t.Fatalf("%d allocations while answering %d UDP queries", d, n)
	}
}

// dialExampleQuery returns a UDP socket connected to l, closed when the
// test ends, and a packed A query for a service of the example cluster.
func dialExampleQuery(t *testing.T, l *Listener) (*net.UDPConn, []byte) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	m := new(dns.Msg)
	m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	q, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return c, q
}

// TestUDPBurstsOfEverySizeAroundABatch sends bursts of 1, batch-1, batch,
// batch+1 and 2*batch+1 queries, reading every answer before the next
// burst: the read loop parks after a recvmmsg that returned fewer than its
// limit (udp_linux.go), so the next query, arriving on an empty socket,
// must wake it, and a burst longer than a batch must be read to its end.
// The first burst is queued before Serve starts. (Whether a wrong rule
// fails here depends on when the runtime's poller sees the readiness
// events, so this checks the answers, not the rule.)
func TestUDPBurstsOfEverySizeAroundABatch(t *testing.T) {
	l, err := Listen(exampleHandler(t, nil), ListenOptions{Addr: "127.0.0.1:0", UDPSockets: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, q := dialExampleQuery(t, l)
	c.SetReadBuffer(1 << 20)
	const batch = 16 // udpBatch on Linux; any size works elsewhere
	buf := make([]byte, 65535)
	id := uint16(0)
	sizes := []int{2*batch + 1, 1, batch - 1, batch, batch + 1, 2*batch + 1, 1, 1}
	for round := 0; round < 3; round++ {
		for k, size := range sizes {
			first := id
			for i := 0; i < size; i++ {
				q[0], q[1] = byte(id>>8), byte(id)
				if _, err := c.Write(q); err != nil {
					t.Fatal(err)
				}
				id++
			}
			if round == 0 && k == 0 {
				go l.Serve()
			}
			seen := map[uint16]bool{}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for len(seen) < size {
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("round %d, burst of %d: %d answers: %v", round, size, len(seen), err)
				}
				got := uint16(buf[0])<<8 | uint16(buf[1])
				if n < 12 || got-first >= uint16(size) || seen[got] || buf[3]&0xf != dns.RcodeSuccess {
					t.Fatalf("round %d, burst of %d: answer ID %d (rcode %d): not one of this burst's, or twice", round, size, got, buf[3]&0xf)
				}
				seen[got] = true
			}
		}
	}
}
