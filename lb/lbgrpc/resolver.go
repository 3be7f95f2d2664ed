package lbgrpc

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
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"

	"github.com/clusterdns/clusterdns/lb"
)

// Scheme is the target scheme of the resolver this package registers.
const Scheme = "clusterdns"

// ErrBadTarget is returned (wrapped, by grpc.NewClient) for a target the
// resolver cannot parse.
var ErrBadTarget = errors.New("lbgrpc: bad target")

// ResolverOptions configures a resolver Builder. The zero value is what the
// registered "clusterdns" resolver uses.
type ResolverOptions struct {
	// ResolveFloor is the shortest time between two resolutions whatever the
	// TTL or ResolveNow calls; also the first backoff after an error.
	// Default 1s.
	ResolveFloor time.Duration
	// BackoffMax caps the backoff after resolution errors. Default 30s.
	BackoffMax time.Duration
	// Timeout bounds one DNS query to one server. Default 2s.
	Timeout time.Duration
	// ResolvConf is read when the target names no DNS server.
	// Default "/etc/resolv.conf".
	ResolvConf string
	// Network restricts address families: "ip" (default), "ip4", "ip6".
	Network string
	// NoZones turns off the TXT zone lookups (lb.TXTZones) made after each
	// resolution; the zone attribute is then always empty.
	NoZones bool
	// Logger receives resolution warnings. Default: slog.Default().
	Logger *slog.Logger
}

// NewBuilder returns a resolver builder for Scheme with options o, for
// grpc.WithResolvers when the registered defaults do not fit.
func NewBuilder(o ResolverOptions) resolver.Builder {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &resolverBuilder{opt: o}
}

type resolverBuilder struct{ opt ResolverOptions }

// Scheme implements resolver.Builder.
func (*resolverBuilder) Scheme() string { return Scheme }

// ParseTarget splits a "clusterdns" target into the DNS server to ask ("" for
// /etc/resolv.conf; "host:port", port 53 by default) and what to resolve. The
// resolver's Build calls it; errors wrap ErrBadTarget.
func ParseTarget(t resolver.Target) (server string, target lb.Target, err error) {
	if host := t.URL.Host; host != "" {
		server = host
		if _, _, err := net.SplitHostPort(host); err != nil {
			server = net.JoinHostPort(strings.Trim(host, "[]"), "53")
		}
	}
	ep := t.Endpoint()
	target, err = parseEndpoint(ep)
	if err != nil {
		return "", lb.Target{}, fmt.Errorf("%w %q: %w", ErrBadTarget, t.String(), err)
	}
	return server, target, nil
}

// parseEndpoint reads "<name>:<port>" or "_<port-name>._<proto>.<name>".
func parseEndpoint(ep string) (lb.Target, error) {
	if ep == "" {
		return lb.Target{}, errors.New("no name: want clusterdns:///<name>:<port> or clusterdns:///_<port-name>._<proto>.<name>")
	}
	if strings.HasPrefix(ep, "_") {
		labels := strings.SplitN(ep, ".", 3)
		if len(labels) < 3 || !strings.HasPrefix(labels[1], "_") {
			if proto := strings.ToLower(labels[0]); proto == "_tcp" || proto == "_udp" {
				return lb.Target{}, fmt.Errorf("SRV name %q has no named port: want _<port-name>.%s.<name>", ep, proto)
			}
			return lb.Target{}, fmt.Errorf("SRV name %q: want _<port-name>._<proto>.<name>", ep)
		}
		portName, proto := labels[0][1:], labels[1][1:]
		name, err := checkName(labels[2])
		switch {
		case portName == "":
			return lb.Target{}, fmt.Errorf("SRV name %q has an empty port name", ep)
		case proto == "":
			return lb.Target{}, fmt.Errorf("SRV name %q has an empty protocol", ep)
		case err != nil:
			return lb.Target{}, err
		}
		return lb.Target{Name: name, PortName: strings.ToLower(portName), Proto: strings.ToLower(proto)}, nil
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return lb.Target{}, fmt.Errorf("want <name>:<port> or the SRV form _<port-name>._<proto>.<name>: %w", err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return lb.Target{}, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	name, err := checkName(host)
	if err != nil {
		return lb.Target{}, err
	}
	return lb.Target{Name: name, Port: uint16(n)}, nil
}

func checkName(host string) (string, error) {
	if _, err := netip.ParseAddr(host); err == nil {
		return "", fmt.Errorf("%q is an IP address, not a name to resolve (use the passthrough scheme)", host)
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if _, ok := dns.IsDomainName(name); !ok || name == "" || strings.Contains(name, "..") {
		return "", fmt.Errorf("%q is not a DNS name", host)
	}
	return name, nil
}

// OverrideAuthority implements resolver.AuthorityOverrider: for an SRV target
// the channel's authority (HTTP/2 :authority, TLS server name) is the service
// name, not the SRV query name.
func (*resolverBuilder) OverrideAuthority(t resolver.Target) string {
	_, target, err := ParseTarget(t)
	if err != nil || target.PortName == "" {
		return t.Endpoint()
	}
	return target.Name
}

// Build implements resolver.Builder: it parses the target, prepares the DNS
// client and starts resolving in the background (grpc calls it from
// grpc.NewClient; it does not block on DNS).
func (b *resolverBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	server, target, err := ParseTarget(t)
	if err != nil {
		return nil, err
	}
	target.Network = b.opt.Network
	res, err := lb.NewResolver(lb.ResolverConfig{Server: server, ResolvConf: b.opt.ResolvConf, Timeout: b.opt.Timeout})
	if err != nil {
		return nil, fmt.Errorf("lbgrpc: %s: %w", t.String(), err)
	}
	var zones lb.ZoneSource
	if !b.opt.NoZones {
		zones = &lb.TXTZones{Resolver: res}
	}
	log := b.opt.Logger.With("target", t.String())
	r := &dnsResolver{cc: cc, target: target, log: log}
	src := &pushSource{inner: res.Source(target, zones, log), r: r}
	// The lb.Balancer is used for its resolve loop only: TTL scheduling with a
	// floor, backoff after errors, ResolveNow. Its picker stays unused; the
	// grpc balancer keeps its own lb.Balancer over the READY subchannels.
	r.sched = lb.NewBalancer(src, lb.BalancerConfig{
		Name:         target.String(),
		ResolveFloor: b.opt.ResolveFloor,
		BackoffMax:   b.opt.BackoffMax,
		Outlier:      lb.OutlierConfig{ConsecutiveFailures: -1},
		Logger:       log,
	})
	return r, nil
}

// dnsResolver is the resolver.Resolver of one channel.
type dnsResolver struct {
	cc     resolver.ClientConn
	target lb.Target
	log    *slog.Logger
	sched  *lb.Balancer
	closed atomic.Bool
	// Used only on the resolve goroutine (pushSource.Resolve).
	last []lb.EndpointInfo
}

// ResolveNow implements resolver.Resolver: grpc calls it when a connection
// fails; the resolution happens as soon as the floor allows. It never blocks.
func (r *dnsResolver) ResolveNow(resolver.ResolveNowOptions) { r.sched.ResolveNow() }

// Close implements resolver.Resolver; it waits for a resolution under way.
func (r *dnsResolver) Close() {
	r.closed.Store(true)
	r.sched.Close()
}

// pushSource is the lb.Source given to the scheduling lb.Balancer: it resolves
// with lb's Source and pushes each outcome to grpc.
type pushSource struct {
	inner lb.Source
	r     *dnsResolver
}

func (s *pushSource) Resolve(ctx context.Context) (lb.Resolution, error) {
	res, err := s.inner.Resolve(ctx)
	s.r.push(res, err)
	return res, err
}

// push sends a new endpoint set to grpc when it changed. A failed or empty
// resolution keeps the last good set; before there is one it puts the channel
// in an error state whose message says why.
func (r *dnsResolver) push(res lb.Resolution, err error) {
	if r.closed.Load() {
		return
	}
	switch {
	case err == nil && res.NoService:
		err = fmt.Errorf("lbgrpc: %s: %w", r.target, lb.ErrNoService)
	case err == nil && len(res.Endpoints) == 0:
		err = fmt.Errorf("lbgrpc: %s: no such name or no records: %w", r.target, lb.ErrEmptyResolution)
	case err != nil:
		err = fmt.Errorf("lbgrpc: resolving %s: %w", r.target, err)
	}
	if err != nil {
		if r.last == nil { // else keep it (the scheduling lb.Balancer logs the failure)
			r.cc.ReportError(err)
		}
		return
	}
	eps := slices.Clone(res.Endpoints)
	slices.SortFunc(eps, func(x, y lb.EndpointInfo) int { return x.Addr.Compare(y.Addr) })
	eps = slices.CompactFunc(eps, func(x, y lb.EndpointInfo) bool { return x.Addr == y.Addr })
	if slices.Equal(eps, r.last) {
		return
	}
	r.last = eps
	state := resolver.State{Endpoints: make([]resolver.Endpoint, len(eps)), Addresses: make([]resolver.Address, len(eps))}
	for i, e := range eps {
		addr := resolver.Address{Addr: e.Addr.String()}
		state.Addresses[i] = addr
		state.Endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{addr}, Attributes: attributes.New(infoKey{}, e)}
	}
	if err := r.cc.UpdateState(state); err != nil {
		r.log.Warn("the balancer rejected the endpoints", "err", err, "endpoints", len(eps))
	}
}

type infoKey struct{}

// Info returns what the resolver learnt about an endpoint: SRV priority and
// weight, SRV target, zone. The balancers of this package call it;
// ok is false for endpoints from another resolver.
func Info(ep resolver.Endpoint) (info lb.EndpointInfo, ok bool) {
	info, ok = ep.Attributes.Value(infoKey{}).(lb.EndpointInfo)
	return info, ok
}
