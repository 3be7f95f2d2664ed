package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/clusterdns/clusterdns/lb/lbtest"
)

// TestLbcallGRPC calls real gRPC servers (the standard health service) on
// loopback through a clusterdns target, and a name that does not exist.
func TestLbcallGRPC(t *testing.T) {
	d := lbtest.StartDNS(t)
	var addrs []netip.AddrPort
	for i, ln := range lbtest.ListenLoopback(t, 3) {
		srv := grpc.NewServer()
		hs := health.NewServer()
		if i == 2 {
			hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		}
		healthpb.RegisterHealthServer(srv, hs)
		go srv.Serve(ln)
		t.Cleanup(srv.Stop)
		addrs = append(addrs, netip.MustParseAddrPort(ln.Addr().String()))
	}
	var ips []netip.Addr
	for _, a := range addrs {
		ips = append(ips, a.Addr())
	}
	d.SetAddrs("web.default.svc.cluster.local", 5, ips...)
	target := fmt.Sprintf("clusterdns:///web.default.svc.cluster.local:%d", addrs[0].Port())

	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--dns", d.Addr, "--n", "60", "--policy", "round_robin", target}, &out, &errOut)
	t.Logf("%s%s", out.String(), errOut.String())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	// The first calls go to the endpoints connected first, so shares are not exact.
	for _, want := range []string{"calls 60, answered 60, failed 0", "status SERVING: ", "status NOT_SERVING: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the output", want)
		}
	}
	for _, a := range addrs {
		if !strings.Contains(out.String(), a.String()) {
			t.Errorf("no call on %s", a)
		}
	}

	out.Reset()
	errOut.Reset()
	code = run(context.Background(), []string{"--dns", d.Addr, "--n", "2", "clusterdns:///nosuch.default.svc.cluster.local:80"}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), "no such name") {
		t.Fatalf("a name that does not exist: exit %d, output:\n%s%s", code, out.String(), errOut.String())
	}
}
