package faults

import (
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/clusterdns/clusterdns/internal/testdns"
)

// Upstream modes.
const (
	upAnswer int32 = iota
	upSlow
)

// clusterLatencies asks n cluster questions one after the other and returns
// their latencies, sorted; a failed one fails the test.
func clusterLatencies(t *testing.T, p *proc, n int) []time.Duration {
	t.Helper()
	names := []string{"web-server-service.default.svc.cluster.local", "cassandra.data.svc.cluster.local", "kube-dns.kube-system.svc.cluster.local"}
	var out []time.Duration
	for i := range n {
		start := time.Now()
		r, err := p.ask(names[i%len(names)], dns.TypeA, "udp")
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			t.Fatalf("cluster name %s while upstreams fail: %v %v", names[i%len(names)], r, err)
		}
		out = append(out, time.Since(start))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Every upstream slow, then every upstream dead: a name never seen answers
// SERVFAIL within the forward timeout (never hangs), a name answered before
// comes from the cache as stale (TTL 30), and cluster names are not
// affected: answered, and fast, while forwarded queries pile up.
func TestEveryUpstreamSlowOrDead(t *testing.T) {
	var mode atomic.Int32
	handler := func(w dns.ResponseWriter, r *dns.Msg) {
		if mode.Load() == upSlow {
			time.Sleep(3 * time.Second)
		}
		testdns.AnswerA("192.0.2.50", 1)(w, r)
	}
	up1, up2 := testdns.Start(t, handler), testdns.Start(t, handler)
	dir := filepath.Join(t.TempDir(), "zones")
	copyZones(t, dir)
	const timeout = 300 * time.Millisecond
	p := startServer(t, "web-server-service.default.svc.cluster.local",
		"--zones-dir", dir, "--upstreams", up1.Addr+","+up2.Addr, "--forward-timeout", timeout.String(),
		"--serve-stale", "1h", "--max-forward-in-flight", "200")

	// Healthy: cached with TTL 1.
	if r := p.mustAsk(t, "cached.example.org", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("healthy upstream: %v", r)
	}

	for _, fault := range []string{"slow", "dead"} {
		switch fault {
		case "slow":
			mode.Store(upSlow)
		case "dead":
			up1.Stop()
			up2.Stop()
		}
		time.Sleep(1100 * time.Millisecond) // the cached answer expires
		// A name never seen: SERVFAIL, within the forwarder's bound (each
		// upstream tried once, at most 3 × the timeout), not the client's.
		start := time.Now()
		r, err := p.ask(fmt.Sprintf("never-%s.example.org", fault), dns.TypeA, "udp")
		took := time.Since(start)
		if err != nil || r.Rcode != dns.RcodeServerFailure {
			t.Fatalf("%s upstreams, new name: %v %v, want SERVFAIL", fault, r, err)
		}
		if took > 3*timeout+time.Second {
			t.Fatalf("%s upstreams: SERVFAIL after %s (forward timeout %s)", fault, took, timeout)
		}
		// A name answered before: stale, TTL 30.
		startStale := time.Now()
		r, err = p.ask("cached.example.org", dns.TypeA, "udp")
		tookStale := time.Since(startStale)
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
			t.Fatalf("%s upstreams, cached name: %v %v, want the stale answer with TTL 30", fault, r, err)
		}

		// Forwarded questions pile up (unique names, 20 at a time) while
		// cluster names are asked: every one answered, and fast.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var servfails atomic.Int64
		for w := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if r, err := p.ask(fmt.Sprintf("flood-%s-%d-%d.example.org", fault, w, i), dns.TypeA, "udp"); err == nil && r.Rcode == dns.RcodeServerFailure {
						servfails.Add(1)
					}
					// Paced (at most 20 × 200/s): dead upstreams answer at
					// once, and an unpaced flood would only measure CPU.
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		lat := clusterLatencies(t, p, 300)
		close(stop)
		wg.Wait()
		p50, p99, worst := lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
		t.Logf("%s upstreams: new name SERVFAIL in %s, stale answer in %s; cluster names under %d SERVFAILed forwards: p50 %s p99 %s max %s",
			fault, took.Round(time.Millisecond), tookStale.Round(time.Millisecond), servfails.Load(), p50, p99, worst)
		// Generous on a loaded 2-core machine: cluster answers never wait
		// for an upstream (that would take the forward timeout, 300 ms).
		if p99 > timeout/3 || worst > 3*timeout {
			t.Fatalf("%s upstreams: cluster names slowed down: p50 %s p99 %s max %s", fault, p50, p99, worst)
		}
	}
}
