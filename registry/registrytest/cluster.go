// Package registrytest builds registry Stores for tests, written the way
// one describes the cluster they hold:
//
//	c := registrytest.New(t).Feed(h.Update)
//	c.Namespace("kube-system").
//		ClusterIP("default/web", "10.96.0.10").
//		Headless("data/db").
//		Slice("data/db-1", "db", registrytest.Ports(registrytest.TCP("cql", 9042)),
//			registrytest.Ready("10.244.0.5"), registrytest.Host("db-0", "10.244.0.6"))
//	snap := c.Publish()
//
// Conventions for tests:
//   - A fixture is built in three steps: New (the store, and with Feed the
//     consumer under test), the cluster's objects, Publish. A test that
//     checks a change makes it with the same methods (or the Store's own,
//     embedded) and publishes again.
//   - Feed consumers before the first Publish: they then see the first
//     snapshot Full, as a server does at start. Feed runs the consumer on
//     the publishing goroutine (Store.Subscribe), so what Publish returns
//     is what the consumer serves; the product builds off the lock
//     (Store.Follow) and tests of that use it directly.
//   - Objects are named "namespace/name" and addresses written as text; a
//     typo fails the test at once (t.Fatal), never half a cluster.
//   - Only what a test asserts on is spelled out: services are TCP, ports
//     and endpoints ready unless the test says otherwise.
package registrytest

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/clusterdns/clusterdns/registry"
)

// Cluster is a Store under construction for one test. Its methods return
// the Cluster to chain; the embedded Store is there for what they do not
// cover (deletes, pods, Replace).
type Cluster struct {
	*registry.Store
	tb testing.TB
}

// New returns an empty cluster with default store options.
func New(tb testing.TB) *Cluster { return NewWith(tb, registry.Options{}) }

// NewWith returns an empty cluster whose store has opts.
func NewWith(tb testing.TB, opts registry.Options) *Cluster {
	tb.Helper()
	return &Cluster{Store: registry.NewStore(opts), tb: tb}
}

// Feed passes every snapshot the store publishes to update (a Handler's
// Update), on the publishing goroutine; an error fails the test.
func (c *Cluster) Feed(update func(*registry.Snapshot) error) *Cluster {
	c.Subscribe(func(s *registry.Snapshot) {
		if err := update(s); err != nil {
			c.tb.Errorf("snapshot %d: %v", s.Serial, err)
		}
	})
	return c
}

// Namespace declares namespaces (as Namespace objects do).
func (c *Cluster) Namespace(names ...string) *Cluster {
	for _, n := range names {
		c.UpsertNamespace(n)
	}
	return c
}

// ClusterIP adds a ClusterIP service "namespace/name" with its virtual IPs
// (one per family); Service takes one with ports.
func (c *Cluster) ClusterIP(name string, ips ...string) *Cluster {
	c.tb.Helper()
	return c.Service(&registry.Service{Key: c.key(name), Kind: registry.KindClusterIP, ClusterIPs: c.addrs(ips)})
}

// Headless adds a headless service "namespace/name" (clusterIP None): DNS
// answers the endpoints of its slices.
func (c *Cluster) Headless(name string) *Cluster {
	c.tb.Helper()
	return c.Service(&registry.Service{Key: c.key(name), Kind: registry.KindHeadless})
}

// ExternalName adds an ExternalName service "namespace/name" aliasing
// target.
func (c *Cluster) ExternalName(name, target string) *Cluster {
	c.tb.Helper()
	return c.Service(&registry.Service{Key: c.key(name), Kind: registry.KindExternalName, ExternalName: target})
}

// Service adds (or replaces) a service spelled out in full.
func (c *Cluster) Service(svc *registry.Service) *Cluster {
	c.UpsertService(svc)
	return c
}

// Slice adds the EndpointSlice "namespace/name" of service (in the same
// namespace) with ports and endpoints.
func (c *Cluster) Slice(name, service string, ports []registry.EndpointPort, eps ...registry.Endpoint) *Cluster {
	c.tb.Helper()
	c.UpsertEndpointSlice(&registry.EndpointSlice{Key: c.key(name), Service: service, Ports: ports, Endpoints: eps})
	return c
}

// Publish marks the store synced and publishes what was built: the
// snapshot Feed consumers have just been given.
func (c *Cluster) Publish() *registry.Snapshot {
	c.MarkSynced()
	return c.Flush()
}

func (c *Cluster) key(name string) registry.Key {
	c.tb.Helper()
	ns, n, ok := strings.Cut(name, "/")
	if !ok || ns == "" || n == "" {
		c.tb.Fatalf("registrytest: object name %q: want namespace/name", name)
	}
	return registry.Key{Namespace: ns, Name: n}
}

func (c *Cluster) addrs(ips []string) []netip.Addr {
	c.tb.Helper()
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			c.tb.Fatalf("registrytest: %v", err)
		}
		out = append(out, a)
	}
	return out
}

// Ports lists a slice's ports.
func Ports(ports ...registry.EndpointPort) []registry.EndpointPort { return ports }

// TCP is the TCP port name/number of a slice.
func TCP(name string, port int32) registry.EndpointPort {
	return registry.EndpointPort{Name: name, Protocol: registry.TCP, Port: port}
}

// Ready is a ready endpoint at ip. It panics on a malformed address (it
// is written in the test).
func Ready(ip string) registry.Endpoint {
	return registry.Endpoint{Address: netip.MustParseAddr(ip), Ready: true}
}

// NotReady is an endpoint at ip that is not ready.
func NotReady(ip string) registry.Endpoint {
	return registry.Endpoint{Address: netip.MustParseAddr(ip)}
}

// Host is a ready endpoint at ip with a hostname (a StatefulSet pod's).
func Host(hostname, ip string) registry.Endpoint {
	e := Ready(ip)
	e.Hostname = hostname
	return e
}
