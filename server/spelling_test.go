package server

import (
	"testing"

	"github.com/miekg/dns"
)

// One spelling rule for every record kind (spelling.go): the labels a name
// shares at its end with the question are spelled as asked.
func TestSpellingAsAsked(t *testing.T) {
	mixedSOA := "Cluster.Local. 5 IN SOA ns.dns.Cluster.Local. hostmaster.Cluster.Local. SERIAL 7200 1800 86400 5"
	checkAnswers(t, exampleHandler(t, func(o *Options) { o.ReverseZones = []string{"10.96.0.0/16"} }), []answerCase{
		{name: "ClusterIP SRV: target and Additional owner the service name as asked",
			qname: "_Web-Server._TCP.Web-Server-Service.Default.SVC.Cluster.Local.", qtype: dns.TypeSRV,
			answer: []string{"_Web-Server._TCP.Web-Server-Service.Default.SVC.Cluster.Local. 5 IN SRV 0 100 80 Web-Server-Service.Default.SVC.Cluster.Local."},
			extra:  []string{"Web-Server-Service.Default.SVC.Cluster.Local. 5 IN A 10.96.0.100"}},
		{name: "headless SRV: endpoint label as stored, service name as asked",
			qname: "_CQL._TCP.Cassandra.Data.SVC.Cluster.Local.", qtype: dns.TypeSRV,
			answer: []string{
				"_CQL._TCP.Cassandra.Data.SVC.Cluster.Local. 5 IN SRV 0 100 9042 cassandra-0.Cassandra.Data.SVC.Cluster.Local.",
				"_CQL._TCP.Cassandra.Data.SVC.Cluster.Local. 5 IN SRV 0 100 9042 cassandra-1.Cassandra.Data.SVC.Cluster.Local.",
			},
			extra: []string{"cassandra-0.Cassandra.Data.SVC.Cluster.Local. 5 IN A 10.244.1.20", "cassandra-1.Cassandra.Data.SVC.Cluster.Local. 5 IN A 10.244.2.21"}},
		{name: "headless hostname echoes the question", qname: "CASSANDRA-0.cassandra.DATA.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"CASSANDRA-0.cassandra.DATA.svc.cluster.local. 5 IN A 10.244.1.20"}},
		{name: "apex NS and glue", qname: "Cluster.Local.", qtype: dns.TypeNS,
			answer: []string{"Cluster.Local. 5 IN NS ns.dns.Cluster.Local."},
			extra:  []string{"ns.dns.Cluster.Local. 5 IN A 10.96.0.10"}},
		{name: "apex SOA", qname: "Cluster.Local.", qtype: dns.TypeSOA, answer: []string{mixedSOA}},
		{name: "NXDOMAIN SOA spelled like the SOA answer", qname: "Nope.SVC.Cluster.Local.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{mixedSOA}},
		{name: "NODATA SOA", qname: "Web-Server-Service.Default.SVC.Cluster.Local.", qtype: dns.TypeAAAA, ns: []string{mixedSOA}},
		{name: "zone file CNAME chain: target and the next owner alike", qname: "API.Example.Test.", qtype: dns.TypeA,
			answer: []string{"API.Example.Test. 300 IN CNAME www.Example.Test.", "www.Example.Test. 300 IN A 127.0.0.80"}},
		{name: "zone file CNAME asked alone, spelled the same", qname: "API.Example.Test.", qtype: dns.TypeCNAME,
			answer: []string{"API.Example.Test. 300 IN CNAME www.Example.Test."}},
		{name: "ExternalName: nothing shared with the question, as stored", qname: "Search.Apps.SVC.Cluster.Local.", qtype: dns.TypeA,
			answer: []string{"Search.Apps.SVC.Cluster.Local. 5 IN CNAME www.example.test.", "www.example.test. 300 IN A 127.0.0.80"}},
		{name: "PTR target as stored", qname: "20.1.244.10.IN-ADDR.ARPA.", qtype: dns.TypePTR,
			answer: []string{"20.1.244.10.IN-ADDR.ARPA. 5 IN PTR cassandra-0.cassandra.data.svc.cluster.local."}},
		{name: "reverse zone NS: nothing shared, as stored", qname: "96.10.IN-ADDR.ARPA.", qtype: dns.TypeNS,
			answer: []string{"96.10.IN-ADDR.ARPA. 5 IN NS ns.dns.cluster.local."},
			extra:  []string{"ns.dns.cluster.local. 5 IN A 10.96.0.10"}},
		{name: "reverse zone NXDOMAIN SOA", qname: "9.9.96.10.IN-ADDR.ARPA.", qtype: dns.TypePTR, rcode: dns.RcodeNameError,
			ns: []string{"96.10.IN-ADDR.ARPA. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"}},
	})
}

// TestSRVTargetIsAdditionalOwner compares bytes, which rr.String() would
// hide: each SRV target and the owner of the Additional record for it.
func TestSRVTargetIsAdditionalOwner(t *testing.T) {
	h := exampleHandler(t, nil)
	for _, qname := range []string{
		"_Web-Server._TCP.Web-Server-Service.Default.SVC.Cluster.Local.",
		"_cql._tcp.CASSANDRA.data.svc.CLUSTER.local.",
		"Cassandra.Data.Svc.Cluster.Local.",
		"_dns._udp.kube-dns.kube-system.svc.cluster.local.",
	} {
		m := new(dns.Msg)
		m.SetQuestion(qname, dns.TypeSRV)
		r := ask(t, h, m, false)
		if len(r.Answer) == 0 || len(r.Extra) == 0 {
			t.Fatalf("%s: no answer or no Additional\n%s", qname, r)
		}
		owners := map[string]bool{}
		for _, rr := range r.Extra {
			owners[rr.Header().Name] = true
		}
		for _, rr := range r.Answer {
			target := rr.(*dns.SRV).Target
			if !owners[target] {
				t.Errorf("%s: target %q has no Additional record of that exact spelling (owners %v)", qname, target, owners)
			}
			if dns.CompareDomainName(target, qname) < 4 {
				t.Errorf("%s: target %q does not end in the question's service name", qname, target)
			}
		}
	}
}
