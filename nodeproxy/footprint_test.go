package nodeproxy

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/registry"

	"github.com/clusterdns/clusterdns/internal/testbin"
)

// timedNFT is a knftables.Interface that records how long its last Run
// took and how long the transaction text was.
type timedNFT struct {
	knftables.Interface
	took  time.Duration
	bytes int
}

func (t *timedNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	text := tx.String()
	t.bytes = len(text)
	if f := os.Getenv("CLUSTERDNS_NFTDUMP"); f != "" {
		_ = os.WriteFile(f, []byte(text), 0o644)
	}
	start := time.Now()
	err := t.Interface.Run(ctx, tx)
	t.took = time.Since(start)
	return err
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestFootprint10k loads 10,000 services × 10 endpoints into a store (no
// API server), syncs them once into a real kernel in a fresh netns and
// logs the live heap of the model and of the Proxier, the process RSS, and
// where the sync's time goes. It measures, it does not judge: run it with
// CLUSTERDNS_BENCH=1 (and CLUSTERDNS_HEAPPROFILE=file for a heap profile
// after the sync).
//
//	CLUSTERDNS_BENCH=1 go test -count=1 -run Footprint10k -v ./nodeproxy/
func TestFootprint10k(t *testing.T) {
	if os.Getenv("CLUSTERDNS_BENCH") == "" {
		t.Skip("a measurement: set CLUSTERDNS_BENCH=1")
	}
	requireNetAdmin(t)
	h0 := liveHeap()
	store := commandCluster(10000)
	h1 := liveHeap()
	inFreshNetns(t, func() {
		real, err := knftables.New(knftables.InetFamily, DefaultTable)
		if err != nil {
			t.Error(err)
			return
		}
		nft := &timedNFT{Interface: real}
		// As the command: a fresh interface after the full sync.
		p := NewProxier(ProxierConfig{NFT: nft, NewNFT: func() (knftables.Interface, error) {
			return knftables.New(knftables.InetFamily, DefaultTable)
		}})
		start := time.Now()
		res, err := p.Sync(context.Background(), store.Snapshot(), nil, true)
		if err != nil {
			t.Error(err)
			return
		}
		nft.Interface = nil // the first interface and its buffer, replaced by NewNFT
		h2 := liveHeap()
		mem, _ := testbin.ProcMemory(os.Getpid())
		t.Logf("store (model + snapshot): %.1f MB live heap", float64(h1-h0)/1e6)
		t.Logf("proxier state after sync: %.1f MB live heap", float64(h2-h1)/1e6)
		t.Logf("full sync %v: %d operations, %.1f MB of nft text, nft -f took %v (the rest, %v, building)",
			res.Took.Round(time.Millisecond), res.Operations, float64(nft.bytes)/1e6,
			nft.took.Round(time.Millisecond), (time.Since(start) - nft.took).Round(time.Millisecond))
		t.Logf("process: %v", mem)
		if f := os.Getenv("CLUSTERDNS_HEAPPROFILE"); f != "" {
			out, err := os.Create(f)
			if err != nil {
				t.Error(err)
				return
			}
			defer out.Close()
			if err := pprof.Lookup("heap").WriteTo(out, 0); err != nil {
				t.Error(err)
			}
		}
		runtime.KeepAlive(p)
	})
	runtime.KeepAlive(store)
}

// commandCluster is benchCluster in a store with cmd/nodeproxy's options
// (no DNS labels), for measuring what the command holds.
func commandCluster(n int) *registry.Store {
	store := registry.NewStore(registry.Options{NoDNSLabels: true})
	for i := range n {
		store.UpsertService(benchService(i))
		store.UpsertEndpointSlice(benchSlice(i, 10))
	}
	store.MarkSynced()
	store.Flush()
	return store
}

// discardNFT is a knftables.Interface whose Run writes the transaction's
// text and throws it away: what building a sync costs without nft.
type discardNFT struct{ knftables.Interface }

func (discardNFT) Run(_ context.Context, tx *knftables.Transaction) error {
	_ = tx.String()
	return nil
}

// BenchmarkBuildFullSync times a full sync of 10,000 services × 10
// endpoints up to and including the transaction text, without nft (no
// root needed): the Go side of the first sync.
//
//	go test -run '^$' -bench BuildFullSync -benchtime 3x ./nodeproxy/
func BenchmarkBuildFullSync(b *testing.B) {
	store := benchCluster(10000)
	snap := store.Snapshot()
	b.ResetTimer()
	for b.Loop() {
		p := NewProxier(ProxierConfig{NFT: discardNFT{knftables.NewFake(knftables.InetFamily, DefaultTable)}})
		if _, err := p.Sync(context.Background(), snap, nil, true); err != nil {
			b.Fatal(err)
		}
	}
}
