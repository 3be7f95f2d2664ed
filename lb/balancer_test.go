package lb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func infos(n int) []EndpointInfo {
	out := make([]EndpointInfo, n)
	for i := range out {
		out[i] = EndpointInfo{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 80)}
	}
	return out
}

// pickCounts picks n times (finishing each pick) and counts per address.
func pickCounts(t testing.TB, b *Balancer, n int) map[string]int {
	t.Helper()
	c := make(map[string]int)
	for range n {
		e, err := b.Pick()
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		c[e.Addr()]++
		e.Done(nil)
	}
	return c
}

// waitFor polls cond every 10ms for at most limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var errRefused = errors.New("connection refused (test)")

func TestPickBeforeUpdateAndAfterClose(t *testing.T) {
	b := NewBalancer(nil, BalancerConfig{})
	if _, err := b.Pick(); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Pick before Update: %v, want ErrNotReady", err)
	}
	b.Update(infos(2))
	if _, err := b.Pick(); err != nil {
		t.Fatal(err)
	}
	b.Update(nil)
	if _, err := b.Pick(); !errors.Is(err, ErrNoEndpoints) {
		t.Fatalf("Pick with no endpoints: %v", err)
	}
	b.Close()
	if _, err := b.Pick(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Pick after Close: %v", err)
	}
}

func TestPriorityFallback(t *testing.T) {
	b := NewBalancer(nil, BalancerConfig{Policy: Weighted(), Outlier: OutlierConfig{ConsecutiveFailures: 1, MaxEjectionPercent: 100}})
	defer b.Close()
	in := infos(4)
	in[0].Priority, in[1].Priority = 10, 10
	in[2].Priority, in[3].Priority = 20, 20
	b.Update(in)
	c := pickCounts(t, b, 1000)
	if c[in[2].Addr.String()]+c[in[3].Addr.String()] != 0 {
		t.Fatalf("backup priority used while primaries are healthy: %v", c)
	}
	// Eject both primaries: the backups take over.
	for _, e := range b.Endpoints()[:2] {
		e.outstanding.Add(1)
		e.Done(errRefused)
	}
	c = pickCounts(t, b, 1000)
	if c[in[0].Addr.String()]+c[in[1].Addr.String()] != 0 || len(c) != 2 {
		t.Fatalf("primaries ejected, want only backups: %v", c)
	}
}

func TestOutlierEjection(t *testing.T) {
	t.Parallel()
	base := time.Second
	b := NewBalancer(nil, BalancerConfig{Policy: RoundRobin(), Outlier: OutlierConfig{ConsecutiveFailures: 3, BaseEjection: base, MaxEjection: 10 * base, MaxEjectionPercent: 50}})
	defer b.Close()
	b.Update(infos(4))
	eps := b.Endpoints()
	bad := eps[0]
	fail := func(e *Endpoint, n int) {
		for range n {
			e.outstanding.Add(1)
			e.Done(errRefused)
		}
	}
	// A success in between resets the count.
	fail(bad, 2)
	bad.outstanding.Add(1)
	bad.Done(nil)
	fail(bad, 2)
	if bad.Ejected() {
		t.Fatal("ejected after non-consecutive failures")
	}
	// A cancelled request is neutral.
	bad.outstanding.Add(1)
	bad.Done(fmt.Errorf("wrapped: %w", errCanceledForTest))
	if bad.Ejected() {
		t.Fatal("ejected after a cancellation")
	}
	fail(bad, 1)
	if !bad.Ejected() {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	if c := pickCounts(t, b, 300); c[bad.Addr()] != 0 || len(c) != 3 {
		t.Fatalf("ejected endpoint still picked: %v", c)
	}
	// Bounded: 50% of 4 is 2; the third one stays.
	fail(eps[1], 3)
	fail(eps[2], 3)
	if !eps[1].Ejected() || eps[2].Ejected() {
		t.Fatalf("ejected: %v %v, want the cap at 2", eps[1].Ejected(), eps[2].Ejected())
	}
	// Ejection ends after base; the second ejection lasts 2×base.
	start := time.Now()
	waitFor(t, 10*time.Second, "first un-ejection", func() bool { return !bad.Ejected() })
	fail(bad, 3)
	if !bad.Ejected() {
		t.Fatal("not ejected again")
	}
	second := time.Now()
	waitFor(t, 15*time.Second, "second un-ejection", func() bool { return !bad.Ejected() })
	if d := time.Since(second); d < 2*base-50*time.Millisecond {
		t.Errorf("second ejection lasted %v, want ≥ %v", d, 2*base)
	}
	t.Logf("first ejection ended after ≈%v, second lasted %v", second.Sub(start), time.Since(second))
	b.mu.Lock()
	n := bad.ejections
	b.mu.Unlock()
	if n != 2 {
		t.Errorf("ejection streak %d, want 2", n)
	}
}

var errCanceledForTest = fmt.Errorf("ctx: %w", context.Canceled)

func TestNeverEjectTheLastEndpoint(t *testing.T) {
	b := NewBalancer(nil, BalancerConfig{Outlier: OutlierConfig{ConsecutiveFailures: 1, MaxEjectionPercent: 100}})
	defer b.Close()
	b.Update(infos(1))
	e, _ := b.Pick()
	e.Done(errRefused)
	if e.Ejected() {
		t.Fatal("the only endpoint was ejected")
	}
}

func TestZonePreference(t *testing.T) {
	b := NewBalancer(nil, BalancerConfig{Policy: RoundRobin(), Zone: "a", MinZoneEndpoints: 2})
	defer b.Close()
	in := infos(5)
	in[0].Zone, in[1].Zone, in[2].Zone, in[3].Zone = "a", "a", "b", "b" // in[4]: unknown
	b.Update(in)
	c := pickCounts(t, b, 100)
	if len(c) != 2 || c[in[0].Addr.String()] != 50 {
		t.Fatalf("want only zone a: %v", c)
	}
	// One local endpoint is not enough: all five.
	in[1].Zone = "b"
	b.Update(in)
	if c := pickCounts(t, b, 100); len(c) != 5 {
		t.Fatalf("want fallback to all: %v", c)
	}
	// No zone information at all: all.
	b.Update(infos(5))
	if c := pickCounts(t, b, 100); len(c) != 5 {
		t.Fatalf("want all without zone info: %v", c)
	}
}

func TestDrainRemovedEndpoint(t *testing.T) {
	b := NewBalancer(nil, BalancerConfig{Policy: RoundRobin()})
	defer b.Close()
	in := infos(3)
	b.Update(in)
	var held []*Endpoint
	for range 3 {
		e, _ := b.Pick()
		held = append(held, e)
	}
	b.Update(in[1:])
	gone := in[0].Addr.String()
	if c := pickCounts(t, b, 100); c[gone] != 0 {
		t.Fatalf("removed endpoint picked: %v", c)
	}
	for _, e := range held {
		if e.Addr() == gone {
			select {
			case <-e.Gone():
			default:
				t.Fatal("Gone not closed")
			}
			if !e.Removed() || e.Outstanding() != 1 {
				t.Fatalf("removed=%v outstanding=%d", e.Removed(), e.Outstanding())
			}
		}
		e.Done(nil) // in-flight work finishes normally
	}
	// Same address back: a fresh endpoint.
	b.Update(in)
	if c := pickCounts(t, b, 30); c[gone] != 10 {
		t.Fatalf("re-added endpoint: %v", c)
	}
}

func TestEndpointKeepsStateAcrossUpdates(t *testing.T) {
	b := NewBalancer(nil, BalancerConfig{})
	defer b.Close()
	in := infos(2)
	b.Update(in)
	e0 := b.Endpoints()[0]
	e0.outstanding.Add(5)
	in[0].Weight = 7
	b.Update(in)
	if e := b.Endpoints()[0]; e != e0 || e.Outstanding() != 5 || e.Info().Weight != 7 {
		t.Fatalf("endpoint replaced or state lost: same=%v outstanding=%d info=%+v", e == e0, e.Outstanding(), e.Info())
	}
}
