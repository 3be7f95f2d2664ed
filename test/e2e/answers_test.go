package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The answers where clusterdns decides what CoreDNS leaves open or does
// differently (README "Differences from CoreDNS"): reverse zones, empty
// non-terminals and the spelling of names, asked with the real dig.

// startForwarding starts the example server forwarding to up, with extra
// flags.
func startForwarding(t *testing.T, up *upstream, extra ...string) *server {
	t.Helper()
	dir := copyZones(t)
	return launch(t, launchOpts{dir: dir, args: func(port int) ([]string, []string) {
		args := slices.DeleteFunc(standardArgs(dir, port), func(a string) bool { return a == noForwarding })
		return append(append(args, "--upstreams", up.Addr), extra...), nil
	}})
}

// wantExact checks that a section holds exactly want, names compared
// byte for byte (wantRecords ignores case).
func (r *digResult) wantExact(t *testing.T, section string, want ...string) {
	t.Helper()
	var g, w []string
	for _, rr := range r.section(t, section) {
		g = append(g, rr.String())
	}
	for _, s := range want {
		w = append(w, mustRR(t, s).String())
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s section, spelled exactly:\n  got  %q\n  want %q\n%s", section, g, w, r)
	}
}

const v6Zone = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa"

func TestReverseZonesDig(t *testing.T) {
	requireTools(t, "dig")
	up := startUpstream(t, "192.0.2.10", "outside.example.")
	s := startForwarding(t, up, "--reverse-zones", "10.96.0.0/12,fd00:10:96::/112")

	r := s.dig(t, "-x", "10.96.0.100")
	r.wantFlags(t, "aa")
	r.wantRecords(t, "answer", "100.0.96.10.in-addr.arpa. 5 IN PTR "+webName+".")

	// Inside a reverse zone: authoritative NXDOMAIN with that zone's SOA.
	r = s.dig(t, "-x", "10.97.3.4")
	r.wantNegative(t, "NXDOMAIN", "97.10.in-addr.arpa")
	r.wantFlags(t, "aa")
	r = s.dig(t, "-x", "fd00:10:96::99")
	r.wantNegative(t, "NXDOMAIN", v6Zone)
	r.wantFlags(t, "aa")
	// The apex answers SOA and NS (with the name server's address).
	r = s.dig(t, "96.10.in-addr.arpa", "SOA")
	r.wantFlags(t, "aa")
	if len(r.answer) != 1 || !strings.EqualFold(r.answer[0].Header().Name, "96.10.in-addr.arpa.") || r.answer[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("apex SOA: want the zone's SOA\n%s", r)
	}
	r = s.dig(t, "111.10.in-addr.arpa", "NS")
	r.wantRecords(t, "answer", "111.10.in-addr.arpa. 5 IN NS ns.dns.cluster.local.")
	r.wantRecords(t, "additional", "ns.dns.cluster.local. 5 IN A 10.96.0.10")
	// A name with cluster addresses below it is an empty non-terminal.
	s.dig(t, "0.96.10.in-addr.arpa", "PTR").wantNegative(t, "NOERROR", "96.10.in-addr.arpa")
	s.dig(t, "7.96.10.in-addr.arpa", "PTR").wantNegative(t, "NXDOMAIN", "96.10.in-addr.arpa")
	if got := up.asked(); len(got) != 0 {
		t.Errorf("upstream asked %v: names inside the reverse zones must not be forwarded", got)
	}

	// Outside them an unknown address is forwarded, as before.
	r = s.dig(t, "-x", "192.0.2.77")
	r.wantRecords(t, "answer", "77.2.0.192.in-addr.arpa. 300 IN PTR outside.example.")
	r = s.dig(t, "-x", "10.112.0.1") // just past 10.96.0.0/12
	r.wantRecords(t, "answer", "1.0.112.10.in-addr.arpa. 300 IN PTR outside.example.")
	if got := up.asked(); !slices.Equal(got, []string{"77.2.0.192.in-addr.arpa.", "1.0.112.10.in-addr.arpa."}) {
		t.Errorf("upstream asked %v, want the two addresses outside the reverse zones", got)
	}
}

// TestImportedReverseZones converts a Corefile whose kubernetes block
// serves in-addr.arpa without fallthrough, and checks that the result is
// authoritative there (CoreDNS answers NXDOMAIN itself), while ip6.arpa,
// which falls through, is forwarded.
func TestImportedReverseZones(t *testing.T) {
	requireTools(t, "dig")
	up := startUpstream(t, "192.0.2.10", "outside.example.")
	cfg, stderr := importConfig(t, "import-corefile", `.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        fallthrough ip6.arpa
    }
    forward . `+up.Addr+`
}
`)
	if strings.Contains(stderr, "not converted") {
		t.Fatalf("not fully converted:\n%s", stderr)
	}
	s := launchImported(t, cfg)
	r := s.dig(t, "-x", "192.0.2.77")
	r.wantStatus(t, "NXDOMAIN")
	r.wantFlags(t, "aa")
	if len(r.authority) != 1 || !strings.EqualFold(r.authority[0].Header().Name, "in-addr.arpa.") {
		t.Errorf("want the SOA of in-addr.arpa\n%s", r)
	}
	s.dig(t, "in-addr.arpa", "SOA").wantFlags(t, "aa")
	s.dig(t, "-x", "10.96.0.100").wantRecords(t, "answer", "100.0.96.10.in-addr.arpa. 5 IN PTR "+webName+".")
	r = s.dig(t, "-x", "2001:db8::1")
	r.wantRecords(t, "answer", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR outside.example.")
	if got := up.asked(); len(got) != 1 || !strings.HasSuffix(got[0], "ip6.arpa.") {
		t.Errorf("upstream asked %v, want only the ip6.arpa name", got)
	}
}

// TestEmptyNonTerminalsDig: names with names below them are NODATA (RFC
// 8020), names with nothing below NXDOMAIN, both with the zone's SOA.
func TestEmptyNonTerminalsDig(t *testing.T) {
	requireTools(t, "dig")
	s := startServer(t, copyZones(t), "--pods", "insecure")
	for _, name := range []string{"svc.cluster.local", "default.svc.cluster.local", "pod.cluster.local", "data.pod.cluster.local",
		"_tcp.web-server-service.default.svc.cluster.local", "dns.cluster.local"} {
		for _, qtype := range []string{"A", "TXT"} {
			r := s.dig(t, name, qtype)
			r.wantNegative(t, "NOERROR", "cluster.local")
			r.wantFlags(t, "aa")
		}
	}
	for _, name := range []string{"nothere.svc.cluster.local", "nothere.pod.cluster.local", "x.cassandra-0.cassandra.data.svc.cluster.local"} {
		s.dig(t, name, "A").wantNegative(t, "NXDOMAIN", "cluster.local")
	}
	// pod.<zone> is NODATA with pod records off too; below it nothing.
	off := startServer(t, copyZones(t))
	off.dig(t, "pod.cluster.local", "A").wantNegative(t, "NOERROR", "cluster.local")
	off.dig(t, "data.pod.cluster.local", "A").wantNegative(t, "NXDOMAIN", "cluster.local")
}

// TestNameSpellingDig asks in mixed case and compares names byte for byte:
// the labels a name shares with the question are spelled as asked, so a
// SRV target and its Additional record match exactly.
func TestNameSpellingDig(t *testing.T) {
	requireTools(t, "dig")
	s := startServer(t, copyZones(t))
	r := s.dig(t, "_Web-Server._TCP.Web-Server-Service.Default.SVC.Cluster.Local", "SRV")
	r.wantExact(t, "answer", "_Web-Server._TCP.Web-Server-Service.Default.SVC.Cluster.Local. 5 IN SRV 0 100 80 Web-Server-Service.Default.SVC.Cluster.Local.")
	r.wantExact(t, "additional", "Web-Server-Service.Default.SVC.Cluster.Local. 5 IN A 10.96.0.100")

	r = s.dig(t, "_CQL._tcp.Cassandra.DATA.svc.cluster.LOCAL", "SRV")
	r.wantExact(t, "answer",
		"_CQL._tcp.Cassandra.DATA.svc.cluster.LOCAL. 5 IN SRV 0 100 9042 cassandra-0.Cassandra.DATA.svc.cluster.LOCAL.",
		"_CQL._tcp.Cassandra.DATA.svc.cluster.LOCAL. 5 IN SRV 0 100 9042 cassandra-1.Cassandra.DATA.svc.cluster.LOCAL.")
	r.wantExact(t, "additional",
		"cassandra-0.Cassandra.DATA.svc.cluster.LOCAL. 5 IN A 10.244.1.20",
		"cassandra-1.Cassandra.DATA.svc.cluster.LOCAL. 5 IN A 10.244.2.21")

	s.dig(t, "Cassandra-0.Cassandra.Data.SVC.Cluster.Local", "A").
		wantExact(t, "answer", "Cassandra-0.Cassandra.Data.SVC.Cluster.Local. 5 IN A 10.244.1.20")

	// A CNAME chain in a zone file: the target and the next owner alike.
	s.dig(t, "API.Example.Test", "A").wantExact(t, "answer",
		"API.Example.Test. 300 IN CNAME www.Example.Test.", "www.Example.Test. 300 IN A 127.0.0.80")
	// ExternalName: its target shares nothing with the question.
	s.dig(t, "Search.Apps.SVC.Cluster.Local", "A").wantExact(t, "answer",
		"Search.Apps.SVC.Cluster.Local. 5 IN CNAME www.example.test.", "www.example.test. 300 IN A 127.0.0.80")

	r = s.dig(t, "Cluster.Local", "NS")
	r.wantExact(t, "answer", "Cluster.Local. 5 IN NS ns.dns.Cluster.Local.")
	r.wantExact(t, "additional", "ns.dns.Cluster.Local. 5 IN A 10.96.0.10")
	r = s.dig(t, "Nope.SVC.Cluster.Local", "A")
	r.wantStatus(t, "NXDOMAIN")
	if len(r.authority) != 1 || !strings.HasPrefix(r.authority[0].String(), "Cluster.Local.\t7\tIN\tSOA\tns.dns.Cluster.Local. hostmaster.Cluster.Local. ") {
		t.Errorf("negative SOA: want it spelled like the question\n%s", r)
	}
}
