package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Source produces endpoint sets. The Balancer's resolve goroutine is its only
// caller; Resolve may block on the network up to ctx's deadline.
type Source interface {
	Resolve(ctx context.Context) (Resolution, error)
}

// Resolution is one answer from a Source.
type Resolution struct {
	// Endpoints is the set (empty for NXDOMAIN or NODATA).
	Endpoints []EndpointInfo
	// TTL is how long the answer may be used: the smallest TTL of the records
	// used, or the negative TTL of an empty answer.
	TTL time.Duration
	// NoService is set when the answer is a single SRV record with target "."
	// (RFC 2782: the service is decidedly not available).
	NoService bool
}

// Target names what to resolve.
type Target struct {
	// Name is the service's DNS name, e.g. "web.default.svc.cluster.local".
	// It is always queried as an absolute name (no search list).
	Name string
	// Port is the endpoints' port for A/AAAA lookups (SRV records carry theirs).
	Port uint16
	// PortName selects an SRV lookup of _<PortName>._<Proto>.<Name> instead of
	// A/AAAA; SRV gives each endpoint's port, priority and weight.
	PortName string
	// Proto is the SRV protocol label, "tcp" if empty.
	Proto string
	// Network selects address families: "ip" or "" for both, "ip4", "ip6".
	Network string
}

// QueryName returns the name queried: the SRV name when PortName is set, else Name.
func (t Target) QueryName() string {
	if t.PortName == "" {
		return t.Name
	}
	proto := t.Proto
	if proto == "" {
		proto = "tcp"
	}
	return "_" + t.PortName + "._" + proto + "." + t.Name
}

// String returns the target for logs.
func (t Target) String() string {
	if t.PortName != "" {
		return t.QueryName() + " SRV"
	}
	return net.JoinHostPort(t.Name, strconv.Itoa(int(t.Port)))
}

// ResolverConfig configures a Resolver.
type ResolverConfig struct {
	// Server is the DNS server's "host:port". Empty: the nameservers of ResolvConf.
	Server string
	// ResolvConf is the resolv.conf path used when Server is empty.
	// Default "/etc/resolv.conf".
	ResolvConf string
	// Timeout bounds one query to one server. Default 2s.
	Timeout time.Duration
	// UDPSize is the EDNS0 buffer size advertised. Default 1232.
	UDPSize uint16
	// Parallel bounds concurrent follow-up queries (SRV targets missing from the
	// Additional section, zone TXT lookups). Default 8.
	Parallel int
}

// Resolver queries a DNS server with github.com/miekg/dns: UDP with EDNS0, TCP
// when the answer is truncated, the servers in order on error. It is safe for
// concurrent use and holds no cache (the Balancer schedules by TTL).
type Resolver struct {
	servers  []string
	udp, tcp *dns.Client
	udpSize  uint16
	parallel int
}

// NewResolver returns a Resolver. It reads ResolvConf when Server is empty.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.UDPSize == 0 {
		cfg.UDPSize = 1232
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	r := &Resolver{
		udp:      &dns.Client{Net: "udp", Timeout: cfg.Timeout, UDPSize: cfg.UDPSize},
		tcp:      &dns.Client{Net: "tcp", Timeout: cfg.Timeout},
		udpSize:  cfg.UDPSize,
		parallel: cfg.Parallel,
	}
	if cfg.Server != "" {
		if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
			return nil, fmt.Errorf("lb: DNS server %q: %w", cfg.Server, err)
		}
		r.servers = []string{cfg.Server}
		return r, nil
	}
	path := cfg.ResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
	}
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("lb: reading %s: %w", path, err)
	}
	for _, s := range cc.Servers {
		r.servers = append(r.servers, net.JoinHostPort(s, cc.Port))
	}
	if len(r.servers) == 0 {
		return nil, fmt.Errorf("lb: no nameserver in %s", path)
	}
	return r, nil
}

// exchange sends one question to the servers in turn until one answers NOERROR
// or NXDOMAIN; it blocks up to ctx's deadline (and Timeout per server).
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(r.udpSize, false)
	var errs []error
	for _, s := range r.servers {
		resp, _, err := r.udp.ExchangeContext(ctx, m, s)
		if err == nil && resp.Truncated {
			resp, _, err = r.tcp.ExchangeContext(ctx, m, s)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("query %s %s at %s: %w", name, dns.TypeToString[qtype], s, err))
		case resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError:
			return resp, nil
		default:
			errs = append(errs, fmt.Errorf("query %s %s at %s: %w", name, dns.TypeToString[qtype], s, &RcodeError{Name: name, Rcode: resp.Rcode}))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// ttlTracker keeps the smallest TTL seen.
type ttlTracker struct {
	ttl uint32
	set bool
}

func (t *ttlTracker) see(ttl uint32) {
	if !t.set || ttl < t.ttl {
		t.ttl, t.set = ttl, true
	}
}

func (t *ttlTracker) duration() time.Duration { return time.Duration(t.ttl) * time.Second }

// negativeTTL is the negative-caching TTL of an empty answer (RFC 2308).
func negativeTTL(m *dns.Msg) uint32 {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl)
		}
	}
	return 0
}

func (t Target) wants(qtype uint16) bool {
	switch t.Network {
	case "ip4":
		return qtype == dns.TypeA
	case "ip6":
		return qtype == dns.TypeAAAA
	}
	return true
}

// Lookup resolves t once: SRV (and the targets' addresses, from the Additional
// section or follow-up A/AAAA queries) when t.PortName is set, else A and AAAA
// in parallel. NXDOMAIN and NODATA give an empty Resolution and no error; a
// failed query gives an error. It blocks up to ctx's deadline.
func (r *Resolver) Lookup(ctx context.Context, t Target) (Resolution, error) {
	if t.PortName != "" {
		return r.lookupSRV(ctx, t)
	}
	addrs, ttl, err := r.lookupAddrs(ctx, t, t.Name)
	if err != nil {
		return Resolution{}, err
	}
	res := Resolution{TTL: ttl}
	for _, a := range addrs {
		res.Endpoints = append(res.Endpoints, EndpointInfo{Addr: netip.AddrPortFrom(a, t.Port)})
	}
	return res, nil
}

// lookupAddrs queries A and/or AAAA (as t.Network allows) for name, in
// parallel. The TTL is the smallest of the records returned; the negative TTL
// of a family without records counts only when no family has any.
func (r *Resolver) lookupAddrs(ctx context.Context, t Target, name string) ([]netip.Addr, time.Duration, error) {
	type answer struct {
		addrs    []netip.Addr
		ttl, neg ttlTracker
		err      error
	}
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA}
	answers := make([]answer, len(qtypes))
	var wg sync.WaitGroup
	for i, qt := range qtypes {
		if !t.wants(qt) {
			continue
		}
		wg.Go(func() {
			a := &answers[i]
			m, err := r.exchange(ctx, name, qt)
			if err != nil {
				a.err = err
				return
			}
			for _, rr := range m.Answer {
				if ip, ok := rrAddr(rr); ok && rr.Header().Rrtype == qt {
					a.addrs = append(a.addrs, ip)
				}
				a.ttl.see(rr.Header().Ttl) // CNAMEs of the chain count too
			}
			if len(a.addrs) == 0 {
				a.neg.see(negativeTTL(m))
			}
		})
	}
	wg.Wait()
	var addrs []netip.Addr
	var ttl, neg ttlTracker
	for _, a := range answers {
		if a.err != nil {
			return nil, 0, a.err
		}
		addrs = append(addrs, a.addrs...)
		if len(a.addrs) > 0 {
			ttl.see(a.ttl.ttl)
		} else if a.neg.set {
			neg.see(a.neg.ttl)
		}
	}
	if len(addrs) == 0 {
		return nil, neg.duration(), nil
	}
	return addrs, ttl.duration(), nil
}

func rrAddr(rr dns.RR) (netip.Addr, bool) {
	switch v := rr.(type) {
	case *dns.A:
		a, ok := netip.AddrFromSlice(v.A.To4())
		return a, ok
	case *dns.AAAA:
		a, ok := netip.AddrFromSlice(v.AAAA.To16())
		return a, ok
	}
	return netip.Addr{}, false
}

func (r *Resolver) lookupSRV(ctx context.Context, t Target) (Resolution, error) {
	qname := t.QueryName()
	m, err := r.exchange(ctx, qname, dns.TypeSRV)
	if err != nil {
		return Resolution{}, err
	}
	var ttl ttlTracker
	var srvs []*dns.SRV
	for _, rr := range m.Answer {
		if s, ok := rr.(*dns.SRV); ok {
			srvs = append(srvs, s)
			ttl.see(s.Hdr.Ttl)
		}
	}
	if len(srvs) == 0 {
		ttl.see(negativeTTL(m))
		return Resolution{TTL: ttl.duration()}, nil
	}
	if len(srvs) == 1 && srvs[0].Target == "." {
		return Resolution{TTL: ttl.duration(), NoService: true}, nil
	}
	// Addresses of the targets given in the Additional section.
	extra := make(map[string][]netip.Addr)
	extraTTL := make(map[string]uint32)
	for _, rr := range m.Extra {
		if ip, ok := rrAddr(rr); ok && t.wants(rr.Header().Rrtype) {
			h := strings.ToLower(rr.Header().Name)
			extra[h] = append(extra[h], ip)
			if old, ok := extraTTL[h]; !ok || rr.Header().Ttl < old {
				extraTTL[h] = rr.Header().Ttl
			}
		}
	}
	// Follow-up queries for targets without addresses, at most r.parallel at once.
	var missing []string
	for _, s := range srvs {
		h := strings.ToLower(s.Target)
		if _, ok := extra[h]; !ok && h != "." && !slices.Contains(missing, h) {
			missing = append(missing, h)
		}
	}
	type follow struct {
		addrs []netip.Addr
		ttl   time.Duration
		err   error
	}
	follows := make([]follow, len(missing))
	sem := make(chan struct{}, r.parallel)
	var wg sync.WaitGroup
	for i, h := range missing {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			f := &follows[i]
			f.addrs, f.ttl, f.err = r.lookupAddrs(ctx, t, h)
		})
	}
	wg.Wait()
	for i, h := range missing {
		if follows[i].err != nil {
			return Resolution{}, fmt.Errorf("lb: resolving SRV target of %s: %w", qname, follows[i].err)
		}
		extra[h] = follows[i].addrs
		extraTTL[h] = uint32(follows[i].ttl / time.Second)
	}
	res := Resolution{}
	for _, s := range srvs {
		h := strings.ToLower(s.Target)
		if h == "." {
			continue
		}
		if addrs := extra[h]; len(addrs) > 0 {
			ttl.see(extraTTL[h])
			for _, a := range addrs {
				res.Endpoints = append(res.Endpoints, EndpointInfo{
					Addr:     netip.AddrPortFrom(a, s.Port),
					Host:     strings.TrimSuffix(s.Target, "."),
					Priority: s.Priority,
					Weight:   s.Weight,
				})
			}
		}
	}
	res.TTL = ttl.duration()
	return res, nil
}

// LookupTXT returns the character strings of every TXT record at name, one slice
// per record (nil for NXDOMAIN or NODATA). TXTZones calls it; it blocks up to
// ctx's deadline.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([][]string, error) {
	m, err := r.exchange(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, rr := range m.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, txt.Txt)
		}
	}
	return out, nil
}

// Source returns a Source resolving t with r, annotating zones with zones when
// it is not nil. The Source keeps the zones it last learnt and reuses them when
// a zone lookup fails; it must have a single caller (one Balancer).
func (r *Resolver) Source(t Target, zones ZoneSource, log *slog.Logger) Source {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &dnsSource{r: r, t: t, zones: zones, log: log}
}

type dnsSource struct {
	r     *Resolver
	t     Target
	zones ZoneSource
	log   *slog.Logger
	last  map[netip.AddrPort]string // zones from the last successful annotation
}

func (s *dnsSource) Resolve(ctx context.Context) (Resolution, error) {
	res, err := s.r.Lookup(ctx, s.t)
	if err != nil || s.zones == nil || len(res.Endpoints) == 0 {
		return res, err
	}
	if err := s.zones.AnnotateZones(ctx, s.t, res.Endpoints); err != nil {
		s.log.Warn("zone lookup failed, reusing known zones", "target", s.t.String(), "err", err)
		for i := range res.Endpoints {
			if res.Endpoints[i].Zone == "" {
				res.Endpoints[i].Zone = s.last[res.Endpoints[i].Addr]
			}
		}
		return res, nil
	}
	s.last = make(map[netip.AddrPort]string, len(res.Endpoints))
	for _, e := range res.Endpoints {
		if e.Zone != "" {
			s.last[e.Addr] = e.Zone
		}
	}
	return res, nil
}
