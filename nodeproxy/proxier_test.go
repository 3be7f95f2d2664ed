package nodeproxy

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// newTestStore loads manifest files into a synced Store.
func newTestStore(t testing.TB, files ...string) *registry.Store {
	t.Helper()
	store := registry.NewStore(registry.Options{})
	var all registry.Objects
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := registry.ParseManifests(f, data)
		if err != nil {
			t.Fatal(err)
		}
		all.Services = append(all.Services, objs.Services...)
		all.Slices = append(all.Slices, objs.Slices...)
		all.Pods = append(all.Pods, objs.Pods...)
		all.Namespaces = append(all.Namespaces, objs.Namespaces...)
		all.Imports = append(all.Imports, objs.Imports...)
		all.MCSSlices = append(all.MCSSlices, objs.MCSSlices...)
	}
	store.Replace(all)
	store.MarkSynced()
	store.Flush()
	return store
}

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the output (go test -run %s -update rewrites it):\n%s", path, t.Name(), lineDiff(string(want), got))
	}
}

// sortedLines sorts the lines of a dump: the fake lists elements in the
// order they were added, which differs between a full and a partial sync.
func sortedLines(s string) string {
	l := strings.Split(s, "\n")
	slices.Sort(l)
	return strings.Join(l, "\n")
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

type fakeConntrack struct{ flows []StaleFlow }

func (f *fakeConntrack) DeleteUDP(_ context.Context, fl StaleFlow) error {
	f.flows = append(f.flows, fl)
	return nil
}

func newTestProxier(t testing.TB) (*Proxier, *knftables.Fake, *fakeConntrack) {
	fake := knftables.NewFake(knftables.InetFamily, DefaultTable)
	ct := &fakeConntrack{}
	return NewProxier(ProxierConfig{NFT: fake, Conntrack: ct, NodeName: "node-a", Zone: "zone-a",
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/48")}}), fake, ct
}

var testFiles = []string{"../zones/cluster.yaml", "testdata/cluster.yaml"}

func TestFullSyncGolden(t *testing.T) {
	store := newTestStore(t, testFiles...)
	p, fake, _ := newTestProxier(t)
	res, err := p.Sync(context.Background(), store.Snapshot(), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Full {
		t.Error("first sync was not full")
	}
	checkGolden(t, "full.golden", fake.Dump())
}

// editSlice replaces the endpoints of a slice and publishes.
func editSlice(t *testing.T, store *registry.Store, ns, name string, edit func(sl *registry.EndpointSlice)) *registry.Snapshot {
	t.Helper()
	snap := store.Snapshot()
	for e := range snap.Services() {
		_ = e
	}
	sl := findSlice(t, store, ns, name)
	edit(sl)
	store.UpsertEndpointSlice(sl)
	return store.Flush()
}

// findSlice rebuilds a slice from the test manifests (the store does not
// hand out its slices).
func findSlice(t *testing.T, _ *registry.Store, ns, name string) *registry.EndpointSlice {
	t.Helper()
	for _, f := range testFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := registry.ParseManifests(f, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, sl := range objs.Slices {
			if sl.Namespace == ns && sl.Name == name {
				return sl
			}
		}
	}
	t.Fatalf("no slice %s/%s", ns, name)
	return nil
}

// TestPartialSyncs applies a series of changes one by one and checks that
// each transaction touches only the changed service (golden transaction
// text), and that the result equals a full rewrite of the same state.
func TestPartialSyncs(t *testing.T) {
	ctx := context.Background()
	store := newTestStore(t, testFiles...)
	p, fake, ct := newTestProxier(t)
	if _, err := p.Sync(ctx, store.Snapshot(), nil, true); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() *registry.Snapshot
	}{
		{"web-endpoint-not-ready", func() *registry.Snapshot {
			return editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) {
				sl.Endpoints[0].Ready, sl.Endpoints[0].Serving = false, false
			})
		}},
		{"web-endpoint-added", func() *registry.Snapshot {
			return editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) {
				sl.Endpoints[0].Ready, sl.Endpoints[0].Serving = false, false
				sl.Endpoints = append(sl.Endpoints, registry.Endpoint{Address: netip.MustParseAddr("10.244.14.10"), Ready: true, Serving: true})
			})
		}},
		{"udp-endpoint-removed", func() *registry.Snapshot {
			return editSlice(t, store, "apps", "multi-v6", func(sl *registry.EndpointSlice) {
				sl.Endpoints = sl.Endpoints[1:]
			})
		}},
		{"sticky-endpoint-removed", func() *registry.Snapshot {
			return editSlice(t, store, "apps", "sticky-abc", func(sl *registry.EndpointSlice) {
				sl.Endpoints = sl.Endpoints[1:]
			})
		}},
		{"empty-gets-endpoint", func() *registry.Snapshot {
			store.UpsertEndpointSlice(&registry.EndpointSlice{
				Key: registry.Key{Namespace: "default", Name: "empty-x"}, Service: "empty",
				Ports:     []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 80}},
				Endpoints: []registry.Endpoint{{Address: netip.MustParseAddr("10.244.15.1"), Ready: true, Serving: true}},
			})
			return store.Flush()
		}},
		{"web-deleted", func() *registry.Snapshot {
			store.DeleteService(registry.Key{Namespace: "default", Name: "web"})
			return store.Flush()
		}},
	}
	for _, st := range steps {
		ct.flows = nil
		snap := st.do()
		if snap.Full {
			t.Fatalf("%s: store published a full snapshot", st.name)
		}
		res, err := p.Sync(ctx, snap, snap.Changed, false)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if res.Full {
			t.Fatalf("%s: sync was full", st.name)
		}
		got := fake.LastTransaction.String()
		for _, f := range ct.flows {
			got += "# conntrack: " + f.VIP.String() + " " + f.Endpoint.String() + "\n"
		}
		checkGolden(t, "partial-"+st.name+".golden", got)

		incremental := sortedLines(fake.Dump())
		if _, err := p.Sync(ctx, snap, nil, true); err != nil {
			t.Fatal(err)
		}
		if full := sortedLines(fake.Dump()); full != incremental {
			t.Errorf("%s: incremental result differs from a full rewrite:\n%s", st.name, lineDiff(full, incremental))
		}
	}
}

func TestAssignSlots(t *testing.T) {
	ap := func(s ...string) []netip.AddrPort {
		var out []netip.AddrPort
		for _, x := range s {
			out = append(out, netip.MustParseAddrPort(x))
		}
		return out
	}
	a, b, c, d, e := "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.5:80"
	for _, tc := range []struct {
		prev, want, out []netip.AddrPort
	}{
		{nil, ap(a, b), ap(a, b)},
		{ap(a, b, c), ap(c, b, a), ap(a, b, c)},    // order of want does not matter
		{ap(a, b, c), ap(a, c), ap(a, c)},          // hole filled from the tail
		{ap(a, b, c, d), ap(b, d), ap(d, b)},       // two holes
		{ap(a, b, c), ap(a, c, e), ap(a, e, c)},    // a new endpoint takes the hole
		{ap(a, b), ap(a, b, c, d), ap(a, b, c, d)}, // growth appends
		{ap(a, b, c), nil, nil},                    // all gone
		{ap(a, b, c, d, e), ap(e), ap(e)},          // only the last is left
	} {
		got := assignSlots(tc.prev, tc.want)
		if !slices.Equal(got, tc.out) {
			t.Errorf("assignSlots(%v, %v) = %v, want %v", tc.prev, tc.want, got, tc.out)
		}
	}
}

// TestSyncFailureForcesFull checks that after a failed transaction the
// next sync rewrites everything.
func TestSyncFailureForcesFull(t *testing.T) {
	ctx := context.Background()
	store := newTestStore(t, testFiles...)
	fake := knftables.NewFake(knftables.InetFamily, DefaultTable)
	failing := &failingNFT{Interface: fake}
	p := NewProxier(ProxierConfig{NFT: failing})
	if _, err := p.Sync(ctx, store.Snapshot(), nil, true); err != nil {
		t.Fatal(err)
	}
	snap := editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) { sl.Endpoints = sl.Endpoints[:1] })
	failing.fail = true
	if _, err := p.Sync(ctx, snap, snap.Changed, false); err == nil {
		t.Fatal("sync did not fail")
	}
	failing.fail = false
	res, err := p.Sync(ctx, snap, snap.Changed, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Full {
		t.Error("sync after a failure was not full")
	}
}

type failingNFT struct {
	knftables.Interface
	fail bool
}

func (f *failingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	if f.fail {
		return context.DeadlineExceeded
	}
	return f.Interface.Run(ctx, tx)
}
