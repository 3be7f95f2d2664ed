package lb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/lb/lbtest"
	"github.com/miekg/dns"
)

const svcName = "web.default.svc.cluster.local"

func testResolver(t *testing.T, d *lbtest.DNS) *Resolver {
	t.Helper()
	r, err := NewResolver(ResolverConfig{Server: d.Addr, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ips(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
	}
	return out
}

func addrsOf(res Resolution) []string {
	var out []string
	for _, e := range res.Endpoints {
		out = append(out, e.Addr.String())
	}
	slices.Sort(out)
	return out
}

func TestLookupA(t *testing.T) {
	d := lbtest.StartDNS(t)
	r := testResolver(t, d)
	v6 := netip.MustParseAddr("fd00::1")
	d.SetAddrs(svcName, 7, append(ips(2), v6)...)
	res, err := r.Lookup(context.Background(), Target{Name: svcName, Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.1.0.0:8080", "10.1.0.1:8080", "[fd00::1]:8080"}
	if got := addrsOf(res); !slices.Equal(got, want) || res.TTL != 7*time.Second {
		t.Fatalf("got %v ttl %v, want %v ttl 7s", got, res.TTL, want)
	}
	res, err = r.Lookup(context.Background(), Target{Name: svcName, Port: 8080, Network: "ip4"})
	if err != nil || len(res.Endpoints) != 2 {
		t.Fatalf("ip4 only: %v %v", addrsOf(res), err)
	}
	// IPv4 only: the AAAA NODATA's negative TTL (5s) does not shorten the A TTL.
	d.SetAddrs(svcName, 30, ips(2)...)
	res, err = r.Lookup(context.Background(), Target{Name: svcName, Port: 8080})
	if err != nil || len(res.Endpoints) != 2 || res.TTL != 30*time.Second {
		t.Fatalf("IPv4 only: %v ttl %v %v, want 2 endpoints ttl 30s", addrsOf(res), res.TTL, err)
	}
	d.SetAddrs(svcName, 7, append(ips(2), v6)...)
	// Names are case-insensitive and absolute.
	res, err = r.Lookup(context.Background(), Target{Name: "WEB.default.svc.cluster.local.", Port: 1})
	if err != nil || len(res.Endpoints) != 3 {
		t.Fatalf("upper case name: %v %v", addrsOf(res), err)
	}
}

func TestLookupTruncatedAnswerUsesTCP(t *testing.T) {
	d := lbtest.StartDNS(t)
	r := testResolver(t, d)
	d.SetAddrs(svcName, 5, ips(300)...) // ≈ 4.8 kB, more than 1232 bytes
	res, err := r.Lookup(context.Background(), Target{Name: svcName, Port: 80})
	if err != nil || len(res.Endpoints) != 300 {
		t.Fatalf("got %d endpoints, %v; want 300", len(res.Endpoints), err)
	}
}

func TestLookupSRV(t *testing.T) {
	d := lbtest.StartDNS(t)
	r := testResolver(t, d)
	srvName := "_http._tcp." + svcName
	d.SetSRV(srvName, 9,
		lbtest.SRV{Priority: 10, Weight: 60, Port: 8001, Target: "a." + svcName},
		lbtest.SRV{Priority: 20, Weight: 5, Port: 8002, Target: "b." + svcName})
	d.SetAddrs("a."+svcName, 4, netip.MustParseAddr("10.0.0.1"))
	d.SetAddrs("b."+svcName, 30, netip.MustParseAddr("10.0.0.2"))
	tgt := Target{Name: svcName, PortName: "http"}
	for _, omit := range []bool{false, true} { // Additional section, then follow-up queries
		d.SetOmitAdditional(omit)
		before := d.Queries()
		res, err := r.Lookup(context.Background(), tgt)
		if err != nil {
			t.Fatal(err)
		}
		want := []EndpointInfo{
			{Addr: netip.MustParseAddrPort("10.0.0.1:8001"), Host: "a." + svcName, Priority: 10, Weight: 60},
			{Addr: netip.MustParseAddrPort("10.0.0.2:8002"), Host: "b." + svcName, Priority: 20, Weight: 5},
		}
		if !slices.Equal(res.Endpoints, want) || res.TTL != 4*time.Second {
			t.Fatalf("omit additional %v: got %+v ttl %v", omit, res.Endpoints, res.TTL)
		}
		if q := d.Queries() - before; (omit && q != 5) || (!omit && q != 1) {
			t.Errorf("omit additional %v: %d queries", omit, q)
		}
	}
	// Target "." alone: no service.
	d.SetSRV(srvName, 9, lbtest.SRV{Target: "."})
	res, err := r.Lookup(context.Background(), tgt)
	if err != nil || !res.NoService {
		t.Fatalf("target \".\": %+v %v", res, err)
	}
}

func TestLookupFailures(t *testing.T) {
	d := lbtest.StartDNS(t)
	r := testResolver(t, d)
	d.SetAddrs(svcName, 5, ips(2)...)
	tgt := Target{Name: svcName, Port: 80}
	d.SetFailure(lbtest.ServFail)
	_, err := r.Lookup(context.Background(), tgt)
	var rc *RcodeError
	if !errors.As(err, &rc) || rc.Rcode != dns.RcodeServerFailure {
		t.Fatalf("SERVFAIL: %v", err)
	}
	d.SetFailure(lbtest.Drop)
	if _, err := r.Lookup(context.Background(), tgt); err == nil {
		t.Fatal("no reply: no error")
	}
	for _, f := range []lbtest.Failure{lbtest.NXDomain, lbtest.Empty} {
		d.SetFailure(f)
		if res, err := r.Lookup(context.Background(), tgt); err != nil || len(res.Endpoints) != 0 {
			t.Fatalf("failure %d: %+v %v, want an empty resolution", f, res, err)
		}
	}
}

func TestResolverFromResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(path, []byte("search default.svc.cluster.local\nnameserver 127.0.0.9\nnameserver ::1\noptions ndots:5\n"), 0o644)
	r, err := NewResolver(ResolverConfig{ResolvConf: path})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.9:53", "[::1]:53"}; !slices.Equal(r.servers, want) {
		t.Fatalf("servers %v, want %v", r.servers, want)
	}
	if _, err := NewResolver(ResolverConfig{ResolvConf: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Fatal("missing resolv.conf: no error")
	}
}

// fakeSource records calls and returns what the test says.
type fakeSource struct {
	mu    sync.Mutex
	calls []time.Time
	res   Resolution
	err   error
}

func (f *fakeSource) Resolve(context.Context) (Resolution, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, time.Now())
	return f.res, f.err
}

func (f *fakeSource) set(res Resolution, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.res, f.err = res, err
}

func (f *fakeSource) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func TestBackoffOnErrors(t *testing.T) {
	t.Parallel()
	src := &fakeSource{err: errors.New("dns down")}
	b := NewBalancer(src, BalancerConfig{ResolveFloor: 50 * time.Millisecond, BackoffMax: 400 * time.Millisecond})
	defer b.Close()
	if err := b.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Pick(); !errors.Is(err, ErrNoEndpoints) || err.Error() == ErrNoEndpoints.Error() {
		t.Fatalf("Pick after a failed first resolution: %v, want ErrNoEndpoints with the reason", err)
	}
	// Failures reported meanwhile must not bypass the backoff.
	time.Sleep(2 * time.Second)
	b.ResolveNow()
	n := src.count()
	// 50, 100, 200, 400, 400, ... ms (±20%): about 8 calls in 2 s, 40 without backoff.
	t.Logf("%d resolutions in 2s of failures", n)
	if n < 3 || n > 14 {
		t.Fatalf("%d resolutions in 2s with backoff 50ms..400ms", n)
	}
	src.mu.Lock()
	calls := slices.Clone(src.calls)
	src.mu.Unlock()
	if gap := calls[len(calls)-1].Sub(calls[len(calls)-2]); gap < 300*time.Millisecond {
		t.Errorf("last gap %v, want the capped backoff (≥ 320ms)", gap)
	}
}

func TestReresolveSoonAfterFailures(t *testing.T) {
	t.Parallel()
	src := &fakeSource{res: Resolution{Endpoints: infos(3), TTL: time.Hour}}
	b := NewBalancer(src, BalancerConfig{ResolveFloor: 200 * time.Millisecond})
	defer b.Close()
	b.WaitReady(context.Background())
	e, err := b.Pick()
	if err != nil {
		t.Fatal(err)
	}
	e.Done(errRefused)
	waitFor(t, 5*time.Second, "a re-resolution after a failure", func() bool { return src.count() >= 2 })
	src.mu.Lock()
	gap := src.calls[1].Sub(src.calls[0])
	src.mu.Unlock()
	if gap < 200*time.Millisecond {
		t.Errorf("re-resolved after %v, before the floor", gap)
	}
	// Many failures: still at most one resolution per floor.
	for range 50 {
		e, _ := b.Pick()
		e.Done(errRefused)
	}
	time.Sleep(time.Second)
	if n := src.count(); n > 2+6 {
		t.Errorf("%d resolutions, floor not respected", n)
	}
}

func TestNoServiceEmptiesTheSet(t *testing.T) {
	t.Parallel()
	src := &fakeSource{res: Resolution{Endpoints: infos(2), TTL: 0}}
	b := NewBalancer(src, BalancerConfig{ResolveFloor: 50 * time.Millisecond})
	defer b.Close()
	b.WaitReady(context.Background())
	src.set(Resolution{NoService: true}, nil)
	waitFor(t, 5*time.Second, "ErrNoService", func() bool {
		_, err := b.Pick()
		return errors.Is(err, ErrNoService)
	})
	src.set(Resolution{Endpoints: infos(1)}, nil)
	waitFor(t, 5*time.Second, "service back", func() bool {
		e, err := b.Pick()
		if err == nil {
			e.Done(nil)
		}
		return err == nil
	})
}

// TestBalancerKeepsLastGoodSet drives a Balancer from the DNS: every kind of
// failed or empty resolution keeps the set; a good answer replaces it.
func TestBalancerKeepsLastGoodSet(t *testing.T) {
	t.Parallel()
	d := lbtest.StartDNS(t)
	r := testResolver(t, d)
	d.SetAddrs(svcName, 1, ips(3)...)
	b := NewBalancer(r.Source(Target{Name: svcName, Port: 80}, nil, nil),
		BalancerConfig{Policy: RoundRobin(), ResolveFloor: 100 * time.Millisecond, BackoffMax: 200 * time.Millisecond, ResolveTimeout: time.Second})
	defer b.Close()
	b.WaitReady(context.Background())
	want := map[string]int{"10.1.0.0:80": 10, "10.1.0.1:80": 10, "10.1.0.2:80": 10}
	for _, f := range []lbtest.Failure{lbtest.ServFail, lbtest.Empty, lbtest.NXDomain, lbtest.Drop} {
		d.SetFailure(f)
		q := d.Queries()
		waitFor(t, 10*time.Second, "two failed resolutions", func() bool { return d.Queries() >= q+4 })
		if got := pickCounts(t, b, 30); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("failure %d: picks %v, want the last good set %v", f, got, want)
		}
	}
	// Records deleted (NXDOMAIN with the real records), then a new good set.
	d.SetFailure(lbtest.Answer)
	d.Delete(svcName)
	q := d.Queries()
	waitFor(t, 10*time.Second, "two resolutions", func() bool { return d.Queries() >= q+4 })
	if got := pickCounts(t, b, 30); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deleted: picks %v, want the last good set", got)
	}
	d.SetAddrs(svcName, 1, ips(4)[3])
	waitFor(t, 10*time.Second, "the new set", func() bool {
		c := pickCounts(t, b, 3)
		return c["10.1.0.3:80"] == 3
	})
}
