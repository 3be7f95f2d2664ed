package server

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
)

func TestRewriteRules(t *testing.T) {
	for _, c := range []struct {
		rules      []string
		name, want string
		matched    bool
	}{
		{[]string{"exact api.corp.example web.default.svc.cluster.local"}, "API.corp.example.", "web.default.svc.cluster.local.", true},
		{[]string{"api.corp.example. web.default.svc.cluster.local."}, "api.corp.example.", "web.default.svc.cluster.local.", true},
		{[]string{"exact api.corp.example web.default.svc.cluster.local"}, "x.api.corp.example.", "x.api.corp.example.", false},
		{[]string{"prefix old- new-"}, "old-db.example.", "new-db.example.", true},
		{[]string{"suffix .corp.example .svc.cluster.local"}, "web.default.corp.example.", "web.default.svc.cluster.local.", true},
		{[]string{"suffix .corp.example .svc.cluster.local"}, "corp.example.", "corp.example.", false},
		{[]string{"substring .staging. .prod."}, "db.staging.example.", "db.prod.example.", true},
		{[]string{`regex ^(.+)\.legacy\.example\.$ {1}.svc.cluster.local`}, "web.default.legacy.example.", "web.default.svc.cluster.local.", true},
		{[]string{`regex ^([a-z]+)-([a-z]+)\.example\.$ {2}.{1}.svc.cluster.local`}, "web-default.example.", "default.web.svc.cluster.local.", true},
		// The first match stops; continue goes on.
		{[]string{"exact a.example b.example", "exact b.example c.example"}, "a.example.", "b.example.", true},
		{[]string{"continue exact a.example b.example", "exact b.example c.example"}, "a.example.", "c.example.", true},
	} {
		rw, err := NewRewriter(c.rules)
		if err != nil {
			t.Fatalf("%v: %v", c.rules, err)
		}
		got, ok := rw.Rewrite(c.name)
		if got != c.want || ok != c.matched {
			t.Errorf("%v on %s: got %s %v, want %s %v", c.rules, c.name, got, ok, c.want, c.matched)
		}
	}
}

func TestRewriteBadRules(t *testing.T) {
	for _, s := range []string{"", "exact", "glob a b", "regex ([ b", "exact a b c d"} {
		if _, err := ParseRewriteRule(s); err == nil {
			t.Errorf("rule %q accepted", s)
		}
	}
	if rw, err := NewRewriter(nil); rw != nil || err != nil {
		t.Errorf("no rules: %v %v, want nil", rw, err)
	}
}

// TestRewriteAnswersUnderAskedName: a cluster name, an alias chain and
// a negative answer come back with the question as asked and the records
// owned by the asked name.
func TestRewriteAnswersUnderAskedName(t *testing.T) {
	rw, err := NewRewriter([]string{"exact api.corp.example web-server-service.default.svc.cluster.local", `regex ^(.+)\.legacy\.example\.$ {1}.svc.cluster.local`})
	if err != nil {
		t.Fatal(err)
	}
	h := exampleHandler(t, func(o *Options) { o.Rewrite = rw })
	r := ask(t, h, question("Api.Corp.Example.", dns.TypeA), false)
	if r.Question[0].Name != "Api.Corp.Example." || len(r.Answer) != 1 || r.Answer[0].Header().Name != "Api.Corp.Example." || r.Answer[0].(*dns.A).A.String() != "10.96.0.100" {
		t.Fatalf("exact rewrite: %v", r)
	}
	r = ask(t, h, question("search.apps.legacy.example.", dns.TypeA), false)
	if len(r.Answer) != 2 || r.Answer[0].Header().Name != "search.apps.legacy.example." || r.Answer[0].(*dns.CNAME).Target != "www.example.test." || r.Answer[1].Header().Name != "www.example.test." {
		t.Fatalf("regex rewrite to an alias: %v", r)
	}
	r = ask(t, h, question("nothere.default.legacy.example.", dns.TypeA), false)
	if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || !strings.HasSuffix(r.Ns[0].Header().Name, "cluster.local.") {
		t.Fatalf("rewritten to a missing cluster name: %v", r)
	}
	// Not matched: answered as is.
	r = ask(t, h, question("web-server-service.default.svc.cluster.local.", dns.TypeA), false)
	if len(r.Answer) != 1 || r.Answer[0].Header().Name != "web-server-service.default.svc.cluster.local." {
		t.Fatalf("unrewritten name: %v", r)
	}
}

// TestRewriteForwarded: a name rewritten to one outside the served zones
// is asked upstream under the new name and given back under the old one.
func TestRewriteForwarded(t *testing.T) {
	var asked []string
	up := testdns.Start(t, func(w dns.ResponseWriter, m *dns.Msg) {
		asked = append(asked, m.Question[0].Name)
		r := new(dns.Msg)
		r.SetReply(m)
		rr, _ := dns.NewRR(m.Question[0].Name + " 60 IN A 192.0.2.44")
		r.Answer = []dns.RR{rr}
		_ = w.WriteMsg(r)
	})
	h := forwardingHandler(t, up.Addr, false)
	rw, err := NewRewriter([]string{"suffix .old.example .new.example"})
	if err != nil {
		t.Fatal(err)
	}
	h.opt.Rewrite = rw
	m := question("www.old.example.", dns.TypeA)
	m.SetEdns0(1232, false)
	r := askFrom(t, h, m, "127.0.0.1:4000")
	if r.Question[0].Name != "www.old.example." || len(r.Answer) != 1 || r.Answer[0].Header().Name != "www.old.example." || r.IsEdns0() == nil {
		t.Fatalf("forwarded rewrite: %v", r)
	}
	if len(asked) != 1 || asked[0] != "www.new.example." {
		t.Fatalf("upstream asked %v, want www.new.example.", asked)
	}
}

// TestRewriteTruncates: 30 addresses fit 512 bytes under big.example but
// not under the longer asked name: the answer given back is truncated to
// the client's UDP size (TC=1); over TCP it is whole.
func TestRewriteTruncates(t *testing.T) {
	var entries []string
	for i := 1; i <= 30; i++ {
		entries = append(entries, "10.9.0."+strconv.Itoa(i)+" big.example")
	}
	hs, err := NewHosts(HostsOptions{Entries: entries, TTL: 5, Fallthrough: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	long := "a-much-longer-name-than-the-one-it-becomes.example."
	rw, err := NewRewriter([]string{"exact " + long + " big.example"})
	if err != nil {
		t.Fatal(err)
	}
	h := exampleHandler(t, func(o *Options) { o.Hosts, o.Rewrite = hs, rw })
	m := question(long, dns.TypeA)
	req, _ := m.Pack()
	out := h.Respond(req, make([]byte, 0, 65535), netip.MustParseAddrPort("127.0.0.1:5000"), false, nil)
	var r dns.Msg
	if err := r.Unpack(out); err != nil {
		t.Fatal(err)
	}
	inner, _ := question("big.example.", dns.TypeA).Pack()
	if n := len(h.Respond(inner, make([]byte, 0, 65535), netip.MustParseAddrPort("127.0.0.1:5000"), false, nil)); n > dns.MinMsgSize {
		t.Fatalf("the unrewritten answer (%d bytes) should fit 512 bytes for this test", n)
	}
	if len(out) > dns.MinMsgSize || !r.Truncated || r.Question[0].Name != long {
		t.Fatalf("UDP: %d bytes, TC %v, question %s", len(out), r.Truncated, r.Question[0].Name)
	}
	tcp := ask(t, h, m, true)
	if tcp.Truncated || len(tcp.Answer) != 30 || tcp.Answer[0].Header().Name != long {
		t.Fatalf("TCP: TC %v, %d answers", tcp.Truncated, len(tcp.Answer))
	}
}

// BenchmarkRewriteNoMatch is a cluster answer on a server with rewrite
// rules that do not match the question (compare BenchmarkRewriteNone).
func BenchmarkRewriteNoMatch(b *testing.B) {
	rw, err := NewRewriter([]string{"exact api.corp.example web.default.svc.cluster.local", `regex ^(.+)\.legacy\.example\.$ {1}.svc.cluster.local`, "suffix .old.example .new.example"})
	if err != nil {
		b.Fatal(err)
	}
	benchRespond(b, exampleHandler(b, func(o *Options) { o.Rewrite = rw }))
}

// BenchmarkRewriteNone is the same answer without rules.
func BenchmarkRewriteNone(b *testing.B) { benchRespond(b, exampleHandler(b, nil)) }

// BenchmarkRewriteMatch is a question an exact rule rewrites.
func BenchmarkRewriteMatch(b *testing.B) {
	rw, err := NewRewriter([]string{"exact api.corp.example web-server-service.default.svc.cluster.local"})
	if err != nil {
		b.Fatal(err)
	}
	h := exampleHandler(b, func(o *Options) { o.Rewrite = rw })
	req, _ := question("api.corp.example.", dns.TypeA).Pack()
	out := make([]byte, 0, 4096)
	client := netip.MustParseAddrPort("127.0.0.1:5000")
	b.ReportAllocs()
	for b.Loop() {
		h.Respond(req, out, client, false, nil)
	}
}

func benchRespond(b *testing.B, h *Handler) {
	req, _ := question("web-server-service.default.svc.cluster.local.", dns.TypeA).Pack()
	out := make([]byte, 0, 4096)
	client := netip.MustParseAddrPort("127.0.0.1:5000")
	b.ReportAllocs()
	for b.Loop() {
		h.Respond(req, out, client, false, nil)
	}
}
