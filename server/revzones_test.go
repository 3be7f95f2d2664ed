package server

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func TestReverseZonesNames(t *testing.T) {
	var slash12 []string
	for _, o := range []string{"96", "97", "98", "99", "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "110", "111"} {
		slash12 = append(slash12, o+".10.in-addr.arpa.")
	}
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{[]string{"10.96.0.0/12"}, slash12},
		{[]string{"10.0.0.0/8", "10.1.2.3/8"}, []string{"10.in-addr.arpa."}},
		{[]string{"192.168.7.0/24"}, []string{"7.168.192.in-addr.arpa."}},
		{[]string{"10.0.0.0/7"}, []string{"10.in-addr.arpa.", "11.in-addr.arpa."}},
		{[]string{"0.0.0.0/0", "::/0"}, []string{"in-addr.arpa.", "ip6.arpa."}},
		{[]string{"In-Addr.Arpa", "ip6.arpa."}, []string{"in-addr.arpa.", "ip6.arpa."}},
		{[]string{"96.10.in-addr.arpa"}, []string{"96.10.in-addr.arpa."}},
		{[]string{"fd00:10:96::/48"}, []string{"6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa."}},
		{[]string{"fd00::/14"}, []string{"0.0.d.f.ip6.arpa.", "1.0.d.f.ip6.arpa.", "2.0.d.f.ip6.arpa.", "3.0.d.f.ip6.arpa."}},
		{[]string{"fd00::/11"}, []string{"0.d.f.ip6.arpa.", "1.d.f.ip6.arpa."}},
		{[]string{"10.96.0.0/13"}, slash12[:8]},
		{nil, nil},
	} {
		got, err := ReverseZones(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q:\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "300.in-addr.arpa", "ab.ip6.arpa", "1.2.3.4.5.in-addr.arpa", "01.in-addr.arpa"} {
		if _, err := ReverseZones([]string{bad}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

const soa96 = "96.10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"
const soa97 = "97.10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"
const soaV6 = "6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"
const soaInAddr = "in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"

// Reverse zones: authority inside them, the fallback's job outside.
func TestReverseZoneAnswers(t *testing.T) {
	h := exampleHandler(t, func(o *Options) { o.ReverseZones = []string{"10.96.0.0/12", "fd00:10:96::/48"} })
	checkAnswers(t, h, []answerCase{
		{name: "unknown address in the zone is NXDOMAIN", qname: "7.0.97.10.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{soa97}},
		{name: "known address still answers", qname: "100.0.96.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"100.0.96.10.in-addr.arpa. 5 IN PTR web-server-service.default.svc.cluster.local."}},
		{name: "known address, other type: NODATA with its zone's SOA", qname: "100.0.96.10.in-addr.arpa.", qtype: dns.TypeA,
			ns: []string{soa96}},
		{name: "apex SOA", qname: "96.10.in-addr.arpa.", qtype: dns.TypeSOA, answer: []string{soa96}},
		{name: "apex NS with glue", qname: "96.10.in-addr.arpa.", qtype: dns.TypeNS,
			answer: []string{"96.10.in-addr.arpa. 5 IN NS ns.dns.cluster.local."},
			extra:  []string{"ns.dns.cluster.local. 5 IN A 10.96.0.10"}},
		{name: "apex of a zone with no address yet", qname: "111.10.in-addr.arpa.", qtype: dns.TypeSOA,
			answer: []string{"111.10.in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"}},
		{name: "apex A is NODATA", qname: "96.10.in-addr.arpa.", qtype: dns.TypeA, ns: []string{soa96}},
		{name: "empty non-terminal above addresses is NODATA", qname: "0.96.10.in-addr.arpa.", qtype: dns.TypePTR,
			ns: []string{soa96}},
		{name: "nothing below is NXDOMAIN", qname: "5.96.10.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{soa96}},
		{name: "a label that is no octet is NXDOMAIN", qname: "x.0.96.10.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{soa96}},
		{name: "just outside the CIDR is forwarded (refused without upstreams)", qname: "1.0.112.10.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeRefused},
		{name: "above the zones is forwarded", qname: "10.in-addr.arpa.", qtype: dns.TypeSOA, rcode: dns.RcodeRefused},
		{name: "pod address outside the zones is forwarded", qname: "9.9.244.10.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeRefused},
		{name: "IPv6 unknown address is NXDOMAIN", qname: "1.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{soaV6}},
		{name: "IPv6 known address", qname: "0.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", qtype: dns.TypePTR,
			answer: []string{"0.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 5 IN PTR dual.apps.svc.cluster.local."}},
		{name: "IPv6 empty non-terminal", qname: "0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", qtype: dns.TypePTR,
			ns: []string{soaV6}},
		{name: "IPv6 apex SOA", qname: "6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", qtype: dns.TypeSOA, answer: []string{soaV6}},
	})
	whole := exampleHandler(t, func(o *Options) { o.ReverseZones = []string{"in-addr.arpa", "ip6.arpa"} })
	checkAnswers(t, whole, []answerCase{
		{name: "any unknown IPv4 address is NXDOMAIN", qname: "1.0.0.127.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{soaInAddr}},
		{name: "in-addr.arpa apex SOA", qname: "in-addr.arpa.", qtype: dns.TypeSOA, answer: []string{soaInAddr}},
		{name: "10.in-addr.arpa has addresses below", qname: "10.in-addr.arpa.", qtype: dns.TypePTR, ns: []string{soaInAddr}},
		{name: "11.in-addr.arpa has none", qname: "11.in-addr.arpa.", qtype: dns.TypePTR,
			rcode: dns.RcodeNameError, ns: []string{soaInAddr}},
		{name: "headless endpoint PTR", qname: "20.1.244.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"20.1.244.10.in-addr.arpa. 5 IN PTR cassandra-0.cassandra.data.svc.cluster.local."}},
	})
}
