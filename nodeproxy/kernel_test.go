package nodeproxy

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/registry"
)

// requireNetAdmin skips the test unless it runs as root with nft on PATH;
// under CI=true it fails instead, so that CI cannot pass by skipping.
func requireNetAdmin(t testing.TB, tools ...string) {
	t.Helper()
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root"
	}
	for _, tool := range append([]string{"nft"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing += " " + tool
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs%s (CI=true: not skipping)", missing)
	}
	t.Skipf("needs %s", strings.TrimSpace(missing))
}

// inFreshNetns runs fn on a goroutine whose OS thread was moved into a new,
// empty network namespace. Commands that fn starts (nft) inherit it, so
// the rules never touch the host's tables. The thread is never unlocked:
// it exits with the goroutine.
func inFreshNetns(t testing.TB, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare network namespace: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// TestKernelAcceptsRules writes the golden rules into a real kernel: a full
// sync, every partial sync of TestPartialSyncs' kind, and a second full
// sync over the first; then checks what the kernel holds.
func TestKernelAcceptsRules(t *testing.T) {
	requireNetAdmin(t)
	ctx := context.Background()
	store := newTestStore(t, testFiles...)
	inFreshNetns(t, func() {
		nft, err := knftables.New(knftables.InetFamily, DefaultTable)
		if err != nil {
			t.Errorf("knftables: %v", err)
			return
		}
		p := NewProxier(ProxierConfig{NFT: nft, NodeName: "node-a", Zone: "zone-a",
			ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/48")}})
		if _, err := p.Sync(ctx, store.Snapshot(), nil, true); err != nil {
			t.Errorf("full sync: %v", err)
			return
		}
		snap := editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) {
			sl.Endpoints = append(sl.Endpoints[1:], registry.Endpoint{Address: netip.MustParseAddr("10.244.14.10"), Ready: true})
		})
		if _, err := p.Sync(ctx, snap, snap.Changed, false); err != nil {
			t.Errorf("partial sync: %v", err)
		}
		snap = editSlice(t, store, "apps", "sticky-abc", func(sl *registry.EndpointSlice) { sl.Endpoints = sl.Endpoints[1:] })
		if _, err := p.Sync(ctx, snap, snap.Changed, false); err != nil {
			t.Errorf("partial sync (affinity): %v", err)
		}
		store.DeleteService(registry.Key{Namespace: "apps", Name: "multi"})
		snap = store.Flush()
		if _, err := p.Sync(ctx, snap, snap.Changed, false); err != nil {
			t.Errorf("partial sync (delete): %v", err)
		}
		if _, err := p.Sync(ctx, snap, nil, true); err != nil {
			t.Errorf("second full sync: %v", err)
		}
		out, err := exec.Command("nft", "list", "table", "inet", DefaultTable).CombinedOutput()
		if err != nil {
			t.Errorf("nft list: %v: %s", err, out)
			return
		}
		for _, want := range []string{
			"10.96.1.100 . 80 . 0 : 10.244.14.10 . 8080",
			"10.96.1.100 . 80 . 1 : 10.244.12.10 . 8080",
			"10.96.1.100 . tcp . 80 comment \"default/web/tcp/80\" : goto cluster-v4-tcp-n2",
			"dnat ip to ip daddr . tcp dport . numgen random mod 2 map @endpoints-v4-tcp",
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("kernel table lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(string(out), "fd00:10:96::1:104") {
			t.Errorf("deleted service still in the kernel:\n%s", out)
		}
		if err := Cleanup(ctx, nft); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if out, err := exec.Command("nft", "list", "tables").CombinedOutput(); err != nil || strings.Contains(string(out), DefaultTable) {
			t.Errorf("table left after cleanup (%v): %s", err, out)
		}
	})
}
