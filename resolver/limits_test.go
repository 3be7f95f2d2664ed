package resolver

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// MaxInFlight bounds the questions waiting for an upstream: beyond it a
// question gets SERVFAIL at once instead of a goroutine and a socket.
func TestMaxInFlightRefusesBeyondTheBound(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		<-release
		answerA("192.0.2.9", 60)(w, r)
	})
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}, MaxInFlight: 3, Timeout: 5 * time.Second})
	const n = 10
	results := make(chan []byte, n)
	start := time.Now()
	for i := range n {
		f.Resolve(question(t, fmt.Sprintf("q%d.example.com", i), dns.TypeA), func(r []byte) { results <- r })
	}
	// The 7 beyond the bound answer SERVFAIL (nil) at once.
	for range n - 3 {
		select {
		case r := <-results:
			if r != nil {
				t.Fatal("an answer arrived while the upstream is blocked")
			}
		case <-time.After(2 * time.Second):
			t.Fatal("questions beyond MaxInFlight were not refused at once")
		}
	}
	refusedAfter := time.Since(start)
	select {
	case r := <-results:
		t.Fatalf("more than %d refused: %v", n-3, r)
	case <-time.After(100 * time.Millisecond):
	}
	if got := f.metrics.refusedInFlight.Load(); got != n-3 {
		t.Fatalf("refused count %d, want %d", got, n-3)
	}
	// The 3 in flight are answered once the upstream answers, and the
	// slots are free again.
	close(release)
	for range 3 {
		select {
		case r := <-results:
			if r == nil {
				t.Fatal("a question within the bound got SERVFAIL")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("questions within the bound not answered")
		}
	}
	if r := resolveSync(t, f, question(t, "after.example.com", dns.TypeA)); r == nil {
		t.Fatal("slots not released")
	}
	t.Logf("%d refused within %s", n-3, refusedAfter)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A flood of unique names (a random-subdomain attack through the
// forwarder) leaves the cache at its bound, and the heap with it.
func TestCacheBoundedUnderAFloodOfUniqueNames(t *testing.T) {
	names, bound := 100_000, 10_000
	if testing.Short() {
		names = 20_000
	}
	up := startUpstream(t, answerA("192.0.2.11", 300))
	f := newForwarder(t, Options{Upstreams: []string{up.Addr}, Timeout: 5 * time.Second,
		MaxInFlight: 256, Cache: CacheOptions{MaxEntries: bound}})
	before := heapInUse()
	var next, failed atomic.Int64
	var maxLen atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256)
			done := make(chan []byte, 1)
			for {
				i := next.Add(1)
				if i > int64(names) {
					return
				}
				n, _ := dns.PackDomainName(fmt.Sprintf("u%d.flood.example.com.", i), buf, 0, nil, false)
				q := Question{Wire: buf[:n], Key: buf[:n], Type: dns.TypeA, Class: dns.ClassINET}
				f.Resolve(q, func(r []byte) { done <- r })
				if <-done == nil {
					failed.Add(1)
				}
				if i%1000 == 0 {
					if l := int64(f.Cache().Len()); l > maxLen.Load() {
						maxLen.Store(l)
					}
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	after := heapInUse()
	n := f.Cache().Len()
	t.Logf("%d unique names in %s (%.0f/s), %d failed; cache %d entries (max seen %d, bound %d); heap %.1f MiB -> %.1f MiB",
		names, took.Round(time.Millisecond), float64(names)/took.Seconds(), failed.Load(), n, maxLen.Load(), bound,
		float64(before)/(1<<20), float64(after)/(1<<20))
	if n > bound || maxLen.Load() > int64(bound) {
		t.Fatalf("cache holds %d entries (max seen %d), bound %d", n, maxLen.Load(), bound)
	}
	if n < bound/2 {
		t.Fatalf("cache holds only %d entries: the flood was not cached at all?", n)
	}
	if failed.Load() > int64(names/100) {
		t.Fatalf("%d of %d questions failed", failed.Load(), names)
	}
	// 10,000 small entries are a few MiB; 64 MiB of growth would mean the
	// flood is kept somewhere.
	if after > before+64<<20 {
		t.Fatalf("heap grew from %d to %d bytes", before, after)
	}
}
