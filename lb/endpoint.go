package lb

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/clusterdns/clusterdns/lb/policy"
)

// EndpointInfo describes one backend as a Source reports it. It is a plain value:
// Sources build it, Balancer.Update copies it.
type EndpointInfo struct {
	// Addr is the address to connect to. It is the endpoint's identity: the
	// balancer keeps one Endpoint (and its counters) per Addr across resolutions.
	Addr netip.AddrPort
	// Host is the SRV target (without the trailing dot), "" for A/AAAA answers.
	Host string
	// Priority and Weight come from the SRV record (RFC 2782); A/AAAA answers
	// have priority 0 and weight 0 (all equal).
	Priority uint16
	Weight   uint16
	// Zone is the endpoint's zone as reported by a ZoneSource, "" if unknown.
	Zone string
}

// Endpoint is one backend of a Balancer. The Balancer creates it when its address
// first appears and keeps the same object while the address stays in the set, so
// the counters below are shared by every picker built in that time.
//
// Pick hands out *Endpoint; the caller must call Done exactly once per successful
// Pick. All methods are safe for concurrent use and never block, except Done with
// a failure that ejects the endpoint, which takes the balancer's lock and builds
// a new picker.
type Endpoint struct {
	addr string
	ap   netip.AddrPort
	bal  *Balancer
	info atomic.Pointer[EndpointInfo]

	outstanding atomic.Int64
	latency     *policy.PeakEWMA // of successful picks, fed by DoneLatency
	fails       atomic.Int32     // consecutive failures
	ejected     atomic.Bool
	removed     atomic.Bool
	gone        chan struct{} // closed when removed

	// Guarded by bal.mu.
	ejections  int         // ejections in the current streak (multiplies the ejection time)
	returnedAt time.Time   // when the last ejection ended
	timer      *time.Timer // un-ejection timer while ejected
}

func newEndpoint(b *Balancer, in EndpointInfo) *Endpoint {
	e := &Endpoint{addr: in.Addr.String(), ap: in.Addr, bal: b, gone: make(chan struct{}),
		latency: policy.NewPeakEWMA(b.cfg.LatencyDecay)}
	e.info.Store(&in)
	return e
}

// Addr returns the endpoint's "ip:port" (IPv6 in brackets), ready for net.Dial.
func (e *Endpoint) Addr() string { return e.addr }

// AddrPort returns the endpoint's address.
func (e *Endpoint) AddrPort() netip.AddrPort { return e.ap }

// Info returns the endpoint's latest description (SRV host, priority, weight,
// zone); a later resolution may change it.
func (e *Endpoint) Info() EndpointInfo { return *e.info.Load() }

// Outstanding returns the number of picks not yet finished with Done (for
// Pool.DialContext: the number of open connections).
func (e *Endpoint) Outstanding() int64 { return e.outstanding.Load() }

// Latency returns the endpoint's peak-EWMA latency estimate (see
// policy.PeakEWMA), decayed to now, and false before any DoneLatency of a
// successful pick.
func (e *Endpoint) Latency() (time.Duration, bool) { return e.latency.Estimate() }

// Ejected reports whether passive outlier detection currently excludes the endpoint.
func (e *Endpoint) Ejected() bool { return e.ejected.Load() }

// Removed reports whether the endpoint has left the set (DNS no longer returns it,
// or the balancer was closed). A removed endpoint drains: work already picked
// finishes, no new pick returns it.
func (e *Endpoint) Removed() bool { return e.removed.Load() }

// Gone returns a channel closed when the endpoint is removed. Integrations use it
// to close idle connections to a drained endpoint.
func (e *Endpoint) Gone() <-chan struct{} { return e.gone }

// Done finishes a pick: it decrements the outstanding-request counter used by the
// power-of-two-choices policy and reports the outcome to outlier detection.
// err == nil counts as a success (resets the consecutive-failure count); an error
// wrapping context.Canceled is neutral (the caller gave up); any other error is a
// failure, makes the balancer re-resolve soon, and after
// OutlierConfig.ConsecutiveFailures failures in a row ejects the endpoint.
// Call it exactly once per successful Pick. It does not allocate; it blocks only
// briefly, on the balancer's lock, when it ejects.
func (e *Endpoint) Done(err error) {
	e.report(err)
	e.release()
}

// DoneLatency is Done for a pick whose work took latency (from Pick to the
// answer): a success (err == nil) also feeds the endpoint's latency estimate,
// which the P2C policy weighs with the outstanding count. Failures and
// cancellations do not: a quickly failing endpoint must not look fast (outlier
// ejection deals with it). Like Done, it does not allocate.
func (e *Endpoint) DoneLatency(err error, latency time.Duration) {
	if err == nil {
		e.latency.Observe(latency)
	}
	e.Done(err)
}

func (e *Endpoint) release() { e.outstanding.Add(-1) }

// report feeds outlier detection without touching the outstanding counter.
func (e *Endpoint) report(err error) {
	if err == nil {
		if e.fails.Load() != 0 {
			e.fails.Store(0)
		}
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	e.bal.noteFailure(e, e.fails.Add(1))
}
