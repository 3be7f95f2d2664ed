package nodeproxy

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/clusterdns/clusterdns/registry"
)

func key(ns, name string) registry.Key { return registry.Key{Namespace: ns, Name: name} }

func TestTrackerRecordsOnlyWhatChanged(t *testing.T) {
	store := newTestStore(t, testFiles...)
	tr := NewTracker(nil)
	store.Subscribe(tr.OnSnapshot)

	// Subscribe hands over the current snapshot as a full one.
	snap, changed, full := tr.Take()
	if snap == nil || !full || changed != nil {
		t.Fatalf("first Take: snap=%v changed=%v full=%v, want a full change", snap != nil, changed, full)
	}
	if _, _, full := tr.Take(); full || tr.Pending() != 0 {
		t.Fatal("Take did not clear the pending change")
	}

	// Two publishes before a Take: both services are pending, once each.
	editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) { sl.Endpoints = sl.Endpoints[:1] })
	store.DeleteService(key("apps", "multi"))
	store.Flush()
	editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) { sl.Endpoints = sl.Endpoints[:2] })
	if n := tr.Pending(); n != 2 {
		t.Errorf("Pending() = %d, want 2", n)
	}
	select {
	case <-tr.Wake():
	default:
		t.Error("no wake-up after changes")
	}
	snap, changed, full = tr.Take()
	if full {
		t.Error("partial changes taken as full")
	}
	if want := []registry.Key{key("apps", "multi"), key("default", "web")}; !slices.Equal(changed, want) {
		t.Errorf("changed = %v, want %v", changed, want)
	}
	if snap != store.Snapshot() {
		t.Error("Take did not return the latest snapshot")
	}

	tr.RequestFull()
	if _, changed, full := tr.Take(); !full || changed != nil {
		t.Errorf("after RequestFull: changed=%v full=%v", changed, full)
	}
}

func TestTrackerCallbackDoesNotBlock(t *testing.T) {
	store := newTestStore(t, testFiles...)
	tr := NewTracker(nil)
	store.Subscribe(tr.OnSnapshot)
	// Nobody takes: many publishes must still return at once. (The slice
	// is parsed once: parsing the manifests 100 times on a loaded machine
	// would measure the YAML parser, not the tracker.)
	orig := findSlice(t, store, "default", "web-abc")
	done := make(chan struct{})
	go func() {
		for i := range 100 {
			sl := *orig
			sl.Endpoints = slices.Clone(orig.Endpoints[:1+i%2])
			store.UpsertEndpointSlice(&sl)
			store.Flush()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("store publishes blocked on the tracker")
	}
}

// countingNFT counts transactions and can fail them.
type countingNFT struct {
	knftables.Interface
	mu    sync.Mutex
	fails int // transactions still to fail
	txs   []string
}

func (c *countingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.txs = append(c.txs, tx.String())
	if c.fails > 0 {
		c.fails--
		return context.DeadlineExceeded
	}
	return c.Interface.Run(ctx, tx)
}

func (c *countingNFT) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.txs)
}

func TestRunnerBatchesAndRetriesAsFull(t *testing.T) {
	store := newTestStore(t, testFiles...)
	fake := knftables.NewFake(knftables.InetFamily, DefaultTable)
	nft := &countingNFT{Interface: fake}
	tr := NewTracker(nil)
	store.Subscribe(tr.OnSnapshot)
	p := NewProxier(ProxierConfig{NFT: nft})
	r := &Runner{Tracker: tr, Proxier: p, MinInterval: 200 * time.Millisecond, RetryInterval: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)

	waitCount := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for nft.count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d transactions, want %d", nft.count(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCount(1) // the first, full sync

	// A burst within MinInterval lands in one transaction.
	editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) { sl.Endpoints = sl.Endpoints[:1] })
	store.DeleteService(key("apps", "multi"))
	store.Flush()
	waitCount(2)
	time.Sleep(300 * time.Millisecond)
	if n := nft.count(); n != 2 {
		t.Fatalf("burst of two changes took %d transactions, want 1", n-1)
	}
	if tx := nft.txs[1]; !containsAll(tx, "10.96.1.100", "fd00:10:96::1:104") || containsAll(tx, "delete table") {
		t.Errorf("batched transaction is not the partial sync of both services:\n%s", tx)
	}

	// A failed sync is retried as a full resync.
	nft.mu.Lock()
	nft.fails = 1
	nft.mu.Unlock()
	editSlice(t, store, "default", "web-abc", func(sl *registry.EndpointSlice) { sl.Endpoints = sl.Endpoints[:2] })
	waitCount(4)
	if tx := nft.txs[3]; !containsAll(tx, "delete table") {
		t.Errorf("retry after a failure was not a full resync:\n%.300s", tx)
	}
	if got := fake.Dump(); !containsAll(got, "10.96.1.100 . 80 . 1 : 10.244.12.10 . 8080") {
		t.Errorf("state after the retry lacks the change:\n%s", got)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
