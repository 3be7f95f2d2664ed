package registrytest_test

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
)

// The builder makes the cluster it reads as, and feeds it to consumers.
func TestClusterReadsAsItBuilds(t *testing.T) {
	var fed []*registry.Snapshot
	c := registrytest.New(t).Feed(func(s *registry.Snapshot) error { fed = append(fed, s); return nil })
	c.Namespace("kube-system").
		ClusterIP("default/web", "10.96.0.10", "fd00::10").
		ExternalName("default/search", "www.example.test").
		Headless("data/db").
		Slice("data/db-1", "db", registrytest.Ports(registrytest.TCP("cql", 9042)),
			registrytest.Host("db-0", "10.244.0.6"), registrytest.NotReady("10.244.0.7"))
	snap := c.Publish()
	if len(fed) != 1 || fed[0] != snap || !snap.Full {
		t.Fatalf("fed %v, want the published Full snapshot once", fed)
	}
	if !snap.HasNamespace("kube-system") || !snap.HasNamespace("data") {
		t.Error("namespaces missing")
	}
	web := snap.Service(registry.Key{Namespace: "default", Name: "web"})
	if web == nil || web.Kind != registry.KindClusterIP || len(web.ClusterIPs) != 2 || web.ClusterIPs[1] != netip.MustParseAddr("fd00::10") {
		t.Fatalf("web: %+v", web)
	}
	if s := snap.Service(registry.Key{Namespace: "default", Name: "search"}); s == nil || s.ExternalName != "www.example.test" {
		t.Fatalf("search: %+v", s)
	}
	db := snap.Service(registry.Key{Namespace: "data", Name: "db"})
	if db == nil || len(db.Endpoints) != 2 || db.Endpoints[0].DNSName != "db-0" || !db.Endpoints[0].Ready ||
		db.Endpoints[1].Ready || db.Endpoints[0].Ports()[0].Port != 9042 {
		t.Fatalf("db: %+v", db)
	}
}

// A malformed name fails the test rather than build half a cluster.
func TestClusterRefusesBadNames(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() { // Fatalf ends the goroutine, as it ends a test
		defer close(done)
		registrytest.New(ft).ClusterIP("web", "10.96.0.10")
	}()
	<-done
	if !ft.failed {
		t.Fatal(`ClusterIP("web") did not fail the test`)
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit()
}
