package nodeproxy

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"sigs.k8s.io/knftables"
)

type nopNFT struct{ knftables.Interface }

func (nopNFT) NewTransaction() *knftables.Transaction { return knftables.NewFake(knftables.InetFamily, DefaultTable).NewTransaction() }
func (nopNFT) Run(context.Context, *knftables.Transaction) error { return nil }

func TestZZMem(t *testing.T) {
	store := newTestStore(t, "/tmp/npmem/zones/cluster.yaml")
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	p := NewProxier(ProxierConfig{NFT: nopNFT{}, NodeName: "node-1"})
	if _, err := p.Sync(context.Background(), store.Snapshot(), nil, true); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	t.Logf("heap: store %.1f MB, + proxier %.1f MB", float64(m0.HeapAlloc)/1e6, float64(m1.HeapAlloc-m0.HeapAlloc)/1e6)
	f, _ := os.Create("/tmp/npmem/heap.prof")
	pprof.WriteHeapProfile(f)
	f.Close()
	runtime.KeepAlive(p)
	runtime.KeepAlive(store)
}
