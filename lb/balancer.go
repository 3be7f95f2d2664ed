package lb

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// BalancerConfig configures a Balancer. The zero value is usable: every zero
// field takes the default written next to it.
type BalancerConfig struct {
	// Name appears in log records (the service name, typically).
	Name string
	// Policy chooses among the eligible endpoints. Default P2C (Pool uses
	// Weighted for SRV targets).
	Policy Policy
	// Zone is the caller's zone. When non-empty and at least MinZoneEndpoints
	// eligible endpoints of the chosen priority are in it, only those are used;
	// otherwise all are. Endpoints without zone information never count as local.
	Zone string
	// MinZoneEndpoints is the minimum number of local endpoints for zone
	// preference to apply. Default 2.
	MinZoneEndpoints int
	// Outlier configures passive outlier ejection.
	Outlier OutlierConfig
	// LatencyDecay is the time constant of each endpoint's peak-EWMA latency
	// estimate (Endpoint.DoneLatency feeds it, P2C reads it): how long a
	// latency peak is remembered. Default 1s (policy.DefaultLatencyDecay).
	LatencyDecay time.Duration
	// ResolveFloor is the shortest time between two resolutions, whatever the
	// TTL or the failures reported. It is also the first error backoff. Default 1s.
	ResolveFloor time.Duration
	// BackoffMax caps the exponential backoff after resolution errors. Default 30s.
	BackoffMax time.Duration
	// ResolveTimeout bounds one call to Source.Resolve. Default 5s.
	ResolveTimeout time.Duration
	// Logger receives warnings (resolution failures, ejections). Default: discard.
	Logger *slog.Logger
}

// OutlierConfig configures passive outlier ejection: an endpoint whose picks fail
// ConsecutiveFailures times in a row (Endpoint.Done with an error) is excluded
// from picks for BaseEjection × (number of ejections in a row), at most
// MaxEjection. An ejection streak is forgotten once the endpoint has stayed back
// for MaxEjection. At most MaxEjectionPercent of the endpoints (at least one,
// never all) are ejected at a time.
type OutlierConfig struct {
	// ConsecutiveFailures before ejection. Default 3; negative disables ejection.
	ConsecutiveFailures int
	// BaseEjection is the first ejection's length. Default 30s.
	BaseEjection time.Duration
	// MaxEjection caps the ejection length. Default 5m.
	MaxEjection time.Duration
	// MaxEjectionPercent bounds the share of ejected endpoints. Default 50.
	MaxEjectionPercent int
}

func (c BalancerConfig) withDefaults() BalancerConfig {
	if c.Policy == nil {
		c.Policy = P2C()
	}
	if c.MinZoneEndpoints <= 0 {
		c.MinZoneEndpoints = 2
	}
	if c.ResolveFloor <= 0 {
		c.ResolveFloor = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	c.BackoffMax = max(c.BackoffMax, c.ResolveFloor)
	if c.ResolveTimeout <= 0 {
		c.ResolveTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	o := &c.Outlier
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = 3
	}
	if o.BaseEjection <= 0 {
		o.BaseEjection = 30 * time.Second
	}
	if o.MaxEjection <= 0 {
		o.MaxEjection = 5 * time.Minute
	}
	o.MaxEjection = max(o.MaxEjection, o.BaseEjection)
	if o.MaxEjectionPercent <= 0 {
		o.MaxEjectionPercent = 50
	}
	return c
}

// Balancer holds the endpoint set of one service, their health, and the current
// picker. Its shape follows grpc-go's balancer/picker split: every change of the
// set or of an endpoint's health builds a new immutable picker, published with
// an atomic pointer, so Pick reads one pointer and never blocks or allocates.
//
// With a Source, a goroutine started by NewBalancer resolves it, re-resolves when
// the TTL runs out (never sooner than ResolveFloor), soon after failures reported
// through Done, and with exponential backoff after errors; a failed or empty
// resolution keeps the last good set. Without a Source the owner calls Update.
type Balancer struct {
	cfg    BalancerConfig
	src    Source
	log    *slog.Logger
	picker atomic.Pointer[picker]

	resolveNow chan struct{} // failures reported: re-resolve soon
	ready      chan struct{} // closed after the first resolution attempt or Update
	readyOnce  sync.Once
	cancel     context.CancelFunc
	done       chan struct{} // closed when the resolve goroutine exits

	mu        sync.Mutex
	eps       map[netip.AddrPort]*Endpoint
	nEjected  int
	noService bool
	lastErr   error // last resolution error, reported while there is no endpoint
	closed    bool
}

// picker is immutable once published.
type picker struct {
	eps []*Endpoint
	sel Selector
	err error // non-nil when eps is empty
}

// NewBalancer returns a Balancer. If src is not nil it starts the goroutine that
// resolves src until Close; otherwise the caller feeds endpoints with Update.
// It does not block.
func NewBalancer(src Source, cfg BalancerConfig) *Balancer {
	cfg = cfg.withDefaults()
	b := &Balancer{
		cfg:        cfg,
		src:        src,
		log:        cfg.Logger.With("service", cfg.Name),
		resolveNow: make(chan struct{}, 1),
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
		eps:        make(map[netip.AddrPort]*Endpoint),
	}
	b.picker.Store(&picker{err: ErrNotReady})
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	if src == nil {
		close(b.done)
	} else {
		go b.run(ctx)
	}
	return b
}

// Pick returns an endpoint chosen by the policy among the eligible endpoints, or
// an error (ErrNotReady, ErrNoEndpoints, ErrNoService, ErrClosed, possibly
// wrapped). The caller must call Done on the endpoint when the work finishes.
// It never blocks and never allocates; it is safe for concurrent use.
func (b *Balancer) Pick() (*Endpoint, error) { return b.PickKey(0) }

// PickKey is Pick with a consistent-hashing key (see HashKey); policies other
// than Maglev ignore the key. It never blocks and never allocates.
func (b *Balancer) PickKey(key uint64) (*Endpoint, error) {
	p := b.picker.Load()
	if p.err != nil {
		return nil, p.err
	}
	e := p.eps[p.sel.Select(key)]
	e.outstanding.Add(1)
	return e, nil
}

// WaitReady blocks until the first resolution attempt has finished (or, without
// a Source, the first Update) or ctx ends. After it returns nil, Pick returns an
// endpoint or the reason there is none. Pool.DialContext and RoundTripper call it.
func (b *Balancer) WaitReady(ctx context.Context) error {
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("lb: waiting for the first resolution of %s: %w", b.cfg.Name, ctx.Err())
	}
}

// Endpoints returns the current set (including ejected endpoints), sorted by
// address. It takes the balancer's lock; for observability and tests.
func (b *Balancer) Endpoints() []*Endpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Endpoint, 0, len(b.eps))
	for _, e := range b.eps {
		out = append(out, e)
	}
	slices.SortFunc(out, func(x, y *Endpoint) int { return x.ap.Compare(y.ap) })
	return out
}

// ResolveNow asks the resolve goroutine to resolve again as soon as ResolveFloor
// allows. It never blocks; without a Source it does nothing.
func (b *Balancer) ResolveNow() {
	select {
	case b.resolveNow <- struct{}{}:
	default:
	}
}

// Update replaces the endpoint set. Endpoints whose address stays keep their
// counters and health; new ones start healthy; missing ones are removed and
// drain. Duplicate addresses keep their first occurrence. An empty infos empties
// the set (the resolve goroutine never does that: it keeps the last good set).
// It takes the balancer's lock and builds a new picker when something changed.
func (b *Balancer) Update(infos []EndpointInfo) {
	b.update(infos, false)
	b.markReady()
}

func (b *Balancer) update(infos []EndpointInfo, noService bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	changed := b.noService != noService || b.picker.Load().err != nil
	b.noService = noService
	seen := make(map[netip.AddrPort]bool, len(infos))
	for _, in := range infos {
		if seen[in.Addr] {
			continue
		}
		seen[in.Addr] = true
		e := b.eps[in.Addr]
		if e == nil {
			b.eps[in.Addr] = newEndpoint(b, in)
			changed = true
			continue
		}
		if *e.info.Load() != in {
			e.info.Store(&in)
			changed = true
		}
	}
	for addr, e := range b.eps {
		if !seen[addr] {
			b.removeLocked(e)
			changed = true
			b.log.Info("endpoint removed, draining", "endpoint", e.addr, "outstanding", e.outstanding.Load())
		}
	}
	if changed {
		b.lastErr = nil
		b.rebuildLocked()
	}
}

func (b *Balancer) removeLocked(e *Endpoint) {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if e.ejected.Load() {
		e.ejected.Store(false)
		b.nEjected--
	}
	e.removed.Store(true)
	close(e.gone)
	delete(b.eps, e.ap)
}

// rebuildLocked publishes a new picker for the current set and health.
// Eligible endpoints are those not ejected (all of them if every one is
// ejected); among them the lowest SRV priority wins (RFC 2782: higher values are
// fallbacks); among those, the caller's zone if it has enough.
func (b *Balancer) rebuildLocked() {
	switch {
	case b.closed:
		b.picker.Store(&picker{err: ErrClosed})
		return
	case len(b.eps) == 0:
		err := ErrNoEndpoints
		if b.noService {
			err = ErrNoService
		} else if b.lastErr != nil {
			err = fmt.Errorf("%w: %w", ErrNoEndpoints, b.lastErr)
		}
		b.picker.Store(&picker{err: err})
		return
	}
	eps := make([]*Endpoint, 0, len(b.eps))
	for _, e := range b.eps {
		if !e.ejected.Load() {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 { // everything ejected: better some traffic than none
		for _, e := range b.eps {
			eps = append(eps, e)
		}
	}
	prio := eps[0].info.Load().Priority
	for _, e := range eps[1:] {
		prio = min(prio, e.info.Load().Priority)
	}
	eps = slices.DeleteFunc(eps, func(e *Endpoint) bool { return e.info.Load().Priority != prio })
	if z := b.cfg.Zone; z != "" {
		local := 0
		for _, e := range eps {
			if e.info.Load().Zone == z {
				local++
			}
		}
		if local >= b.cfg.MinZoneEndpoints {
			eps = slices.DeleteFunc(eps, func(e *Endpoint) bool { return e.info.Load().Zone != z })
		}
	}
	slices.SortFunc(eps, func(x, y *Endpoint) int { return x.ap.Compare(y.ap) })
	cands := make([]Candidate, len(eps))
	for i, e := range eps {
		cands[i] = Candidate{Name: e.addr, Weight: e.info.Load().Weight, Load: &e.outstanding, Latency: e.latency}
	}
	b.picker.Store(&picker{eps: eps, sel: b.cfg.Policy.Build(cands)})
}

// noteFailure is called by Endpoint.report with the new consecutive-failure count.
func (b *Balancer) noteFailure(e *Endpoint, fails int32) {
	b.ResolveNow()
	o := b.cfg.Outlier
	if o.ConsecutiveFailures < 0 || fails < int32(o.ConsecutiveFailures) || e.ejected.Load() || e.removed.Load() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || e.ejected.Load() || e.removed.Load() {
		return
	}
	n := len(b.eps)
	allowed := min(max(n*o.MaxEjectionPercent/100, 1), n-1)
	if b.nEjected >= allowed {
		return
	}
	now := time.Now()
	if e.ejections > 0 && now.Sub(e.returnedAt) >= o.MaxEjection {
		e.ejections = 0
	}
	e.ejections++
	d := min(o.BaseEjection*time.Duration(e.ejections), o.MaxEjection)
	e.ejected.Store(true)
	b.nEjected++
	e.timer = time.AfterFunc(d, func() { b.uneject(e) })
	b.log.Warn("endpoint ejected", "endpoint", e.addr, "consecutive_failures", fails, "for", d)
	b.rebuildLocked()
}

func (b *Balancer) uneject(e *Endpoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || e.removed.Load() || !e.ejected.Load() {
		return
	}
	e.ejected.Store(false)
	e.timer = nil
	e.fails.Store(0)
	e.returnedAt = time.Now()
	b.nEjected--
	b.log.Info("endpoint back from ejection", "endpoint", e.addr)
	b.rebuildLocked()
}

func (b *Balancer) markReady() { b.readyOnce.Do(func() { close(b.ready) }) }

// Close stops the resolve goroutine (waiting for it), removes every endpoint (so
// their Gone channels close) and makes Pick return ErrClosed. It is idempotent.
func (b *Balancer) Close() {
	b.cancel()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	for _, e := range b.eps {
		b.removeLocked(e)
	}
	b.closed = true
	b.rebuildLocked()
	b.markReady()
}

// run is the resolve goroutine.
func (b *Balancer) run(ctx context.Context) {
	defer close(b.done)
	var backoff time.Duration
	for {
		rctx, cancel := context.WithTimeout(ctx, b.cfg.ResolveTimeout)
		res, err := b.src.Resolve(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		last := time.Now()
		var wait time.Duration
		switch {
		case err == nil && res.NoService:
			b.update(nil, true)
			backoff, wait = 0, max(res.TTL, b.cfg.ResolveFloor)
		case err == nil && len(res.Endpoints) > 0:
			b.update(res.Endpoints, false)
			backoff, wait = 0, max(res.TTL, b.cfg.ResolveFloor)
		default:
			if err == nil {
				err = ErrEmptyResolution
			}
			backoff = min(max(2*backoff, b.cfg.ResolveFloor), b.cfg.BackoffMax)
			wait = time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
			b.resolveFailed(err, wait)
		}
		b.markReady()
		if !b.sleep(ctx, wait, last, backoff == 0) {
			return
		}
	}
}

// sleep waits for the next resolution: wait, or an earlier ResolveNow (honoured
// only when not backing off, and never before ResolveFloor after last).
func (b *Balancer) sleep(ctx context.Context, wait time.Duration, last time.Time, early bool) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	var now chan struct{}
	if early {
		now = b.resolveNow
	}
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	case <-now:
		d := b.cfg.ResolveFloor - time.Since(last)
		if d <= 0 {
			return true
		}
		t.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
}

func (b *Balancer) resolveFailed(err error, retry time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.log.Warn("resolution failed, keeping the last good endpoints", "err", err, "endpoints", len(b.eps), "retry_in", retry)
	if len(b.eps) == 0 && !b.noService {
		b.lastErr = err
		b.rebuildLocked()
	}
}
