package server

import (
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkRespondHeadless100: the A and SRV answers of a headless service
// with 100 endpoints (rotated A records; SRV with 100 records and their
// addresses).
func BenchmarkRespondHeadless100(b *testing.B) {
	h, st := storeHandler(b)
	loadCluster(st.Store, 10, 100)
	st.Flush()
	b.Run("A", func(b *testing.B) { benchQuery(b, h, "svc0.ns0.svc.cluster.local.", dns.TypeA) })
	b.Run("SRV", func(b *testing.B) { benchQuery(b, h, "_http._tcp.svc0.ns0.svc.cluster.local.", dns.TypeSRV) })
}

// BenchmarkRespondPTR: the reverse name of a headless endpoint (the
// endpoint's name read from the service's entry).
func BenchmarkRespondPTR(b *testing.B) {
	benchQuery(b, exampleHandler(b, nil), "20.1.244.10.in-addr.arpa.", dns.TypePTR)
}
