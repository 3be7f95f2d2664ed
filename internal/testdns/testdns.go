// Package testdns starts real DNS servers on loopback ports for tests:
// upstreams for the forwarder, with a handler the test controls and a
// count of the queries they received.
package testdns

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Server is a miekg/dns server listening on one 127.0.0.1 port, UDP and TCP.
type Server struct {
	// Addr is host:port of both listeners.
	Addr string
	// Queries counts the questions received over either transport.
	Queries atomic.Int64
	udp     *dns.Server
	tcp     *dns.Server
	once    sync.Once
}

// Start serves h until the test ends (or Stop). It blocks until both
// listeners accept queries.
func Start(t testing.TB, h func(w dns.ResponseWriter, r *dns.Msg)) *Server {
	t.Helper()
	s := &Server{}
	// UDP picks a free port; TCP on the same port may be taken already
	// (other tests run in parallel): try again with another.
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatal(err)
		}
	}
	s.Addr = pc.LocalAddr().String()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		s.Queries.Add(1)
		h(w, r)
	})
	var started sync.WaitGroup
	started.Add(2)
	s.udp = &dns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: started.Done}
	s.tcp = &dns.Server{Listener: ln, Handler: handler, NotifyStartedFunc: started.Done}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	started.Wait()
	t.Cleanup(s.Stop)
	return s
}

// Stop closes both listeners; later queries get no answer (ICMP refusal
// over UDP, a refused connection over TCP).
func (s *Server) Stop() {
	s.once.Do(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
}

// AnswerA answers every question with one A record of ip and ttl.
func AnswerA(ip string, ttl uint32) func(w dns.ResponseWriter, r *dns.Msg) {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   net.ParseIP(ip).To4(),
			})
		}
		w.WriteMsg(m)
	}
}
