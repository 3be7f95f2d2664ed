package nodeproxy

import (
	"context"
	"github.com/prometheus/client_golang/prometheus"
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

// TestRunnerReportsLikeKubeProxy checks the kube-proxy metrics and health
// a Runner keeps: network programming latency from a slice's trigger
// time, service and endpoint change counts, sync failures, and /healthz
// turning unhealthy while a change waits on failing syncs.
func TestRunnerReportsLikeKubeProxy(t *testing.T) {
	store := newTestStore(t, testFiles...)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	health := NewProxyHealth(time.Hour)
	now := time.Now()
	health.now = func() time.Time { return now }
	tr := NewTracker(m)
	tr.ReportTo(health)
	store.Subscribe(tr.OnSnapshot)
	nft := &countingNFT{Interface: knftables.NewFake(knftables.InetFamily, DefaultTable)}
	p := NewProxier(ProxierConfig{NFT: nft, Metrics: m})
	r := &Runner{Tracker: tr, Proxier: p, MinInterval: time.Millisecond, RetryInterval: time.Hour, Health: health}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 5s", what)
			}
		}
	}
	waitFor("first sync", func() bool { return nft.count() == 1 })

	sl := findSlice(t, store, "default", "web-abc")
	sl.TriggerTime = time.Now().Add(-2 * time.Second)
	store.UpsertEndpointSlice(sl)
	store.Flush()
	const netProg = "kubeproxy_network_programming_duration_seconds"
	waitFor("partial sync", func() bool { n, _ := histogram(t, reg, netProg); return n == 1 })
	if _, sum := histogram(t, reg, netProg); sum < 2 || sum > 10 {
		t.Errorf("network programming latency %v s, want about 2 s", sum)
	}
	if got := counter(t, reg, "kubeproxy_sync_proxy_rules_endpoint_changes_total"); got != 1 {
		t.Errorf("endpoint changes %v, want 1", got)
	}
	if ok, _ := health.Healthy(); !ok {
		t.Error("unhealthy after a successful sync")
	}

	// A failing sync leaves the change queued: unhealthy once it has
	// waited longer than the timeout.
	nft.mu.Lock()
	nft.fails = 1
	nft.mu.Unlock()
	store.DeleteService(key("apps", "multi"))
	store.Flush()
	waitFor("failed sync", func() bool { return counter(t, reg, "kubeproxy_sync_proxy_rules_nftables_sync_failures_total") == 1 })
	if got := counter(t, reg, "kubeproxy_sync_proxy_rules_service_changes_total"); got != 1 {
		t.Errorf("service changes %v, want 1", got)
	}
	if ok, _ := health.Healthy(); !ok {
		t.Error("unhealthy before the timeout")
	}
	now = now.Add(2 * time.Hour)
	if ok, _ := health.Healthy(); ok {
		t.Error("healthy while a change has waited past the timeout")
	}
}

// histogram returns the sample count and sum of the histogram name in reg.
func histogram(t *testing.T, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}

// counter returns the value of the counter name in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
