package lbgrpc_test

// Test support: real gRPC servers on loopback addresses (the standard health
// service and a small echo service described by hand, without protoc), the
// real clusterdns server serving their records from a cluster manifest it
// reloads, and clients made with grpc.NewClient.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/clusterdns/clusterdns/lb/lbtest"
	"github.com/clusterdns/clusterdns/lb/lbtest/clusterdnstest"
)

// The echo service: one unary method taking and returning a StringValue
// (a protobuf well-known type, so grpc's default codec handles it). The answer
// is the serving backend's address.
const echoMethod = "/clusterdns.test.Echo/Echo"

type echoService interface {
	echo(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "clusterdns.test.Echo",
	HandlerType: (*echoService)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(echoService).echo(ctx, in)
		},
	}},
}

// backend is one gRPC server on its own loopback address.
type backend struct {
	addr  netip.AddrPort
	hits  atomic.Int64  // calls received, failed ones included
	delay atomic.Int64  // nanoseconds added to every answer
	fail  atomic.Uint32 // a codes.Code to fail every call with; 0 answers
	// workers, when set, bounds the calls served at once (a server with a
	// fixed pool of workers: more calls queue, as on a busy machine).
	workers atomic.Pointer[chan struct{}]
	health  *health.Server

	mu      sync.Mutex
	srv     *grpc.Server
	hold    chan struct{} // calls with the value "hold" wait for it to close
	entered chan struct{} // a held call signals here
}

func (b *backend) echo(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	b.hits.Add(1)
	if w := b.workers.Load(); w != nil {
		select {
		case *w <- struct{}{}:
			defer func() { <-*w }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if d := b.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	if in.GetValue() == "hold" {
		b.mu.Lock()
		hold, entered := b.hold, b.entered
		b.mu.Unlock()
		if hold != nil {
			entered <- struct{}{}
			select {
			case <-hold:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	if c := codes.Code(b.fail.Load()); c != codes.OK {
		return nil, status.Errorf(c, "%s fails on purpose", b.addr)
	}
	return wrapperspb.String(b.addr.String()), nil
}

// holdCalls makes calls with the value "hold" wait until release; each one
// that starts waiting signals on the returned channel.
func (b *backend) holdCalls() (entered <-chan struct{}, release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	hold, ent := make(chan struct{}), make(chan struct{}, 16)
	b.hold, b.entered = hold, ent
	return ent, sync.OnceFunc(func() { close(hold) })
}

func (b *backend) serve(ln net.Listener) {
	srv := grpc.NewServer()
	srv.RegisterService(&echoDesc, b)
	healthpb.RegisterHealthServer(srv, b.health)
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(ln)
}

// kill stops the server at once: its connections close, new ones are refused.
func (b *backend) kill() {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	srv.Stop()
}

// restart serves again on the same address after kill.
func (b *backend) restart(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", b.addr.String())
	if err != nil {
		t.Fatalf("restarting %s: %v", b.addr, err)
	}
	b.serve(ln)
}

// startBackends starts n gRPC servers on 127.a.b.1 … 127.a.b.n, one port.
func startBackends(t testing.TB, n int) []*backend {
	t.Helper()
	var bs []*backend
	for _, ln := range lbtest.ListenLoopback(t, n) {
		b := &backend{addr: netip.MustParseAddrPort(ln.Addr().String()), health: health.NewServer()}
		b.serve(ln)
		bs = append(bs, b)
	}
	t.Cleanup(func() {
		for _, b := range bs {
			b.kill()
		}
	})
	return bs
}

func hits(bs []*backend) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.hits.Load()
	}
	return out
}

func since(bs []*backend, before []int64) []int64 {
	out := hits(bs)
	for i := range out {
		out[i] -= before[i]
	}
	return out
}

const (
	svcName = "echo.default.svc.cluster.local"
	srvName = "_grpc._tcp." + svcName
)

// cluster is a cluster manifest folder served by a real clusterdns: a headless
// service "echo" in "default" with a port named "grpc"; backends 0 and 1 are
// in zone-a, the others in zone-b.
type cluster struct {
	file string
	dns  *clusterdnstest.ClusterDNS
	bs   []*backend
}

func startCluster(t testing.TB, bs []*backend, members ...int) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{file: filepath.Join(dir, "cluster.yaml"), bs: bs}
	c.set(t, members...)
	c.dns = clusterdnstest.Start(t, dir)
	return c
}

// set rewrites the manifest with the given backends as the endpoints.
func (c *cluster) set(t testing.TB, members ...int) {
	t.Helper()
	var eps []clusterdnstest.Endpoint
	for _, i := range members {
		zone := "zone-b"
		if i < 2 {
			zone = "zone-a"
		}
		eps = append(eps, clusterdnstest.Endpoint{Addr: c.bs[i].addr.Addr(), Hostname: fmt.Sprintf("echo-%d", i), Zone: zone})
	}
	m := clusterdnstest.Headless("echo", "grpc", c.bs[0].addr.Port(), eps)
	tmp := c.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, c.file); err != nil {
		t.Fatal(err)
	}
}

// aTarget and srvTarget name the service through c's DNS server.
func (c *cluster) aTarget() string {
	return fmt.Sprintf("clusterdns://%s/%s:%d", c.dns.Addr, svcName, c.bs[0].addr.Port())
}

func (c *cluster) srvTarget() string { return fmt.Sprintf("clusterdns://%s/%s", c.dns.Addr, srvName) }

// fastReconnect keeps grpc's reconnection backoff short so that tests of a
// backend coming back do not wait for the 1s…120s default.
var fastReconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
	MinConnectTimeout: time.Second,
})

// dial returns a client of target balanced by policy (a balancer name) with
// its JSON config.
func dial(t testing.TB, target, policy, config string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:%s}]}`, policy, config)
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(sc)}, opts...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", target, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// call makes one echo call and returns the address of the backend that
// answered. Without a deadline in ctx it gives the call 5 s.
func call(ctx context.Context, conn *grpc.ClientConn, value string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	out := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, echoMethod, wrapperspb.String(value), out); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// mustCall is call failing the test on error.
func mustCall(t testing.TB, conn *grpc.ClientConn) string {
	t.Helper()
	addr, err := call(context.Background(), conn, "")
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	return addr
}

// waitAll makes calls until every backend in want has answered one, or fails
// after limit.
func waitAll(t testing.TB, conn *grpc.ClientConn, limit time.Duration, want ...*backend) {
	t.Helper()
	before := hits(want)
	deadline := time.Now().Add(limit)
	for {
		all := true
		for _, n := range since(want, before) {
			all = all && n > 0
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v not every backend answered: %v", limit, since(want, before))
		}
		mustCall(t, conn)
	}
}
