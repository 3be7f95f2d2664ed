package nodeproxy

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/clusterdns/clusterdns/registry"
)

// TestImportPorts checks the conversion of ServiceImports into proxy
// ports: a ClusterSetIP import gets its IP and port with the ready
// endpoints of every cluster (not the unready one), an import without
// endpoints rejects, a headless import has no ports, and the keys of
// imports cannot be taken for services.
func TestImportPorts(t *testing.T) {
	cs := newTestStore(t, testFiles...).Snapshot().ClusterSet()

	pay := importPorts(cs.Entry(registry.Key{Namespace: "apps", Name: "pay"}))
	if len(pay) != 1 {
		t.Fatalf("apps/pay: %d ports, want 1", len(pay))
	}
	p := pay[0]
	wantID := portID{Service: registry.Key{Namespace: "apps", Name: "clusterset:pay"}, Proto: "tcp", Port: 80, Family: ipv4}
	if p.ID != wantID || p.VIP != netip.MustParseAddr("10.112.0.20") || !p.HasEndpoints || p.NodePort != 0 || p.Affinity != 0 {
		t.Errorf("apps/pay port: %+v", p)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("10.245.2.10:8080"), netip.MustParseAddrPort("10.246.2.10:8080")}
	if !slices.Equal(p.Endpoints, want) || !slices.Equal(p.ClusterEndpoints, want) || p.LocalEndpoints != nil {
		t.Errorf("apps/pay endpoints %v, cluster %v, local %v; want %v", p.Endpoints, p.ClusterEndpoints, p.LocalEndpoints, want)
	}

	checkout := importPorts(cs.Entry(registry.Key{Namespace: "apps", Name: "checkout"}))
	if len(checkout) != 1 || checkout[0].HasEndpoints || len(checkout[0].Endpoints) != 0 {
		t.Errorf("apps/checkout without slices: %+v, want one port without endpoints", checkout)
	}
	if got := importPorts(cs.Entry(registry.Key{Namespace: "data", Name: "ledger"})); got != nil {
		t.Errorf("headless data/ledger: %d ports, want none", len(got))
	}
	if keys := importKeys(cs); !slices.Contains(keys, wantID.Service) || slices.ContainsFunc(keys, func(k registry.Key) bool { return k.Name == "clusterset:ledger" }) {
		t.Errorf("importKeys = %v", keys)
	}
	if _, ok := importOf(registry.Key{Namespace: "apps", Name: "pay"}); ok {
		t.Error("a service key was taken for an import")
	}
}

// TestImportSync checks that a change of the clusterset reaches the rules:
// the store publishes it as a full snapshot, and the sync moves the import
// from rejected to DNATed (and back when its slice goes away).
func TestImportSync(t *testing.T) {
	store := newTestStore(t, testFiles...)
	p, fake, _ := newTestProxier(t)
	ctx := context.Background()
	if _, err := p.Sync(ctx, store.Snapshot(), nil, false); err != nil {
		t.Fatal(err)
	}
	const reject = "no-endpoint-services-v4 { 10.112.0.10 . tcp . 80"
	const dnat = "{ 10.112.0.10 . 80 . 0 : 10.247.0.5 . 8080 }"
	if d := fake.Dump(); !strings.Contains(d, reject) || strings.Contains(d, dnat) {
		t.Fatalf("before: checkout not rejected:\n%s", d)
	}
	sl := &registry.EndpointSlice{
		Key: registry.Key{Namespace: "apps", Name: "imported-checkout-south"}, Service: "checkout", Cluster: "south",
		Ports:     []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 8080}},
		Endpoints: []registry.Endpoint{{Address: netip.MustParseAddr("10.247.0.5"), Ready: true, Serving: true}},
	}
	store.UpsertMCSEndpointSlice(sl)
	snap := store.Flush()
	if !snap.Full {
		t.Fatal("a clusterset change was not published as a full snapshot")
	}
	if _, err := p.Sync(ctx, snap, snap.Changed, snap.Full); err != nil {
		t.Fatal(err)
	}
	if d := fake.Dump(); strings.Contains(d, reject) || !strings.Contains(d, dnat) {
		t.Fatalf("with an endpoint: checkout not DNATed:\n%s", d)
	}
	store.DeleteMCSEndpointSlice(sl.Key)
	snap = store.Flush()
	if _, err := p.Sync(ctx, snap, snap.Changed, snap.Full); err != nil {
		t.Fatal(err)
	}
	if d := fake.Dump(); !strings.Contains(d, reject) || strings.Contains(d, dnat) {
		t.Fatalf("after the slice was deleted: checkout not rejected:\n%s", d)
	}
}
