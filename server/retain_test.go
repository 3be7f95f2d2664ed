package server

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
)

// An incremental update lets the replaced service's first entry go: once
// a headless and a ClusterIP service's slices are replaced, their first
// slices are collected, although the full build's blocks live on for the
// services that did not change. (Index pieces that point at an entry
// came from those blocks and kept it reachable.)
func TestIndexLetsReplacedEntriesGo(t *testing.T) {
	h, err := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := registrytest.New(t).Feed(h.Update)
	const n = 100
	slice := func(i, gen int) *registry.EndpointSlice {
		name := fmt.Sprintf("s%d", i)
		sl := &registry.EndpointSlice{Key: registry.Key{Namespace: "ns", Name: name + "-1"}, Service: name,
			Ports: []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 80}}}
		for e := range 3 {
			sl.Endpoints = append(sl.Endpoints, registry.Endpoint{
				Address: netip.AddrFrom4([4]byte{10, byte(gen), byte(i), byte(e + 1)}), Ready: true, Serving: true})
		}
		return sl
	}
	var alive atomic.Int64
	for i := range 4 * n { // the first 2n change, half headless, half ClusterIP
		svc := &registry.Service{Key: registry.Key{Namespace: "ns", Name: fmt.Sprintf("s%d", i)}, Kind: registry.KindHeadless,
			Ports: []registry.ServicePort{{Name: "http", Protocol: registry.TCP, Port: 80}}}
		if i%2 == 1 {
			svc.Kind, svc.ClusterIPs = registry.KindClusterIP, []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})}
		}
		store.UpsertService(svc)
		sl := slice(i, 1)
		if i < 2*n {
			alive.Add(1)
			runtime.SetFinalizer(sl, func(*registry.EndpointSlice) { alive.Add(-1) })
		}
		store.UpsertEndpointSlice(sl)
	}
	store.Publish()
	for i := range 2 * n {
		store.UpsertEndpointSlice(slice(i, 2))
	}
	snap := store.Publish()
	if snap.Full {
		t.Fatal("the change was published Full: the test needs an incremental update")
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d replaced first slices still reachable from the index", alive.Load(), 2*n)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	// The index answers the new endpoints.
	q := new(dns.Msg)
	q.SetQuestion("s0.ns.svc.cluster.local.", dns.TypeA)
	r := ask(t, h, q, false)
	if len(r.Answer) != 3 || !strings.HasPrefix(r.Answer[0].(*dns.A).A.String(), "10.2.0.") {
		t.Fatalf("s0 answers %v, want its 3 new endpoints", r.Answer)
	}
	runtime.KeepAlive(store)
}
