package registry

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/clusterdns/clusterdns/zones"
)

func TestExampleClusterSet(t *testing.T) {
	st := NewStore(Options{})
	if err := NewFileSource(zones.Default, "", st, nil).Load(); err != nil {
		t.Fatal(err)
	}
	cs := st.Snapshot().ClusterSet()
	if cs.Len() != 2 {
		t.Fatalf("imports: %d, want 2", cs.Len())
	}
	co := cs.Entry(Key{"apps", "checkout"})
	if co == nil || co.Type != ImportClusterSetIP || len(co.IPs) != 1 || co.IPs[0] != netip.MustParseAddr("10.112.0.10") ||
		len(co.Ports) != 1 || co.Ports[0] != (ServicePort{Name: "http", Protocol: TCP, Port: 80}) {
		t.Fatalf("checkout: %+v", co)
	}
	led := cs.Entry(Key{"data", "ledger"})
	if led == nil || led.Type != ImportHeadless || len(led.Endpoints) != 3 {
		t.Fatalf("ledger: %+v", led)
	}
	var got []string
	for _, ep := range led.Endpoints {
		got = append(got, ep.Cluster+"/"+ep.Hostname+"/"+ep.Address.String()+"/"+map[bool]string{true: "ready", false: "notready"}[ep.Ready])
	}
	want := "east/ledger-0/10.245.1.10/ready east/ledger-1/10.245.1.11/notready west/ledger-0/10.246.1.10/ready"
	if strings.Join(got, " ") != want {
		t.Fatalf("ledger endpoints:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	// MCS slices stay out of cluster.local.
	if st.Snapshot().Service(Key{"data", "ledger"}) != nil {
		t.Fatal("an imported service leaked into cluster.local")
	}
}

func TestParseServiceImportErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"kind: ServiceImport\nmetadata: {name: a}\nspec: {type: Weird}\n", `x.yaml:3: serviceimport default/a: spec.type "Weird" is not ClusterSetIP or Headless`},
		{"kind: ServiceImport\nmetadata: {name: a}\nspec:\n  type: ClusterSetIP\n  ips: [10.0.0.300]\n", `x.yaml:5: serviceimport default/a: ips "10.0.0.300"`},
		{"kind: ServiceImport\nmetadata: {name: a}\nspec: {type: Headless, ips: [10.0.0.1]}\n", "type Headless with spec.ips"},
		{"kind: ServiceImport\nmetadata: {name: a}\nspec: {type: Headless, bogus: 1}\n", `x.yaml:3: ServiceImport: error unmarshaling JSON: while decoding JSON: json: unknown field "bogus"`},
		{"kind: EndpointSlice\nmetadata: {name: s, labels: {multicluster.kubernetes.io/service-name: a}}\naddressType: IPv4\n", "set without multicluster.kubernetes.io/source-cluster"},
		{"kind: EndpointSlice\nmetadata: {name: s, labels: {multicluster.kubernetes.io/service-name: a, multicluster.kubernetes.io/source-cluster: a.b}}\naddressType: IPv4\n", `multicluster.kubernetes.io/source-cluster "a.b" is not a DNS label`},
		{"kind: EndpointSlice\nmetadata: {name: s, labels: {multicluster.kubernetes.io/service-name: a, multicluster.kubernetes.io/source-cluster: c}}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1], hostname: x.y}]\n", `hostname "x.y" is not a DNS label`},
		{"kind: ServiceImport\nmetadata: {name: a.b}\nspec: {type: Headless}\n", `"a.b" is not a DNS label`},
	} {
		_, err := ParseManifests("x.yaml", []byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to contain %q", tc.doc, err, tc.want)
		}
	}
}

func TestClusterSetUpdates(t *testing.T) {
	st := NewStore(Options{})
	st.MarkSynced()
	first := st.Flush()
	if first.ClusterSet() == nil || first.ClusterSet().Len() != 0 {
		t.Fatal("first snapshot without an empty clusterset")
	}
	st.UpsertMCSEndpointSlice(&EndpointSlice{Key: Key{"ns", "s1"}, Service: "db", Cluster: "b",
		Endpoints: []Endpoint{{Address: netip.MustParseAddr("10.0.0.2"), Ready: true}}})
	s := st.Flush()
	if s == first || s.ClusterSet().Len() != 0 || s.Full {
		t.Fatalf("a slice without its import: clusterset %d, full %v (nothing to rebuild)", s.ClusterSet().Len(), s.Full)
	}
	st.UpsertServiceImport(&ServiceImport{Key: Key{"ns", "db"}, Type: ImportHeadless})
	st.UpsertMCSEndpointSlice(&EndpointSlice{Key: Key{"ns", "s0"}, Service: "db", Cluster: "a",
		Endpoints: []Endpoint{{Address: netip.MustParseAddr("10.0.0.1"), Ready: true}}})
	s = st.Flush()
	e := s.ClusterSet().Entry(Key{"ns", "db"})
	if e == nil || len(e.Endpoints) != 2 || e.Endpoints[0].Cluster != "a" || e.Endpoints[1].Cluster != "b" || !s.Full {
		t.Fatalf("db: %+v full %v", e, s.Full)
	}
	if st.Flush() != s {
		t.Fatal("published with nothing changed")
	}
	st.DeleteServiceImport(Key{"ns", "db"})
	if s = st.Flush(); s.ClusterSet().Len() != 0 {
		t.Fatal("deleted import still served")
	}
}

// Replacing the clusterset with the same objects rebuilds nothing (the
// file source re-reads whole files; a clusterset change rebuilds the
// server's index whole).
func TestReplaceSameClusterSetChangesNothing(t *testing.T) {
	objs := func() Objects {
		o, err := ParseManifests("x.yaml", []byte("kind: ServiceImport\nmetadata: {name: a, namespace: ns1}\nspec: {type: ClusterSetIP, ips: [10.0.0.1]}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	st := NewStore(Options{})
	st.Replace(objs())
	st.MarkSynced()
	first := st.Flush()
	if first.ClusterSet().Entry(Key{"ns1", "a"}) == nil {
		t.Fatal("import not loaded")
	}
	st.Replace(objs())
	if s := st.Flush(); s.Full || s.ClusterSet() != first.ClusterSet() {
		t.Fatalf("an identical clusterset was rebuilt (full %v)", s.Full)
	}
	st.Replace(Objects{})
	if s := st.Flush(); s == first || s.ClusterSet().Len() != 0 || !s.Full {
		t.Fatal("removing the import was not published")
	}
}
