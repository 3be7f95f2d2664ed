package server

import (
	"bytes"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// FuzzForwardedReply feeds an arbitrary request and an arbitrary upstream
// (or cached) reply to what the handler does with a forwarded answer:
// patchForwarded (the client's ID, flags, question spelling), then
// findRun/rotate for every rotation. Nothing may panic; a run found lies
// inside the message; rotating a reply that miekg/dns can unpack keeps it
// unpackable with the same records; the patched reply carries the
// client's ID and question.
func FuzzForwardedReply(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("WWW.Example.COM.", dns.TypeA)
	req, _ := q.Pack()
	r := new(dns.Msg)
	r.SetQuestion("www.example.com.", dns.TypeA)
	r.Response = true
	for i := range 4 {
		rr, _ := dns.NewRR("www.example.com. 60 IN A 192.0.2." + string(rune('1'+i)))
		r.Answer = append(r.Answer, rr)
	}
	r.Compress = true
	resp, _ := r.Pack()
	f.Add(req, resp)
	c := new(dns.Msg)
	c.SetQuestion("www.example.com.", dns.TypeAAAA)
	c.Response = true
	cn, _ := dns.NewRR("www.example.com. 60 IN CNAME e.example.net.")
	a1, _ := dns.NewRR("e.example.net. 60 IN AAAA 2001:db8::1")
	a2, _ := dns.NewRR("e.example.net. 60 IN AAAA 2001:db8::2")
	c.Answer = []dns.RR{cn, a1, a2}
	c.Compress = true
	cresp, _ := c.Pack()
	q.Question[0].Qtype = dns.TypeAAAA
	q.SetEdns0(1232, true)
	req2, _ := q.Pack()
	f.Add(req2, cresp)
	f.Add(req, []byte{0, 0, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0})
	f.Add(req, append(append([]byte(nil), resp[:len(resp)-4]...), 0xC0, 0xFF))

	h := exampleHandler(f, func(o *Options) { o.AnswerOrder = "round_robin" })
	f.Fuzz(func(t *testing.T, req, resp []byte) {
		var q query
		if parseQuery(req, &q) != nil {
			return
		}
		// Raw bytes: findRun and rotate stay inside the message.
		if start, size, n, ok := findRun(resp); ok {
			if n < 2 || size <= 0 || start < headerLen || start+size*n > len(resp) {
				t.Fatalf("findRun: start %d size %d n %d in %d bytes", start, size, n, len(resp))
			}
			for k := range n + 1 {
				rotate(append([]byte(nil), resp...), start, size, n, k)
			}
		}
		// What the handler really rotates was packed by miekg/dns (the
		// forwarder repacks every upstream reply, compressed): there every
		// rotation keeps the reply readable with the same records.
		var before dns.Msg
		if before.Unpack(resp) == nil {
			before.Compress = true
			if packed, err := before.Pack(); err == nil && before.Unpack(packed) == nil {
				if start, size, n, ok := findRun(packed); ok {
					for k := range n + 1 {
						b := append([]byte(nil), packed...)
						rotate(b, start, size, n, k)
						var after dns.Msg
						if err := after.Unpack(b); err != nil {
							t.Fatalf("rotation %d of %d broke the reply: %v\n%x", k, n, err, packed)
						}
						if !sameRecords(before.Answer, after.Answer) {
							t.Fatalf("rotation %d changed the records:\n%v\n%v", k, before.Answer, after.Answer)
						}
					}
				}
			}
		}
		out := h.patchForwarded(append([]byte(nil), resp...), &q, req)
		if len(out) < q.qend {
			t.Fatalf("patched reply of %d bytes shorter than the question", len(out))
		}
		if !bytes.Equal(out[:2], req[:2]) || !bytes.Equal(out[headerLen:q.qend], req[headerLen:q.qend]) {
			t.Fatalf("patched reply lacks the client's ID or question: %x", out)
		}
		if out[2]&0x80 == 0 {
			t.Fatalf("patched reply without QR: %x", out)
		}
	})
}

func sameRecords(a, b []dns.RR) bool {
	if len(a) != len(b) {
		return false
	}
	sa, sb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		sa[i], sb[i] = a[i].String(), b[i].String()
	}
	slices.Sort(sa)
	slices.Sort(sb)
	return slices.Equal(sa, sb)
}
