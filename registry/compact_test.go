package registry

import (
	"io/fs"
	"net/netip"
	"reflect"
	"testing"

	"github.com/clusterdns/clusterdns/zones"
)

// The compact copy of a file's objects holds the same values.
func TestCompactObjects(t *testing.T) {
	data, err := fs.ReadFile(zones.Default, "cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	parse := func() Objects {
		o, err := ParseManifests("cluster.yaml", data)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	orig := parse()
	got := compactObjects(parse(), newInterner())
	if len(orig.Services) == 0 || len(orig.Slices) == 0 {
		t.Fatal("example cluster without services or slices")
	}
	if !reflect.DeepEqual(got, orig) {
		t.Fatalf("compact objects differ:\n%+v\nwant\n%+v", got, orig)
	}
	// Capped copies: appending to one does not overwrite its neighbour.
	s0 := got.Services[0]
	before := *got.Services[1]
	before.Ports = append([]ServicePort(nil), before.Ports...)
	_ = append(s0.Ports, ServicePort{Name: "x"})
	if !reflect.DeepEqual(got.Services[1].Ports, before.Ports) {
		t.Fatal("append to a compact slice overwrote the next one")
	}
}

// Endpoint labels: the hostname, else the lower-case pod name (with
// EndpointPodNames), else the dashed address; a ready duplicate's label
// replaces a not-ready one's.
func TestMergedLabels(t *testing.T) {
	for _, podNames := range []bool{false, true} {
		st := NewStore(Options{EndpointPodNames: podNames})
		k := Key{Namespace: "ns", Name: "svc"}
		st.UpsertService(&Service{Key: k, Kind: KindHeadless})
		st.UpsertEndpointSlice(&EndpointSlice{Key: Key{Namespace: "ns", Name: "a"}, Service: "svc", Endpoints: []Endpoint{
			{Address: netip.MustParseAddr("10.0.0.1"), Hostname: "web-0", PodName: "Web-0", Ready: true},
			{Address: netip.MustParseAddr("10.0.0.2"), PodName: "Web-1", Ready: true},
			{Address: netip.MustParseAddr("fd00::3"), Ready: true},
			{Address: netip.MustParseAddr("10.0.0.4"), PodName: "Old", Ready: false},
		}})
		st.UpsertEndpointSlice(&EndpointSlice{Key: Key{Namespace: "ns", Name: "b"}, Service: "svc", Endpoints: []Endpoint{
			{Address: netip.MustParseAddr("10.0.0.4"), PodName: "New", Ready: true},
		}})
		st.MarkSynced()
		var got []string
		for _, ep := range st.Flush().Service(k).Endpoints {
			got = append(got, ep.DNSName)
		}
		want := []string{"web-0", "10-0-0-2", "fd00--3", "10-0-0-4"}
		if podNames {
			want = []string{"web-0", "web-1", "fd00--3", "new"}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("podNames %v: labels %q, want %q", podNames, got, want)
		}
	}
}

// packNames keeps every endpoint's names.
func TestPackNames(t *testing.T) {
	eps := []Endpoint{{Hostname: "web-0", PodName: "web-0"}, {PodName: "pod-b"}, {}, {Hostname: "h", PodName: "other"}}
	want := slicesClone(eps)
	packNames(eps)
	if !reflect.DeepEqual(eps, want) {
		t.Fatalf("packed %+v, want %+v", eps, want)
	}
}

func slicesClone(eps []Endpoint) []Endpoint { return append([]Endpoint(nil), eps...) }
