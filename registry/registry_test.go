package registry

import (
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/clusterdns/clusterdns/zones"
)

func TestExampleClusterLoads(t *testing.T) {
	st := NewStore(Options{})
	if err := NewFileSource(zones.Default, "", st, nil).Load(); err != nil {
		t.Fatal(err)
	}
	s := st.Snapshot()
	if s == nil || !s.Full {
		t.Fatal("no full snapshot published")
	}
	for _, ns := range []string{"default", "kube-system", "apps", "data"} {
		if !s.HasNamespace(ns) {
			t.Errorf("namespace %s missing", ns)
		}
	}
	web := s.Service(Key{"default", "web-server-service"})
	if web == nil || web.Kind != KindClusterIP || web.ClusterIPs[0] != netip.MustParseAddr("10.96.0.100") {
		t.Fatalf("web-server-service: %+v", web)
	}
	if len(web.Endpoints) != 2 || web.Ports[0].Name != "web-server" || web.Ports[0].Port != 80 {
		t.Fatalf("web-server-service endpoints/ports: %+v", web)
	}
	dual := s.Service(Key{"apps", "dual"})
	if len(dual.ClusterIPs) != 2 || !dual.ClusterIPs[1].Is6() || len(dual.Endpoints) != 2 {
		t.Fatalf("dual-stack service: %+v", dual)
	}
	cas := s.Service(Key{"data", "cassandra"})
	if cas.Kind != KindHeadless || len(cas.Endpoints) != 3 || cas.Endpoints[2].Ready || cas.Endpoints[0].DNSName != "cassandra-0" {
		t.Fatalf("cassandra: %+v", cas)
	}
	if ext := s.Service(Key{"apps", "search"}); ext.Kind != KindExternalName || ext.ExternalName != "www.example.test" {
		t.Fatalf("ExternalName: %+v", ext)
	}
	if p := s.PodsByIP(netip.MustParseAddr("10.244.1.10")); len(p) != 1 || p[0].Name != "web-server-6d4cf56db6-abcde" {
		t.Fatalf("pod by IP: %+v", p)
	}
}

func TestIncrementalSnapshot(t *testing.T) {
	st := NewStore(Options{})
	var seen []*Snapshot
	st.Subscribe(func(s *Snapshot) { seen = append(seen, s) })
	st.UpsertService(&Service{Key: Key{"ns", "a"}, Kind: KindClusterIP})
	st.UpsertService(&Service{Key: Key{"ns", "b"}, Kind: KindClusterIP})
	if st.Flush() != nil {
		t.Fatal("published before MarkSynced")
	}
	st.MarkSynced()
	first := st.Flush()
	st.UpsertEndpointSlice(&EndpointSlice{Key: Key{"ns", "a-1"}, Service: "a"})
	second := st.Flush()
	if second.Full || len(second.Changed) != 1 || second.Changed[0] != (Key{"ns", "a"}) {
		t.Fatalf("changed = %v full=%v", second.Changed, second.Full)
	}
	if second.Service(Key{"ns", "b"}) != first.Service(Key{"ns", "b"}) {
		t.Error("an unchanged service must be shared between snapshots")
	}
	if first.Service(Key{"ns", "a"}) == second.Service(Key{"ns", "a"}) {
		t.Error("a changed service must be rebuilt")
	}
	if second.Serial <= first.Serial {
		t.Error("serial must grow")
	}
	if st.Flush() != second {
		t.Error("a flush without changes must not publish")
	}
	if len(seen) != 2 {
		t.Fatalf("subscriber saw %d snapshots, want 2", len(seen))
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	cases := map[string]struct {
		yaml, want string
	}{
		"bad indentation":                   {"apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n spec: {}\n", "c.yaml:8: yaml: did not find expected key"},
		"second document":                   {"apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  clusterIP: not-an-ip\n", "c.yaml:9: service default/a: clusterIP \"not-an-ip\""},
		"unknown field":                     {"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  clusterAddress: 10.0.0.1\n", `c.yaml:5: Service: error unmarshaling JSON: while decoding JSON: json: unknown field "clusterAddress"`},
		"clusterIP differs from clusterIPs": {"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  clusterIP: not-an-ip\n  clusterIPs: [10.96.0.112]\n", `c.yaml:5: service default/a: clusterIP "not-an-ip" differs`},
		"slice without service label":       {"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints: []\n", "kubernetes.io/service-name"},
	}
	for name, c := range cases {
		_, err := ParseManifests("c.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, c.want)
		}
	}
}

func TestListsAndOtherKinds(t *testing.T) {
	doc := `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: a, namespace: x}
  spec: {clusterIP: 10.96.1.1, ports: [{port: 80}]}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: ignored}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: a-1, namespace: x, labels: {kubernetes.io/service-name: a}}
  addressType: IPv4
  endpoints: [{addresses: [10.0.0.1]}]
`
	o, err := ParseManifests("l.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Services) != 1 || len(o.Slices) != 1 || !o.Slices[0].Endpoints[0].Ready {
		t.Fatalf("got %+v", o)
	}
	if o.Services[0].Ports[0].Protocol != TCP {
		t.Errorf("default protocol: %q", o.Services[0].Ports[0].Protocol)
	}
}

func TestBrokenFileKeepsLastGood(t *testing.T) {
	good := "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {clusterIP: 10.96.1.1}\n"
	fsys := fstest.MapFS{"c.yaml": {Data: []byte(good)}, "d.yaml": {Data: []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: d}\n")}}
	st := NewStore(Options{})
	src := NewFileSource(fsys, "", st, nil)
	if err := src.Load(); err != nil {
		t.Fatal(err)
	}
	fsys["c.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {clusterIP: nope}\n")}
	fsys["d.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: e}\n")}
	err := src.Load()
	if err == nil || !strings.Contains(err.Error(), "zones/c.yaml:4:") {
		t.Fatalf("want an error naming zones/c.yaml:4, got %v", err)
	}
	s := st.Snapshot()
	if e := s.Service(Key{"x", "a"}); e == nil || e.ClusterIPs[0] != netip.MustParseAddr("10.96.1.1") {
		t.Fatalf("last good service lost: %+v", e)
	}
	if !s.HasNamespace("e") || s.HasNamespace("d") {
		t.Fatal("the good file must still update")
	}
}
