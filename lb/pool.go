package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Pool.
type Config struct {
	// Resolver configures DNS (server address, or /etc/resolv.conf).
	Resolver ResolverConfig
	// Balancer is the template for every service's Balancer (Name is set per
	// service). A nil Policy means Weighted for SRV targets, P2C otherwise.
	Balancer BalancerConfig
	// Domain is the cluster domain. Default "cluster.local".
	Domain string
	// PortName, when set, makes every service resolve with SRV
	// _<PortName>._<Proto>.<name>; the port in the dialled address is then
	// ignored (SRV gives the endpoints' ports).
	PortName string
	// Proto is the SRV protocol label. Default "tcp".
	Proto string
	// Network restricts address families: "ip" (default), "ip4", "ip6".
	Network string
	// Match decides which host names are balanced. Default: IsServiceName with
	// Domain, i.e. "<svc>.<ns>.svc.<domain>". Other names are dialled as given.
	Match func(host string) bool
	// Dialer connects to endpoints (and to names that are not balanced).
	// Default: a net.Dialer with a 5s timeout and 30s keep-alive.
	Dialer *net.Dialer
	// MaxAttempts is how many endpoints DialContext and RoundTripper try when
	// connecting fails. Default 3.
	MaxAttempts int
	// Logger receives the pool's and balancers' logs. Default: discard.
	Logger *slog.Logger
}

// Pool owns one Balancer per balanced service, created on first use, and
// provides the net/http integration: DialContext (connection-level balancing)
// and, through NewRoundTripper, request-level balancing. It is safe for
// concurrent use. Balancers live until Close.
type Pool struct {
	cfg    Config
	res    *Resolver
	dialer *net.Dialer
	log    *slog.Logger

	mu     sync.RWMutex
	bals   map[Target]*Balancer
	closed bool
}

// NewPool returns a Pool. It reads /etc/resolv.conf when no DNS server is
// configured, and starts nothing until a service is used.
func NewPool(cfg Config) (*Pool, error) {
	if cfg.Domain == "" {
		cfg.Domain = "cluster.local"
	}
	cfg.Domain = strings.ToLower(strings.Trim(cfg.Domain, "."))
	if cfg.Proto == "" {
		cfg.Proto = "tcp"
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Balancer.Logger == nil {
		cfg.Balancer.Logger = cfg.Logger
	}
	if cfg.Match == nil {
		domain := cfg.Domain
		cfg.Match = func(host string) bool { return IsServiceName(host, domain) }
	}
	dialer := cfg.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	}
	res, err := NewResolver(cfg.Resolver)
	if err != nil {
		return nil, err
	}
	return &Pool{cfg: cfg, res: res, dialer: dialer, log: cfg.Logger, bals: make(map[Target]*Balancer)}, nil
}

// IsServiceName reports whether host has the shape "<svc>.<ns>.svc.<domain>"
// (case-insensitive, optional trailing dot). It is the Pool's default Match.
func IsServiceName(host, domain string) bool {
	host = strings.TrimSuffix(host, ".")
	rest, ok := cutSuffixFold(host, ".svc."+domain)
	if !ok {
		return false
	}
	svc, ns, ok := strings.Cut(rest, ".")
	return ok && svc != "" && ns != "" && !strings.Contains(ns, ".")
}

func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) < len(suffix) || !strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s, false
	}
	return s[:len(s)-len(suffix)], true
}

// Balancer returns the Balancer for t, creating it (and its resolve goroutine)
// on first use. Other protocols call it and then Pick/Done. It takes the pool's
// lock; it does not wait for resolution (see Balancer.WaitReady).
func (p *Pool) Balancer(t Target) (*Balancer, error) {
	p.mu.RLock()
	b, closed := p.bals[t], p.closed
	p.mu.RUnlock()
	if b != nil {
		return b, nil
	}
	if closed {
		return nil, ErrClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if b := p.bals[t]; b != nil {
		return b, nil
	}
	cfg := p.cfg.Balancer
	cfg.Name = t.String()
	if cfg.Policy == nil && t.PortName != "" {
		cfg.Policy = Weighted()
	}
	var zones ZoneSource
	if cfg.Zone != "" {
		zones = &TXTZones{Resolver: p.res}
	}
	b = NewBalancer(p.res.Source(t, zones, p.log), cfg)
	p.bals[t] = b
	p.log.Debug("balancing service", "target", t.String())
	return b, nil
}

// balancerFor returns the Balancer for a dialled "host:port", or ok=false when
// the host is not balanced.
func (p *Pool) balancerFor(addr string) (b *Balancer, ok bool, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !p.cfg.Match(host) {
		return nil, false, nil
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, true, fmt.Errorf("lb: port of %q: %w", addr, err)
	}
	t := Target{
		Name:     strings.ToLower(strings.TrimSuffix(host, ".")),
		Port:     uint16(n),
		PortName: p.cfg.PortName,
		Proto:    p.cfg.Proto,
		Network:  p.cfg.Network,
	}
	if t.PortName != "" {
		t.Port = 0 // one balancer per service, whatever port was dialled
	}
	b, err = p.Balancer(t)
	return b, true, err
}

// Close closes every Balancer; DialContext and RoundTripper then fail with
// ErrClosed for balanced names. Connections already made stay open.
func (p *Pool) Close() {
	p.mu.Lock()
	bals := p.bals
	p.bals, p.closed = nil, true
	p.mu.Unlock()
	for _, b := range bals {
		b.Close()
	}
}

type hashKeyCtx struct{}

// WithHashKey returns a context carrying a consistent-hashing key for
// DialContext and RoundTripper (used by the Maglev policy: requests with the
// same key go to the same endpoint while the set is stable).
func WithHashKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, hashKeyCtx{}, HashKey(key))
}

func hashKeyFrom(ctx context.Context) uint64 {
	k, _ := ctx.Value(hashKeyCtx{}).(uint64)
	return k
}

// pickAvoiding picks an endpoint, preferring one not in tried (endpoints that
// already failed this request). The first attempt uses key; retries pick
// without it, since the keyed endpoint just failed.
func pickAvoiding(b *Balancer, key uint64, tried []*Endpoint) (*Endpoint, error) {
	if len(tried) > 0 {
		key = 0
	}
	for i := 0; ; i++ {
		e, err := b.PickKey(key)
		if err != nil || i == 3 || !slices.Contains(tried, e) {
			return e, err
		}
		e.release()
	}
}

// DialContext has the signature of net.Dialer.DialContext and
// http.Transport.DialContext. When addr's host is a balanced service name it
// waits for the service's first resolution, picks an endpoint, dials it, and
// reports the outcome; on failure it tries up to MaxAttempts endpoints. Other
// addresses are dialled as they are. It blocks like a dial, bounded by ctx.
//
// It balances connections, not requests: an http.Transport keeps connections
// alive and reuses them, so with DialContext alone a steady client sends its
// requests wherever its few pooled connections go. Use NewRoundTripper for
// per-request spreading. The endpoint counts as outstanding while the returned
// connection is open (P2C then means "fewest connections").
//
// Drain: once the endpoint leaves DNS, a returned connection refuses to start a
// new exchange (a write that follows a read fails with ErrEndpointRemoved before
// anything is sent, which http.Transport retries on a new connection); an
// exchange already under way finishes. This suits request/response protocols
// such as HTTP/1.1, not streams that write after reading.
func (p *Pool) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	b, ok, err := p.balancerFor(addr)
	if err != nil {
		return nil, err
	}
	if !ok {
		return p.dialer.DialContext(ctx, network, addr)
	}
	if err := b.WaitReady(ctx); err != nil {
		return nil, err
	}
	key := hashKeyFrom(ctx)
	var triedBuf [4]*Endpoint
	tried := triedBuf[:0]
	var errs []error
	for range p.cfg.MaxAttempts {
		e, err := pickAvoiding(b, key, tried)
		if err != nil {
			return nil, errors.Join(append(errs, err)...)
		}
		c, err := p.dialer.DialContext(ctx, network, e.addr)
		if err == nil {
			e.report(nil)
			return &trackedConn{Conn: c, ep: e}, nil
		}
		derr := &DialError{Addr: e.addr, Err: err}
		e.Done(derr)
		errs = append(errs, derr)
		if ctx.Err() != nil {
			break
		}
		if len(tried) < cap(tried) {
			tried = append(tried, e)
		}
	}
	return nil, errors.Join(errs...)
}

// trackedConn is a connection made by Pool.DialContext: it keeps its endpoint
// outstanding until closed and stops new exchanges once the endpoint drains.
type trackedConn struct {
	net.Conn
	ep             *Endpoint
	readSinceWrite atomic.Bool
	closed         atomic.Bool
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.readSinceWrite.Store(true)
	}
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	if c.readSinceWrite.Load() {
		// A write after a read starts a new exchange on a reused connection.
		if c.ep.Removed() {
			c.Close()
			return 0, fmt.Errorf("lb: %s: %w", c.ep.addr, ErrEndpointRemoved)
		}
		c.readSinceWrite.Store(false)
	}
	return c.Conn.Write(b)
}

func (c *trackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.ep.release()
	}
	return c.Conn.Close()
}
