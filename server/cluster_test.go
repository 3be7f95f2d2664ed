package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
)

func testOptions() *indexOptions {
	return &indexOptions{domains: []string{"cluster.local.", "other.zone."}, ttl: 5, negativeTTL: 5,
		dnsService: registry.Key{Namespace: "kube-system", Name: "kube-dns"}}
}

// sameIndex compares two indexes name by name, byte by byte.
func sameIndex(t *testing.T, step string, a, b *clusterIndex) {
	t.Helper()
	if a.ptrs.Len() != b.ptrs.Len() {
		t.Fatalf("%s: %d reverse addresses incrementally, %d rebuilt", step, a.ptrs.Len(), b.ptrs.Len())
	}
	for i := range revShards {
		for _, pair := range [][2][]string{
			{revStrings(a.ptrs.v4.shard(i)), revStrings(b.ptrs.v4.shard(i))},
			{revStrings(a.ptrs.v6.shard(i)), revStrings(b.ptrs.v6.shard(i))},
		} {
			if !slices.Equal(pair[0], pair[1]) {
				t.Fatalf("%s: reverse shard %d: %q incrementally, %q rebuilt", step, i, pair[0], pair[1])
			}
		}
	}
	if a.names.Len() != b.names.Len() {
		t.Fatalf("%s: %d names incrementally, %d rebuilt", step, a.names.Len(), b.names.Len())
	}
	for key, nb := range b.names.All() {
		na, ok := a.names.Get(key)
		if !ok {
			t.Fatalf("%s: name %q missing from the incremental index", step, key)
		}
		if na.zone != nb.zone || len(na.rrsets) != len(nb.rrsets) {
			t.Fatalf("%s: name %q differs", step, key)
		}
		for i := range nb.rrsets {
			if na.rrsets[i].qtype != nb.rrsets[i].qtype || !bytes.Equal(na.rrsets[i].ans.wire, nb.rrsets[i].ans.wire) {
				t.Fatalf("%s: name %q type %d differs", step, key, nb.rrsets[i].qtype)
			}
			la, lb := na.rrsets[i].live, nb.rrsets[i].live
			if fmt.Sprintf("%T", la) != fmt.Sprintf("%T", lb) {
				t.Fatalf("%s: name %q: live answer %T incrementally, %T rebuilt", step, key, la, lb)
			}
			switch sa := la.(type) {
			case *srvSource:
				if sb := lb.(*srvSource); sa.entry.Key != sb.entry.Key || sa.port != sb.port || sa.proto != sb.proto || sa.sharedLabels != sb.sharedLabels {
					t.Fatalf("%s: name %q: SRV source differs", step, key)
				}
			case *addrSource:
				if sb := lb.(*addrSource); sa.entry.Key != sb.entry.Key || sa.v6 != sb.v6 || sa.n != sb.n || (sa.sel == nil) != (sb.sel == nil) {
					t.Fatalf("%s: name %q: address source differs", step, key)
				}
			case *zonesSource:
				if sb := lb.(*zonesSource); sa.entry.Key != sb.entry.Key || !slices.Equal(sa.zones, sb.zones) {
					t.Fatalf("%s: name %q: zone hints differ", step, key)
				}
			}
		}
		if (na.hosts == nil) != (nb.hosts == nil) || na.hosts != nil && !slices.Equal(na.hosts.byLabel, nb.hosts.byLabel) {
			t.Fatalf("%s: name %q: endpoint names differ", step, key)
		}
	}
}

// An index updated change by change equals one rebuilt from scratch, through
// random service, slice and readiness changes (shared endpoint addresses
// included, so PTR names with several owners are covered).
func TestIncrementalIndexEqualsRebuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	st := registrytest.New(t)
	opt := testOptions()
	var idx *clusterIndex
	incremental := 0
	st.Subscribe(func(s *registry.Snapshot) {
		if idx != nil && !s.Full {
			incremental++
		}
		next, err := buildClusterIndex(idx, s, opt)
		if err != nil {
			t.Fatal(err)
		}
		idx = next
	})
	for i := range 5 {
		st.UpsertNamespace(fmt.Sprintf("ns%d", i))
	}
	st.MarkSynced()
	st.Flush()
	svcKey := func() registry.Key {
		return registry.Key{Namespace: fmt.Sprintf("ns%d", rng.IntN(5)), Name: fmt.Sprintf("s%d", rng.IntN(20))}
	}
	for step := range 400 {
		k := svcKey()
		switch rng.IntN(5) {
		case 0:
			st.DeleteService(k)
		case 1, 2:
			svc := &registry.Service{Key: k, Kind: registry.ServiceKind(rng.IntN(3)),
				Ports: []registry.ServicePort{{Name: "http", Protocol: registry.TCP, Port: int32(80 + rng.IntN(2))}}}
			switch svc.Kind {
			case registry.KindClusterIP:
				svc.ClusterIPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(rng.IntN(3)), byte(rng.IntN(250))})}
			case registry.KindExternalName:
				svc.ExternalName = "x.example.test"
			}
			st.UpsertService(svc)
		case 3:
			sl := &registry.EndpointSlice{Key: registry.Key{Namespace: k.Namespace, Name: k.Name + "-a"}, Service: k.Name,
				Ports: []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 8080}}}
			for range rng.IntN(4) {
				sl.Endpoints = append(sl.Endpoints, registry.Endpoint{
					Address: netip.AddrFrom4([4]byte{10, 244, 0, byte(rng.IntN(8))}), // shared across services
					Ready:   rng.IntN(3) > 0})
			}
			st.UpsertEndpointSlice(sl)
		case 4:
			st.DeleteEndpointSlice(registry.Key{Namespace: k.Namespace, Name: k.Name + "-a"})
		}
		if k2 := svcKey(); rng.IntN(3) == 0 {
			st.DeleteService(k2) // two changes in one snapshot
		}
		snap := st.Flush()
		full, err := buildClusterIndex(nil, snap, opt)
		if err != nil {
			t.Fatal(err)
		}
		sameIndex(t, fmt.Sprintf("step %d (full=%v, changed=%v)", step, snap.Full, snap.Changed), idx, full)
	}
	if incremental < 300 {
		t.Fatalf("only %d of 400 updates were incremental", incremental)
	}
}

// revStrings describes the entries of a reverse shard.
func revStrings[E revItem[E]](sh []E) (out []string) {
	for _, e := range sh {
		hi, lo := e.key()
		r := e.name()
		out = append(out, fmt.Sprintf("%x/%x %s %d", hi, lo, r.svc.Key, r.ep))
	}
	return out
}
