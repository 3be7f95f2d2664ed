package lbgrpc

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/clusterdns/clusterdns/lb"
)

// fakeSubConn stands for a grpc subchannel; the picker only hands it out.
type fakeSubConn struct {
	balancer.SubConn
	addr string
}

// testPicker builds the picker the balancer would publish for n READY
// endpoints, with policy and config cfg.
func testPicker(tb testing.TB, n int, policy lb.Policy, cfg *Config) (*picker, *lb.Balancer) {
	tb.Helper()
	lbb := lb.NewBalancer(nil, cfg.balancerConfig("test", policy))
	tb.Cleanup(lbb.Close)
	var infos []lb.EndpointInfo
	for i := range n {
		infos = append(infos, lb.EndpointInfo{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 80)})
	}
	lbb.Update(infos)
	p := &picker{lbb: lbb, hashKey: cfg.HashKey, subs: make(map[*lb.Endpoint]balancer.SubConn),
		mask: cfg.failureMask(), calls: newCallPool()}
	for _, e := range lbb.Endpoints() {
		p.subs[e] = &fakeSubConn{addr: e.Addr()}
	}
	return p, lbb
}

func TestPickAllocatesNothing(t *testing.T) {
	ctx := lb.WithHashKey(context.Background(), "alice")
	for _, name := range PolicyNames {
		policy, err := lb.PolicyByName(name)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := testPicker(t, 8, policy, &Config{})
		info := balancer.PickInfo{FullMethodName: "/x.Y/Z", Ctx: ctx}
		allocs := testing.AllocsPerRun(1000, func() {
			r, err := p.Pick(info)
			if err != nil {
				t.Fatal(err)
			}
			r.Done(balancer.DoneInfo{})
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per pick and done, want 0", name, allocs)
		}
	}
}

func TestPickHashKeyFromMetadata(t *testing.T) {
	p, _ := testPicker(t, 8, lb.Maglev(), &Config{HashKey: "x-user"})
	pick := func(ctx context.Context) string {
		r, err := p.Pick(balancer.PickInfo{Ctx: ctx})
		if err != nil {
			t.Fatal(err)
		}
		r.Done(balancer.DoneInfo{})
		return r.SubConn.(*fakeSubConn).addr
	}
	md := pick(metadata.AppendToOutgoingContext(context.Background(), "X-User", "bob"))
	for range 50 {
		if got := pick(metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-user", "bob"))); got != md {
			t.Fatalf("key bob went to %s and %s", md, got)
		}
	}
	if got := pick(lb.WithHashKey(context.Background(), "bob")); got != md {
		t.Fatalf("lb.WithHashKey(bob) went to %s, metadata bob to %s", got, md)
	}
}

func TestDoneClassifiesStatusCodes(t *testing.T) {
	cfg := &Config{Outlier: OutlierConfig{ConsecutiveFailures: 2, FailureCodes: []codes.Code{codes.Internal}}}
	p, lbb := testPicker(t, 2, lb.RoundRobin(), cfg)
	for _, tc := range []struct {
		err   error
		eject bool
	}{
		{status.Error(codes.Unavailable, "x"), false}, // not in FailureCodes
		{status.Error(codes.Canceled, "x"), false},
		{context.Canceled, false},
		{nil, false},
		{status.Error(codes.Internal, "x"), true},
	} {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			e := lbb.Endpoints()[0]
			for range 2 {
				p.newCall(e).done(balancer.DoneInfo{Err: tc.err})
			}
			if e.Ejected() != tc.eject {
				t.Fatalf("after 2 × %v: ejected = %v, want %v", tc.err, e.Ejected(), tc.eject)
			}
		})
	}
}

func BenchmarkPick(b *testing.B) {
	p, _ := testPicker(b, 8, lb.P2C(), &Config{})
	info := balancer.PickInfo{Ctx: context.Background()}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := p.Pick(info)
			if err != nil {
				b.Fatal(err)
			}
			r.Done(balancer.DoneInfo{})
		}
	})
}

// recordingCC records the states a balancer publishes.
type recordingCC struct {
	balancer.ClientConn
	states []balancer.State
}

func (c *recordingCC) UpdateState(s balancer.State) { c.states = append(c.states, s) }

func TestResolverErrorBeforeAnyAddress(t *testing.T) {
	cc := &recordingCC{}
	b := (&balancerBuilder{name: "clusterdns_p2c", policy: lb.P2C()}).Build(cc, balancer.BuildOptions{})
	defer b.Close()
	b.ResolverError(errors.New("no such name"))
	if len(cc.states) != 1 || cc.states[0].ConnectivityState != connectivity.TransientFailure {
		t.Fatalf("states %+v, want one TRANSIENT_FAILURE", cc.states)
	}
	if _, err := cc.states[0].Picker.Pick(balancer.PickInfo{}); err == nil || !strings.Contains(err.Error(), "no such name") {
		t.Fatalf("pick error %v, want the resolver's", err)
	}
	if err := b.UpdateClientConnState(balancer.ClientConnState{}); !errors.Is(err, balancer.ErrBadResolverState) {
		t.Fatalf("an empty address list: %v, want ErrBadResolverState", err)
	}
}

func TestLatencyDecayReachesTheBalancer(t *testing.T) {
	cfg, err := parseConfig("clusterdns_p2c", []byte(`{"latencyDecay":"2s"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.balancerConfig("x", lb.P2C()).LatencyDecay; got != 2*time.Second {
		t.Fatalf("LatencyDecay %v, want 2s", got)
	}
}

// TestDoneFeedsLatency: a successful RPC's duration reaches its endpoint's
// latency estimate; a failed one's does not.
func TestDoneFeedsLatency(t *testing.T) {
	p, lbb := testPicker(t, 2, lb.P2C(), &Config{})
	failing, ok := lbb.Endpoints()[0], lbb.Endpoints()[1]
	p.newCall(failing).done(balancer.DoneInfo{Err: status.Error(codes.Unavailable, "x")})
	c := p.newCall(ok)
	c.start = c.start.Add(-30 * time.Millisecond) // the call took 30 ms
	c.done(balancer.DoneInfo{})
	if est, known := failing.Latency(); known {
		t.Errorf("a failed RPC fed the estimate: %v", est)
	}
	if est, known := ok.Latency(); !known || est < 29*time.Millisecond || est > 31*time.Millisecond {
		t.Errorf("estimate after one 30 ms RPC: %v (%v)", est, known)
	}
}
