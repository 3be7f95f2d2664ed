package nodeproxy

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/registry"
)

// groupLine matches the lines of a dump that belong to a group chain.
var groupLine = regexp.MustCompile(` (cluster|external|external-local|nodeport|nodeport-local)-v[46]-(tcp|udp|sctp)-n\d+(-l\d+)?( |$)`)

// TestStepsMatchOneTransaction syncs the golden cluster twice side by
// side, once in one nft transaction and once in apply's steps with an
// ElementWriter, and checks after each sync that both tables hold the
// same, but for the group chains that the steps keep until a full sync;
// and that a change of endpoints alone is the element batch only.
func TestStepsMatchOneTransaction(t *testing.T) {
	ctx := context.Background()
	store := newTestStore(t, testFiles...)
	cidrs := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/48")}
	oneFake := knftables.NewFake(knftables.InetFamily, DefaultTable)
	one := NewProxier(ProxierConfig{NFT: oneFake, NodeName: "node-a", Zone: "zone-a", ClusterCIDRs: cidrs})
	stepsFake := knftables.NewFake(knftables.InetFamily, DefaultTable)
	counted := &countingNFT{Interface: stepsFake}
	steps := NewProxier(ProxierConfig{NFT: counted, Elements: TransactionElements{NFT: counted},
		NodeName: "node-a", Zone: "zone-a", ClusterCIDRs: cidrs})

	sync := func(what string, snap *registry.Snapshot, changed []registry.Key, full bool) (transactions int) {
		t.Helper()
		before := len(counted.txs)
		if _, err := one.Sync(ctx, snap, changed, full); err != nil {
			t.Fatalf("%s, one transaction: %v", what, err)
		}
		if _, err := steps.Sync(ctx, snap, changed, full); err != nil {
			t.Fatalf("%s, steps: %v", what, err)
		}
		want, got := sortedLines(oneFake.Dump()), sortedLines(stepsFake.Dump())
		if full && got != want {
			t.Fatalf("%s: the tables differ:\n%s", what, lineDiff(want, got))
		}
		wantSet := map[string]bool{}
		for _, l := range strings.Split(want, "\n") {
			wantSet[l] = true
		}
		gotSet := map[string]bool{}
		for _, l := range strings.Split(got, "\n") {
			gotSet[l] = true
			if !wantSet[l] && !groupLine.MatchString(l) {
				t.Errorf("%s: the steps' table has %q", what, l)
			}
		}
		for l := range wantSet {
			if !gotSet[l] {
				t.Errorf("%s: the steps' table lacks %q", what, l)
			}
		}
		return len(counted.txs) - before
	}

	sync("full sync", store.Snapshot(), nil, true)
	snap := editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) {
		sl.Endpoints[0].Address = netip.MustParseAddr("10.244.14.10")
	})
	if n := sync("endpoint replaced", snap, snap.Changed, false); n != 1 {
		t.Errorf("an endpoint change took %d transactions, want the element batch alone:\n%s",
			n, strings.Join(counted.txs[len(counted.txs)-n:], "\n--\n"))
	}
	var all []registry.Endpoint
	snap = editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) {
		all, sl.Endpoints = slices.Clone(sl.Endpoints), sl.Endpoints[:1]
	})
	sync("endpoint count changed", snap, snap.Changed, false)
	snap = editSlice(t, store, "apps", "sticky-abc", func(sl *registry.EndpointSlice) { sl.Endpoints = sl.Endpoints[1:] })
	sync("affinity endpoint gone", snap, snap.Changed, false)
	store.DeleteService(registry.Key{Namespace: "apps", Name: "multi"})
	snap = store.Flush()
	sync("service deleted", snap, snap.Changed, false)
	snap = editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) { sl.Endpoints = all })
	if n := sync("endpoint count back", snap, snap.Changed, false); n != 1 {
		t.Errorf("a change back to a group chain kept in place took %d transactions, want 1:\n%s",
			n, strings.Join(counted.txs[len(counted.txs)-n:], "\n--\n"))
	}
	sync("second full sync", snap, nil, true)
}

// failingElements fails its next fails batches.
type failingElements struct {
	TransactionElements
	fails int
}

func (f *failingElements) WriteElements(ctx context.Context, b *ElementBatch) error {
	if f.fails > 0 {
		f.fails--
		return errors.New("batch refused")
	}
	return f.TransactionElements.WriteElements(ctx, b)
}

// Stream fails at Send while fails is positive, as WriteElements does.
func (f *failingElements) Stream(flush []string) (ElementStream, error) {
	s, err := f.TransactionElements.Stream(flush)
	return failingStream{ElementStream: s, f: f}, err
}

type failingStream struct {
	ElementStream
	f *failingElements
}

func (s failingStream) Send(ctx context.Context) error {
	if s.f.fails > 0 {
		s.f.fails--
		return errors.New("batch refused")
	}
	return s.ElementStream.Send(ctx)
}

// TestElementBatchFailure checks that a failed element batch fails the
// sync (the error wrapped), that the next full sync rewrites the table in
// place, and that after a failed full sync the one after it recreates the
// table in one transaction; each time the table ends as a first full sync
// writes it.
func TestElementBatchFailure(t *testing.T) {
	ctx := context.Background()
	store := newTestStore(t, testFiles...)
	fake := knftables.NewFake(knftables.InetFamily, DefaultTable)
	counted := &countingNFT{Interface: fake}
	elems := &failingElements{TransactionElements: TransactionElements{NFT: fake}}
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxier(ProxierConfig{NFT: counted, Elements: elems, Metrics: m})
	if _, err := p.Sync(ctx, store.Snapshot(), nil, true); err != nil {
		t.Fatal(err)
	}
	want := sortedLines(fake.Dump())

	var orig netip.Addr
	snap := editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) {
		orig, sl.Endpoints[0].Address = sl.Endpoints[0].Address, netip.MustParseAddr("10.244.14.10")
	})
	elems.fails = 1
	if _, err := p.Sync(ctx, snap, snap.Changed, false); err == nil || !strings.Contains(err.Error(), "batch refused") {
		t.Fatalf("partial sync with a failing batch: %v", err)
	}
	const failures = "kubeproxy_sync_proxy_rules_nftables_sync_failures_total"
	if got := counter(t, reg, failures); got != 1 {
		t.Errorf("%s = %v after a failed batch, want 1", failures, got)
	}
	res, err := p.Sync(ctx, snap, snap.Changed, false)
	if err != nil || !res.Full {
		t.Fatalf("sync after a failed batch: full=%v, %v", res.Full, err)
	}
	if last := counted.txs[len(counted.txs)-1]; strings.Contains(last, "delete table") {
		t.Errorf("the resync after a failed partial sync recreated the table")
	}
	if !strings.Contains(fake.Dump(), "10.244.14.10 . 8080") {
		t.Errorf("the resync lacks the change")
	}

	// The change undone; the full sync fails, the next one recreates.
	snap = editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) {
		sl.Endpoints[0].Address = orig
	})
	elems.fails = 1
	if _, err := p.Sync(ctx, snap, nil, true); err == nil {
		t.Fatal("full sync with a failing batch succeeded")
	}
	if got := counter(t, reg, failures); got != 2 {
		t.Errorf("%s = %v after two failed batches, want 2", failures, got)
	}
	before := len(counted.txs)
	if _, err := p.Sync(ctx, snap, nil, true); err != nil {
		t.Fatal(err)
	}
	if n := len(counted.txs) - before; n != 1 || !strings.Contains(counted.txs[before], "delete table") {
		t.Errorf("the full sync after a failed one was %d transactions, want one that recreates the table", n)
	}
	if got := sortedLines(fake.Dump()); got != want {
		t.Errorf("table after the recreation differs from the first sync's:\n%s", lineDiff(want, got))
	}
}
