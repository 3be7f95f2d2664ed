package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/clusterdns/clusterdns/lb/lbtest"
)

func TestLbcall(t *testing.T) {
	d := lbtest.StartDNS(t)
	backends := lbtest.StartBackends(t, 3)
	d.SetAddrs("web-server-service.default.svc.cluster.local", 5, lbtest.Addrs(backends)...)
	url := fmt.Sprintf("http://web-server-service.default.svc.cluster.local:%d/api/v1/healthz", backends[0].Addr.Port())
	for _, mode := range []string{"rt", "dial"} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"--dns", d.Addr, "--n", "30", "--policy", "round_robin", "--mode", mode, url}, &out, &errOut)
		t.Logf("--mode %s:\n%s%s", mode, out.String(), errOut.String())
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if !strings.Contains(out.String(), "calls 30, answered 30, failed 0") || !strings.Contains(out.String(), "status 200: 30") {
			t.Fatalf("unexpected output:\n%s", out.String())
		}
		if mode == "rt" {
			for _, b := range backends {
				if !strings.Contains(out.String(), b.Addr.String()+"     10  33.3%") {
					t.Errorf("want 10 calls on %s:\n%s", b.Addr, out.String())
				}
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--n", "0", url}, &out, &errOut); code != 2 {
		t.Errorf("bad usage: exit %d", code)
	}
}
