package server

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
)

// loadCluster fills a store with the benchmark cluster: services services
// over 100 namespaces, every tenth headless with epPerHeadless endpoints.
func loadCluster(st *registry.Store, services, epPerHeadless int) {
	for i := range services {
		k := registry.Key{Namespace: fmt.Sprintf("ns%d", i%100), Name: fmt.Sprintf("svc%d", i)}
		svc := &registry.Service{Key: k, Ports: []registry.ServicePort{{Name: "http", Protocol: registry.TCP, Port: 80}}}
		if i%10 == 0 {
			svc.Kind = registry.KindHeadless
			sl := &registry.EndpointSlice{Key: registry.Key{Namespace: k.Namespace, Name: k.Name + "-1"}, Service: k.Name,
				Ports: []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 8080}}}
			for j := range epPerHeadless {
				n := i*epPerHeadless + j
				sl.Endpoints = append(sl.Endpoints, registry.Endpoint{
					Address: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), Ready: true})
			}
			st.UpsertEndpointSlice(sl)
		} else {
			svc.ClusterIPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})}
		}
		st.UpsertService(svc)
	}
	st.MarkSynced()
}

// storeHandler returns a handler of cluster.local (TTLs 5 s) fed by a new
// store: each snapshot the store publishes goes to Handler.Update.
func storeHandler(tb testing.TB) (*Handler, *registrytest.Cluster) {
	tb.Helper()
	h, err := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	st := registrytest.New(tb).Feed(h.Update)
	return h, st
}

// BenchmarkIndexFullBuild10k: index 10,000 services from scratch.
func BenchmarkIndexFullBuild10k(b *testing.B) {
	st := registrytest.New(b)
	loadCluster(st.Store, 10000, 10)
	snap := st.Flush()
	opt := testOptions()
	opt.domains = opt.domains[:1]
	b.ReportAllocs()
	var idx *clusterIndex
	for b.Loop() {
		var err error
		if idx, err = buildClusterIndex(nil, snap, opt); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(idx.names.Len()), "names")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
}

// BenchmarkEndpointChange measures one endpoint readiness flip published
// end to end (store rebuild of one service, snapshot, incremental index
// update, atomic swap) with 1,000 and 10,000 services loaded: the cost
// must not grow with the cluster.
func BenchmarkEndpointChange(b *testing.B) {
	for _, n := range []int{1, 1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			_, st := storeHandler(b)
			loadCluster(st.Store, n, 10)
			st.Flush()
			sl := &registry.EndpointSlice{Key: registry.Key{Namespace: "ns0", Name: "svc0-1"}, Service: "svc0",
				Ports: []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 8080}}}
			for j := range 10 {
				sl.Endpoints = append(sl.Endpoints, registry.Endpoint{Address: netip.AddrFrom4([4]byte{10, 0, 0, byte(j)}), Ready: true})
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				next := *sl
				next.Endpoints = append([]registry.Endpoint(nil), sl.Endpoints...)
				next.Endpoints[i%10].Ready = i%2 == 0
				i++
				st.UpsertEndpointSlice(&next)
				st.Flush()
			}
		})
	}
}

// BenchmarkIndexHeap100k reports the live heap of the store, snapshot and
// index with 10,000 services, 1,000 of them headless with 100 endpoints
// each (100,000 endpoints): the memory the server needs for that cluster.
func BenchmarkIndexHeap100k(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		h, st := storeHandler(b)
		loadCluster(st.Store, 10000, 100)
		st.Flush()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "live-MiB")
		runtime.KeepAlive(h)
		runtime.KeepAlive(st)
	}
}
