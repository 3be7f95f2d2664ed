package server

import (
	"net/netip"
	"testing"
	"testing/fstest"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"

	"github.com/miekg/dns"
)

const csSOA = "clusterset.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. SERIAL 7200 1800 86400 5"

// The MCS DNS specification (KEP-1645, schema 1.0.0) on the example
// cluster's imports: apps/checkout (ClusterSetIP 10.112.0.10, port http)
// and data/ledger (Headless; east: ledger-0 ready, ledger-1 not; west:
// ledger-0 ready).
var clustersetCases = []answerCase{
	{name: "schema version", qname: "dns-version.clusterset.local.", qtype: dns.TypeTXT,
		answer: []string{`dns-version.clusterset.local. 5 IN TXT "1.0.0"`}},
	{name: "ClusterSetIP A", qname: "checkout.apps.svc.clusterset.local.", qtype: dns.TypeA,
		answer: []string{"checkout.apps.svc.clusterset.local. 5 IN A 10.112.0.10"}},
	{name: "ClusterSetIP case-insensitive", qname: "CheckOut.Apps.svc.ClusterSet.local.", qtype: dns.TypeA,
		answer: []string{"CheckOut.Apps.svc.ClusterSet.local. 5 IN A 10.112.0.10"}},
	{name: "ClusterSetIP AAAA of an IPv4 import is NODATA", qname: "checkout.apps.svc.clusterset.local.", qtype: dns.TypeAAAA,
		ns: []string{csSOA}},
	{name: "ClusterSetIP SRV per named port", qname: "_http._tcp.checkout.apps.svc.clusterset.local.", qtype: dns.TypeSRV,
		answer: []string{"_http._tcp.checkout.apps.svc.clusterset.local. 5 IN SRV 0 100 80 checkout.apps.svc.clusterset.local."},
		extra:  []string{"checkout.apps.svc.clusterset.local. 5 IN A 10.112.0.10"}},
	{name: "SRV protocol must match", qname: "_http._udp.checkout.apps.svc.clusterset.local.", qtype: dns.TypeSRV,
		rcode: dns.RcodeNameError, ns: []string{csSOA}},
	{name: "ClusterSetIP has no per-cluster name", qname: "east.checkout.apps.svc.clusterset.local.", qtype: dns.TypeA,
		rcode: dns.RcodeNameError, ns: []string{csSOA}},
	{name: "headless A: ready endpoints of every cluster", qname: "ledger.data.svc.clusterset.local.", qtype: dns.TypeA,
		answer: []string{"ledger.data.svc.clusterset.local. 5 IN A 10.245.1.10", "ledger.data.svc.clusterset.local. 5 IN A 10.246.1.10"}},
	{name: "headless endpoint in one cluster", qname: "ledger-0.east.ledger.data.svc.clusterset.local.", qtype: dns.TypeA,
		answer: []string{"ledger-0.east.ledger.data.svc.clusterset.local. 5 IN A 10.245.1.10"}},
	{name: "same hostname in the other cluster", qname: "ledger-0.west.ledger.data.svc.clusterset.local.", qtype: dns.TypeA,
		answer: []string{"ledger-0.west.ledger.data.svc.clusterset.local. 5 IN A 10.246.1.10"}},
	{name: "not-ready endpoint does not exist", qname: "ledger-1.east.ledger.data.svc.clusterset.local.", qtype: dns.TypeA,
		rcode: dns.RcodeNameError, ns: []string{csSOA}},
	{name: "cluster label alone has no records", qname: "east.ledger.data.svc.clusterset.local.", qtype: dns.TypeA,
		ns: []string{csSOA}},
	{name: "headless SRV per ready endpoint and named port", qname: "_pg._tcp.ledger.data.svc.clusterset.local.", qtype: dns.TypeSRV,
		answer: []string{
			"_pg._tcp.ledger.data.svc.clusterset.local. 5 IN SRV 0 100 5432 ledger-0.east.ledger.data.svc.clusterset.local.",
			"_pg._tcp.ledger.data.svc.clusterset.local. 5 IN SRV 0 100 5432 ledger-0.west.ledger.data.svc.clusterset.local.",
		},
		extra: []string{"ledger-0.east.ledger.data.svc.clusterset.local. 5 IN A 10.245.1.10", "ledger-0.west.ledger.data.svc.clusterset.local. 5 IN A 10.246.1.10"}},
	{name: "local service is not in the clusterset", qname: "web-server-service.default.svc.clusterset.local.", qtype: dns.TypeA,
		rcode: dns.RcodeNameError, ns: []string{csSOA}},
	{name: "imported service is not in cluster.local", qname: "ledger.data.svc.cluster.local.", qtype: dns.TypeA,
		rcode: dns.RcodeNameError, ns: []string{soa}},
	{name: "namespace is NODATA", qname: "data.svc.clusterset.local.", qtype: dns.TypeA, ns: []string{csSOA}},
	{name: "namespace without imports is NXDOMAIN", qname: "kube-system.svc.clusterset.local.", qtype: dns.TypeA,
		rcode: dns.RcodeNameError, ns: []string{csSOA}},
	{name: "svc is NODATA", qname: "svc.clusterset.local.", qtype: dns.TypeA, ns: []string{csSOA}},
	{name: "apex SOA", qname: "clusterset.local.", qtype: dns.TypeSOA, answer: []string{csSOA}},
	{name: "apex NS with glue", qname: "clusterset.local.", qtype: dns.TypeNS,
		answer: []string{"clusterset.local. 5 IN NS ns.dns.cluster.local."},
		extra:  []string{"ns.dns.cluster.local. 5 IN A 10.96.0.10"}},
	{name: "PTR of a ClusterSetIP", qname: "10.0.112.10.in-addr.arpa.", qtype: dns.TypePTR,
		answer: []string{"10.0.112.10.in-addr.arpa. 5 IN PTR checkout.apps.svc.clusterset.local."}},
	{name: "PTR of a headless import's ready endpoint", qname: "10.1.246.10.in-addr.arpa.", qtype: dns.TypePTR,
		answer: []string{"10.1.246.10.in-addr.arpa. 5 IN PTR ledger-0.west.ledger.data.svc.clusterset.local."}},
	{name: "no PTR for a not-ready endpoint", qname: "11.1.245.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeRefused},
	{name: "zone off: refused like any outside name", qname: "checkout.apps.svc.clusterset.local.", qtype: dns.TypeA,
		mutates: func(o *Options) { o.ClusterSetZone = "" }, rcode: dns.RcodeRefused},
	{name: "another zone name", qname: "checkout.apps.svc.mcs.example.", qtype: dns.TypeA,
		mutates: func(o *Options) { o.ClusterSetZone = "mcs.example" },
		answer:  []string{"checkout.apps.svc.mcs.example. 5 IN A 10.112.0.10"}},
}

func TestClusterSetAnswers(t *testing.T) {
	checkAnswers(t, exampleHandler(t, func(o *Options) { o.ClusterSetZone = "clusterset.local" }), withClusterSet(clustersetCases))
}

// withClusterSet makes the cases that change options keep the clusterset
// zone unless they set it themselves.
func withClusterSet(cases []answerCase) []answerCase {
	out := make([]answerCase, len(cases))
	for i, tc := range cases {
		out[i] = tc
		m := tc.mutates
		out[i].mutates = nil
		if m != nil {
			out[i].mutates = func(o *Options) { o.ClusterSetZone = "clusterset.local"; m(o) }
		}
	}
	return out
}

func TestClusterSetZoneRefusesBadNames(t *testing.T) {
	for _, z := range []string{".", "cluster.local", "a..b"} {
		if _, err := NewHandler(Options{Domains: []string{"cluster.local"}, ClusterSetZone: z}, nil); err == nil {
			t.Errorf("clusterset zone %q accepted", z)
		}
	}
}

// Clusterset answers are prepared like the cluster zone's: answering one
// allocates nothing.
func TestClusterSetAnswersAllocateNothing(t *testing.T) {
	h := exampleHandler(t, func(o *Options) { o.ClusterSetZone = "clusterset.local" })
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"checkout.apps.svc.clusterset.local.", dns.TypeA},
		{"ledger.data.svc.clusterset.local.", dns.TypeA},
		{"_pg._tcp.ledger.data.svc.clusterset.local.", dns.TypeSRV},
		{"nothere.data.svc.clusterset.local.", dns.TypeA},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		req, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, 0, 65535)
		client := netip.MustParseAddrPort("127.0.0.1:5000")
		if n := testing.AllocsPerRun(100, func() { h.Respond(req, out, client, false, nil) }); n != 0 {
			t.Errorf("%s: %v allocations per answer", q.name, n)
		}
	}
}

// An address that has a cluster-local PTR keeps it (the specification's
// limitation): only the cluster.local name points back at it.
func TestClusterSetPTRLeavesClusterLocalOnes(t *testing.T) {
	h, err := NewHandler(Options{Domains: []string{"cluster.local"}, ClusterSetZone: "clusterset.local", TTL: 5, NegativeTTL: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := registrytest.New(t).Feed(h.Update)
	files := fstest.MapFS{"c.yaml": {Data: []byte(`kind: Service
metadata: {name: local, namespace: apps}
spec: {clusterIP: 10.96.0.7, ports: [{port: 80}]}
---
kind: ServiceImport
metadata: {name: shared, namespace: apps}
spec: {type: ClusterSetIP, ips: [10.96.0.7]}
---
kind: ServiceImport
metadata: {name: own, namespace: apps}
spec: {type: ClusterSetIP, ips: [10.112.0.7]}
`)}}
	if err := registry.NewFileSource(files, "", store.Store, nil).Load(); err != nil {
		t.Fatal(err)
	}
	checkAnswers(t, h, []answerCase{
		{name: "cluster-local PTR wins", qname: "7.0.96.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"7.0.96.10.in-addr.arpa. 5 IN PTR local.apps.svc.cluster.local."}},
		{name: "clusterset PTR", qname: "7.0.112.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"7.0.112.10.in-addr.arpa. 5 IN PTR own.apps.svc.clusterset.local."}},
		{name: "the import still answers A", qname: "shared.apps.svc.clusterset.local.", qtype: dns.TypeA,
			answer: []string{"shared.apps.svc.clusterset.local. 5 IN A 10.96.0.7"}},
	})
}
