package nodeproxy

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/clusterdns/clusterdns/registry"
)

// TestCategorize checks the endpoint choice against kube-proxy's rules:
// topology from hints only when every ready endpoint has one and one names
// this node (or its zone); serving-terminating endpoints only when none is
// ready, per policy.
func TestCategorize(t *testing.T) {
	type ep struct {
		ip                          string
		node                        string
		ready, serving, terminating bool
		zones, nodes                []string
	}
	ready := func(ip, node string, zones ...string) ep {
		return ep{ip: ip, node: node, ready: true, serving: true, zones: zones}
	}
	term := func(ip, node string) ep { return ep{ip: ip, node: node, serving: true, terminating: true} }
	cases := []struct {
		name           string
		eps            []ep
		zone           string
		cluster, local []string
		hasAny         bool
	}{
		{"no hints: every ready endpoint", []ep{ready("10.0.0.1", "a"), ready("10.0.0.2", "b")}, "z1",
			[]string{"10.0.0.1", "10.0.0.2"}, []string{"10.0.0.1"}, true},
		{"zone hints for every endpoint: this zone's", []ep{ready("10.0.0.1", "a", "z1"), ready("10.0.0.2", "b", "z2"), ready("10.0.0.3", "b", "z1")}, "z1",
			[]string{"10.0.0.1", "10.0.0.3"}, []string{"10.0.0.1"}, true},
		{"one endpoint without a hint: hints ignored", []ep{ready("10.0.0.1", "a", "z1"), ready("10.0.0.2", "b")}, "z1",
			[]string{"10.0.0.1", "10.0.0.2"}, []string{"10.0.0.1"}, true},
		{"no endpoint hinted for this zone: hints ignored", []ep{ready("10.0.0.1", "a", "z2"), ready("10.0.0.2", "b", "z3")}, "z1",
			[]string{"10.0.0.1", "10.0.0.2"}, []string{"10.0.0.1"}, true},
		{"node without a zone: hints ignored", []ep{ready("10.0.0.1", "a", "z1"), ready("10.0.0.2", "b", "z2")}, "",
			[]string{"10.0.0.1", "10.0.0.2"}, []string{"10.0.0.1"}, true},
		{"hint on a not-ready endpoint does not count", []ep{ready("10.0.0.1", "a", "z1"), ready("10.0.0.2", "b", "z2"), {ip: "10.0.0.3", node: "b"}}, "z1",
			[]string{"10.0.0.1"}, []string{"10.0.0.1"}, true},
		{"node hints win over zone hints", []ep{
			{ip: "10.0.0.1", node: "a", ready: true, serving: true, zones: []string{"z1"}, nodes: []string{"b"}},
			{ip: "10.0.0.2", node: "b", ready: true, serving: true, zones: []string{"z1"}, nodes: []string{"a"}}}, "z1",
			[]string{"10.0.0.2"}, []string{"10.0.0.1"}, true},
		{"no ready endpoint: serving-terminating ones", []ep{term("10.0.0.1", "a"), {ip: "10.0.0.2", node: "b", terminating: true}}, "z1",
			[]string{"10.0.0.1"}, []string{"10.0.0.1"}, true},
		{"local falls back to terminating on its own", []ep{term("10.0.0.1", "a"), ready("10.0.0.2", "b")}, "z1",
			[]string{"10.0.0.2"}, []string{"10.0.0.1"}, true},
		{"none usable", []ep{{ip: "10.0.0.1", node: "a"}}, "z1", nil, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			slice := &registry.EndpointSlice{Key: registry.Key{Namespace: "ns", Name: "s-1"}, Service: "s",
				Ports: []registry.EndpointPort{{Name: "http", Protocol: registry.TCP, Port: 8080}}}
			for _, e := range c.eps {
				re := registry.Endpoint{Address: netip.MustParseAddr(e.ip), Ready: e.ready, Serving: e.serving,
					Terminating: e.terminating, Place: &registry.Place{NodeName: e.node}}
				if e.zones != nil || e.nodes != nil {
					re.Hints = &registry.EndpointHints{ForZones: e.zones, ForNodes: e.nodes}
				}
				slice.Endpoints = append(slice.Endpoints, re)
			}
			store := registry.NewStore(registry.Options{})
			store.Replace(registry.Objects{
				Services: []*registry.Service{{Key: registry.Key{Namespace: "ns", Name: "s"}, Kind: registry.KindClusterIP,
					ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.1")},
					Ports:      []registry.ServicePort{{Name: "http", Protocol: registry.TCP, Port: 80}}}},
				Slices: []*registry.EndpointSlice{slice},
			})
			store.MarkSynced()
			e := store.Flush().Service(registry.Key{Namespace: "ns", Name: "s"})
			cluster, local, hasAny := categorize(e, e.Ports[0], ipv4, node{Name: "a", Zone: c.zone})
			addrs := func(aps []netip.AddrPort) []string {
				var out []string
				for _, ap := range aps {
					out = append(out, ap.Addr().String())
				}
				return out
			}
			if got := addrs(cluster); !slices.Equal(got, c.cluster) {
				t.Errorf("cluster endpoints %v, want %v", got, c.cluster)
			}
			if got := addrs(local); !slices.Equal(got, c.local) {
				t.Errorf("local endpoints %v, want %v", got, c.local)
			}
			if hasAny != c.hasAny {
				t.Errorf("hasAny %v, want %v", hasAny, c.hasAny)
			}
		})
	}
}
