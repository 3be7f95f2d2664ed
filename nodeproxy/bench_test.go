package nodeproxy

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/registry"
)

// benchCluster fills a store with n ClusterIP services of 10 ready
// endpoints each (one TCP port).
func benchCluster(n int) *registry.Store {
	store := registry.NewStore(registry.Options{})
	for i := range n {
		store.UpsertService(benchService(i))
		store.UpsertEndpointSlice(benchSlice(i, 10))
	}
	store.MarkSynced()
	store.Flush()
	return store
}

func benchService(i int) *registry.Service {
	return &registry.Service{
		Key:        registry.Key{Namespace: fmt.Sprintf("ns%d", i%100), Name: fmt.Sprintf("svc%d", i)},
		ClusterIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})},
		Ports:      []registry.ServicePort{{Name: "http", Protocol: registry.TCP, Port: 80, TargetPort: "8080"}},
	}
}

func benchSlice(i, endpoints int) *registry.EndpointSlice {
	sl := &registry.EndpointSlice{
		Key:     registry.Key{Namespace: fmt.Sprintf("ns%d", i%100), Name: fmt.Sprintf("svc%d-x", i)},
		Service: fmt.Sprintf("svc%d", i),
		Ports:   []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 8080}},
		// Sized exactly, as the sources convert them.
		Endpoints: make([]registry.Endpoint, 0, endpoints),
	}
	for j := range endpoints {
		k := i*10 + j
		sl.Endpoints = append(sl.Endpoints, registry.Endpoint{
			Address: netip.AddrFrom4([4]byte{10, byte(128 + k>>16), byte(k >> 8), byte(k)}), Ready: true, Serving: true,
		})
	}
	return sl
}

// benchModes runs bench for each way of writing elements: over netlink
// (the command's default) and as nft text in the one transaction.
func benchModes(b *testing.B, n int, bench func(b *testing.B, cfg func() (ProxierConfig, func()))) {
	for _, mode := range []string{"netlink", "nft"} {
		b.Run(fmt.Sprintf("services=%d/elements=%s", n, mode), func(b *testing.B) {
			requireNetAdmin(b)
			// cfg runs in the benchmark's network namespace.
			bench(b, func() (ProxierConfig, func()) {
				nft, err := knftables.New(knftables.InetFamily, DefaultTable)
				if err != nil {
					b.Fatal(err)
				}
				cfg := ProxierConfig{NFT: nft}
				if mode == "nft" {
					return cfg, func() {}
				}
				nl, err := NewNetlinkElements(DefaultTable)
				if err != nil {
					b.Fatal(err)
				}
				cfg.Elements = nl
				return cfg, func() { nl.Close() }
			})
		})
	}
}

// BenchmarkFullSync times a first sync of 1,000 and 10,000 services × 10
// endpoints in a real kernel, inside a fresh network namespace, with the
// elements over netlink and as nft text. Needs root and nft.
//
//	go test -run '^$' -bench FullSync -benchtime 3x ./nodeproxy/
func BenchmarkFullSync(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		benchModes(b, n, func(b *testing.B, config func() (ProxierConfig, func())) {
			store := benchCluster(n)
			inFreshNetns(b, func() {
				cfg, done := config()
				defer done()
				ops := 0
				var cpu time.Duration
				b.ResetTimer()
				for b.Loop() {
					// A fresh table each time: a first sync.
					b.StopTimer()
					if err := Cleanup(context.Background(), cfg.NFT); err != nil {
						b.Error(err)
						return
					}
					b.StartTimer()
					cpu -= cpuTime()
					p := NewProxier(cfg)
					res, err := p.Sync(context.Background(), store.Snapshot(), nil, true)
					cpu += cpuTime()
					if err != nil {
						b.Error(err)
						return
					}
					ops = res.Operations
				}
				b.ReportMetric(float64(ops), "nft-ops")
				b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
			})
		})
	}
}

// cpuTime is the CPU time (user and system) used so far by this process
// and its waited-for children (the nft processes): on a shared machine a
// measure of the work that the wall-clock time is not.
func cpuTime() time.Duration {
	var self, children unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &children)
	d := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return d(self.Utime) + d(self.Stime) + d(children.Utime) + d(children.Stime)
}

// BenchmarkEndpointChange times the partial sync of one endpoint change
// (one endpoint of one service goes away or comes back) with 1,000 and
// 10,000 services loaded: it should not grow with the number of services.
//
//	go test -run '^$' -bench EndpointChange ./nodeproxy/
func BenchmarkEndpointChange(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		benchModes(b, n, func(b *testing.B, config func() (ProxierConfig, func())) {
			store := benchCluster(n)
			inFreshNetns(b, func() {
				ctx := context.Background()
				cfg, done := config()
				defer done()
				p := NewProxier(cfg)
				if _, err := p.Sync(ctx, store.Snapshot(), nil, true); err != nil {
					b.Error(err)
					return
				}
				i, ops := 0, 0
				cpu := cpuTime()
				b.ResetTimer()
				for b.Loop() {
					svc := (i / 2 * 7919) % n // spread over the services
					eps := 10
					if i%2 == 0 {
						eps = 9
					}
					i++
					b.StopTimer()
					store.UpsertEndpointSlice(benchSlice(svc, eps))
					snap := store.Flush()
					b.StartTimer()
					res, err := p.Sync(ctx, snap, snap.Changed, false)
					if err != nil {
						b.Error(err)
						return
					}
					ops = res.Operations
				}
				b.ReportMetric(float64(ops), "nft-ops")
				b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			})
		})
	}
}
