package registry

import (
	"io/fs"
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
