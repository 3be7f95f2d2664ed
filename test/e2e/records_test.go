package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// recordCase is one query against the example cluster (zones/cluster.yaml
// and zones/example.test.zone) and what its answer must be.
type recordCase struct {
	name  string // subtest name
	qname string
	qtype string
	check func(t *testing.T, r *digResult)
}

// rr formats an expected record.
func rr(format string, args ...any) string { return fmt.Sprintf(format, args...) }

const (
	webFQDN  = "web-server-service.default.svc.cluster.local."
	cassFQDN = "cassandra.data.svc.cluster.local."
)

var recordCases = []recordCase{
	// The server's contract for the example cluster.
	{"clusterip-A", "web-server-service.default.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("%s %d IN A 10.96.0.100", webFQDN, clusterTTL))
	}},
	{"clusterip-AAAA-nodata", "web-server-service.default.svc.cluster.local", "AAAA", func(t *testing.T, r *digResult) {
		r.wantNegative(t, "NOERROR", "cluster.local")
	}},
	{"clusterip-SRV", "_web-server._tcp.web-server-service.default.svc.cluster.local", "SRV", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("_web-server._tcp.%s %d IN SRV 0 100 80 %s", webFQDN, clusterTTL, webFQDN))
		r.wantContains(t, "additional", rr("%s %d IN A 10.96.0.100", webFQDN, clusterTTL))
	}},
	{"headless-A-ready-only", "cassandra.data.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer",
			rr("%s %d IN A 10.244.1.20", cassFQDN, clusterTTL),
			rr("%s %d IN A 10.244.2.21", cassFQDN, clusterTTL))
	}},
	{"headless-hostname-A", "cassandra-0.cassandra.data.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("cassandra-0.%s %d IN A 10.244.1.20", cassFQDN, clusterTTL))
	}},
	{"headless-SRV", "_cql._tcp.cassandra.data.svc.cluster.local", "SRV", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		var targets []string
		for _, a := range r.answer {
			srv, ok := a.(*dns.SRV)
			if !ok {
				t.Errorf("answer holds %s, want only SRV\n%s", a, r)
				continue
			}
			targets = append(targets, strings.ToLower(srv.Target))
			if !strings.EqualFold(srv.Hdr.Name, "_cql._tcp."+cassFQDN) || srv.Hdr.Ttl != clusterTTL ||
				srv.Priority != 0 || srv.Port != 9042 {
				t.Errorf("SRV %s: want owner _cql._tcp.%s, TTL %d, priority 0, port 9042\n%s", srv, cassFQDN, clusterTTL, r)
			}
		}
		slices.Sort(targets)
		want := []string{"cassandra-0." + cassFQDN, "cassandra-1." + cassFQDN}
		if !slices.Equal(targets, want) {
			t.Errorf("SRV targets %q, want %q (cassandra-2 is not ready)\n%s", targets, want, r)
		}
	}},
	{"externalname-A-chased", "search.apps.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer",
			rr("search.apps.svc.cluster.local. %d IN CNAME www.example.test.", clusterTTL),
			"www.example.test. 300 IN A 127.0.0.80")
	}},
	{"externalname-CNAME", "search.apps.svc.cluster.local", "CNAME", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("search.apps.svc.cluster.local. %d IN CNAME www.example.test.", clusterTTL))
	}},
	{"dualstack-A", "dual.apps.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("dual.apps.svc.cluster.local. %d IN A 10.96.0.50", clusterTTL))
	}},
	{"dualstack-AAAA", "dual.apps.svc.cluster.local", "AAAA", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("dual.apps.svc.cluster.local. %d IN AAAA fd00:10:96::50", clusterTTL))
	}},
	{"headless-no-ready-NXDOMAIN", "pending.apps.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantNegative(t, "NXDOMAIN", "cluster.local")
	}},
	{"publishNotReady-A", "peers.apps.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer",
			rr("peers.apps.svc.cluster.local. %d IN A 10.244.1.50", clusterTTL),
			rr("peers.apps.svc.cluster.local. %d IN A 10.244.2.51", clusterTTL))
	}},
	{"unknown-service-NXDOMAIN", "nothere.default.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantNegative(t, "NXDOMAIN", "cluster.local")
	}},
	{"namespace-NODATA", "default.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantNegative(t, "NOERROR", "cluster.local")
	}},
	{"clusterip-PTR", "100.0.96.10.in-addr.arpa", "PTR", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("100.0.96.10.in-addr.arpa. %d IN PTR %s", clusterTTL, webFQDN))
	}},
	{"dns-version-TXT", "dns-version.cluster.local", "TXT", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr(`dns-version.cluster.local. %d IN TXT "1.1.0"`, clusterTTL))
	}},
	{"apex-SOA", "cluster.local", "SOA", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		if len(r.answer) != 1 {
			t.Fatalf("%d answer records, want one SOA\n%s", len(r.answer), r)
		}
		if soa, ok := r.answer[0].(*dns.SOA); !ok || !strings.EqualFold(soa.Hdr.Name, "cluster.local.") || soa.Serial == 0 {
			t.Errorf("answer %s, want the SOA of cluster.local. with a serial\n%s", r.answer[0], r)
		}
	}},
	{"apex-NS", "cluster.local", "NS", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		if len(r.answer) == 0 {
			t.Fatalf("no NS records at the apex\n%s", r)
		}
		for _, a := range r.answer {
			if ns, ok := a.(*dns.NS); !ok || !strings.EqualFold(ns.Hdr.Name, "cluster.local.") {
				t.Errorf("answer holds %s, want NS records of cluster.local.\n%s", a, r)
			}
		}
	}},
	{"outside-zones-REFUSED", "www.example.org", "A", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "REFUSED")
		if len(r.answer) != 0 {
			t.Errorf("REFUSED with %d answer records\n%s", len(r.answer), r)
		}
	}},
	{"case-echoed", "WeB-SeRvEr-SeRvIcE.DeFaUlT.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("%s %d IN A 10.96.0.100", webFQDN, clusterTTL))
		// wantQuestion (run for every case) checks the spelling.
	}},
	{"zonefile-A", "www.example.test", "A", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", "www.example.test. 300 IN A 127.0.0.80")
	}},

	// Further records SPEC.md requires of the same example cluster.
	{"spec-headless-PTR", "20.1.244.10.in-addr.arpa", "PTR", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("20.1.244.10.in-addr.arpa. %d IN PTR cassandra-0.%s", clusterTTL, cassFQDN))
	}},
	{"spec-ipv6-PTR", mustReverse("fd00:10:96::50"), "PTR", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("%s %d IN PTR dual.apps.svc.cluster.local.", mustReverse("fd00:10:96::50"), clusterTTL))
	}},
	{"spec-svc-NODATA", "svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantNegative(t, "NOERROR", "cluster.local")
	}},
	{"spec-service-TXT-NODATA", "web-server-service.default.svc.cluster.local", "TXT", func(t *testing.T, r *digResult) {
		r.wantNegative(t, "NOERROR", "cluster.local")
	}},
	{"spec-dual-headless-AAAA", "dual-headless.apps.svc.cluster.local", "AAAA", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("dual-headless.apps.svc.cluster.local. %d IN AAAA fd00:10:244:1::30", clusterTTL))
	}},
	{"spec-dual-headless-A", "dual-headless.apps.svc.cluster.local", "A", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("dual-headless.apps.svc.cluster.local. %d IN A 10.244.1.30", clusterTTL))
	}},
	{"spec-multiport-SRV", "_dns._udp.kube-dns.kube-system.svc.cluster.local", "SRV", func(t *testing.T, r *digResult) {
		r.wantStatus(t, "NOERROR")
		r.wantRecords(t, "answer", rr("_dns._udp.kube-dns.kube-system.svc.cluster.local. %d IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.", clusterTTL))
	}},
}

func mustReverse(ip string) string {
	s, err := dns.ReverseAddr(ip)
	if err != nil {
		panic(err)
	}
	return strings.TrimSuffix(s, ".")
}

// TestRecords asks dig for every record of the example cluster, over UDP
// and over TCP.
func TestRecords(t *testing.T) {
	requireTools(t, "dig")
	s := startServer(t, copyZones(t))
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			for _, c := range recordCases {
				t.Run(c.name, func(t *testing.T) {
					args := []string{c.qname, c.qtype, "+bufsize=1232"}
					if transport == "tcp" {
						args = append(args, "+tcp")
					} else {
						args = append(args, "+notcp", "+ignore")
					}
					r := s.dig(t, args...)
					r.wantQuestion(t, c.qname, c.qtype)
					r.wantCountsMatch(t)
					r.wantFlags(t, "qr")
					r.wantNoFlags(t, "tc")
					if r.status != "REFUSED" {
						r.wantFlags(t, "aa")
						// dig sends EDNS0; the reply must carry OPT (RFC 6891).
						if !r.edns {
							t.Errorf("reply to an EDNS query without OPT\n%s", r)
						}
					}
					c.check(t, r)
				})
			}
		})
	}
}
