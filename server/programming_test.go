package server

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clusterdns/clusterdns/registry"
)

// coredns_kubernetes_dns_programming_duration_seconds measures, once per
// slice change after the first sync, the time from the controller's trigger
// time to the answer being served, for headless services only (CoreDNS's
// definition); a relisted unchanged slice and a reload's replay of the same
// snapshot add nothing.
func TestDNSProgrammingLatency(t *testing.T) {
	h := exampleHandler(t, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Metrics())
	store := registry.NewStore(registry.Options{})
	store.Subscribe(func(s *registry.Snapshot) {
		if err := h.Update(s); err != nil {
			t.Fatal(err)
		}
	})
	headless := &registry.Service{Key: registry.Key{Namespace: "default", Name: "db"}, Kind: registry.KindHeadless}
	clusterIP := &registry.Service{Key: registry.Key{Namespace: "default", Name: "web"}, Kind: registry.KindClusterIP,
		ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.50")}}
	slice := func(svc, name, ip string, at time.Time) *registry.EndpointSlice {
		return &registry.EndpointSlice{Key: registry.Key{Namespace: "default", Name: name}, Service: svc, TriggerTime: at,
			Endpoints: []registry.Endpoint{{Address: netip.MustParseAddr(ip), Ready: true, Serving: true}}}
	}
	early := time.Now().Add(-time.Hour)
	store.UpsertService(headless)
	store.UpsertService(clusterIP)
	store.UpsertEndpointSlice(slice("db", "db-1", "10.244.0.5", early)) // before the first sync: not measured
	store.MarkSynced()
	store.Flush()

	count := func() (uint64, float64) {
		h := histogram(t, reg, "coredns_kubernetes_dns_programming_duration_seconds", map[string]string{"service_kind": "headless_with_selector"})
		return h.GetSampleCount(), h.GetSampleSum()
	}
	if n, _ := count(); n != 0 {
		t.Fatalf("%d samples from the initial sync, want 0", n)
	}
	triggered := time.Now().Add(-1500 * time.Millisecond)
	store.UpsertEndpointSlice(slice("db", "db-1", "10.244.0.6", triggered))
	store.UpsertEndpointSlice(slice("web", "web-1", "10.244.0.7", triggered)) // not headless: not measured
	store.Flush()
	n, sum := count()
	if n != 1 || sum < 1.5 || sum > 60 {
		t.Fatalf("after one headless change 1.5 s old: %d samples, sum %v s; want 1 sample of 1.5 s or a little more", n, sum)
	}
	// The new address is what is served now.
	m := new(dns.Msg)
	m.SetQuestion("db.default.svc.cluster.local.", dns.TypeA)
	if r := ask(t, h, m, false); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.244.0.6" {
		t.Fatalf("db answer: %v", r.Answer)
	}
	// A relist delivers the same slice again; a reload replays the snapshot.
	store.UpsertEndpointSlice(slice("db", "db-1", "10.244.0.6", triggered))
	store.Flush()
	if err := h.Update(store.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if n, _ := count(); n != 1 {
		t.Fatalf("%d samples after a relist and a replay, want still 1", n)
	}
	buckets := histogram(t, reg, "coredns_kubernetes_dns_programming_duration_seconds", map[string]string{"service_kind": "headless_with_selector"}).GetBucket()
	if len(buckets) != 20 || buckets[0].GetUpperBound() != 0.001 || buckets[19].GetUpperBound() != 0.001*(1<<19) {
		t.Errorf("buckets %v, want 1 ms doubling 20 times", buckets)
	}
}
