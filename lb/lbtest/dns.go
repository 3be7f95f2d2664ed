// Package lbtest provides what tests of package lb and of its users need: a DNS
// server on loopback whose records and failures the test controls, and HTTP
// backends on distinct loopback addresses. It is test support, not product code.
package lbtest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/internal/testdns"
	"github.com/miekg/dns"
)

// Failure selects how the DNS server misbehaves.
type Failure int

// Failure modes of DNS.
const (
	Answer   Failure = iota // answer from the records (default)
	ServFail                // SERVFAIL to everything
	Empty                   // NOERROR with no answer to everything
	NXDomain                // NXDOMAIN to everything
	Drop                    // no reply at all (clients time out)
)

// SRV is one SRV record's data.
type SRV struct {
	Priority, Weight, Port uint16
	Target                 string // host name, or "." for "no service"
}

// DNS is an authoritative-only DNS server on 127.0.0.1, UDP and TCP on the same
// port (internal/testdns), serving the records the test sets. SRV answers carry
// the targets' A/AAAA records in the Additional section; UDP answers are
// truncated (TC=1) to the client's EDNS0 size, so large sets exercise the TCP
// fallback.
type DNS struct {
	// Addr is "127.0.0.1:port", for lb.ResolverConfig.Server.
	Addr string

	srv     *testdns.Server
	mu      sync.Mutex
	records map[string]map[uint16][]dns.RR // lower-case FQDN → type → records
	failure Failure
	noExtra bool
}

// StartDNS starts a server; it stops when the test ends.
func StartDNS(tb testing.TB) *DNS {
	tb.Helper()
	d := &DNS{records: make(map[string]map[uint16][]dns.RR)}
	d.srv = testdns.Start(tb, d.serve)
	d.Addr = d.srv.Addr
	return d
}

func fqdn(name string) string { return strings.ToLower(dns.Fqdn(name)) }

func (d *DNS) set(name string, qtype uint16, rrs []dns.RR) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := fqdn(name)
	if d.records[n] == nil {
		d.records[n] = make(map[uint16][]dns.RR)
	}
	if len(rrs) == 0 {
		delete(d.records[n], qtype)
		return
	}
	d.records[n][qtype] = rrs
}

func hdr(name string, qtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: fqdn(name), Rrtype: qtype, Class: dns.ClassINET, Ttl: ttl}
}

// SetAddrs replaces the A and AAAA records of name (the name keeps existing,
// NODATA, when addrs is empty).
func (d *DNS) SetAddrs(name string, ttl uint32, addrs ...netip.Addr) {
	var a, aaaa []dns.RR
	for _, ip := range addrs {
		if ip.Is4() {
			a = append(a, &dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: ip.AsSlice()})
		} else {
			aaaa = append(aaaa, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, ttl), AAAA: ip.AsSlice()})
		}
	}
	d.set(name, dns.TypeA, a)
	d.set(name, dns.TypeAAAA, aaaa)
}

// SetSRV replaces the SRV records of name.
func (d *DNS) SetSRV(name string, ttl uint32, srvs ...SRV) {
	rrs := make([]dns.RR, 0, len(srvs))
	for _, s := range srvs {
		rrs = append(rrs, &dns.SRV{Hdr: hdr(name, dns.TypeSRV, ttl), Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: dns.Fqdn(s.Target)})
	}
	d.set(name, dns.TypeSRV, rrs)
}

// SetTXT replaces the TXT records of name, one record per strings slice.
func (d *DNS) SetTXT(name string, ttl uint32, records ...[]string) {
	rrs := make([]dns.RR, 0, len(records))
	for _, txt := range records {
		rrs = append(rrs, &dns.TXT{Hdr: hdr(name, dns.TypeTXT, ttl), Txt: txt})
	}
	d.set(name, dns.TypeTXT, rrs)
}

// Delete removes every record of name (it answers NXDOMAIN afterwards).
func (d *DNS) Delete(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.records, fqdn(name))
}

// SetFailure makes the server misbehave (or, with Answer, behave again).
func (d *DNS) SetFailure(f Failure) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failure = f
}

// SetOmitAdditional stops (or resumes) adding SRV targets' addresses to the
// Additional section, so clients must query them.
func (d *DNS) SetOmitAdditional(omit bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.noExtra = omit
}

// Queries returns the number of queries received so far.
func (d *DNS) Queries() int64 { return d.srv.Queries.Load() }

func (d *DNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if d.fill(m, req) {
		return
	}
	size := dns.MaxMsgSize
	if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
		size = dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	m.Truncate(size)
	w.WriteMsg(m)
}

// fill builds the answer; it returns true to drop the query.
func (d *DNS) fill(m, req *dns.Msg) (drop bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.failure {
	case Drop:
		return true
	case ServFail:
		m.Rcode = dns.RcodeServerFailure
		return false
	case Empty:
		return false
	case NXDomain:
		m.Rcode = dns.RcodeNameError
		return false
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return false
	}
	q := req.Question[0]
	types, ok := d.records[strings.ToLower(q.Name)]
	if !ok {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{d.soa()}
		return false
	}
	for _, rr := range types[q.Qtype] {
		c := dns.Copy(rr)
		c.Header().Name = q.Name
		m.Answer = append(m.Answer, c)
		if srv, ok := rr.(*dns.SRV); ok && !d.noExtra {
			for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
				for _, a := range d.records[strings.ToLower(srv.Target)][t] {
					m.Extra = append(m.Extra, dns.Copy(a))
				}
			}
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{d.soa()}
	}
	return false
}

func (d *DNS) soa() dns.RR {
	return &dns.SOA{Hdr: hdr("cluster.local", dns.TypeSOA, 5), Ns: "ns.dns.cluster.local.", Mbox: "hostmaster.cluster.local.",
		Serial: uint32(time.Now().Unix()), Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: 5}
}
