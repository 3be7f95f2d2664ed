package lbgrpc_test

// Side by side with grpc-go's own "dns" resolver and "round_robin" balancer,
// in the same run, against the same backends and the same clusterdns server:
//
//	go test -run '^$' -bench 'Versus' -benchtime 1x ./lb/lbgrpc
//
// BenchmarkVersusSlowBackend: 4 backends, one 10× slower; p50/p90/p99 of
// 10,000 unary calls from 4, 16 or 64 concurrent callers, and the share of calls
// that went to the slow backend. Two models of "slower": "latency" (every
// call takes 10× longer, any number at once) and "capacity" (each backend
// serves 4 calls at a time, the slow one 10× longer each, so calls queue on
// it as on an overloaded machine).
//
// BenchmarkVersusScaleUp: 2 backends, then 4 in the zone; seconds until both
// new ones answer a call (-1: not within TTL + 5 s).

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type contender struct {
	name   string
	target func(c *cluster) string
	config string // service config
}

var contenders = []contender{
	{"clusterdns_p2c", func(c *cluster) string { return c.aTarget() },
		`{"loadBalancingConfig":[{"clusterdns_p2c":{}}]}`},
	// P2C on outstanding RPCs alone: what clusterdns_p2c was before it
	// weighed latency.
	{"clusterdns_least_request", func(c *cluster) string { return c.aTarget() },
		`{"loadBalancingConfig":[{"clusterdns_least_request":{}}]}`},
	{"grpc_dns_round_robin", func(c *cluster) string {
		return fmt.Sprintf("dns://%s/%s:%d", c.dns.Addr, svcName, c.bs[0].addr.Port())
	}, `{"loadBalancingConfig":[{"round_robin":{}}]}`},
}

func dialContender(b *testing.B, c *cluster, k contender) *grpc.ClientConn {
	b.Helper()
	conn, err := grpc.NewClient(k.target(c), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(k.config), grpc.WithDisableServiceConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}

func BenchmarkVersusSlowBackend(b *testing.B) {
	const (
		calls = 10000
		fast  = time.Millisecond
	)
	for _, model := range []string{"latency", "capacity"} {
		bs := startBackends(b, 4)
		c := startCluster(b, bs, 0, 1, 2, 3)
		for i, be := range bs {
			d := fast
			if i == 3 {
				d = 10 * fast
			}
			be.delay.Store(int64(d))
			if model == "capacity" {
				w := make(chan struct{}, 4)
				be.workers.Store(&w)
			}
		}
		for _, callers := range []int{4, 16, 64} {
			for _, k := range contenders {
				b.Run(fmt.Sprintf("%s/callers=%d/%s", model, callers, k.name), func(b *testing.B) {
					conn := dialContender(b, c, k)
					waitAll(b, conn, 5*time.Second, bs...)
					var lat []time.Duration
					var slow int64
					for b.Loop() {
						before := bs[3].hits.Load()
						lat = lat[:0]
						lat = append(lat, runCalls(b, conn, calls, callers)...)
						slow += bs[3].hits.Load() - before
					}
					slices.Sort(lat)
					b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
					b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
					b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
					b.ReportMetric(100*float64(slow)/float64(calls*b.N), "%-to-slow")
				})
			}
		}
	}
}

// runCalls makes n calls from callers goroutines and returns their latencies.
func runCalls(b *testing.B, conn *grpc.ClientConn, n, callers int) []time.Duration {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				start := time.Now()
				if _, err := call(context.Background(), conn, ""); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	return lat
}

func BenchmarkVersusScaleUp(b *testing.B) {
	const limit = 6 * time.Second // TTL (1 s) + 5 s
	bs := startBackends(b, 4)
	c := startCluster(b, bs, 0, 1)
	for b.Loop() {
		c.set(b, 0, 1)
		took := make([]time.Duration, len(contenders))
		var wg sync.WaitGroup
		start := make(chan time.Time)
		for i, k := range contenders {
			conn := dialContender(b, c, k)
			waitAll(b, conn, 5*time.Second, bs[0], bs[1])
			wg.Go(func() {
				t0 := <-start
				seen := map[string]bool{}
				for time.Since(t0) < limit {
					addr, err := call(context.Background(), conn, "")
					if err != nil {
						b.Error(err)
						return
					}
					seen[addr] = true
					if seen[bs[2].addr.String()] && seen[bs[3].addr.String()] {
						took[i] = time.Since(t0)
						return
					}
				}
				took[i] = -1
			})
		}
		t0 := time.Now()
		c.set(b, 0, 1, 2, 3)
		for range contenders {
			start <- t0
		}
		wg.Wait()
		for i, k := range contenders {
			if took[i] < 0 {
				b.ReportMetric(-1, k.name+"-s")
				b.Logf("%s: the new backends got no call within %v", k.name, limit)
				continue
			}
			b.ReportMetric(took[i].Seconds(), k.name+"-s")
		}
	}
}
