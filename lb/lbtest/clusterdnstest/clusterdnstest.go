// Package clusterdnstest starts the real clusterdns server in-process for tests
// of package lb's users. It is apart from lbtest because the server imports lb,
// whose own internal tests import lbtest.
package clusterdnstest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterdns/clusterdns/internal/dirwatch"
	"github.com/clusterdns/clusterdns/registry"
	"github.com/clusterdns/clusterdns/registry/registrytest"
	"github.com/clusterdns/clusterdns/server"
)

// ClusterDNS is the real clusterdns server (server and registry packages, the
// file source) serving the cluster manifests of a folder on 127.0.0.1 (UDP and
// TCP) with TTL 1 and negative TTL 1, reloading the folder when it changes.
type ClusterDNS struct {
	// Addr is the server's "127.0.0.1:port".
	Addr string

	stop sync.Once
	l    *server.Listener
	done context.CancelFunc
}

// Start starts a server for dir; it stops when the test ends.
func Start(tb testing.TB, dir string) *ClusterDNS {
	tb.Helper()
	h, err := server.NewHandler(server.Options{Domains: []string{"cluster.local"}, TTL: 1, NegativeTTL: 1}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	store := registrytest.New(tb).Feed(h.Update)
	src := registry.NewFileSource(os.DirFS(dir), dir, store.Store, nil)
	if err := src.Load(); err != nil {
		tb.Fatal(err)
	}
	l, err := server.Listen(h, server.ListenOptions{Addr: "127.0.0.1:0"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go l.Serve()
	loaded := make(chan struct{}, 1)
	go dirwatch.Watch(ctx, nil, dir, 20*time.Millisecond, 0, func() {
		src.Load()
		select {
		case loaded <- struct{}{}:
		default:
		}
	})
	c := &ClusterDNS{Addr: l.Addr().String(), l: l, done: cancel}
	tb.Cleanup(c.Stop)
	// The watch starts asynchronously: a change made before it is in place
	// would go unnoticed. Touch a file the source ignores until a reload
	// shows the watch works.
	probe := filepath.Join(dir, ".watch-probe")
	defer os.Remove(probe)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := os.WriteFile(probe, nil, 0o644); err != nil {
			tb.Fatal(err)
		}
		select {
		case <-loaded:
			return c
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("clusterdnstest: no reload of %s after 10s of changes", dir)
		}
	}
}

// Stop closes the listener (queries then fail: the port is closed) and stops
// following the folder. It is idempotent.
func (c *ClusterDNS) Stop() {
	c.stop.Do(func() {
		c.done()
		c.l.Close()
	})
}

// Endpoint is one endpoint of Headless: its address, hostname and zone.
type Endpoint struct {
	Addr     netip.Addr
	Hostname string
	Zone     string
}

// Headless is the manifest of a headless service name in namespace
// "default" with one TCP port (portName, port) and these ready endpoints
// (an IPv4 EndpointSlice), as Start's folder holds it.
func Headless(name, portName string, port uint16, eps []Endpoint) string {
	var b strings.Builder
	if len(eps) == 0 {
		b.WriteString(" []")
	}
	for _, e := range eps {
		fmt.Fprintf(&b, "\n- addresses: [%s]\n  hostname: %s\n  zone: %s\n  conditions: {ready: true}", e.Addr, e.Hostname, e.Zone)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: default}
spec:
  clusterIP: None
  ports: [{name: %[2]s, protocol: TCP, port: %[3]d}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %[1]s-1, namespace: default, labels: {kubernetes.io/service-name: %[1]s}}
addressType: IPv4
ports: [{name: %[2]s, protocol: TCP, port: %[3]d}]
endpoints:%[4]s
`, name, portName, port, b.String())
}
