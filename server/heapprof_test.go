package server

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/clusterdns/clusterdns/registry"
)

func TestHeapProfile100k(t *testing.T) {
	if os.Getenv("HEAPPROF") == "" {
		t.Skip()
	}
	runtime.MemProfileRate = 4096
	h, _ := NewHandler(Options{Domains: []string{"cluster.local"}, TTL: 5, NegativeTTL: 5}, nil)
	st := registry.NewStore(registry.Options{})
	st.Subscribe(func(s *registry.Snapshot) { h.Update(s) })
	loadCluster(st, 10000, 100)
	st.Flush()
	runtime.GC()
	f, _ := os.Create("/tmp/heap.prof")
	pprof.WriteHeapProfile(f)
	f.Close()
	runtime.KeepAlive(h)
	runtime.KeepAlive(st)
}
