package lbgrpc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestP2CAvoidsSlowBackend: with real servers, one of them 20 ms slower,
// clusterdns_p2c weighs each backend's measured latency, so the slow one gets
// a small share of concurrent calls (round robin gives it 1/4; least_request
// only avoids it as far as its outstanding count shows, and is logged for
// comparison).
func TestP2CAvoidsSlowBackend(t *testing.T) {
	bs := startBackends(t, 4)
	c := startCluster(t, bs, 0, 1, 2, 3)
	bs[3].delay.Store(int64(20 * time.Millisecond))
	const calls, callers = 800, 8
	share := func(policy string) float64 {
		conn := dial(t, c.aTarget(), policy, "{}")
		waitAll(t, conn, 5*time.Second, bs...)
		before := hits(bs)
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				for range calls / callers {
					if _, err := call(context.Background(), conn, ""); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		got := since(bs, before)
		s := float64(got[3]) / calls
		t.Logf("%s, %d callers: calls per backend %v, slow share %.3f", policy, callers, got, s)
		for i, n := range got[:3] {
			if n == 0 {
				t.Errorf("%s: fast backend %d got no call: %v", policy, i, got)
			}
		}
		return s
	}
	if s := share("clusterdns_p2c"); s > 0.05 {
		t.Errorf("clusterdns_p2c sent %.3f of the calls to the 20 ms slower backend, want ≤ 0.05 (round robin: 0.25)", s)
	}
	share("clusterdns_least_request")
}

// TestLatencyDecayConfig: the option parses, and a bad value is grpc.NewClient's error.
func TestLatencyDecayConfig(t *testing.T) {
	for cfg, ok := range map[string]bool{`{"latencyDecay":"2s"}`: true, `{"latencyDecay":"-1s"}`: false, `{"latencyDecay":5}`: false} {
		conn, err := grpc.NewClient("clusterdns:///x.default.svc.cluster.local:80", grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"clusterdns_p2c":`+cfg+`}]}`))
		if (err == nil) != ok {
			t.Errorf("config %s: err = %v, want ok = %v", cfg, err, ok)
		}
		if conn != nil {
			conn.Close()
		}
	}
}
