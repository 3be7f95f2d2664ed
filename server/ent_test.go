package server

import (
	"testing"

	"github.com/miekg/dns"
)

// Empty non-terminals (RFC 8020): a name with names below it answers
// NODATA; a name with nothing below NXDOMAIN.
func TestEmptyNonTerminals(t *testing.T) {
	insecure := func(o *Options) { o.Pods = PodsInsecure }
	verified := func(o *Options) { o.Pods = PodsVerified }
	checkAnswers(t, exampleHandler(t, nil), []answerCase{
		{name: "svc", qname: "svc.cluster.local.", qtype: dns.TypeA, ns: []string{soa}},
		{name: "svc, any type", qname: "svc.cluster.local.", qtype: dns.TypeTXT, ns: []string{soa}},
		{name: "a namespace", qname: "data.svc.cluster.local.", qtype: dns.TypeA, ns: []string{soa}},
		{name: "another namespace, AAAA", qname: "kube-system.svc.cluster.local.", qtype: dns.TypeAAAA, ns: []string{soa}},
		{name: "the protocol label of a named port", qname: "_udp.kube-dns.kube-system.svc.cluster.local.", qtype: dns.TypeSRV, ns: []string{soa}},
		{name: "dns label above the name server", qname: "dns.cluster.local.", qtype: dns.TypeA, ns: []string{soa}},
		{name: "pod with pods disabled (as CoreDNS answers it)", qname: "pod.cluster.local.", qtype: dns.TypeA, ns: []string{soa}},
		{name: "a namespace under pod with pods disabled: nothing there", qname: "default.pod.cluster.local.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "pod with pods insecure", qname: "pod.cluster.local.", qtype: dns.TypeA, mutates: insecure, ns: []string{soa}},
		{name: "namespace under pod, insecure", qname: "default.pod.cluster.local.", qtype: dns.TypeA, mutates: insecure, ns: []string{soa}},
		{name: "unknown namespace under pod has no pod names below", qname: "nope.pod.cluster.local.", qtype: dns.TypeA, mutates: insecure,
			rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "pod with pods verified", qname: "pod.cluster.local.", qtype: dns.TypeA, mutates: verified, ns: []string{soa}},
		{name: "below a leaf is NXDOMAIN", qname: "x.cassandra-0.cassandra.data.svc.cluster.local.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError, ns: []string{soa}},
		{name: "below a ClusterIP service's name without that port", qname: "_sctp.web-server-service.default.svc.cluster.local.", qtype: dns.TypeSRV,
			rcode: dns.RcodeNameError, ns: []string{soa}},
	})
}
