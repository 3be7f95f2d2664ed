package server

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
	"github.com/clusterdns/clusterdns/zones"
)

// exampleHandler serves the embedded example cluster and zone files.
func exampleHandler(t testing.TB, mutate func(*Options)) *Handler {
	t.Helper()
	opt := Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5,
		DNSService: registry.Key{Namespace: "kube-system", Name: "kube-dns"}}
	if mutate != nil {
		mutate(&opt)
	}
	h, err := NewHandler(opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := registrytest.New(t).Feed(h.Update)
	if err := registry.NewFileSource(zones.Default, "", store.Store, nil).Load(); err != nil {
		t.Fatal(err)
	}
	if err := h.LoadZones(NewZoneFiles(zones.Default, "zones")); err != nil {
		t.Fatal(err)
	}
	return h
}

// ask sends m through Respond over the given transport and unpacks the reply.
func ask(t testing.TB, h *Handler, m *dns.Msg, tcp bool) *dns.Msg {
	t.Helper()
	req, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := h.Respond(req, make([]byte, 0, 65535), netip.MustParseAddrPort("127.0.0.1:5000"), tcp, nil)
	if out == nil {
		t.Fatalf("no response to %s", m.Question[0].String())
	}
	var r dns.Msg
	if err := r.Unpack(out); err != nil {
		t.Fatalf("unpack response: %v", err)
	}
	return &r
}

// rrs parses zone-file lines; SERIAL stands for the current serial.
func rrs(t testing.TB, serial uint32, lines ...string) []string {
	t.Helper()
	var out []string
	for _, l := range lines {
		rr, err := dns.NewRR(strings.ReplaceAll(l, "SERIAL", fmt.Sprint(serial)))
		if err != nil {
			t.Fatalf("bad expected record %q: %v", l, err)
		}
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

func got(sec []dns.RR) []string {
	var out []string
	for _, rr := range sec {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

const soa = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"

type answerCase struct {
	name    string
	qname   string
	qtype   uint16
	rcode   int
	answer  []string
	ns      []string
	extra   []string
	mutates func(*Options)
}

// Every row of SPEC.md's first table and its NXDOMAIN/NODATA rules, as
// query → expected records written as zone-file strings.
var answerCases = []answerCase{
	{name: "schema version", qname: "dns-version.cluster.local.", qtype: dns.TypeTXT,
		answer: []string{`dns-version.cluster.local. 5 IN TXT "1.1.0"`}},
	{name: "ClusterIP A", qname: "web-server-service.default.svc.cluster.local.", qtype: dns.TypeA,
		answer: []string{"web-server-service.default.svc.cluster.local. 5 IN A 10.96.0.100"}},
	{name: "ClusterIP AAAA of an IPv4-only service is NODATA", qname: "web-server-service.default.svc.cluster.local.", qtype: dns.TypeAAAA,
		ns: []string{soa}},
	{name: "ClusterIP TXT is NODATA", qname: "web-server-service.default.svc.cluster.local.", qtype: dns.TypeTXT,
		ns: []string{soa}},
	{name: "dual-stack A", qname: "dual.apps.svc.cluster.local.", qtype: dns.TypeA,
		answer: []string{"dual.apps.svc.cluster.local. 5 IN A 10.96.0.50"}},
	{name: "dual-stack AAAA", qname: "dual.apps.svc.cluster.local.", qtype: dns.TypeAAAA,
		answer: []string{"dual.apps.svc.cluster.local. 5 IN AAAA fd00:10:96::50"}},
	{name: "ClusterIP SRV per named port", qname: "_web-server._tcp.web-server-service.default.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{"_web-server._tcp.web-server-service.default.svc.cluster.local. 5 IN SRV 0 100 80 web-server-service.default.svc.cluster.local."},
		extra:  []string{"web-server-service.default.svc.cluster.local. 5 IN A 10.96.0.100"}},
	{name: "SRV protocol must match", qname: "_dns._tcp.kube-dns.kube-system.svc.cluster.local.", qtype: dns.TypeSRV,
		rcode: dns.RcodeNameError, ns: []string{soa}},
	{name: "SRV udp port", qname: "_dns._udp.kube-dns.kube-system.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{"_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."},
		extra:  []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"}},
	{name: "protocol label alone is an empty non-terminal", qname: "_tcp.web-server-service.default.svc.cluster.local.", qtype: dns.TypeSRV,
		ns: []string{soa}},
	{name: "headless A: ready endpoints only", qname: "cassandra.data.svc.cluster.local.", qtype: dns.TypeA,
		answer: []string{"cassandra.data.svc.cluster.local. 5 IN A 10.244.1.20", "cassandra.data.svc.cluster.local. 5 IN A 10.244.2.21"}},
	{name: "headless endpoint hostname", qname: "cassandra-0.cassandra.data.svc.cluster.local.", qtype: dns.TypeA,
		answer: []string{"cassandra-0.cassandra.data.svc.cluster.local. 5 IN A 10.244.1.20"}},
	{name: "not-ready endpoint hostname does not exist", qname: "cassandra-2.cassandra.data.svc.cluster.local.", qtype: dns.TypeA,
		rcode: dns.RcodeNameError, ns: []string{soa}},
	{name: "headless SRV per ready endpoint and named port", qname: "_cql._tcp.cassandra.data.svc.cluster.local.", qtype: dns.TypeSRV,
		answer: []string{
			"_cql._tcp.cassandra.data.svc.cluster.local. 5 IN SRV 0 100 9042 cassandra-0.cassandra.data.svc.cluster.local.",
			"_cql._tcp.cassandra.data.svc.cluster.local. 5 IN SRV 0 100 9042 cassandra-1.cassandra.data.svc.cluster.local.",
		},
		extra: []string{"cassandra-0.cassandra.data.svc.cluster.local. 5 IN A 10.244.1.20", "cassandra-1.cassandra.data.svc.cluster.local. 5 IN A 10.244.2.21"}},
	{name: "zone hint of an endpoint (for client-side balancing)", qname: "cassandra-0.cassandra.data.svc.cluster.local.", qtype: dns.TypeTXT,
		answer: []string{`cassandra-0.cassandra.data.svc.cluster.local. 5 IN TXT "zone=zone-a"`}},
	{name: "zone hints of a service, one record per zone", qname: "_zones.cassandra.data.svc.cluster.local.", qtype: dns.TypeTXT,
		answer: []string{`_zones.cassandra.data.svc.cluster.local. 5 IN TXT "zone=zone-a" "10.244.1.20"`, `_zones.cassandra.data.svc.cluster.local. 5 IN TXT "zone=zone-b" "10.244.2.21"`}},
	{name: "headless dual-stack A", qname: "dual-headless.apps.svc.cluster.local.", qtype: dns.TypeA,
		answer: []string{"dual-headless.apps.svc.cluster.local. 5 IN A 10.244.1.30"}},
	{name: "headless dual-stack AAAA", qname: "dual-headless.apps.svc.cluster.local.", qtype: dns.TypeAAAA,
		answer: []string{"dual-headless.apps.svc.cluster.local. 5 IN AAAA fd00:10:244:1::30"}},
	{name: "generated endpoint name is the dashed address", qname: "10-244-1-30.dual-headless.apps.svc.cluster.local.", qtype: dns.TypeA,
		answer: []string{"10-244-1-30.dual-headless.apps.svc.cluster.local. 5 IN A 10.244.1.30"}},
	{name: "generated IPv6 endpoint name", qname: "fd00-10-244-1--30.dual-headless.apps.svc.cluster.local.", qtype: dns.TypeAAAA,
		answer: []string{"fd00-10-244-1--30.dual-headless.apps.svc.cluster.local. 5 IN AAAA fd00:10:244:1::30"}},
	{name: "headless with no ready endpoint is NXDOMAIN", qname: "pending.apps.svc.cluster.local.", qtype: dns.TypeA,
		rcode: dns.RcodeNameError, ns: []string{soa}},
	{name: "publishNotReadyAddresses answers all", qname: "peers.apps.svc.cluster.local.", qtype: dns.TypeA,
		answer: []string{"peers.apps.svc.cluster.local. 5 IN A 10.244.1.50", "peers.apps.svc.cluster.local. 5 IN A 10.244.2.51"}},
	{name: "ExternalName is a CNAME, chased into a served zone", qname: "search.apps.svc.cluster.local.", qtype: dns.TypeA,
		answer: []string{"search.apps.svc.cluster.local. 5 IN CNAME www.example.test.", "www.example.test. 300 IN A 127.0.0.80"}},
	{name: "ExternalName CNAME query", qname: "search.apps.svc.cluster.local.", qtype: dns.TypeCNAME,
		answer: []string{"search.apps.svc.cluster.local. 5 IN CNAME www.example.test."}},
	{name: "ExternalName any type", qname: "search.apps.svc.cluster.local.", qtype: dns.TypeMX,
		answer: []string{"search.apps.svc.cluster.local. 5 IN CNAME www.example.test."},
		ns:     []string{"example.test. 60 IN SOA ns1.example.test. hostmaster.example.test. 2026112501 3600 600 86400 60"}},
	{name: "PTR of a ClusterIP", qname: "100.0.96.10.in-addr.arpa.", qtype: dns.TypePTR,
		answer: []string{"100.0.96.10.in-addr.arpa. 5 IN PTR web-server-service.default.svc.cluster.local."}},
	{name: "PTR of an IPv6 ClusterIP", qname: "0.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", qtype: dns.TypePTR,
		answer: []string{"0.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 5 IN PTR dual.apps.svc.cluster.local."}},
	{name: "PTR of a headless endpoint", qname: "20.1.244.10.in-addr.arpa.", qtype: dns.TypePTR,
		answer: []string{"20.1.244.10.in-addr.arpa. 5 IN PTR cassandra-0.cassandra.data.svc.cluster.local."}},
	{name: "PTR of a generated endpoint name", qname: "30.1.244.10.in-addr.arpa.", qtype: dns.TypePTR,
		answer: []string{"30.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-30.dual-headless.apps.svc.cluster.local."}},
	{name: "unknown service is NXDOMAIN", qname: "nothere.default.svc.cluster.local.", qtype: dns.TypeA,
		rcode: dns.RcodeNameError, ns: []string{soa}},
	{name: "namespace is NODATA", qname: "default.svc.cluster.local.", qtype: dns.TypeA, ns: []string{soa}},
	{name: "unknown namespace is NXDOMAIN", qname: "nope.svc.cluster.local.", qtype: dns.TypeA,
		rcode: dns.RcodeNameError, ns: []string{soa}},
	{name: "svc is NODATA", qname: "svc.cluster.local.", qtype: dns.TypeA, ns: []string{soa}},
	{name: "apex SOA", qname: "cluster.local.", qtype: dns.TypeSOA, answer: []string{soa}},
	{name: "apex NS with glue", qname: "cluster.local.", qtype: dns.TypeNS,
		answer: []string{"cluster.local. 5 IN NS ns.dns.cluster.local."},
		extra:  []string{"ns.dns.cluster.local. 5 IN A 10.96.0.10"}},
	{name: "apex A is NODATA", qname: "cluster.local.", qtype: dns.TypeA, ns: []string{soa}},
	{name: "pod records are off by default", qname: "10-244-1-10.default.pod.cluster.local.", qtype: dns.TypeA,
		rcode: dns.RcodeNameError, ns: []string{soa}},
	{name: "pods insecure", qname: "10-244-9-9.default.pod.cluster.local.", qtype: dns.TypeA,
		mutates: func(o *Options) { o.Pods = PodsInsecure },
		answer:  []string{"10-244-9-9.default.pod.cluster.local. 5 IN A 10.244.9.9"}},
	{name: "pods verified: a pod with that IP in that namespace", qname: "10-244-1-10.default.pod.cluster.local.", qtype: dns.TypeA,
		mutates: func(o *Options) { o.Pods = PodsVerified },
		answer:  []string{"10-244-1-10.default.pod.cluster.local. 5 IN A 10.244.1.10"}},
	{name: "pods verified: no such pod", qname: "10-244-9-9.default.pod.cluster.local.", qtype: dns.TypeA,
		mutates: func(o *Options) { o.Pods = PodsVerified },
		rcode:   dns.RcodeNameError, ns: []string{soa}},
	{name: "pods verified: wrong namespace", qname: "10-244-1-10.data.pod.cluster.local.", qtype: dns.TypeA,
		mutates: func(o *Options) { o.Pods = PodsVerified },
		rcode:   dns.RcodeNameError, ns: []string{soa}},
	{name: "zone file record", qname: "www.example.test.", qtype: dns.TypeAAAA,
		answer: []string{"www.example.test. 300 IN AAAA ::1"}},
	{name: "zone file CNAME chased", qname: "api.example.test.", qtype: dns.TypeA,
		answer: []string{"api.example.test. 300 IN CNAME www.example.test.", "www.example.test. 300 IN A 127.0.0.80"}},
	{name: "zone file NXDOMAIN", qname: "nope.example.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError,
		ns: []string{"example.test. 60 IN SOA ns1.example.test. hostmaster.example.test. 2026112501 3600 600 86400 60"}},
	{name: "zone file empty non-terminal", qname: "_tcp.example.test.", qtype: dns.TypeA,
		ns: []string{"example.test. 60 IN SOA ns1.example.test. hostmaster.example.test. 2026112501 3600 600 86400 60"}},
	{name: "outside every zone is refused", qname: "www.example.org.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
	{name: "unknown reverse name is not ours", qname: "1.0.0.127.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeRefused},
}

func TestAnswers(t *testing.T) {
	checkAnswers(t, exampleHandler(t, nil), answerCases)
}

// checkAnswers asks each case's question of base (or of a handler with the
// case's options) over UDP and TCP and compares the sections.
func checkAnswers(t *testing.T, base *Handler, cases []answerCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := base
			if tc.mutates != nil {
				h = exampleHandler(t, tc.mutates)
			}
			for _, tcp := range []bool{false, true} {
				m := new(dns.Msg)
				m.SetQuestion(tc.qname, tc.qtype)
				r := ask(t, h, m, tcp)
				if r.Rcode != tc.rcode {
					t.Fatalf("tcp=%v rcode %s, want %s\n%s", tcp, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode], r)
				}
				if tc.rcode != dns.RcodeRefused && !r.Authoritative {
					t.Errorf("AA not set")
				}
				serial := h.Serial()
				for _, sec := range []struct {
					name      string
					got, want []string
				}{
					{"answer", got(r.Answer), rrs(t, serial, tc.answer...)},
					{"authority", got(r.Ns), rrs(t, serial, tc.ns...)},
					{"additional", got(r.Extra), rrs(t, serial, tc.extra...)},
				} {
					if !slices.Equal(sec.got, sec.want) {
						t.Errorf("tcp=%v %s:\n got %q\nwant %q", tcp, sec.name, sec.got, sec.want)
					}
				}
			}
		})
	}
}
