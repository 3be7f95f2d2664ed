package resolver

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// seedReplies are real upstream replies: an answer, a CNAME chain, NXDOMAIN
// with SOA, one with OPT, a compressed multi-record answer.
func seedReplies(f *testing.F) {
	f.Helper()
	msgs := []string{
		"www.example.com. 60 IN A 192.0.2.1",
		"a.example.com. 300 IN CNAME b.example.com.|b.example.com. 30 IN A 192.0.2.2|b.example.com. 30 IN A 192.0.2.3",
		"x.example.com. 10 IN AAAA 2001:db8::1|x.example.com. 10 IN AAAA 2001:db8::2",
		"_s._tcp.example.com. 60 IN SRV 0 10 80 t.example.com.",
		"example.com. 60 IN MX 10 mail.example.com.|example.com. 60 IN TXT \"v=spf1 -all\"",
	}
	for _, s := range msgs {
		m := new(dns.Msg)
		for i, line := range splitBar(s) {
			rr, err := dns.NewRR(line)
			if err != nil {
				f.Fatal(err)
			}
			if i == 0 {
				m.SetQuestion(rr.Header().Name, rr.Header().Rrtype)
				m.Response = true
			}
			m.Answer = append(m.Answer, rr)
		}
		m.Compress = true
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		m.SetEdns0(1232, true)
		b, _ = m.Pack()
		f.Add(b)
	}
	nx := new(dns.Msg)
	nx.SetQuestion("nope.example.com.", dns.TypeA)
	nx.Rcode, nx.Response = dns.RcodeNameError, true
	soa, _ := dns.NewRR("example.com. 3600 IN SOA ns. host. 1 7200 900 1209600 7")
	nx.Ns = append(nx.Ns, soa)
	b, _ := nx.Pack()
	f.Add(b)
	f.Add([]byte{0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4})
}

func splitBar(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '|' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// FuzzUpstreamReply feeds arbitrary bytes to the code that handles an
// upstream's reply: ttlOffsets on the raw bytes, and what the forwarder
// does with a reply miekg/dns unpacks (strip OPT, Cache.Put, Pack), then
// Cache.Get fresh, counted down and stale. Nothing may panic, TTL offsets
// stay inside the message, and what the cache returns unpacks again with
// TTLs no larger than stored.
func FuzzUpstreamReply(f *testing.F) {
	seedReplies(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if offs, err := ttlOffsets(data); err == nil {
			for _, o := range offs {
				if o < 12 || o+4 > len(data) {
					t.Fatalf("TTL offset %d outside a %d-byte message", o, len(data))
				}
			}
		}
		m := new(dns.Msg)
		if err := m.Unpack(data); err != nil {
			return // miekg/dns refuses it: the forwarder sees an exchange error
		}
		m.Extra = stripOPT(m.Extra)
		m.Compress = true
		c := NewCache(CacheOptions{MaxEntries: 4, MaxTTL: time.Hour, StaleFor: time.Hour, PrefetchPct: 50, PrefetchMin: 1})
		now := time.Unix(1_700_000_000, 0)
		c.now = func() time.Time { return now }
		stored := c.Put("k", m)
		if _, err := m.Pack(); err != nil && stored {
			t.Fatalf("cached a reply that does not pack: %v", err)
		}
		for _, step := range []time.Duration{0, time.Second, 2 * time.Hour} {
			now = now.Add(step)
			out, hit := c.Get("k", make([]byte, 0, 16))
			if !stored {
				if hit != Miss {
					t.Fatalf("not stored but Get says %v", hit)
				}
				return
			}
			if hit == Miss {
				continue // expired past the stale window
			}
			r := new(dns.Msg)
			if err := r.Unpack(out); err != nil {
				t.Fatalf("cached reply does not unpack (%v): %x", err, out)
			}
			offs, err := ttlOffsets(out)
			if err != nil {
				t.Fatalf("ttlOffsets of a cached reply: %v", err)
			}
			for _, o := range offs {
				if ttl := binary.BigEndian.Uint32(out[o:]); ttl > 3600 {
					t.Fatalf("TTL %d above the 1 h clamp (hit %v)", ttl, hit)
				}
			}
		}
	})
}
