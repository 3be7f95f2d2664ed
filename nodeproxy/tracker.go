package nodeproxy

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clusterdns/clusterdns/registry"
)

// Tracker records what changed in the cluster, apart from the writing of
// rules (kube-proxy's change tracker): the Store calls OnSnapshot for each
// snapshot it publishes, which only notes the snapshot and the changed
// service keys and wakes the Runner. Safe for concurrent use; nothing in it
// blocks.
type Tracker struct {
	mu      sync.Mutex
	snap    *registry.Snapshot
	pending map[registry.Key]struct{}
	full    bool
	wake    chan struct{}
	metrics *Metrics
	health  *ProxyHealth
	// triggers are the trigger times of the endpoint changes pending;
	// taken those that the last Take handed over.
	triggers, taken []time.Time
}

// NewTracker returns an empty tracker; its first pending change is a full
// one. metrics may be nil.
func NewTracker(metrics *Metrics) *Tracker {
	return &Tracker{pending: map[registry.Key]struct{}{}, full: true, wake: make(chan struct{}, 1), metrics: metrics}
}

// OnSnapshot records snap; register it with Store.Subscribe. It runs under
// the store's lock, so it only records and signals.
func (t *Tracker) OnSnapshot(snap *registry.Snapshot) {
	t.mu.Lock()
	prev := t.snap
	t.snap = snap
	if snap.Full {
		t.full = true
	} else {
		services, endpoints := 0, 0
		for _, k := range snap.Changed {
			t.pending[k] = struct{}{}
			s, e := changeKind(prev, snap, k)
			services += s
			endpoints += e
			if tt := newTrigger(prev, snap, k); !tt.IsZero() {
				t.triggers = append(t.triggers, tt)
			}
		}
		t.metrics.changes(services, endpoints)
	}
	if snap.Full || len(snap.Changed) > 0 {
		t.health.QueuedUpdate()
	}
	t.metrics.setPending(t.pendingLocked())
	t.mu.Unlock()
	t.signal()
}

// ReportTo makes the Tracker note each change as queued in h (for
// /healthz). Call it before subscribing the Tracker.
func (t *Tracker) ReportTo(h *ProxyHealth) {
	t.mu.Lock()
	t.health = h
	t.mu.Unlock()
}

// TakenTriggers returns the trigger times of the endpoint changes that
// the last Take handed over; the Runner observes their network
// programming latency once they are in the kernel.
func (t *Tracker) TakenTriggers() []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.taken
}

// newTrigger returns service k's trigger time in next when it differs from
// the one in prev (a new endpoint change), else zero.
func newTrigger(prev, next *registry.Snapshot, k registry.Key) time.Time {
	e := next.Service(k)
	if e == nil || e.TriggerTime.IsZero() {
		return time.Time{}
	}
	if prev != nil {
		if p := prev.Service(k); p != nil && p.TriggerTime.Equal(e.TriggerTime) {
			return time.Time{}
		}
	}
	return e.TriggerTime
}

// changeKind tells whether service k's own object (1, 0) or its
// endpoints (0, 1), or both, differ between two snapshots.
func changeKind(prev, next *registry.Snapshot, k registry.Key) (service, endpoints int) {
	var a, b *registry.ServiceEntry
	if prev != nil {
		a = prev.Service(k)
	}
	b = next.Service(k)
	if a == nil || b == nil {
		return 1, 0
	}
	if a.Service != b.Service {
		service = 1
	}
	if len(a.Endpoints) != len(b.Endpoints) {
		return service, 1
	}
	for i := range a.Endpoints {
		if a.Endpoints[i].Endpoint != b.Endpoints[i].Endpoint {
			return service, 1
		}
	}
	return service, endpoints
}

// RequestFull asks for a full resync at the next sync.
func (t *Tracker) RequestFull() {
	t.mu.Lock()
	t.full = true
	t.mu.Unlock()
	t.signal()
}

// Wake is signalled (capacity 1, never closed) when changes are pending.
func (t *Tracker) Wake() <-chan struct{} { return t.wake }

// Pending returns the number of services changed since the last Take (the
// number of services in the snapshot when a full sync is pending).
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pendingLocked()
}

func (t *Tracker) pendingLocked() int {
	if t.full && t.snap != nil {
		return t.snap.ServiceCount()
	}
	return len(t.pending)
}

// Take hands over the pending changes: the latest snapshot, the changed
// keys in sorted order, and whether a full sync is due; it clears them.
// snap is nil before the first snapshot.
func (t *Tracker) Take() (snap *registry.Snapshot, changed []registry.Key, full bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	snap, full = t.snap, t.full
	if snap == nil {
		return nil, nil, false
	}
	if !full {
		changed = slices.SortedFunc(maps.Keys(t.pending), func(a, b registry.Key) int {
			if a.Namespace != b.Namespace {
				return strings.Compare(a.Namespace, b.Namespace)
			}
			return strings.Compare(a.Name, b.Name)
		})
	}
	clear(t.pending)
	t.taken, t.triggers = t.triggers, nil
	t.full = false
	t.metrics.setPending(0)
	return snap, changed, full
}

func (t *Tracker) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Runner applies the Tracker's changes with the Proxier at a bounded
// frequency: a change wakes it at once, but syncs are at least MinInterval
// apart, so a burst of changes lands in one transaction; a failed sync is
// retried, as a full resync, after RetryInterval (doubling up to a minute);
// and every FullInterval the whole table is rewritten to repair any drift.
type Runner struct {
	Tracker       *Tracker
	Proxier       *Proxier
	MinInterval   time.Duration // default 10ms
	RetryInterval time.Duration // default 1s
	FullInterval  time.Duration // 0: never
	// Health is told of each successful sync (for /healthz); may be nil.
	Health *ProxyHealth
	Logger *slog.Logger
}

// Run syncs until ctx ends; it blocks, and returns nil at the end. It waits
// for the first snapshot before the first (full) sync.
func (r *Runner) Run(ctx context.Context) error {
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	minInterval := r.MinInterval
	if minInterval <= 0 {
		minInterval = 10 * time.Millisecond
	}
	retry := r.RetryInterval
	if retry <= 0 {
		retry = time.Second
	}
	backoff := retry
	var last time.Time
	var fullTick <-chan time.Time
	if r.FullInterval > 0 {
		t := time.NewTicker(r.FullInterval)
		defer t.Stop()
		fullTick = t.C
	}
	var retryTimer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.Tracker.Wake():
			if retryTimer != nil {
				continue // backing off: the retry timer syncs everything
			}
		case <-fullTick:
			r.Tracker.RequestFull()
			continue
		case <-retryTimer:
			retryTimer = nil
		}
		if wait := minInterval - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		snap, changed, full := r.Tracker.Take()
		if snap == nil || (!full && len(changed) == 0) {
			continue
		}
		last = time.Now()
		res, err := r.Proxier.Sync(ctx, snap, changed, full)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error("rule sync failed; retrying as a full resync", "err", err, "retryIn", backoff)
			r.Tracker.RequestFullQuiet()
			retryTimer = time.After(backoff)
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = retry
		r.Health.Updated()
		if !full {
			for _, tt := range r.Tracker.TakenTriggers() {
				r.Proxier.metrics.programmed(time.Since(tt))
			}
		}
		log.Info("rules synced", "full", res.Full, "services", res.Services,
			"operations", res.Operations, "took", res.Took, "serial", snap.Serial)
	}
}

// RequestFullQuiet marks a full resync as due without waking the Runner
// (which waits for its retry timer instead).
func (t *Tracker) RequestFullQuiet() {
	t.mu.Lock()
	t.full = true
	t.mu.Unlock()
}
