package server

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// response packs a reply to name/qtype with rcode, as the handler would.
func rrlResponse(t *testing.T, name string, qtype uint16, rcode int) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Response, m.Rcode = true, rcode
	if rcode == dns.RcodeSuccess {
		rr, _ := dns.NewRR(name + " 5 IN A 10.0.0.1")
		m.Answer = append(m.Answer, rr)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestRRL(t *testing.T, opt RRLOptions) (*RRL, *time.Time) {
	t.Helper()
	r, err := NewRRL(opt)
	if err != nil || r == nil {
		t.Fatalf("NewRRL(%+v): %v, %v", opt, r, err)
	}
	now := time.Unix(1_700_000_000, 0)
	r.now = func() time.Time { return now }
	return r, &now
}

// tally checks n copies of resp from client and counts the outcomes.
func tally(r *RRL, client string, resp []byte, n int) (sent, dropped, slipped int) {
	a := netip.MustParseAddr(client)
	for range n {
		switch r.check(a, resp) {
		case rrlSend:
			sent++
		case rrlDrop:
			dropped++
		case rrlSlip:
			slipped++
		}
	}
	return
}

func TestRRLOffByDefaultAndValidated(t *testing.T) {
	if r, err := NewRRL(RRLOptions{}); r != nil || err != nil {
		t.Fatalf("rate 0 must turn RRL off: %v %v", r, err)
	}
	for _, bad := range []RRLOptions{{ResponsesPerSecond: -1}, {ResponsesPerSecond: 1, Slip: -1}, {ResponsesPerSecond: 1, Window: -time.Second}} {
		if _, err := NewRRL(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRRLBuckets(t *testing.T) {
	r, now := newTestRRL(t, RRLOptions{ResponsesPerSecond: 5, Slip: 2, Window: 2 * time.Second})
	web := rrlResponse(t, "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess)

	// A burst of 20 identical answers to one client: one second's worth
	// (5) goes out, of the 15 over the limit every 2nd slips.
	if s, d, sl := tally(r, "192.0.2.10", web, 20); s != 5 || sl != 7 || d != 8 {
		t.Fatalf("burst of 20 at 5/s: sent %d dropped %d slipped %d, want 5 8 7", s, d, sl)
	}
	// The same /24 shares the bucket; spelling does not matter.
	webUpper := rrlResponse(t, "WEB.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess)
	if s, _, _ := tally(r, "192.0.2.200", webUpper, 3); s != 0 {
		t.Fatalf("same /24, same answer: %d sent, want 0", s)
	}
	// Another /24, another name, another type: buckets of their own.
	if s, _, _ := tally(r, "192.0.3.10", web, 5); s != 5 {
		t.Fatalf("another /24: %d of 5 sent", s)
	}
	other := rrlResponse(t, "other.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess)
	if s, _, _ := tally(r, "192.0.2.10", other, 5); s != 5 {
		t.Fatalf("another name: %d of 5 sent", s)
	}
	aaaa := rrlResponse(t, "web.default.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess)
	if s, _, _ := tally(r, "192.0.2.10", aaaa, 5); s != 5 {
		t.Fatalf("another type: %d of 5 sent", s)
	}

	// NXDOMAIN for different names shares one bucket per network.
	sentNX := 0
	for i := range 20 {
		nx := rrlResponse(t, "r"+string(rune('a'+i))+".cluster.local.", dns.TypeA, dns.RcodeNameError)
		s, _, _ := tally(r, "198.51.100.1", nx, 1)
		sentNX += s
	}
	if sentNX != 5 {
		t.Fatalf("20 random NXDOMAIN names: %d sent, want 5 (one bucket)", sentNX)
	}

	// IPv6 clients are grouped by /56.
	if s, _, _ := tally(r, "2001:db8:0:ff::1", web, 5); s != 5 {
		t.Fatalf("IPv6 first client: %d of 5", s)
	}
	if s, _, _ := tally(r, "2001:db8:0:1::2", web, 1); s != 0 {
		t.Fatalf("same /56: %d sent, want 0", s)
	}
	if s, _, _ := tally(r, "2001:db8:0:100::2", web, 1); s != 1 {
		t.Fatalf("another /56: %d sent, want 1", s)
	}

	// Debt: the flooding client stays limited for up to the window (2 s)
	// after the flood, then gets one second's worth again.
	*now = now.Add(time.Second)
	if s, _, _ := tally(r, "192.0.2.10", web, 1); s != 0 {
		t.Fatalf("1 s after the flood the debt is not paid: %d sent", s)
	}
	*now = now.Add(3 * time.Second)
	if s, _, _ := tally(r, "192.0.2.10", web, 10); s != 5 {
		t.Fatalf("after the window: %d of 10 sent, want 5", s)
	}
	// Steady rate within the limit: never limited.
	for range 50 {
		*now = now.Add(250 * time.Millisecond) // 4/s < 5/s
		if s, _, _ := tally(r, "192.0.3.77", other, 1); s != 1 {
			t.Fatal("a client within the rate was limited")
		}
	}
	sent, dropped, slipped := r.Counts()
	if sent == 0 || dropped == 0 || slipped == 0 {
		t.Fatalf("counts %d %d %d", sent, dropped, slipped)
	}
}

func TestRRLSlipZeroAndOne(t *testing.T) {
	web := rrlResponse(t, "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess)
	r0, _ := newTestRRL(t, RRLOptions{ResponsesPerSecond: 1, Slip: 0})
	if s, d, sl := tally(r0, "10.0.0.1", web, 10); s != 1 || d != 9 || sl != 0 {
		t.Fatalf("slip 0: %d %d %d", s, d, sl)
	}
	r1, _ := newTestRRL(t, RRLOptions{ResponsesPerSecond: 1, Slip: 1})
	if s, d, sl := tally(r1, "10.0.0.1", web, 10); s != 1 || d != 0 || sl != 9 {
		t.Fatalf("slip 1: %d %d %d", s, d, sl)
	}
}

// The table is fixed: a flood of distinct clients and names does not grow
// it (the oldest buckets are forgotten).
func TestRRLTableIsBounded(t *testing.T) {
	r, _ := newTestRRL(t, RRLOptions{ResponsesPerSecond: 1, Entries: 1024})
	web := rrlResponse(t, "web.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess)
	for i := range 200_000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		r.check(a, web)
	}
	if len(r.buckets) != 1024 {
		t.Fatalf("table grew to %d", len(r.buckets))
	}
	allocs := testing.AllocsPerRun(1000, func() { r.check(netip.MustParseAddr("10.9.9.9"), web) })
	if allocs != 0 {
		t.Fatalf("check allocates %.1f times", allocs)
	}
}

func TestSlipResponseIsTruncatedQuestionOnly(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("Web.Default.svc.cluster.local.", dns.TypeA)
	q.SetEdns0(1232, false)
	h := exampleHandler(t, nil)
	req, _ := q.Pack()
	resp := h.Respond(req, nil, netip.MustParseAddrPort("127.0.0.1:1"), false, nil)
	tc := slipResponse(resp)
	var m dns.Msg
	if err := m.Unpack(tc); err != nil {
		t.Fatal(err)
	}
	if !m.Truncated || !m.Response || m.Id != q.Id || len(m.Answer)+len(m.Ns)+len(m.Extra) != 0 ||
		len(m.Question) != 1 || m.Question[0].Name != "Web.Default.svc.cluster.local." {
		t.Fatalf("slip response: %v", &m)
	}
	// A header-only response (FORMERR) slips as a header.
	if m := slipResponse(formErr(nil, req)); len(m) != headerLen || m[2]&2 == 0 {
		t.Fatalf("FORMERR slip: %x", m)
	}
}

// Over real sockets: a UDP flood of one answer to one client is limited
// (answers, then truncated slips, the rest dropped), TCP is never limited,
// other answers are not affected, and the client is served again once the
// window has passed.
func TestRRLOverTheWire(t *testing.T) {
	h := exampleHandler(t, nil)
	rrl, err := NewRRL(RRLOptions{ResponsesPerSecond: 5, Slip: 2, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Listen(h, ListenOptions{Addr: "127.0.0.1:0", UDPSockets: 1, RRL: rrl}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve()
	defer l.Close()
	addr := net.UDPAddrFromAddrPort(l.Addr())
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const flood = 60
	m := new(dns.Msg)
	m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
	for i := range flood {
		m.Id = uint16(i + 1)
		b, _ := m.Pack()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	full, truncated := 0, 0
	buf := make([]byte, 65535)
	for {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		var r dns.Msg
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Truncated && len(r.Answer) == 0:
			truncated++
		case len(r.Answer) == 1:
			full++
		default:
			t.Fatalf("unexpected response %v", &r)
		}
	}
	_, dropped, slipped := rrl.Counts()
	t.Logf("flood of %d: %d answers, %d truncated, %d dropped", flood, full, truncated, dropped)
	// 5 tokens, plus what the flood's duration earns on a slow machine.
	if full < 5 || full > 15 || truncated == 0 || uint64(truncated) != slipped || full+truncated+int(dropped) != flood {
		t.Fatalf("flood of %d at 5/s, slip 2: %d answers, %d truncated, %d dropped", flood, full, truncated, dropped)
	}

	// TCP is never limited.
	tcp := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	for range 10 {
		r, _, err := tcp.Exchange(m, l.Addr().String())
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("TCP under the limit: %v %v", r, err)
		}
	}
	// Another answer to the same client is not limited.
	udp := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	other := new(dns.Msg)
	other.SetQuestion("kube-dns.kube-system.svc.cluster.local.", dns.TypeA)
	if r, _, err := udp.Exchange(other, l.Addr().String()); err != nil || len(r.Answer) != 1 {
		t.Fatalf("another answer: %v %v", r, err)
	}
	// After the window (1 s of debt at 5/s, then tokens) the answer comes back.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, _, err := udp.Exchange(m, l.Addr().String())
		if err == nil && len(r.Answer) == 1 && !r.Truncated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still limited 5 s after the flood: %v %v", r, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
