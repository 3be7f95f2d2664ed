package lb

import (
	"context"
	"net/http"
	"time"

	"fmt"
	"github.com/clusterdns/clusterdns/lb/lbtest"
	"testing"
)

var allPolicies = []Policy{RoundRobin(), Random(), P2C(), LeastRequest(), Maglev(), Weighted()}

func staticBalancer(tb testing.TB, p Policy, n int) *Balancer {
	b := NewBalancer(nil, BalancerConfig{Policy: p})
	tb.Cleanup(b.Close)
	in := infos(n)
	for i := range in {
		in[i].Weight = uint16(1 + i%10)
	}
	b.Update(in)
	return b
}

// TestPickDoesNotAllocate: Pick and Done allocate nothing, for every policy and
// set size, with and without a hash key.
func TestPickDoesNotAllocate(t *testing.T) {
	for _, p := range allPolicies {
		for _, n := range []int{3, 100, 10000} {
			b := staticBalancer(t, p, n)
			key := HashKey("session-42")
			allocs := testing.AllocsPerRun(1000, func() {
				e, err := b.Pick()
				if err != nil {
					panic(err)
				}
				e.Done(nil)
				e, _ = b.PickKey(key)
				e.Done(nil)
			})
			if allocs != 0 {
				t.Errorf("%s/%d: %v allocations per pick", p.Name(), n, allocs)
			}
		}
	}
}

// BenchmarkPick measures Pick+Done.
//
//	go test ./lb/ -run '^$' -bench 'Pick' -benchtime 2000000x
func BenchmarkPick(b *testing.B) {
	for _, p := range allPolicies {
		for _, n := range []int{3, 100, 10000} {
			b.Run(fmt.Sprintf("%s/%d", p.Name(), n), func(b *testing.B) {
				bal := staticBalancer(b, p, n)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					e, _ := bal.Pick()
					e.Done(nil)
				}
			})
		}
	}
}

// BenchmarkPickParallel measures Pick+Done from GOMAXPROCS goroutines (the
// round-robin counter and the outstanding counters are shared cache lines).
func BenchmarkPickParallel(b *testing.B) {
	for _, p := range allPolicies {
		b.Run(fmt.Sprintf("%s/100", p.Name()), func(b *testing.B) {
			bal := staticBalancer(b, p, 100)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e, _ := bal.Pick()
					e.Done(nil)
				}
			})
		})
	}
}

// BenchmarkHTTP compares requests/s to 3 loopback backends through the
// RoundTripper, through one http.Transport with Pool.DialContext, and through a
// plain http.Transport to one backend address (no balancing, no DNS).
//
//	go test ./lb/ -run '^$' -bench HTTP -benchtime 3s
func BenchmarkHTTP(b *testing.B) {
	newTransport := func() *http.Transport {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		return tr
	}
	d := lbtest.StartDNS(b)
	backends := lbtest.StartBackends(b, 3)
	d.SetAddrs(svcName, 30, lbtest.Addrs(backends)...)
	pool, err := NewPool(Config{Resolver: ResolverConfig{Server: d.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	svcURL := fmt.Sprintf("http://%s:%d/", svcName, backends[0].Addr.Port())
	dial := newTransport()
	dial.DialContext = pool.DialContext
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
		url  string
	}{
		{"direct", newTransport(), "http://" + backends[0].Addr.String() + "/"},
		{"roundtripper", NewRoundTripper(pool, newTransport()), svcURL},
		{"dialcontext", dial, svcURL},
	} {
		b.Run(c.name, func(b *testing.B) {
			client := &http.Client{Transport: c.rt}
			b.ReportAllocs()
			b.SetParallelism(4)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := get(context.Background(), client, c.url); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}

// BenchmarkBuild measures building a Selector, the work done (by the goroutine
// changing the set, never by Pick) on every endpoint-set or health change.
func BenchmarkBuild(b *testing.B) {
	for _, p := range allPolicies {
		for _, n := range []int{100, 10000} {
			b.Run(fmt.Sprintf("%s/%d", p.Name(), n), func(b *testing.B) {
				cs := cands(n)
				b.ReportAllocs()
				for b.Loop() {
					p.Build(cs)
				}
			})
		}
	}
}
