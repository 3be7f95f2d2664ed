// Package resolver answers every name outside clusterdns' own zones: it
// forwards to upstream servers (from /etc/resolv.conf or configuration),
// to per-domain stub servers, and caches what they say (go-cache), serving
// stale answers when every upstream fails.
//
// The server's handler calls Forwarder.Cached on its listener goroutine (a
// map lookup, never blocking) and Forwarder.Resolve on a miss, which
// returns at once and answers later from a goroutine of its own.
package resolver

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Policy orders the upstreams of a group for each query.
type Policy string

// The upstream policies.
const (
	Random     Policy = "random"
	RoundRobin Policy = "round_robin"
	Sequential Policy = "sequential"
)

// Validate returns an error naming p unless New takes it (random,
// round_robin or sequential; New reads "" as random). New and the
// configuration's upstream_policy key call it: the one list of policies.
func (p Policy) Validate() error {
	switch p {
	case Random, RoundRobin, Sequential:
		return nil
	}
	return fmt.Errorf("policy %q: want random, round_robin or sequential", p)
}

// Options configure a Forwarder.
type Options struct {
	// Upstreams are "ip", "ip:port", "tcp://ip[:port]" (TCP only) or
	// "tls://ip[:port]#server-name" (DNS over TLS, port 853 by default,
	// the certificate checked for server-name; tls.go). Empty means the
	// nameservers of ResolvConf.
	Upstreams []string
	// TLSRootCAs verify TLS upstreams' certificates (nil: the system's).
	TLSRootCAs *x509.CertPool
	// ResolvConf is read when Upstreams is empty (default /etc/resolv.conf).
	ResolvConf string
	// StubDomains send names under a domain to their own servers
	// (kube-dns stubDomains), e.g. "corp.example" → ["10.0.0.53"].
	StubDomains map[string][]string
	Policy      Policy
	// Timeout bounds one exchange with one upstream (0: 2 s).
	Timeout time.Duration
	// MaxFails consecutive failures mark an upstream down (0: 2); a down
	// upstream is skipped and probed every HealthInterval (0: 1 s) until it
	// answers again.
	MaxFails       int32
	HealthInterval time.Duration
	// MaxInFlight bounds the queries being forwarded at once (0: 1000);
	// beyond it, SERVFAIL.
	MaxInFlight int
	Cache       CacheOptions
	Logger      *slog.Logger
	// Metrics receives the counts; nil makes new ones (see Forwarder.Metrics).
	Metrics *Metrics
}

// Question is a query to forward, as the server's handler parsed it.
type Question struct {
	Wire    []byte // the name in wire format, as asked
	Key     []byte // lower-case wire name (the cache key's name part)
	Type    uint16
	Class   uint16
	DO, CD  bool
	UDPSize uint16 // the client's EDNS size; 0 without EDNS
}

type upstream struct {
	addr    string // host:port
	tcpOnly bool
	tls     *tlsUpstream // DNS over TLS; nil for UDP and TCP
	fails   atomic.Int32
	down    atomic.Bool
}

type group struct {
	domain    string // lower-case FQDN; "." for the default group
	upstreams []*upstream
	next      atomic.Uint32
}

// Forwarder resolves names upstream with caching. Construct with New; Run
// starts its health checks.
type Forwarder struct {
	opt      Options
	log      *slog.Logger
	def      *group
	stubs    []*group // longest domain first
	cache    *Cache
	flight   singleflight.Group
	inflight chan struct{}
	udp, tcp *dns.Client
	metrics  *Metrics
	// Upstream counters for tests and metrics.
	Exchanges atomic.Int64
}

// New validates the options and returns a forwarder.
func New(opt Options) (*Forwarder, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Second
	}
	if opt.MaxFails <= 0 {
		opt.MaxFails = 2
	}
	if opt.HealthInterval <= 0 {
		opt.HealthInterval = time.Second
	}
	if opt.MaxInFlight <= 0 {
		opt.MaxInFlight = 1000
	}
	if opt.Policy == "" {
		opt.Policy = Random
	}
	if err := opt.Policy.Validate(); err != nil {
		return nil, err
	}
	f := &Forwarder{
		opt: opt, log: opt.Logger, cache: NewCache(opt.Cache),
		inflight: make(chan struct{}, opt.MaxInFlight),
		udp:      &dns.Client{Net: "udp", Timeout: opt.Timeout, UDPSize: dns.MaxMsgSize},
		metrics:  opt.Metrics,
		tcp:      &dns.Client{Net: "tcp", Timeout: opt.Timeout},
	}
	ups := opt.Upstreams
	if len(ups) == 0 {
		path := opt.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		cfg, err := dns.ClientConfigFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("upstreams from %s: %w", path, err)
		}
		for _, s := range cfg.Servers {
			ups = append(ups, net.JoinHostPort(s, cfg.Port))
		}
	}
	if f.metrics == nil {
		f.metrics = NewMetrics()
	}
	var err error
	if f.def, err = newGroup(".", ups, opt.TLSRootCAs); err != nil {
		return nil, err
	}
	for d, servers := range opt.StubDomains {
		g, err := newGroup(dns.CanonicalName(d), servers, opt.TLSRootCAs)
		if err != nil {
			return nil, fmt.Errorf("stub domain %s: %w", d, err)
		}
		f.stubs = append(f.stubs, g)
	}
	// Longest domain first, so the most specific stub wins.
	for i := range f.stubs {
		for j := i + 1; j < len(f.stubs); j++ {
			if dns.CountLabel(f.stubs[j].domain) > dns.CountLabel(f.stubs[i].domain) {
				f.stubs[i], f.stubs[j] = f.stubs[j], f.stubs[i]
			}
		}
	}
	return f, nil
}

func newGroup(domain string, servers []string, roots *x509.CertPool) (*group, error) {
	g := &group{domain: domain}
	for _, s := range servers {
		u := &upstream{}
		port := "53"
		if rest, ok := strings.CutPrefix(s, "tcp://"); ok {
			u.tcpOnly, s = true, rest
		} else if rest, ok := strings.CutPrefix(s, "tls://"); ok {
			var err error
			if u.tls, s, err = parseTLSUpstream(rest, roots); err != nil {
				return nil, err
			}
			port = "853"
		}
		if _, err := netip.ParseAddr(s); err == nil {
			s = net.JoinHostPort(s, port)
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: want ip, ip:port, tcp://ip[:port] or tls://ip[:port]#server-name", s)
		}
		u.addr = ap.String()
		if u.tls != nil {
			u.tls.addr = u.addr
		}
		g.upstreams = append(g.upstreams, u)
	}
	if len(g.upstreams) == 0 {
		return nil, errors.New("no upstream servers")
	}
	return g, nil
}

// Metrics returns the forwarder's metrics (a prometheus.Collector).
func (f *Forwarder) Metrics() *Metrics { return f.metrics }

// Cache returns the forwarder's cache.
func (f *Forwarder) Cache() *Cache { return f.cache }

func (f *Forwarder) groupFor(name string) *group {
	for _, g := range f.stubs {
		if dns.IsSubDomain(g.domain, name) {
			return g
		}
	}
	return f.def
}

// Cached copies a fresh cached response for q into out, or returns nil. A
// popular entry near expiry is refreshed in the background. It never blocks.
func (f *Forwarder) Cached(q *Question, out []byte) []byte {
	key := cacheKey(q.Key, q.Type, q.Class, q.DO, q.CD)
	resp, hit := f.cache.Get(key, out)
	switch hit {
	case Fresh:
		f.metrics.cacheHit(resp)
		return resp
	case Prefetch:
		f.metrics.cacheHit(resp)
		f.metrics.prefetches.Add(1)
		qq := *q
		qq.Key = append([]byte(nil), q.Key...)
		qq.Wire = append([]byte(nil), q.Wire...)
		go func() {
			defer f.recoverPanic(&qq)
			f.resolve(context.Background(), &qq, key)
		}()
		return resp
	}
	f.metrics.cacheMisses.Add(1)
	return nil
}

// Resolve forwards q and calls done exactly once, from another goroutine,
// with the response packed without OPT (nil means SERVFAIL). It returns at
// once. Identical concurrent questions are sent upstream once.
func (f *Forwarder) Resolve(q Question, done func(resp []byte)) {
	select {
	case f.inflight <- struct{}{}:
	default:
		f.metrics.refusedInFlight.Add(1)
		f.log.Warn("too many forwarded queries in flight", "limit", f.opt.MaxInFlight)
		done(nil)
		return
	}
	go func() {
		defer func() { <-f.inflight }()
		defer f.recoverPanic(&q)
		key := cacheKey(q.Key, q.Type, q.Class, q.DO, q.CD)
		ctx, cancel := context.WithTimeout(context.Background(), 3*f.opt.Timeout)
		defer cancel()
		done(f.resolve(ctx, &q, key))
	}()
}

// resolve asks upstream once per key at a time; on failure it falls back
// to a stale cached answer.
func (f *Forwarder) resolve(ctx context.Context, q *Question, key string) []byte {
	v, err, shared := f.flight.Do(key, func() (any, error) {
		m, err := f.exchange(ctx, q)
		if err != nil {
			return nil, err
		}
		m.Extra = stripOPT(m.Extra)
		m.Compress = true // smaller, and address records point at one owner (the server can reorder them)
		f.cache.Put(key, m)
		return packChecked(m)
	})
	if err == nil {
		if shared {
			// Every caller patches its copy (ID, question spelling).
			return append([]byte(nil), v.([]byte)...)
		}
		return v.([]byte)
	}
	if resp, hit := f.cache.Get(key, nil); hit == Stale {
		f.metrics.staleServed.Add(1)
		f.log.Debug("every upstream failed, serving stale", "q", keyString(nameOf(q.Wire), q.Type), "err", err)
		return resp
	}
	f.log.Debug("forwarding failed", "q", keyString(nameOf(q.Wire), q.Type), "err", err)
	return nil
}

func stripOPT(rrs []dns.RR) []dns.RR {
	out := rrs[:0]
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

// order returns the group's upstreams in the order to try them: healthy
// ones by policy, then the down ones as a last resort.
func (f *Forwarder) order(g *group) []*upstream {
	n := len(g.upstreams)
	out := make([]*upstream, 0, n)
	start := 0
	switch f.opt.Policy {
	case Random:
		start = rand.IntN(n)
	case RoundRobin:
		start = int(g.next.Add(1)-1) % n
	}
	var down []*upstream
	for i := range n {
		u := g.upstreams[(start+i)%n]
		if u.down.Load() {
			down = append(down, u)
		} else {
			out = append(out, u)
		}
	}
	return append(out, down...)
}

// exchange tries the group's upstreams in order until one answers.
func (f *Forwarder) exchange(ctx context.Context, q *Question) (*dns.Msg, error) {
	name, _, err := dns.UnpackDomainName(q.Wire, 0)
	if err != nil {
		return nil, fmt.Errorf("question name: %w", err)
	}
	req := new(dns.Msg)
	req.SetQuestion(name, q.Type)
	req.Question[0].Qclass = q.Class
	req.CheckingDisabled = q.CD
	size := q.UDPSize
	if size == 0 {
		size = 1232
	}
	req.SetEdns0(size, q.DO)
	var errs []error
	for _, u := range f.order(f.groupFor(dns.CanonicalName(name))) {
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		m, err := f.exchangeOne(ctx, u, req)
		f.metrics.forwarded(u.addr, start, m)
		if err == nil && (m.Rcode == dns.RcodeServerFailure || m.Rcode == dns.RcodeRefused) {
			err = fmt.Errorf("%s answered %s", u.addr, dns.RcodeToString[m.Rcode])
		}
		if err != nil {
			f.failed(u, err)
			errs = append(errs, err)
			continue
		}
		f.succeeded(u)
		return m, nil
	}
	return nil, fmt.Errorf("every upstream failed: %w", errors.Join(errs...))
}

func (f *Forwarder) exchangeOne(ctx context.Context, u *upstream, req *dns.Msg) (*dns.Msg, error) {
	f.Exchanges.Add(1)
	c := f.udp
	if u.tcpOnly {
		c = f.tcp
	}
	start := time.Now()
	var m *dns.Msg
	var err error
	if u.tls != nil {
		tctx, cancel := context.WithTimeout(ctx, f.opt.Timeout)
		m, err = u.tls.exchange(tctx, req)
		cancel()
	} else {
		m, _, err = c.ExchangeContext(ctx, req, u.addr)
	}
	if err == nil && m.Truncated && !u.tcpOnly && u.tls == nil {
		f.Exchanges.Add(1)
		m, _, err = f.tcp.ExchangeContext(ctx, req, u.addr)
	}
	f.metrics.observe(u.addr, start, err)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.addr, err)
	}
	return m, nil
}

func (f *Forwarder) failed(u *upstream, err error) {
	if u.fails.Add(1) >= f.opt.MaxFails && u.down.CompareAndSwap(false, true) {
		f.log.Warn("upstream down", "upstream", u.addr, "err", err)
	}
}

func (f *Forwarder) succeeded(u *upstream) {
	u.fails.Store(0)
	if u.down.CompareAndSwap(true, false) {
		f.log.Info("upstream up again", "upstream", u.addr)
	}
}

// Run probes down upstreams every HealthInterval (". NS" queries) until
// ctx ends, so that one is used again as soon as it answers. It blocks.
func (f *Forwarder) Run(ctx context.Context) {
	t := time.NewTicker(f.opt.HealthInterval)
	defer t.Stop()
	probe := new(dns.Msg)
	probe.SetQuestion(".", dns.TypeNS)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, g := range append([]*group{f.def}, f.stubs...) {
			for _, u := range g.upstreams {
				if !u.down.Load() {
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					pctx, cancel := context.WithTimeout(ctx, f.opt.Timeout)
					defer cancel()
					if _, err := f.exchangeOne(pctx, u, probe); err == nil {
						f.succeeded(u)
					} else {
						f.metrics.fwdHealth.WithLabelValues(u.addr).Inc()
					}
				}()
			}
		}
	}
}

// nameOf is a wire name in presentation form, for logs.
func nameOf(wire []byte) string {
	name, _, err := dns.UnpackDomainName(wire, 0)
	if err != nil {
		return fmt.Sprintf("%x", wire)
	}
	return name
}
