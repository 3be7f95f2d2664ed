package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// fakeUpstream is a recursive server on loopback for the forwarding tests:
// it answers example.org names from a fixed table and counts the questions.
type fakeUpstream struct {
	addr string
	mu   sync.Mutex
	asks map[string]int // "name type" -> queries received
}

const upstreamBigCount = 100

func startFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{asks: map[string]int{}}
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		port := freePort(t)
		var err error
		pc, err = net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			ln, err = net.Listen("tcp4", pc.LocalAddr().String())
			if err == nil {
				break
			}
			pc.Close()
		}
		if i == 5 {
			t.Fatalf("fake upstream: %v", err)
		}
	}
	u.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(u.serve)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return u
}

func (u *fakeUpstream) count(name, qtype string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.asks[strings.ToLower(dns.Fqdn(name))+" "+qtype]
}

func (u *fakeUpstream) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	u.mu.Lock()
	u.asks[name+" "+dns.TypeToString[q.Qtype]]++
	u.mu.Unlock()
	soa, _ := dns.NewRR("example.org. 30 IN SOA ns.example.org. hostmaster.example.org. 1 3600 600 86400 30")
	switch {
	case name == "www.example.org." && q.Qtype == dns.TypeA:
		a, _ := dns.NewRR(q.Name + " 60 IN A 192.0.2.10")
		m.Answer = append(m.Answer, a)
	case name == "big.example.org." && q.Qtype == dns.TypeA:
		for i := 0; i < upstreamBigCount; i++ {
			a, _ := dns.NewRR(fmt.Sprintf("%s 60 IN A 192.0.2.%d", q.Name, i+1))
			m.Answer = append(m.Answer, a)
		}
	case name == "www.example.org." || name == "big.example.org.":
		m.Ns = append(m.Ns, soa)
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, soa)
	}
	size := 512
	if o := req.IsEdns0(); o != nil {
		size = int(o.UDPSize())
		m.SetEdns0(o.UDPSize(), false)
	}
	if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// TestForwarding sends names outside the served zones to an upstream on
// loopback (--upstreams), never beyond.
func TestForwarding(t *testing.T) {
	requireTools(t, "dig")
	up := startFakeUpstream(t)
	dir := copyZones(t)
	s := launch(t, launchOpts{dir: dir, args: func(port int) ([]string, []string) {
		args := standardArgs(dir, port)
		for i, a := range args {
			if a == noForwarding {
				args[i] = "--upstreams=" + up.addr
			}
		}
		return args, nil
	}})

	t.Run("answer", func(t *testing.T) {
		r := s.dig(t, "www.example.org", "A")
		r.wantStatus(t, "NOERROR")
		r.wantFlags(t, "qr", "rd", "ra")
		r.wantNoFlags(t, "aa")
		if len(r.answer) != 1 || r.answer[0].Header().Ttl > 60 || r.answer[0].Header().Ttl == 0 {
			t.Fatalf("want one A record with a TTL in (0, 60]\n%s", r)
		}
		if a, ok := r.answer[0].(*dns.A); !ok || a.A.String() != "192.0.2.10" {
			t.Errorf("answer %s, want A 192.0.2.10\n%s", r.answer[0], r)
		}
	})
	t.Run("cached", func(t *testing.T) {
		before := up.count("www.example.org", "A")
		r := s.dig(t, "www.example.org", "A", "+tcp")
		r.wantStatus(t, "NOERROR")
		if got := up.count("www.example.org", "A"); got != before {
			t.Errorf("the upstream was asked again (%d -> %d) within the answer's TTL: no caching", before, got)
		}
	})
	t.Run("nxdomain-with-soa", func(t *testing.T) {
		r := s.dig(t, "nothere.example.org", "A")
		r.wantStatus(t, "NXDOMAIN")
		if len(r.authority) != 1 || r.authority[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("want the upstream's SOA in authority\n%s", r)
		}
	})
	t.Run("truncated-upstream-retried-over-tcp", func(t *testing.T) {
		// 100 A records do not fit the upstream's UDP reply: the
		// forwarder must ask again over TCP and give the client all of
		// them (over TCP here, as the client's UDP cannot hold them).
		r := s.dig(t, "big.example.org", "A", "+tcp")
		r.wantStatus(t, "NOERROR")
		if len(r.answer) != upstreamBigCount {
			t.Errorf("%d answer records, want %d\n%s", len(r.answer), upstreamBigCount, r)
		}
	})
	t.Run("cluster-names-still-authoritative", func(t *testing.T) {
		r := s.dig(t, webName, "A")
		r.wantStatus(t, "NOERROR")
		r.wantFlags(t, "aa")
		r.wantRecords(t, "answer", rr("%s %d IN A 10.96.0.100", webFQDN, clusterTTL))
		r = s.dig(t, "nothere.default.svc.cluster.local", "A")
		r.wantNegative(t, "NXDOMAIN", "cluster.local")
		if up.count("nothere.default.svc.cluster.local", "A") != 0 {
			t.Errorf("a name of the served zone was forwarded")
		}
	})
}
