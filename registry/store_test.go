package registry_test

// The Store's behaviour seen from outside, on clusters built with
// registrytest (package registry's own tests cannot import it).

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
)

var svcKey = registry.Key{Namespace: "ns", Name: "svc"}

// podEndpoint is an endpoint at ip of the pod "Pod-<ip>".
func podEndpoint(ip string, ready bool) registry.Endpoint {
	return registry.Endpoint{Address: netip.MustParseAddr(ip), Ready: ready, PodName: "Pod-" + ip}
}

func TestMergeDropsDuplicatesKeepsFamilies(t *testing.T) {
	http := registrytest.Ports(registrytest.TCP("http", 80))
	e := registrytest.New(t).
		Headless("ns/svc").
		Slice("ns/a", "svc", http, podEndpoint("10.0.0.1", false), podEndpoint("10.0.0.2", true)).
		Slice("ns/b", "svc", http, podEndpoint("10.0.0.1", true), podEndpoint("10.0.0.2", true)).
		Slice("ns/c", "svc", nil, podEndpoint("fd00::1", true)).
		Publish().Service(svcKey)
	if len(e.Endpoints) != 3 {
		t.Fatalf("want 3 merged endpoints, got %+v", e.Endpoints)
	}
	if !e.Endpoints[0].Ready {
		t.Errorf("the ready copy of a duplicate must win: %+v", e.Endpoints[0])
	}
	if e.Endpoints[2].DNSName != "fd00--1" || e.Endpoints[0].DNSName != "10-0-0-1" {
		t.Errorf("generated names: %q %q", e.Endpoints[0].DNSName, e.Endpoints[2].DNSName)
	}

	named := registrytest.NewWith(t, registry.Options{EndpointPodNames: true}).
		Headless("ns/svc").
		Slice("ns/a", "svc", nil, podEndpoint("10.0.0.1", true)).
		Publish()
	if got := named.Service(svcKey).Endpoints[0].DNSName; got != "pod-10.0.0.1" {
		t.Errorf("endpoint_pod_names: %q", got)
	}
}

// Pods are read at query time only: their changes publish a snapshot that
// is not Full (no index rebuild) unless they bring or take a namespace.
func TestPodChangesAreIncremental(t *testing.T) {
	st := registrytest.New(t).ClusterIP("ns/a")
	st.Publish()
	ip := netip.MustParseAddr("10.244.0.5")
	st.UpsertPod(&registry.Pod{Key: registry.Key{Namespace: "ns", Name: "p"}, IPs: []netip.Addr{ip}})
	s := st.Flush()
	if s.Full || len(s.PodsByIP(ip)) != 1 {
		t.Fatalf("pod in a known namespace: full=%v pods=%v", s.Full, s.PodsByIP(ip))
	}
	st.UpsertPod(&registry.Pod{Key: registry.Key{Namespace: "ns", Name: "p"}, IPs: []netip.Addr{netip.MustParseAddr("10.244.0.6")}})
	s = st.Flush()
	if len(s.PodsByIP(ip)) != 0 || len(s.PodsByIP(netip.MustParseAddr("10.244.0.6"))) != 1 {
		t.Fatal("a pod's new IP must replace its old one")
	}
	st.UpsertPod(&registry.Pod{Key: registry.Key{Namespace: "other", Name: "q"}, IPs: []netip.Addr{ip}})
	if s = st.Flush(); !s.Full || !s.HasNamespace("other") {
		t.Fatalf("a pod in a new namespace: full=%v", s.Full)
	}
	st.DeletePod(registry.Key{Namespace: "other", Name: "q"})
	if s = st.Flush(); !s.Full || s.HasNamespace("other") || len(s.PodsByIP(ip)) != 0 {
		t.Fatalf("the namespace's last pod deleted: full=%v has=%v", s.Full, s.HasNamespace("other"))
	}
	st.DeleteService(registry.Key{Namespace: "ns", Name: "a"})
	if s = st.Flush(); s.Full || !s.HasNamespace("ns") {
		t.Fatal("ns still has a pod: no namespace change")
	}
}

// Endpoint labels: the hostname, else the lower-case pod name (with
// EndpointPodNames), else the dashed address; a ready duplicate's label
// replaces a not-ready one's.
func TestMergedLabels(t *testing.T) {
	for _, podNames := range []bool{false, true} {
		web0 := registrytest.Host("web-0", "10.0.0.1")
		web0.PodName = "Web-0"
		web1 := registrytest.Ready("10.0.0.2")
		web1.PodName = "Web-1"
		old := registrytest.NotReady("10.0.0.4")
		old.PodName = "Old"
		renamed := registrytest.Ready("10.0.0.4")
		renamed.PodName = "New"
		snap := registrytest.NewWith(t, registry.Options{EndpointPodNames: podNames}).
			Headless("ns/svc").
			Slice("ns/a", "svc", nil, web0, web1, registrytest.Ready("fd00::3"), old).
			Slice("ns/b", "svc", nil, renamed).
			Publish()
		var got []string
		for _, ep := range snap.Service(svcKey).Endpoints {
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

// With NoDNSLabels (the node proxy) no endpoint gets a label, and the
// merge is otherwise the same: every address once, the ready copy kept.
func TestMergedNoDNSLabels(t *testing.T) {
	old := registrytest.NotReady("10.0.0.4")
	renamed := registrytest.Ready("10.0.0.4")
	snap := registrytest.NewWith(t, registry.Options{NoDNSLabels: true}).
		Headless("ns/svc").
		Slice("ns/a", "svc", nil, registrytest.Host("web-0", "10.0.0.1"), registrytest.Ready("fd00::3"), old).
		Slice("ns/b", "svc", nil, renamed).
		Publish()
	var addrs []string
	for _, ep := range snap.Service(svcKey).Endpoints {
		if ep.DNSName != "" {
			t.Errorf("endpoint %s has the label %q", ep.Address, ep.DNSName)
		}
		if ep.Address.String() == "10.0.0.4" && !ep.Ready {
			t.Error("the not-ready duplicate was kept over the ready one")
		}
		addrs = append(addrs, ep.Address.String())
	}
	if want := []string{"10.0.0.1", "fd00::3", "10.0.0.4"}; !reflect.DeepEqual(addrs, want) {
		t.Errorf("endpoints %q, want %q", addrs, want)
	}
}
